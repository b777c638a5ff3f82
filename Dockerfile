# convmix as a container: CPU-only torch (about 0.2 GB instead of the ~3 GB CUDA build).
#
# Pinned: the base image by its exact tag (Python patch release and Debian release) and every direct
# dependency by version, the versions the test suite ran with, as CI pins torch. Bump them together.
FROM python:3.12.11-slim-bookworm

# The memory budget covers the whole process: leave the container (1 GB here) some room above it.
# Fewer malloc arenas: a Streamlit session is a thread, and each thread's arena keeps freed memory.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONVMIX_MEMORY_BUDGET=900MiB CONVMIX_TIME_LIMIT=30 MALLOC_ARENA_MAX=2

WORKDIR /app
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install streamlit==1.67.0 altair==6.3.0 pandas==3.1.1 pillow==13.0.0 numpy==2.4.6 \
 && pip check

# The code belongs to root and is only readable by the user the app runs as: a compromised session
# cannot rewrite the app for the next visitor. (.dockerignore keeps secrets and caches out.)
COPY . .
RUN useradd --create-home --shell /usr/sbin/nologin convmix \
 && chmod -R a+rX,go-w /app
USER convmix

EXPOSE 8501
# The server listens once every page has been rendered once (scripts/serve.py; about 10 s on two cores).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read().strip() == b'ok' else 1)"

# One intra-op thread per forward in the app (visitors share the cores); CONVMIX_THREADS overrides it,
# see convmix/runtime.py.
# scripts/serve.py is `streamlit run streamlit_app.py` after a warm-up: the first visitor of any page finds
# its imports, modules, traces and charts ready.
CMD ["python", "scripts/serve.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true", "--server.fileWatcherType=none"]

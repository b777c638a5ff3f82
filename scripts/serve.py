"""Start the app warm: every page rendered once in this process, then the server.

    python scripts/serve.py [options of `streamlit run`, e.g. --server.port 8501 --server.headless true]

Does what `streamlit run streamlit_app.py [options]` does, after convmix.ui.warmup.warm_pages() has
rendered every page once (imports, modules, traces, the pages' cached results and the charts ready),
so that the first visitor of any page does not wait for them. The server starts listening only
once the pages are warm (its health check answers from then on); it prints how long each page took.
`--no-warm` skips the warm-up (then it is `streamlit run`). The Docker image runs this.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    warm = "--no-warm" not in argv
    options = [a for a in argv if a != "--no-warm"]
    if warm:
        from convmix.ui.warmup import (
            keep_compiled_scripts,
            settle_before_serving,
            share_compiled_scripts,
            warm_pages,
        )

        share_compiled_scripts()  # kept: the server's Runtime reads the pages the warm-up compiled
        keep_compiled_scripts()  # and keeps them when its last visitor leaves
        start = time.perf_counter()
        for page in warm_pages():
            note = f" (failed: {page.problem})" if page.problem else ""
            print(f"warmed {page.page} in {page.seconds:.2f} s{note}", file=sys.stderr, flush=True)
        settle_before_serving()
        print(f"warm after {time.perf_counter() - start:.1f} s; starting the server", file=sys.stderr, flush=True)

    from streamlit import config
    from streamlit.web import cli

    if warm and hasattr(config, "_config_options"):
        config._config_options = None  # the warm-up read the configuration: read it afresh, with these options

    sys.argv = ["streamlit", "run", str(ROOT / "streamlit_app.py"), *options]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

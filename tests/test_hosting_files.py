"""Hosting hygiene (items 12 and 13 of issue 11), read from the files Docker and Streamlit read.

Docker itself does not run in this test suite; these are static checks of what it would build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.config import ShowErrorDetailsConfigOptions

from convmix import bias, sweep

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def dockerfile() -> str:
    # Continuation lines joined, comments dropped: one instruction per line.
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if not ln.lstrip().startswith("#")]
    return re.sub(r"\\\n", " ", "\n".join(lines))


def test_base_image_is_pinned():
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile(), re.M)
    assert "@sha256:" in base or re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", base), base


def test_every_installed_package_is_pinned():
    installs = re.findall(r"pip install ([^&\n]+)", dockerfile())
    assert installs
    for command in installs:
        for word in command.split():
            if word.startswith("-") or word.startswith("http"):
                continue
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+]*", word), word
    assert "-r requirements.txt" not in dockerfile()  # its ranges are for pip users, not for the image


def test_code_is_not_writable_by_the_app_user():
    text = dockerfile()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "chown" not in text and "--chown" not in text
    assert re.search(r"chmod -R [^\n]*go-w", text)


def test_secrets_stay_out_of_the_build_context():
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert ".streamlit/secrets.toml" in ignored and "**/secrets.toml" in ignored


def test_tracebacks_never_reach_the_public():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    value = config["client"]["showErrorDetails"]
    # "full" shows messages and tracebacks, "stacktrace" tracebacks; "type" and "none" neither.
    assert value in (ShowErrorDetailsConfigOptions.TYPE, ShowErrorDetailsConfigOptions.NONE)


def test_the_server_upload_limit_covers_the_pages_own_limits():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server_mb = config["server"]["maxUploadSize"]
    assert bias.MAX_UPLOAD_BYTES <= server_mb * 2**20 and sweep.MAX_BYTES <= server_mb * 10**6
    from convmix import checkpoint

    # No more than the largest page needs: checkpoints, read within the memory budget.
    assert server_mb * 2**20 <= 2 * max(bias.MAX_UPLOAD_BYTES, checkpoint.max_file_bytes())

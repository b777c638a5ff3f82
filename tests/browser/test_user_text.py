"""Visitor text is shown as text (item 11 of issue 11): a result file whose name and device_name are
markdown must not put a link or an image on the page, and the browser must fetch nothing for it."""

from __future__ import annotations

import http.server
import threading

import pytest

from convmix import sweep
from convmix.config import ACmixConfig

from .server import free_port, wait_idle

pytestmark = pytest.mark.browser


class _Probe(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Probe.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def probe():
    """A server that records every request: a rendered remote image would be fetched from it."""
    _Probe.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Probe.hits
    server.shutdown()


def result_file(device_name: str) -> bytes:
    configs = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5]}).configs
    rows = {c: {"latency_ms": 1.0 + i, "latency_ms_p25": 0.9 + i, "latency_ms_p75": 1.2 + i, "peak_bytes": 1000,
                "device": "cuda", "device_name": device_name, "dtype": "float32", "torch_version": "2.13.0"}
            for i, c in enumerate(configs)}
    return sweep.to_csv(sweep.sweep_frame(configs, rows))


def test_markdown_in_a_file_name_and_a_device_name_stays_text(page, app_url, probe):
    base, hits = probe
    device = f"![p]({base}/device.png) [here]({base}/link)"
    name = "![q](probe-name.png) **bold** :red[red].csv"  # (a file name cannot hold a '/')
    bad = result_file("x").replace(b"official", b"[v](http://127.0.0.1:1/v)", 1)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(f"{app_url}/explorer")
    wait_idle(page)
    page.get_by_role("tab", name="Latency and memory").click()
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([
        {"name": name, "mimeType": "text/csv", "buffer": result_file(device)},
        {"name": "broken.csv", "mimeType": "text/csv", "buffer": bad},
    ])
    page.get_by_text("2 rows, 2 with latency").first.wait_for(timeout=60_000)
    wait_idle(page)

    main = page.locator("[data-testid='stMain']")
    text = main.inner_text()
    assert name in text and device in text  # shown character for character
    assert "(found [v](http://127.0.0.1…)" in text  # quoted, cut at 20 characters
    assert main.locator("img[src*='device.png'], img[src*='probe-name']").count() == 0
    assert main.locator(f"a[href^='{base}'], a[href*='127.0.0.1:1/v']").count() == 0
    assert main.locator("[data-testid='stException']").count() == 0
    page.wait_for_timeout(1000)
    assert hits == []  # nothing was fetched from the probe
    assert not [url for url in requests if "probe-name" in url or url.startswith(base)]

"""dcgan-serve in a real browser: headless Chromium (Playwright) opens the page, picks an
example, paints a stroke, completes it with a few iterations and sees the result.

Set DCGAN_SERVE_SCREENSHOT=docs/serve.png to keep the page's screenshot (the README's).
"""
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytest.importorskip("starlette", reason="dcgan-serve needs the web extra: pip install '.[web]'")
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason=f"no browser at {CHROMIUM} (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def server():
    """dcgan-serve itself, on a free port: its URL."""
    process = subprocess.Popen([sys.executable, "-m", "dcgan_completion.cli.serve", "--port", "0", "--max-iter", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    match = re.search(r"open (http://\S+) in a browser", line)
    try:
        assert match, f"dcgan-serve did not start: {line!r}"
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1180, "height": 760})
        page.goto(server)
        yield page
        browser.close()


def fetch(page, selector):
    """The image an <img> shows, fetched again from its (absolute) src."""
    response = page.request.get(page.eval_on_selector(selector, "img => img.src"))
    assert response.ok, response.text()
    with Image.open(io.BytesIO(response.body())) as im:
        return np.asarray(im.convert("RGB"))


def test_a_bad_upload_shows_the_servers_message(page):
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"my notes"}])
    status = page.locator("#status.error")
    status.wait_for(timeout=30_000)
    assert status.inner_text().startswith("notes.txt: cannot read image")


def test_paint_a_stroke_complete_and_see_the_result(page):
    page.click('button[data-example="astronaut.png"]')
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('astronaut.png, 64x64')")
    page.wait_for_function("document.querySelector('#photo').naturalWidth === 64")

    # A stroke across the mouth (row 42 of 64), 24 screen pixels wide: about 3 photo pixels.
    box = page.locator("#mask").bounding_box()
    assert box["width"] == box["height"] >= 256  # the 64x64 face is shown large
    y = box["y"] + box["height"] * 42 / 64
    page.mouse.move(box["x"] + box["width"] * 22 / 64, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 42 / 64, y, steps=12)
    page.mouse.up()

    page.fill("#iterations", "40")
    page.click("#complete")
    page.wait_for_function(
        "!document.querySelector('#result').hidden && document.querySelector('#after').naturalWidth > 0"
        " && document.querySelector('#gif').naturalWidth > 0", timeout=120_000)
    status = page.locator("#status").inner_text()
    assert status.startswith("done: 1 face completed"), status

    before = fetch(page, "#before")
    after = fetch(page, "#after")
    np.testing.assert_array_equal(before, np.asarray(Image.open(REPO / "data" / "examples" / "astronaut.png").convert("RGB")))
    changed = (after != before).any(axis=2)
    rows, cols = np.nonzero(changed)
    # Only the painted stroke changed: the mouth's rows and columns, nothing else.
    assert changed.sum() > 20 and rows.min() >= 38 and rows.max() <= 46 and cols.min() >= 18 and cols.max() <= 46
    download = page.get_attribute("#download", "href")
    assert download.endswith("result.png?download=1")

    path = os.environ.get("DCGAN_SERVE_SCREENSHOT")
    if path:
        shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
        shot.convert("RGB").quantize(colors=128).save(path, optimize=True)

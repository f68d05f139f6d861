"""Load on dcgan-serve: many clients at once against a server this script starts on 127.0.0.1.

    python scripts/load_web.py [--clients 20] [--rounds 2] [--iterations 20] [--time-limit 900]
                               [--checkpointDir CKPT]

Each round, every client starts at the same moment, uploads a photo (an example face's
bytes), paints a hole (a mask PNG of its own) and asks for a short search; then, by its
number, it follows the search's events to the end, cancels it mid-search (a search 50
times as long, so that it still runs), or drops its event stream mid-search (and asks the
job's state until it ends); every fourth and fifth client instead sends malformed or
oversized requests. A search refused because the queue
is full (429) counts as refused.

It checks that every accepted search ends done, cancelled or failed; that every refused
request gets a 4xx with one line of JSON; that the server is up and answers the page
afterwards; and that the memory the server holds after the last round is at most 10%
above what the first round left (the photos and results it keeps by design, --keep, are
not growth). Bounded: a fixed number of requests, a timeout on every socket, and
--time-limit for the whole run; the server is stopped at the end however the run went.
Prints a line per round, then the verdict; exits 0 when everything held, 1 when not.
"""
import argparse
import http.client
import io
import json
import random
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
ROLES = ("follow", "cancel", "drop", "malformed", "oversized")
FINISHED = ("done", "cancelled", "failed")
SOCKET_TIMEOUT = 120  # seconds any one read may wait (a search's events come every few seconds)
MAX_UPLOAD_MB, MAX_MEGAPIXELS = 1, 1  # the server's limits here: oversized requests stay small
MEMORY_GROWTH_LIMIT = 0.10
LONG = 50  # a cancelling client asks for LONG times the iterations: still running when it cancels


# ---------------------------------------------------------------- the server


def start_server(checkpoint, max_iter, startup_timeout=300):
    """dcgan-serve on 127.0.0.1, any free port: (process, base URL)."""
    command = [sys.executable, "-m", "dcgan_completion.cli.serve", "--host", "127.0.0.1", "--port", "0",
               "--max-iter", str(max_iter), "--max-upload-mb", str(MAX_UPLOAD_MB),
               "--max-megapixels", str(MAX_MEGAPIXELS)]
    if checkpoint:
        command += ["--checkpointDir", checkpoint]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    line = b""
    deadline = time.monotonic() + startup_timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if selector.select(1.0):
                chunk = process.stdout.read1(1024)
                if not chunk:
                    break
                line += chunk
    match = re.search(rb"open (http://127\.0\.0\.1:\d+/) in a browser", line)
    if not match:
        stop_server(process)
        raise SystemExit(f"load_web: dcgan-serve did not start within {startup_timeout} s: {line!r}")
    return process, match.group(1).decode()


def stop_server(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def resident_mb(pid):
    """The process's resident memory (VmRSS), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


# ---------------------------------------------------------------- HTTP, by hand (no dependency)


class Client:
    """One connection's worth of requests to the server, each with SOCKET_TIMEOUT."""

    def __init__(self, url):
        self.host, self.port = re.match(r"http://([^:/]+):(\d+)/", url).groups()

    def connection(self):
        return http.client.HTTPConnection(self.host, int(self.port), timeout=SOCKET_TIMEOUT)

    def request(self, method, path, body=None, headers=None):
        """(status, parsed JSON or raw bytes) of one request."""
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            kind = response.getheader("content-type", "")
            return response.status, json.loads(data) if kind.startswith("application/json") else data
        finally:
            conn.close()

    def post_form(self, path, fields=(), files=()):
        body, content_type = multipart(fields, files)
        return self.request("POST", path, body, {"Content-Type": content_type})


def multipart(fields=(), files=()):
    """A multipart/form-data body of (name, value) fields and (name, filename, bytes) files."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def events(client, job_id, stop_after=None):
    """Read the job's server-sent events until one that ends it, or until the first event
    named `stop_after` (then the connection is dropped): the event names read."""
    conn = client.connection()
    names = []
    try:
        conn.request("GET", f"/api/jobs/{job_id}/events")
        response = conn.getresponse()
        if response.status != 200:
            return [f"http {response.status}"]
        while True:
            line = response.readline()
            if not line:
                return names + ["(stream ended)"]
            if line.startswith(b"event: "):
                names.append(line[7:].strip().decode())
                if names[-1] in FINISHED or names[-1] == stop_after:
                    return names
    finally:
        conn.close()  # for stop_after: the client goes away mid-search


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- what each client does


class Tally:
    """What the clients saw, shared between their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.refusals = Counter()
        self.problems = []

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] += n

    def refused(self, status, body, what):
        """A request that had to be refused: a 4xx with {"error": one line}."""
        ok = 400 <= status < 500 and isinstance(body, dict) and list(body) == ["error"] and "\n" not in body["error"]
        with self.lock:
            self.refusals[status] += 1
            if not ok:
                self.problems.append(f"{what}: expected a 4xx with one line of JSON, got {status} {body!r:.200}")

    def problem(self, text):
        with self.lock:
            self.problems.append(text)


def search(client, tally, photo, size, iterations, rng):
    """Open the photo, paint a hole, ask for a search: the job's id, or None if refused."""
    status, opened = client.post_form("/api/photos", files=[("photo", "face.png", photo)])
    if status != 201:
        tally.problem(f"opening a photo: {status} {opened!r:.200}")
        return None
    mask = Image.new("L", (size, size), 255)
    left, top = rng.randrange(size // 2), rng.randrange(size // 2)
    ImageDraw.Draw(mask).rectangle([left, top, left + size // 4, top + size // 4], fill=0)
    status, job = client.post_form("/api/jobs", fields=[("photo", opened["id"]), ("n_iter", iterations)],
                                   files=[("mask", "mask.png", png(mask))])
    tally.count("searches asked")
    if status == 202:
        tally.count("accepted")
        return job["id"]
    tally.refused(status, job, "a search refused")
    if status != 429:
        tally.problem(f"a search refused with {status} (not a full queue): {job!r:.200}")
    return None


def wait_until_finished(client, tally, job_id, deadline):
    """Ask the job's state until it ends: its last state."""
    while time.monotonic() < deadline:
        status, job = client.request("GET", f"/api/jobs/{job_id}")
        if status != 200:
            tally.problem(f"job {job_id}: status request gave {status} {job!r:.200}")
            return None
        if job["state"] in FINISHED:
            return job["state"]
        time.sleep(0.2)
    tally.problem(f"job {job_id} had not ended by the time limit")
    return None


def follow(client, tally, job_id, deadline, *, cancel=False, drop=False):
    if cancel:
        names = events(client, job_id, stop_after="progress")
        if names[-1] == "progress":
            status, body = client.request("POST", f"/api/jobs/{job_id}/cancel")
            if status == 409:  # it ended between its last frame and the cancel
                tally.count("cancel came too late")
            elif status != 200:
                tally.problem(f"cancel of job {job_id}: {status} {body!r:.200}")
        names = events(client, job_id) if names[-1] not in FINISHED else names
    elif drop:
        names = events(client, job_id, stop_after="progress")
        if names[-1] == "progress":
            tally.count("streams dropped")
            names.append(wait_until_finished(client, tally, job_id, deadline))
    else:
        names = events(client, job_id)
    outcome = names[-1]
    if outcome in FINISHED:
        tally.count(outcome)
    else:
        tally.problem(f"job {job_id} did not end done, cancelled or failed: events {names}")


def bad_requests(client, tally, photo, role):
    """Malformed or oversized requests, each of which must be refused with a 4xx."""
    size = Image.open(io.BytesIO(photo)).size[0]
    if role == "malformed":
        status, opened = client.post_form("/api/photos", files=[("photo", "face.png", photo)])
        photo_id = opened["id"] if status == 201 else "0123456789abcdef"
        cases = [
            ("a text file as a photo", lambda: client.post_form("/api/photos", files=[("photo", "notes.txt", b"notes")])),
            ("a truncated PNG", lambda: client.post_form("/api/photos", files=[("photo", "cut.png", photo[:len(photo) // 2])])),
            ("a form without a photo", lambda: client.post_form("/api/photos", fields=[("note", "hello")])),
            ("a broken multipart body", lambda: client.request(
                "POST", "/api/photos", b"--x\r\nnot a part", {"Content-Type": "multipart/form-data; boundary=x"})),
            ("a mask of another size", lambda: client.post_form(
                "/api/jobs", fields=[("photo", photo_id)], files=[("mask", "m.png", png(Image.new("L", (size + 3, size))))])),
            ("iterations beyond the limit", lambda: client.post_form(
                "/api/jobs", fields=[("photo", photo_id), ("mask_type", "center"), ("n_iter", "99999999")])),
            ("an unknown job", lambda: client.request("GET", "/api/jobs/0123456789abcdef/events")),
        ]
    else:
        cases = [
            ("an upload over the byte limit", lambda: client.post_form(
                "/api/photos", files=[("photo", "big.png", random.randbytes(MAX_UPLOAD_MB * 1_000_000 + 1000))])),
            ("a photo over the pixel limit", lambda: client.post_form(
                "/api/photos", files=[("photo", "wide.png", png(Image.new("RGB", (2000, 600))))])),
            ("a mask over the byte limit", lambda: client.post_form(
                "/api/jobs", fields=[("photo", "0123456789abcdef")],
                files=[("mask", "m.png", bytes(MAX_UPLOAD_MB * 1_000_000 + 1000))])),
        ]
    for what, send in cases:
        status, body = send()
        tally.refused(status, body, what)
        tally.count("bad requests")


def client_run(number, url, photos, size, iterations, start, tally, deadline):
    role = ROLES[number % len(ROLES)]
    client, rng = Client(url), random.Random(number)
    photo = photos[number % len(photos)]
    start.wait(timeout=60)  # every client at once
    try:
        if role in ("malformed", "oversized"):
            bad_requests(client, tally, photo, role)
            return
        job_id = search(client, tally, photo, size, iterations * (LONG if role == "cancel" else 1), rng)
        if job_id is not None:
            follow(client, tally, job_id, deadline, cancel=role == "cancel", drop=role == "drop")
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        tally.problem(f"client {number} ({role}): {type(e).__name__}: {e}")


def one_round(url, photos, size, clients, iterations, deadline):
    """Run every client once, all at once: (Tally, seconds)."""
    tally, start = Tally(), threading.Barrier(clients)
    threads = [threading.Thread(target=client_run, args=(k, url, photos, size, iterations, start, tally, deadline),
                                daemon=True) for k in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        tally.problem(f"{sum(t.is_alive() for t in threads)} clients were still busy at the time limit")
    return tally, time.monotonic() - began


def describe(k, clients, tally, seconds, memory):
    c = tally.counts
    refusals = ", ".join(f"{status} x{n}" for status, n in sorted(tally.refusals.items())) or "none"
    return (f"round {k}: {clients} clients in {seconds:.1f} s: {c['searches asked']} searches asked, "
            f"{c['accepted']} accepted ({c['done']} done, {c['cancelled']} cancelled, {c['failed']} failed; "
            f"{c['streams dropped']} event streams dropped mid-search), "
            f"{c['bad requests']} bad requests; refused: {refusals}; server memory {memory:.0f} MB")


def example_photos(size):
    """The example faces as PNG bytes, at the model's size."""
    photos = []
    for path in sorted(EXAMPLES.glob("*.png")):
        with Image.open(path) as im:
            photos.append(png(im.convert("RGB").resize((size, size), Image.LANCZOS)))
    return photos


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=20, help="clients at once, each round (default 20)")
    p.add_argument("--rounds", type=int, default=2, help="identical rounds; memory is compared with the first's")
    p.add_argument("--iterations", type=int, default=20, help="iterations of each search (default 20)")
    p.add_argument("--time-limit", type=float, default=900, help="seconds for the whole run (default 900)")
    p.add_argument("--checkpointDir", default=None, help="the server's model (default: the shipped one)")
    args = p.parse_args(argv)
    if args.clients < 1 or args.rounds < 2 or args.iterations < 1:
        p.error("needs --clients >= 1, --rounds >= 2 and --iterations >= 1")

    started = time.monotonic()
    deadline = started + args.time_limit
    process, url = start_server(args.checkpointDir, max_iter=LONG * args.iterations)
    problems, memory = [], []
    try:
        client = Client(url)
        status, config = client.request("GET", "/api/config")
        size = config["size"]
        photos = example_photos(size)
        print(f"dcgan-serve at {url} (pid {process.pid}, {size}x{size} model, started in "
              f"{time.monotonic() - started:.1f} s; memory {resident_mb(process.pid):.0f} MB): {args.clients} clients "
              f"a round, {args.iterations} iterations a search", flush=True)
        for k in range(1, args.rounds + 1):
            tally, seconds = one_round(url, photos, size, args.clients, args.iterations, deadline)
            time.sleep(1.0)  # let the worker settle after the last search
            memory.append(resident_mb(process.pid))
            print(describe(k, args.clients, tally, seconds, memory[-1]), flush=True)
            problems += [f"round {k}: {text}" for text in tally.problems]
            if process.poll() is not None:
                problems.append(f"round {k}: the server exited ({process.returncode})")
                break
        if process.poll() is None:
            page, _ = client.request("GET", "/")
            status, again = client.request("GET", "/api/config")
            if page != 200 or status != 200 or again != config:
                problems.append(f"afterwards the page gave {page} and /api/config {status}")
            growth = memory[-1] / memory[0] - 1
            print(f"afterwards: the page answers ({page}), /api/config too ({status}); memory after round "
                  f"{len(memory)} {memory[-1]:.0f} MB, {growth:+.1%} on round 1's (limit +{MEMORY_GROWTH_LIMIT:.0%})")
            if growth > MEMORY_GROWTH_LIMIT:
                problems.append(f"the server's memory grew {growth:.1%} from round 1 to round {len(memory)}")
    finally:
        stop_server(process)
    if problems:
        print("load_web: FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"load_web: everything held ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One face fast: how long a user waits for one face, before the encoder start and now.

    python scripts/bench_one_face.py [--face data/examples/generated-1.png]
        [--photo ../shared/data/photos/clapton-2.jpg] [--repeats 3] [--precision auto]

Two waits, each for "before" (adam lr 0.01, random start, 1000 iterations, 40 progress
frames on the page) and "now" (the defaults: the encoder's start, DEFAULT_ITERATIONS,
web.jobs.FRAMES frames), best of --repeats, and their ratio:

- the search of one aligned face (`complete`, as dcgan-complete runs it; traced first,
  so TensorFlow's start-up and tracing are not counted: the tool's whole run is timed
  from the shell with /usr/bin/time);
- dcgan-serve: a photo with a hole painted over its face's centre, from the Complete
  request to the done event (the app in this process, its worker thread searching;
  "before" differs from the old page only in Adam's step size, which costs no time).
"""
import argparse
import io
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dcgan_completion.cli import import_tensorflow, load_search_models  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.images import load_image, read_rgb  # noqa: E402
from dcgan_completion.masks import make_mask  # noqa: E402
from dcgan_completion.photos import find_faces  # noqa: E402
from dcgan_completion.web import jobs  # noqa: E402
from dcgan_completion.web.app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEFORE = dict(init="random", lr=0.01, schedule="constant", n_iter=1000)
BEFORE_FRAMES = 40


def search_seconds(face, generator, discriminator, encoder, settings, repeats):
    mask = make_mask("center", face.shape[0])
    complete(face * mask, mask, generator, discriminator, encoder=encoder, **{**settings, "n_iter": 2})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        complete(face * mask, mask, generator, discriminator, encoder=encoder, **settings)
        times.append(time.perf_counter() - start)
    return min(times)


def painted_mask(rgb, size):
    """A PNG of the photo's size, white = keep, black over the centre of its largest face
    (the aligned crop's centre square, mapped back into the photo)."""
    _, matrix = find_faces(rgb, size)[0]
    corners = np.float32([[size / 4, size / 4], [3 * size / 4, size / 4], [3 * size / 4, 3 * size / 4],
                          [size / 4, 3 * size / 4]])
    inverse = cv2.invertAffineTransform(np.float64(matrix))
    polygon = (corners @ inverse[:, :2].T + inverse[:, 2]).round().astype(np.int32)
    keep = np.full(rgb.shape[:2], 255, np.uint8)
    cv2.fillPoly(keep, [polygon], 0)
    png = io.BytesIO()
    Image.fromarray(keep).save(png, "PNG")
    return png.getvalue()


def serve_seconds(photo_path, generator, discriminator, encoder, n_iter, frames, repeats):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    rgb = read_rgb(photo_path)
    mask = painted_mask(rgb, 64)
    jobs.FRAMES, saved = frames, jobs.FRAMES
    times = []
    try:
        with TestClient(create_app(generator, discriminator, encoder=encoder, max_iter=n_iter)) as client:
            photo = client.post("/api/photos", files={"photo": (photo_path.name, photo_path.read_bytes())}).json()["id"]
            for k in range(repeats + 1):  # the first traces the search
                start = time.perf_counter()
                job = client.post("/api/jobs", data={"photo": photo, "n_iter": str(n_iter)},
                                  files={"mask": ("mask.png", mask, "image/png")}).json()["id"]
                while (state := client.get(f"/api/jobs/{job}").json()["state"]) not in jobs.FINISHED:
                    time.sleep(0.01)
                if state != "done":
                    raise SystemExit(f"bench_one_face.py: the search ended {state}")
                if k:
                    times.append(time.perf_counter() - start)
    finally:
        jobs.FRAMES = saved
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--face", type=Path, default=ROOT / "data" / "examples" / "generated-1.png")
    p.add_argument("--photo", type=Path, default=ROOT.parent / "shared" / "data" / "photos" / "clapton-2.jpg")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpointDir", default=None)
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_bfloat16"])
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", "the model has no encoder")  # "before" starts at random on purpose
    generator, discriminator, encoder, precision = load_search_models(args.checkpointDir, args.precision)
    face = load_image(args.face, 64)
    from dcgan_completion.search import DEFAULT_ITERATIONS

    now_iterations = DEFAULT_ITERATIONS["encoder" if encoder is not None else "random"]
    print(f"one face, {precision}; before: random start, adam lr 0.01, 1000 iterations, {BEFORE_FRAMES} frames; "
          f"now: the defaults ({now_iterations} iterations, {jobs.FRAMES} frames); best of {args.repeats}")
    before = search_seconds(face, generator, discriminator, None, BEFORE, args.repeats)
    now = search_seconds(face, generator, discriminator, encoder, {}, args.repeats)
    print(f"search of one aligned face ({args.face.name}): before {before:.2f} s, now {now:.2f} s, "
          f"now/before {now / before:.3f}")
    before = serve_seconds(args.photo, generator, discriminator, None, 1000, BEFORE_FRAMES, args.repeats)
    now = serve_seconds(args.photo, generator, discriminator, encoder, now_iterations, jobs.FRAMES, args.repeats)
    print(f"dcgan-serve, painted {args.photo.name}, Complete to done: before {before:.2f} s, now {now:.2f} s, "
          f"now/before {now / before:.3f}")


if __name__ == "__main__":
    main()

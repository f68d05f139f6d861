"""Time to quality: whole-image PSNR of completions after N iterations, and the seconds
the search took to get there, for today's (2026) search, the original's algorithm and
the new default, on the first N faces of a folder of aligned faces.

    python scripts/bench_time_to_quality.py aligned/test --n 64 --masks center,left,random80,half

The searches (all in one batch of --n faces, each face with its own mask seed as
dcgan-complete gives it; the compiled search traced before the clock starts):

    before    adam lr 0.01, constant rate, random start, 1000 iterations (the default until
              the encoder start)
    original  momentum lr 0.01, constant rate, random start, 1000 iterations (the 2016 toolkit's)
    default   today's defaults: the model's encoder as the start, the approach's own
              schedule and DEFAULT_ITERATIONS["encoder"] iterations

More searches to compare: `--search lr=0.03,schedule=cosine,n_iter=50` (settings over the
defaults, as search.search_options takes them; repeat the flag for more).

Each row: PSNR after each listed iteration (at most the search's own), with the seconds
since the search began in brackets, then the final PSNR pasted and Poisson-blended.
Seconds include the encoder's start and the snapshots' G(z); not TensorFlow's start-up.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_completion.cli import import_tensorflow, load_search_models  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.blending import poisson_blend  # noqa: E402
from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.images import list_images, load_image, to_uint8  # noqa: E402
from dcgan_completion.masks import make_masks  # noqa: E402
from dcgan_completion.metrics import psnr  # noqa: E402
from dcgan_completion.networks import image_size_of  # noqa: E402
from dcgan_completion.search import search_options  # noqa: E402

SEARCHES = {
    "before": dict(approach="adam", lr=0.01, schedule="constant", init="random", n_iter=1000),
    "original": dict(approach="momentum", lr=0.01, schedule="constant", init="random", n_iter=1000),
    "default": dict(),
}
REPORTS = (25, 50, 100, 200, 300, 500, 1000)


def time_to_quality(images, masks, seeds, generator, discriminator, encoder, settings):
    """([(iteration, PSNR, seconds)], PSNR pasted, PSNR blended) of one search."""
    options = search_options(**settings)
    truth = to_uint8(images)
    known = images * masks
    # Trace the compiled search (and the encoder) for this batch size before timing.
    complete(known, masks, generator, discriminator, options, encoder=encoder, n_iter=1, seeds=seeds)
    curve, start = [], None

    def keep(snapshot):
        if snapshot.iteration in REPORTS:
            curve.append((snapshot.iteration, psnr(to_uint8(snapshot.completed), truth).mean(),
                          time.perf_counter() - start))

    start = time.perf_counter()
    result = complete(known, masks, generator, discriminator, options, encoder=encoder, seeds=seeds,
                      out_interval=REPORTS[0], batch_size=len(images), on_snapshot=keep)
    seconds = time.perf_counter() - start
    n_iter = len(result.losses) - 1
    if not curve or curve[-1][0] != n_iter:
        curve.append((n_iter, psnr(to_uint8(result.completed), truth).mean(), seconds))
    blended = psnr(to_uint8(poisson_blend(images, result.generated, masks)), truth).mean()
    return curve, psnr(to_uint8(result.completed), truth).mean(), blended


def parse_search(text):
    """("lr=0.03,n_iter=50", {"lr": 0.03, "n_iter": 50}): numbers as numbers."""
    settings = {}
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        for kind in (int, float, str):
            try:
                settings[key.strip()] = kind(value.strip())
                break
            except ValueError:
                continue
    search_options(**settings)  # a bad setting fails here, before any work
    return text, settings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="aligned faces of the model's size (e.g. the test split)")
    p.add_argument("--n", type=int, default=64, help="how many faces (the first N by name, after --skip)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first SKIP faces (a tuning set apart)")
    p.add_argument("--masks", default="center,left,random80,half")
    p.add_argument("--searches", default=",".join(SEARCHES), help="which of: " + ", ".join(SEARCHES) + " ('' for none)")
    p.add_argument("--search", action="append", default=[], type=parse_search, metavar="KEY=VALUE,...",
                   help="another search: settings over the defaults, e.g. lr=0.03,schedule=cosine,n_iter=50")
    p.add_argument("--checkpointDir", default=None, help="the model (default: the shipped one, with its encoder)")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    searches = [(name, SEARCHES[name]) for name in filter(None, args.searches.split(","))] + args.search
    generator, discriminator, encoder, precision = load_search_models(args.checkpointDir, args.precision)
    if encoder is None and any(s.get("init", "encoder") == "encoder" for _, s in searches):
        sys.exit("bench_time_to_quality.py: the model has no encoder (train-encoder makes one)")
    size = image_size_of(generator)
    files = list_images(args.folder)[args.skip : args.skip + args.n]
    images = np.stack([load_image(f, size) for f in files])
    seeds = np.arange(args.seed, args.seed + len(images))
    print(f"{len(images)} faces from {args.folder} (after {args.skip}), {size}x{size}; model "
          f"{args.checkpointDir or 'shipped'}; {precision}")
    for mask_type in args.masks.split(","):
        masks = make_masks(mask_type, size, seeds)
        for name, settings in searches:
            curve, pasted, blended = time_to_quality(images, masks, seeds, generator, discriminator, encoder, settings)
            points = ", ".join(f"{it}: {value:.2f} ({seconds:.1f} s)" for it, value, seconds in curve)
            print(f"{mask_type:<9} {name:<9} PSNR dB after {points}; final {pasted:.2f}, blended {blended:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()

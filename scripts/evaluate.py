"""Measure completion quality: PSNR (whole image and inside the hole), SSIM and identity
distance per mask type, next to OpenCV's inpainting (Telea, Navier-Stokes) and a
mean-colour fill; or, with --realism, the face realism of a model's samples.

    python scripts/evaluate.py ALIGNED_DIR --n 200 --masks center,random80,left,half
    python scripts/evaluate.py ALIGNED_DIR --checkpointDir checkpoint --blend --weightedContext
    python scripts/evaluate.py ALIGNED_DIR --realism --n 256
    python scripts/evaluate.py ALIGNED_DIR --n 64 --masks center,left --psnr_at 100,200,300,500

Takes the first N images (sorted by name) of a folder of aligned faces of the model's
size, masks each with its own seed (--seed + index, as `dcgan-complete` does), completes them,
and prints one row per mask type and method. The paper's CelebA figures (whole-image
PSNR: center 19.4 dB, random 80% missing 22.8 dB, half 13.7 dB) are the reference.
Identity distance is the mean distance between the dlib face descriptors of each
completion and its original (metrics.identity_distance); "same" is the share of
completions under dlib's 0.6 same-person threshold, "fixed" how many completions dlib's
detector found no face in (they were described in metrics.FIXED_FACE_BOX).

--realism draws N faces G(z), z ~ U(-1, 1) from --seed, and prints the Fréchet distance
of their face descriptors to those of the first N faces of the folder
(metrics.face_realism; 0 = alike, lower is better).
"""
import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dcgan_completion.cli import fail, import_tensorflow, run  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.blending import poisson_blend  # noqa: E402
from dcgan_completion.checkpoints import load_models  # noqa: E402
from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.encoder import load_encoder  # noqa: E402
from dcgan_completion.errors import InputError  # noqa: E402
from dcgan_completion.images import list_images, load_image, to_uint8  # noqa: E402
from dcgan_completion.masks import make_masks, uses_lowres  # noqa: E402
from dcgan_completion.networks import image_size_of, z_dim_of  # noqa: E402
from dcgan_completion.search import INITS, SCHEDULES, default_iterations, search_options  # noqa: E402
from dcgan_completion.metrics import (  # noqa: E402
    face_descriptors, face_realism, identity_distance, psnr, same_person_fraction, ssim)

INPAINT_RADIUS = 3
DEFAULT_N = {"completion": 200, "realism": 256}


def opencv_inpaint(images_u8, masks, method):
    """cv2.inpaint of each image where its mask is 0."""
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    out = []
    for image, mask in zip(images_u8, masks):
        hole = (mask[:, :, 0] < 0.5).astype(np.uint8) * 255
        out.append(cv2.inpaint(image, hole, INPAINT_RADIUS, flag))
    return np.stack(out)


def mean_fill(images_u8, masks):
    """Fill each hole with the mean colour of the image's known pixels."""
    out = images_u8.copy()
    for image, mask in zip(out, masks):
        known = mask[:, :, 0] > 0.5
        image[~known] = image[known].mean(axis=0).round().astype(np.uint8)
    return out


def evaluate(images, truth_descriptors, mask_type, generator, discriminator, encoder, args):
    """Rows (mask, method, whole PSNR, hole PSNR, SSIM, identity distance, share of the same
    person, faces on the fixed box, seconds per image) for one mask type."""
    n, size = len(images), images.shape[1]
    seeds = np.arange(args.seed, args.seed + n)
    masks = make_masks(mask_type, size, seeds, center_scale=args.centerScale)
    truth = to_uint8(images)
    hole = masks < 0.5
    methods = {}

    n_iter = default_iterations(args.init, mask_type) if args.nIter is None else args.nIter
    reports = [it for it in args.psnr_at if it < n_iter]
    by_iteration = {}  # iteration -> the completions as they stood then

    def keep(snapshot):
        if snapshot.iteration in reports:
            by_iteration.setdefault(snapshot.iteration, np.empty_like(images))[snapshot.indices] = snapshot.completed

    start = time.perf_counter()
    result = complete(
        images * masks, masks, generator, discriminator, approach=args.approach, n_iter=n_iter,
        init=args.init, schedule=args.schedule, encoder=encoder,
        lam=args.lam, lr=args.lr, lowres=uses_lowres(mask_type), weighted_context=args.weightedContext,
        seeds=seeds, batch_size=args.batch_size, out_interval=math.gcd(n_iter, *reports) or 1,
        on_snapshot=keep if reports else None, progress=args.progress,
    )
    curve = {it: psnr(to_uint8(by_iteration[it]), truth).mean() for it in reports}
    curve[n_iter] = psnr(to_uint8(result.completed), truth).mean()
    name = "dcgan" + ("+wctx" if args.weightedContext else "")
    methods[name] = (to_uint8(result.completed), time.perf_counter() - start)
    if args.blend:  # the same search, its fill Poisson-blended into the known pixels
        start = time.perf_counter()
        blended = poisson_blend(images, result.generated, masks)
        methods[name + "+blend"] = (to_uint8(blended), methods[name][1] + time.perf_counter() - start)

    if hole.any() and not uses_lowres(mask_type):
        masked_u8 = to_uint8(images * masks + (masks - 1))  # holes black, as cv2 sees them
        for name, fill in (("telea", lambda: opencv_inpaint(masked_u8, masks, "telea")),
                           ("navier-stokes", lambda: opencv_inpaint(masked_u8, masks, "ns")),
                           ("mean colour", lambda: mean_fill(masked_u8, masks))):
            start = time.perf_counter()
            methods[name] = (fill(), time.perf_counter() - start)

    rows = []
    for name, (out, seconds) in methods.items():
        hole_psnr = psnr(out, truth, hole) if hole.any() else np.full(n, np.nan)
        descriptors, fixed = face_descriptors(out, return_fixed_box=True, progress=args.progress)
        distances = identity_distance(descriptors, truth_descriptors, per_image=True)
        rows.append((mask_type, name, psnr(out, truth).mean(), np.nanmean(hole_psnr), ssim(out, truth).mean(),
                     distances.mean(), same_person_fraction(distances), fixed.sum(), seconds / n))
    return rows, curve


def sample_faces(generator, n, seed, batch_size):
    """n faces G(z), z ~ U(-1, 1) drawn from `seed`, batch-norm in inference mode: float32 [-1, 1]."""
    z = np.random.default_rng(seed).uniform(-1, 1, (n, z_dim_of(generator))).astype(np.float32)
    return np.concatenate([np.asarray(generator(z[i : i + batch_size], training=False), np.float32)
                           for i in range(0, n, batch_size)])


def realism(args):
    """Print the face realism of N samples of the model against the first N faces of the folder."""
    generator, _ = load_models(args.checkpointDir, dtype=args.precision)
    size = image_size_of(generator)
    real = load_faces(args.folder, args.n, size)
    if len(real) < 2:
        raise InputError(f"{args.folder} holds {len(real)} image: face realism needs at least 2")
    samples = sample_faces(generator, len(real), args.seed, args.batch_size)
    print(f"face realism: {len(samples)} samples of model {args.checkpointDir or 'shipped'} (seed {args.seed}, "
          f"{args.precision}) vs the first {len(real)} faces of {args.folder}, {size}x{size}")
    sample_descriptors, sample_fixed = face_descriptors(samples, return_fixed_box=True, progress=args.progress)
    real_descriptors, real_fixed = face_descriptors(real, return_fixed_box=True, progress=args.progress)
    print(f"no face detected (fixed box): samples {sample_fixed.sum()}/{len(samples)}, "
          f"real {real_fixed.sum()}/{len(real)}")
    print(f"face realism (Fréchet distance of dlib face descriptors, lower is better): "
          f"{face_realism(sample_descriptors, real_descriptors):.4f}")


def load_faces(folder, n, size):
    """The first n images of `folder` (by name) at size x size, float32 [-1, 1]."""
    return np.stack([load_image(f, size) for f in list_images(folder)[:n]])


def completion_quality(args):
    """Print one row per mask type and method."""
    generator, discriminator = load_models(args.checkpointDir, dtype=args.precision)
    encoder = load_encoder(args.checkpointDir, dtype=args.precision) if args.init == "encoder" else None
    if args.init == "encoder" and encoder is None:
        raise InputError(f"model {args.checkpointDir or 'shipped'} has no encoder: pass --init random")
    size = image_size_of(generator)
    images = load_faces(args.folder, args.n, size)
    options = search_options(approach=args.approach, schedule=args.schedule, lr=args.lr)
    print(f"{len(images)} images from {args.folder}, {size}x{size}; model {args.checkpointDir or 'shipped'}; "
          f"{args.approach} (lr {args.lr or options.values()['lr']:g}, {options.search_schedule}), {args.init} start, "
          f"{args.nIter or 'default'} iterations, lam {args.lam}, {args.precision}")
    truth_descriptors = face_descriptors(images, progress=args.progress)
    header = (f"{'mask':<10} {'method':<24} {'PSNR dB':>8} {'hole dB':>8} {'SSIM':>6} {'ID dist':>7} {'same':>5} "
              f"{'fixed':>5} {'s/image':>8}")
    print(header)
    print("-" * len(header))
    for mask_type in args.masks.split(","):
        rows, curve = evaluate(images, truth_descriptors, mask_type, generator, discriminator, encoder, args)
        for mask, method, whole, inside, s, distance, same, fixed, seconds in rows:
            print(f"{mask:<10} {method:<24} {whole:8.2f} {inside:8.2f} {s:6.3f} {distance:7.3f} {same:5.0%} "
                  f"{fixed:5d} {seconds:8.4f}")
        if len(curve) > 1:
            print(f"{mask_type:<10} PSNR dB after " + ", ".join(f"{it}: {value:.2f}" for it, value in curve.items())
                  + " iterations")
        sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="aligned faces of the model's size (e.g. the test split)")
    p.add_argument("--n", type=int, default=None,
                   help="how many images (the first N by name; default 200, with --realism 256)")
    p.add_argument("--realism", action="store_true",
                   help="score N samples of the model against N faces of the folder by face realism instead")
    p.add_argument("--masks", default="center,random80,left,half", help="comma-separated mask types")
    p.add_argument("--checkpointDir", default=None, help="model to evaluate (default: the shipped face model)")
    p.add_argument("--approach", default="adam")
    p.add_argument("--init", choices=INITS, default="encoder", help="where the search starts (encoder or random)")
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help="the step size's schedule (default: the approach's)")
    p.add_argument("--nIter", type=int, default=None,
                   help="iterations (default: the start's and mask type's, search.default_iterations)")
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--centerScale", type=float, default=0.25)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--blend", action="store_true", help="also report the same completions Poisson-blended into the known pixels")
    p.add_argument("--weightedContext", action="store_true", help="the paper's weighted context loss")
    p.add_argument("--progress", action="store_true", help="show a progress bar per mask type")
    p.add_argument("--psnr_at", type=lambda text: sorted({int(it) for it in text.split(",")}), default=[],
                   help="also print the whole-image PSNR after these iterations of the same search, e.g. 100,200,500")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.n is None:
        args.n = DEFAULT_N["realism" if args.realism else "completion"]
    if args.n < 1:
        fail("evaluate.py", f"--n must be 1 or more, got {args.n}")
    run("evaluate.py", realism if args.realism else completion_quality, args)


if __name__ == "__main__":
    main()

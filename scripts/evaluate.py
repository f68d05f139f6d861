"""Measure completion quality: PSNR (whole image and inside the hole) and SSIM per mask
type, next to OpenCV's inpainting (Telea, Navier-Stokes) and a mean-colour fill.

    python scripts/evaluate.py ALIGNED_DIR --n 200 --masks center,random80,left,half
    python scripts/evaluate.py ALIGNED_DIR --checkpointDir checkpoint --blend --weightedContext

Takes the first N images (sorted by name) of a folder of aligned faces of the model's
size, masks each with its own seed (--seed + index, as `dcgan-complete` does), completes them,
and prints one row per mask type and method. The paper's CelebA figures (whole-image
PSNR: center 19.4 dB, random 80% missing 22.8 dB, half 13.7 dB) are the reference.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dcgan_completion.cli import import_tensorflow  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.blending import poisson_blend  # noqa: E402
from dcgan_completion.checkpoints import load_models  # noqa: E402
from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.images import list_images, load_image, to_uint8  # noqa: E402
from dcgan_completion.masks import make_masks, uses_lowres  # noqa: E402

INPAINT_RADIUS = 3


def psnr(a, b, where=None):
    """PSNR in dB of uint8 images a and b [N, H, W, 3], per image, over `where` (bool) or all."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is None:
        mse = err.reshape(len(a), -1).mean(1)
    else:
        mse = (err * where).reshape(len(a), -1).sum(1) / np.maximum(where.reshape(len(a), -1).sum(1), 1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a, b):
    return tf.image.ssim(tf.constant(a), tf.constant(b), max_val=255).numpy()


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


def evaluate(images, mask_type, generator, discriminator, args):
    """Rows (method, whole PSNR, hole PSNR, SSIM, seconds per image) for one mask type."""
    n, size = len(images), images.shape[1]
    seeds = np.arange(args.seed, args.seed + n)
    masks = make_masks(mask_type, size, seeds, center_scale=args.centerScale)
    truth = to_uint8(images)
    hole = masks < 0.5
    methods = {}

    start = time.perf_counter()
    result = complete(
        images * masks, masks, generator, discriminator, approach=args.approach, n_iter=args.nIter,
        lam=args.lam, lr=args.lr, lowres=uses_lowres(mask_type), weighted_context=args.weightedContext,
        seeds=seeds, batch_size=args.batch_size, out_interval=max(args.nIter, 1), progress=args.progress,
    )
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
        rows.append((mask_type, name, psnr(out, truth).mean(), np.nanmean(hole_psnr),
                     ssim(out, truth).mean(), seconds / n))
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="aligned faces of the model's size (e.g. the test split)")
    p.add_argument("--n", type=int, default=200, help="how many images (the first N by name; default 200)")
    p.add_argument("--masks", default="center,random80,left,half", help="comma-separated mask types")
    p.add_argument("--checkpointDir", default=None, help="model to evaluate (default: the shipped face model)")
    p.add_argument("--approach", default="adam")
    p.add_argument("--nIter", type=int, default=1000)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--centerScale", type=float, default=0.25)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--blend", action="store_true", help="also report the same completions Poisson-blended into the known pixels")
    p.add_argument("--weightedContext", action="store_true", help="the paper's weighted context loss")
    p.add_argument("--progress", action="store_true", help="show a progress bar per mask type")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    generator, discriminator = load_models(args.checkpointDir, dtype=args.precision)
    size = generator.output_shape[1]
    files = list_images(args.folder)[: args.n]
    images = np.stack([load_image(f, size) for f in files])
    print(f"{len(images)} images from {args.folder}, {size}x{size}; model {args.checkpointDir or 'shipped'}; "
          f"{args.approach}, {args.nIter} iterations, lam {args.lam}, {args.precision}")
    header = f"{'mask':<10} {'method':<24} {'PSNR dB':>8} {'hole dB':>8} {'SSIM':>6} {'s/image':>8}"
    print(header)
    print("-" * len(header))
    for mask_type in args.masks.split(","):
        for mask, method, whole, inside, s, seconds in evaluate(images, mask_type, generator, discriminator, args):
            print(f"{mask:<10} {method:<24} {whole:8.2f} {inside:8.2f} {s:6.3f} {seconds:8.4f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

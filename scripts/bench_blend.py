"""Measure Poisson blending: CG iterations, accuracy against a dense NumPy solve, speed,
and OpenCV's seamlessClone on the same masks.

    python scripts/bench_blend.py [--batch 64] [--size 64]

Accuracy is the max |x - x_exact| over hole pixels in grey levels (1 level = 2/255),
x_exact from numpy.linalg.solve of the same discrete Poisson system in float64.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan_completion.blending import RTOL, poisson_blend, poisson_blend_tensors  # noqa: E402

GREY = 2 / 255
NOISE = 0.05


def masks_of_the_original(size, rng):
    """The original's mask types (1 = known), as [H, W, 1]."""
    masks = {}
    m = np.ones((size, size)); lo, hi = int(size * 0.25), int(size * 0.75); m[lo:hi, lo:hi] = 0
    masks["center"] = m
    m = np.ones((size, size)); m[:, : size // 2] = 0
    masks["left"] = m
    masks["random"] = (rng.random((size, size)) >= 0.2).astype(float)
    m = np.zeros((size, size)); m[::4, ::4] = 1
    masks["grid"] = m
    return {k: v[..., None] for k, v in masks.items()}


def dense_reference(image, generated, mask):
    """x on the hole by numpy.linalg.solve of the graph-Laplacian Poisson system (float64)."""
    h, w, c = image.shape
    hole = mask[..., 0] == 0
    index = -np.ones((h, w), int)
    index[hole] = np.arange(hole.sum())
    n = hole.sum()
    a = np.zeros((n, n))
    b = np.zeros((n, c))
    for (i, j), k in zip(zip(*np.nonzero(hole)), index[hole]):
        for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            p, q = i + di, j + dj
            if not (0 <= p < h and 0 <= q < w):
                continue
            a[k, k] += 1
            b[k] += generated[i, j] - generated[p, q]
            if hole[p, q]:
                a[k, index[p, q]] -= 1
            else:
                b[k] += image[p, q]
    x = image.astype(np.float64).copy()
    x[hole] = np.linalg.solve(a, b)
    return x


def smooth_pair(size, rng):
    """A smooth image and a G(z) with a different smooth colour field on top."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([np.sin(3 * xx + 1), np.cos(2 * yy), xx * yy * 2 - 1], -1) * 0.8
    generated = image + 0.3 * np.stack([np.cos(4 * yy), xx - 0.5, np.sin(5 * xx * yy)], -1)
    generated = generated + NOISE * rng.standard_normal(generated.shape)
    return image.astype(np.float32), generated.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    size = args.size
    image, generated = smooth_pair(size, rng)
    masks = masks_of_the_original(size, rng)

    print(f"CG (float32, rtol {RTOL:g}) on one {size}x{size} image, against numpy.linalg.solve:")
    for name, mask in masks.items():
        _, iterations = poisson_blend_tensors(
            tf.constant(image[None]), tf.constant(generated[None]), tf.constant(mask[None], tf.float32),
            tf.constant(RTOL, tf.float32), tf.constant(size * size))
        x = poisson_blend(image, generated, mask)
        exact = dense_reference(image, generated, mask)
        err = np.abs(x - exact).max() / GREY
        print(f"  {name:7s} {int((mask == 0).sum()):5d} hole px  {int(iterations):4d} iterations  "
              f"max error {err:.2e} grey levels")

    print(f"\nSpeed, batch of {args.batch} {size}x{size} images, same mask for all:")
    batch_images = np.repeat(image[None], args.batch, 0)
    batch_generated = np.repeat(generated[None], args.batch, 0)
    for name in ("center", "left"):
        poisson_blend(batch_images, batch_generated, masks[name])  # trace
        t = time.perf_counter()
        poisson_blend(batch_images, batch_generated, masks[name])
        cg = time.perf_counter() - t
        print(f"  {name:7s} CG {cg * 1000:7.1f} ms")

    try:
        import cv2
    except ImportError:
        return
    print("\nOpenCV seamlessClone (NORMAL_CLONE, uint8), destination = the pasted composite, known "
          "pixels restored afterwards; error against the exact solution in grey levels:")
    to8 = lambda a: np.clip(np.rint((a + 1) * 127.5), 0, 255).astype(np.uint8)  # noqa: E731
    for name, mask in masks.items():
        hole = mask[..., 0] == 0
        exact = to8(dense_reference(image, generated, mask)).astype(int)
        pasted = to8(np.where(mask == 1, image, generated))
        line = f"  {name:7s} pasting: mean {np.abs(pasted - exact)[hole].mean():5.2f}"
        for grow in (0, 5):
            # seamlessClone takes its boundary from the destination just inside the mask,
            # so the mask is grown onto known pixels to give it the true boundary.
            region = hole.astype(np.uint8) * 255
            if grow:
                region = cv2.dilate(region, np.ones((2 * grow + 1,) * 2, np.uint8))
            ys, xs = np.nonzero(region)
            center = ((int(xs.min()) + int(xs.max()) + 1) // 2, (int(ys.min()) + int(ys.max()) + 1) // 2)
            t = time.perf_counter()
            out = cv2.seamlessClone(to8(generated), pasted, region, center, cv2.NORMAL_CLONE)
            ms = (time.perf_counter() - t) * 1000
            changed = int((out != pasted)[~hole].any(-1).sum())
            err = np.abs(np.where(mask == 1, pasted, out) - exact)[hole]
            line += (f" | mask grown {grow}: mean {err.mean():5.2f} max {err.max():3d}, "
                     f"{changed:4d} known px changed, {ms:4.1f} ms")
        print(line)

if __name__ == "__main__":
    main()

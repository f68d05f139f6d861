"""Poisson blending of a generated fill into the known pixels (Yeh et al., "What the paper adds").

The blended image x keeps every known pixel y_i and, inside the hole, minimises
sum |grad x - grad G(z)|^2 over the grid edges that touch the hole. Its normal equations
are the discrete Poisson equation on every hole pixel i,

    sum_{j in N(i)} (x_i - x_j) = sum_{j in N(i)} (g_i - g_j),

where N(i) are i's 4-neighbours *inside the image*: a hole touching the image border
simply has fewer neighbours there (the graph Laplacian of the pixel grid, i.e. a
Neumann condition on the image border, Dirichlet on the known pixels).

Writing x = g + d, the correction d is harmonic in the hole with d = y - g on the known
pixels: the fill is G(z) shifted smoothly onto the context. Each (image, channel) is one
symmetric positive definite system (every hole region borders a known pixel unless the
mask keeps nothing, in which case there is no boundary and G(z) is returned unchanged).
All of them are solved together by a matrix-free conjugate gradient in TensorFlow, the
Laplacian applied by shifted slices, so the same code runs batched on a GPU.

OpenCV's seamlessClone was measured and rejected (scripts/bench_blend.py): it is uint8
only, changes known pixels, and takes its boundary from the destination's pixels on the
rectangle around the mask, so holes touching the image border are solved against the
very pixels being replaced.
"""
import numpy as np
import tensorflow as tf

from .errors import InputError

# CG stops when |r| <= RTOL * |b| per system. In float32 the fill is then within 3e-4 grey
# levels of a dense float64 solve for the original's 64x64 masks (scripts/bench_blend.py).
RTOL = 1e-6


def poisson_blend(images, generated, masks, rtol=RTOL, max_iter=None):
    """Blend `generated` (G(z)) into `images` (y) inside the holes of `masks`.

    images, generated: [N, H, W, C] (or one [H, W, C] image) floats in [-1, 1].
    masks: [N, H, W, 1 or C], 1 = known pixel, 0 = to fill; a single [H, W, 1 or C] mask
    is used for every image of the batch. A [..., 1] mask applies to every channel.

    Returns a NumPy array shaped and typed like `images`: known pixels are the input's
    bit for bit, hole pixels solve the Poisson equation above (not clipped to [-1, 1]:
    to_uint8 clips when saving). An image whose mask keeps no pixel gets G(z) unchanged.
    """
    images, generated, masks, single = _validate(images, generated, masks)
    compute_dtype = tf.float64 if images.dtype == np.float64 else tf.float32
    if max_iter is None:
        # Exact arithmetic needs at most one step per unknown; the tolerance stops far earlier.
        max_iter = images.shape[1] * images.shape[2]
    blended, _ = poisson_blend_tensors(
        tf.constant(images, compute_dtype), tf.constant(generated, compute_dtype),
        tf.constant(masks, compute_dtype), tf.constant(rtol, compute_dtype), tf.constant(max_iter))
    known = np.broadcast_to(masks, images.shape) == 1
    out = np.where(known, images, np.asarray(blended).astype(images.dtype))
    return out[0] if single else out


@tf.function(reduce_retracing=True)
def poisson_blend_tensors(images, generated, masks, rtol, max_iter):
    """The TensorFlow core of `poisson_blend` on [N, H, W, C] tensors of one float dtype.

    masks: [N, H, W, 1 or C] of exact 0/1. Returns (blended, iterations): the blended batch
    (known pixels are images' values) and how many CG steps the slowest system took.
    No validation here: call `poisson_blend` unless the data stay on the device.
    """
    hole = tf.broadcast_to(1 - masks, tf.shape(images))
    known = 1 - hole
    shape = tf.shape(images)
    degree = _neighbour_sum(tf.ones([1, shape[1], shape[2], 1], images.dtype))

    def apply_a(u):
        # The Laplacian restricted to the hole (u is zero off the hole by construction).
        return hole * (degree * u - _neighbour_sum(u))

    # Moving the known neighbours' d = y - g to the right-hand side.
    b = hole * _neighbour_sum(known * (images - generated))
    gamma = _dot(b, b)
    threshold = rtol**2 * gamma
    d = tf.zeros_like(b)
    state = (tf.constant(0), d, b, b, gamma, gamma > threshold)

    def keep_going(i, d, r, p, gamma, active):
        return tf.logical_and(i < max_iter, tf.reduce_any(active))

    def cg_step(i, d, r, p, gamma, active):
        ap = apply_a(p)
        p_ap = _dot(p, ap)
        # Converged systems (and those with nothing to solve) are frozen, so their
        # zero denominators never turn into NaN.
        alpha = tf.where(active, gamma / tf.where(p_ap > 0, p_ap, 1), 0)
        d = d + alpha * p
        r = r - alpha * ap
        new_gamma = _dot(r, r)
        beta = tf.where(active, new_gamma / tf.where(gamma > 0, gamma, 1), 0)
        p = r + beta * p
        return i + 1, d, r, p, new_gamma, tf.logical_and(active, new_gamma > threshold)

    iterations, d, *_ = tf.while_loop(keep_going, cg_step, state)
    blended = known * images + hole * (generated + d)
    return blended, iterations


def _neighbour_sum(u):
    """Sum of each pixel's 4-neighbours inside the image (missing ones count as absent)."""
    padded = tf.pad(u, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def _dot(a, b):
    """Per (image, channel) inner product over the pixels: [N, 1, 1, C]."""
    return tf.reduce_sum(a * b, axis=[1, 2], keepdims=True)


def _validate(images, generated, masks):
    images = np.asarray(images)
    generated = np.asarray(generated)
    masks = np.asarray(masks)
    if images.dtype.kind != "f":
        raise InputError(f"images must be floats in [-1, 1], got dtype {images.dtype}: convert with images.to_float")
    if images.shape != generated.shape:
        raise InputError(f"images {images.shape} and generated {generated.shape} must have the same shape")
    if images.ndim not in (3, 4):
        raise InputError(f"images must be [N, H, W, C] or [H, W, C], got shape {images.shape}")
    single = images.ndim == 3
    if single:
        images, generated = images[None], generated[None]
        if masks.ndim == 3:
            masks = masks[None]
    elif masks.ndim == 3:
        masks = np.broadcast_to(masks[None], (images.shape[0],) + masks.shape)
    n, h, w, c = images.shape
    if masks.ndim != 4 or masks.shape[:3] != (n, h, w) or masks.shape[3] not in (1, c):
        raise InputError(f"masks must be [N, H, W, 1 or {c}] (or one [H, W, 1 or {c}] mask) matching images "
                         f"{images.shape}, got shape {masks.shape}")
    if not np.all((masks == 0) | (masks == 1)):
        raise InputError("masks must hold only 1 (known pixel) and 0 (to fill)")
    return images, generated.astype(images.dtype, copy=False), masks.astype(images.dtype), single

"""Semantic image completion: search the generator's latent space for the z whose G(z)
matches the known pixels of an image and looks real to the discriminator, then fill the
hole with G(z) ("Completion" in docs/original.md).

    result = complete(images, masks, generator, discriminator, n_iter=1000)
    result.completed  # [N, H, W, 3], known pixels exactly the input's

The search runs as compiled TensorFlow code: `out_interval` iterations per call inside a
loop on the device, with z, images and masks kept as tensors; only the periodic
snapshots come back to the host.

Loss of image i, with per-pixel context weights W (the mask M, or the paper's weighted
context) and D's logit l_i of G(z_i):

    loss_i = sum |W * (G(z_i) - y_i)|  [+ sum |blocks(G(z_i)) - blocks(y_i)|, lowres mask]
             + lam * softplus(-l_i)

Each image's loss depends only on its own z, so the search of an image never depends on
the other images of the batch. `lam` keeps the original's meaning: the original's loss
vector was contextual_i + lam * mean_j(perceptual_j), and tf.gradients differentiates
the SUM over the batch, so image i's perceptual gradient was B * lam / B = lam times its
own, whatever the batch size B. (Only the logged loss values held the batch mean.)
"""
import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .blending import poisson_blend
from .errors import InputError, ignore_sigint
from .masks import LOWRES_BLOCK, check_masks, weighted_context as weighted_context_of

APPROACHES = ("adam", "momentum", "hmc")
# Measured (README, "complete"): adam completes as well as momentum at its best step,
# and its step does not depend on the size of the gradient, which grows with the number
# of known pixels.
DEFAULT_APPROACH = "adam"
# The loss sums over pixels, so its gradient is ~100 per coordinate of z on faces: the
# original's lr 0.01 sends momentum from wall to wall of [-1, 1] (3 dB worse on the center
# mask); 1e-4 completes as adam does.
DEFAULT_LR = {"adam": 0.01, "momentum": 1e-4}

# Hyperparameters travel into the compiled search as one float vector, so that new
# values do not retrace it.
_HPARAMS = ("lr", "momentum", "beta1", "beta2", "eps", "lam", "hmc_beta", "hmc_eps", "hmc_anneal")


@dataclass
class Snapshot:
    """The state of one batch at iteration `iteration`, handed to `on_snapshot`.

    `indices` are the images' positions in the input. `log_iterations`, `log_losses`
    [k, B] and `log_z` [k, B, z_dim] hold every iteration's (loss, z) not handed out
    before, ending with this one.
    """

    batch: int
    indices: np.ndarray
    iteration: int
    z: np.ndarray
    generated: np.ndarray
    completed: np.ndarray
    loss: np.ndarray
    log_iterations: np.ndarray
    log_losses: np.ndarray
    log_z: np.ndarray


@dataclass
class CompletionResult:
    completed: np.ndarray  # [N, H, W, 3]: the input where the mask keeps it, G(z) elsewhere
    generated: np.ndarray  # [N, H, W, 3]: G(z) at the last iteration
    z: np.ndarray  # [N, z_dim]
    losses: np.ndarray  # [n_iter + 1, N]: each image's loss before each iteration, and at the end


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `complete`: `result` holds every image's state when it came (its
    completed image from the z reached so far; the starting z for a batch not begun;
    losses not reached are NaN) and `iterations` [N] how far each image's search got."""

    def __init__(self, result, iterations, n_iter):
        if iterations.min() == iterations.max():
            where = f"at iteration {int(iterations[0])} of {n_iter}"
        else:
            where = (f"with {int((iterations == n_iter).sum())} of {len(iterations)} images done, the others at "
                     f"iteration {int(iterations[iterations < n_iter].max())} of {n_iter} or before")
        super().__init__(where)
        self.result, self.iterations, self.n_iter = result, iterations, n_iter


def complete(
    images,
    masks,
    generator,
    discriminator,
    *,
    approach=DEFAULT_APPROACH,
    n_iter=1000,
    lam=0.1,
    lr=None,
    momentum=0.9,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    hmc_beta=0.2,
    hmc_eps=0.001,
    hmc_l=100,
    hmc_anneal=1.0,
    lowres=False,
    weighted_context=False,
    context_weights=None,
    blend=False,
    seeds=None,
    seed=0,
    batch_size=64,
    out_interval=50,
    on_snapshot=None,
    progress=False,
):
    """Complete `images` [N, H, W, 3] in [-1, 1] where `masks` (1 = known; [N, H, W, 3],
    or one [H, W, 3] for all) is 0.

    approach: "adam", "momentum" or "hmc" (z clipped to [-1, 1] after every step).
    lr: None = DEFAULT_LR[approach] (hmc has none). lam: per-image weight of the perceptual loss.
    lowres: add the context term on LOWRES_BLOCK-pixel block means (the lowres mask).
    weighted_context: weight known pixels by the paper's 7x7 weights instead of the mask;
    context_weights [N, H, W, 3] overrides both with any per-pixel weight map.
    blend: fill the hole with G(z) Poisson-blended into the known pixels (the paper's
    last step; blending.poisson_blend) instead of pasting it.
    seeds: one integer per image (default seed + index); an image's starting z and HMC
    noise come from its seed alone. Images go in batches of `batch_size`, the last one
    smaller (not padded). `on_snapshot(Snapshot)` is called at iteration 0, every
    `out_interval` iterations and at the end.
    """
    if approach not in APPROACHES:
        raise InputError(f"unknown approach {approach!r}: choose one of {', '.join(APPROACHES)}")
    images, masks = _check_images_and_masks(images, masks, generator)
    n = len(images)
    check_masks(masks, lowres=lowres)
    if context_weights is None:
        context_weights = weighted_context_of(masks) if weighted_context else masks
    context_weights = np.broadcast_to(np.asarray(context_weights, np.float32), images.shape)
    seeds = np.arange(seed, seed + n, dtype=np.int64) if seeds is None else np.asarray(seeds, np.int64)
    if seeds.shape != (n,):
        raise InputError(f"give one seed per image: {n} images, {seeds.size} seeds")
    lr = DEFAULT_LR.get(approach, 0.0) if lr is None else lr  # hmc takes no lr
    hparams = _check_hparams(
        n_iter, batch_size, out_interval, hmc_l,
        dict(lr=lr, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps, lam=lam,
             hmc_beta=hmc_beta, hmc_eps=hmc_eps, hmc_anneal=hmc_anneal),
    )
    search = _search(generator, discriminator, approach)
    hmc_steps = tf.constant(hmc_l, tf.int32)

    results = CompletionResult(
        completed=np.empty_like(images), generated=np.empty_like(images),
        z=np.empty((n, _z_dim(generator)), np.float32), losses=np.full((n_iter + 1, n), np.nan, np.float32),
    )
    reached = np.zeros(n, np.int64)  # iterations done, per image
    finished = np.zeros(n, bool)  # results in
    bar = _progress_bar(n_iter * -(-n // batch_size), progress)
    try:
        _search_batches(search, results, reached, finished, images, masks, context_weights, seeds, lowres, blend,
                        hparams, hmc_steps, n_iter, batch_size, out_interval, on_snapshot, bar, _z_dim(generator))
    except KeyboardInterrupt:
        restore_sigint = ignore_sigint()  # a second Ctrl-C would break off saving the state
        try:
            if bar is not None:
                bar.close()
            _fill_unfinished(search, results, finished, images, masks, context_weights, lowres, blend, hparams,
                             batch_size)
        finally:
            restore_sigint()
        raise Interrupted(results, reached, n_iter) from None
    finally:
        if bar is not None:
            bar.close()
    return results


def _search_batches(search, results, reached, finished, images, masks, context_weights, seeds, lowres, blend,
                    hparams, hmc_steps, n_iter, batch_size, out_interval, on_snapshot, bar, z_dim):
    n = len(images)
    for b, lo in enumerate(range(0, n, batch_size)):
        idx = np.arange(lo, min(lo + batch_size, n))
        y = tf.constant(images[idx])
        w = tf.constant(context_weights[idx])
        lw = tf.fill([len(idx)], 1.0 if lowres else 0.0)
        s = tf.constant(seeds[idx])
        z = initial_z(s, z_dim)
        results.z[idx] = z.numpy()
        state = (tf.zeros_like(z), tf.zeros_like(z))
        log = []  # (iterations, losses, z) not yet handed to on_snapshot
        done = 0
        for it in sorted(set(range(0, n_iter, out_interval)) | {n_iter}):
            if it > done:
                z, s1, s2, chunk_losses, chunk_z = search.run(
                    z, *state, y, w, lw, s, hparams, hmc_steps,
                    tf.constant(done, tf.int64), tf.constant(it - done, tf.int32))
                results.z[idx], reached[idx] = z.numpy(), it  # where Ctrl-C would leave this batch
                state = (s1, s2)
                _log_chunk(log, results, idx, done, chunk_losses, chunk_z, bar)
                done = it
            if on_snapshot is not None or it == n_iter:
                loss, generated = search.evaluate(z, y, w, lw, hparams)
                _snapshot(on_snapshot, log, results, b, idx, it, z, loss, generated, images, masks, blend)
        finished[idx] = True


def _fill_unfinished(search, results, finished, images, masks, context_weights, lowres, blend, hparams,
                     batch_size):
    """After Ctrl-C: every unfinished image's generated and completed image from the z it
    has reached (the starting z of a batch not begun)."""
    for lo in range(0, len(images), batch_size):
        idx = np.arange(lo, min(lo + batch_size, len(images)))
        if finished[idx].all():
            continue
        y, w = tf.constant(images[idx]), tf.constant(context_weights[idx])
        lw = tf.fill([len(idx)], 1.0 if lowres else 0.0)
        _, generated = search.evaluate(tf.constant(results.z[idx]), y, w, lw, hparams)
        generated = generated.numpy()
        results.generated[idx] = generated
        results.completed[idx] = _fill(images[idx], generated, masks[idx], blend)


def _fill(images, generated, masks, blend):
    """The completed images: the known pixels, and G(z) (Poisson-blended or pasted) in the hole."""
    if blend:
        return poisson_blend(images, generated, masks)
    return np.where(masks > 0.5, images, generated)


def _log_chunk(log, results, idx, start, chunk_losses, chunk_z, bar):
    chunk_losses = chunk_losses.numpy()
    steps = len(chunk_losses)
    its = np.arange(start, start + steps)
    results.losses[start : start + steps, idx] = chunk_losses
    # Iteration `start` was handed out with the snapshot before this chunk.
    log.append((its[1:], chunk_losses[1:], chunk_z.numpy()[1:]))
    if bar is not None:
        bar.update(steps)
        bar.set_postfix(loss=f"{chunk_losses[-1].mean():.4g}")


def _snapshot(on_snapshot, log, results, b, idx, it, z, loss, generated, images, masks, blend):
    z, loss, generated = z.numpy(), loss.numpy(), generated.numpy()
    completed = _fill(images[idx], generated, masks[idx], blend)
    results.losses[it, idx] = loss
    results.z[idx], results.generated[idx], results.completed[idx] = z, generated, completed
    log.append((np.array([it]), loss[None], z[None]))
    if on_snapshot is not None:
        on_snapshot(Snapshot(
            batch=b, indices=idx, iteration=it, z=z, generated=generated, completed=completed,
            loss=loss, log_iterations=np.concatenate([r[0] for r in log]),
            log_losses=np.concatenate([r[1] for r in log]), log_z=np.concatenate([r[2] for r in log]),
        ))
    log.clear()


# ---- the compiled search -------------------------------------------------------------


def initial_z(seeds, z_dim):
    """Each image's starting z ~ Uniform(-1, 1)^z_dim, drawn from its seed alone."""
    return _per_image(tf.random.stateless_uniform, seeds, tf.constant(0, tf.int64), z_dim, minval=-1.0, maxval=1.0)


def hmc_noise(seeds, iteration, z_dim):
    """HMC's randomness at `iteration`, from each image's seed alone: the momentum
    v ~ N(0, I) [B, z_dim] and the Metropolis uniform u [B]."""
    iteration = tf.cast(iteration, tf.int64)
    v = _per_image(tf.random.stateless_normal, seeds, 2 * iteration + 1, z_dim)
    u = _per_image(tf.random.stateless_uniform, seeds, 2 * iteration + 2, 1)[:, 0]
    return v, u


def _per_image(sample, seeds, counter, dim, **kwargs):
    # Stateless ops take one seed per call, so each image's draw is a call of its own.
    keys = tf.stack([tf.cast(seeds, tf.int64), tf.fill(tf.shape(seeds), counter)], axis=1)

    @tf.autograph.experimental.do_not_convert
    def draw(key):
        return sample([dim], seed=key, **kwargs)

    return tf.map_fn(draw, keys, fn_output_signature=tf.float32)


def completion_loss(generator, discriminator, z, images, context_weights, lowres_weights, lam):
    """Per-image loss [B] and G(z) (see the module's docstring)."""
    generated = generator(z, training=False)
    _, logits = discriminator(generated, training=False)
    contextual = tf.reduce_sum(context_weights * tf.abs(generated - images), axis=[1, 2, 3])
    contextual += lowres_weights * tf.reduce_sum(
        tf.abs(block_means(generated) - block_means(images)), axis=[1, 2, 3])
    perceptual = tf.nn.softplus(-logits[:, 0])  # sigmoid cross-entropy against "real"
    return contextual + lam * perceptual, generated


def block_means(images, block=LOWRES_BLOCK):
    """Means over block x block pixel blocks: [B, H, W, C] -> [B, H/block, W/block, C]."""
    shape = tf.shape(images)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    blocks = tf.reshape(images, [b, h // block, block, w // block, block, c])
    return tf.reduce_mean(blocks, axis=[2, 4])


def momentum_update(z, velocity, grad, lr, momentum):
    """The original's (2016) projected gradient descent with Nesterov-style momentum."""
    previous = velocity
    velocity = momentum * velocity - lr * grad
    z = z - momentum * previous + (1 + momentum) * velocity
    return tf.clip_by_value(z, -1.0, 1.0), velocity


def adam_update(z, m, v, grad, iteration, lr, beta1, beta2, eps):
    """The original's Adam on z, bias-corrected; `iteration` counts from 0."""
    t = tf.cast(iteration, tf.float32) + 1.0
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    z = z - lr * m_hat / (tf.sqrt(v_hat) + eps)
    return tf.clip_by_value(z, -1.0, 1.0), m, v


def hmc_update(z, loss, grad, loss_and_grad, velocity, uniform, beta, step, n_steps):
    """One HMC iteration as the original: n_steps leapfrog steps of size `step` on
    beta * loss from momentum `velocity` (z clipped after each), then a per-image
    Metropolis accept on beta * loss + |v|^2 / 2 with the uniform draws `uniform`."""
    z0, v0, loss0 = z, velocity, loss
    v = velocity
    for _ in tf.range(n_steps):
        v = v - step / 2 * beta * grad
        z = tf.clip_by_value(z + step * v, -1.0, 1.0)
        loss, grad = loss_and_grad(z)
        v = v - step / 2 * beta * grad
    energy0 = beta * loss0 + tf.reduce_sum(v0 * v0, axis=1) / 2
    energy = beta * loss + tf.reduce_sum(v * v, axis=1) / 2
    # The original rejects when u > exp(energy0 - energy); compared in logs, no overflow.
    reject = tf.math.log(uniform) > energy0 - energy
    return tf.where(reject[:, None], z0, z)


@dataclass
class _Search:
    run: tf.types.experimental.PolymorphicFunction
    evaluate: tf.types.experimental.PolymorphicFunction


@functools.lru_cache(maxsize=8)
def _search(generator, discriminator, approach):
    """The compiled search for one model pair and approach, traced once for every batch
    size and hyperparameter value."""
    size, z_dim = _image_size(generator), _z_dim(generator)
    vec = tf.TensorSpec([None, z_dim], tf.float32)
    img = tf.TensorSpec([None, size, size, 3], tf.float32)
    per_image = tf.TensorSpec([None], tf.float32)
    hp = tf.TensorSpec([len(_HPARAMS)], tf.float32)

    def loss_and_grad(z, images, weights, lowres_weights, lam):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, _ = completion_loss(generator, discriminator, z, images, weights, lowres_weights, lam)
        return loss, tape.gradient(loss, z)  # the gradient of the sum: image by image

    @tf.function(input_signature=[vec, img, img, per_image, hp])
    def evaluate(z, images, weights, lowres_weights, hparams):
        lam = hparams[_HPARAMS.index("lam")]
        return completion_loss(generator, discriminator, z, images, weights, lowres_weights, lam)

    @tf.function(input_signature=[
        vec, vec, vec, img, img, per_image, tf.TensorSpec([None], tf.int64), hp,
        tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32)])
    def run(z, s1, s2, images, weights, lowres_weights, seeds, hparams, hmc_steps, start, steps):
        h = dict(zip(_HPARAMS, tf.unstack(hparams)))
        objective = functools.partial(
            loss_and_grad, images=images, weights=weights, lowres_weights=lowres_weights, lam=h["lam"])
        losses = tf.TensorArray(tf.float32, size=steps)
        zs = tf.TensorArray(tf.float32, size=steps)
        for k in tf.range(steps):
            i = start + tf.cast(k, tf.int64)
            loss, grad = objective(z)
            losses = losses.write(k, loss)
            zs = zs.write(k, z)
            if approach == "momentum":
                z, s1 = momentum_update(z, s1, grad, h["lr"], h["momentum"])
            elif approach == "adam":
                z, s1, s2 = adam_update(z, s1, s2, grad, i, h["lr"], h["beta1"], h["beta2"], h["eps"])
            else:
                velocity, uniform = hmc_noise(seeds, i, z_dim)
                beta = h["hmc_beta"] * h["hmc_anneal"] ** tf.cast(i, tf.float32)
                z = hmc_update(z, loss, grad, objective, velocity, uniform, beta, h["hmc_eps"], hmc_steps)
        return z, s1, s2, losses.stack(), zs.stack()

    return _Search(run=run, evaluate=evaluate)


# ---- input checks ----------------------------------------------------------------------


def _image_size(generator):
    return int(generator.output_shape[1])


def _z_dim(generator):
    return int(generator.input_shape[-1])


def _check_images_and_masks(images, masks, generator):
    images = np.asarray(images, np.float32)
    size = _image_size(generator)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise InputError(
            f"the model completes {size}x{size} RGB images; got an array of shape {images.shape}")
    if len(images) == 0:
        raise InputError("no images to complete")
    masks = np.asarray(masks, np.float32)
    if masks.ndim == 2:
        masks = np.repeat(masks[:, :, None], 3, axis=2)
    try:
        masks = np.broadcast_to(masks, images.shape)
    except ValueError:
        raise InputError(f"masks of shape {masks.shape} do not fit images of shape {images.shape}") from None
    return images, masks


def _check_hparams(n_iter, batch_size, out_interval, hmc_l, values):
    for name, value, low in (("n_iter", n_iter, 0), ("batch_size", batch_size, 1),
                             ("out_interval", out_interval, 1), ("hmc_l", hmc_l, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in values.items():
        if not np.isfinite(value) or value < 0:
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    for name in ("momentum", "beta1", "beta2"):
        if values[name] >= 1:
            raise InputError(f"{name} must be below 1, got {values[name]!r}")
    return tf.constant([values[k] for k in _HPARAMS], tf.float32)


def _progress_bar(total, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", desc="completing")

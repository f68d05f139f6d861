"""Semantic image completion: search the generator's latent space for the z whose G(z)
matches the known pixels of an image and looks real to the discriminator, then fill the
hole with G(z) ("Completion" in docs/original.md).

    result = complete(images, masks, generator, discriminator, n_iter=1000)
    result.completed  # [N, H, W, 3], known pixels exactly the input's
    result = complete(images, masks, generator, discriminator, SearchOptions(approach="momentum"))
    result = complete(images, masks, generator, discriminator, encoder=load_encoder())  # a learned start

Each image's search starts from the encoder's guess of z (init="encoder", the default,
where an encoder is given; encoder.py) or from the original's random z (init="random").

How z moves (the approaches adam, momentum and hmc) and the options: search.py.

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
import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .blending import poisson_blend
from .distributed_search import distribute
from .errors import InputError, ignore_sigint
from .masks import LOWRES_BLOCK, check_masks, weighted_context
from .networks import image_size_of, z_dim_of
from .encoder import start_z
from .search import (APPROACHES, SearchOptions, Step, initial_z, schedule_rate,  # noqa: F401 - SearchOptions for users
                     search_options, settled)


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


def complete(images, masks, generator, discriminator, options=None, *, encoder=None, lowres=False,
             context_weights=None, seeds=None, seed=0, on_snapshot=None, progress=False, strategy=None, **settings):
    """Complete `images` [N, H, W, 3] in [-1, 1] where `masks` (1 = known; [N, H, W, 3],
    or one [H, W, 3] for all) is 0.

    options: a search.SearchOptions (approach and its hyperparameters, n_iter, init,
    schedule, lam, weighted_context, blend, batch_size, out_interval); `settings` change
    it by name, so that the common case reads complete(images, masks, G, D, n_iter=500,
    lr=0.02). encoder: the model's encoder (encoder.load_encoder), where init="encoder"
    (the default) starts the search; without one the search starts from random z, with
    a warning, and an unset n_iter is the random start's.
    lowres: add the context term on LOWRES_BLOCK-pixel block means (the lowres mask).
    context_weights [N, H, W, 3]: any per-pixel weight map, instead of the mask (or the
    weighted context). seeds: one integer per image (default seed + index); an image's
    random starting z and HMC noise come from its seed alone. Images go in batches of
    `batch_size`, the last one smaller (not padded). `on_snapshot(Snapshot)` is called at
    iteration 0, every `out_interval` iterations and at the end. progress: show a bar, or
    a tqdm bar to update (its owner closes it). strategy: a tf.distribute strategy whose
    devices share each batch (distributed_search.py).
    """
    options = settled(search_options(options, **settings), encoder is not None)
    run = _prepare(images, masks, generator, discriminator, options, lowres, context_weights, seeds, seed)
    run.encoder = encoder if options.init == "encoder" else None
    run.search = distribute(run.search, strategy)
    n_batches = -(-len(run.images) // options.batch_size)
    bar, own_bar = _progress_bar(options.n_iter * n_batches, progress)
    with _without_remapper():
        try:
            for b, lo in enumerate(range(0, len(run.images), options.batch_size)):
                _search_batch(run, b, np.arange(lo, min(lo + options.batch_size, len(run.images))), on_snapshot, bar)
        except KeyboardInterrupt:
            restore_sigint = ignore_sigint()  # a second Ctrl-C would break off saving the state
            try:
                if own_bar:
                    bar.close()
                _fill_unfinished(run)
            finally:
                restore_sigint()
            raise Interrupted(run.result, run.reached, options.n_iter) from None
        finally:
            if own_bar:
                bar.close()
    return run.result


@dataclass
class _Run:
    """One call of `complete`: its checked inputs, and how far each image has got."""

    search: "_Search"
    options: SearchOptions
    hparams: tf.Tensor
    images: np.ndarray
    masks: np.ndarray
    weights: np.ndarray  # the context weights
    lowres: bool
    seeds: np.ndarray
    result: CompletionResult
    reached: np.ndarray  # iterations done, per image
    finished: np.ndarray  # results in, per image
    encoder: object = None  # where the search starts, if not at random

    def tensors(self, idx):
        """The batch's images, context weights and lowres weights as tensors."""
        return (tf.constant(self.images[idx]), tf.constant(self.weights[idx]),
                tf.fill([len(idx)], 1.0 if self.lowres else 0.0))


def _prepare(images, masks, generator, discriminator, options, lowres, context_weights, seeds, seed):
    images, masks = _check_images_and_masks(images, masks, generator)
    check_masks(masks, lowres=lowres)
    n = len(images)
    if context_weights is None:
        context_weights = weighted_context(masks) if options.weighted_context else masks
    seeds = np.arange(seed, seed + n, dtype=np.int64) if seeds is None else np.asarray(seeds, np.int64)
    if seeds.shape != (n,):
        raise InputError(f"give one seed per image: {n} images, {seeds.size} seeds")
    result = CompletionResult(
        completed=np.empty_like(images), generated=np.empty_like(images),
        z=np.empty((n, z_dim_of(generator)), np.float32), losses=np.full((options.n_iter + 1, n), np.nan, np.float32))
    return _Run(
        search=_search(generator, discriminator, options.approach, options.search_schedule), options=options,
        hparams=tf.constant([options.lam, *options.values().values()], tf.float32),
        images=images, masks=masks, weights=np.broadcast_to(np.asarray(context_weights, np.float32), images.shape),
        lowres=lowres, seeds=seeds, result=result, reached=np.zeros(n, np.int64), finished=np.zeros(n, bool))


def _search_batch(run, b, idx, on_snapshot, bar):
    y, w, lw = run.tensors(idx)
    s = tf.constant(run.seeds[idx])
    if run.encoder is None:
        z = initial_z(s, run.result.z.shape[1])
    else:
        z = start_z(run.encoder, y, tf.constant(run.masks[idx]))
    run.result.z[idx] = z.numpy()
    state = tuple(tf.zeros_like(z) for _ in range(APPROACHES[run.options.approach].state_size))
    log = []  # (iterations, losses, z) not yet handed to on_snapshot
    done, n_iter = 0, run.options.n_iter
    for it in sorted(set(range(0, n_iter, run.options.out_interval)) | {n_iter}):
        if it > done:
            z, state, chunk_losses, chunk_z = run.search.run(
                z, state, y, w, lw, s, run.hparams, tf.constant(done, tf.int64), tf.constant(it - done, tf.int32),
                tf.constant(n_iter, tf.int64))
            run.result.z[idx], run.reached[idx] = z.numpy(), it  # where Ctrl-C would leave this batch
            _log_chunk(log, run.result, idx, done, chunk_losses, chunk_z, bar)
            done = it
        if on_snapshot is not None or it == n_iter:
            loss, generated = run.search.evaluate(z, y, w, lw, run.hparams)
            _snapshot(on_snapshot, log, run, b, idx, it, z.numpy(), loss.numpy(), generated.numpy())
    run.finished[idx] = True


def _fill_unfinished(run):
    """After Ctrl-C: every unfinished image's generated and completed image from the z it
    has reached (the starting z of a batch not begun)."""
    for lo in range(0, len(run.images), run.options.batch_size):
        idx = np.arange(lo, min(lo + run.options.batch_size, len(run.images)))
        if run.finished[idx].all():
            continue
        _, generated = run.search.evaluate(tf.constant(run.result.z[idx]), *run.tensors(idx), run.hparams)
        run.result.generated[idx] = generated = generated.numpy()
        run.result.completed[idx] = _fill(run.images[idx], generated, run.masks[idx], run.options.blend)


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


def _snapshot(on_snapshot, log, run, b, idx, it, z, loss, generated):
    completed = _fill(run.images[idx], generated, run.masks[idx], run.options.blend)
    results = run.result
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


@dataclass
class _Search:
    run: tf.types.experimental.PolymorphicFunction
    evaluate: tf.types.experimental.PolymorphicFunction


@functools.lru_cache(maxsize=8)
def _search(generator, discriminator, approach, schedule):
    """The compiled search for one model pair, approach (a name of search.APPROACHES)
    and schedule (of search.SCHEDULES),
    traced once for every batch size and hyperparameter value: the hyperparameters
    travel as one float vector, lam first, then the approach's in its order."""
    approach = APPROACHES[approach]
    names = ("lam", *(p.name for p in approach.parameters))
    size, z_dim = image_size_of(generator), z_dim_of(generator)
    vec = tf.TensorSpec([None, z_dim], tf.float32)
    img = tf.TensorSpec([None, size, size, 3], tf.float32)
    per_image = tf.TensorSpec([None], tf.float32)
    hp = tf.TensorSpec([len(names)], tf.float32)

    def loss_and_grad(z, images, weights, lowres_weights, lam):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, _ = completion_loss(generator, discriminator, z, images, weights, lowres_weights, lam)
        return loss, tape.gradient(loss, z)  # the gradient of the sum: image by image

    @tf.function(input_signature=[vec, img, img, per_image, hp])
    def evaluate(z, images, weights, lowres_weights, hparams):
        return completion_loss(generator, discriminator, z, images, weights, lowres_weights, hparams[0])

    @tf.function(input_signature=[
        vec, (vec,) * approach.state_size, img, img, per_image, tf.TensorSpec([None], tf.int64), hp,
        tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    def run(z, state, images, weights, lowres_weights, seeds, hparams, start, steps, n_iter):
        h = dict(zip(names, tf.unstack(hparams)))
        objective = functools.partial(
            loss_and_grad, images=images, weights=weights, lowres_weights=lowres_weights, lam=h["lam"])
        losses = tf.TensorArray(tf.float32, size=steps)
        zs = tf.TensorArray(tf.float32, size=steps)
        for k in tf.range(steps):
            loss, grad = objective(z)
            losses = losses.write(k, loss)
            zs = zs.write(k, z)
            iteration = start + tf.cast(k, tf.int64)
            step = Step(z=z, state=state, loss=loss, grad=grad, iteration=iteration,
                        rate=schedule_rate(schedule, iteration, n_iter), seeds=seeds, objective=objective)
            z, state = approach.update(step, h)
        return z, state, losses.stack(), zs.stack()

    return _Search(run=run, evaluate=evaluate)


@contextlib.contextmanager
def _without_remapper():
    """Grappler's remapper fails on the search's graph (the gradient of D's first
    BiasAdd -> LeakyRelu inside a loop with an unknown batch size) and logs an alarming
    but harmless error; without it the search runs as fast (measured). Off for the
    search only: the process's setting is put back after it."""
    previous = tf.config.optimizer.get_experimental_options().get("remapping", True)
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": previous})


# ---- input checks ----------------------------------------------------------------------


def _check_images_and_masks(images, masks, generator):
    images = np.asarray(images, np.float32)
    size = image_size_of(generator)
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


def _progress_bar(total, progress):
    """(bar, whether complete made it): `progress` itself when it is a bar."""
    if not isinstance(progress, bool):
        return progress, False
    if not progress:
        return None, False
    from tqdm import tqdm

    return tqdm(total=total, unit="it", desc="completing"), True

"""Training the DCGAN as the original did, resumable, on one device or many.

    from dcgan_completion.training import train
    train("data/aligned", epochs=20)          # checkpoint/, samples/, logs/

One step (`DCGAN.train_step`): one Adam update of D on a real and a generated batch,
then two Adam updates of G with the same z (the original's trick "so that d_loss does
not go to zero"). The losses shown are the ones these updates computed; the original's
three extra forward passes to print them are gone.

Everything random is a function of the seed and the position in training: the image
order of epoch e (see data.py), z of step s = Uniform(-1, 1) seeded by (seed, s), and
the initial weights. So a run interrupted and resumed from its checkpoint ends with
the same weights as a run that was never interrupted.
"""
import secrets
import shutil
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf
from tqdm.auto import tqdm

from . import checkpoints, data, tf1_checkpoint
from .errors import InputError, ignore_sigint
from .images import check_output_folder, image_grid, save_grid, to_uint8
from .networks import Z_DIM, build_discriminator, build_generator, num_upsamplings

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multiworker")
SAMPLE_COUNT = 64  # the original's fixed sample_z: an 8x8 grid
_Z_ALG = "philox"  # the same z on every device


def _cross_entropy(logits, label):
    """Per-example sigmoid cross-entropy of [batch, 1] logits against a constant label."""
    logits = tf.cast(logits[:, 0], tf.float32)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits)


class DCGAN(keras.Model):
    """The generator and discriminator, trained together by `train_step`.

    Works with `fit` on a dataset of (images, z) batches, and with `train`, which
    adds checkpoints, samples, logs and resume.
    """

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def call(self, z, training=False):
        return self.generator(z, training=training)

    @staticmethod
    def _scaled(optimizer, loss):
        # Each replica's share of the mean loss (the optimizer sums gradients over
        # replicas), times the loss scale of mixed_float16. Computed under the tape.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return optimizer.scale_loss(loss / replicas)

    @staticmethod
    def _apply(optimizer, tape, scaled_loss, variables):
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))

    def _generator_step(self, z):
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            d_fake, d_fake_logits = self.discriminator(fake, training=True)
            g_loss = tf.reduce_mean(_cross_entropy(d_fake_logits, 1.0))
            scaled = self._scaled(self.g_optimizer, g_loss)
        self._apply(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        return g_loss

    def train_step(self, data):
        images, z = data
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            # Real and generated batches go through D separately, as in the original,
            # so that batch norm normalises each with its own statistics.
            d_real, d_real_logits = self.discriminator(images, training=True)
            d_fake, d_fake_logits = self.discriminator(fake, training=True)
            d_loss_real = tf.reduce_mean(_cross_entropy(d_real_logits, 1.0))
            d_loss_fake = tf.reduce_mean(_cross_entropy(d_fake_logits, 0.0))
            d_loss = d_loss_real + d_loss_fake
            scaled = self._scaled(self.d_optimizer, d_loss)
        self._apply(self.d_optimizer, tape, scaled, self.discriminator.trainable_variables)
        self._generator_step(z)
        g_loss = self._generator_step(z)

        # The original's summaries; no-ops unless a default summary writer is set.
        losses = {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "d_loss": d_loss, "g_loss": g_loss}
        for name, values in [("z", z), ("d", d_real), ("d_", d_fake)]:
            write_summary(tf.raw_ops.HistogramSummary(tag=name, values=_finite(values)))
        for name, value in losses.items():
            write_summary(tf.raw_ops.ScalarSummary(tags=name, values=value))
        return losses


def write_summary(serialized):
    """Write a serialized tf.Summary to the default writer, if summaries are recorded.

    TensorFlow's own summary ops (TensorBoard reads them), so that logging needs no
    TensorBoard package; `tf.summary.histogram` and friends come with it.
    """
    tf.summary.experimental.write_raw_pb(serialized)


def _image_summary(tag, image):
    """A serialized tf.Summary holding one uint8 HxWx3 image."""
    height, width, channels = image.shape
    png = tf.io.encode_png(image).numpy()
    value = tf.compat.v1.Summary.Value(
        tag=tag, image=tf.compat.v1.Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
    )
    return tf.compat.v1.Summary(value=[value]).SerializeToString()


def _finite(values):
    # A histogram of a NaN fails; training that diverged should still be logged.
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    return tf.boolean_mask(values, tf.math.is_finite(values))


# ---------------------------------------------------------------------------- set-up


def cpu_has_bf16():
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_has_bf16():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
    return all(tuple(c) >= (8, 0) for c in capabilities)


def default_precision():
    """mixed_bfloat16 where the hardware computes in bfloat16 natively, else float32."""
    if tf.config.list_physical_devices("GPU"):
        return "mixed_bfloat16" if gpu_has_bf16() else "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def make_strategy(name="default"):
    """A tf.distribute strategy: "default" (all local GPUs if several, else one device),
    "mirrored" (every local GPU, or every logical CPU device if there is no GPU), or
    "multiworker" (several machines, configured by the TF_CONFIG environment variable)."""
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    if name == "multiworker":
        # Before anything else touches TensorFlow's runtime (listing logical devices does).
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def make_optimizer(learning_rate, beta1, precision):
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta1)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_dcgan(image_size=64, z_dim=Z_DIM, gf_dim=64, df_dim=64, precision="float32", learning_rate=0.0002, beta1=0.5):
    """A compiled DCGAN with the original's optimizers, built (call under a strategy's scope)."""
    model = DCGAN(
        build_generator(image_size, z_dim, gf_dim, dtype=precision),
        build_discriminator(image_size, df_dim, dtype=precision),
    )
    model.compile(
        d_optimizer=make_optimizer(learning_rate, beta1, precision),
        g_optimizer=make_optimizer(learning_rate, beta1, precision),
    )
    # Optimizer variables exist before a checkpoint is restored into them.
    model.d_optimizer.build(model.discriminator.trainable_variables)
    model.g_optimizer.build(model.generator.trainable_variables)
    return model


def z_batches(seed, first_step, batch_size, z_dim=Z_DIM):
    """z of step s, s = first_step, first_step + 1, ...: Uniform(-1, 1) seeded by (seed, s)."""

    def z_of(step):
        seed_pair = tf.stack([tf.cast(seed, tf.int64), step])
        return tf.random.stateless_uniform([batch_size, z_dim], seed_pair, -1.0, 1.0, alg=_Z_ALG)

    return tf.data.Dataset.counter(first_step).map(z_of)


def sample_z_of(seed, z_dim=Z_DIM):
    """The fixed z of the sample grids."""
    return tf.random.stateless_uniform([SAMPLE_COUNT, z_dim], [seed, -1], -1.0, 1.0, alg=_Z_ALG)


# ---------------------------------------------------------------------------- training


def _check_settings(precision, epochs, batch_size, image_size, learning_rate, beta1, train_size):
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    for name, value in [("epoch", epochs), ("batch_size", batch_size), ("image_size", image_size)]:
        if not isinstance(value, int) or value < 1:
            raise InputError(f"--{name} must be a positive whole number, got {value!r}")
    try:
        num_upsamplings(image_size)
    except ValueError as e:
        raise InputError(str(e)) from None
    if not learning_rate > 0 or not 0 <= beta1 < 1:
        raise InputError(f"need --learning_rate > 0 and 0 <= --beta1 < 1, got {learning_rate} and {beta1}")
    if train_size is not None and train_size < batch_size:
        raise InputError(f"--train_size {train_size} is smaller than one batch of {batch_size}")


def _checkpoint_to_resume(checkpoint_dir, config):
    """(prefix, is_tf1) of the newest checkpoint in checkpoint_dir, or (None, False).

    It may be this project's or the original's (TF1); it must hold networks of `config`.
    """
    prefix = checkpoints.latest_checkpoint(checkpoint_dir) if Path(checkpoint_dir).is_dir() else None
    if prefix is None:
        return None, False
    is_tf1 = tf1_checkpoint.find_tf1_checkpoint(prefix) is not None
    stored = tf1_checkpoint.tf1_model_config(prefix) if is_tf1 else checkpoints.model_config(prefix)
    if stored != config:
        raise InputError(
            f"{prefix} was trained with {stored}, not {config}: use the same settings or another --checkpoint_dir"
        )
    return prefix, is_tf1


def _keep_tf1_checkpoint(checkpoint_dir, prefix):
    """Mark the original's checkpoint as one to keep, before our checkpoints join it.

    A CheckpointManager deletes older checkpoints listed in the `checkpoint` file with a
    timestamp after its last preserved one; this one is listed as preserved.
    """
    tf.compat.v1.train.update_checkpoint_state(
        str(checkpoint_dir), prefix, [prefix], all_model_checkpoint_timestamps=[0.0],
        last_preserved_timestamp=time.time(),
    )


def _training_state(seed, z_dim):
    """Where training stands, kept in the checkpoint beside the networks and optimizers."""

    def counter(value):
        return tf.Variable(value, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    return {
        "step": counter(0),  # updates done
        "epoch": counter(0),  # of the next update
        "position": counter(0),  # batch within that epoch
        "seed": counter(seed),
        "sample_z": tf.Variable(sample_z_of(seed, z_dim)),
    }


def _distributed_batches(strategy, files, image_size, batch_size, seed, train_size, epoch, position, epochs, is_crop, step, z_dim):
    images = data.image_batches(files, image_size, batch_size, seed, train_size, epoch, position, epochs, is_crop)
    batches = tf.data.Dataset.zip((images, z_batches(seed, step + 1, batch_size, z_dim))).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker of a multi-worker run builds the same stream and keeps its share.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(batches.with_options(options)))


def _check_multiworker_seed(strategy, seed, checkpoint_dir):
    # Every worker reads the whole folder and keeps its share of each batch, which
    # partitions the data only if all of them shuffle with the same seed. They start
    # before any collective can carry the chief's seed to the others, so the seed is
    # the user's, the same on every worker; a resumed run takes the checkpoint's.
    multiworker = strategy == "multiworker" or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if seed is not None or not multiworker:
        return
    if Path(checkpoint_dir).is_dir() and checkpoints.latest_checkpoint(checkpoint_dir) is not None:
        return
    raise InputError("--strategy multiworker needs --seed: give every worker the same --seed "
                     "(e.g. --seed 1), so that they shuffle the data alike and share it out")


def _remove_unfinished_saves(checkpoint_dir):
    """Remove the `DCGAN.model-N_temp` folders of saves that were interrupted or failed."""
    for folder in Path(checkpoint_dir).glob(f"{checkpoints.CHECKPOINT_NAME}-*_temp"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _write_sample(generator, sample_z, path):
    """The grid of G(sample_z), batch norm in inference mode, as a PNG and an image summary."""
    samples = generator(sample_z, training=False).numpy()
    save_grid(path, samples)
    with tf.summary.record_if(True):
        write_summary(_image_summary("G", image_grid(to_uint8(samples))))


def train(
    dataset,
    epochs=25,
    learning_rate=0.0002,
    beta1=0.5,
    train_size=None,
    batch_size=64,
    image_size=64,
    checkpoint_dir="checkpoint",
    sample_dir="samples",
    log_dir="logs",
    seed=None,
    precision=None,
    strategy="default",
    is_crop=False,
    z_dim=Z_DIM,
    gf_dim=64,
    df_dim=64,
    sample_every=100,
    checkpoint_every=500,
    summary_every=10,
    max_steps=None,
    progress=True,
):
    """Train a DCGAN on the images of folder `dataset`, resuming from `checkpoint_dir`.

    Writes sample grids `sample_dir/train_{epoch:02d}_{batch:04d}.png` every
    `sample_every` steps, a checkpoint `checkpoint_dir/DCGAN.model-{step}` every
    `checkpoint_every` steps, at the end of each epoch and on Ctrl-C (only the newest
    is kept), and TensorBoard summaries under `log_dir` every `summary_every` steps.
    `precision` None picks `default_precision()`; `strategy` is a name for
    `make_strategy` or a tf.distribute.Strategy. `max_steps` stops (with a checkpoint)
    once training reaches that step. The seed of a resumed run is the checkpoint's.

    Returns a summary: {"step", "epoch", "checkpoint", "steps_run", "seconds",
    "images_per_second"} (the rate leaves out the run's first step, which builds the graph).
    """
    precision = precision or default_precision()
    _check_settings(precision, epochs, batch_size, image_size, learning_rate, beta1, train_size)
    _check_multiworker_seed(strategy, seed, checkpoint_dir)
    strategy = make_strategy(strategy)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise InputError(f"--batch_size {batch_size} must be a multiple of the {replicas} devices training together")
    files = data.dataset_files(dataset, batch_size)
    for flag, folder in [("--checkpoint_dir", checkpoint_dir), ("--sample_dir", sample_dir), ("--log_dir", log_dir)]:
        check_output_folder(folder, flag)
    per_epoch = data.steps_per_epoch(len(files), batch_size, train_size)
    config = {"image_size": image_size, "z_dim": z_dim, "gf_dim": gf_dim, "df_dim": df_dim}
    prefix, from_tf1 = _checkpoint_to_resume(checkpoint_dir, config)
    if seed is None and (prefix is None or from_tf1):
        seed = secrets.randbelow(2**31)
    if seed is not None:
        keras.utils.set_random_seed(seed)  # the initial weights

    with strategy.scope():
        model = build_dcgan(image_size, z_dim, gf_dim, df_dim, precision, learning_rate, beta1)
        state = _training_state(seed or 0, z_dim)
    generator = model.generator
    checkpoint = checkpoints.training_checkpoint(generator, model.discriminator, model.d_optimizer, model.g_optimizer, **state)
    chief = _is_chief(strategy)
    if from_tf1:
        # The original's weights; its step counter goes on, its epochs start again at 0
        # (as the original's did), and Adam starts afresh (TF1 checkpoints carry none of ours).
        tf1_checkpoint.load_tf1_weights(prefix, generator, model.discriminator)
        state["step"].assign(tf1_checkpoint.tf1_checkpoint_step(prefix))
        if chief:
            _keep_tf1_checkpoint(checkpoint_dir, prefix)
    # Every worker saves (saving is collective); only the chief's copy is kept.
    save_dir = Path(checkpoint_dir) if chief else Path(checkpoint_dir) / f".worker-{strategy.cluster_resolver.task_id}"
    if chief:
        _remove_unfinished_saves(checkpoint_dir)
    manager = checkpoints.checkpoint_manager(checkpoint, save_dir)
    if prefix is not None and not from_tf1:
        checkpoints.restore(checkpoint, prefix)
        if seed is not None and seed != int(state["seed"].numpy()):
            warnings.warn(f"resuming {prefix}: keeping its seed {int(state['seed'].numpy())}, not {seed}", stacklevel=2)
        seed = int(state["seed"].numpy())

    start_step, epoch, position = (int(state[k].numpy()) for k in ("step", "epoch", "position"))
    if position >= per_epoch:  # fewer images than when the checkpoint was written
        epoch, position = epoch + 1, 0
    last_step = start_step + (epochs - epoch) * per_epoch - position
    if max_steps is not None:
        last_step = min(last_step, max_steps)
    summary = {"step": start_step, "epoch": epoch, "checkpoint": prefix, "steps_run": 0, "seconds": 0.0,
               "images_per_second": None}
    say = tqdm.write if progress else (lambda message: None)
    if prefix is not None:
        kind = " (the original's TF1 checkpoint)" if from_tf1 else ""
        say(f"resuming from {prefix}{kind}: epoch {epoch + 1}, batch {position}, step {start_step}")
    if last_step <= start_step:
        say(f"nothing to do: {prefix} has done {min(epoch, epochs)} of {epochs} epochs (step {start_step})")
        return summary
    say(f"training on {len(files)} images ({per_epoch} batches of {batch_size} per epoch), "
        f"{precision}, {replicas} device{'s' if replicas > 1 else ''}, seed {seed}")

    iterator = _distributed_batches(
        strategy, files, image_size, batch_size, seed, train_size, epoch, position, epochs, is_crop, start_step, z_dim
    )
    step_var = state["step"]

    @tf.function
    def train_function(iterator):
        step_var.assign_add(1)
        losses = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in losses.items()}

    def where(step):
        """(epoch, batch) of the step-th update."""
        offset = position + (step - 1 - start_step)
        return epoch + offset // per_epoch, offset % per_epoch

    def save():
        # From the step counter, which the graph updates with the weights: consistent
        # even when Ctrl-C arrives between a step and the bookkeeping after it.
        step = int(step_var.numpy())
        if manager.latest_checkpoint and manager.latest_checkpoint.endswith(f"-{step}"):
            return manager.latest_checkpoint
        next_epoch, next_position = where(step + 1)
        state["epoch"].assign(next_epoch)
        state["position"].assign(next_position)
        try:
            return manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:  # a full disk, mostly
            _remove_unfinished_saves(save_dir)
            kept = f"{manager.latest_checkpoint} is kept" if manager.latest_checkpoint else "no checkpoint was kept"
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            raise InputError(f"cannot write the checkpoint of step {step} in {save_dir} "
                             f"({reason.splitlines()[0]}); {kept}: free some space and run the same "
                             "command again") from None

    writer = tf.summary.create_file_writer(str(log_dir)) if chief else tf.summary.create_noop_writer()
    bar = None
    restore_sigint = lambda: None  # noqa: E731
    started = time.perf_counter()
    timed_from = None
    try:
        with writer.as_default(step=step_var), tf.summary.record_if(lambda: step_var % summary_every == 0):
            for step in range(start_step + 1, last_step + 1):
                batch_epoch, batch = where(step)
                if bar is None or batch == 0:
                    if bar is not None:
                        bar.close()
                    bar = tqdm(total=per_epoch, initial=batch, desc=f"epoch {batch_epoch + 1}/{epochs}",
                               unit="batch", disable=not progress)
                losses = train_function(iterator)
                timed_from = timed_from or (time.perf_counter(), step)
                bar.update(1)
                if step % 10 == 0 or batch + 1 == per_epoch or step == last_step:
                    bar.set_postfix(d_loss=f"{float(losses['d_loss']):.4f}", g_loss=f"{float(losses['g_loss']):.4f}")
                # Also at a run's first step and last, so that a short run shows its samples
                # (the original wrote its first grid at step 1).
                if (step % sample_every == 0 or step in (start_step + 1, last_step)) and chief:
                    _write_sample(generator, state["sample_z"], Path(sample_dir) / f"train_{batch_epoch:02d}_{batch:04d}.png")
                if step % checkpoint_every == 0 or batch + 1 == per_epoch:
                    save()
        ended = time.perf_counter()
        summary["checkpoint"] = str(Path(checkpoint_dir) / Path(save()).name)  # the chief's copy
    except KeyboardInterrupt:
        restore_sigint = ignore_sigint()  # a second Ctrl-C would break off the save
        say(f"interrupted: saved {save()}; run the same command again to go on")
        raise
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        # Stop the input pipeline's threads now: an interrupted run's traceback keeps this
        # frame alive into interpreter shutdown, where tearing them down can hang.
        iterator = None  # noqa: F841
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)
        restore_sigint()

    step = int(step_var.numpy())
    if step > timed_from[1]:
        summary["images_per_second"] = (step - timed_from[1]) * batch_size / (ended - timed_from[0])
    summary.update(step=step, epoch=where(step + 1)[0], steps_run=step - start_step, seconds=ended - started)
    return summary

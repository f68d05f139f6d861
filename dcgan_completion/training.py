"""Training the DCGAN as the original did, resumable, on one device or many.

    from dcgan_completion.training import train
    train("data/aligned", epochs=20)          # checkpoint/, samples/, logs/

One step (`DCGAN.train_step`): one Adam update of D on a real and a generated batch,
then two Adam updates of G with the same z (the original's trick "so that d_loss does
not go to zero"). The losses shown are the ones these updates computed; the original's
three extra forward passes to print them are gone.

`train` in pieces: the devices and precision (`_set_up_devices`), where training stands
(`Position`, from a checkpoint or the original's TF1 one: `_resume`), the compiled step
(`_compiled_step`) in a short loop (`_run`), and the periodic events around it (samples,
checkpoints, summaries, the progress bar: Keras callbacks in training_hooks.py).

Everything random is a function of the seed and the position in training: the image
order of epoch e (see data.py), z of step s = Uniform(-1, 1) seeded by (seed, s), and
the initial weights. So a run interrupted and resumed from its checkpoint ends with
the same weights as a run that was never interrupted.
"""
import dataclasses
import secrets
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf
from tqdm.auto import tqdm

from . import checkpoints, data, tf1_checkpoint
from .errors import InputError, ignore_sigint
from .images import check_output_folder
from .networks import Z_DIM, build_discriminator, build_generator, num_upsamplings
from .training_hooks import (Checkpoints, ProgressBar, SampleGrids, Summaries, finite, remove_unfinished_saves,
                             write_summary)

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
            write_summary(tf.raw_ops.HistogramSummary(tag=name, values=finite(values)))
        for name, value in losses.items():
            write_summary(tf.raw_ops.ScalarSummary(tags=name, values=value))
        return losses


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


# ---------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How `train` trains: the original's flags and defaults, plus this project's.

    `precision` None picks `default_precision()`; `strategy` is a name for
    `make_strategy` or a tf.distribute.Strategy; `max_steps` stops (with a checkpoint)
    once training reaches that step; `seed` None draws one (a resumed run keeps its
    checkpoint's). Samples, checkpoints and summaries come every `sample_every`,
    `checkpoint_every` and `summary_every` steps.
    """

    epochs: int = 25
    learning_rate: float = 0.0002
    beta1: float = 0.5
    train_size: int | None = None
    batch_size: int = 64
    image_size: int = 64
    checkpoint_dir: str | Path = "checkpoint"
    sample_dir: str | Path = "samples"
    log_dir: str | Path = "logs"
    seed: int | None = None
    precision: str | None = None
    strategy: str | tf.distribute.Strategy = "default"
    is_crop: bool = False
    z_dim: int = Z_DIM
    gf_dim: int = 64
    df_dim: int = 64
    sample_every: int = 100
    checkpoint_every: int = 500
    summary_every: int = 10
    max_steps: int | None = None
    progress: bool = True

    @property
    def network(self):
        """The sizes of the networks, which a checkpoint resumed from must share."""
        return {"image_size": self.image_size, "z_dim": self.z_dim, "gf_dim": self.gf_dim, "df_dim": self.df_dim}


def _check_settings(s):
    if s.precision not in PRECISIONS:
        raise InputError(f"unknown precision {s.precision!r}: use one of {', '.join(PRECISIONS)}")
    whole = [("epoch", s.epochs), ("batch_size", s.batch_size), ("image_size", s.image_size),
             ("sample_every", s.sample_every), ("checkpoint_every", s.checkpoint_every),
             ("summary_every", s.summary_every)]
    for name, value in whole:
        if not isinstance(value, int) or value < 1:
            raise InputError(f"--{name} must be a positive whole number, got {value!r}")
    try:
        num_upsamplings(s.image_size)
    except ValueError as e:
        raise InputError(str(e)) from None
    if not s.learning_rate > 0 or not 0 <= s.beta1 < 1:
        raise InputError(f"need --learning_rate > 0 and 0 <= --beta1 < 1, got {s.learning_rate} and {s.beta1}")
    if s.train_size is not None and s.train_size < s.batch_size:
        raise InputError(f"--train_size {s.train_size} is smaller than one batch of {s.batch_size}")


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


def _set_up_devices(settings):
    """(settings with the precision chosen, the tf.distribute strategy), checked."""
    settings = dataclasses.replace(settings, precision=settings.precision or default_precision())
    _check_settings(settings)
    _check_multiworker_seed(settings.strategy, settings.seed, settings.checkpoint_dir)
    strategy = make_strategy(settings.strategy)
    replicas = strategy.num_replicas_in_sync
    if settings.batch_size % replicas:
        raise InputError(f"--batch_size {settings.batch_size} must be a multiple of the {replicas} devices "
                         "training together")
    return settings, strategy


# ---------------------------------------------------------------------------- where training stands


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands: `step` updates are done, and the next one is batch `batch`
    of epoch `epoch` (both counted from 0), of `per_epoch` batches an epoch."""

    step: int
    epoch: int
    batch: int
    per_epoch: int

    @classmethod
    def from_state(cls, state, per_epoch):
        """From the step, epoch and position kept in a checkpoint."""
        step, epoch, batch = (int(state[k].numpy()) for k in ("step", "epoch", "position"))
        if batch >= per_epoch:  # fewer images than when the checkpoint was written
            epoch, batch = epoch + 1, 0
        return cls(step, epoch, batch, per_epoch)

    def at(self, step):
        """(epoch, batch) of the step-th update."""
        offset = self.batch + (step - 1 - self.step)
        return self.epoch + offset // self.per_epoch, offset % self.per_epoch

    def last_step(self, epochs, max_steps=None):
        """The step that ends epoch `epochs`, or `max_steps` if that comes first."""
        last = self.step + (epochs - self.epoch) * self.per_epoch - self.batch
        return last if max_steps is None else min(last, max_steps)


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


def _build(settings, strategy, seed):
    """The compiled DCGAN and a fresh training state, on the strategy's devices."""
    if seed is not None:
        keras.utils.set_random_seed(seed)  # the initial weights (process-wide: see train)
    with strategy.scope():
        model = build_dcgan(settings.image_size, settings.z_dim, settings.gf_dim, settings.df_dim, settings.precision,
                            settings.learning_rate, settings.beta1)
        state = _training_state(seed or 0, settings.z_dim)
    return model, state


@dataclasses.dataclass(frozen=True)
class _Start:
    """A run's model and the checkpoint (prefix, None for a new run) it starts from."""

    model: DCGAN
    state: dict
    checkpoint: tf.train.Checkpoint
    prefix: str | None
    from_tf1: bool
    seed: int
    position: Position


def _resume(settings, strategy, per_epoch):
    """The model where training stands: restored from the newest checkpoint in
    `checkpoint_dir`, started from the original's TF1 checkpoint there, or new."""
    prefix, from_tf1 = _checkpoint_to_resume(settings.checkpoint_dir, settings.network)
    seed = settings.seed
    if seed is None and (prefix is None or from_tf1):
        seed = secrets.randbelow(2**31)
    model, state = _build(settings, strategy, seed)
    checkpoint = checkpoints.training_checkpoint(model.generator, model.discriminator, model.d_optimizer,
                                                 model.g_optimizer, **state)
    if from_tf1:
        # The original's weights; its step counter goes on, its epochs start again at 0
        # (as the original's did), and Adam starts afresh (TF1 checkpoints carry none of ours).
        tf1_checkpoint.load_tf1_weights(prefix, model.generator, model.discriminator)
        state["step"].assign(tf1_checkpoint.tf1_checkpoint_step(prefix))
    if _is_chief(strategy):
        if from_tf1:
            _keep_tf1_checkpoint(settings.checkpoint_dir, prefix)
        remove_unfinished_saves(settings.checkpoint_dir)
    if prefix is not None and not from_tf1:
        checkpoints.restore(checkpoint, prefix)
        kept = int(state["seed"].numpy())
        if seed is not None and seed != kept:
            warnings.warn(f"resuming {prefix}: keeping its seed {kept}, not {seed}", stacklevel=3)
        seed = kept
    return _Start(model, state, checkpoint, prefix, from_tf1, seed, Position.from_state(state, per_epoch))


# ---------------------------------------------------------------------------- the loop


def _distributed_batches(strategy, files, settings, seed, position):
    """(images, z) of the steps after `position`, each device's share of each batch."""
    s = settings
    images = data.image_batches(files, s.image_size, s.batch_size, seed, s.train_size, position.epoch,
                                position.batch, s.epochs, s.is_crop)
    z = z_batches(seed, position.step + 1, s.batch_size, s.z_dim)
    batches = tf.data.Dataset.zip((images, z)).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Each worker of a multi-worker run builds the same stream and keeps its share.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(batches.with_options(options)))


def _compiled_step(model, strategy, step):
    """One update on the next batch, on every device, with the step counter advanced in
    the same graph (so that a checkpoint's step always matches its weights)."""

    @tf.function
    def train_function(batches):
        step.assign_add(1)
        losses = strategy.run(model.train_step, args=(next(batches),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in losses.items()}

    return train_function


def _hooks(settings, start, strategy, last_step):
    """The periodic events of a run, in the order they come after a step; the
    Checkpoints hook last."""
    chief, position = _is_chief(strategy), start.position
    hooks = [Summaries(settings.log_dir, start.state["step"], settings.summary_every, chief),
             ProgressBar(position, last_step, settings.epochs, settings.progress)]
    if chief:
        hooks.append(SampleGrids(start.model.generator, start.state["sample_z"], settings.sample_dir,
                                 settings.sample_every, position, last_step))
    worker = None if chief else strategy.cluster_resolver.task_id
    hooks.append(Checkpoints(start.checkpoint, start.state, position, settings.checkpoint_every,
                             settings.checkpoint_dir, worker))
    return hooks


def _each(hooks, event, *args):
    for hook in hooks:
        getattr(hook, event)(*args)


def _run(start, settings, strategy, files, last_step, say):
    """Steps start.position.step + 1 .. last_step, each the compiled update and then the
    hooks; a checkpoint at the end, and on Ctrl-C before the KeyboardInterrupt goes on.

    Returns {"checkpoint", "seconds", "images_per_second"}; the rate leaves out the first
    step, which builds the graph.
    """
    hooks = _hooks(settings, start, strategy, last_step)
    saver = hooks[-1]
    train_function = _compiled_step(start.model, strategy, start.state["step"])
    batches = _distributed_batches(strategy, files, settings, start.seed, start.position)
    restore_sigint = lambda: None  # noqa: E731
    started, timed_from = time.perf_counter(), None
    try:
        _each(hooks, "on_train_begin")
        for step in range(start.position.step + 1, last_step + 1):
            _each(hooks, "on_train_batch_begin", step)
            logs = train_function(batches)
            timed_from = timed_from or (time.perf_counter(), step)
            _each(hooks, "on_train_batch_end", step, logs)
        ended = time.perf_counter()
        checkpoint = str(Path(settings.checkpoint_dir) / Path(saver.save()).name)  # the chief's copy
    except KeyboardInterrupt:
        restore_sigint = ignore_sigint()  # a second Ctrl-C would break off the save
        say(f"interrupted: saved {saver.save()}; run the same command again to go on")
        raise
    finally:
        _each(hooks, "on_train_end")  # however the run ended: bars and writers are closed
        # Stop the input pipeline's threads now: an interrupted run's traceback keeps this
        # frame alive into interpreter shutdown, where tearing them down can hang.
        batches = None  # noqa: F841
        restore_sigint()
    steps_timed = last_step - timed_from[1]
    rate = steps_timed * settings.batch_size / (ended - timed_from[0]) if steps_timed else None
    return {"checkpoint": checkpoint, "seconds": ended - started, "images_per_second": rate}


# ---------------------------------------------------------------------------- train


def _announce(say, start, settings, last_step, num_files, replicas):
    position, prefix = start.position, start.prefix
    if prefix is not None:
        kind = " (the original's TF1 checkpoint)" if start.from_tf1 else ""
        say(f"resuming from {prefix}{kind}: epoch {position.epoch + 1}, batch {position.batch}, step {position.step}")
    if last_step <= position.step:
        say(f"nothing to do: {prefix} has done {min(position.epoch, settings.epochs)} of {settings.epochs} "
            f"epochs (step {position.step})")
    else:
        say(f"training on {num_files} images ({position.per_epoch} batches of {settings.batch_size} per epoch), "
            f"{settings.precision}, {replicas} device{'s' if replicas > 1 else ''}, seed {start.seed}")


def train(dataset, *, settings=None, **changes):
    """Train a DCGAN on the images of folder `dataset`, resuming from `checkpoint_dir`.

    The settings are TrainSettings' fields, as keywords (`train(folder, epochs=20,
    seed=1)`) or as `settings=TrainSettings(...)`, which keywords override.

    Writes sample grids `sample_dir/train_{epoch:02d}_{batch:04d}.png` every
    `sample_every` steps, a checkpoint `checkpoint_dir/DCGAN.model-{step}` every
    `checkpoint_every` steps, at the end of each epoch and on Ctrl-C (only the newest
    is kept), and TensorBoard summaries under `log_dir` every `summary_every` steps.

    A new run seeds the process's random generators (Python's, NumPy's, TensorFlow's and
    Keras', with keras.utils.set_random_seed) with its seed to draw the initial weights,
    and leaves them seeded. The Keras dtype policy is not changed: each layer is given
    the precision.

    Returns a summary: {"step", "epoch", "checkpoint", "steps_run", "seconds",
    "images_per_second"} (the rate leaves out the run's first step, which builds the graph).
    """
    settings, strategy = _set_up_devices(dataclasses.replace(settings or TrainSettings(), **changes))
    files = data.dataset_files(dataset, settings.batch_size)
    for flag, folder in [("--checkpoint_dir", settings.checkpoint_dir), ("--sample_dir", settings.sample_dir),
                         ("--log_dir", settings.log_dir)]:
        check_output_folder(folder, flag)
    start = _resume(settings, strategy, data.steps_per_epoch(len(files), settings.batch_size, settings.train_size))
    position = start.position
    last_step = position.last_step(settings.epochs, settings.max_steps)
    say = tqdm.write if settings.progress else (lambda message: None)
    _announce(say, start, settings, last_step, len(files), strategy.num_replicas_in_sync)
    summary = {"step": position.step, "epoch": position.epoch, "checkpoint": start.prefix, "steps_run": 0,
               "seconds": 0.0, "images_per_second": None}
    if last_step <= position.step:
        return summary
    summary.update(_run(start, settings, strategy, files, last_step, say))
    step = int(start.state["step"].numpy())
    return {**summary, "step": step, "epoch": position.at(step + 1)[0], "steps_run": step - position.step}

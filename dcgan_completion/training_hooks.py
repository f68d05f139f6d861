"""What `train` does besides the updates: samples, checkpoints, summaries, the progress bar.

Each is a Keras callback, as in Keras' own DCGAN example (a keras.Model whose
`train_step` is one update; what it writes is in callbacks). The loop of `train` calls
them as `fit` would, but with the run's step number (1, 2, ... counting every update
since training began) as the batch, and it calls `on_train_end` however the run ends,
so that hooks let go of their bars and writers there.

Which epoch and batch a step is comes from the run's `Position` (see training.py).
"""
import contextlib
import shutil
from pathlib import Path

import keras
import tensorflow as tf
from tqdm.auto import tqdm

from . import checkpoints
from .errors import InputError
from .images import image_grid, save_grid, to_uint8


def write_summary(serialized):
    """Write a serialized tf.Summary to the default writer, if summaries are recorded.

    TensorFlow's own summary ops (TensorBoard reads them), so that logging needs no
    TensorBoard package; `tf.summary.histogram` and friends come with it.
    """
    tf.summary.experimental.write_raw_pb(serialized)


def finite(values):
    """The finite values, flat: a histogram of a NaN fails, and training that diverged
    should still be logged."""
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    return tf.boolean_mask(values, tf.math.is_finite(values))


def _image_summary(tag, image):
    """A serialized tf.Summary holding one uint8 HxWx3 image."""
    height, width, channels = image.shape
    png = tf.io.encode_png(image).numpy()
    value = tf.compat.v1.Summary.Value(
        tag=tag, image=tf.compat.v1.Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
    )
    return tf.compat.v1.Summary(value=[value]).SerializeToString()


def write_sample(generator, sample_z, path):
    """The grid of G(sample_z), batch norm in inference mode, as a PNG and an image summary."""
    samples = generator(sample_z, training=False).numpy()
    save_grid(path, samples)
    with tf.summary.record_if(True):
        write_summary(_image_summary("G", image_grid(to_uint8(samples))))


def remove_unfinished_saves(checkpoint_dir):
    """Remove the `DCGAN.model-N_temp` folders of saves that were interrupted or failed."""
    for folder in Path(checkpoint_dir).glob(f"{checkpoints.CHECKPOINT_NAME}-*_temp"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


class Summaries(keras.callbacks.Callback):
    """TensorBoard summaries in `log_dir` at every step that is a multiple of `every`.

    The step writes them (`DCGAN.train_step`, as the original's graph held its summary
    ops); this hook makes a writer the default for the run, at the step counter `step`,
    recording only at those steps. Workers other than the chief write nowhere.
    """

    def __init__(self, log_dir, step, every, chief=True):
        super().__init__()
        self.log_dir, self.step, self.every, self.chief = log_dir, step, every, chief
        self.writer = None
        self._scope = contextlib.ExitStack()

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(str(self.log_dir)) if self.chief else tf.summary.create_noop_writer()
        self._scope.enter_context(self.writer.as_default(step=self.step))
        self._scope.enter_context(tf.summary.record_if(lambda: self.step % self.every == 0))

    def on_train_end(self, logs=None):
        self._scope.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class SampleGrids(keras.callbacks.Callback):
    """The grid of G(sample_z) every `every` steps, and at a run's first and last step so
    that a short run shows its samples (the original wrote its first grid at step 1):
    `folder/train_{epoch:02d}_{batch:04d}.png` and the image summary `G`."""

    def __init__(self, generator, sample_z, folder, every, position, last_step):
        super().__init__()
        self.generator, self.sample_z, self.folder, self.every = generator, sample_z, Path(folder), every
        self.position, self.last_step = position, last_step

    def on_train_batch_end(self, step, logs=None):
        if step % self.every == 0 or step in (self.position.step + 1, self.last_step):
            epoch, batch = self.position.at(step)
            write_sample(self.generator, self.sample_z, self.folder / f"train_{epoch:02d}_{batch:04d}.png")


class Checkpoints(keras.callbacks.Callback):
    """A checkpoint every `every` steps and at the end of each epoch, `save()` for the end
    of a run and for Ctrl-C; only the newest is kept.

    Every worker saves (saving is collective), the chief into `checkpoint_dir`, the others
    into a folder of their own that is removed at the end.
    """

    def __init__(self, checkpoint, state, position, every, checkpoint_dir, worker=None):
        super().__init__()
        self.state, self.position, self.every = state, position, every
        self.save_dir = Path(checkpoint_dir) if worker is None else Path(checkpoint_dir) / f".worker-{worker}"
        self.worker = worker
        self.manager = checkpoints.checkpoint_manager(checkpoint, self.save_dir)

    def on_train_batch_end(self, step, logs=None):
        if step % self.every == 0 or self.position.at(step)[1] + 1 == self.position.per_epoch:
            self.save()

    def on_train_end(self, logs=None):
        if self.worker is not None:
            shutil.rmtree(self.save_dir, ignore_errors=True)

    def save(self):
        """Save at the step counter, which the graph updates with the weights: consistent
        even when Ctrl-C arrives between a step and the hooks after it."""
        step = int(self.state["step"].numpy())
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return self.manager.latest_checkpoint
        next_epoch, next_batch = self.position.at(step + 1)
        self.state["epoch"].assign(next_epoch)
        self.state["position"].assign(next_batch)
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:  # a full disk, mostly
            remove_unfinished_saves(self.save_dir)
            raise InputError(self._cannot_save(step, e)) from None

    def _cannot_save(self, step, error):
        kept = f"{self.manager.latest_checkpoint} is kept" if self.manager.latest_checkpoint else "no checkpoint was kept"
        reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
        return (f"cannot write the checkpoint of step {step} in {self.save_dir} ({reason.splitlines()[0]}); "
                f"{kept}: free some space and run the same command again")


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar per epoch, with the losses of the latest step every 10 steps, at the
    end of each epoch and at the run's last step."""

    def __init__(self, position, last_step, epochs, enabled=True):
        super().__init__()
        self.position, self.last_step, self.epochs, self.enabled = position, last_step, epochs, enabled
        self.bar = None

    def on_train_batch_begin(self, step, logs=None):
        epoch, batch = self.position.at(step)
        if self.bar is None or batch == 0:
            self.close()
            self.bar = tqdm(total=self.position.per_epoch, initial=batch, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", disable=not self.enabled)

    def on_train_batch_end(self, step, logs=None):
        self.bar.update(1)
        if step % 10 == 0 or self.position.at(step)[1] + 1 == self.position.per_epoch or step == self.last_step:
            self.bar.set_postfix(d_loss=f"{float(logs['d_loss']):.4f}", g_loss=f"{float(logs['g_loss']):.4f}")

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

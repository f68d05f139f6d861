"""Completing image files: read the inputs batch by batch, build their masks, run the
search and write the original's outputs, so that memory does not grow with the number
of inputs (the next batch is read, and the last one written, while a batch searches).

Under `out_dir`, for each batch of `batch_size` images (the original's layout; with more
than one batch, each batch in its own `batch_NN/` folder so that none overwrites another):

    before.png, masked.png, lowres.png (lowres mask)   grids of the inputs
    hats_imgs/NNNN.png (+ NNNN.lowres.png)              grid of G(z) at iteration NNNN
    completed/NNNN.png                                  grid of the completed images
    logs/hats_KK.log                                    image KK of the batch: one line per
                                                        iteration: iteration, loss (logs="loss",
                                                        the default), and the z values
                                                        (logs="full", the original's); none
                                                        with logs="none"
    completion.gif                                      the completed grids (with gif=True)

at iteration 0, every `out_interval` iterations and after the last one (NNNN = n_iter);
and, for every input, `final/<input name>.png`: its completed image, written when its
batch has finished. An input whose final image is there is done: a second run of the same
command skips the batches whose inputs are all done (overwrite=True redoes them), and
runs a batch with some done again whole, so that its grids stay those of one run, leaving
the final images that are there as they are. Batch b holds inputs [b * batch_size,
(b + 1) * batch_size) of the whole input list and image k takes seed + k, whatever the
shard (shards.py) or the run.

After Ctrl-C, the running batch's images as they stand go to `unfinished/<input name>.png`,
apart from final/, so that they do not count as done: the same command completes them
(and removes them from unfinished/); the running batch's GIF holds its frames so far.
"""
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .background import BackgroundWriter
from .errors import InputError, ignore_sigint
from .images import (center_crop_resize, check_output_folder, image_grid, list_images, read_rgb, save_gif,
                     save_grid, save_image, to_float, to_uint8)
from .masks import LOWRES_BLOCK, input_masks, mask_folder_index, mask_path_for, mask_type_for, uses_lowres
from .search import search_options, settled
from .shards import parse_shard, shard_batches

LOGS = ("loss", "full", "none")


def expand_inputs(inputs):
    """Image paths from a list of files and folders (a folder gives its images). Their
    names (without extension) must differ: outputs are named after them."""
    paths = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise InputError(f"{item}: no such file or folder")
        paths.extend(list_images(item) if item.is_dir() else [item])
    if not paths:
        raise InputError("no input images: give image files or folders of images")
    twice = sorted(name for name, count in Counter(p.stem for p in paths).items() if count > 1)
    if twice:
        raise InputError(f"two inputs are named {twice[0]}: outputs are named after the inputs, rename one")
    return paths


@dataclass
class FilesSummary:
    """What complete_files did, for the shard it ran (all of the inputs by default)."""

    inputs: int  # in the whole input list
    shard: object  # shards.Shard
    batches: list  # this shard's (batch number, first input, end)
    completed: int = 0  # final images written by this call
    already_done: int = 0  # inputs of the shard skipped: their final image was there
    unreadable: list = field(default_factory=list)  # inputs skipped, unreadable (a warning named each)

    @property
    def in_shard(self):
        return sum(end - first for _, first, end in self.batches)


def complete_files(inputs, generator, discriminator, out_dir="completions", options=None, *, mask_type=None,
                   center_scale=0.25, mask_file=None, gif=False, seed=0, encoder=None, progress=False, shard=None,
                   overwrite=False, logs="loss", strategy=None, **settings):
    """Complete image files and write the outputs (see the module's docstring); returns a
    FilesSummary.

    The masks: mask_type (default center), or mask_file for `file` (masks.input_masks);
    image k of the inputs takes seed + k. shard: "K/N" or a shards.Shard, the K-th of N
    parts of the batches (K from 0). overwrite: redo inputs whose final image is there.
    logs: "loss" (iteration and loss per line), "full" (and z, the original's) or "none".
    strategy: a tf.distribute strategy whose devices share each batch (the networks
    built under its scope). options and `settings`: the search's (search.search_options:
    approach, n_iter, init, lam, batch_size, blend...); encoder: the model's, where
    init="encoder" starts the search. An unreadable image of a folder is
    skipped with a warning naming it (InputError if none can be read); an unreadable file
    named in `inputs` is an InputError when its batch comes.
    """
    from .completion import complete  # TensorFlow only once there is work for it
    from .networks import image_size_of

    options = search_options(options, **settings)
    mask_type = mask_type_for(mask_type, mask_file)
    if logs not in LOGS:
        raise InputError(f"unknown logs {logs!r}: choose one of {', '.join(LOGS)}")
    shard = parse_shard(shard)
    out_dir = Path(out_dir)
    check_output_folder(out_dir, "--outDir")
    paths = expand_inputs(inputs)
    named = {Path(item) for item in inputs if not Path(item).is_dir()}  # an unreadable one stops the run
    reader = _BatchReader(paths, named, image_size_of(generator), seed, mask_type, mask_file, center_scale)
    with warnings.catch_warnings(record=True) as notices:  # said when the first batch is read: an input's error
        warnings.simplefilter("always")                     # comes alone
        options = settled(options, encoder is not None, mask_type)
    done = set() if overwrite else finished_names(out_dir / "final")
    summary = FilesSummary(inputs=len(paths), shard=shard, batches=shard_batches(len(paths), options.batch_size, shard))
    todo = [b for b in summary.batches if not all(p.stem in done for p in paths[b[1]:b[2]])]
    summary.already_done = summary.in_shard - sum(sum(p.stem not in done for p in paths[first:end])
                                                  for _, first, end in todo)
    layout = _Layout(out_dir, len(paths) > options.batch_size, uses_lowres(mask_type), gif, logs, options.n_iter)

    def search(inputs, on_snapshot, bar):
        complete(inputs.images, inputs.masks, generator, discriminator, options, encoder=encoder,
                 lowres=layout.lowres, seeds=inputs.seeds, on_snapshot=on_snapshot, progress=bar, strategy=strategy)

    def start_bar():
        for notice in notices:
            warnings.warn(notice.message)
        return tqdm(total=options.n_iter * len(todo), unit="it", desc="completing", disable=not progress)

    _complete_batches(todo, reader, search, layout, done, summary, start_bar)
    reader.warn_resized()
    if summary.unreadable and not summary.completed and not summary.already_done:
        raise InputError(reader.first_unreadable if len(summary.unreadable) == 1 else
                         f"none of the {len(summary.unreadable)} inputs could be read (the first: "
                         f"{reader.first_unreadable})")
    return summary


def _complete_batches(todo, reader, search, layout, done, summary, make_bar):
    """Search the batches `todo` one after another, each read ahead on a thread while the
    one before searches, and its outputs written on another; after Ctrl-C, what is
    finished is written, the running batch's images kept apart, and KeyboardInterrupt
    says what was kept."""
    from .completion import Interrupted

    bar = None  # made at the first batch read: a bad first input's error stays the one line on stderr
    writer, reading = BackgroundWriter(), ThreadPoolExecutor(1, thread_name_prefix="dcgan-reader")
    outputs = None
    try:
        ahead = reading.submit(reader.read, *todo[0]) if todo else None
        for i in range(len(todo)):
            inputs = ahead.result()
            ahead = reading.submit(reader.read, *todo[i + 1]) if i + 1 < len(todo) else None
            _warn_unreadable(inputs.unreadable)
            summary.unreadable.extend(str(p) for p, _ in inputs.unreadable)
            if not len(inputs.indices) or all(n in done for n in inputs.names):
                continue
            bar = bar or make_bar()
            bar.set_description(f"completing batch {i + 1}/{len(todo)}")
            outputs = _BatchOutputs(layout, inputs, writer, done, summary)
            search(inputs, outputs, bar)
            outputs = None
    except KeyboardInterrupt as stop:  # completion.Interrupted, or one between batches
        restore_sigint = ignore_sigint()  # a second Ctrl-C would break off the saving
        try:
            reading.shutdown(cancel_futures=True)
            if isinstance(stop, Interrupted) and outputs is not None:
                writer.submit(outputs.save_unfinished, stop.result.completed)
            writer.close()
            kept = _kept(summary, layout, outputs, stop)
        finally:
            restore_sigint()
        raise KeyboardInterrupt(kept) from None
    except BaseException:
        reading.shutdown(cancel_futures=True)
        writer.close(raise_errors=False)  # what was handed over is still written; the first failure is reported
        raise
    finally:
        if bar is not None:
            bar.close()
    reading.shutdown()
    writer.close()


def finished_names(final_dir):
    """The input names (without extension) whose final image is in `final_dir`."""
    try:
        with os.scandir(final_dir) as entries:
            return {e.name[:-4] for e in entries if e.name.endswith(".png") and not e.name.startswith(".")}
    except FileNotFoundError:
        return set()


def _kept(summary, layout, outputs, stop):
    """What Ctrl-C left on disk, in words."""
    where = "between batches" if outputs is None else f"in batch {outputs.number}" + (f", {stop}" if str(stop) else "")
    kept = f"{summary.completed} finished image{'s' * (summary.completed != 1)} in {layout.out_dir / 'final'}/"
    if outputs is not None and outputs.unfinished:
        n = outputs.unfinished
        kept += (f", the current state of the running batch's {n} image{'s' * (n != 1)} in "
                 f"{layout.out_dir / 'unfinished'}/ (not counted as finished: the same command completes them)")
        if layout.gif and outputs.frames:
            f = len(outputs.frames)
            kept += f" and {f} frame{'s' * (f != 1)} in {outputs.folder / 'completion.gif'}"
    return f"{where}; kept {kept}"


def _warn_unreadable(unreadable):
    for _, message in unreadable:
        warnings.warn(f"{message}: skipped")


@dataclass
class _Inputs:
    """One batch's readable inputs: their positions in the input list, names, seeds,
    images [n, size, size, 3] in [-1, 1] and masks; and the unreadable ones (path, why)."""

    number: int
    indices: np.ndarray
    names: list
    seeds: np.ndarray
    images: np.ndarray
    masks: np.ndarray
    unreadable: list


class _BatchReader:
    """Reads the inputs of a batch and makes their masks (on the reading thread)."""

    def __init__(self, paths, named, size, seed, mask_type, mask_file, center_scale):
        self.paths, self.named, self.size, self.seed = paths, named, size, seed
        self.mask_type, self.mask_file, self.center_scale = mask_type, mask_file, center_scale
        self.mask_index = None
        if mask_type == "file" and Path(mask_file).is_dir():  # every input's mask, before any work
            self.mask_index = mask_folder_index(mask_file)
            for p in paths:
                mask_path_for(mask_file, p, self.mask_index)
        self.resized, self.n_resized, self.first_unreadable = [], 0, None

    def read(self, number, first, end):
        indices, images, unreadable = [], [], []
        for k in range(first, end):
            try:
                rgb = read_rgb(self.paths[k])
            except InputError as e:
                if self.paths[k] in self.named:
                    raise
                unreadable.append((self.paths[k], str(e)))
                self.first_unreadable = self.first_unreadable or str(e)
                continue
            if rgb.shape[:2] != (self.size, self.size):
                self._resized(self.paths[k])
                rgb = center_crop_resize(rgb, self.size)
            indices.append(k)
            images.append(to_float(rgb))
        indices = np.asarray(indices, np.int64)
        seeds = self.seed + indices
        paths = [self.paths[k] for k in indices]
        masks = input_masks(paths, self.size, seeds, mask_type=self.mask_type, mask_file=self.mask_file,
                            center_scale=self.center_scale, index=self.mask_index) if len(indices) else None
        return _Inputs(number, indices, [p.stem for p in paths], seeds,
                       np.stack(images) if images else None, masks, unreadable)

    def _resized(self, path):
        self.n_resized += 1
        if len(self.resized) < 3:
            self.resized.append(Path(path).name)

    def warn_resized(self):
        if self.n_resized:
            more = self.n_resized - len(self.resized)
            shown = ", ".join(self.resized) + (f" and {more} more" if more else "")
            warnings.warn(f"{shown} not {self.size}x{self.size}: centre-cropped and resized "
                          "(align faces with align-faces for best results)")


@dataclass
class _Layout:
    """Where a run's files go, and which it writes."""

    out_dir: Path
    several_batches: bool
    lowres: bool
    gif: bool
    logs: str
    n_iter: int

    def folder(self, batch):
        return self.out_dir / f"batch_{batch:02d}" if self.several_batches else self.out_dir


class _BatchOutputs:
    """Writes one batch's Snapshots as the original's files, on the writer's thread; the
    snapshots come in the search's order."""

    def __init__(self, layout, inputs, writer, done, summary):
        self.layout, self.inputs, self.writer, self.done, self.summary = layout, inputs, writer, done, summary
        self.number, self.folder = inputs.number, layout.folder(inputs.number)
        self.frames = []
        self.unfinished = 0

    def __call__(self, snap):
        self.writer.submit(self._write, snap)

    def _write(self, snap):
        layout, folder = self.layout, self.folder
        images, masks = self.inputs.images, self.inputs.masks
        if snap.iteration == 0:
            self.frames = []
            save_grid(folder / "before.png", images)
            save_grid(folder / "masked.png", images * masks)
            if layout.lowres:
                save_grid(folder / "lowres.png", _blocky(images))
        save_grid(folder / "hats_imgs" / f"{snap.iteration:04d}.png", snap.generated)
        if layout.lowres:
            save_grid(folder / "hats_imgs" / f"{snap.iteration:04d}.lowres.png", _blocky(snap.generated))
        completed_grid = image_grid(to_uint8(snap.completed))
        save_image(folder / "completed" / f"{snap.iteration:04d}.png", completed_grid)
        if layout.logs != "none":
            _write_logs(folder / "logs", snap, full=layout.logs == "full")
        if layout.gif:
            self.frames.append(completed_grid)
        if snap.iteration == layout.n_iter:
            self._finish(snap.completed)

    def _finish(self, completed):
        """The final images (but those there already, unless overwriting), the GIF; the
        batch's unfinished images, now finished, go."""
        unfinished = self.layout.out_dir / "unfinished"
        for name, image in zip(self.inputs.names, completed):
            if name not in self.done:
                save_image(self.layout.out_dir / "final" / f"{name}.png", image)
                self.summary.completed += 1
        if unfinished.is_dir():
            for name in self.inputs.names:
                (unfinished / f"{name}.png").unlink(missing_ok=True)
        if self.layout.gif:
            save_gif(self.folder / "completion.gif", self.frames)

    def save_unfinished(self, completed):
        """After Ctrl-C: the images not done, as they stand, apart from final/; the GIF so far."""
        for name, image in zip(self.inputs.names, completed):
            if name not in self.done:
                save_image(self.layout.out_dir / "unfinished" / f"{name}.png", image)
                self.unfinished += 1
        if self.layout.gif and self.frames:
            save_gif(self.folder / "completion.gif", self.frames)


def _write_logs(folder, snap, full):
    """Each image's lines since the last snapshot: iteration, loss (and z if full); the
    files begin at iteration 0. One write per image and snapshot, whole lines only."""
    folder.mkdir(parents=True, exist_ok=True)
    mode = "w" if snap.log_iterations[0] == 0 else "a"
    for k in range(len(snap.indices)):
        if full:
            lines = [f"{it} {loss:.8g} " + " ".join(f"{v:.8g}" for v in z) + "\n"
                     for it, loss, z in zip(snap.log_iterations, snap.log_losses[:, k], snap.log_z[:, k])]
        else:
            lines = [f"{it} {loss:.8g}\n" for it, loss in zip(snap.log_iterations, snap.log_losses[:, k])]
        with open(folder / f"hats_{k:02d}.log", mode) as f:
            f.write("".join(lines))


def _blocky(images):
    """The LOWRES_BLOCK-pixel block means of images, shown at full size."""
    n, h, w, c = images.shape
    b = LOWRES_BLOCK
    means = images.reshape(n, h // b, b, w // b, b, c).mean(axis=(2, 4))
    return np.repeat(np.repeat(means, b, axis=1), b, axis=2)

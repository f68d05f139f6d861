"""Completing image files: read the inputs, build their masks, run the search and write
the original's outputs.

Under `out_dir`, for each batch of `batch_size` images (the original's layout; with more
than one batch, each batch in its own `batch_NN/` folder so that none overwrites another):

    before.png, masked.png, lowres.png (lowres mask)   grids of the inputs
    hats_imgs/NNNN.png (+ NNNN.lowres.png)              grid of G(z) at iteration NNNN
    completed/NNNN.png                                  grid of the completed images
    logs/hats_KK.log                                    image KK of the batch: one line per
                                                        iteration: iteration, loss, z
    completion.gif                                      the completed grids (with gif=True)

at iteration 0, every `out_interval` iterations and after the last one (NNNN = n_iter);
and, for every input, `final/<input name>.png`: its completed image. After Ctrl-C,
`final/` holds every input's state when it came, and the running batch's GIF its frames
so far.
"""
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError, ignore_sigint
from .images import (center_crop_resize, check_output_folder, image_grid, list_images, read_rgb, save_gif,
                     save_grid, save_image, to_float, to_uint8)
from .masks import LOWRES_BLOCK, input_masks, mask_type_for, uses_lowres
from .search import search_options, settled


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
    names = [p.stem for p in paths]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"two inputs are named {twice[0]}: outputs are named after the inputs, rename one")
    return paths


def load_inputs(paths, image_size):
    """Images [N, size, size, 3] in [-1, 1]; other sizes are centre-cropped and resized,
    with a warning."""
    images, resized = [], []
    for path in paths:
        rgb = read_rgb(path)
        if rgb.shape[:2] != (image_size, image_size):
            resized.append(Path(path).name)
            rgb = center_crop_resize(rgb, image_size)
        images.append(to_float(rgb))
    if resized:
        shown = ", ".join(resized[:3]) + (f" and {len(resized) - 3} more" if len(resized) > 3 else "")
        warnings.warn(f"{shown} not {image_size}x{image_size}: centre-cropped and resized "
                      "(align faces with align-faces for best results)")
    return np.stack(images)


def complete_files(inputs, generator, discriminator, out_dir="completions", options=None, *, mask_type=None,
                   center_scale=0.25, mask_file=None, gif=False, seed=0, encoder=None, progress=False, **settings):
    """Complete image files and write the outputs (see the module's docstring).

    The masks: mask_type (default center), or mask_file for `file` (masks.input_masks);
    image k takes seed + k. options and `settings`: the search's (search.search_options:
    approach, n_iter, init, lam, batch_size, blend...); encoder: the model's, where
    init="encoder" starts the search. Returns (paths, CompletionResult).
    """
    from .completion import Interrupted, complete  # TensorFlow only once there is work for it
    from .networks import image_size_of

    options = search_options(options, **settings)
    mask_type = mask_type_for(mask_type, mask_file)
    check_output_folder(out_dir, "--outDir")
    paths = expand_inputs(inputs)
    size = image_size_of(generator)
    images = load_inputs(paths, size)
    seeds = np.arange(seed, seed + len(paths))
    masks = input_masks(paths, size, seeds, mask_type=mask_type, mask_file=mask_file, center_scale=center_scale)
    lowres = uses_lowres(mask_type)
    options = settled(options, encoder is not None, mask_type)  # once the inputs are known good
    writer = _OutputWriter(Path(out_dir), [p.stem for p in paths], images, masks, lowres, gif, options.n_iter,
                           several_batches=len(paths) > options.batch_size)
    try:
        result = complete(images, masks, generator, discriminator, options, encoder=encoder, lowres=lowres, seeds=seeds,
                          on_snapshot=writer, progress=progress)
    except Interrupted as stop:
        restore_sigint = ignore_sigint()  # a second Ctrl-C would break off the saving
        try:
            kept = writer.save_interrupted(stop.result.completed)
        finally:
            restore_sigint()
        raise KeyboardInterrupt(f"{stop}; kept {kept}") from None
    return paths, result


class _OutputWriter:
    """Writes each Snapshot of the search as the original's files."""

    def __init__(self, out_dir, names, images, masks, lowres, gif, n_iter, several_batches):
        self.out_dir, self.names, self.images, self.masks = out_dir, names, images, masks
        self.lowres, self.gif, self.n_iter, self.several_batches = lowres, gif, n_iter, several_batches
        self.frames = []
        self.folder = out_dir  # the running batch's

    def __call__(self, snap):
        folder = self.out_dir / f"batch_{snap.batch:02d}" if self.several_batches else self.out_dir
        self.folder = folder
        images, masks = self.images[snap.indices], self.masks[snap.indices]
        if snap.iteration == 0:
            self.frames = []
            save_grid(folder / "before.png", images)
            save_grid(folder / "masked.png", images * masks)
            if self.lowres:
                save_grid(folder / "lowres.png", _blocky(images))
            (folder / "logs").mkdir(parents=True, exist_ok=True)
            for k in range(len(snap.indices)):
                (folder / "logs" / f"hats_{k:02d}.log").write_text("")
        save_grid(folder / "hats_imgs" / f"{snap.iteration:04d}.png", snap.generated)
        if self.lowres:
            save_grid(folder / "hats_imgs" / f"{snap.iteration:04d}.lowres.png", _blocky(snap.generated))
        completed_grid = image_grid(to_uint8(snap.completed))
        save_image(folder / "completed" / f"{snap.iteration:04d}.png", completed_grid)
        self._append_logs(folder / "logs", snap)
        if self.gif:
            self.frames.append(completed_grid)
        if snap.iteration == self.n_iter:
            for i, image in zip(snap.indices, snap.completed):
                save_image(self.out_dir / "final" / f"{self.names[i]}.png", image)
            if self.gif:
                save_gif(folder / "completion.gif", self.frames)

    def save_interrupted(self, completed):
        """Every input's completed image as it stands, and the GIF of the frames so far;
        says what was kept."""
        for name, image in zip(self.names, completed):
            save_image(self.out_dir / "final" / f"{name}.png", image)
        kept = f"the current state of every image ({len(self.names)}) in {self.out_dir / 'final'}/"
        if self.gif and self.frames:
            save_gif(self.folder / "completion.gif", self.frames)
            n = len(self.frames)
            kept += f" and {n} frame{'s' * (n != 1)} in {self.folder / 'completion.gif'}"
        return kept

    @staticmethod
    def _append_logs(folder, snap):
        # One write per image and snapshot, whole lines only.
        for k in range(len(snap.indices)):
            lines = [
                f"{it} {loss:.8g} " + " ".join(f"{v:.8g}" for v in z) + "\n"
                for it, loss, z in zip(snap.log_iterations, snap.log_losses[:, k], snap.log_z[:, k])
            ]
            with open(folder / f"hats_{k:02d}.log", "a") as f:
                f.write("".join(lines))


def _blocky(images):
    """The LOWRES_BLOCK-pixel block means of images, shown at full size."""
    n, h, w, c = images.shape
    b = LOWRES_BLOCK
    means = images.reshape(n, h // b, b, w // b, b, c).mean(axis=(2, 4))
    return np.repeat(np.repeat(means, b, axis=1), b, axis=2)

"""Completing real photos: fill a hole in an ordinary photo, face by face.

The model only knows aligned size x size faces, so each face of the photo is aligned
(dcgan_completion.alignment), completed in the crop, and the fill is warped back with
the inverse affine transform into the full-resolution photo:

    out, faces = complete_photo(read_rgb("me.jpg"), generator, discriminator,
                                mask=keep)           # HxW, True = keep, False = fill
    out, faces = complete_photo(rgb, generator, discriminator, mask_type="center")

The hole is given either in photo coordinates (`mask`), or as a mask type of the
aligned face (`mask_type`, as `dcgan-complete --maskType`), which is then applied to every
face. Every photo pixel outside the hole stays exactly as it was.

How a photo hole becomes a crop mask: every hole pixel p lands at q = M p in the crop
(M the 2x3 alignment matrix), and the 2x2 crop pixels around q, those a bilinear sample
at q reads, are marked missing. So the crop's known pixels never show what the hole
hides (an object to remove must not be copied back as context), however much larger
than a crop pixel a photo pixel is, or smaller.

Which face fills a hole pixel: of the faces whose crop covers it, the one whose crop
centre it is nearest to (in crop pixels), so two faces never paste over each other.
Hole pixels that no face's crop covers are left as they are, with a warning; a hole
that misses every face is an error.

Blending (`blend=True`, the default) happens twice. In crop space, the completed crop
is the Poisson blend of G(z) into the crop's known pixels (blending.poisson_blend).
Warped back, that fill is the guide of a second Poisson blend in photo space, on the
photo pixels of the hole with the photo's own pixels around it as the boundary, so the
seam matches the full-resolution photo rather than its 64x64 resampling. The crop
blend is what makes the second solve cheap: its guide already meets the context, so
the photo-space correction is small and a loose tolerance is accurate enough
(PHOTO_RTOL: half the iterations, and half the error, of guiding by G(z) itself).
Without blending, the warped-back G(z) is pasted as it is (the original's
M * y + (1 - M) * G(z), in the photo).
"""
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .alignment import DEFAULT_LANDMARKS, align_all_faces
from .errors import InputError, ignore_sigint
from .images import check_output_folder, image_grid, read_rgb, save_image, to_float, to_uint8
from .masks import check_photo_mask, load_photo_mask, make_mask, mask_path_for, mask_type_for, uses_lowres
from .search import SearchOptions, search_options, settled

# Upscaling a 64x64 fill by 2-12x (a face in a photo is 130-750 px wide): bicubic
# shows no bilinear diamonds. The guide is only a guide when blending.
FILL_INTERPOLATION = cv2.INTER_CUBIC
# Conjugate gradients of the photo-space blend stop at this relative residual. Measured
# on a 378x373 hole (lennon-1.jpg, center mask, 11 photo pixels per crop pixel): with
# the crop-blended guide, 181 iterations and within 0.38 grey levels (mean; 1.4 max) of
# the fully converged result (922 iterations at 1e-6); with G(z) itself as the guide,
# 395 iterations for 0.70 (2.9 max).
PHOTO_RTOL = 1e-3


@dataclass
class FaceCompletion:
    """One face of a photo: its alignment, crop mask, the photo pixels it filled, its fill.

    `generated` (G(z), float [-1, 1]) and `completed` (the crop with its hole filled,
    uint8; Poisson-blended with blend=True) are None for a face the hole does not touch.
    """

    matrix: np.ndarray  # 2x3 float: photo (x, y, 1) -> crop (x, y)
    crop: np.ndarray  # size x size x 3 uint8: the aligned face
    crop_mask: np.ndarray  # size x size x 3 float32: 1 = known, 0 = filled by the model
    region: np.ndarray  # H x W bool: the photo pixels this face filled
    generated: np.ndarray = None
    completed: np.ndarray = None

    @property
    def filled(self):
        """How many photo pixels this face filled."""
        return int(self.region.sum())


# ---------------------------------------------------------------- one photo


def complete_photo(photo, generator, discriminator, options=None, *, mask=None, mask_type=None, center_scale=0.25,
                   seed=0, landmarks=DEFAULT_LANDMARKS, upsample=1, predictor_path=None, name="the photo",
                   encoder=None, progress=False, **settings):
    """Fill the hole of an RGB uint8 photo: (completed photo HxWx3 uint8, [FaceCompletion]).

    mask: H x W (or H x W x 1/3) array in photo coordinates, 1/True = keep, 0 = fill.
    mask_type: a mask type of the aligned face (default "center"), for every face;
    center_scale and seed shape it as in make_mask (face k uses seed + k).
    landmarks, upsample, predictor_path: how faces are found and aligned (alignment).
    name: how messages call the photo (a file name). options and `settings`: the search's
    (search.search_options: n_iter, approach, lam...); its `blend` (default True here) is
    the Poisson blending of the module's docstring; blend=False pastes G(z) as it is.
    encoder: the model's, where the search starts (completion.complete). Faces are listed largest first; all of them go into one batched search.
    """
    options = settled(photo_options(options, **settings), encoder is not None, mask_type)
    photo = _check_photo(photo, name)
    faces = find_faces(photo, _image_size(generator), landmarks=landmarks, upsample=upsample,
                       predictor_path=predictor_path, name=name)
    faces = plan_faces(photo, faces, mask=mask, mask_type=mask_type, center_scale=center_scale,
                       seed=seed, name=name)
    fill_faces(faces, generator, discriminator, options, lowres=uses_lowres(mask_type),
               seeds=seed + np.arange(len(faces)), encoder=encoder, progress=progress)
    return paste_faces(photo, faces, blend=options.blend), faces


def photo_options(options=None, **settings):
    """The search options for photos: as search.search_options, but blending by default."""
    return search_options(options or SearchOptions(blend=True), **settings)


def _image_size(generator):
    from .networks import image_size_of  # TensorFlow only once there is work for it

    return image_size_of(generator)


def find_faces(photo, size, *, landmarks=DEFAULT_LANDMARKS, upsample=1, predictor_path=None, name="the photo"):
    """[(crop, matrix)] of every face of the photo, largest first; InputError if none."""
    faces = align_all_faces(photo, size, landmarks, upsample, predictor_path)
    if not faces:
        raise InputError(
            f"{name}: no face found (the detector finds upright frontal faces of about "
            f"{80 // 2 ** upsample} px and up at --upsample {upsample}; try --upsample {upsample + 1} "
            "for smaller faces)")
    return faces


def plan_faces(photo, faces, *, mask=None, mask_type=None, center_scale=0.25, seed=0, name="the photo"):
    """FaceCompletion for each (crop, matrix): its crop mask and the photo pixels it fills.

    Nothing is generated yet (see fill_faces). Raises InputError for a mask of the
    wrong size, a hole that misses every face, or one that covers a whole face.
    """
    height, width = photo.shape[:2]
    size = faces[0][0].shape[0]
    mask_type = mask_type_for(mask_type, mask)
    if mask_type == "file":
        hole = ~check_photo_mask(mask, (height, width), name)
        if not hole.any():
            raise InputError(f"{name}: the mask has no hole (nothing to fill): 0/black marks the pixels to fill")
        crop_holes = [splat_hole(hole, matrix, size) for _, matrix in faces]
    else:
        crop_holes = [make_mask(mask_type, size, center_scale=center_scale, seed=seed + k)[:, :, 0] == 0
                      for k in range(len(faces))]
        hole = np.zeros((height, width), bool)
        for crop_hole, (_, matrix) in zip(crop_holes, faces):
            hole |= unwarp_hole(crop_hole, matrix, (height, width))
        if not hole.any():
            raise InputError(f"{name}: mask type {mask_type!r} leaves nothing to fill")

    owner = assign_owners(hole, [matrix for _, matrix in faces], size)
    outside = int((hole & (owner < 0)).sum())
    if outside == int(hole.sum()):
        raise InputError(
            f"{name}: the hole ({outside} pixels) lies outside every face found ({len(faces)}): "
            "draw the hole over a face")
    planned = []
    for k, ((crop, matrix), crop_hole) in enumerate(zip(faces, crop_holes)):
        region = owner == k
        if region.any() and crop_hole.all() and not uses_lowres(mask_type):
            raise InputError(f"{name}: the hole covers the whole of face {k + 1} (largest first): "
                             "leave part of the face to complete from")
        crop_mask = np.repeat((~crop_hole)[:, :, None], 3, axis=2).astype(np.float32)
        planned.append(FaceCompletion(matrix=matrix, crop=crop, crop_mask=crop_mask, region=region))
    if outside:
        warnings.warn(f"{name}: {outside} of the hole's {int(hole.sum())} pixels lie outside every "
                      "aligned face and are left as they are")
    return planned


def fill_faces(faces, generator, discriminator, options=None, *, lowres=False, seeds=None, on_snapshot=None,
               encoder=None, progress=False, **settings):
    """Complete the crops of the faces that fill something, in one batched search; sets
    each one's `generated` and `completed` (Poisson-blended with the options' blend, once
    at the end). Returns the CompletionResult (or None)."""
    from .completion import Interrupted, complete  # TensorFlow only once there is work for it

    options = photo_options(options, **settings)
    todo = [f for f in faces if f.filled]
    if not todo:
        return None
    crops = to_float(np.stack([f.crop for f in todo]))
    masks = np.stack([f.crop_mask for f in todo])
    if seeds is not None:
        seeds = np.asarray(seeds)[[i for i, f in enumerate(faces) if f.filled]]
    try:
        result = complete(crops, masks, generator, discriminator, search_options(options, blend=False), lowres=lowres,
                          seeds=seeds, on_snapshot=on_snapshot, encoder=encoder, progress=progress)
    except Interrupted as stop:  # each face as it stands, then stop
        restore_sigint = ignore_sigint()
        try:
            _set_fills(todo, crops, masks, stop.result, options.blend)
        finally:
            restore_sigint()
        raise
    _set_fills(todo, crops, masks, result, options.blend)
    return result


def _set_fills(todo, crops, masks, result, blend):
    completed = result.completed
    if blend:
        from .blending import poisson_blend

        completed = poisson_blend(crops, result.generated, masks)
    for face, generated, crop in zip(todo, result.generated, completed):
        face.generated, face.completed = generated, to_uint8(crop)


def paste_faces(photo, faces, *, blend=True):
    """The photo with each face's fill warped back into its region; every other pixel as it was."""
    out = np.array(photo, np.uint8, copy=True)
    for face in faces:
        if not face.filled:
            continue
        top, bottom, left, right = _bounding_box(face.region, out.shape[:2])
        region = face.region[top:bottom, left:right]
        # The crop seen from the patch: patch (u, v) is photo (left + u, top + v).
        matrix = face.matrix.astype(np.float64).copy()
        matrix[:, 2] += matrix[:, :2] @ [left, top]
        source = to_float(face.completed) if blend else face.generated
        guide = cv2.warpAffine(np.asarray(source, np.float32), matrix, (right - left, bottom - top),
                               flags=FILL_INTERPOLATION | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        patch = out[top:bottom, left:right]
        if blend:
            from .blending import poisson_blend

            guide = poisson_blend(to_float(patch), guide, (~region)[:, :, None].astype(np.float32), rtol=PHOTO_RTOL)
        patch[region] = to_uint8(guide)[region]
    return out


# ---------------------------------------------------------------- geometry of holes


def splat_hole(hole, matrix, size):
    """The crop pixels a photo hole reaches: size x size bool, True = missing.

    Each hole pixel p lands at q = matrix @ (x, y, 1) in the crop; the 2x2 crop pixels
    around q (those a bilinear sample at q reads) are marked. Hole pixels landing
    outside the crop mark nothing.
    """
    ys, xs = np.nonzero(hole)
    q = _apply(matrix, xs, ys)
    base = np.floor(q).astype(np.int64)
    crop_hole = np.zeros((size, size), bool)
    for dx in (0, 1):
        for dy in (0, 1):
            cx, cy = base[0] + dx, base[1] + dy
            inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
            crop_hole[cy[inside], cx[inside]] = True
    return crop_hole


def unwarp_hole(crop_hole, matrix, shape):
    """The photo pixels (H x W bool) whose nearest crop pixel under `matrix` is in crop_hole."""
    size = crop_hole.shape[0]
    # Only the photo pixels around the crop's footprint can land in it.
    corners = np.float64([[-1, -1], [size, -1], [size, size], [-1, size]])
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    footprint = corners @ inverse[:, :2].T + inverse[:, 2]
    left, top = np.clip(np.floor(footprint.min(axis=0)).astype(int), 0, None)
    right, bottom = np.minimum(np.ceil(footprint.max(axis=0)).astype(int) + 1, (shape[1], shape[0]))
    hole = np.zeros(shape, bool)
    if left >= right or top >= bottom:
        return hole
    ys, xs = np.mgrid[top:bottom, left:right]
    cx, cy, inside = _nearest_crop_pixel(matrix, xs, ys, size)
    hole[top:bottom, left:right] = inside & crop_hole[np.where(inside, cy, 0), np.where(inside, cx, 0)]
    return hole


def assign_owners(hole, matrices, size):
    """H x W int: for each hole pixel, the face (index into matrices) that fills it, else -1.

    A face can fill a pixel whose nearest crop pixel lies in its crop; of those faces,
    the one whose crop centre is nearest.
    """
    owner = np.full(hole.shape, -1, np.int64)
    ys, xs = np.nonzero(hole)
    best = np.full(len(xs), np.inf)
    who = np.full(len(xs), -1, np.int64)
    centre = (size - 1) / 2
    for k, matrix in enumerate(matrices):
        qx, qy = _apply(matrix, xs, ys)
        _, _, inside = _nearest_crop_pixel(matrix, xs, ys, size)
        distance = np.where(inside, np.hypot(qx - centre, qy - centre), np.inf)
        nearer = distance < best
        best[nearer], who[nearer] = distance[nearer], k
    owner[ys, xs] = who
    return owner


def _nearest_crop_pixel(matrix, xs, ys, size):
    """(column, row, inside the crop) of the crop pixel nearest to where photo pixels land."""
    qx, qy = _apply(matrix, xs, ys)
    cx, cy = np.floor(qx + 0.5).astype(np.int64), np.floor(qy + 0.5).astype(np.int64)
    return cx, cy, (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)


def _apply(matrix, xs, ys):
    m = np.asarray(matrix, np.float64)
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def _bounding_box(region, shape):
    """(top, bottom, left, right) of the region grown by one pixel (its Poisson boundary)."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return (max(rows[0] - 1, 0), min(rows[-1] + 2, shape[0]),
            max(cols[0] - 1, 0), min(cols[-1] + 2, shape[1]))


# ---------------------------------------------------------------- input checks


def _check_photo(photo, name):
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise InputError(f"{name}: expected an HxWx3 uint8 RGB photo, got {photo.dtype} of shape "
                         f"{photo.shape} (read it with images.read_rgb)")
    return photo


# ---------------------------------------------------------------- files


@dataclass
class PhotoOutput:
    photo: Path  # the input
    output: Path  # the completed photo
    faces: list  # [FaceCompletion], largest first


def complete_photo_files(*args, **kwargs):
    """Complete the faces of photo files (the arguments of photo_completions): [PhotoOutput],
    once every photo is written."""
    return list(photo_completions(*args, **kwargs))


def photo_completions(inputs, generator, discriminator, out_dir="completions", options=None, *, mask_type=None,
                      mask_file=None, center_scale=0.25, seed=0, landmarks=DEFAULT_LANDMARKS, upsample=1,
                      predictor_path=None, encoder=None, progress=False, **settings):
    """Complete the faces of photo files: `out_dir/<photo name>.png` per photo, and
    `out_dir/faces/<photo name>-<k>.png` per completed face (aligned crop, masked crop,
    completed crop, side by side). Yields a PhotoOutput for each photo once it is written.

    mask_file: a mask image in photo coordinates (white = keep) for every photo, or a
    folder of them named as the photos; else mask_type, on every aligned face. Photos go
    in groups: they are read, aligned and masked until their faces to fill make a batch
    (the options' batch_size), then those faces are completed in one batched search and
    the group's photos written and let go before the next group is read, so memory holds
    one group however many photos there are. A bad input stops the run before its group's
    search, with the earlier groups' photos written. Face k of the run takes seed + k,
    whatever group it lands in. Outputs are PNG (lossless: pixels outside the hole stay
    the input's exactly). options and `settings`: the search's, as for complete_photo.
    """
    from .completion import Interrupted
    from .completion_files import expand_inputs

    mask_type = mask_type_for(mask_type, mask_file)
    options = settled(photo_options(options, **settings), encoder is not None, mask_type)
    check_output_folder(out_dir, "--outDir")
    paths = expand_inputs(inputs)
    find = functools.partial(find_faces, size=_image_size(generator), landmarks=landmarks, upsample=upsample,
                             predictor_path=predictor_path)
    begun = 0
    for group in _photo_groups(paths, find, mask_type, mask_file, center_scale, seed, options.batch_size, progress):
        begun += len(group.paths)
        try:
            fill_faces([face for faces in group.plans for face in faces], generator, discriminator, options,
                       lowres=uses_lowres(mask_type), seeds=group.seeds, encoder=encoder, progress=progress)
        except Interrupted as stop:
            restore_sigint = ignore_sigint()  # a second Ctrl-C would break off the saving
            try:
                _write_photos(out_dir, group, options.blend)
            finally:
                restore_sigint()
            raise KeyboardInterrupt(f"{stop}; kept the current state of every photo begun ({begun} of {len(paths)}) "
                                    f"in {out_dir}/") from None
        yield from _write_photos(out_dir, group, options.blend)


@dataclass
class _PhotoGroup:
    paths: list
    photos: list  # RGB uint8
    plans: list  # [[FaceCompletion]] a photo
    seeds: list  # a face


def _photo_groups(paths, find, mask_type, mask_file, center_scale, seed, batch_size, progress):
    """_PhotoGroups of consecutive photos, each read, its faces found (by `find`) and
    planned, until a group's faces to fill make `batch_size` (the last group: what is
    left); face k of the run takes seed + k."""
    from tqdm import tqdm

    group, first, to_fill = _PhotoGroup([], [], [], []), seed, 0
    for path in tqdm(paths, desc="photos", unit="photo", disable=not progress):
        photo = read_rgb(path)
        mask = load_photo_mask(mask_path_for(mask_file, path), photo.shape, path) if mask_type == "file" else None
        faces = plan_faces(photo, find(photo, name=str(path)), mask=mask, mask_type=mask_type,
                           center_scale=center_scale, seed=first, name=str(path))
        group.paths.append(path)
        group.photos.append(photo)
        group.plans.append(faces)
        group.seeds.extend(first + np.arange(len(faces)))
        first += len(faces)
        to_fill += sum(face.filled > 0 for face in faces)  # counted once: `filled` sums a photo-sized hole
        if to_fill >= batch_size:
            yield group
            group, to_fill = _PhotoGroup([], [], [], []), 0
    if group.paths:
        yield group


def _write_photos(out_dir, group, blend):
    out_dir = Path(out_dir)
    outputs = []
    for path, photo, faces in zip(group.paths, group.photos, group.plans):
        target = out_dir / f"{path.stem}.png"
        save_image(target, paste_faces(photo, faces, blend=blend))
        for k, face in enumerate(faces):
            if face.filled:
                masked = (face.crop * face.crop_mask.astype(np.uint8))
                save_image(out_dir / "faces" / f"{path.stem}-{k + 1}.png",
                           image_grid(np.stack([face.crop, masked, face.completed])))
        outputs.append(PhotoOutput(photo=path, output=target, faces=faces))
    return outputs

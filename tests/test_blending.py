import numpy as np
import pytest

from dcgan_completion.blending import poisson_blend
from dcgan_completion.errors import InputError


def center_mask(size):
    m = np.ones((size, size, 1), np.float32)
    m[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0
    return m


def left_mask(size):
    m = np.ones((size, size, 1), np.float32)
    m[:, : size // 2] = 0
    return m


def random_mask(size, seed=0):
    return (np.random.default_rng(seed).random((size, size, 1)) >= 0.2).astype(np.float32)


def grid_mask(size):
    m = np.zeros((size, size, 1), np.float32)
    m[::4, ::4] = 1
    return m


def border_mask(size):
    """A hole touching the top border and a lone hole pixel near the bottom-left corner."""
    m = np.ones((size, size, 1), np.float32)
    m[0:4, 2:7] = 0
    m[size - 2, 1] = 0
    return m


def random_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape).astype(np.float32), rng.uniform(-1, 1, shape).astype(np.float32)


def ramp(size):
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    return np.stack([1.6 * xx - 0.8, 0.9 * yy - 0.5, 0.5 * xx + 0.7 * yy - 0.6], -1).astype(np.float32)


def boundary_jump(x, mask):
    """Mean |x_in - x_out| over 4-neighbour pairs with one pixel in the hole and one known."""
    hole = mask[..., 0] == 0
    jumps = []
    for a, b, ha, hb in ((x[1:], x[:-1], hole[1:], hole[:-1]), (x[:, 1:], x[:, :-1], hole[:, 1:], hole[:, :-1])):
        straddle = ha != hb
        jumps.append(np.abs(a - b)[straddle])
    return np.concatenate(jumps).mean()


def dense_poisson_solution(image, generated, mask):
    """The hole pixels from numpy.linalg.solve with the full grid's graph Laplacian L:
    L[hole, hole] x_hole = (L g)[hole] - L[hole, known] y_known, per channel."""
    h, w, c = image.shape
    n = h * w
    lap = np.zeros((n, n))
    for i in range(h):
        for j in range(w):
            for p, q in ((i + 1, j), (i, j + 1)):
                if p < h and q < w:
                    a, b = i * w + j, p * w + q
                    lap[a, a] += 1
                    lap[b, b] += 1
                    lap[a, b] -= 1
                    lap[b, a] -= 1
    hole = mask[..., 0].reshape(-1) == 0
    known = ~hole
    y = image.reshape(n, c).astype(np.float64)
    g = generated.reshape(n, c).astype(np.float64)
    rhs = (lap @ g)[hole] - lap[np.ix_(hole, known)] @ y[known]
    x = y.copy()
    x[hole] = np.linalg.solve(lap[np.ix_(hole, hole)], rhs)
    return x.reshape(h, w, c)


@pytest.mark.parametrize("make_mask", [center_mask, left_mask, random_mask, grid_mask])
def test_known_pixels_are_kept_bit_for_bit(make_mask):
    images, generated = random_pair((2, 16, 16, 3))
    mask = make_mask(16)
    out = poisson_blend(images, generated, mask)
    assert out.shape == images.shape and out.dtype == images.dtype
    known = np.broadcast_to(mask, images.shape) == 1
    assert np.array_equal(out[known], images[known])
    assert not np.allclose(out[~known], images[~known])


@pytest.mark.parametrize("make_mask", [center_mask, left_mask])
def test_offset_fill_is_pulled_onto_the_ramp_and_the_seam_disappears(make_mask):
    size = 16
    image = ramp(size)
    generated = image + 0.3  # right gradients, wrong brightness
    mask = make_mask(size)
    pasted = np.where(mask == 1, image, generated)
    blended = poisson_blend(image, generated, mask)
    np.testing.assert_allclose(blended, image, atol=1e-5)
    true_jump = boundary_jump(image, mask)
    assert boundary_jump(pasted, mask) > true_jump + 0.2
    assert boundary_jump(blended, mask) == pytest.approx(true_jump, abs=1e-5)


@pytest.mark.parametrize("make_mask", [border_mask, grid_mask, random_mask, left_mask])
def test_solution_equals_a_dense_solve_of_the_poisson_equation(make_mask):
    image, generated = random_pair((8, 8, 3), seed=1)
    mask = make_mask(8)
    exact = dense_poisson_solution(image, generated, mask)
    np.testing.assert_allclose(poisson_blend(image, generated, mask), exact, atol=2e-5)
    # float64 input is solved in float64, to the tolerance asked for.
    x64 = poisson_blend(image.astype(np.float64), generated.astype(np.float64), mask, rtol=1e-12)
    np.testing.assert_allclose(x64, exact, atol=1e-10)


def test_mask_without_known_pixels_returns_generated_and_full_mask_returns_image():
    images, generated = random_pair((2, 8, 8, 3))
    masks = np.stack([np.zeros((8, 8, 1)), np.ones((8, 8, 1))])
    out = poisson_blend(images, generated, masks)
    assert np.array_equal(out[0], generated[0])
    assert np.array_equal(out[1], images[1])


def test_batch_of_mixed_masks_equals_per_image_results():
    size = 16
    masks = np.stack([center_mask(size), left_mask(size), random_mask(size), grid_mask(size),
                      np.zeros((size, size, 1), np.float32)])
    images, generated = random_pair((len(masks), size, size, 3), seed=2)
    batch = poisson_blend(images, generated, masks)
    for i in range(len(masks)):
        single = poisson_blend(images[i], generated[i], masks[i])
        np.testing.assert_allclose(batch[i], single, atol=1e-6)


def test_one_mask_for_the_batch_and_per_channel_masks():
    images, generated = random_pair((3, 8, 8, 3), seed=3)
    shared = border_mask(8)
    np.testing.assert_array_equal(poisson_blend(images, generated, shared),
                                  poisson_blend(images, generated, np.repeat(shared[None], 3, 0)))
    per_channel = np.concatenate([center_mask(8), left_mask(8), grid_mask(8)], -1)
    out = poisson_blend(images[0], generated[0], per_channel)
    for ch in range(3):
        exact = dense_poisson_solution(images[0], generated[0], per_channel[..., ch : ch + 1])
        np.testing.assert_allclose(out[..., ch], exact[..., ch], atol=2e-5)


@pytest.mark.parametrize("images, generated, masks, message", [
    (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 3)), np.full((2, 8, 8, 1), 0.5), "only 1 .known pixel. and 0"),
    (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 4, 3)), np.ones((2, 8, 8, 1)), "same shape"),
    (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 3)), np.ones((2, 8, 8, 2)), r"masks must be \[N, H, W, 1 or 3\]"),
    (np.zeros((8, 8)), np.zeros((8, 8)), np.ones((8, 8)), r"images must be \[N, H, W, C\]"),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 1)), "floats in"),
])
def test_bad_input_is_a_clear_error(images, generated, masks, message):
    with pytest.raises(InputError, match=message):
        poisson_blend(images, generated, masks)

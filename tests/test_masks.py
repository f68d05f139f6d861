import numpy as np
import pytest
from PIL import Image

from dcgan_completion.errors import InputError
from dcgan_completion.masks import (
    MASK_TYPES, check_masks, load_mask, load_masks, make_mask, make_masks, uses_lowres, weighted_context,
)


def keep_map(mask):
    """The 2-D keep map of a mask, after checking its channels agree and it is 0/1."""
    assert mask.dtype == np.float32 and mask.shape[2] == 3
    assert (mask == mask[:, :, :1]).all()
    assert np.isin(mask, (0, 1)).all()
    return mask[:, :, 0].astype(bool)


@pytest.mark.parametrize("size,scale,lo,hi", [(16, 0.25, 4, 12), (64, 0.25, 16, 48), (16, 0.3, 4, 11)])
def test_center_removes_the_square_l_to_u(size, scale, lo, hi):
    keep = keep_map(make_mask("center", size, center_scale=scale))
    expected = np.ones((size, size), bool)
    expected[lo:hi, lo:hi] = False
    np.testing.assert_array_equal(keep, expected)


def test_halves_grid_full_and_lowres():
    n = 16
    rows, cols = np.mgrid[:n, :n]
    np.testing.assert_array_equal(keep_map(make_mask("left", n)), cols >= 8)
    np.testing.assert_array_equal(keep_map(make_mask("right", n)), cols < 8)
    np.testing.assert_array_equal(keep_map(make_mask("top", n)), rows >= 8)
    np.testing.assert_array_equal(keep_map(make_mask("bottom", n)), rows < 8)
    np.testing.assert_array_equal(keep_map(make_mask("full", n)), np.ones((n, n), bool))
    np.testing.assert_array_equal(keep_map(make_mask("grid", n)), (rows % 4 == 0) & (cols % 4 == 0))
    assert keep_map(make_mask("grid", n)).sum() == 16
    assert not keep_map(make_mask("lowres", n)).any()
    assert uses_lowres("lowres") and not any(uses_lowres(t) for t in MASK_TYPES if t != "lowres")


@pytest.mark.parametrize("kind,missing", [("random", 0.2), ("random80", 0.8)])
def test_random_masks_miss_their_fraction_per_image_seed(kind, missing):
    masks = make_masks(kind, 64, [0, 1, 2])
    for mask in masks:
        assert abs((1 - keep_map(mask).mean()) - missing) < 0.03  # 4096 pixels: 3 sigma ~ 0.019
    assert not (masks[0] == masks[1]).all()
    np.testing.assert_array_equal(make_mask(kind, 64, seed=1), masks[1])  # the seed alone decides


def test_half_is_one_of_the_four_halves_drawn_from_the_seed():
    halves = {t: keep_map(make_mask(t, 16)) for t in ("left", "right", "top", "bottom")}
    seen = set()
    for seed in range(40):
        keep = keep_map(make_mask("half", 16, seed=seed))
        (name,) = [t for t, h in halves.items() if (h == keep).all()]
        seen.add(name)
        np.testing.assert_array_equal(make_mask("half", 16, seed=seed), make_mask("half", 16, seed=seed))
    assert seen == set(halves)


def test_bad_mask_types_and_scales_are_clear_errors():
    with pytest.raises(InputError, match="unknown mask type 'ring'"):
        make_mask("ring", 16)
    with pytest.raises(InputError, match="maskFile"):
        make_mask("file", 16)
    with pytest.raises(InputError, match="centerScale"):
        make_mask("center", 16, center_scale=0.6)
    with pytest.raises(InputError, match="centerScale"):
        make_mask("center", 16, center_scale=0)
    with pytest.raises(InputError, match="centerScale 0.5 leaves no hole in a 16x16 image"):
        make_mask("center", 16, center_scale=0.5)
    with pytest.raises(InputError, match="leaves no hole in a 64x64 image"):
        make_mask("center", 64, center_scale=0.5)
    assert (make_mask("center", 16, center_scale=0.45) == 0).sum() == 3  # int(7.2):int(8.8) = one pixel


def save_grey(path, array):
    Image.fromarray(np.asarray(array, np.uint8), "L").save(path)
    return path


def test_mask_file_white_keeps(tmp_path):
    grey = np.zeros((8, 8), np.uint8)
    grey[:, 4:] = 255
    grey[0, 0] = 200  # light grey: kept
    grey[1, 5] = 100  # dark grey: filled
    keep = keep_map(load_mask(save_grey(tmp_path / "m.png", grey), 8))
    expected = grey >= 128
    np.testing.assert_array_equal(keep, expected)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:, :] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(keep_map(load_mask(tmp_path / "rgb.png", 8)), rgb[:, :, 0] > 0)


def test_mask_file_errors(tmp_path):
    with pytest.raises(InputError, match=r"is 8x6 but the images are 8x8"):
        load_mask(save_grey(tmp_path / "small.png", np.full((6, 8), 255)), 8)
    with pytest.raises(InputError, match="keeps no pixel"):
        load_mask(save_grey(tmp_path / "black.png", np.zeros((8, 8))), 8)
    with pytest.raises(InputError, match="no such file"):
        load_mask(tmp_path / "none.png", 8)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read"):
        load_mask(tmp_path / "junk.png", 8)


def test_mask_folder_gives_each_input_its_own_mask(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    a, b = np.full((8, 8), 255), np.full((8, 8), 255)
    a[:2] = 0
    b[:, :3] = 0
    save_grey(folder / "a.png", a)
    save_grey(folder / "b.png", b)
    masks = load_masks(folder, ["photos/a.jpg", "other/b.png", "a.png"], 8)
    assert masks.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(keep_map(masks[0]), a > 0)
    np.testing.assert_array_equal(keep_map(masks[1]), b > 0)
    np.testing.assert_array_equal(masks[2], masks[0])
    with pytest.raises(InputError, match="no mask for c.png"):
        load_masks(folder, ["c.png"], 8)
    one = load_masks(folder / "b.png", ["x.png", "y.png"], 8)
    assert one.shape == (2, 8, 8, 3) and (one[0] == one[1]).all()


def test_check_masks_rejects_masks_that_keep_nothing():
    masks = np.stack([make_mask("center", 8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(InputError, match="mask of image 1 keeps no pixel"):
        check_masks(masks)
    check_masks(masks, lowres=True)  # the lowres context needs no known pixel
    with pytest.raises(InputError, match="only 0"):
        check_masks(np.full((1, 8, 8, 3), 0.5))


def direct_weights(keep, window=7):
    """W_i = sum_{j in N(i)} (1 - M_j) / |N(i)| for known i, by loops over the window."""
    h, w = keep.shape
    r = window // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            if not keep[y, x]:
                continue
            ys, xs = range(max(0, y - r), min(h, y + r + 1)), range(max(0, x - r), min(w, x + r + 1))
            neighbours = [(yy, xx) for yy in ys for xx in xs]
            out[y, x] = sum(1 - keep[j] for j in neighbours) / len(neighbours)
    return out


@pytest.mark.parametrize("mask_type", ["center", "random", "left", "grid"])
def test_weighted_context_matches_a_direct_loop(mask_type):
    mask = make_mask(mask_type, 16, seed=3)
    weights = weighted_context(mask)
    assert weights.shape == mask.shape and weights.dtype == np.float32
    expected = direct_weights(keep_map(mask))
    for c in range(3):
        np.testing.assert_allclose(weights[:, :, c], expected, atol=1e-6)


def test_weighted_context_values_by_hand():
    keep = np.ones((9, 9), bool)
    keep[4, 4] = False  # one missing pixel in the middle
    weights = weighted_context(np.repeat(keep[:, :, None], 3, 2).astype(np.float32))[:, :, 0]
    assert weights[4, 4] == 0  # missing pixels get no weight
    np.testing.assert_allclose(weights[3, 3], 1 / 49)  # full 7x7 window around it
    np.testing.assert_allclose(weights[0, 0], 0)  # 4 away: outside the window
    np.testing.assert_allclose(weights[1, 1], 1 / 25)  # window clipped at the border: 5x5
    batch = weighted_context(np.stack([make_mask("center", 16), make_mask("left", 16)]))
    np.testing.assert_allclose(batch[1], weighted_context(make_mask("left", 16)))

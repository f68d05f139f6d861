import warnings

import numpy as np
import pytest
from PIL import Image

from dcgan_completion import data
from dcgan_completion.errors import InputError
from dcgan_completion.images import center_crop_resize


def write_ids(folder, count, size=8):
    """Images whose every pixel is 4 * i, so a batch tells which files it holds."""
    folder.mkdir(exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((size, size, 3), 4 * i, np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def ids(batch):
    """File ids of a batch of such images."""
    values = (np.asarray(batch) + 1.0) * 127.5
    return [int(round(v)) // 4 for v in values[:, 0, 0, 0]]


def test_each_epoch_is_a_fresh_seeded_permutation(tmp_path):
    files = data.dataset_files(write_ids(tmp_path / "d", 12), batch_size=4)
    batches = list(data.image_batches(files, 8, 4, seed=5, epochs=3).as_numpy_iterator())
    assert len(batches) == 9 and batches[0].shape == (4, 8, 8, 3) and batches[0].dtype == np.float32
    epochs = [sum((ids(b) for b in batches[e * 3 : e * 3 + 3]), []) for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(12))
    assert epochs[0] != epochs[1] != epochs[2]
    again = list(data.image_batches(files, 8, 4, seed=5, epochs=3).as_numpy_iterator())
    assert [ids(b) for b in again] == [ids(b) for b in batches]
    other_seed = list(data.image_batches(files, 8, 4, seed=6, epochs=1).as_numpy_iterator())
    assert sum((ids(b) for b in other_seed), []) != epochs[0]


def test_resuming_inside_an_epoch_continues_the_same_stream(tmp_path):
    files = data.dataset_files(write_ids(tmp_path / "d", 12), batch_size=4)
    full = [ids(b) for b in data.image_batches(files, 8, 4, seed=1, epochs=3).as_numpy_iterator()]
    tail = [ids(b) for b in data.image_batches(files, 8, 4, seed=1, first_epoch=1, first_batch=2, epochs=3).as_numpy_iterator()]
    assert tail == full[5:]


def test_full_batches_only_and_train_size_caps_each_epoch(tmp_path):
    files = data.dataset_files(write_ids(tmp_path / "d", 11), batch_size=4)
    assert data.steps_per_epoch(11, 4) == 2
    assert data.steps_per_epoch(11, 4, train_size=8) == 2 and data.steps_per_epoch(11, 4, train_size=7) == 1
    batches = [ids(b) for b in data.image_batches(files, 8, 4, seed=1, epochs=2).as_numpy_iterator()]
    assert len(batches) == 4 and all(len(b) == 4 for b in batches)
    assert len(set(batches[0] + batches[1])) == 8  # no image twice within an epoch
    capped = list(data.image_batches(files, 8, 4, seed=1, train_size=5, epochs=3).as_numpy_iterator())
    assert len(capped) == 3


def test_pixels_scaled_as_the_original(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    folder = tmp_path / "d"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(rgb).save(folder / f"{i}.png")
    batch = next(data.image_batches(data.dataset_files(folder, 2), 8, 2).as_numpy_iterator())
    np.testing.assert_allclose(batch[0], rgb / 127.5 - 1.0, atol=1e-6)


def test_grayscale_rgba_and_corrupt_files(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(gray, "L").save(folder / "gray.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(folder / "ok.jpg")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    noise = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg")
    whole = (tmp_path / "whole.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.txt").write_text("ignored: not an image extension")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = data.dataset_files(folder, batch_size=3)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "corrupt.jpg" in messages[0] and "empty.png" in messages[1] and "truncated.jpg" in messages[2]
    assert [f.rsplit("/", 1)[-1] for f in files] == ["gray.png", "ok.jpg", "rgba.png"]
    images = {f.rsplit("/", 1)[-1]: data.fit_image(data._decode(f), 8).numpy() for f in files}
    np.testing.assert_allclose(images["gray.png"], np.repeat(gray[..., None], 3, -1) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(images["rgba.png"][..., 0], 200 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(images["rgba.png"][..., 1:], -1.0, atol=1e-6)


def test_other_sizes_are_centre_cropped_and_resized():
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    # The centre 16x16 square of a 16x24 image, used as it is at size 16.
    np.testing.assert_allclose(data.fit_image(wide, 16).numpy(), wide[:, 4:20] / 127.5 - 1, atol=1e-6)
    # is_crop (the original's): the centre 8x8 at full resolution.
    np.testing.assert_allclose(data.fit_image(wide, 8, is_crop=True).numpy(), wide[4:12, 8:16] / 127.5 - 1, atol=1e-6)
    # Otherwise the centre square is resized; close to PIL's bicubic (images.center_crop_resize).
    smooth = np.asarray(Image.fromarray(wide).resize((96, 64), Image.BILINEAR))
    ours = (data.fit_image(smooth, 16).numpy() + 1) * 127.5
    assert ours.shape == (16, 16, 3)
    assert np.abs(ours - center_crop_resize(smooth, 16)).mean() < 3.0


def test_missing_empty_and_too_small_folders(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        data.dataset_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .png/.jpg/.jpeg"):
        data.dataset_files(tmp_path / "empty")
    write_ids(tmp_path / "few", 3)
    with pytest.raises(InputError, match="3 readable images, fewer than one batch of 4"):
        data.dataset_files(tmp_path / "few", batch_size=4)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(4):
        (broken / f"{i}.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="0 readable images"):
            data.dataset_files(broken, batch_size=2)

import numpy as np
import pytest
from PIL import Image

from dcgan_completion.cli.gif import main
from dcgan_completion.errors import InputError
from dcgan_completion.images import save_gif, save_image


def read_gif(path):
    """(frames as RGB arrays, per-frame durations in ms, loop count or None)."""
    with Image.open(path) as im:
        frames, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
        return frames, durations, im.info.get("loop")


def solid(rgb, size=(6, 4)):
    return np.broadcast_to(np.array(rgb, np.uint8), size + (3,)).copy()


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def test_save_gif_frames_timing_and_loop(tmp_path):
    frames = [solid(c) for c in COLOURS]
    save_gif(tmp_path / "a.gif", frames)
    read, durations, loop = read_gif(tmp_path / "a.gif")
    assert len(read) == 4 and durations == [100] * 4 and loop == 0
    for got, want in zip(read, frames):
        np.testing.assert_array_equal(got, want)
    save_gif(tmp_path / "b.gif", frames[:2], delay_ms=250, loop=None)
    _, durations, loop = read_gif(tmp_path / "b.gif")
    assert durations == [250, 250] and loop is None  # plays once
    floats = [np.full((4, 4, 3), -1.0), np.full((4, 4, 3), 1.0)]  # [-1, 1] images are converted
    save_gif(tmp_path / "c.gif", floats)
    read, _, _ = read_gif(tmp_path / "c.gif")
    assert read[0].max() == 0 and read[1].min() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "b.gif", "c.gif"]  # no temporary left


def test_save_gif_errors(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        save_gif(tmp_path / "x.gif", [])
    with pytest.raises(InputError, match="differ in size"):
        save_gif(tmp_path / "x.gif", [solid(COLOURS[0]), solid(COLOURS[1], (5, 5))])
    assert not list(tmp_path.iterdir())


def test_make_gif_takes_frames_in_name_order(tmp_path, capsys):
    frames = tmp_path / "completed"
    for name, colour in zip(["0100.png", "0000.png", "0050.png"], COLOURS):
        save_image(frames / name, solid(colour))
    (frames / "notes.txt").write_text("not a frame")
    main([str(frames), "-o", str(tmp_path / "out.gif"), "--delay", "20", "--loop", "3"])
    read, durations, loop = read_gif(tmp_path / "out.gif")
    assert [tuple(f[0, 0]) for f in read] == [COLOURS[1], COLOURS[2], COLOURS[0]]
    assert durations == [200] * 3 and loop == 3
    assert "3 frames" in capsys.readouterr().out
    main([str(frames), "-o", str(tmp_path / "default.gif")])
    _, durations, loop = read_gif(tmp_path / "default.gif")
    assert durations == [100] * 3 and loop == 0  # convert -delay 10 -loop 0


@pytest.mark.parametrize("setup,args,message", [
    (None, ["missing", "-o", "o.gif"], "is not a folder"),
    ("empty", ["empty", "-o", "o.gif"], "holds no .png/.jpg/.jpeg images"),
    ("mixed", ["mixed", "-o", "o.gif"], "frames differ in size (4x4, 4x6)"),
    ("junk", ["junk", "-o", "o.gif"], "cannot read image"),
    ("empty", ["empty", "-o", "o.gif", "--delay", "-1"], "argument --delay: must be >= 0, got -1"),
])
def test_make_gif_errors(tmp_path, capsys, monkeypatch, setup, args, message):
    monkeypatch.chdir(tmp_path)
    if setup:
        (tmp_path / setup).mkdir()
    if setup == "mixed":
        save_image(tmp_path / setup / "a.png", solid(COLOURS[0]))
        save_image(tmp_path / setup / "b.png", solid(COLOURS[1], (4, 4)))
    if setup == "junk":
        (tmp_path / setup / "a.png").write_bytes(b"junk")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("make-gif: error: ") and message in err[-1]
    assert not (tmp_path / "o.gif").exists()

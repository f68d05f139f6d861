"""Try the installed tools on bad input and interruptions; one line per case with its verdict.

    python scripts/try_bad_inputs.py [-k SUBSTRING] [--jobs 2] [--keep DIR]

Runs every case of the catalogue (issue 12's and more: missing and empty folders,
corrupt, truncated, 16-bit and oversized images, wrong sizes, missing and damaged
checkpoints, bad flag values, outputs that cannot be written, Ctrl-C once and twice)
against the tools on PATH or beside this Python, in a temporary folder, on small
inputs (8x8 images, a tiny 8x8 model that train-dcgan makes first). A case is clean
when the exit code is the right one (2 for bad input, 130 for Ctrl-C, 0 where success
is right), nothing prints a traceback or TensorFlow's start-up lines, an error is one
line `tool: error: ...` naming what it should, and the files the case expects exist.
As root, a small tmpfs is mounted for a full disk and a read-only folder (else those
cases are skipped). Exit code: the number of cases that are not clean.
"""
import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TOOLS = ("dcgan-complete", "train-dcgan", "align-faces", "make-gif", "dcgan-convert")
# What TensorFlow and absl print at start-up, and Python's own tracebacks.
NOISE = re.compile(r"oneDNN|cuda|absl::|^[IWE]\d{4} |rebuild TensorFlow|ParseError|Exception ignored|Traceback")
TINY = ["--imgSize", "8", "--nIter", "2"]


def tool(name):
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).is_file():
        sys.exit(f"{name} is not installed (pip install . first)")
    return found


@dataclass
class Case:
    name: str
    argv: list  # tool name first
    expect: int = 2  # exit code
    names: str = None  # the error line must contain this (the user's path, the flag)
    files: list = field(default_factory=list)  # paths that must exist afterwards
    gone: list = field(default_factory=list)  # paths that must not exist afterwards
    check: object = None  # f(stdout + stderr) -> reason it is not clean, or None
    interrupt: tuple = ()  # (text to wait for, number of Ctrl-C)
    skip: str = None


def verdict(case, code, out, err):
    """None if clean, else why not."""
    text = out + err
    if code != case.expect:
        return f"exit {code}, expected {case.expect}"
    bad = [line for line in text.splitlines() if NOISE.search(line)]
    if bad:
        return f"printed {bad[0].strip()[:90]!r}"
    prog = case.argv[0]
    errors = [line for line in err.splitlines() if ": error:" in line]
    if case.expect == 2:
        if len(errors) != 1 or not errors[0].startswith(f"{prog}: error: "):
            return f"{len(errors)} error lines: {err.strip()[-150:]!r}"
        if not err.rstrip().endswith(errors[0]):
            return "the error is not the last line"
        if case.names and case.names not in errors[0]:
            return f"error does not name {case.names!r}: {errors[0][:150]!r}"
    elif errors:
        return f"error printed: {errors[0][:150]!r}"
    for path in case.files:
        if not Path(path).exists():
            return f"{path} is missing"
    for path in case.gone:
        if Path(path).exists():
            return f"{path} is still there"
    return case.check(text) if case.check else None


def run_case(case, workdir, timeout=600):
    argv = [tool(case.argv[0])] + [str(a) for a in case.argv[1:]]
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="100")
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                   env=env, preexec_fn=restore_sigint)
        try:
            if case.interrupt:
                marker, count = case.interrupt
                while process.poll() is None and marker not in _read(err) + _read(out):
                    if time.perf_counter() - started > timeout:
                        break
                    time.sleep(0.2)
                time.sleep(1.0)
                for _ in range(count):
                    process.send_signal(signal.SIGINT)
                    time.sleep(0.05)
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = "timeout"
        stdout, stderr = _read(out), _read(err)
    return verdict(case, code, stdout, stderr), time.perf_counter() - started


def _read(f):
    f.flush()
    f.seek(0)
    return f.read()


# ---------------------------------------------------------------- inputs


def noise(path, size=8, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def grey16(path, size=8):
    # A mid-grey 16-bit greyscale PNG: 8-bit tools that clip it see white.
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 20000, np.uint16)).save(path)
    return path


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


TF1_CHECKPOINT = textwrap.dedent(
    """
    # An 8x8 DCGAN checkpoint as the original's tf.train.Saver wrote it: its variables by name.
    import sys
    import numpy as np, tensorflow as tf
    g, d = 8, 8
    shapes = {"generator/g_h0_lin/Matrix": [100, 16 * g], "generator/g_h0_lin/bias": [16 * g],
              "generator/g_h1/w": [5, 5, 3, g], "generator/g_h1/biases": [3],
              "discriminator/d_h0_conv/w": [5, 5, 3, d], "discriminator/d_h0_conv/biases": [d],
              "discriminator/d_h0_lin/Matrix": [16 * d, 1], "discriminator/d_h0_lin/bias": [1]}
    shapes.update({f"generator/g_bn0/{w}": [g] for w in ("beta", "gamma", "moving_mean", "moving_variance")})
    rng = np.random.default_rng(0)
    values = [tf.constant(rng.uniform(0.5, 1.0, s).astype(np.float32)) for s in shapes.values()]
    tf.raw_ops.SaveV2(prefix=sys.argv[1] + "/DCGAN.model-7", tensor_names=list(shapes),
                      shape_and_slices=[""] * len(shapes), tensors=values)
    tf.compat.v1.train.update_checkpoint_state(sys.argv[1], "DCGAN.model-7")
    """
)


def prepare(w):
    """The inputs of the catalogue, under w; the tiny model is trained by train-dcgan itself."""
    for k in range(4):
        noise(w / "faces" / f"face{k}.png", seed=k)
    (w / "empty").mkdir()
    (w / "notes").mkdir()
    (w / "notes" / "readme.txt").write_text("not an image")
    (w / "junk").mkdir()
    for name in ("a.jpg", "b.png"):
        (w / "junk" / name).write_bytes(b"not an image at all")
    (w / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    noise(w / "whole.png", size=64)
    shutil.copy(w / "whole.png", w / "truncated.png")
    truncate(w / "truncated.png")
    grey16(w / "grey16.png")
    Image.new("L", (14000, 14000)).save(w / "bomb.png")  # 196 M pixels, 190 kB
    noise(w / "big.png", size=16)
    (w / "twice").mkdir()
    noise(w / "twice" / "a.png")
    noise(w / "twice" / "a.jpg")
    masks = {"black": 0, "white": 255}
    for name, value in masks.items():
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(w / f"mask-{name}.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(w / "mask-16.png")
    (w / "a-file").write_text("a regular file")
    # Training sets: 4 good images, plus one broken / 16-bit / oversized one.
    for extra in ("plain", "corrupt", "grey16", "bomb"):
        for k in range(4):
            noise(w / f"data-{extra}" / f"{k}.png", seed=k)
    noise(w / "data-few" / "0.png")
    shutil.copy(w / "corrupt.png", w / "data-corrupt" / "x.png")
    grey16(w / "data-grey16" / "x.png")
    shutil.copy(w / "bomb.png", w / "data-bomb" / "x.png")
    # Photos for align-faces.
    for k in range(6):
        noise(w / "photos" / f"p{k}.png", size=64, seed=k)
    grey16(w / "photos-grey16" / "g.png", size=64)
    noise(w / "photos-bomb" / "ok.png", size=64)
    shutil.copy(w / "bomb.png", w / "photos-bomb" / "b.png")
    # Frames for make-gif.
    noise(w / "frames" / "0.png")
    noise(w / "frames" / "1.png", seed=1)
    noise(w / "frames-mixed" / "0.png")
    noise(w / "frames-mixed" / "1.png", size=16)
    noise(w / "frames-corrupt" / "0.png")
    shutil.copy(w / "corrupt.png", w / "frames-corrupt" / "1.png")

    train = [tool("train-dcgan"), "--dataset", "data-plain", "--image_size", "8", "--batch_size", "2", "--epoch", "1",
             "--seed", "1", "--precision", "float32", "--log_dir", "logs"]
    done = subprocess.run(train + ["--checkpoint_dir", "ck8", "--sample_dir", "samples"], cwd=w, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"train-dcgan could not make the tiny model:\n{done.stderr[-2000:]}")
    for name in ("ck8-truncated", "ck8-resume-truncated"):
        shutil.copytree(w / "ck8", w / name)
        truncate(next((w / name).glob("*.data-*")))
    (w / "ck-garbage").mkdir()
    (w / "ck-garbage" / "checkpoint").write_text("this is { not a checkpoint state")
    shutil.copytree(w / "ck8", w / "ck8-stale")
    (w / "ck8-stale" / "DCGAN.model-99_temp").mkdir()
    (w / "ck8-stale" / "DCGAN.model-99_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 1000)
    subprocess.run([sys.executable, "-c", TF1_CHECKPOINT, str(w / "tf1")], check=True, capture_output=True)
    shutil.copytree(w / "tf1", w / "tf1-truncated")
    truncate(next((w / "tf1-truncated").glob("*.data-*")))
    shutil.copytree(w / "tf1-truncated", w / "tf1-resume-truncated")
    shipped = Path(importlib.util.find_spec("dcgan_completion").submodule_search_locations[0]) / "weights" / "face64.npz"
    shutil.copy(shipped, w / "weights.npz")
    truncate(w / "weights.npz")


def mount_tmpfs(folder, options):
    """Mount a small tmpfs (root only): True if it worked."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


# ---------------------------------------------------------------- the catalogue


def not_white(path):
    def check(_):
        pixels = np.asarray(Image.open(path).convert("L"))
        return None if pixels.mean() < 200 else f"{path.name} is white (mean {pixels.mean():.0f})"
    return check


def says(text):
    return lambda output: None if text in output else f"does not say {text!r}"


def catalogue(w, full_disk, read_only):
    complete = ["dcgan-complete", "faces", "--checkpointDir", "ck8", *TINY]
    train = ["train-dcgan", "--image_size", "8", "--batch_size", "2", "--epoch", "1", "--seed", "1",
             "--precision", "float32", "--sample_dir", "samples", "--log_dir", "logs"]
    no_mount = "needs root to mount a small tmpfs"
    c = [
        # dcgan-complete
        Case("complete: missing input", ["dcgan-complete", "nope.png"], names="nope.png"),
        Case("complete: empty folder", ["dcgan-complete", "empty"], names="empty"),
        Case("complete: folder without images", ["dcgan-complete", "notes"], names="notes"),
        Case("complete: corrupt image", complete[:1] + ["corrupt.png"] + complete[2:], names="corrupt.png"),
        Case("complete: truncated image", ["dcgan-complete", "truncated.png", "--nIter", "2"], names="truncated.png"),
        Case("complete: 16-bit greyscale PNG (1)", complete[:1] + ["grey16.png"] + complete[2:] + ["--outDir", "out16"],
             expect=0, files=[w / "out16/final/grey16.png"], check=not_white(w / "out16/final/grey16.png")),
        Case("complete: decompression bomb (2)", ["dcgan-complete", "bomb.png", "--nIter", "2"], names="bomb.png"),
        Case("complete: other size is resized", complete[:1] + ["big.png"] + complete[2:] + ["--outDir", "outbig"],
             expect=0, files=[w / "outbig/final/big.png"], check=says("centre-cropped and resized")),
        Case("complete: two inputs of one name", complete[:1] + ["twice"] + complete[2:], names="named a"),
        Case("complete: missing checkpoint", ["dcgan-complete", "faces", "--checkpointDir", "nockpt"], names="nockpt"),
        Case("complete: empty checkpoint folder", ["dcgan-complete", "faces", "--checkpointDir", "empty"], names="empty"),
        Case("complete: checkpoint is a text file", ["dcgan-complete", "faces", "--checkpointDir", "a-file"],
             names="a-file"),
        Case("complete: truncated checkpoint (3)", ["dcgan-complete", "faces", "--checkpointDir", "ck8-truncated",
                                                    *TINY], names="ck8-truncated"),
        Case("complete: truncated TF1 checkpoint (3)", ["dcgan-complete", "faces", "--checkpointDir", "tf1-truncated",
                                                        *TINY], names="tf1-truncated"),
        Case("complete: truncated weights file", ["dcgan-complete", "faces", "--checkpointDir", "weights.npz"],
             names="weights.npz"),
        Case("complete: garbage checkpoint state (8)", ["dcgan-complete", "faces", "--checkpointDir", "ck-garbage"],
             names="ck-garbage"),
        Case("complete: wrong --imgSize", ["dcgan-complete", "faces", "--checkpointDir", "ck8"], names="--imgSize 8"),
        Case("complete: --outDir is a file (10)", complete + ["--outDir", "a-file"], names="a-file"),
        Case("complete: --outDir inside a file", complete + ["--outDir", "a-file/out"], names="a-file"),
        Case("complete: --outDir read-only", complete + ["--outDir", "ro/out"], names="ro", skip=None if read_only
             else no_mount),
        Case("complete: mask of another size", complete + ["--maskFile", "mask-16.png"], names="mask-16.png"),
        Case("complete: all-black mask", complete + ["--maskFile", "mask-black.png"], names="mask-black.png"),
        Case("complete: all-white mask (nothing to fill)", complete + ["--maskFile", "mask-white.png"],
             names="mask-white.png"),
        Case("complete: missing mask file", complete + ["--maskFile", "nomask.png"], names="nomask.png"),
        Case("complete: --maskType file without --maskFile", complete + ["--maskType", "file"], names="--maskFile"),
        Case("complete: --nIter -3 (12)", ["dcgan-complete", "faces", "--nIter", "-3"], names="--nIter"),
        Case("complete: --lr fast (12)", ["dcgan-complete", "faces", "--lr", "fast"], names="--lr"),
        Case("complete: --maskType ring (12)", ["dcgan-complete", "faces", "--maskType", "ring"], names="ring"),
        Case("complete: unknown flag (12)", ["dcgan-complete", "faces", "--iterations", "5"], names="--iterations"),
        Case("complete: no arguments (12)", ["dcgan-complete"], names="imgs"),
        Case("complete: --align on a faceless photo", complete[:1] + ["whole.png", "--align"] + complete[2:],
             names="whole.png"),
        Case("complete: Ctrl-C keeps every image", complete[:-1] + ["100000", "--outDir", "outint", "--gif"],
             expect=130, interrupt=("loss=", 1), check=says("kept the current state"),
             files=[w / "outint/final" / f"face{k}.png" for k in range(4)] + [w / "outint/completion.gif"]),
        Case("complete: Ctrl-C twice", complete[:-1] + ["100000", "--outDir", "outint2"], expect=130,
             interrupt=("loss=", 2), files=[w / "outint2/final/face0.png"]),
        # train-dcgan
        Case("train: missing dataset (9)", [*train, "--dataset", "nope"], names="nope"),
        Case("train: empty dataset", [*train, "--dataset", "empty"], names="empty"),
        Case("train: fewer images than a batch", [*train, "--dataset", "data-few", "--batch_size", "4"],
             names="data-few"),
        Case("train: a corrupt image is skipped", [*train, "--dataset", "data-corrupt", "--checkpoint_dir", "ckc"],
             expect=0, check=says("skipping data-corrupt/x.png")),
        Case("train: a 16-bit image is used (1)", [*train, "--dataset", "data-grey16", "--checkpoint_dir", "ckg",
                                                   "--batch_size", "5"], expect=0, files=[w / "ckg/checkpoint"]),
        Case("train: a decompression bomb is skipped (2)", [*train, "--dataset", "data-bomb", "--checkpoint_dir", "ckb"],
             expect=0, check=says("skipping data-bomb/x.png: more than")),
        Case("train: --checkpoint_dir is a file (4)", [*train, "--dataset", "data-plain", "--checkpoint_dir", "a-file"],
             names="a-file", check=lambda t: "trained before failing" if "epoch 1/" in t else None),
        Case("train: --log_dir is a file (4)", [*train[:-1], "a-file", "--dataset", "data-plain",
                                                 "--checkpoint_dir", "ckl"], names="a-file", gone=[w / "ckl"]),
        Case("train: --sample_dir inside a file (4)", [*train, "--dataset", "data-plain", "--checkpoint_dir", "cks",
                                                        "--sample_dir", "a-file/s"], names="a-file"),
        Case("train: read-only --checkpoint_dir (4)", [*train, "--dataset", "data-plain", "--checkpoint_dir",
                                                        "ro/ck"], names="ro/ck",
             skip=None if read_only else no_mount),
        Case("train: full disk during a save (5)", [*train, "--dataset", "data-plain", "--checkpoint_dir", "full/ck"],
             names="full/ck", check=lambda t: None if not list((w / "full/ck").glob("*_temp")) else "left a _temp folder",
             skip=None if full_disk else no_mount),
        Case("train: stale _temp folder is removed (5)", [*train, "--dataset", "data-plain", "--checkpoint_dir",
                                                           "ck8-stale", "--epoch", "2"], expect=0,
             gone=[w / "ck8-stale/DCGAN.model-99_temp"]),
        Case("train: resume from a truncated checkpoint (3)", [*train, "--dataset", "data-plain", "--checkpoint_dir",
                                                                "ck8-resume-truncated", "--epoch", "2"],
             names="ck8-resume-truncated"),
        Case("train: resume from a truncated TF1 checkpoint (3)", [*train, "--dataset", "data-plain",
                                                                    "--checkpoint_dir", "tf1-resume-truncated"],
             names="tf1-resume-truncated"),
        Case("train: garbage checkpoint state (8)", [*train, "--dataset", "data-plain", "--checkpoint_dir",
                                                      "ck-garbage"], expect=0, files=[w / "ck-garbage/DCGAN.model-2.index"]),
        Case("train: short run writes first and last samples", [*train, "--dataset", "data-plain", "--checkpoint_dir",
                                                                 "cks2", "--sample_dir", "s2"], expect=0,
             files=[w / "s2/train_00_0000.png", w / "s2/train_00_0001.png"]),
        Case("train: --image_size 12", [*train, "--dataset", "data-plain", "--image_size", "12"], names="12"),
        Case("train: --batch_size 0 (12)", [*train, "--dataset", "data-plain", "--batch_size", "0"],
             names="--batch_size"),
        Case("train: no --dataset (12)", ["train-dcgan"], names="--dataset"),
        Case("train: multiworker without --seed", ["train-dcgan", "--dataset", "data-plain", "--strategy",
                                                   "multiworker", "--image_size", "8", "--batch_size", "2",
                                                   "--checkpoint_dir", "ckmw"], names="--seed"),
        Case("train: Ctrl-C saves a checkpoint", [*train, "--dataset", "data-plain", "--checkpoint_dir", "ckint",
                                                  "--epoch", "100000"], expect=130, interrupt=("d_loss=", 1),
             files=[w / "ckint/checkpoint"], check=says("interrupted: saved")),
        Case("train: Ctrl-C twice (6)", [*train, "--dataset", "data-plain", "--checkpoint_dir", "ckint2",
                                         "--epoch", "100000"], expect=130, interrupt=("d_loss=", 2),
             files=[w / "ckint2/checkpoint"]),
        # align-faces
        Case("align: missing folder", ["align-faces", "nope", "aligned"], names="nope"),
        Case("align: empty folder", ["align-faces", "empty", "aligned"], names="empty"),
        Case("align: only non-images (11)", ["align-faces", "junk", "aligned-junk"], names="junk"),
        Case("align: --size 1", ["align-faces", "photos", "aligned", "--size", "1"], names="--size"),
        Case("align: --jobs 0", ["align-faces", "photos", "aligned", "--jobs", "0"], names="--jobs"),
        Case("align: --ext gif", ["align-faces", "photos", "aligned", "--ext", "gif"], names="gif"),
        Case("align: missing landmark model", ["align-faces", "photos", "aligned", "--dlibFacePredictor", "no.dat"],
             names="no.dat"),
        Case("align: --report is a folder (10)", ["align-faces", "photos", "aligned-r", "--report", "empty"],
             names="empty"),
        Case("align: OUTPUT_DIR is a file", ["align-faces", "photos", "a-file"], names="a-file"),
        Case("align: 16-bit photo is read (1)", ["align-faces", "photos-grey16", "aligned-g"], expect=0,
             check=says("0 unreadable")),
        Case("align: decompression bomb is skipped (2)", ["align-faces", "photos-bomb", "aligned-b", "-j", "1"],
             expect=0, check=says("1 unreadable")),
    ]
    c += [Case(f"align: default worker pool, run {k + 1} (7)", ["align-faces", "photos", f"aligned-pool{k}"],
               expect=0, check=says("6 photos")) for k in range(3)]
    c += [
        # make-gif
        Case("gif: missing folder", ["make-gif", "nope", "-o", "x.gif"], names="nope"),
        Case("gif: -o is a folder (10)", ["make-gif", "frames", "-o", "empty"], names="empty"),
        Case("gif: frames of two sizes", ["make-gif", "frames-mixed", "-o", "x.gif"], names="x.gif"),
        Case("gif: corrupt frame", ["make-gif", "frames-corrupt", "-o", "x.gif"], names="1.png"),
        Case("gif: --delay -1 (12)", ["make-gif", "frames", "-o", "x.gif", "--delay", "-1"], names="--delay"),
        Case("gif: no -o (12)", ["make-gif", "frames"], names="-o"),
        Case("gif: frames are written", ["make-gif", "frames", "-o", "ok.gif"], expect=0, files=[w / "ok.gif"]),
        # dcgan-convert
        Case("convert: truncated TF1 checkpoint (3)", ["dcgan-convert", "tf1-truncated", "conv1"],
             names="tf1-truncated"),
        Case("convert: not a checkpoint", ["dcgan-convert", "empty", "conv2"], names="empty"),
        Case("convert: garbage checkpoint state (8)", ["dcgan-convert", "ck-garbage", "conv3"], names="ck-garbage"),
        Case("convert: already this project's", ["dcgan-convert", "ck8", "conv4"], names="ck8"),
        Case("convert: OUT is a file", ["dcgan-convert", "tf1", "a-file"], names="a-file"),
        Case("convert: a TF1 checkpoint converts", ["dcgan-convert", "tf1", "conv5"], expect=0,
             files=[w / "conv5/DCGAN.model-7.index"]),
        Case("convert: no arguments (12)", ["dcgan-convert"], names="TF1_CHECKPOINT"),
    ]
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only the cases whose name holds this")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    for name in TOOLS:
        tool(name)
    w = Path(args.keep or tempfile.mkdtemp(prefix="bad-inputs-")).resolve()
    w.mkdir(parents=True, exist_ok=True)
    mounts = []
    try:
        started = time.perf_counter()
        prepare(w)
        # 1 MB: the tiny model's first checkpoint (weights and Adam's state, ~1.8 MB) does not fit.
        full_disk = os.geteuid() == 0 and mount_tmpfs(w / "full", "size=1m")
        read_only = os.geteuid() == 0 and mount_tmpfs(w / "ro", "ro,size=64k")
        mounts = [m for m, ok in ((w / "full", full_disk), (w / "ro", read_only)) if ok]
        cases = [c for c in catalogue(w, full_disk, read_only) if args.k in c.name]
        print(f"{len(cases)} cases in {w} (inputs ready in {time.perf_counter() - started:.0f} s)", flush=True)

        def one(case):
            if case.skip:
                return case, "skipped", f"({case.skip})", 0.0
            reason, seconds = run_case(case, w)
            return case, "clean" if reason is None else "NOT CLEAN", reason or "", seconds

        unclean = 0
        with ThreadPoolExecutor(args.jobs) as pool:
            for case, word, reason, seconds in pool.map(one, cases):
                unclean += word == "NOT CLEAN"
                print(f"{case.name:55s} {word}{': ' + reason if reason and word != 'skipped' else ' ' + reason}"
                      f"{'' if word == 'skipped' else f' [{seconds:.0f} s]'}".rstrip(), flush=True)
        print(f"{len(cases) - unclean} of {len(cases)} clean, {unclean} not clean "
              f"({time.perf_counter() - started:.0f} s)")
    finally:
        for m in mounts:
            subprocess.run(["umount", str(m)], capture_output=True)
        if not args.keep:
            shutil.rmtree(w, ignore_errors=True)
    sys.exit(min(unclean, 100))


if __name__ == "__main__":
    main()

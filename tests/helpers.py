"""Helpers shared by several test modules (pytest puts this folder on sys.path)."""
import codecs
import os
import re
import selectors
import signal
import subprocess
import time

import numpy as np
import pytest


def run_main(main, capsys, *argv):
    """Run a tool's main(argv) in-process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def aligned_celeba(shared_data, numbers, n):
    """The first n of the CelebA photos `numbers` that the project's alignment aligns,
    as 64x64 uint8 faces."""
    from dcgan_completion.alignment import align_face
    from dcgan_completion.images import read_rgb

    faces = []
    for number in numbers:
        face = align_face(read_rgb(shared_data / "celeba-89x109" / f"{number:06d}.jpg"), size=64)
        if face is not None:
            faces.append(face)
        if len(faces) == n:
            return np.stack(faces)
    pytest.fail(f"only {len(faces)} of {len(numbers)} CelebA photos aligned")


def in_ci():
    """Whether this run is CI's (CI=true, as CI services set it): there every test must run."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def skip_unless_ci(reason):
    """Skip the test for want of `reason` on a developer's machine; fail it under CI, which
    must prove what the README promises rather than skip it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run in CI)", pytrace=False)
    pytest.skip(reason)


def read_until(process, marker, timeout):
    """A child process's output (its stdout pipe, as text) read until `marker` (a string or
    a regular expression) shows, the process ends, or `timeout` seconds pass: what was read.

    Never blocks past the deadline: a stalled child fails the calling test with what it
    said so far, instead of hanging the suite. Reads the pipe's file descriptor directly,
    so what comes after the marker stays in the returned text, not in process.stdout."""
    pattern = re.compile(re.escape(marker) if isinstance(marker, str) else marker)
    wanted = marker if isinstance(marker, str) else marker.pattern
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = process.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not pattern.search(seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {wanted!r} in the output within {timeout:g} s; it said: {seen[-2000:]!r}")
            if not selector.select(min(left, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:  # end of output: the process closed it (ended)
                raise AssertionError(f"the output ended without {wanted!r} (exit code {process.poll()}); "
                                     f"it said: {seen[-2000:]!r}")
            seen += decoder.decode(chunk)
    return seen


def run_and_interrupt(command, cwd, marker, signals=1, marker_timeout=240, timeout=120):
    """Start a tool, wait (at most marker_timeout s) for `marker` in its output, send
    `signals` Ctrl-C 50 ms apart: (exit code, all its output). The tool gets at most
    `timeout` s to stop; it is killed however the test ends."""
    # SIGINT may be ignored by this process (pytest started in the background): not by the child.
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL, preexec_fn=restore_sigint,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        seen = read_until(process, marker, marker_timeout)
        time.sleep(0.5)
        for _ in range(signals):
            process.send_signal(signal.SIGINT)
            time.sleep(0.05)
        rest, _ = process.communicate(timeout=timeout)  # reads while it waits: a full pipe cannot stall the tool
        return process.returncode, seen + rest
    finally:
        process.kill()
        process.wait(timeout=30)


def tiny_checkpoint(folder, size=16, dim=16, seed=0):
    """A size x size train-dcgan checkpoint, `folder`/DCGAN.model-1, whose kernels are
    large enough that G(z) moves visibly with z. Returns the folder."""
    import tensorflow as tf

    from dcgan_completion.checkpoints import named_weights
    from dcgan_completion.networks import build_discriminator, build_generator

    g, d = build_generator(size, gf_dim=dim), build_discriminator(size, df_dim=dim)
    rng = np.random.default_rng(seed)
    for layer in g.layers + d.layers:
        if layer.name.startswith(("g_h", "d_h")):
            layer.weights[0].assign(rng.normal(0, 0.1, layer.weights[0].shape))
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(folder / "DCGAN.model-1"))
    return folder


def serve_app(serve_main, monkeypatch, *argv):
    """Run dcgan-serve's main(argv) up to the app it would serve: (exit code, stdout, app).
    stderr stays pytest's: uvicorn's logging set-up closes every logging handler, and
    absl's then closes its stream unless it is the sys.stderr of the moment."""
    import contextlib
    import io

    import uvicorn

    served = []

    def serve_nothing(server, sockets=None):  # the app the tool would serve, instead of serving it
        served.append(server.config.app)
        for sock in sockets or ():
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", serve_nothing)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            serve_main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), served[-1] if served else None


def random_faces(folder, count, size=16, seed=0):
    """`folder`/face0.png ... face{count-1}.png of random pixels, size x size. Returns the folder."""
    from dcgan_completion.images import save_image

    rng = np.random.default_rng(seed)
    for k in range(count):
        save_image(folder / f"face{k}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return folder

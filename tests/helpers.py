"""Helpers shared by several test modules (pytest puts this folder on sys.path)."""
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

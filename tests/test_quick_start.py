"""The README's first command works as typed, in bash (issue 12: bash's builtin `complete`
shadowed the tool of that name, silently)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def quick_start_line():
    """The README's first command line, as written."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n.*?```\n(.*?)\n```", readme, re.S).group(1)
    return block.splitlines()[0]


def test_quick_start_runs_in_bash_and_writes_what_it_promises(tmp_path):
    line = quick_start_line()
    install, _, command = line.partition(" && ")
    assert install == "pip install ." and command.startswith("dcgan-complete "), line
    if not Path(sys.executable).with_name("dcgan-complete").is_file():
        pytest.skip("the dcgan-complete console script is not installed")
    shutil.copytree(ROOT / "data" / "examples", tmp_path / "data" / "examples")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # The package is installed already: the command after `pip install . &&`, as typed, in bash.
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    names = sorted(p.stem for p in (tmp_path / "data" / "examples").iterdir())
    out = tmp_path / "out"
    assert sorted(p.stem for p in (out / "final").iterdir()) == names  # out/final/ holds each completed face
    for name in names:
        assert Image.open(out / "final" / f"{name}.png").size == (64, 64)
    with Image.open(out / "completion.gif") as gif:  # the search as it goes
        n_iter = int(re.search(r"--nIter (\d+)", command).group(1)) if "--nIter" in command else 1000
        assert gif.n_frames == len(range(0, n_iter, 50)) + 1 and gif.size == (64 * len(names), 64)
    assert f"completed {len(names)} images: out/final/" in done.stdout

"""The README's first command line works as typed, in bash, in a copy of the repository:
`pip install .` installs the package into a new virtual environment, then the installed
`dcgan-complete` (not this checkout's code) writes what the README promises (issue 12:
bash's builtin `complete` shadowed the tool of that name, silently).

The new environment sees this environment's packages through a .pth file, so that `pip
install .` finds TensorFlow and the other dependencies installed instead of downloading
them again; that they install into a fresh environment is what .ci/run shows.
"""
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from helpers import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]


def quick_start():
    """The README's first command line, as written, the iterations the README says it runs,
    and every how many of them it says the GIF has a frame."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"## Quick start\n(.*?)\n## ", readme, re.S).group(1)
    line = re.search(r"```\n(.*?)\n```", section, re.S).group(1).splitlines()[0]
    return (line, int(re.search(r"\((\d+) iterations", section).group(1)),
            int(re.search(r"a frame every (\d+)", section).group(1)))


def copy_of_the_repository(destination):
    """The files git tracks (what a fresh clone has), or, outside git, the folder less its caches."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    if listed.returncode != 0:
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "__pycache__", "build", ".pytest_cache", "out"))
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination / name)


def environment_with_these_packages(folder):
    """A new virtual environment (with pip) whose Python also sees this one's site-packages."""
    made = subprocess.run([sys.executable, "-m", "venv", str(folder)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        skip_unless_ci(f"cannot make a virtual environment: {made.stderr.strip()[-300:]}")
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    Path(purelib, "these-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.mark.timeout(900)  # pip builds the package, then 1000 iterations on 4 faces: ~3 min on 2 busy cores
def test_quick_start_installs_runs_in_bash_and_writes_what_it_promises(tmp_path):
    line, n_iter, every = quick_start()
    assert line.startswith("pip install . && dcgan-complete "), line
    repo, venv = tmp_path / "repo", tmp_path / "venv"
    copy_of_the_repository(repo)
    python = environment_with_these_packages(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv), PIP_DISABLE_PIP_VERSION_CHECK="1")

    done = subprocess.run(["bash", "-c", line], cwd=repo, env=env, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # The tool that ran is the one pip installed into the new environment, not this checkout.
    installed = subprocess.run([python, "-c", "import dcgan_completion; print(dcgan_completion.__file__)"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert Path(installed.stdout.strip()).is_relative_to(venv), installed.stdout
    assert (venv / "bin" / "dcgan-complete").is_file()

    names = sorted(p.stem for p in (repo / "data" / "examples").iterdir())
    out = repo / "out"
    assert sorted(p.stem for p in (out / "final").iterdir()) == names  # out/final/ holds each completed face
    for name in names:
        assert Image.open(out / "final" / f"{name}.png").size == (64, 64)
    with Image.open(out / "completion.gif") as gif:  # the search as it goes
        assert gif.n_frames == len(range(0, n_iter, every)) + 1 and gif.size == (64 * len(names), 64)
    assert f"completed {len(names)} images: out/final/" in done.stdout

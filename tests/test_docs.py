"""The README and docs/: every relative link leads to a file of the repository (and to a
heading there, for a #fragment), the README stays a short guide, and its test command is
the one CI runs."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text):
    """Markdown without code blocks and code spans, where link syntax is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text):
    return LINK.findall(_prose(text))


def anchor(heading):
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    return {anchor(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def test_link_and_anchor_parsing():
    text = ("See [a](docs/a.md#the-x), ![img](docs/p.png \"t\") and [web](https://x.org).\n"
            "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n")
    assert links(text) == ["docs/a.md#the-x", "docs/p.png", "https://x.org"]
    assert anchor("The original's TF1 checkpoints and dcgan-convert") == \
        "the-originals-tf1-checkpoints-and-dcgan-convert"
    assert anchor("Completing real photos: blending in the photo") == \
        "completing-real-photos-blending-in-the-photo"
    assert anchor("The loss and `--lam`") == "the-loss-and---lam"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if ROOT not in path.parents and path != ROOT:
            problems.append(f"{target}: outside the repository")
        elif not path.is_file():
            problems.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            problems.append(f"{target}: no heading #{fragment} in {path.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)


def test_docs_folder_has_the_pages_the_readme_promises():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {Path(t.partition("#")[0]).name for t in links(readme) if t.startswith("docs/")}
    assert {"performance.md", "quality.md", "original.md"} <= linked


def test_readme_is_a_short_guide():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci.startswith("pip install")
    assert f"\n{ci}\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_spec_the_code_cites_is_in_docs():
    cited = {m for p in (ROOT / "dcgan_completion").rglob("*.py")
             for m in re.findall(r"\bdocs/[\w.-]+\.md\b", p.read_text(encoding="utf-8"))}
    assert all((ROOT / c).is_file() for c in cited), sorted(c for c in cited if not (ROOT / c).is_file())


@pytest.mark.parametrize("uid, ci, installs", [("0", "true", True), ("1000", "true", False), ("0", "", False)])
def test_ci_installs_chromium_as_root_under_ci_and_else_says_what_is_missing(tmp_path, uid, ci, installs):
    # .ci/install-chromium with stand-ins for `id` and `apt-get` that log their calls.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {tmp_path / "calls"}\n')
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CI=ci, CHROMIUM=str(tmp_path / "none"))
    done = subprocess.run([str(ROOT / ".ci" / "install-chromium")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    if installs:
        assert calls == ["apt-get update -q", "apt-get install -y -q chromium"] and done.stderr == ""
    else:
        assert calls == [] and f"{tmp_path / 'none'} is missing: the browser test will be skipped" in done.stderr
    # Where the browser is there, nothing is done or said.
    env["CHROMIUM"] = sys.executable
    done = subprocess.run([str(ROOT / ".ci" / "install-chromium")], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "") and len(calls) == (2 if installs else 0)


def test_ci_runs_the_chromium_install_before_the_tests():
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert lines.index(".ci/install-chromium") < len(lines) - 1


def test_the_cuda_extra_the_readme_names_is_tensorflows_own():
    import importlib.metadata

    tomllib = pytest.importorskip("tomllib")
    assert "pip install '.[cuda]'" in (ROOT / "README.md").read_text(encoding="utf-8")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    requirement = extras["cuda"][0]
    assert requirement.startswith("tensorflow[and-cuda]")
    # The installed TensorFlow offers that extra, with CUDA libraries in it.
    tensorflow = importlib.metadata.metadata("tensorflow")
    assert "and-cuda" in tensorflow.get_all("Provides-Extra")
    assert any(r.startswith("nvidia-cudnn") and 'extra == "and-cuda"' in r for r in tensorflow.get_all("Requires-Dist"))

"""No test can hang the suite: every test runs under a time limit (pytest-timeout, set in
pyproject.toml), a stalled one fails under its own name while the run goes on, and reads
of a child process's output (helpers.read_until) are bounded."""
import subprocess
import sys
import re
import textwrap
import time
from pathlib import Path

import pytest
from helpers import read_until

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_runs_under_a_time_limit(request):
    test_extra = re.search(r"^test = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
    assert '"pytest-timeout"' in test_extra
    # This run has the plugin, and the limit of the project's settings.
    assert request.config.pluginmanager.hasplugin("timeout")
    assert Path(request.config.inipath) == ROOT / "pyproject.toml"
    assert 0 < float(request.config.getini("timeout")) <= 600 and request.config.getini("timeout_method") == "signal"


def test_a_stalled_test_fails_under_its_name_and_the_run_goes_on(tmp_path):
    (tmp_path / "test_stall.py").write_text(textwrap.dedent("""
        import time

        def test_stalls():
            time.sleep(600)

        def test_after_it():
            pass
        """))
    start = time.monotonic()
    # The project's own settings (its pyproject.toml), the limit cut to 2 s.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(tmp_path), "-o", "timeout=2", "test_stall.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED test_stall.py::test_stalls - Failed: Timeout" in done.stdout, done.stdout
    assert "1 failed, 1 passed" in done.stdout
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("child, message", [
    ("import time; print('starting', flush=True); time.sleep(60)", r"no 'ready' in the output within 1 s; it said: 'starting\\n'"),
    ("print('starting')", r"the output ended without 'ready' \(exit code"),
])
def test_reading_a_child_that_never_says_the_word_is_bounded(child, message):
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        with pytest.raises(AssertionError, match=message):
            read_until(process, "ready", timeout=1)
        assert time.monotonic() - start < 10
    finally:
        process.kill()
        process.wait(timeout=30)


def test_reading_a_child_returns_what_it_said_up_to_the_word():
    process = subprocess.Popen([sys.executable, "-c", "print('a\\nready: 7'); print('more')"], stdout=subprocess.PIPE,
                               text=True)
    try:
        seen = read_until(process, re.compile(r"ready: \d"), timeout=60)
        assert seen.startswith("a\nready: 7")
    finally:
        process.kill()
        process.wait(timeout=30)

"""One side of a speed benchmark in a process of its own, as a user runs it.

TensorFlow reads its settings (oneDNN's among them) when it loads, so a benchmark that
compares the original's structure with this project's runs each side in a fresh
process: the baseline with TensorFlow as it comes, the project with the settings the
tools make (cli.import_tensorflow). The benchmarks call their own script again with
`--role=ROLE`; each process imports TensorFlow with `import_tensorflow_for_role()`
before anything else imports it.
"""
import os
import subprocess
import sys
from pathlib import Path

USER_ENVIRONMENT = dict(os.environ)  # before import_tensorflow() changes this process's


def import_tensorflow_for_role():
    """TensorFlow as this process's --role needs it: as it comes for the baseline."""
    if "--role=baseline" in sys.argv:
        import tensorflow as tf

        return tf
    from dcgan_completion.cli import import_tensorflow

    return import_tensorflow()


def run_role(script, role, argv):
    """`python SCRIPT --role=ROLE ARGV...` in the user's environment: its stdout. Exits
    with the process's output if it fails."""
    done = subprocess.run([sys.executable, str(script), f"--role={role}", *argv], capture_output=True, text=True,
                          env=USER_ENVIRONMENT)
    if done.returncode:
        sys.exit(f"{Path(script).name}: the {role} process failed:\n{done.stdout}{done.stderr}")
    return done.stdout

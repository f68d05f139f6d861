"""One side of a speed benchmark in a process of its own, as a user runs it, and the
benchmarks' thread settings.

TensorFlow reads its settings (oneDNN's among them) when it loads, so a benchmark that
compares the original's structure with this project's runs each side in a fresh
process: the baseline with TensorFlow as it comes, the project with the settings the
tools make (cli.import_tensorflow). The benchmarks call their own script again with
`--role=ROLE`; each process imports TensorFlow with `import_tensorflow_for_role()`
before anything else imports it.
"""
import os
import re
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


def run_role(script, role, argv, result):
    """`python SCRIPT --role=ROLE ARGV...` in the user's environment: (the match of the
    regular expression `result` in its stdout, its stdout). Exits with the process's
    output if it fails or prints no result."""
    done = subprocess.run([sys.executable, str(script), f"--role={role}", *argv], capture_output=True, text=True,
                          env=USER_ENVIRONMENT)
    found = re.search(result, done.stdout, re.M)
    if done.returncode or not found:
        sys.exit(f"{Path(script).name}: the {role} process failed:\n{done.stdout}{done.stderr}")
    return found, done.stdout


def set_threads(tf, spec):
    """TensorFlow's inter- and intra-op thread counts from "INTER,INTRA" (0 = its choice).
    They are fixed when TensorFlow first runs an op, so compare processes, not calls."""
    inter, intra = (int(n) for n in spec.split(","))
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)

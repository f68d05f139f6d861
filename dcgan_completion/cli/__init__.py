"""Command-line tools: thin layers over the library.

Each tool's `main` parses its flags and calls library functions through `run`,
which turns a user error into one line on stderr and a non-zero exit.
"""
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries the tools'
# own messages; keep warnings and errors. Must be set before tensorflow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(prog, message, code=2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(prog, func, *args, **kwargs):
    """Call func; report InputError/OSError as one line (exit 2), Ctrl-C as exit 130."""
    from ..errors import InputError

    try:
        return func(*args, **kwargs)
    except InputError as e:
        fail(prog, str(e))
    except OSError as e:
        fail(prog, f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


def not_yet(prog):
    fail(prog, "not yet available in this version of dcgan-completion", code=3)

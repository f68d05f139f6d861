"""Command-line tools: thin layers over the library.

Each tool's `main` parses its flags with `ArgumentParser` (a flag error is one line)
and calls library functions through `run`, which turns a user error into one line on
stderr and a non-zero exit.
"""
import argparse
import os
import sys

from ..errors import InputError, describe_bounds, ignore_sigint, within


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a flag error is the one line that matters, not the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def import_tensorflow():
    """Import TensorFlow for a tool and find its devices, its C++ start-up notices silenced.

    Called from a tool's main(), never at import: for the tool's process it sets
    TF_CPP_MIN_LOG_LEVEL=2 (warnings and errors; unless set already), since TensorFlow's
    C++ chatter (CUDA probing, oneDNN notices) would bury the tool's own messages, and
    it hides the lines TF 2.21 prints to stderr at start-up whatever that says. Set
    DCGAN_TF_VERBOSE=1 to see them all (e.g. to debug a GPU set-up).

    It also sets TF_ENABLE_ONEDNN_OPTS=1 unless set already: TensorFlow turns its oneDNN
    kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX, and on an AVX2-only
    CPU they trained 1.5x faster than its default kernels in float32 (docs/performance.md).
    TF_ENABLE_ONEDNN_OPTS=0 keeps TensorFlow's default kernels.

    And TF_FORCE_GPU_ALLOW_GROWTH=true unless set already: TensorFlow otherwise takes
    nearly all of each GPU's memory at start, so that a second tool (dcgan-serve beside a
    dcgan-complete run) could not share the GPU. Read when the GPUs are first used.
    """
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read when TensorFlow loads
    if "tensorflow" in sys.modules or os.environ.get("DCGAN_TF_VERBOSE"):
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


PRECISIONS = ("auto", "float32", "mixed_bfloat16")
PRECISION_HELP = ("auto (default): mixed_bfloat16 where the hardware computes bfloat16 natively (CPUs with "
                  "AMX/AVX-512 bf16, recent GPUs), as train-dcgan, else float32; float32 keeps the "
                  "original's numerics (see docs/performance.md)")


def load_search_models(checkpoint, precision):
    """(generator, discriminator, encoder or None, precision) for completing: the model at
    `checkpoint` (None: the shipped one) in `precision` (one of PRECISIONS; auto decided)."""
    import_tensorflow()
    from ..checkpoints import load_models
    from ..encoder import load_encoder

    if precision == "auto":
        from ..training import default_precision

        precision = default_precision()
    dtype = None if precision == "float32" else precision
    generator, discriminator = load_models(checkpoint, dtype=dtype)
    return generator, discriminator, load_encoder(checkpoint, dtype=dtype), precision


def number(kind=int, minimum=None, maximum=None, *, above=None, below=None):
    """An argparse `type` for a number of `kind` (int or float) within the bounds:
    minimum and maximum inclusive, above and below exclusive. number(int, minimum=1),
    number(float, above=0), number(float, minimum=0, below=1)."""
    bounds = dict(minimum=minimum, maximum=maximum, above=above, below=below)

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if not within(value, **bounds):
            raise argparse.ArgumentTypeError(f"must be {describe_bounds(**bounds)}, got {text}")
        return value

    return parse


def fail(prog, message, code=2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(prog, func, *args, **kwargs):
    """Call func; report InputError/OSError as one line (exit 2), Ctrl-C as exit 130.

    A KeyboardInterrupt with a message (what was saved) has it printed.
    """
    try:
        return func(*args, **kwargs)
    except KeyboardInterrupt as e:
        ignore_sigint()  # the tool is exiting: a second Ctrl-C would only add a traceback
        print(f"{prog}: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        sys.exit(130)
    except InputError as e:
        fail(prog, str(e))
    except OSError as e:
        fail(prog, f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))


def not_yet(prog):
    fail(prog, "not yet available in this version of dcgan-completion", code=3)

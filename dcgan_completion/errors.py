"""The error every tool reports as one line, without a traceback, and the checks of
numbers that the tools' flags and the library share."""
import contextlib
import logging
import math
import numbers
import operator


class InputError(ValueError):
    """Bad input from the user: a missing folder, a corrupt image, a wrong size, a bad flag.

    The message says what is wrong and what to do about it.
    """


def damaged(what, error):
    """The message for a checkpoint (`what`) whose data file cannot be read to the end."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
    return (f"{what}: its data file is damaged or incomplete ({reason}): "
            "give another checkpoint (or copy this one again)")


@contextlib.contextmanager
def quiet_tf_logging():
    """TensorFlow's Python logger held to errors: reading a garbage `checkpoint` state
    file logs ParseError warnings, twice per look; the callers fall back on the index
    files or say themselves what is missing."""
    logger = logging.getLogger("tensorflow")  # tf.get_logger()'s
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def ignore_sigint():
    """Ignore Ctrl-C while what was done so far is saved: a second Ctrl-C would break off
    the save with a traceback. Returns the function that restores the previous handler.
    Only the main thread can set handlers; elsewhere this does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return lambda: signal.signal(signal.SIGINT, previous)


# Bounds of a number: (sign, keyword, test). minimum/maximum are inclusive, above/below exclusive.
_BOUNDS = ((">=", "minimum", operator.ge), (">", "above", operator.gt),
           ("<=", "maximum", operator.le), ("<", "below", operator.lt))


def within(value, **bounds):
    """Whether `value` lies within the bounds (minimum=, maximum=, above=, below=); NaN never does."""
    return value == value and all(test(value, bounds[key]) for _, key, test in _BOUNDS if bounds.get(key) is not None)


def describe_bounds(**bounds):
    """The bounds in words: '>= 0 and < 1'."""
    return " and ".join(f"{sign} {bounds[key]}" for sign, key, _ in _BOUNDS if bounds.get(key) is not None)


def check_number(value, name, kind=float, **bounds):
    """InputError unless `value` is a finite number (kind=int: an integer) within the bounds."""
    if kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and within(value, **bounds)):
        what = " ".join(filter(None, ["an integer" if kind is int else "a finite number", describe_bounds(**bounds)]))
        raise InputError(f"{name} must be {what}, got {value!r}")

"""The error every tool reports as one line, without a traceback."""


class InputError(ValueError):
    """Bad input from the user: a missing folder, a corrupt image, a wrong size, a bad flag.

    The message says what is wrong and what to do about it.
    """


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

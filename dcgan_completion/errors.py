"""The error every tool reports as one line, without a traceback."""


class InputError(ValueError):
    """Bad input from the user: a missing folder, a corrupt image, a wrong size, a bad flag.

    The message says what is wrong and what to do about it.
    """

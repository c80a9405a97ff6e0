"""The one exception type for mistakes in user input."""


class UserInputError(ValueError):
    """A bad argument, flag value, file or dataset supplied by the user.

    The message is one line that names the argument and repeats the value received, so entry points can print
    it as is (no traceback) and exit non-zero.
    """


def check(condition: bool, message: str) -> None:
    """Raises `UserInputError(message)` unless `condition` holds."""
    if not condition:
        raise UserInputError(message)

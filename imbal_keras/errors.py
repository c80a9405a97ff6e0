"""The exception types a user meets: mistakes in user input, and a part whose extra is not installed."""

from __future__ import annotations

import numbers

__all__ = ["MissingExtraError", "UserInputError", "check", "is_integer", "require_extra"]


class UserInputError(ValueError):
    """A bad argument, flag value, file or dataset supplied by the user.

    The message is one line that names the argument as the caller spelled it and repeats the value received, so
    entry points can print it as is (no traceback) and exit non-zero.

    Attributes:
      argument: the argument (config field, function argument) the message starts with, if any. The command line
        shows it as its flag (`--batch_size ...`); a Python caller sees the plain name.
    """

    def __init__(self, message: str, *, argument: str | None = None):
        super().__init__(message)
        self.argument = argument

    def command_line_message(self) -> str:
        """The message as the command line shows it: a leading argument name becomes its flag."""
        text = str(self)
        if self.argument and text.startswith(self.argument) and not text.startswith("--"):
            return f"--{text}"
        return text


def check(condition: bool, message: str, *, argument: str | None = None) -> None:
    """Raises `UserInputError(message, argument=argument)` unless `condition` holds."""
    if not condition:
        raise UserInputError(message, argument=argument)


def is_integer(value) -> bool:
    """Whether `value` is an integer (Python or NumPy), not a bool: what a count or an index argument must be."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class MissingExtraError(ImportError):
    """A part of the package whose optional dependencies (a pip extra) are not installed.

    The message is one line naming the part, the missing modules and the command that installs them.
    """


def require_extra(part: str, extra: str, modules: tuple[str, ...]) -> None:
    """Raises `MissingExtraError` unless every module of `modules` imports.

    Args:
      part: what needs them, as the user imports it (`imbal_keras.grid`).
      extra: the pip extra that installs them (`grid`).
      modules: top-level module names (`scipy`, `matplotlib`).
    """
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{part} needs the '{extra}' extra ({', '.join(missing)} not installed): pip install 'imbal_keras[{extra}]'"
        )

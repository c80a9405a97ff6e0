"""Flags of one experiment run, defined once from `ExperimentConfig` and the strategy registry.

Every `ExperimentConfig` field is a flag of the same name, with the field's default and the help text from its
docstring, so a new config field is a new flag without touching this file. `to_config()` turns the parsed flags
into a config; `run_main(main)` is `app.run` with one-line errors for user mistakes.
"""

from __future__ import annotations

import dataclasses
import re
import sys

from absl import app, flags

from imbal_keras import strategies
from imbal_keras.config import (
    CLASS_WEIGHT_NORMALIZATIONS,
    OPTIMIZERS,
    WEIGHT_REDUCTIONS,
    ExperimentConfig,
)
from imbal_keras.errors import UserInputError

_ENUMS = {
    "strategy": strategies.names(),
    "optimizer": list(OPTIMIZERS),
    "class_weight_normalization": list(CLASS_WEIGHT_NORMALIZATIONS),
    "weight_reduction": list(WEIGHT_REDUCTIONS),
}


def _field_help() -> dict[str, str]:
    """Per-field help text parsed from the `Attributes:` section of `ExperimentConfig`'s docstring."""
    doc = ExperimentConfig.__doc__ or ""
    section = doc.split("Attributes:", 1)[1]
    helps: dict[str, str] = {}
    for match in re.finditer(r"^\s{6}(\w+(?:, \w+)*): (.*?)(?=^\s{6}\w+(?:, \w+)*: |\Z)", section, re.M | re.S):
        for name in match.group(1).split(", "):
            helps[name] = " ".join(match.group(2).split())
    return helps


def _define_flags() -> dict[str, flags.FlagHolder]:
    helps = _field_help()
    holders = {}
    for field in dataclasses.fields(ExperimentConfig):
        name, default, help_ = field.name, field.default, helps.get(field.name, field.name)
        if name in _ENUMS:
            holders[name] = flags.DEFINE_enum(name, default, _ENUMS[name], help_)
        elif isinstance(default, bool):
            holders[name] = flags.DEFINE_bool(name, default, help_)
        elif isinstance(default, int):
            holders[name] = flags.DEFINE_integer(name, default, help_)
        elif isinstance(default, float):
            holders[name] = flags.DEFINE_float(name, default, help_)
        elif isinstance(default, tuple):
            holders[name] = flags.DEFINE_list(name, [str(v) for v in default], help_)
        else:
            holders[name] = flags.DEFINE_string(name, default, help_)
    return holders


_HOLDERS = _define_flags()


def to_config() -> ExperimentConfig:
    """The `ExperimentConfig` the parsed command line describes.

    Raises:
      UserInputError: a list flag with a non-numeric entry.
    """
    values = {}
    for field in dataclasses.fields(ExperimentConfig):
        value = _HOLDERS[field.name].value
        if isinstance(field.default, tuple):
            value = _numbers(field.name, value, int if field.name == "hidden_units" else float)
        values[field.name] = value
    return ExperimentConfig(**values)


def _numbers(name: str, items: list[str], kind: type) -> tuple:
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise UserInputError(
            f"--{name} must be a comma-separated list of numbers. Received: {name}={','.join(items)}"
        ) from None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, but a bad flag is one line on stderr and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run_main(main) -> None:
    """`app.run(main)` where a `UserInputError` becomes one `error: ...` line and exit code 2."""

    def guarded(argv):
        try:
            main(argv)
        except UserInputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded, flags_parser=_parse_flags)

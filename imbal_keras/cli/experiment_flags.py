r"""Flags of every config setting, defined once from the config parts and the strategy registry.

Every flat config name (see `imbal_keras.config.ExperimentConfig.flat`) is a flag of the same name: the parts'
fields with their defaults and docstring help, `--strategy`, and every parameter a registered strategy declares
(with the strategy's default when not given). A new config field or strategy parameter is a new flag without
touching this file.

A scalar setting takes one value for one run, or several comma-separated values to make it a grid axis
(`--strategy=none,upsample`, `--batch_size=16,64`); an integer setting also takes a range `a:b` (`--seed=0:10`
is seeds 0..9). A value that names an existing file or folder as a whole (`--dataset=csv:sales,2024.csv`) is
never split, and `\\,` is a comma inside one value (`--dataset=csv:a.csv,csv:sales\\,2024.csv`). `settings()`
returns what the command line gave, `to_config()` the one run it describes. `run_main(main)` is `app.run` with
one-line errors for user mistakes, faults of the disk and Ctrl-C.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from absl import app, flags

from imbal_keras import config as config_lib
from imbal_keras import runs, strategies
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import MissingExtraError, UserInputError, check

_LIST_ITEM_TYPES = {"hidden_units": int, "target_distribution": float}
_AXIS_NOTE = " Several comma-separated values make a grid axis."
_RANGE_NOTE = " Several comma-separated values, or a range a:b (a..b-1), make a grid axis."


def _kind(name: str) -> type:
    """The Python type of a flat setting: a strategy parameter's declared type, else its default's type."""
    if name in strategies.all_params():
        return strategies.all_params()[name].type
    return type(config_lib.field_default(name))


def _define_flags() -> dict[str, flags.FlagHolder]:
    helps = config_lib.field_help()
    holders = {}
    output = config_lib.fields_with_role("output")
    for name in config_lib.field_names():
        default, kind, help_ = config_lib.field_default(name), _kind(name), helps.get(name, name)
        if name in strategies.all_params():
            param = strategies.all_params()[name]
            help_ = f"{help_} Default {param.default}; valid: {param.valid_range()}."
            holders[name] = flags.DEFINE_string(name, None, help_ + _AXIS_NOTE)
        elif name == "strategy":
            help_ = f"{help_} One of {', '.join(strategies.names())}."
            holders[name] = flags.DEFINE_string(name, default, help_ + _AXIS_NOTE)
        elif kind is bool:
            holders[name] = flags.DEFINE_bool(name, default, help_)
        elif kind is tuple:
            holders[name] = flags.DEFINE_list(name, [str(v) for v in default], help_)
        else:
            note = "" if name in output else _RANGE_NOTE if kind is int else _AXIS_NOTE
            holders[name] = flags.DEFINE_string(name, str(default), help_ + note)
    return holders


_HOLDERS = _define_flags()


def settings() -> tuple[dict[str, Any], dict[str, tuple]]:
    """What the command line gave: (single settings, grid axes), by flat name.

    Only flags given on the command line (or in a flagfile) appear; a flag with several values is an axis.

    Raises:
      UserInputError: a value that is not of the setting's type, naming the flag and the value.
    """
    single: dict[str, Any] = {}
    axes: dict[str, tuple] = {}
    for name, holder in _HOLDERS.items():
        if not flags.FLAGS[name].present:
            continue
        values = _parse(name, holder.value)
        if isinstance(values, tuple) and _kind(name) is not tuple and len(values) > 1:
            axes[name] = values
        else:
            single[name] = values[0] if isinstance(values, tuple) and _kind(name) is not tuple else values
    return single, axes


def to_config() -> ExperimentConfig:
    """The one run the command line describes.

    Raises:
      UserInputError: a bad value, or several values (a grid) where one run is wanted.
    """
    single, axes = settings()
    check(not axes, f"--{next(iter(axes), '')} lists several values: that makes a grid, not one run")
    return ExperimentConfig.from_flat(single)


def _parse(name: str, value: Any) -> Any:
    kind = _kind(name)
    if kind is bool:
        return value
    if kind is tuple:
        # Lists of numbers (widths, shares) or of names (columns); the field's default does not say which.
        item_type = _LIST_ITEM_TYPES.get(name, str)
        try:
            return tuple(item_type(item) for item in value)
        except ValueError:
            raise UserInputError(
                f"--{name} must be a comma-separated list of numbers. Received: {name}={','.join(value)}"
            ) from None
    items = _split(str(value))
    check(all(items), f"--{name} must list at least one value. Received: {name}={value!r}")
    parsed: list[Any] = []
    for item in items:
        if kind is int and ":" in item:
            parsed += _int_range(name, item)
        elif name in strategies.all_params():
            try:
                parsed.append(strategies.all_params()[name].parse(item))
            except UserInputError as e:
                raise UserInputError(e.command_line_message()) from None
        else:
            parsed.append(_scalar(name, kind, item))
    return tuple(parsed)


def _split(text: str) -> list[str]:
    """The comma-separated values of `text`: not split when it names an existing path as a whole (after a
    `kind:` prefix such as `csv:`), and `\\,` is a comma inside a value."""
    path = text.split(":", 1)[-1]
    if "," in text and (os.path.exists(text) or os.path.exists(path)):
        return [text.strip()]
    return [item.strip().replace("\\,", ",") for item in re.split(r"(?<!\\),", text)]


def _int_range(name: str, text: str) -> list[int]:
    start, _, stop = text.partition(":")
    ok = start.strip().lstrip("-").isdigit() and stop.strip().lstrip("-").isdigit() and int(start) < int(stop)
    check(ok, f"--{name} range must be a:b with integers a < b (a..b-1). Received: {name}={text}")
    return list(range(int(start), int(stop)))


def _scalar(name: str, kind: type, text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise UserInputError(f"--{name} must be a {kind.__name__}. Received: {name}={text}") from None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, but a bad flag is one line on stderr and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


# Exit codes: a user's mistake, a fault of the disk, Ctrl-C (128 + SIGINT, as shells report it).
_EXIT_USER, _EXIT_STORAGE, _EXIT_INTERRUPTED = 2, 1, 130


def run_main(main) -> None:
    """`app.run(main)` with one line instead of a traceback for what a user meets:

    - a `UserInputError`, or a part whose pip extra is missing (`MissingExtraError`): `error: ...`, exit code 2;
    - a full disk, quota or file-size limit (`runs.storage_fault`): `error: ...` saying that finished runs are
      complete and to rerun, exit code 1;
    - Ctrl-C: `interrupted: ...` (a grid says how many runs finished), exit code 130.
    """

    def guarded(argv):
        try:
            main(argv)
        except UserInputError as e:
            _exit(f"error: {e.command_line_message()}", _EXIT_USER)
        except MissingExtraError as e:
            _exit(f"error: {e}", _EXIT_USER)
        except KeyboardInterrupt as e:
            message = str(e) if str(e).startswith("interrupted:") else _INTERRUPTED
            _exit(message, _EXIT_INTERRUPTED)
        except Exception as e:
            reason = runs.storage_fault(e)
            if not reason:
                raise
            _exit(
                f"error: {reason} while writing: the run in progress was not published, finished runs are "
                "complete; free space (or raise the file-size limit), then rerun the same command to finish",
                _EXIT_STORAGE,
            )

    app.run(guarded, flags_parser=_parse_flags)


# What Ctrl-C prints outside a grid's runs (during one run, a grid's checks or its report).
_INTERRUPTED = "interrupted: finished runs are kept and nothing half-written is left; rerun the same command to resume"


def _exit(line: str, code: int) -> None:
    print(line, file=sys.stderr)
    sys.exit(code)


__all__ = [
    "run_main",
    "settings",
    "to_config",
]

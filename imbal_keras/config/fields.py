"""What a config field is to the machinery that groups runs (its role), and the value checks the parts share.

Every field of the config parts is declared with `role_field(default, role)`; `imbal_keras.config.role_of` and
`key_fields` read the roles back. The checks give the one-line `UserInputError`s of the parts' `validate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from imbal_keras.errors import check

__all__ = ["ROLES", "check_range", "choice_message", "is_function_path", "role_field", "short"]

# What each config field is to the machinery that groups, reuses and names runs. Every field declares exactly one
# role on its declaration (`dataclasses.field(metadata={"role": ...})`); the keys below are derived from the roles,
# never from lists of names, so a new field is placed by saying what it is (tests/config_test.py refuses a field
# without a role).
ROLES = {
    "training_seed": "seeds of training only (initial weights, batch order): the runs of a pack differ in them; "
    "they are not part of a grid cell or of a compiled model's key",
    "data_seed": "the seed of the data: a grid cell's key only (a pack's replicas each read their own data)",
    "per_run": "settings applied per run that reach no traced function (budget, evaluation): part of a cell and of "
    "a pack's key, not of a compiled model's key",
    "variant": "what the strategies being compared are (the strategy and its parameters): a compiled model's key "
    "only (a pack's replicas may differ in it)",
    "output": "where a run is written and what it is called: no key, no results column that identifies a result",
    "setting": "everything else that decides a run's result: every key",
}


def role_field(default: Any, role: str) -> Any:
    """A config field with its role (see ROLES)."""
    return dataclasses.field(default=default, metadata={"role": role})


def check_range(part: Any, name: str, *, low: float, note: str = "") -> None:
    """Refuses `part.name` below `low` in one line naming the field (`note` explains a special value)."""
    value = getattr(part, name)
    check(value >= low, f"{name} must be >= {low:g}{note}. Received: {name}={value}", argument=name)


def choice_message(name: str, value: Any, choices: Sequence[str]) -> str:
    """The one-line message for a value of `name` that is not one of `choices`."""
    return f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}"


def is_function_path(text: str) -> bool:
    """Whether `text` reads `package.module:function` (dotted identifiers on both sides of one colon)."""
    module, sep, function = text.partition(":")
    return bool(sep) and all(part.isidentifier() for part in (*module.split("."), *function.split(".")))


def short(x: Any) -> str:
    """99.0 -> '99', 0.05 -> '0.05'; other values as str."""
    return f"{x:g}" if isinstance(x, float) else str(x)

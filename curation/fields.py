"""Field types shared by every pipeline's config, with messages that name the rule broken.

Each option is declared once, as a pydantic field with its type, default and help
(`description`); the CLI is generated from those fields (`curation.cli.options`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError, WithJsonSchema

from curation.errors import CurateError

CLI = "cli"  # json_schema_extra key: False hides a field from the CLI; a string is its short flag


def at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def non_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be at least 0, got {value}")
    return value


def positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def fraction(value: float | None) -> float | None:
    """In [0, 1): a share of samples dropped or cut first."""
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value}")
    return value


def open_fraction(value: float) -> float:
    """In (0, 1): a rate that removes something and keeps something."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"must be in (0, 1), got {value}")
    return value


def comma_separated(value):
    """`a,b,c` as a list, so a list option is typed once on the command line."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def numbers(value):
    """A list of numbers, or `0.3,0.5` typed on the command line."""
    try:
        return [float(part) for part in comma_separated(value)]
    except (TypeError, ValueError):
        raise ValueError(f"takes numbers separated by commas, got {value!r}") from None


def _bounded(kind: type, check: Callable, **bounds: float) -> Any:
    """`kind` checked by `check`, its JSON schema stating the same bounds (for the forms
    generated from a config, such as Airflow's params)."""
    schema = {"type": "integer" if kind is int else "number", **bounds}
    return Annotated[kind, AfterValidator(check), WithJsonSchema(schema)]


Count = _bounded(int, at_least_one, minimum=1)
Natural = _bounded(int, non_negative, minimum=0)
Positive = _bounded(float, positive, exclusiveMinimum=0)
Fraction = _bounded(float, fraction, minimum=0, exclusiveMaximum=1)
OpenFraction = _bounded(float, open_fraction, exclusiveMinimum=0, exclusiveMaximum=1)
KD_MODES = {"off": (False,), "on": (True,), "both": (False, True)}  # --kd: which arms distil
FloatList = Annotated[list[float], BeforeValidator(numbers)]
NameList = Annotated[list[str], BeforeValidator(comma_separated)]


def validated(schema: type[BaseModel], /, **fields) -> BaseModel:
    """The config, or its first problem as a CurateError naming the option."""
    try:
        return schema(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "--" + ".".join(str(p) for p in error["loc"]).replace("_", "-")
        raise CurateError(message if message.startswith("--") else f"{where}: {message}") from None

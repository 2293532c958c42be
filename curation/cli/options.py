"""CLI options generated from a config model's fields: each option's type, default and help
are written once, on the pydantic field, and typer reads them from a generated signature."""

from __future__ import annotations

import functools
import inspect
import json
import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from curation.fields import CLI


def _plain(annotation: Any) -> Any:
    """The type typer should parse: constraints (Annotated validators) dropped, unions with
    None kept as optional, a list typed as one comma-separated string (the model splits it)."""
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    if get_origin(annotation) is list:
        return str
    if annotation is dict or get_origin(annotation) is dict:
        return str | None  # JSON text
    if get_origin(annotation) in (Union, types.UnionType):
        members = [_plain(a) for a in get_args(annotation) if a is not type(None)]
        return members[0] | None if len(members) == 1 else annotation
    return annotation


def _shown_default(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value) if value else None
    return ",".join(map(str, value)) if isinstance(value, list) else value


def _shown(field: FieldInfo) -> Any:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra.get(CLI, True)


def field_parameters(
    model: type[BaseModel], exclude: tuple[str, ...] = ()
) -> list[inspect.Parameter]:
    """A keyword parameter per CLI field of `model`, annotated for typer."""
    found = []
    for name, field in model.model_fields.items():
        shown = _shown(field)
        if shown is False or name in exclude:
            continue
        flag = f"--{name.replace('_', '-')}"
        if field.annotation is bool:  # a switch either way: --augment / --no-augment
            flag = f"{flag}/--no-{flag[2:]}"
        flags = [flag, *([shown] if isinstance(shown, str) else [])]
        required = field.is_required()
        option = typer.Option(*flags, help=field.description)
        annotation = Annotated[_plain(field.annotation), option]
        default = (inspect.Parameter.empty if required
                   else _shown_default(field.get_default(call_default_factory=True)))  # fmt: skip
        found.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                       default=default, annotation=annotation))  # fmt: skip
    return found


def command(
    function: Callable, *models: type[BaseModel], exclude: tuple[str, ...] = ()
) -> Callable:
    """`function` (whose `**options` takes them) with the CLI options of `models` added after
    its own parameters, all as keyword parameters so their order is free: typer passes every
    option as a keyword argument, to give to the models as they are. A field of a later model
    that an earlier one (or `function`, or `exclude`) already has is left out."""
    own = [p for p in inspect.signature(function, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]  # fmt: skip
    taken = {p.name for p in own} | set(exclude)
    extra: list[inspect.Parameter] = []
    for model in models:
        extra += field_parameters(model, tuple(taken))
        taken |= {p.name for p in extra}
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own + extra]

    @functools.wraps(function)
    def wrapper(**kwargs):
        return function(**kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper

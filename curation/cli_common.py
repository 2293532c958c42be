"""What every command shares: one-line user errors, validated configs, absolute paths."""

from __future__ import annotations

import functools
import os
import sys

import typer
from pydantic import BaseModel, ValidationError

from curation.errors import CurateError


def user_errors(command):
    """One clear line and exit status 2 for a user error, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CurateError as exc:
            print(f"curate: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def validated(schema: type[BaseModel], /, **fields) -> BaseModel:
    """The config, or its first problem as a CurateError naming the option."""
    try:
        return schema(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "--" + ".".join(str(p) for p in error["loc"]).replace("_", "-")
        raise CurateError(message if message.startswith("--") else f"{where}: {message}") from None


def absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)

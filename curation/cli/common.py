"""What every command shares: one-line user errors."""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer

from curation.errors import CurateError

# For the commands that read a run: the options its `curate prune` was given (config.json
# records them with their secrets masked).
StorageOptions = Annotated[
    str | None,
    typer.Option(
        help="fsspec options for the run's URLs, as JSON (endpoint_url, key, secret, anon...), "
        "as given to `curate prune`; credentials may also come from the environment."
    ),
]


def user_errors(command):
    """One clear line and exit status 2 for a user error, never a traceback; so too for what
    the machine refuses (a read-only folder, a full disk, a missing path), named as the
    system names it."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CurateError as exc:
            print(f"curate: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        except OSError as exc:
            print(f"curate: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper

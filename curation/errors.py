"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class CurateError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class NoResultError(CurateError):
    """The input can never give a result (no samples, too many clusters): a run that started
    in an empty output folder leaves nothing behind."""

"""curate: data pruning and dataset curation for webdataset shards, and model pruning, on one
staged engine. `from curation import prune` is the Python API (`curation.api`)."""

from __future__ import annotations

from importlib import metadata

__version__ = metadata.version("curate")
API = ("prune", "status")


def __getattr__(name: str):
    """The API's functions, imported when first asked for (the engine imports no pipeline)."""
    if name in API:
        from curation import api

        return getattr(api, name)
    raise AttributeError(f"module 'curation' has no attribute {name!r}")

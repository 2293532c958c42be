"""Labelled shards for the model-pruning tests: generated, five classes, 16 x 16 once decoded."""

from __future__ import annotations

import pytest

from tests.builders import write_shards
from tests.pipelines.model_pruning.runs import Data


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    """Shared read-only: 2 training shards of 40, 1 evaluation shard of 40."""
    root = tmp_path_factory.mktemp("labelled")
    write_shards(root / "train", shards=2, per_shard=40)
    write_shards(root / "eval", shards=1, per_shard=40, seed=1)
    return Data(str(root / "train" / "*.tar"), str(root / "eval" / "*.tar"))

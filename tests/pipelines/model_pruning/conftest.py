"""Labelled shards for the model-pruning tests: generated, five classes, 16 x 16 once decoded."""

from __future__ import annotations

import pytest

from tests.pipelines.model_pruning.runs import Data, labelled_data


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    """Shared read-only: 2 training shards of 40, 1 evaluation shard of 40."""
    return labelled_data(tmp_path_factory.mktemp("labelled"))

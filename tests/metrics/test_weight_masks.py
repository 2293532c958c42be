import pytest
import torch

from metrics.prunable import PruningError
from metrics.weight_masks import (
    check_weights,
    global_smallest,
    magnitudes,
    nonzero_masks,
    rank_smallest,
    resolve_masks,
)


def test_rank_smallest_breaks_ties_by_index():
    values = torch.tensor([2.0, 1.0, 1.0, 3.0, 1.0])
    assert rank_smallest(values, 2).tolist() == [False, True, True, False, False]
    assert rank_smallest(values, 4).tolist() == [True, True, True, False, True]
    assert not rank_smallest(values, 0).any()
    assert rank_smallest(values, 5).all()


def test_global_smallest_breaks_ties_by_layer_then_index():
    scores = {"a": torch.tensor([[1.0, 0.0], [1.0, 2.0]]), "b": torch.tensor([1.0, 0.0])}
    everything = {name: torch.ones(s.shape, dtype=torch.bool) for name, s in scores.items()}
    # Order: a[0,1]=0, b[1]=0, a[0,0]=1, a[1,0]=1, b[0]=1, a[1,1]=2.
    chosen = global_smallest(scores, everything, 4)
    assert chosen["a"].tolist() == [[True, True], [True, False]]
    assert chosen["b"].tolist() == [False, True]


def test_global_smallest_takes_only_candidates():
    scores = {"a": torch.tensor([0.0, 1.0, 2.0]), "b": torch.tensor([0.5])}
    candidates = {"a": torch.tensor([False, True, True]), "b": torch.tensor([True])}
    chosen = global_smallest(scores, candidates, 2)
    assert chosen["a"].tolist() == [False, True, False]
    assert chosen["b"].tolist() == [True]
    with pytest.raises(PruningError, match="cannot prune 4 weights: only 3 are candidates"):
        global_smallest(scores, candidates, 4)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({}, "no prunable weights"),
        ({"fc": torch.tensor([1.0, float("nan")])}, "layer fc: the weight holds nan or inf"),
        ({"fc": torch.tensor([1.0, float("inf")])}, "layer fc: the weight holds nan or inf"),
        ({"fc": torch.tensor([1, 2])}, "layer fc: the weight is not a floating-point tensor"),
        ({"fc": torch.zeros(0, 3)}, "layer fc: the weight has no elements"),
    ],
)
def test_bad_weights_raise_naming_the_layer(weights, match):
    with pytest.raises(PruningError, match=match):
        check_weights(weights)


def test_resolve_masks_defaults_to_dense_and_copies():
    weights = {"a": torch.ones(2, 3), "b": torch.ones(4)}
    dense = resolve_masks(weights, None)
    assert all(m.dtype == torch.bool and m.all() for m in dense.values())
    assert dense["a"].shape == (2, 3)
    buffer = torch.tensor([1.0, 0.0, 1.0, 1.0])  # torch.nn.utils.prune keeps float masks
    resolved = resolve_masks(weights, {"a": torch.ones(2, 3, dtype=torch.bool), "b": buffer})
    assert resolved["b"].tolist() == [True, False, True, True]
    resolved["b"][0] = False
    assert buffer[0] == 1.0


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        ({"a": torch.ones(2, dtype=torch.bool)}, r"missing \['b'\], unknown none"),
        (
            {"a": torch.ones(2, dtype=torch.bool), "b": torch.ones(3), "c": torch.ones(1)},
            r"missing none, unknown \['c'\]",
        ),
        ({"a": torch.ones(3, dtype=torch.bool), "b": torch.ones(3)}, r"layer a: mask shape \(3,\)"),
        ({"a": torch.ones(2), "b": torch.tensor([1.0, 0.5, 0.0])}, "layer b: .*other than 0 and 1"),
    ],
)
def test_masks_must_fit_the_weights(masks, match):
    with pytest.raises(PruningError, match=match):
        resolve_masks({"a": torch.ones(2), "b": torch.ones(3)}, masks)


def test_nonzero_masks():
    masks = nonzero_masks({"a": torch.tensor([[0.0, -1.0], [2.0, -0.0]])})
    assert masks["a"].tolist() == [[False, True], [True, False]]


def test_half_precision_magnitudes_are_float32():
    values = magnitudes(torch.tensor([-1.5, 2.0], dtype=torch.float16))
    assert values.dtype == torch.float32
    assert values.tolist() == [1.5, 2.0]
    assert magnitudes(torch.tensor([-1.0], dtype=torch.float64)).dtype == torch.float64

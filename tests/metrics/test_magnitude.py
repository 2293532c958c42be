import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from metrics.magnitude import global_magnitude, layerwise_magnitude
from metrics.prunable import PruningError, prunable_weights


def kept(masks):
    return {name: mask.reshape(-1).tolist() for name, mask in masks.items()}


def pruned_total(masks):
    return sum(int((~m).sum()) for m in masks.values())


def test_one_global_threshold_by_hand():
    weights = {"a": torch.tensor([[0.5, -3.0], [1.0, 2.0]]), "b": torch.tensor([-0.1, 4.0, 0.2])}
    # |w| ascending: b0 0.1, b2 0.2, a0 0.5, a2 1, a3 2, a1 3, b1 4. 3/7 prunes the first 3.
    masks = global_magnitude(weights, 3 / 7)
    assert kept(masks) == {"a": [False, True, True, True], "b": [False, True, False]}
    assert masks["a"].shape == (2, 2) and masks["a"].dtype == torch.bool
    assert kept(global_magnitude(weights, 0.0)) == {"a": [True] * 4, "b": [True] * 3}
    assert pruned_total(global_magnitude(weights, 1.0)) == 7


def test_ties_are_broken_by_layer_then_index():
    weights = {"a": torch.full((2, 2), -1.0), "b": torch.ones(3)}
    assert kept(global_magnitude(weights, 5 / 7)) == {
        "a": [False] * 4,
        "b": [False, True, True],
    }


def test_matches_torch_global_unstructured():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    weights = {name: w.clone() for name, w in prunable_weights(model).items()}
    for sparsity in (0.1, 0.5, 0.83, 0.99):
        reference = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
        reference.load_state_dict(model.state_dict())
        params = [(reference[0], "weight"), (reference[2], "weight")]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)
        masks = global_magnitude(weights, sparsity)
        assert torch.equal(masks["0"], reference[0].weight_mask.bool())
        assert torch.equal(masks["2"], reference[2].weight_mask.bool())


def test_composes_with_torch_masks_pruning_among_the_rest():
    torch.manual_seed(1)
    layers = [nn.Linear(10, 10), nn.Linear(10, 5)]
    weights = {str(i): layer.weight.detach().clone() for i, layer in enumerate(layers)}
    params = [(layer, "weight") for layer in layers]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.4)
    first = {str(i): layer.weight_mask for i, layer in enumerate(layers)}  # float buffers
    # torch prunes round(0.5 * 90) = 45 of the 90 left; here the target is 60 + 45 of 150.
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    masks = global_magnitude(weights, 105 / 150, masks=first)
    for i, layer in enumerate(layers):
        assert torch.equal(masks[str(i)], layer.weight_mask.bool())


def test_previously_pruned_weights_stay_pruned_even_when_large():
    weights = {"a": torch.tensor([5.0, 1.0, 2.0, 3.0])}
    current = {"a": torch.tensor([False, True, True, True])}
    assert kept(global_magnitude(weights, 0.5, masks=current)) == {"a": [False, False, True, True]}
    with pytest.raises(PruningError, match="already 1 of 4 pruned, more than the 0"):
        global_magnitude(weights, 0.1, masks=current)


def test_min_kept_count_moves_the_deficit_to_other_layers():
    weights = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "b": torch.tensor([1.0, 2, 3, 4])}
    # Plain global at 6/10 empties a; with at least 2 per layer, a keeps its largest two and
    # the two weights it would have lost are taken from b, the smallest first.
    assert kept(global_magnitude(weights, 0.6)) == {"a": [False] * 6, "b": [True] * 4}
    assert kept(global_magnitude(weights, 0.6, min_kept=2)) == {
        "a": [False, False, False, False, True, True],
        "b": [False, False, True, True],
    }


def test_min_kept_fraction_rounds_up():
    weights = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "b": torch.tensor([1.0, 2, 3, 4])}
    # ceil(0.5 * 6) = 3 and ceil(0.5 * 4) = 2 kept at least; 5 of 10 pruned.
    assert kept(global_magnitude(weights, 0.5, min_kept=0.5)) == {
        "a": [False, False, False, True, True, True],
        "b": [False, False, True, True],
    }
    # ceil(0.3 * 10) is 3 (the float product is 3.0000000000000004), so 7 may go.
    ten = {"a": torch.arange(1.0, 11.0), "b": torch.tensor([100.0])}
    assert pruned_total(global_magnitude(ten, 7 / 11, min_kept=0.3)) == 7
    assert kept(global_magnitude(ten, 7 / 11, min_kept=0.3))["a"] == [False] * 7 + [True] * 3


def test_min_kept_that_binds_nowhere_changes_nothing():
    torch.manual_seed(2)
    weights = {"a": torch.randn(20), "b": torch.randn(5, 4)}
    plain = global_magnitude(weights, 0.5)
    assert all(m.sum() >= 3 for m in plain.values())
    assert kept(global_magnitude(weights, 0.5, min_kept=3)) == kept(plain)


def test_min_kept_with_a_layer_already_below_it():
    weights = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([4.0, 5.0, 6.0, 7.0])}
    current = {"a": torch.tensor([False, False, True]), "b": torch.ones(4, dtype=torch.bool)}
    # a keeps its one unpruned weight; b gives the rest of the 4 pruned in all, keeping 2.
    assert kept(global_magnitude(weights, 4 / 7, masks=current, min_kept=2)) == {
        "a": [False, False, True],
        "b": [False, False, True, True],
    }


def test_min_kept_that_leaves_too_little_raises():
    weights = {"a": torch.ones(4), "b": torch.ones(4)}
    with pytest.raises(PruningError, match=r"needs 7 more .* min_kept=0.25 leaves only 6"):
        global_magnitude(weights, 7 / 8, min_kept=0.25)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_min_kept_raises(bad):
    with pytest.raises(PruningError, match="min_kept"):
        global_magnitude({"a": torch.ones(4)}, 0.5, min_kept=bad)


def test_layerwise_rounds_each_layer():
    weights = {"a": torch.tensor([5.0, 4, 3, 2, 1]), "b": torch.tensor([[3.0, -1, 2]])}
    # round(2.5) = 2 and round(1.5) = 2: 4 of 8 pruned in all.
    assert kept(layerwise_magnitude(weights, 0.5)) == {
        "a": [True, True, True, False, False],
        "b": [True, False, False],
    }


def test_layerwise_matches_torch_l1_unstructured():
    torch.manual_seed(3)
    layers = [nn.Linear(7, 9), nn.Conv2d(3, 5, 3)]
    weights = {str(i): layer.weight.detach().clone() for i, layer in enumerate(layers)}
    for layer in layers:
        prune.l1_unstructured(layer, "weight", amount=0.37)
    masks = layerwise_magnitude(weights, 0.37)
    for i, layer in enumerate(layers):
        assert torch.equal(masks[str(i)], layer.weight_mask.bool())


def test_layerwise_with_a_layer_already_sparser_raises():
    weights = {"a": torch.ones(4), "b": torch.ones(4)}
    current = {"a": torch.tensor([False, False, True, True]), "b": torch.ones(4, dtype=torch.bool)}
    assert kept(layerwise_magnitude(weights, 0.5, masks=current))["b"] == [False, False, True, True]
    with pytest.raises(PruningError, match="layer a: already 2 of 4 pruned"):
        layerwise_magnitude(weights, 0.25, masks=current)


@st.composite
def pruning_problems(draw):
    """Small integer-valued layers (many ties), a random current mask, a feasible target."""
    layers = {}
    for i in range(draw(st.integers(1, 3))):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)))
        values = draw(
            st.lists(st.integers(-3, 3), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])
        )
        layers[f"l{i}"] = torch.tensor(values, dtype=torch.float32).reshape(shape)
    current = {
        name: torch.tensor(
            draw(st.lists(st.booleans(), min_size=w.numel(), max_size=w.numel()))
        ).reshape(w.shape)
        for name, w in layers.items()
    }
    total = sum(w.numel() for w in layers.values())
    target = draw(st.integers(pruned_total(current), total))
    return layers, current, target, total


def reference_order(weights, alive):
    """Unpruned positions sorted by (|w|, layer order, flat index): the tie rule, in Python."""
    entries = []
    for layer, (name, weight) in enumerate(weights.items()):
        for index, value in enumerate(weight.reshape(-1).tolist()):
            if alive[name].reshape(-1)[index]:
                entries.append((abs(value), layer, index, name))
    return sorted(entries)


@settings(max_examples=150, deadline=None)
@given(pruning_problems())
def test_property_global_is_the_reference_order(problem):
    weights, current, target, total = problem
    masks = global_magnitude(weights, target / total, masks=current)
    assert pruned_total(masks) == target
    expected = {name: m.clone() for name, m in current.items()}
    for *_, index, name in reference_order(weights, current)[: target - pruned_total(current)]:
        expected[name].view(-1)[index] = False
    assert kept(masks) == kept(expected)


@settings(max_examples=150, deadline=None)
@given(pruning_problems(), st.integers(0, 4))
def test_property_min_kept(problem, minimum):
    weights, current, target, total = problem
    floors = {name: min(minimum, int(current[name].sum())) for name in weights}
    available = sum(int(current[n].sum()) - floors[n] for n in weights)
    needed = target - pruned_total(current)
    if needed > available:
        with pytest.raises(PruningError):
            global_magnitude(weights, target / total, masks=current, min_kept=minimum)
        return
    masks = global_magnitude(weights, target / total, masks=current, min_kept=minimum)
    assert pruned_total(masks) == target
    for name, mask in masks.items():
        assert mask.sum() >= floors[name]
        assert not (mask & ~current[name]).any()
    # Outside each layer's protected largest, the pruned come first in the global order.
    protected = set()
    for name in weights:
        layer_order = [e for e in reference_order(weights, current) if e[3] == name]
        protected |= {(e[3], e[2]) for e in layer_order[len(layer_order) - floors[name] :]}
    rest = [e for e in reference_order(weights, current) if (e[3], e[2]) not in protected]
    assert [bool(masks[e[3]].view(-1)[e[2]]) for e in rest] == [False] * needed + [True] * (
        len(rest) - needed
    )

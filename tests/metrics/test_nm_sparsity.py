import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.nm_sparsity import nm_masks
from metrics.prunable import PruningError


def test_two_four_on_a_linear_by_hand():
    weight = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.1, -0.2, 9.0]])
    result = nm_masks({"fc": weight})
    assert result.masks["fc"].tolist() == [[False, True, True, False, True, False, False, True]]
    assert result.skipped == ()


def test_conv_groups_run_along_the_flattened_input():
    # (out 2, in 2, kh 1, kw 2): each output channel flattens to in * kh * kw = 4 weights,
    # ordered in0-kw0, in0-kw1, in1-kw0, in1-kw1, and forms one group of 4.
    weight = torch.tensor([[[[1.0, 5.0]], [[2.0, 4.0]]], [[[-9.0, 0.0]], [[0.0, 8.0]]]])
    mask = nm_masks({"conv": weight}).masks["conv"]
    assert mask.shape == weight.shape
    assert mask.reshape(2, 4).tolist() == [[False, True, False, True], [True, False, False, True]]


def test_channels_last_groups_conv_inputs_per_kernel_position():
    # (out 1, in 4, kh 1, kw 2): at kw 0 the inputs are 1, 5, 2, 4 (keep 5, 4); at kw 1 they
    # are 8, 0, 3, 7 (keep 8, 7).
    weight = torch.tensor([[[[1.0, 8.0]], [[5.0, 0.0]], [[2.0, 3.0]], [[4.0, 7.0]]]])
    mask = nm_masks({"conv": weight}, channels_last=True).masks["conv"]
    assert mask[0, :, 0, 0].tolist() == [False, True, False, True]
    assert mask[0, :, 0, 1].tolist() == [True, False, False, True]
    # The default groups the flattened (in, kh, kw): (1, 8, 5, 0) and (2, 3, 4, 7).
    default = nm_masks({"conv": weight}).masks["conv"]
    assert default.reshape(-1).tolist() == [False, True, True, False, False, False, True, True]


def test_channels_last_needs_input_channels_in_whole_groups():
    # in 2 * kh 1 * kw 2 = 4 is a whole group by default, but 2 input channels are not.
    weights = {
        "conv": torch.randn(3, 2, 1, 2, generator=torch.Generator().manual_seed(0)),
        "fc": torch.randn(3, 4, generator=torch.Generator().manual_seed(1)),
    }
    assert nm_masks(weights).skipped == ()
    result = nm_masks(weights, channels_last=True)
    assert result.skipped == ("conv",)
    assert result.masks["conv"].all()
    assert torch.equal(result.masks["fc"], nm_masks(weights).masks["fc"])


def test_ties_keep_the_later_weights():
    mask = nm_masks({"fc": torch.ones(1, 8)}).masks["fc"]
    assert mask.tolist() == [[False, False, True, True] * 2]


def test_other_n_and_m():
    weight = torch.tensor([[4.0, 3.0, 2.0, 1.0, 5.0, 6.0, 7.0, 8.0]])
    assert nm_masks({"fc": weight}, n=1, m=4).masks["fc"].tolist() == [
        [True] + [False] * 6 + [True]
    ]
    assert nm_masks({"fc": weight}, n=3, m=8).masks["fc"].tolist() == [[False] * 5 + [True] * 3]


def test_input_not_a_multiple_of_m_is_left_as_it_was_and_reported():
    torch.manual_seed(0)
    weights = {"fc1": torch.randn(3, 6), "conv": torch.randn(2, 3, 3, 3), "fc2": torch.randn(2, 8)}
    result = nm_masks(weights)
    assert result.skipped == ("fc1", "conv")  # inputs 6 and 27
    assert result.masks["fc1"].all() and result.masks["conv"].all()
    assert int(result.masks["fc2"].sum()) == 8
    current = {name: torch.rand(w.shape) > 0.5 for name, w in weights.items()}
    kept = nm_masks(weights, masks=current).masks
    assert torch.equal(kept["fc1"], current["fc1"])


def test_composes_with_the_current_mask():
    weight = torch.tensor([[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]])
    current = {"fc": torch.tensor([[True, True, True, False, True, False, False, False]])}
    # Group 1: the two largest unpruned are 2 and 3; group 2 has one unpruned, kept.
    mask = nm_masks({"fc": weight}, masks=current).masks["fc"]
    assert mask.tolist() == [[False, True, True, False, True, False, False, False]]


@pytest.mark.parametrize(("n", "m"), [(0, 4), (4, 4), (5, 4), (2.0, 4), (True, 4)])
def test_bad_n_m_raise(n, m):
    with pytest.raises(PruningError, match="N:M needs"):
        nm_masks({"fc": torch.ones(1, 4)}, n=n, m=m)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8), (3, 8)]),
    st.integers(1, 3),
    st.integers(1, 3),
    st.data(),
)
def test_property_every_group_keeps_its_n_largest_unpruned(nm, rows, groups, data):
    n, m = nm
    values = data.draw(
        st.lists(st.integers(-3, 3), min_size=rows * groups * m, max_size=rows * groups * m)
    )
    alive = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    weight = torch.tensor(values, dtype=torch.float32).reshape(rows, groups * m)
    current = torch.tensor(alive).reshape(weight.shape)
    mask = nm_masks({"fc": weight}, n, m, {"fc": current}).masks["fc"].reshape(-1, m)
    for group, kept, was in zip(weight.reshape(-1, m), mask, current.reshape(-1, m), strict=True):
        candidates = [i for i in range(m) if was[i]]
        # Largest first, ties: the later index first.
        expected = sorted(candidates, key=lambda i: (abs(float(group[i])), i))[-n:]
        assert [i for i in range(m) if kept[i]] == sorted(expected)

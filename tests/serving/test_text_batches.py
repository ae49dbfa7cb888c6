"""Length grouping of text batches: every text once, the cheapest cuts, padding on either side."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.runtime import length_groups, pad


def _cost(lengths: list[int], groups: list[np.ndarray], call: int) -> int:
    return sum(call + len(g) * max(lengths[i] for i in g) for g in groups)


def _cheapest(lengths: list[int], call: int) -> int:
    """Brute force over every way to cut the sorted lengths into contiguous groups."""
    ordered = sorted(lengths)
    n = len(ordered)
    best = None
    for cuts in itertools.product([False, True], repeat=n - 1):
        total, size = 0, 1
        for i, cut in enumerate([*cuts, True]):
            if cut:
                total += call + size * ordered[i]
                size = 1
            else:
                size += 1
        best = total if best is None else min(best, total)
    assert best is not None
    return best


def test_equal_lengths_share_one_call() -> None:
    groups = length_groups([20] * 16)
    assert len(groups) == 1
    assert groups[0].tolist() == list(range(16))


def test_one_long_text_gets_its_own_call() -> None:
    lengths = [5] * 15 + [60]
    groups = length_groups(lengths, call_cost_tokens=12)
    assert sorted(map(len, groups)) == [1, 15]
    assert [15] in [g.tolist() for g in groups]


def test_empty_batch_has_no_groups() -> None:
    assert length_groups([]) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=9),
    st.integers(min_value=0, max_value=40),
)
def test_groups_partition_the_batch_at_the_lowest_cost(lengths: list[int], call: int) -> None:
    groups = length_groups(lengths, call_cost_tokens=call)
    flat = sorted(i for g in groups for i in g.tolist())
    assert flat == list(range(len(lengths)))  # every text exactly once
    assert all(np.all(np.diff(g) > 0) for g in groups)  # input order kept inside a group
    assert _cost(lengths, groups, call) == _cheapest(lengths, call)


def test_pad_right_and_left() -> None:
    ids, mask = pad([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    ids, mask = pad([[101, 7, 102], [101, 102]], pad_id=9, left=True)
    assert ids.tolist() == [[101, 7, 102], [9, 101, 102]]
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    assert ids.dtype == mask.dtype == np.int64

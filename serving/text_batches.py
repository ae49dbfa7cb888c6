"""Split a batch of tokenised texts into ONNX Runtime calls of similar lengths.

A transformer call pads every text to the longest one in it, and on a CPU the padding costs as
much as real tokens: one 60-token text among fifteen 10-token texts makes the batch cost as much
as sixteen 60-token texts. So a dynamic batch is sorted by length and cut into groups where the
padding saved is worth one more call. The cut points come from an exact dynamic programme over
the distinct lengths (at most `max_length` of them, so it stays cheap for any batch size) that
minimises the total cost in token-equivalents: each group costs `call_cost_tokens` plus its size
times its longest length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Fixed cost of one ONNX Runtime call, in tokens of one text: measured on the exported
# MiniLM-shaped model on 2 CPU cores, a 4-token text took as long as ~12 tokens of pure
# per-token cost. Too high merely pads more; too low merely makes more, smaller calls.
CALL_COST_TOKENS = 12


def length_groups(
    lengths: Sequence[int], call_cost_tokens: int = CALL_COST_TOKENS
) -> list[np.ndarray]:
    """Positions of `lengths` grouped for separate calls (cheapest total cost; order kept)."""
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    if len(lengths_arr) == 0:
        return []
    order = np.argsort(lengths_arr, kind="stable")
    values, counts = np.unique(lengths_arr[order], return_counts=True)
    before = np.concatenate([[0], np.cumsum(counts)])  # texts shorter than values[i]
    k = len(values)
    best = np.full(k + 1, np.inf)
    best[0] = 0.0
    start = np.zeros(k + 1, dtype=np.int64)
    for j in range(1, k + 1):
        # A group of the distinct lengths i..j-1 is padded to values[j - 1].
        costs = best[:j] + call_cost_tokens + (before[j] - before[:j]) * values[j - 1]
        start[j] = int(np.argmin(costs))
        best[j] = costs[start[j]]
    groups = []
    j = k
    while j > 0:
        i = start[j]
        groups.append(np.sort(order[before[i] : before[j]]))
        j = i
    return groups[::-1]


def pad(
    sequences: Sequence[Sequence[int]], pad_id: int, left: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 [N, longest], padded on the tokenizer's side."""
    width = max((len(s) for s in sequences), default=0)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        n = len(seq)
        cols = slice(width - n, width) if left else slice(0, n)
        ids[row, cols] = seq
        mask[row, cols] = 1
    return ids, mask

"""Deterministic train/val/test assignment: stratified, by time, or by a stable hash of the id.

The hash is FNV-1a over the id's UTF-8 text followed by a SplitMix64 finaliser, written in
NumPy, so it never changes with a library upgrade: with `method: hash` a row keeps its split when
data is appended. Stratified splits use the same hash (salted with the seed) as a random key and
cut each class at exact quantiles of it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipeline.etl.derive import utf8_buffers

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def stable_hash(keys: pa.Array | pa.ChunkedArray, salt: int = 0) -> np.ndarray:
    """64-bit hash of each key's text (integers hash as their decimal text); nulls hash as ""."""
    data, offsets, missing = utf8_buffers(keys)
    starts, lengths = offsets[:-1], np.diff(offsets)
    lengths[missing] = 0  # a null key hashes as "" whatever bytes its slot spans
    h = np.full(len(starts), _FNV_OFFSET, dtype=np.uint64) ^ np.uint64(salt & (2**64 - 1))
    shortest, longest = int(lengths.min(initial=0)), int(lengths.max(initial=0))
    with np.errstate(over="ignore"):
        for k in range(shortest):  # every key has this byte: no masks needed
            h ^= data[starts + k]
            h *= _FNV_PRIME
        last = max(len(data) - 1, 0)
        for k in range(shortest, longest):
            # Shorter keys read some other byte (clipped to the buffer) and keep their hash.
            byte = data[np.minimum(starts + k, last)]
            h = np.where(lengths > k, (h ^ byte) * _FNV_PRIME, h)
        # SplitMix64 finaliser: spreads FNV's weak low bits over the whole word.
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return h


def uniform(keys: pa.Array | pa.ChunkedArray, salt: int = 0) -> np.ndarray:
    """A reproducible number in [0, 1) per key."""
    return (stable_hash(keys, salt) >> np.uint64(11)).astype(np.float64) / float(2**53)


def class_cuts(u: np.ndarray, fractions: tuple[float, float]) -> tuple[float, float]:
    """(train cut, val cut) on one class's keys so the class splits at exactly these shares."""
    return _cuts_in_place(u.copy(), fractions)


def _cuts_in_place(u: np.ndarray, fractions: tuple[float, float]) -> tuple[float, float]:
    n = len(u)
    k1 = round(fractions[0] * n)
    k2 = round((fractions[0] + fractions[1]) * n)
    ranks = [k - 1 for k in (k1, k2) if k > 0]
    if ranks:
        u.partition(ranks)  # only these two ranks need their sorted place
    cut1 = float(u[k1 - 1]) if k1 > 0 else -1.0
    cut2 = float(u[k2 - 1]) if k2 > 0 else -1.0
    return cut1, max(cut1, cut2)


def assign(u: np.ndarray, cut1: np.ndarray | float, cut2: np.ndarray | float) -> np.ndarray:
    """Split code per row: 0 train (u <= cut1), 1 val (u <= cut2), 2 test."""
    return np.where(u <= cut1, 0, np.where(u <= cut2, 1, 2)).astype(np.int8)


def stratified_cuts(
    u: np.ndarray, classes: np.ndarray, fractions: tuple[float, float], n_classes: int
) -> np.ndarray:
    """[n_classes, 2] cuts; a class absent from the data gets cuts that send nothing anywhere.

    `classes` holds each key's class index; keys of class -1 belong to no class.
    """
    cuts = np.full((n_classes, 2), -1.0)
    for cls in range(n_classes):
        members = u[classes == cls]  # a copy, so it may be partitioned in place
        if len(members):
            cuts[cls] = _cuts_in_place(members, fractions)
    return cuts


def codes_by_position(
    u: np.ndarray, classes: np.ndarray, cuts: np.ndarray, chunk: int = 1 << 20
) -> np.ndarray:
    """Split code per key (-1 where the class is -1), in chunks to keep temporaries small."""
    codes = np.full(len(u), -1, dtype=np.int8)
    for start in range(0, len(u), chunk):
        cls = classes[start : start + chunk]
        kept = cls >= 0
        cut = cuts[cls[kept]]
        codes[start : start + chunk][kept] = assign(
            u[start : start + chunk][kept], cut[:, 0], cut[:, 1]
        )
    return codes

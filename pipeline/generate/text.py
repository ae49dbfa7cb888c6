"""Support-ticket texts assembled column-wise from phrase pools (no per-row Python loop).

Each text is a few optional slots joined by spaces: greeting, order reference, one core sentence
whose tone follows the ticket's severity, up to three detail sentences, a closer and a sign-off.
Every phrase also exists in a misspelt variant, picked at `typo_rate`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GREETINGS = ["Hi,", "Hello team,", "Hey there.", "Good morning,", "Dear support,", "Hi all -"]
SIGN_OFFS = ["Regards, Sam", "Thanks", "Cheers", "Best, Alex", "-- Maria", "Sent from my phone"]

# Severity 0 = happy, 1 = neutral, 2 = annoyed, 3 = angry. The label leans on severity, so a
# text model that learns these tones learns part of the label.
CORE = [
    [
        "Just wanted to say the new version works great.",
        "Everything arrived on time and looks perfect.",
        "Love the product, quick question about the warranty.",
        "Great service as always, thank you for the quick reply.",
    ],
    [
        "How do I change the email address on my account?",
        "Can you tell me when the next delivery slot is?",
        "I would like to update my billing details.",
        "Is there a manual for the settings page?",
    ],
    [
        "My package is late again and nobody answers the phone.",
        "The app keeps logging me out every few minutes.",
        "I was charged twice for the same order.",
        "The item stopped working after two days.",
    ],
    [
        "This is the third time the product broke, completely useless.",
        "Your service is terrible and I want a full refund.",
        "I have been waiting for weeks, this is unacceptable.",
        "The device overheated and damaged my desk, I am furious.",
    ],
]
DETAILS = [
    [
        "The setup took five minutes.",
        "My kids love it too.",
        "The colour is exactly as pictured.",
    ],
    [
        "I checked the FAQ but could not find it.",
        "My account number is on file.",
        "No rush on this.",
    ],
    [
        "I already restarted it twice.",
        "The tracking page shows no update.",
        "Support chat closed before I got an answer.",
    ],
    [
        "Nobody has replied to my last four emails.",
        "I will post a review about this everywhere.",
        "I expect compensation for the damage.",
    ],
]
CLOSERS = [
    ["Thanks again!", "Keep it up!", "Have a nice day."],
    ["Thanks in advance.", "Let me know.", "Appreciate it."],
    ["Please fix this soon.", "Can someone look into it?", "Not happy."],
    ["Cancel my subscription NOW!!!", "Fix it or refund me!", "Worst experience ever!!"],
]


def typo(phrase: str, rng: np.random.Generator) -> str:
    """One misspelling: swap two neighbouring letters, drop one or double one."""
    letters = [i for i, ch in enumerate(phrase[:-1]) if ch.isalpha() and phrase[i + 1].isalpha()]
    if not letters:
        return phrase
    i = int(rng.choice(letters))
    kind = int(rng.integers(3))
    if kind == 0:
        return phrase[:i] + phrase[i + 1] + phrase[i] + phrase[i + 2 :]
    if kind == 1:
        return phrase[:i] + phrase[i + 1 :]
    return phrase[:i] + phrase[i] + phrase[i:]


def _pool(phrases: list[str], rng: np.random.Generator) -> pa.Array:
    """The clean phrases followed by one misspelt variant of each."""
    return pa.array(phrases + [typo(p, rng) for p in phrases], pa.string())


def _pick(
    pool: pa.Array, n_clean: int, choice: np.ndarray, keep: np.ndarray, is_typo: np.ndarray
) -> pa.Array:
    """pool[choice] (its typo variant where is_typo), null where not keep (skipped in joins)."""
    index = choice + n_clean * is_typo.astype(np.int64)
    return pool.take(pa.array(index, mask=~keep))


def make_texts(
    severity: np.ndarray, order_no: np.ndarray, rng: np.random.Generator, typo_rate: float
) -> pa.Array:
    """One ticket text per row; the tone of its sentences follows `severity` (0-3)."""
    n = len(severity)
    vocab_rng = np.random.default_rng(7)  # fixed: the typo variants are part of the vocabulary
    slots: list[pa.Array] = []

    def add(pool_phrases: list[str], choice: np.ndarray, keep: np.ndarray) -> None:
        is_typo = rng.random(n) < typo_rate
        slots.append(
            _pick(_pool(pool_phrases, vocab_rng), len(pool_phrases), choice, keep, is_typo)
        )

    add(GREETINGS, rng.integers(len(GREETINGS), size=n), rng.random(n) < 0.5)
    order_ref = pc.binary_join_element_wise(
        "(order #", pc.cast(pa.array(order_no), pa.string()), ")", ""
    )
    slots.append(pc.if_else(pa.array(rng.random(n) < 0.3), order_ref, pa.nulls(n, pa.string())))
    by_severity = [CORE, DETAILS, DETAILS, DETAILS, CLOSERS]
    n_details = rng.integers(0, 2 + severity)  # angrier tickets run longer
    start = rng.integers(0, 1_000, size=n)  # detail slots take consecutive phrases: no repeats
    for slot, pools in enumerate(by_severity):
        flat = [p for level in pools for p in level]
        offsets = np.cumsum([0] + [len(level) for level in pools])[:-1]
        sizes = np.array([len(level) for level in pools])
        pick = start + slot if 1 <= slot <= 3 else rng.integers(0, 1_000, size=n)
        choice = offsets[severity] + pick % sizes[severity]
        if slot == 0:
            keep = np.ones(n, bool)
        elif slot == 4:
            keep = rng.random(n) < 0.7
        else:
            keep = n_details >= slot
        add(flat, choice, keep)
    add(SIGN_OFFS, rng.integers(len(SIGN_OFFS), size=n), rng.random(n) < 0.4)
    return pc.binary_join_element_wise(*slots, " ", null_handling="skip")

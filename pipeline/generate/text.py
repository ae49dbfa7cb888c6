"""Support-ticket texts whose tone has to be read in context, assembled column-wise with Arrow:
one to three opinion clauses in six frames, their word's polarity flipped by a negator half the
time, so that words and word pairs alone tell little of the tone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

TYPO_VARIANTS = 2  # misspellings per phrase: part of the fixed vocabulary
NULL = pa.scalar(None, pa.string())


@cache
def phrases() -> SimpleNamespace:
    """The word lists of phrases.yaml (pure data) as attributes, e.g. `.adjectives[kind][sign]`."""
    return SimpleNamespace(**yaml.safe_load(Path(__file__).with_name("phrases.yaml").read_bytes()))


def typo(phrase: str, rng: np.random.Generator) -> str:
    """One misspelling: swap two neighbouring letters, drop one or double one."""
    letters = [i for i, ch in enumerate(phrase[:-1]) if ch.isalpha() and phrase[i + 1].isalpha()]
    if not letters:
        return phrase
    i, kind = int(rng.choice(letters)), int(rng.integers(3))
    swapped = phrase[:i] + phrase[i + 1] + phrase[i] + phrase[i + 2 :]
    return [swapped, phrase[:i] + phrase[i + 1 :], phrase[:i] + phrase[i] + phrase[i:]][kind]


@cache
def _pool(phrases: tuple[str, ...]) -> pa.Array:
    """The clean phrases, then TYPO_VARIANTS misspelt copies of the whole list."""
    rng = np.random.default_rng(7)  # fixed: the misspellings are part of the vocabulary
    typos = [typo(p, rng) for _ in range(TYPO_VARIANTS) for p in phrases]
    return pa.array(list(phrases) + typos, pa.string())


class Writer:
    """Picks phrases for n rows at once; every pick may come out misspelt at `typo_rate`."""

    def __init__(self, rng: np.random.Generator, n: int, typo_rate: float) -> None:
        self.rng, self.n, self.typo_rate = rng, n, typo_rate
        self.ph = phrases()

    def chance(self, p: float | np.ndarray) -> np.ndarray:
        """True per row with probability p."""
        return self.rng.random(self.n) < p

    def index(self, groups: Sequence[Sequence[object]], group: np.ndarray) -> np.ndarray:
        """Per row, the flat index of a random member of groups[group] (sizes may differ)."""
        sizes = np.array([len(g) for g in groups])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return offsets[group] + self.rng.integers(0, 1 << 30, self.n) % sizes[group]

    def pick(
        self,
        phrases: Sequence[str],
        choice: np.ndarray | None = None,
        keep: np.ndarray | None = None,
    ) -> pa.Array:
        """phrases[choice] per row (random when None), null where not `keep`."""
        size = len(phrases)
        if choice is None:
            choice = self.rng.integers(size, size=self.n)
        variant = self.rng.integers(1, TYPO_VARIANTS + 1, size=self.n)
        index = choice + size * variant * self.chance(self.typo_rate)
        return _pool(tuple(phrases)).take(pa.array(index, mask=None if keep is None else ~keep))

    def pick_in(self, groups: Sequence[Sequence[str]], group: np.ndarray) -> pa.Array:
        """A random phrase of groups[group] per row."""
        return self.pick([p for g in groups for p in g], self.index(groups, group))

    def maybe(self, phrases: Sequence[str], p: float) -> pa.Array:
        """A random phrase in a share `p` of the rows, null elsewhere."""
        return self.pick(phrases, keep=self.chance(p))


def join(parts: Sequence[pa.Array | str], sep: str = " ") -> pa.Array:
    """Row-wise join that skips nulls (a string is the same word in every row)."""
    return pc.binary_join_element_wise(*parts, sep, null_handling="skip")


def sentence(parts: Sequence[pa.Array | str]) -> pa.Array:
    """Join words into a sentence with a capital first letter and a full stop."""
    text = join(parts)
    first = pc.utf8_upper(pc.utf8_slice_codeunits(text, 0, 1))
    return pc.binary_join_element_wise(first, pc.utf8_slice_codeunits(text, 1), ".", "")


def scatter(values: pa.Array, rows: np.ndarray, n: int) -> pa.Array:
    """An n-row array holding values[k] at rows[k] and null elsewhere."""
    index = np.full(n, -1)
    index[rows] = np.arange(len(rows))
    return values.take(pa.array(index, mask=index < 0))


# --- the six clause frames: each takes `bad` per row and flips its word's polarity at will --


def _fillers(w: Writer) -> list[pa.Array]:
    """0-3 words between a negator and its word, each natural with or without the negator."""
    return [
        w.maybe(w.ph.stance_fillers, 0.35),
        w.maybe(w.ph.time_fillers, 0.15),
        w.maybe(w.ph.degree_fillers, 0.6),
    ]


def _adjective(w: Writer, kind: np.ndarray, word: np.ndarray) -> pa.Array:
    """An opinion word (0 positive, 1 negative) fitting the aspect's kind, or a generic one."""
    groups = [*(g for per_kind in w.ph.adjectives for g in per_kind), *w.ph.generic_adjectives]
    word = word.astype(np.int64)
    return w.pick_in(groups, np.where(w.chance(0.35), 6 + word, 2 * kind + word))


def _copula(w: Writer, bad: np.ndarray) -> pa.Array:
    negated = w.chance(0.5)
    kind = w.rng.integers(3, size=w.n)
    words = [w.pick_in(w.ph.aspects, kind), w.pick_in(w.ph.copulas, negated.astype(np.int64))]
    return sentence([*words, *_fillers(w), _adjective(w, kind, bad ^ negated)])


def _stance(w: Writer, bad: np.ndarray) -> pa.Array:
    negated = w.chance(0.5)
    kind = w.rng.integers(3, size=w.n)
    stance = w.pick_in(w.ph.stances, negated.astype(np.int64))
    words = ["I", stance, w.pick_in(w.ph.aspects, kind), "was"]
    return sentence([*words, *_fillers(w), _adjective(w, kind, bad ^ negated)])


def _feeling(w: Writer, bad: np.ndarray) -> pa.Array:
    negated = w.chance(0.5)
    subject = w.pick_in(w.ph.first_person, negated.astype(np.int64))
    feeling = w.pick_in(w.ph.feelings, (bad ^ negated).astype(np.int64))
    aspect = w.pick_in(w.ph.aspects, w.rng.integers(3, size=w.n))
    return sentence([subject, *_fillers(w), feeling, "with", aspect])


def _quantified(w: Writer, bad: np.ndarray) -> pa.Array:
    negated = w.chance(0.5)
    noun = w.index(w.ph.nouns, (bad ^ negated).astype(np.int64))
    pairs = [pair for group in w.ph.nouns for pair in group]
    quantifier = w.pick_in(w.ph.quantifiers, negated.astype(np.int64))
    verb, rest = (w.pick([pair[k] for pair in pairs], noun) for k in (0, 1))
    aspect = w.pick_in(w.ph.aspects, w.rng.integers(3, size=w.n))
    return sentence(["I", verb, quantifier, w.pick(w.ph.noun_fillers), rest, aspect])


def _counterfactual(w: Writer, bad: np.ndarray) -> pa.Array:
    negated = w.chance(0.5)
    # "could have been better" is bad, "couldn't have been better" good, "... worse" the reverse.
    comparative = w.pick_in(w.ph.comparatives, (~(bad ^ negated)).astype(np.int64))
    aspect = w.pick_in(w.ph.aspects, w.rng.integers(3, size=w.n))
    could = w.pick_in(w.ph.could, negated.astype(np.int64))
    return sentence([aspect, could, w.maybe(["much", "a lot", "far"], 0.2), comparative])


def _event(w: Writer, bad_turn: np.ndarray) -> pa.Array:
    kind = w.rng.integers(2, size=w.n)
    subject = w.pick_in(w.ph.event_subjects, kind)
    event = w.pick_in(
        [turns for per_kind in w.ph.events for turns in per_kind], 2 * kind + bad_turn
    )
    # Always a time at the end: the word before a connector or a full stop says no polarity.
    return join([subject, event, w.pick(w.ph.tails)])


def _events(w: Writer, bad: np.ndarray) -> pa.Array:
    """'<event>, then <event>': one good turn and one bad; the later one sets the tone."""
    first = join([w.maybe(w.ph.openers, 0.25), _event(w, ~bad)])
    head = pc.binary_join_element_wise(first, w.pick(w.ph.connectors), "")
    return sentence([head, _event(w, bad)])


FRAMES: list[tuple[Callable[[Writer, np.ndarray], pa.Array], float]] = [  # (frame, share)
    (_copula, 0.30),
    (_stance, 0.10),
    (_feeling, 0.20),
    (_quantified, 0.15),
    (_counterfactual, 0.07),
    (_events, 0.18),
]


def clause(w: Writer, bad: np.ndarray) -> pa.Array:
    """One opinion clause per row that reads as bad where `bad`, good elsewhere."""
    frame = w.rng.choice(len(FRAMES), w.n, p=[share for _, share in FRAMES])
    pieces, rows = [], []
    for f, (build, _) in enumerate(FRAMES):  # each frame built only for its own rows
        chosen = np.flatnonzero(frame == f)
        pieces.append(build(Writer(w.rng, len(chosen), w.typo_rate), bad[chosen]))
        rows.append(chosen)
    return scatter(pa.concat_arrays(pieces), np.concatenate(rows), w.n)


def _order_refs(w: Writer, order_no: np.ndarray) -> pa.Array:
    ref = pa.array(w.rng.integers(len(w.ph.order_refs), size=w.n))
    prefix, suffix = (pa.array([r[k] for r in w.ph.order_refs]).take(ref) for k in (0, 1))
    number = pc.cast(pa.array(order_no), pa.string())
    return pc.if_else(
        pa.array(w.chance(0.3)), pc.binary_join_element_wise(prefix, number, suffix, ""), NULL
    )


def _request(w: Writer, p_bad: np.ndarray) -> pa.Array:
    """A request in a third of the tickets, demanding ones leaning bad: a weak keyword cue."""
    calm = len(w.ph.requests) // 2  # the first half is calm, the second demanding
    demanding = w.chance(0.3 + 0.4 * p_bad)
    choice = w.rng.integers(calm, size=w.n) + calm * demanding
    return w.pick(w.ph.requests, choice, keep=w.chance(0.35))


def make_texts(
    mood: np.ndarray, order_no: np.ndarray, rng: np.random.Generator, typo_rate: float
) -> pa.Array:
    """One ticket per row; each of its clauses is bad with probability sigmoid(5 * mood)."""
    n = len(mood)
    w = Writer(rng, n, typo_rate)
    p_bad = 1 / (1 + np.exp(-5 * mood))
    n_clauses = 1 + w.chance(0.6) + w.chance(0.25)
    clauses = []
    for i in range(3):
        rows = np.flatnonzero(n_clauses > i)
        sub = Writer(rng, len(rows), typo_rate)
        clauses.append(scatter(clause(sub, sub.chance(p_bad[rows])), rows, n))
    n_details = np.where(w.chance(0.08), rng.integers(3, 7, n), rng.integers(0, 2, n))
    start = rng.integers(len(w.ph.details), size=n)  # consecutive details: no repeats
    details = [
        w.pick(w.ph.details, (start + i) % len(w.ph.details), keep=n_details > i) for i in range(6)
    ]
    context_first = pa.array(w.chance(0.3))
    context = w.maybe(w.ph.context, 0.45)
    text = join(
        [
            w.maybe(w.ph.greetings, 0.5),
            _order_refs(w, order_no),
            pc.if_else(context_first, context, NULL),
            clauses[0],  # early, so that a 32-token encoder still reads one clause
            pc.if_else(context_first, NULL, context),
            *clauses[1:],
            _request(w, p_bad),
            *details,
            w.maybe(w.ph.closers, 0.4),
            w.maybe(w.ph.sign_offs, 0.4),
        ]
    )
    casual = pa.array(w.chance(0.15))  # some people never press shift
    return pc.if_else(casual, pc.utf8_lower(text), text)

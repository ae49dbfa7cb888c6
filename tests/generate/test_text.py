"""Ticket texts carry their tone in context: words alone say little, negation and order flip it."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.compute as pc
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pipeline.generate.text import Writer, clause, phrases

PH = phrases()

COUNTERFACTUAL = re.compile("|".join(PH.could[0] + PH.could[1]))
NEGATOR = re.compile(r"\b(not|never|hardly|far from|by no means|anything but|cannot)\b|n't\b")


@pytest.fixture(scope="module")
def clauses() -> tuple[list[str], np.ndarray]:
    """20,000 opinion clauses without typos, half of them bad."""
    rng = np.random.default_rng(0)
    bad = rng.random(20_000) < 0.5
    return clause(Writer(rng, len(bad), typo_rate=0.0), bad).to_pylist(), bad


def _bad_share(texts: list[str], bad: np.ndarray, keep: list[bool]) -> tuple[float, int]:
    chosen = bad[np.array(keep)]
    return float(chosen.mean()), len(chosen)


def _words(groups: list[list[str]]) -> re.Pattern[str]:
    """Any single-word member of the groups ("fine" also names an event: left out)."""
    words = [w for g in groups for w in g if " " not in w and w != "fine"]
    return re.compile(r"\b(" + "|".join(words) + r")\b")


def test_opinion_words_appear_in_both_tones_and_negation_flips_them(
    clauses: tuple[list[str], np.ndarray],
) -> None:
    texts, bad = clauses
    adjectives = [*PH.adjectives, PH.generic_adjectives, PH.feelings]
    for tone in (0, 1):
        pattern = _words([kind[tone] for kind in adjectives])
        # "could have been more helpful" (a complaint) is the counterfactual frame: left out.
        has = [pattern.search(t) is not None and not COUNTERFACTUAL.search(t) for t in texts]
        share, count = _bad_share(texts, bad, has)
        assert count > 2_000 and 0.45 < share < 0.55, (tone, share)  # the word alone: a coin
        negated = [h and NEGATOR.search(t) is not None for h, t in zip(has, texts, strict=True)]
        plain = [h and not n for h, n in zip(has, negated, strict=True)]
        # With its negator read, the tone is certain: "not rude" is good, "rude" is bad.
        assert _bad_share(texts, bad, negated)[0] == 1 - tone
        assert _bad_share(texts, bad, plain)[0] == tone


def test_could_have_been_better_is_a_complaint(clauses: tuple[list[str], np.ndarray]) -> None:
    texts, bad = clauses
    better = _words([PH.comparatives[0]])
    plain = re.compile(r"\b(" + "|".join(PH.could[0]) + r")\b")
    negated = re.compile(r"\b(" + "|".join(PH.could[1]) + r")\b")
    for could, tone in ((plain, 1), (negated, 0)):
        chosen = [could.search(t) is not None and better.search(t) is not None for t in texts]
        share, count = _bad_share(texts, bad, chosen)
        assert count > 100 and share == tone


def test_what_happened_last_sets_the_tone(clauses: tuple[list[str], np.ndarray]) -> None:
    texts, bad = clauses
    patterns = [
        re.compile(r"\b(" + "|".join(e for kind in PH.events for e in kind[tone]) + r")\b")
        for tone in (0, 1)
    ]

    def last_turn(text: str) -> int | None:
        """1 when the last event told is a bad turn, 0 a good one, None without both."""
        ends = [max((m.end() for m in pattern.finditer(text)), default=-1) for pattern in patterns]
        return None if min(ends) < 0 else int(ends[1] > ends[0])

    turns = [last_turn(t) for t in texts]
    with_both = [t is not None for t in turns]
    assert sum(with_both) > 3_000
    assert 0.45 < _bad_share(texts, bad, with_both)[0] < 0.55  # both events in every one
    read = np.array([t for t in turns if t is not None])
    assert (read == bad[np.array(with_both)]).all()  # the later event decides


def test_bag_of_words_reads_little_of_the_tone() -> None:
    rng = np.random.default_rng(1)
    bad = rng.random(8_000) < 0.5
    writer = Writer(rng, len(bad), typo_rate=0.03)
    two = pc.binary_join_element_wise(clause(writer, bad), clause(writer, bad), " ")
    texts, y = two.to_pylist(), bad.astype(int)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit(texts[:6_000])
    model = LogisticRegression(max_iter=1_000).fit(tfidf.transform(texts[:6_000]), y[:6_000])
    auc = roc_auc_score(y[6_000:], model.predict_proba(tfidf.transform(texts[6_000:]))[:, 1])
    assert auc < 0.7, auc  # two clauses of the same tone, read word by word and pair by pair

"""Raw-field cleaning and derived features: one definition for the ETL, the models and the server.

NumPy and the standard library only (the server imports it). Missing numbers are NaN, missing
categories and texts None, missing datetimes NaT; datetimes are naive datetime64[us] in the
spec's `timezone`; derived numbers are float64, and a missing text's statistics are 0.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from serving.schemas import DERIVED_SEP, TEXT_STATS, FeatureSpec

# Words are runs of characters other than ASCII whitespace; text is stripped of ASCII whitespace.
ASCII_SPACE = " \t\n\r\x0b\x0c"
WORD_PATTERN = r"[^ \t\n\r\x0b\x0c]+"  # the same definition as a regex (tests, pandas bench)
# Booleans written as words (any case); the ETL reads text booleans with the same lists.
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_WORDS = re.compile(r"\w+")
# Formats tried, in order, when suggesting a `datetime_format` for values that are not ISO 8601.
COMMON_FORMATS = (
    "%d-%m-%Y %H.%M",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d",
    "%d %b %Y",
    "%b %d, %Y",
)

# Up to this many rows Python beats numpy's fixed costs: calendar parts (bench/RESULTS.md), text
# statistics (83 against 162 us for 8 demo messages, equal at 16, 433 against 199 us at 64).
_FEW_ROWS = 16
_FEW_TEXTS = 16
_PART = {
    "year": lambda d: d.year,
    "month": lambda d: d.month,
    "day": lambda d: d.day,
    "dayofweek": lambda d: d.weekday(),
    "hour": lambda d: d.hour,
}
_ISO_NAIVE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
)
_WORD_RE = re.compile(WORD_PATTERN)
_DIGIT_RE = re.compile(r"[0-9]")
_COUNT = {
    "chars": len,  # code points: the UTF-8 bytes that start a character
    "words": lambda t: len(_WORD_RE.findall(t)),
    "exclaims": lambda t: t.count("!"),
    "digits": lambda t: len(_DIGIT_RE.findall(t)),
}


# --- single values -------------------------------------------------------------------------


def normalise_category(value: Any) -> str | None:
    """Category spelling: collapse whitespace, strip, casefold; empty or missing → None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = " ".join(str(value).split()).casefold()
    return text or None


def parse_datetime(value: Any, fmt: str | None = None, tz: str = "UTC") -> np.datetime64:
    """A raw datetime → naive datetime64[us] in zone `tz`; missing, invalid or out of range → NaT.

    Strings are ISO 8601 or `fmt`; naive values are in `tz` already, aware ones are converted.
    """
    if value is None or value == "":
        return np.datetime64("NaT", "us")
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[us]")
    if isinstance(value, str):
        text = value.strip()
        value = None  # NaT unless ISO 8601 or `fmt` reads it
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(text)
        if value is None and fmt is not None:
            with contextlib.suppress(ValueError):
                value = datetime.strptime(text, fmt)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            try:
                value = value.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+01:00 leaves year 1
                return np.datetime64("NaT", "us")
        return np.datetime64(value, "us")
    if isinstance(value, date):
        return np.datetime64(value, "D").astype("datetime64[us]")
    return np.datetime64("NaT", "us")


def suggest_format(values: Sequence[str]) -> str | None:
    """The first of COMMON_FORMATS that parses every one of `values` (a small sample), if any."""
    for fmt in COMMON_FORMATS:
        with contextlib.suppress(ValueError):
            for v in values:
                datetime.strptime(v.strip(), fmt)
            return fmt
    return None


def to_number(value: Any, *, boolean: bool = False) -> float:
    """A JSON value → float: numbers as is, booleans as 0/1, null → NaN; anything else raises."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if boolean and word in TRUE_WORDS | FALSE_WORDS:
            return 1.0 if word in TRUE_WORDS else 0.0
        with contextlib.suppress(ValueError):
            return float(word)
    raise ValueError(f"expected a number{' or boolean' if boolean else ''}, found {value!r}")


def fold_text(value: Any) -> str:
    """The text as every TF-IDF step reads it: NFC, lower case, words joined by one space.

    Here, not in the graph: ONNX Runtime's lower-casing and regular expressions differ from
    Python's on some Unicode text, so the exported graph only splits on spaces.
    """
    if value is None:
        return ""
    return " ".join(_WORDS.findall(unicodedata.normalize("NFC", str(value)).lower()))


# --- arrays --------------------------------------------------------------------------------


def normalise_categories(values: Iterable[Any]) -> np.ndarray:
    """`normalise_category` over an array; each distinct value is normalised once."""
    values = list(values)
    if all(v is None or type(v) is str for v in values):  # the usual case, keyed directly
        cache = {v: normalise_category(v) for v in set(values)}
        return np.array([cache[v] for v in values], dtype=object)
    # True, 1 and 1.0 are equal keys but read differently: key them by type and repr.
    keys = [v if type(v) is str else (type(v), repr(v)) for v in values]
    cache = {k: normalise_category(v) for k, v in dict(zip(keys, values, strict=True)).items()}
    return np.array([cache[k] for k in keys], dtype=object)


def apply_bounds(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Impossible numbers (outside [lo, hi], or ±inf) → NaN; returns a new float64 array."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = -np.inf if lo is None else lo, np.inf if hi is None else hi
    return np.where(np.isfinite(x) & (x >= lo) & (x <= hi), x, np.nan)


def parse_datetimes(values: Iterable[Any], fmt: str | None = None, tz: str = "UTC") -> np.ndarray:
    """`parse_datetime` over an array → datetime64[us] array."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[us]")
    values = list(values)
    out = np.empty(len(values), dtype="datetime64[us]")
    # Naive ISO 8601 strings, the usual case in files, are parsed by numpy in one call (the
    # same instant as `parse_datetime`, ~20x faster); everything else goes one by one.
    plain = [i for i, v in enumerate(values) if type(v) is str and _ISO_NAIVE.fullmatch(v)]
    try:
        out[plain] = np.array([values[i] for i in plain], dtype="datetime64[us]")
    except ValueError:  # e.g. 2024-02-30: let parse_datetime say NaT for that one
        plain = []
    done = np.zeros(len(values), dtype=bool)
    done[plain] = True
    for i in np.flatnonzero(~done).tolist():
        out[i] = parse_datetime(values[i], fmt, tz)
    return out


def to_datetimes(
    values: Sequence[Any] | np.ndarray, fmt: str | None = None, tz: str = "UTC"
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """`parse_datetimes`, and (position, why) for each value that is not missing yet unreadable."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[us]"), []
    column = parse_datetimes(values, fmt, tz)
    expected = f"ISO 8601 or {fmt!r}" if fmt else "ISO 8601"
    bad = [i for i in np.flatnonzero(np.isnat(column)).tolist() if not _missing(values[i])]
    return column, [
        (i, f"expected {expected} (in range), found {str(values[i])[:64]!r}") for i in bad
    ]


def _missing(value: Any) -> bool:
    """None, NaN, NaT or a blank string."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float | np.datetime64) and bool(np.isnan(value)))


def to_numbers(
    values: Sequence[Any] | np.ndarray, boolean: bool = False
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """`to_number` over an array → float64, and (position, why) for each value it cannot read."""
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        column = np.asarray(values, dtype=np.float64)  # numbers, booleans, None, numeric strings
        if column.ndim == 1:
            return column, []
    column = np.full(len(values), np.nan)
    problems = []
    for i, value in enumerate(values):
        try:
            column[i] = to_number(value, boolean=boolean)
        except (ValueError, OverflowError) as exc:
            problems.append((i, str(exc)[:200]))
    return column, problems


def clean_text(values: Iterable[Any]) -> np.ndarray:
    """Free text with ASCII whitespace stripped at both ends; missing stays None."""
    return np.array(
        [None if v is None else str(v).strip(ASCII_SPACE) for v in values], dtype=object
    )


def datetime_parts(values: np.ndarray, parts: Sequence[str]) -> dict[str, Any]:
    """Calendar parts of datetime64 values as float64 (NaT → NaN); dayofweek 0 = Monday."""
    dt = np.asarray(values).astype("datetime64[us]")
    if len(dt) <= _FEW_ROWS:
        moments = dt.tolist()  # datetime, None for NaT (int beyond datetime's range)
        if all(m is None or isinstance(m, datetime) for m in moments):
            return {
                part: np.array(
                    [math.nan if m is None else _PART[part](m) for m in moments], dtype=np.float64
                )
                for part in parts
            }
    missing = np.isnat(dt)
    days = dt.astype("datetime64[D]")
    months = dt.astype("datetime64[M]")
    calc = {
        "year": lambda: dt.astype("datetime64[Y]").astype(np.int64) + 1970,
        "month": lambda: months.astype(np.int64) % 12 + 1,
        "day": lambda: (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        # 1970-01-01 was a Thursday (3 when Monday is 0).
        "dayofweek": lambda: (days.astype(np.int64) + 3) % 7,
        "hour": lambda: (dt.astype("datetime64[h]") - days).astype(np.int64),
    }
    return {part: np.where(missing, np.nan, calc[part]()) for part in parts}


_BLOCK_BYTES = 1 << 20


def text_stats_utf8(
    data: np.ndarray, offsets: np.ndarray, stats: Sequence[str] = TEXT_STATS
) -> dict[str, Any]:
    """Text statistics of UTF-8 texts laid out like an Arrow string array (bytes + offsets).

    Exact per byte: UTF-8 never uses ASCII bytes inside multi-byte characters, and characters
    are the bytes that do not continue a multi-byte sequence.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    data = np.asarray(data, dtype=np.uint8)
    # Blocks of whole texts, about 1 MB each, keep the per-byte flags in the CPU cache (2x faster).
    block_starts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _BLOCK_BYTES))
    edges = np.unique(np.concatenate([[0], block_starts, [len(offsets) - 1]]))
    blocks = [_block_stats(data, offsets[a : b + 1], stats) for a, b in itertools.pairwise(edges)]
    return {s: np.concatenate([blk[s] for blk in blocks]) if blocks else np.zeros(0) for s in stats}


def _block_stats(data: np.ndarray, offsets: np.ndarray, stats: Sequence[str]) -> dict[str, Any]:
    data = data[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    calc = {
        # Continuation bytes (0b10xxxxxx) are -128..-65 as signed bytes.
        "chars": lambda: np.diff(offsets) - _per_text(data.view(np.int8) < -64, offsets),
        "exclaims": lambda: _per_text(data == ord("!"), offsets),
        "digits": lambda: _per_text(data - np.uint8(ord("0")) < 10, offsets),  # wraps below 0
        "words": lambda: _per_text(_word_starts(data, offsets[:-1]), offsets),
    }
    return {s: calc[s]().astype(np.float64) for s in stats}


def _per_text(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Flagged bytes per text, as integers (`flags`: one bool per byte of the texts)."""
    if np.count_nonzero(flags) * 8 < len(flags):
        # Few flagged bytes: each text's count is a difference of two ranks among them.
        return np.diff(np.searchsorted(np.flatnonzero(flags), offsets))
    starts, filled = offsets[:-1], np.diff(offsets) > 0
    sums = np.zeros(len(starts), dtype=np.int64)
    small = len(flags) < 2**31  # int32 sums are about twice as fast and cannot overflow here
    sums[filled] = np.add.reduceat(
        flags.view(np.uint8), starts[filled], dtype=np.int32 if small else np.int64
    )
    return sums


def _word_starts(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """True on each byte that begins a run of non-whitespace (a word)."""
    # ASCII_SPACE is " " and bytes 9-13 (\t\n\x0b\x0c\r); uint8 arithmetic wraps below 9.
    space = (data == ord(" ")) | (data - np.uint8(9) < 5)
    out = np.empty_like(space)
    out[:1] = ~space[:1]
    np.less(space[1:], space[:-1], out=out[1:])  # a non-space byte right after a space
    first = starts[starts < len(data)]  # a text's first byte has no byte before it
    out[first] = ~space[first]
    return out


def text_stats(values: Iterable[Any], stats: Sequence[str] = TEXT_STATS) -> dict[str, Any]:
    """Per-text statistics as float64; a missing text counts as empty (all zeros)."""
    texts = ["" if v is None else str(v) for v in values]
    if len(texts) <= _FEW_TEXTS:  # the same counts without the byte-level pass's fixed cost
        return {s: np.array([_COUNT[s](t) for t in texts], dtype=np.float64) for s in stats}
    # One encode of all texts; a text's byte length is its length when it is ASCII.
    sizes = [len(t) if t.isascii() else len(t.encode("utf-8")) for t in texts]
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    data = np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8)
    return text_stats_utf8(data, offsets, stats)


def fold_texts(values: Iterable[Any]) -> np.ndarray:
    """`fold_text` over an array. ASCII texts, whose word characters are exactly [0-9A-Za-z_],
    are folded together on their bytes (faster from one text on), others one by one."""
    texts = ["" if v is None else str(v) for v in values]
    plain = np.array([t.isascii() and "\x00" not in t for t in texts], dtype=bool)
    out = np.array(texts, dtype=object)
    if plain.any():
        out[plain] = _fold_ascii(out[plain].tolist())
    for i in np.flatnonzero(~plain).tolist():
        out[i] = fold_text(texts[i])
    return out


# ASCII byte → lower-cased word byte, or a space; NUL (the separator of texts) stays NUL.
_ASCII_FOLD = bytes(
    ord(chr(b).lower()) if chr(b).isalnum() or b == ord("_") else (0 if b == 0 else 32)
    for b in range(128)
) + bytes(range(128, 256))


def _fold_ascii(texts: list[str]) -> list[str]:
    """`fold_text` of ASCII texts without NUL, all at once: non-word bytes become spaces, runs
    of spaces become one, and spaces at either end of a text go."""
    data = np.frombuffer("\x00".join(texts).encode("ascii").translate(_ASCII_FOLD), np.uint8)
    space = data == 32
    first = ~space
    first[1:] |= ~space[:-1]  # a byte that is not a space, or the first space of a run
    data = data[first]
    ends = np.zeros(len(data) + 2, dtype=np.uint8)  # NUL before the first byte and after the last
    ends[1:-1] = data
    inner = (data != 32) | ((ends[:-2] != 0) & (ends[2:] != 0))
    return data[inner].tobytes().decode("ascii").split("\x00")


def prepare_columns(
    raw: Mapping[str, Sequence[Any] | np.ndarray], spec: FeatureSpec
) -> dict[str, np.ndarray]:
    """Raw values per column → cleaned raw inputs, then derived features: every model's input.
    Raises ValueError naming the column when a value cannot be read."""
    out: dict[str, np.ndarray] = {}
    problems: list[tuple[int, str]]
    for col in spec.numeric:
        numbers, problems = to_numbers(raw[col], col in spec.boolean)
        if problems:
            raise ValueError(f"{col}: {problems[0][1]}")
        out[col] = apply_bounds(numbers, *spec.bounds.get(col, (None, None)))
    for col in spec.categorical:
        out[col] = normalise_categories(raw[col])
    for col in spec.datetime:
        out[col], problems = to_datetimes(raw[col], spec.datetime_formats.get(col), spec.timezone)
        if problems:
            raise ValueError(f"{col}: {problems[0][1]}")
    if spec.text:
        out[spec.text] = clean_text(raw[spec.text])
    for col in spec.datetime:
        for part, values in datetime_parts(out[col], spec.datetime_parts).items():
            out[f"{col}{DERIVED_SEP}{part}"] = values
    if spec.text and spec.folded_text:
        for stat, values in text_stats(out[spec.text], spec.text_stats).items():
            out[f"{spec.text}{DERIVED_SEP}{stat}"] = values
        out[spec.folded_text] = fold_texts(out[spec.text])
    return out


def prepare_records(records: Sequence[Mapping[str, Any]], spec: FeatureSpec) -> dict[str, Any]:
    """`prepare_columns` for row-oriented JSON records; absent fields count as null."""
    return prepare_columns({n: [r.get(n) for r in records] for n in spec.raw_inputs}, spec)

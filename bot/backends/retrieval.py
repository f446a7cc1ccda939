"""Okapi BM25 over a persona's short texts, standard library only.

:func:`tokenize` lowercases, keeps unicode word characters, drops a small English
stopword list and strips common suffixes, so "containers", "container" and "contained"
meet. :class:`Bm25Index` scores weighted fields (BM25F): a document matches strongly on
one field and weakly on another, as an example exchange does on its user and char lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: word lists stay readable."""
    return frozenset(text.split())


#: Unicode letters and digits (``\w`` without the underscore).
WORD = re.compile(r"[^\W_]+")

STOPWORDS = wordset(
    """
    a about above after again all also am an and any anything are as at be been before
    being below between both but by can could did do does doing done down during each
    else even ever every few for from further get gets got had has have having he her
    here hers herself him himself his how i if in into is it its itself just let like
    me more most much must my myself need no nor not now of off oh ok okay on once only
    or other our ours out over own please quite rather really same say she should so
    some something such tell than that the their theirs them themselves then there
    these they thing things this those through to too under until up us very want was
    way we well were what when where which while who whom why will with would yeah yes
    you your yours yourself yourselves know explain hi hello hey thanks thank bye
    goodbye
    """
)

_VOWELS = frozenset("aeiouy")
_NO_UNDOUBLE = frozenset("lsz")


def _has_vowel(stem: str) -> bool:
    return any(ch in _VOWELS for ch in stem)


def stem(word: str) -> str:
    """A light suffix stripper for lowercase words: plurals, -ing, -ed, final -e.

    Not linguistics, only consistency: both sides of a match go through it.
    """
    if len(word) <= 2:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 2 and _has_vowel(base):
            word = base
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _NO_UNDOUBLE:
                word = word[:-1]  # running -> run
            break
    if len(word) > 2 and word.endswith("e"):
        word = word[:-1]  # store / stored / storing -> stor
    return word


@lru_cache(maxsize=32768)
def _term(word: str) -> str | None:
    if word in STOPWORDS or (len(word) == 1 and word.isascii()):
        return None
    return stem(word)


def terms(words: Iterable[str]) -> list[str]:
    """The index terms of lowercase ``words``, in order, repeats kept."""
    return [t for t in map(_term, words) if t is not None]


def tokenize(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    return terms(WORD.findall(text.lower()))


#: A document is a sequence of fields, each its terms and a weight.
Field = tuple[Sequence[str], float]


class Bm25Index:
    """BM25F over a fixed set of documents; scoring walks precomputed postings only."""

    def __init__(self, docs: Sequence[Sequence[Field]], k1: float = 1.5, b: float = 0.75):
        n = len(docs)
        width = max((len(d) for d in docs), default=0)
        totals, counts = [0] * width, [0] * width
        for doc in docs:
            for i, (terms, _weight) in enumerate(doc):
                if terms:
                    totals[i] += len(terms)
                    counts[i] += 1
        avg = [totals[i] / counts[i] if counts[i] else 1.0 for i in range(width)]
        per_doc: list[dict[str, float]] = []
        df: dict[str, int] = {}
        for doc in docs:
            tf: dict[str, float] = {}
            for i, (terms, weight) in enumerate(doc):
                if terms:
                    norm = weight / (1 - b + b * len(terms) / avg[i])
                    for term in terms:
                        tf[term] = tf.get(term, 0.0) + norm
            per_doc.append(tf)
            for term in tf:
                df[term] = df.get(term, 0) + 1
        self.size = n
        self.df: Mapping[str, int] = df
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        #: An unknown word weighs as much as the rarest known one (df = 1): in a small
        #: card every idf is small, and "df = 0" would drown the words that do match.
        self.unknown_idf = math.log(1 + (n - 0.5) / 1.5) if n else 1.0
        postings: dict[str, list[tuple[int, float]]] = {}
        for j, tf in enumerate(per_doc):
            for term, f in tf.items():
                postings.setdefault(term, []).append((j, self._idf[term] * f * (k1 + 1) / (f + k1)))
        self._postings = {t: tuple(p) for t, p in postings.items()}
        self._terms = tuple(frozenset(tf) for tf in per_doc)

    def idf(self, term: str) -> float:
        return self._idf.get(term, self.unknown_idf)

    def search(self, query: Mapping[str, float], limit: int = 8) -> list[tuple[int, float]]:
        """The best ``limit`` documents for ``query`` (term -> weight) with their
        scores, best first."""
        scores: dict[int, float] = {}
        get = scores.get
        for term, weight in query.items():
            for doc, part in self._postings.get(term, ()):
                scores[doc] = get(doc, 0.0) + weight * part
        if not scores:
            return []
        # Equal scores keep their first-seen order (sorted is stable): deterministic.
        return sorted(scores.items(), key=itemgetter(1), reverse=True)[:limit]

    def coverage(self, query: Mapping[str, float], doc: int) -> float:
        """The share (0..1) of the query's idf-weighted terms that ``doc`` contains: a
        scale-free sense of "is this document about what was asked"."""
        return self.covered(self.weights(query), doc)

    def weights(self, query: Mapping[str, float]) -> tuple[list[tuple[str, float]], float]:
        """The query's idf-weighted terms and their sum: what :meth:`covered` compares
        each document with (worked out once for a query checked against several)."""
        idf, unknown = self._idf, self.unknown_idf
        parts = [(term, weight * idf.get(term, unknown)) for term, weight in query.items()]
        total = 0.0
        for _term, part in parts:
            total += part
        return parts, total

    def covered(self, weights: tuple[list[tuple[str, float]], float], doc: int) -> float:
        """:meth:`coverage` of ``doc`` from the query's :meth:`weights`."""
        parts, total = weights
        terms = self._terms[doc]
        found = 0.0
        for term, part in parts:
            if term in terms:
                found += part
        return found / total if total else 0.0

"""A TF-IDF featuriser that is trained with scikit-learn and served without it.

Training uses ``sklearn.feature_extraction.text.TfidfVectorizer`` (sublinear tf, smooth idf, l2 norm) on an
analyzer producing character 1–3-grams and jieba words. Serving one short query through scikit-learn
costs a few hundred microseconds of input validation, so the fitted vocabulary and idf are exported to
plain arrays and applied here with the same formula (tf = 1 + ln(count); x = tf · idf; x /= ||x||₂),
which a test checks against ``TfidfVectorizer.transform``. No pickle: the vocabulary is a JSON list.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def char_ngrams(text: str, n_min: int = 1, n_max: int = 3) -> list[str]:
    s = text.replace(" ", "")
    out = []
    for n in range(n_min, n_max + 1):
        out.extend("c:" + s[i : i + n] for i in range(len(s) - n + 1))
    return out


def make_analyzer(words: Callable[[str], Sequence[str]]) -> Callable[[str], list[str]]:
    """Character 1–3-grams plus ``w:``-prefixed words of already normalised text."""

    def analyze(text: str) -> list[str]:
        return char_ngrams(text) + ["w:" + w for w in words(text)]

    return analyze


@dataclass(frozen=True)
class TextVectorizer:
    vocab: dict[str, int]
    idf: np.ndarray  # float64, one per vocabulary entry

    @classmethod
    def fit(
        cls, texts: Sequence[str], analyzer: Callable[[str], list[str]], min_df: int = 1, max_features: int | None = None
    ) -> tuple[TextVectorizer, sp.csr_matrix]:
        """Fit on ``texts``; returns the vectorizer and the training matrix (from scikit-learn itself)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        tv = TfidfVectorizer(
            analyzer=analyzer, sublinear_tf=True, min_df=min_df, max_features=max_features, dtype=np.float64
        )
        x = tv.fit_transform(texts)
        vocab = {t: int(i) for t, i in tv.vocabulary_.items()}
        return cls(vocab, np.asarray(tv.idf_, dtype=np.float64)), x.tocsr()

    @property
    def terms(self) -> list[str]:
        out = [""] * len(self.vocab)
        for t, i in self.vocab.items():
            out[i] = t
        return out

    def transform_one(self, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (columns, values) of one analysed text, l2-normalised; columns ascending."""
        counts = Counter(j for j in (self.vocab.get(f) for f in features) if j is not None)
        if not counts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        cols = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
        vals = np.array([(1.0 + math.log(counts[c])) * self.idf[c] for c in cols.tolist()], dtype=np.float64)
        norm = math.sqrt(float(vals @ vals))
        if norm > 0:
            vals /= norm
        return cols, vals

    def transform(self, feature_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for feats in feature_lists:
            c, v = self.transform_one(feats)
            indices.append(c)
            data.append(v)
            indptr.append(indptr[-1] + len(c))
        return sp.csr_matrix(
            (np.concatenate(data) if data else np.empty(0), np.concatenate(indices) if indices else np.empty(0, np.int64), indptr),
            shape=(len(feature_lists), len(self.vocab)),
        )

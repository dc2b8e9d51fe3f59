"""Intent classifier: how likely is a query a *name* (precise) rather than a *need* (fuzzy)?

Model: scikit-learn ``LogisticRegression`` over
- text features: TF-IDF of character 1–3-grams and jieba words (``textvec``), and
- catalog-aware features: the name-match signals of ``matching`` (exact / homophone / near / contained /
  prefix matches on names, aliases and pinyin keys, with generic items — services and content — apart), the
  BM25 top score and top-1/top-2 margin, the query's shape (length, ASCII-only), and its cues (``cues``: a
  command or suffix around a name, question and need words, a wrapped name the catalog does not have).
It is trained by the index build on ``index_data/intent_train.jsonl`` and exported to arrays, so scoring a
query is a sparse dot product: z = w·x + b.

The score is calibrated (Platt, 1999): p = 1 / (1 + exp(-(a·z + c))), with a and c fitted on out-of-fold logits of
the training queries (5-fold ``cross_val_predict``), so that p can be read as a probability and the routing
thresholds mean what they say.

The output is ``p_precise``; turning it into a route is ``routing``'s job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .cues import Cues
from .errors import IndexIntegrityError
from .matching import NAME_FEATURES, NameMatch
from .store import IndexReader, IndexWriter
from .textvec import TextVectorizer

CUE_FEATURES: tuple[str, ...] = ("command", "weak_command", "name_suffix", "question", "need_word", "unknown_name")
DENSE_FEATURES: tuple[str, ...] = (*NAME_FEATURES, "bm25_top_log", "bm25_margin", "length", "ascii_only", *CUE_FEATURES,
                                   "function_cover")


def dense_features(match: NameMatch, bm25_top2: Sequence[float], q: str, cues: Cues | None = None,
                   unknown_name: bool = False, function_cover: float = 0.0) -> np.ndarray:
    """The catalog-aware feature vector (aligned with ``DENSE_FEATURES``) of compact query ``q``.
    ``function_cover``: how closely the query paraphrases one of the platform's functions
    (``QueryAnalyzer.function_cover``)."""
    top1 = bm25_top2[0] if len(bm25_top2) > 0 else 0.0
    top2 = bm25_top2[1] if len(bm25_top2) > 1 else 0.0
    margin = (top1 - top2) / top1 if top1 > 0 else 0.0
    c = cues
    cue = [float(bool(c and c.verb and c.strong)), float(bool(c and c.verb and not c.strong)), float(bool(c and c.suffix)),
           float(bool(c and c.question)), float(bool(c and c.need)), float(unknown_name)]
    return np.array(
        [*match.features, math.log1p(max(top1, 0.0)), margin, min(len(q), 64) / 10.0, float(q.isascii()), *cue,
         function_cover],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class IntentModel:
    vectorizer: TextVectorizer
    text_coef: np.ndarray  # float64, one per vocabulary entry
    dense_coef: np.ndarray  # float64, one per DENSE_FEATURES entry (already divided by the scaler)
    intercept: float
    calib_a: float = 1.0  # Platt scaling of the logit: p = sigmoid(calib_a · z + calib_c)
    calib_c: float = 0.0

    @classmethod
    def empty(cls) -> IntentModel:
        """A model that knows nothing (p_precise 0.5 everywhere): an index built without training queries."""
        return cls(TextVectorizer({}, np.zeros(0)), np.zeros(0), np.zeros(len(DENSE_FEATURES)), 0.0)

    def logit(self, text_features: Sequence[str], dense: np.ndarray) -> float:
        cols, vals = self.vectorizer.transform_one(text_features)
        return float(vals @ self.text_coef[cols]) + float(dense @ self.dense_coef) + self.intercept

    def p_precise(self, text_features: Sequence[str], dense: np.ndarray) -> float:
        z = self.calib_a * self.logit(text_features, dense) + self.calib_c
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def contributions(self, text_features: Sequence[str], dense: np.ndarray) -> list[tuple[str, float]]:
        """Each feature's additive share of the logit, largest magnitude first (for ``/explain``)."""
        cols, vals = self.vectorizer.transform_one(text_features)
        terms = self.vectorizer.terms
        out = [(terms[c], float(v * self.text_coef[c])) for c, v in zip(cols.tolist(), vals, strict=True)]
        out += [(n, float(x * w)) for n, x, w in zip(DENSE_FEATURES, dense, self.dense_coef, strict=True) if x]
        out.append(("(intercept)", self.intercept))
        return sorted(out, key=lambda t: -abs(t[1]))

    def save(self, w: IndexWriter) -> None:
        w.json("intent_vocab.json", self.vectorizer.terms, "intent TF-IDF vocabulary in column order")
        w.array("intent_idf.npy", self.vectorizer.idf, "intent TF-IDF idf per column")
        w.array("intent_text_coef.npy", self.text_coef, "intent logistic weights of text features")
        w.array("intent_dense_coef.npy", self.dense_coef, "intent logistic weights of catalog features")
        w.json("intent.json", {"intercept": self.intercept, "dense_features": list(DENSE_FEATURES),
                               "calibration": {"method": "platt", "a": self.calib_a, "c": self.calib_c}},
               "intent intercept, feature names and the Platt calibration of the logit")

    @classmethod
    def load(cls, r: IndexReader) -> IntentModel:
        meta = r.json("intent.json")
        if list(meta["dense_features"]) != list(DENSE_FEATURES):
            raise IndexIntegrityError("intent features differ from this Zhida version; rebuild", r.name("intent.json"))
        vocab = r.json("intent_vocab.json")
        cal = meta.get("calibration") or {"a": 1.0, "c": 0.0}
        return cls(TextVectorizer({t: i for i, t in enumerate(vocab)}, np.asarray(r.array("intent_idf.npy"))),
                   np.asarray(r.array("intent_text_coef.npy")), np.asarray(r.array("intent_dense_coef.npy")),
                   float(meta["intercept"]), float(cal["a"]), float(cal["c"]))

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        dense: np.ndarray,
        labels: Sequence[int],
        analyzer: Callable[[str], list[str]],
        c: float = 1.0,
        seed: int = 0,
    ) -> IntentModel:
        """Fit on normalised ``texts``, their ``dense`` feature rows, and labels (1 = precise); then calibrate.

        Calibration uses the logits that 5-fold cross-validated copies of the same model give each training query
        (so no query is scored by a model that saw it), as scikit-learn's ``CalibratedClassifierCV(ensemble=False)``
        does, and fits ``sigmoid(a·z + c)`` to the labels by logistic regression (Platt 1999).
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(labels, dtype=np.int64)
        if len(set(y.tolist())) != 2:
            raise ValueError("intent training data needs both precise and fuzzy examples")
        vec, x_text = TextVectorizer.fit(texts, analyzer, min_df=1)
        scaler = StandardScaler().fit(dense)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        x = sp.hstack([x_text, sp.csr_matrix((dense - scaler.mean_) / scale)]).tocsr()
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight="balanced")
        clf.fit(x, y)
        w = clf.coef_[0]
        n_text = x_text.shape[1]
        dense_w = w[n_text:] / scale
        intercept = float(clf.intercept_[0] - (dense_w * scaler.mean_).sum())
        a, cc = 1.0, 0.0
        folds = min(5, int(np.bincount(y).min()))
        if folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            z = cross_val_predict(LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight="balanced"),
                                  x, y, cv=cv, method="decision_function")
            platt = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1), y)
            a, cc = float(platt.coef_[0][0]), float(platt.intercept_[0])
        return cls(vec, np.ascontiguousarray(w[:n_text], dtype=np.float64), dense_w.astype(np.float64), intercept, a, cc)

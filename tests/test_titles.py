"""eval/titles.py: content titles and occasions become judged training needs — bare and phrased, never an evaluation
query or a catalog name, each list rewritten in place of its own rows only."""

import json
from pathlib import Path

import pytest

from eval import titles as T
from eval.__main__ import main
from search.catalog import query_key
from search.errors import ZhidaError
from tests.conftest import ROOT

TAX = ["视频", "影视娱乐", "音乐", "K歌", "电影票务", "教辅", "中小学", "旅游资讯"]


def _source(tmp_path, kinds, **top):
    p = tmp_path / "titles.json"
    p.write_text(json.dumps({**top, "kinds": kinds}, ensure_ascii=False), encoding="utf-8")
    return p


KINDS = {
    "drama": {"categories": {"视频": 2, "影视娱乐": 1}, "phrasings": ["{}", "{}全集"], "titles": ["琅琊榜", "隐秘的角落"]},
    "singer": {"categories": {"音乐": 2, "电影票务": 1},
               "phrasings": ["{}", {"text": "{}演唱会", "categories": {"电影票务": 2, "音乐": 1}}],
               "titles": ["陈奕迅"]},
    "poem": {"categories": {"教辅": 2, "中小学": 1}, "phrasings": ["{}", "{}翻译"], "titles": ["三峡", "登高"],
             "phrased_only": ["三峡"]},
}


def test_each_title_gives_its_bare_form_and_one_phrasing(tmp_path):
    kinds = T.load_kinds(_source(tmp_path, KINDS), TAX)
    rows, left = T.title_needs(kinds, 1, names=set(), held_out=[], trained=set())
    got = {r["query"]: r["categories"] for r in rows}
    assert got["琅琊榜"] == {"视频": 2, "影视娱乐": 1} and got["琅琊榜全集"] == {"视频": 2, "影视娱乐": 1}
    assert got["陈奕迅"] == {"音乐": 2, "电影票务": 1}
    assert got["陈奕迅演唱会"] == {"电影票务": 2, "音乐": 1}  # the phrasing's own judgment
    assert "三峡" not in got and got["三峡翻译"] == {"教辅": 2, "中小学": 1}  # 三峡 alone is the place
    assert len(rows) == 2 + 2 + 2 + 1 + 2 and all(r["source"] == T.ROW_SOURCE for r in rows)
    assert {r["query"]: r["title"] for r in rows}["陈奕迅演唱会"] == "陈奕迅"  # what the row is about, for the folds
    assert not any(left.values())
    again, _ = T.title_needs(kinds, 1, names=set(), held_out=[], trained=set())
    assert again == rows  # seeded


def test_a_kind_may_give_several_distinct_phrasings_per_title_under_its_own_source(tmp_path):
    kinds = {"term": {"categories": {"旅游资讯": 2, "教辅": 1},
                      "phrasings": ["{}", "{}吃什么", "{}是哪天", {"text": "{}去哪玩", "categories": {"旅游资讯": 2}}],
                      "phrasings_per_title": 2, "titles": ["立夏", "芒种", "夏至"], "phrased_only": ["夏至"]}}
    assert T.row_source(_source(tmp_path, KINDS)) == T.ROW_SOURCE  # a file that names no source
    src = _source(tmp_path, kinds, source="occasions")
    assert T.row_source(src) == "occasions"
    (kind,) = T.load_kinds(src, TAX)
    rows, _ = T.title_needs([kind], 3, names=set(), held_out=[], trained=set(), source="occasions")
    by_title: dict[str, list[str]] = {}
    for r in rows:
        assert r["source"] == "occasions"
        by_title.setdefault(r["title"], []).append(r["query"])
    assert by_title["立夏"][0] == "立夏" and by_title["芒种"][0] == "芒种" and "夏至" not in by_title["夏至"]
    assert [len(v) for v in by_title.values()] == [3, 3, 2]  # bare + 2, and 2 for the phrased-only title
    assert all(len(set(v)) == len(v) for v in by_title.values())  # no phrasing twice for one title
    assert {r["query"]: r["categories"] for r in rows}.get("立夏去哪玩", {"旅游资讯": 2}) == {"旅游资讯": 2}


@pytest.mark.parametrize("top, what", [({"source": "has space"}, "source"), ({"source": 3}, "source")])
def test_a_bad_source_name_is_refused(tmp_path, top, what):
    with pytest.raises(ZhidaError, match=what):
        T.row_source(_source(tmp_path, KINDS, **top))


def test_catalog_names_evaluation_queries_and_judged_needs_are_left_alone(tmp_path):
    kinds = T.load_kinds(_source(tmp_path, KINDS), TAX)
    trained = {query_key("登高")}
    rows, left = T.title_needs(kinds, 1, names={query_key("陈奕迅")}, held_out=[query_key("我想看隐秘的角落")],
                               trained=trained)
    assert trained == {query_key("登高")}  # not the rows it wrote
    qs = {r["query"] for r in rows}
    assert left["catalog name"] == ["陈奕迅"] and not any(q.startswith("陈奕迅") for q in qs)
    assert left["in an evaluation query"] == ["隐秘的角落"] and not any(q.startswith("隐秘的角落") for q in qs)
    assert left["already a training need"] == ["登高"] and "登高翻译" in qs


@pytest.mark.parametrize("bad, what", [
    ({"x": {"categories": {"不是类目": 2}, "phrasings": ["{}"], "titles": ["琅琊榜"]}}, "taxonomy"),
    ({"x": {"categories": {"视频": 1}, "phrasings": ["{}"], "titles": ["琅琊榜"]}}, "graded 2"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}全集"], "titles": ["琅琊榜"]}}, "bare title"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}", "全集"], "titles": ["琅琊榜"]}}, "exactly one"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}"], "titles": ["琅"]}}, "two characters"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}"], "titles": ["琅琊榜"], "phrased_only": ["琅琊榜"]}},
     "phrasing besides"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}", "{}全集"], "titles": ["琅琊榜"], "phrased_only": ["三体"]}},
     "phrased_only"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}", "{}全集"], "titles": ["琅琊榜"], "phrased_only": [{"a": 1}]}},
     "phrased_only"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}", "{}全集"], "titles": ["琅琊榜"], "phrasings_per_title": 2}},
     "phrasings_per_title"),
    ({"x": {"categories": {"视频": 2}, "phrasings": ["{}", "{}全集"], "titles": ["琅琊榜"], "phrasings_per_title": True}},
     "phrasings_per_title"),
    ({}, "non-empty"),
])
def test_a_bad_source_is_refused_with_what_is_wrong(tmp_path, bad, what):
    with pytest.raises(ZhidaError, match=what):
        T.load_kinds(_source(tmp_path, bad), TAX)


def test_unreadable_source_is_refused(tmp_path):
    p = tmp_path / "titles.json"
    p.write_bytes(b"\xff\xfe{")
    with pytest.raises(ZhidaError, match="cannot read"):
        T.load_kinds(p, TAX)


def test_rewrite_replaces_only_the_title_rows_and_keeps_the_others_first(tmp_path):
    path = tmp_path / "category_train.jsonl"
    own = [{"query": "睡不着", "categories": {"音乐": 1, "教辅": 2}}, {"query": "想看剧", "categories": {"视频": 2}}]
    old = {"query": "旧标题", "categories": {"视频": 2}, "source": T.ROW_SOURCE}
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (own[0], old, own[1])), encoding="utf-8")
    new = [{"query": "琅琊榜", "categories": {"视频": 2}, "source": T.ROW_SOURCE}]
    assert T.write_rows(path, new) == (2, 1)
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert rows == own + new
    assert T.title_rows(path) == {query_key("琅琊榜"): "琅琊榜"}
    assert T.title_rows(tmp_path / "missing.jsonl") == {}


def test_each_list_rewrites_only_its_own_rows(tmp_path):
    path = tmp_path / "category_train.jsonl"
    hand = {"query": "睡不着", "categories": {"音乐": 2}}
    title = {"query": "琅琊榜", "categories": {"视频": 2}, "source": T.ROW_SOURCE, "title": "琅琊榜"}
    day = {"query": "立夏吃什么", "categories": {"教辅": 2}, "source": "occasions", "title": "立夏"}
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (hand, title, day)), encoding="utf-8")
    assert T.hand_judged(path) == {query_key("睡不着")}
    assert T.hand_judged(path, "occasions") == {query_key("睡不着"), query_key("琅琊榜")}
    assert T.title_rows(path) == {query_key("琅琊榜"): "琅琊榜", query_key("立夏吃什么"): "立夏"}  # both lists
    new = {"query": "芒种", "categories": {"教辅": 2}, "source": "occasions", "title": "芒种"}
    assert T.write_rows(path, [new], "occasions") == (2, 1)
    assert [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] == [hand, title, new]


@pytest.mark.parametrize("source_file", T.SOURCES, ids=lambda p: p.stem)
def test_the_shipped_training_file_holds_exactly_the_source_s_titles(monkeypatch, source_file):
    """`python -m eval titles --source F` with its defaults (paths relative to the checkout) would write the rows the
    repository ships for each list, and none of them is an evaluation query."""
    monkeypatch.chdir(ROOT)
    from search.catalog import load_catalog, load_taxonomy

    kinds = T.load_kinds(source_file, load_taxonomy("index_data/taxonomy.txt"))
    source = T.row_source(source_file)
    names = T.entity_names(load_catalog("index_data/catalog.jsonl", "index_data/taxonomy.txt"))
    held = T.evaluation_keys()
    text = Path("index_data/category_train.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(x) for x in text.splitlines() if x.strip()]
    trained = T.hand_judged("index_data/category_train.jsonl", source)
    rows, _ = T.title_needs(kinds, T.SEED, names, held, trained, source)
    shipped = [o for o in lines if o.get("source") == source]
    assert len(held) > 1000  # the evaluation sets were found
    assert shipped == rows and len(rows) > 100
    assert not {query_key(r["query"]) for r in rows} & set(held)


def test_a_broken_training_file_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "category_train.jsonl"
    path.write_text('{"query": "睡不着", "categories": {"音乐": 2}}\n{"query": 睡不着\n', encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(ZhidaError, match="line 2"):
        T.write_rows(path, [])
    assert path.read_bytes() == before  # nothing written


def test_cli_reports_a_bad_source(tmp_path, capsys):
    bad = _source(tmp_path, {})
    assert main(["titles", "--source", str(bad), "--category-train", str(tmp_path / "ct.jsonl")]) == 2
    assert "kinds" in capsys.readouterr().err

"""search.dense.DistilledEncoder: a linear student of the item encoder, learned at build time for queries."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import settings_for

from search.dense import DistilledEncoder, SVDEncoder
from search.errors import IndexIntegrityError
from search.index import distill_texts, item_dense_text
from search.normalize import normalize
from search.searcher import Searcher
from search.textvec import make_analyzer
from search.tokenize import Tokenizer

ANALYZER = make_analyzer(Tokenizer().words)


@pytest.fixture(scope="module")
def teacher_and_texts(items50):
    texts = [normalize(item_dense_text(it)) for it in items50]
    return SVDEncoder.fit(texts, ANALYZER, dim=24), texts


def test_the_student_lands_near_the_teacher_on_what_it_learned(teacher_and_texts, items50):
    teacher, texts = teacher_and_texts
    short = distill_texts(items50, ["睡不着", "附近的咖啡"], range(len(items50)), 2000)
    student = DistilledEncoder.fit(teacher, short, ANALYZER, (texts, teacher.encode(texts)), alpha=0.01)
    got, want = student.encode(short), teacher.encode(short)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    cos = np.sum(got * want, axis=1)
    assert float(np.median(cos)) > 0.95
    # a query the student never saw still lands in the teacher's space, nearest items first as the teacher ranks them
    q = normalize("想喝咖啡")
    s, t = student.encode([q])[0], teacher.encode([q])[0]
    items = teacher.encode(texts)
    assert float(s @ t) > 0.5
    assert set(np.argsort(-(items @ s))[:5]) & set(np.argsort(-(items @ t))[:5])


def test_items_keep_the_teachers_vectors(teacher_and_texts):
    teacher, texts = teacher_and_texts
    student = DistilledEncoder.fit(teacher, ["咖啡", "外卖", "打车"], ANALYZER, (texts, teacher.encode(texts)))
    np.testing.assert_array_equal(student.encode_items(texts[:5]), teacher.encode(texts[:5]))
    np.testing.assert_array_equal(student.fit_catalog(texts[:5]), teacher.encode(texts[:5]))
    assert student.meta()["teacher"]["name"] == "svd" and student.dim == teacher.dim


def test_fit_needs_two_texts(teacher_and_texts):
    teacher, _ = teacher_and_texts
    with pytest.raises(ValueError, match="two texts"):
        DistilledEncoder.fit(teacher, ["咖啡", ""], ANALYZER)


def test_distill_texts_are_normalised_unique_and_bounded(items50):
    out = distill_texts(items50, ["睡不着", " 睡不着 ", "ＫＦＣ"], range(len(items50)), 60)
    assert len(out) == 60 and len(set(out)) == 60
    assert out[:2] == ["睡不着", normalize("ＫＦＣ")]  # the training queries first, in order
    assert distill_texts(items50, [], range(10), 500) == distill_texts(items50, [], range(10), 500)  # fixed order


@pytest.fixture(scope="module")
def distilled_index(tmp_path_factory, items50, train50, teacher_and_texts):
    teacher, _ = teacher_and_texts
    s = Searcher.build(items50, train50, settings_for(encoder="distilled"), encoder=teacher)
    path = tmp_path_factory.mktemp("distilled") / "index"
    s.save(path)
    return s, path


def test_a_build_distils_the_query_encoder_and_a_load_restores_it(distilled_index, tmp_path):
    s, path = distilled_index
    assert isinstance(s.encoder, DistilledEncoder)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["encoder"]["name"] == "distilled" and manifest["encoder"]["teacher"]["name"] == "svd"
    loaded = Searcher.load(path, settings_for(tmp_path, encoder="distilled"))
    assert isinstance(loaded.encoder, DistilledEncoder) and isinstance(loaded.encoder.teacher, SVDEncoder)
    qs = ["周末带娃去哪", "睡不着", "交电费"]
    np.testing.assert_allclose(loaded.encoder.encode(qs), s.encoder.encode(qs), atol=1e-6)
    assert [h.id for h in loaded.search("睡不着").results] == [h.id for h in s.search("睡不着").results]


def test_a_load_refuses_an_unknown_teacher(distilled_index, tmp_path):
    _, path = distilled_index
    bad = tmp_path / "index"
    shutil.copytree(path, bad)
    m = json.loads((bad / "manifest.json").read_text(encoding="utf-8"))
    m["encoder"]["teacher"]["name"] = "distilled"
    (bad / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(IndexIntegrityError, match="teacher"):
        Searcher.load(bad, settings_for(tmp_path, encoder="distilled"))

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from search.intent import DENSE_FEATURES
from search.textvec import TextVectorizer, char_ngrams


def test_textvec_matches_sklearn_transform():
    texts = ["肯德基", "kfc优惠券", "周末带娃去哪", "睡不着怎么办", "肯德基宅急送"]
    vec, x = TextVectorizer.fit(texts, char_ngrams)
    ref = TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True).fit(texts)
    for t in ["肯德基会员", "带娃", "zzz", "睡不着睡不着"]:
        cols, vals = vec.transform_one(char_ngrams(t))
        dense = np.zeros(len(vec.vocab))
        dense[cols] = vals
        expected = ref.transform([t]).toarray()[0]
        # same vocabulary (column order may differ): compare term by term
        for term, j in ref.vocabulary_.items():
            assert dense[vec.vocab[term]] == pytest.approx(expected[j], abs=1e-12)


def test_classifier_separates_names_from_needs(searcher50):
    s = searcher50
    for q in ["肯德基", "kfc", "星巴克", "12306"]:
        assert s.analyze(q).p_precise > 0.5, q
    for q in ["睡不着", "头疼怎么办", "周末带娃去哪"]:
        assert s.analyze(q).p_precise < 0.5, q


def test_compiled_model_equals_logit_of_contributions(searcher50):
    a = searcher50.analyze("星巴克会员")
    contrib = searcher50.intent.contributions(a.text_features, a.features)
    z = sum(v for _, v in contrib)
    m = searcher50.intent
    assert 1 / (1 + np.exp(-(m.calib_a * z + m.calib_c))) == pytest.approx(a.p_precise, abs=1e-9)
    assert len(a.features) == len(DENSE_FEATURES)


def test_calibration_makes_probabilities_honest():
    """Imbalanced, noisy labels and class weights push raw scores off; Platt scaling on out-of-fold logits brings the
    expected calibration error on held-out data down (and below 0.05)."""
    from eval.metrics import calibration
    from search.intent import IntentModel
    from search.textvec import make_analyzer

    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=(n, len(DENSE_FEATURES)))
    p_true = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 1.0 * x[:, 1] - 1.2)))  # about one in four positive
    y = (rng.random(n) < p_true).astype(int)
    texts = ["t"] * n
    model = IntentModel.train(texts[:3000], x[:3000], y[:3000].tolist(), make_analyzer(lambda s: [s]))
    held = range(3000, n)
    p_cal = [model.p_precise(["c:t"], x[i]) for i in held]
    raw = IntentModel(model.vectorizer, model.text_coef, model.dense_coef, model.intercept)  # no calibration
    p_raw = [raw.p_precise(["c:t"], x[i]) for i in held]
    ece_cal = calibration(p_cal, y[3000:].astype(bool))["ece"]
    ece_raw = calibration(p_raw, y[3000:].astype(bool))["ece"]
    assert ece_cal < 0.05 and ece_cal < ece_raw / 2, (ece_cal, ece_raw)


def test_function_cover_sees_a_reworded_function(items50, train50):
    from conftest import settings_for

    from search.searcher import Searcher
    from search.types import Item

    cat = items50[0].category
    extra = [Item("fn-power", "交电费", "function", cat, "绑定户号在线缴纳电费", aliases=("缴电费",)),
             Item("fn-fund", "公积金查询", "function", cat, "查询住房公积金余额和缴存明细"),
             Item("sv-bill", "电费账单", "service", cat, "看每月用电量和账单")]
    s = Searcher.build([*items50, *extra], train50, settings_for())
    col = DENSE_FEATURES.index("function_cover")

    def cover(q: str) -> float:
        return float(s.analyze(q).features[col])

    # shared characters / name characters × shared / query characters, the best name or alias
    assert cover("查我的公积金") == pytest.approx((4 / 5) * (4 / 6))  # 公积金查 of 公积金查询, 4 of the query's 6
    assert cover("缴一下电费") == pytest.approx(1.0 * (3 / 5))  # the alias 缴电费 covers more than 交电费
    assert cover("交电费") == pytest.approx(1.0)
    assert cover("账单") == 0.0  # only a service matches: no function to paraphrase

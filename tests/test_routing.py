import pytest

from search.config import Thresholds
from search.errors import ConfigError
from search.routing import route


@pytest.mark.parametrize(
    ("p", "label"),
    [(0.0, "fuzzy"), (0.3, "fuzzy"), (0.30001, "mixed"), (0.5, "mixed"), (0.69999, "mixed"), (0.7, "precise"), (1.0, "precise")],
)
def test_route_at_thresholds(p, label):
    assert route(p, Thresholds(0.7, 0.3)) == label


def test_equal_thresholds_have_no_mixed_band():
    t = Thresholds(0.5, 0.5)
    assert route(0.5, t) == "precise"
    assert route(0.49, t) == "fuzzy"


@pytest.mark.parametrize(("tp", "tf"), [(0.2, 0.3), (1.2, 0.1), (0.5, -0.1), (float("nan"), 0.1)])
def test_invalid_thresholds_rejected(tp, tf):
    with pytest.raises(ConfigError):
        Thresholds(tp, tf)

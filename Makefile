# Zhida — `make help` lists the targets. Two commands do all set-up on a fresh machine:
#   make run    build the default index (if missing) and serve it on 127.0.0.1:8000
#   make test   install everything and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INDEX := index_data/index
SHARED ?= ../shared/data
SIZES ?= 10k,100k
# glibc's malloc for index builds: keep freed buffers for reuse instead of returning each large one to the kernel.
# The category model's solver allocates and frees arrays of its 4.8M coefficients at every step; returned and
# faulted back in, they cost the default build a third of its time in the kernel (the same index, 465 s → 350 s)
BUILD_ENV := GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,milvus]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with pinned dependencies (and dev tools)

# rebuilt when the catalog, the training queries or the engine's code is newer than the index
$(INDEX)/manifest.json: index_data/catalog.jsonl index_data/intent_train.jsonl index_data/category_train.jsonl index_data/taxonomy.txt $(wildcard search/*.py) | $(STAMP)
	$(BUILD_ENV) $(PY) -m search build --catalog index_data/catalog.jsonl --out $(INDEX)

index: $(INDEX)/manifest.json ## build the default index from index_data/ if missing or older than catalog/code

rebuild: $(STAMP) ## rebuild the default index (atomic: the old one serves until the new one is in place)
	$(BUILD_ENV) $(PY) -m search build --catalog index_data/catalog.jsonl --out $(INDEX)

run: index ## build the default index if missing or stale, then serve it on 127.0.0.1:8000 (WORKERS=2 for two processes)
	@echo "example: curl -s 'http://127.0.0.1:8000/search?q=%E8%82%AF%E5%BE%B7%E5%9F%BA&k=5'   (q=肯德基)"
	$(PY) -m search serve --index $(INDEX) $(if $(WORKERS),--workers $(WORKERS))

query: index ## answer one query from the default index: make query Q=睡不着
	$(PY) -m search query "$(Q)" --index $(INDEX)

validate: $(STAMP) ## validate the catalog and the query sets (coverage check when ../shared exists)
	$(PY) -m search validate index_data/catalog.jsonl --train index_data/intent_train.jsonl --category-train index_data/category_train.jsonl --dev eval/queries/dev.jsonl eval/queries/hard_dev.jsonl eval/queries/titles.jsonl eval/queries/occasions.jsonl eval/queries/inside_words.jsonl eval/queries/places.jsonl eval/queries/pinyin.jsonl eval/queries/typos.jsonl eval/queries/heads.jsonl --shared $(SHARED) --min-per-label 10

# The console's browser tests drive Debian's Chromium (Playwright's own browser download is not used); a CJK font
# makes its Chinese legible. Installed when missing and possible (root with apt-get); otherwise those tests skip.
browser-deps: ## install Chromium and a CJK font for the console's browser tests, when missing
	@if command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and fonts-noto-cjk (apt-get) for the console's browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-noto-cjk fontconfig >/dev/null) || echo "warning: could not install chromium: the browser tests will skip"; \
	else echo "note: chromium or a CJK font is missing and cannot be installed here (needs root and apt-get): the browser tests will skip"; fi

# the reverse-proxy tests start deploy/nginx.conf: nginx from Debian's packages when it is missing (as root)
nginx: ## install nginx (Debian) for the reverse-proxy tests, when missing
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || [ "$$(id -u)" != 0 ] || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null))

test: $(STAMP) browser-deps nginx ## run the test suite (fast; slow benchmark-style tests excluded)
	$(PY) -m pytest -q

test-all: $(STAMP) browser-deps nginx ## run every test, the slow ones included (100k-request load test)
	$(PY) -m pytest -q -s -m ''

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check search eval tests bench

eval: index ## offline relevance evaluation on the dev and hard dev sets, the head words, and the held-out content titles and poems, occasions, names inside other words, places, pinyin needs and needs with homophone slips (reports in eval/out/)
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/dev.jsonl eval/queries/hard_dev.jsonl eval/queries/heads.jsonl --out eval/out
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/titles.jsonl --relevance categories --out eval/out/titles
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/occasions.jsonl --relevance categories --out eval/out/occasions
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/inside_words.jsonl --relevance categories --out eval/out/inside_words
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/places.jsonl --relevance categories --out eval/out/places
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/pinyin.jsonl --relevance categories --out eval/out/pinyin
	$(PY) -m eval run --index $(INDEX) --queries eval/queries/typos.jsonl --relevance categories --out eval/out/typos

eval-folds: $(STAMP) ## the page on held-out training needs: two contiguous folds, an index built for each (about 11 min on 2 cores)
	$(BUILD_ENV) $(PY) -m eval folds --folds 2 --out eval/out/folds

eval-external: index ## external benchmarks from ../shared/data (skips cleanly when absent)
	$(BUILD_ENV) $(PY) -m eval external --index $(INDEX) --shared $(SHARED)

loop: index ## the learning loop on SIMULATED users: simulate, mine, retrain, evaluate on held-out halves (eval/out/loop)
	$(PY) -m eval loop --index $(INDEX) --out eval/out/loop

tune: index ## sweep the routing thresholds; report in eval/out/tune/ (add ARGS="--write" to save the choice)
	$(PY) -m eval tune --index $(INDEX) --queries eval/queries/dev.jsonl --min-precise-precision 0.98 --max-mixed 0.15 $(ARGS)

bench-milvus: index ## embedded vs Milvus Lite backend on the default index: latency, throughput, upserts
	$(PY) -m bench.milvus

bench: index ## benchmarks and the target table (default catalog, 10k, 100k; SIZES=10k,100k,1m adds 1M; ARGS=--quick)
	$(PY) -m bench.run --sizes $(SIZES) $(ARGS)

bench-quick: index ## smoke run of the benchmark on the default catalog (bench/out/results-quick.json): the target table, unrun targets marked
	$(PY) -m bench.run --quick --sizes default --out bench/out/results-quick.json

clean: ## remove the virtual environment, built indexes and caches
	rm -rf $(VENV) $(INDEX) index_data/.index-versions .pytest_cache .ruff_cache .hypothesis eval/out

.PHONY: help install index rebuild run query validate browser-deps nginx test test-all lint eval eval-folds eval-external loop tune bench bench-quick bench-milvus clean

"""The Makefile: its targets document themselves, and the tests build the default index as `make index` does."""

from __future__ import annotations

import re

from conftest import BUILD_TUNABLES, ROOT

MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def test_every_phony_target_has_a_help_line():
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE, re.M)
    assert phony is not None
    documented = set(re.findall(r"^([a-zA-Z_-]+):.*?## ", MAKEFILE, re.M))
    missing = [t for t in phony.group(1).split() if t not in documented]
    assert missing == []


def test_index_builds_share_the_tests_malloc_tunables():
    env = re.search(r"^BUILD_ENV := GLIBC_TUNABLES=(\S+)$", MAKEFILE, re.M)
    assert env is not None and env.group(1) == BUILD_TUNABLES
    builds = [line for line in MAKEFILE.splitlines() if "-m search build" in line]
    assert builds and all(line.lstrip().startswith("$(BUILD_ENV) ") for line in builds)

"""Zhida benchmark suite: synthetic scale data (``bench.scale``) and the runner (``bench.run``).

Not part of ``make test``; timings are printed, never asserted. See ``bench/README.md``.
"""

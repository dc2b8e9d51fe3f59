"""``python -m eval loop``: the learning loop end to end, on SIMULATED users.

split → serve → simulate → mine → retrain → evaluate, each step the command a person would type (printed as it
runs), everything written under ``--out``:

1. **split** the dev and hard dev sets in two halves by a stable hash of each query (``split/traffic.*.jsonl``,
   ``split/heldout.*.jsonl``). The simulator replays the traffic half; the held-out half is what the retrained
   model is measured on. Without the split the loop would train on the very queries it then evaluates: the build
   refuses mined labels of evaluation queries (``--holdout``), and here the held-out half is that evaluation set.
2. **serve** the index with a fresh traffic store and exploration on (``--explore-share``: that share of searches
   is answered with the served page team-draft interleaved with BM25's or the dense recommender's ranking),
   **simulate** users on it (``python -m eval simulate``), stop the server (it writes what its query log still holds).
3. **mine** the log (``python -m eval mine``) and compare the mined labels with the simulator's hidden truth.
4. **retrain**: ``python -m search build --extra-train mined/intent_labels.jsonl --holdout split/heldout.*``.
5. **evaluate** the index before and after on the held-out halves (``python -m eval run``; ``compare``), and the
   systems by the mined judgments (``--qrels mined/qrels.txt --judged-only``) next to the same queries' hand
   judgments.

``summary.json`` gathers the figures. They describe simulated users, not people.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from search.catalog import query_key
from search.errors import ZhidaError

SETS = ("eval/queries/dev.jsonl", "eval/queries/hard_dev.jsonl")


def split(paths: tuple[str, ...], out: Path, share: float = 0.5) -> dict[str, list[Path]]:
    """Write each query set's traffic and held-out halves (by sha256 of the query key: stable, no seed)."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"traffic": [], "heldout": []}
    for p in paths:
        rows = {"traffic": [], "heldout": []}
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                key = query_key(json.loads(line)["query"])
                h = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
                rows["traffic" if h < share else "heldout"].append(line)
        for part, lines in rows.items():
            f = out / f"{part}.{Path(p).name}"
            f.write_text("\n".join(lines) + "\n", encoding="utf-8")
            files[part].append(f)
    return files


def _hand_judged(traffic: list[Path], mined: Path, out: Path) -> Path:
    """The traffic-half queries that have mined judgments, with their hand judgments and the mined query ids: the
    same queries judged both ways."""
    from search.normalize import normalize

    qid = {json.loads(line)["query"]: json.loads(line)["qid"] for line in mined.read_text(encoding="utf-8").splitlines()
           if line.strip()}
    rows = []
    for f in traffic:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                key = normalize(row["query"])
                if key in qid:
                    rows.append(json.dumps({**row, "qid": qid.pop(key)}, ensure_ascii=False))
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stdout.write("".join(line + "\n" for line in r.stderr.splitlines() if "Warning" not in line and line.strip()))
    if r.returncode != 0:
        raise ZhidaError(f"step failed (exit {r.returncode}): {' '.join(cmd)}")
    return r.stdout


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(index: str, db: Path, workers: int, explore: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _port()
    env = {**os.environ, "ZHIDA_TRAFFIC_DB": str(db), "ZHIDA_TRAFFIC_EVENT_RATE": "100000", "ZHIDA_TRAFFIC_LOG": "1",
           "ZHIDA_TRAFFIC_USER_SECRET": os.urandom(16).hex(),  # user keys for this run only
           "ZHIDA_TRAFFIC_EXPLORE_SHARE": str(explore),
           # the simulator posts a search's clicks right after its answer, and an event waits for its search's record:
           # a short writer interval keeps 20,000 simulated searches from taking most of an hour
           "ZHIDA_TRAFFIC_FLUSH_INTERVAL_S": "0.01"}
    cmd = [sys.executable, "-m", "search", "serve", "--index", index, "--port", str(port), "--workers", str(workers)]
    print(f"$ ZHIDA_TRAFFIC_DB={db} ZHIDA_TRAFFIC_EXPLORE_SHARE={explore} python " + " ".join(cmd[1:]) + " &", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise ZhidaError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise ZhidaError("server not ready after 300 s")


def _report(path: Path) -> dict[str, Any]:
    return json.loads((path / "report.json").read_text(encoding="utf-8"))


def _headline(r: dict[str, Any]) -> dict[str, float]:
    s = r["systems"]["router"]
    return {"routing_accuracy": r["routing"]["accuracy"], "routing_accuracy_rule": r["routing"]["accuracy_rule"],
            "success@1": s["hit_rate@1"], "mrr@10": s["mrr@10"], "fuzzy_ndcg@10": s["ndcg@10"]}


def cmd_loop(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    files = split(SETS, out / "split", args.share)
    db = out / "traffic.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    proc, base = _serve(args.index, db, args.workers, args.explore_share)
    try:
        _run([py, "-m", "eval", "simulate", "--url", base, "--queries", *map(str, files["traffic"]), "--searches",
              str(args.searches), "--seed", str(args.seed), "--background-share", "0", "--out", str(out / "simulated")])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    _run([py, "-m", "eval", "mine", "--log", str(db), "--out", str(out / "mined"), "--note",
          "SIMULATED users (python -m eval simulate, eval/simulate.py): these figures describe the user model, not people"])
    agree = _run([py, "-m", "eval", "agreement", "--truth", str(out / "simulated/truth.jsonl"),
                  "--stats", str(out / "mined/query_stats.jsonl")])
    retrained = out / "index-retrained"
    _run([py, "-m", "search", "build", "--out", str(retrained), "--quiet", "--extra-train",
          str(out / "mined/intent_labels.jsonl"), "--holdout", *map(str, files["heldout"])])
    before, after = out / "eval-before", out / "eval-after"
    _run([py, "-m", "eval", "run", "--index", args.index, "--queries", *map(str, files["heldout"]), "--out", str(before)])
    _run([py, "-m", "eval", "run", "--index", str(retrained), "--queries", *map(str, files["heldout"]), "--out", str(after)])
    judged, hand = out / "eval-mined-judgments", out / "eval-hand-judgments"
    _run([py, "-m", "eval", "run", "--index", args.index, "--queries", str(out / "mined/judged_queries.jsonl"),
          "--qrels", str(out / "mined/qrels.txt"), "--judged-only", "--out", str(judged)])
    same = _hand_judged(files["traffic"], out / "mined/judged_queries.jsonl", out / "hand_judged_queries.jsonl")
    _run([py, "-m", "eval", "run", "--index", args.index, "--queries", str(same), "--out", str(hand)])
    summary: dict[str, Any] = {"simulated": True, "note": "figures of simulated users (eval/simulate.py), not people",
                               "searches": args.searches, "seed": args.seed, "explore_share": args.explore_share,
                               "agreement": agree.strip().splitlines()[0],
                               "mined": json.loads((out / "mined/summary.json").read_text(encoding="utf-8")),
                               "retrain": json.loads((retrained / "manifest.json").read_text(encoding="utf-8"))
                               .get("extra_train", {}), "heldout": {}}
    for f in files["heldout"]:
        name = f.stem
        summary["heldout"][name] = {"before": _headline(_report(before / name)), "after": _headline(_report(after / name))}
        _run([py, "-m", "eval", "compare", str(before / name / "report.json"), str(after / name / "report.json")])
    for name, path in (("systems_by_mined_judgments", judged), ("systems_by_hand_judgments", hand)):
        summary[name] = {k: {m: v[m] for m in ("hit_rate@1", "mrr@10", "ndcg@10")}
                         for k, v in _report(path)["systems"].items()}
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(summary["heldout"], indent=1))
    print(f"summary: {out / 'summary.json'} (SIMULATED users)")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="index_data/index")
    p.add_argument("--out", default="eval/out/loop")
    p.add_argument("--searches", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--share", type=float, default=0.5, help="share of each dev set replayed as traffic")
    p.add_argument("--workers", type=int, default=2, help="server processes during the simulation")
    p.add_argument("--explore-share", type=float, default=0.3,
                   help="share of simulated searches answered with an exploration page (search/interleave.py), so the "
                   "mined judgments also cover what BM25 and the dense recommender show")

import json
import subprocess
import sys

from conftest import CATALOG50, CATEGORY50, TAXONOMY, TRAIN50, write_jsonl

from search.cli import main


def test_build_then_query_json_and_batch(tmp_path, capsys):
    out = tmp_path / "index"
    rc = main(["build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY), "--train", str(TRAIN50),
               "--category-train", str(CATEGORY50), "--out", str(out), "--encoder", "svd", "--quiet"])
    assert rc == 0 and (out / "manifest.json").exists()
    cat = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["category_train"]
    assert cat["path"] == str(CATEGORY50) and cat["rows"] == len(CATEGORY50.read_text(encoding="utf-8").splitlines())
    capsys.readouterr()
    assert main(["query", "肯德基", "--index", str(out), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["results"][0]["name"] == "肯德基"
    assert main(["query", "睡不着", "--index", str(out)]) == 0
    assert "fuzzy" in capsys.readouterr().out
    batch = tmp_path / "q.txt"
    batch.write_text("肯德基\n\n睡不着\n" + json.dumps({"query": "kfc"}) + "\n", encoding="utf-8")
    assert main(["query", "--batch", str(batch), "--index", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["query"] == "kfc"
    # the training needs' judged categories are stored with the index and shown by /explain: 睡不着 is judged 音乐
    # (grade 2, counting 1) and 养生保健 (grade 1, counting 0.5); spaces and punctuation aside
    from search.config import Settings
    from search.searcher import Searcher

    s = Searcher.load(out, Settings(encoder="svd", traffic_log=False, thresholds_path=str(tmp_path / "t.json")))
    known = s.explain("睡 不 着!")["known_need"]
    assert [k["category"] for k in known] == ["音乐", "养生保健"]
    assert abs(known[0]["share"] - 2 / 3) < 1e-4 and abs(known[1]["share"] - 1 / 3) < 1e-4
    assert s.explain("星巴克会员")["known_need"] is None


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x"}])
    cmds = [
        ["query", "kfc", "--index", str(tmp_path / "missing")],
        ["build", "--catalog", str(bad), "--taxonomy", str(TAXONOMY), "--train", str(TRAIN50), "--out", str(tmp_path / "i")],
        ["build", "--catalog", str(tmp_path / "nope.jsonl"), "--taxonomy", str(TAXONOMY), "--out", str(tmp_path / "i")],
        ["build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY), "--train", str(TRAIN50),
         "--category-train", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "i")],
    ]
    for cmd in cmds:
        p = subprocess.run([sys.executable, "-m", "search", *cmd], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (cmd, p.stderr)
        assert p.stderr.startswith("error:") and "Traceback" not in p.stderr
    assert not (tmp_path / "i").exists()


def test_config_prints_each_setting_and_its_source(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT

    cfg = tmp_path / "zhida.toml"
    cfg.write_text('max_k = 40\nadmin_token = "s3cret"\n', encoding="utf-8")
    env = {**os.environ, "ZHIDA_CONFIG": str(cfg), "ZHIDA_WORKERS": "3"}
    p = subprocess.run([sys.executable, "-m", "search", "config", "--json"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert rows["max_k"] == {"name": "max_k", "value": 40, "source": f"file {cfg}"}
    assert rows["workers"]["value"] == 3 and rows["workers"]["source"] == "env ZHIDA_WORKERS"
    assert rows["default_k"]["source"] == "default"
    assert rows["admin_token"]["value"] == "***" and "s3cret" not in p.stdout
    text = subprocess.run([sys.executable, "-m", "search", "config"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60).stdout
    assert "env ZHIDA_WORKERS" in text and "max_k" in text

"""Screenshots of the analyst console for the README, taken the way the browser tests use it.

    python docs/console_screenshots.py [--index index_data/index] [--table eval/out/tune/table.json]

Needs the default index (``make index``), the tuner's table (``make tune``), Playwright (dev extra) and Debian's
Chromium (``make browser-deps``). Serves the index on a free loopback port with a throw-away token, history and label
files (nothing under index_data/ is written), then saves docs/console_try.png and docs/console_apply.png.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from search.api import create_app  # noqa: E402
from search.config import Settings  # noqa: E402
from search.service import open_searcher  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> int:
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=str(ROOT / "index_data/index"))
    ap.add_argument("--table", default=str(ROOT / "eval/out/tune/table.json"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zhida-shots-"))
    token = secrets.token_hex(8)
    settings = Settings.load().replace(admin_token=token, tuning_table_path=args.table,
                                       thresholds_history_path=str(tmp / "history.jsonl"),
                                       labels_review_path=str(tmp / "labels.jsonl"), traffic_dir=str(tmp / "mined"),
                                       thresholds_path=str(tmp / "none.json"))
    app = create_app(settings, open_searcher(args.index, settings))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    out = Path(args.out)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=ARGS)
            page = b.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)
            page.goto(f"http://127.0.0.1:{port}/console")
            page.get_by_label("Admin token").fill(token)
            page.get_by_role("button", name="Use token").click()
            expect(page.locator("#served")).to_contain_text("Serving")
            page.get_by_label("Query", exact=True).fill("睡不着")
            page.get_by_role("button", name="Try", exact=True).click()
            expect(page.locator("#answer-served .group h4").first).to_be_visible()
            # the tuner's recommendation (make tune): t_precise 0.80, t_fuzzy 0.10
            tp, tf = page.get_by_role("slider", name="t_precise"), page.get_by_role("slider", name="t_fuzzy")
            tp.focus()
            for _ in range(10):
                tp.press("ArrowRight")
            tf.focus()
            for _ in range(20):
                tf.press("ArrowLeft")
            expect(page.locator("#t-fuzzy-out")).to_have_text("0.10")
            expect(page.locator("#changes li").first).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "console_try.png"))
            page.get_by_label("Query", exact=True).fill("肯德基")
            page.get_by_role("button", name="Try", exact=True).click()
            expect(page.locator("#answer-served .hit")).to_be_visible()
            page.get_by_role("button", name="Apply…").click()
            page.get_by_label("Note (optional, kept in the history)").fill("tuner's choice: min precise precision 0.98, mixed ≤ 0.15")
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / "console_apply.png"))
            b.close()
    finally:
        server.should_exit = True
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out / 'console_try.png'} and {out / 'console_apply.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The analyst console used as a person would: Playwright drives Debian's Chromium (headless) against a server this
test starts on loopback, with the 50-item index, the tuner's table for it and a small mined-traffic folder.

``make test`` installs Chromium and a CJK font when they are missing (``make browser-deps``); where Chromium cannot be
had these tests skip, saying why.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import TAXONOMY, settings_for

from search.api import create_app

TOKEN = "console-s3cret"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000  # per expectation; the whole module runs in well under a minute


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests skipped: the playwright package is not installed (pip install -e '.[dev]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("browser tests skipped: Debian's chromium is not on PATH and could not be installed "
                    "(make browser-deps: apt-get install chromium fonts-noto-cjk, as root)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS, timeout=30_000)
        yield b
        b.close()


def write_traffic(folder: Path) -> Path:
    """A mined-traffic folder in the contract ``search.trafficview`` documents."""
    folder.mkdir(parents=True, exist_ok=True)
    stats = [
        {"query": "肯德基", "volume": 120, "ctr": 0.82, "no_hit_rate": 0.0, "router": "precise", "behaviour": "precise"},
        {"query": "睡不着", "volume": 64, "ctr": 0.41, "no_hit_rate": 0.0, "router": "fuzzy", "behaviour": "fuzzy"},
        {"query": "蓝鲸记账app", "volume": 30, "ctr": 0.0, "no_hit_rate": 0.9, "router": "precise", "behaviour": None},
        {"query": "附近吃的", "volume": 25, "ctr": 0.08, "no_hit_rate": 0.0, "router": "fuzzy", "behaviour": None},
        {"query": "买菜", "volume": 22, "ctr": 0.5, "no_hit_rate": 0.0, "router": "precise", "behaviour": "fuzzy"},
    ]
    (folder / "query_stats.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in stats), encoding="utf-8")
    dis = [{"query": "买菜", "behaviour": "fuzzy", "router": "precise", "volume": 22}]
    (folder / "disagreements.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dis), encoding="utf-8")
    return folder


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port in a thread, stopped by ``close``."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory, searcher50, tuning_table):
    tmp = tmp_path_factory.mktemp("console-live")
    settings = settings_for(tmp, admin_token=TOKEN, taxonomy_path=str(TAXONOMY), tuning_table_path=str(tuning_table),
                            traffic_dir=str(write_traffic(tmp / "mined")))
    original = searcher50.thresholds
    srv = LiveServer(create_app(settings, searcher50))
    yield srv, settings
    srv.close()
    searcher50.set_thresholds(original)  # the session's shared searcher leaves as it came


@pytest.fixture()
def page(browser, live):
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def served(live) -> dict:
    srv, _ = live
    return httpx.get(srv.url + "/admin/thresholds", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()


def open_console(page, live, token: str = TOKEN) -> None:
    srv, _ = live
    page.goto(srv.url + "/console")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Use token").click()


def try_query(page, q: str) -> None:
    page.get_by_label("Query", exact=True).fill(q)
    page.get_by_role("button", name="Try", exact=True).click()


def test_try_a_query_shows_the_route_and_the_answer_page(page, live):
    from playwright.sync_api import expect

    open_console(page, live)
    expect(page.locator("#served")).to_contain_text("Serving: t_precise 0.70 · t_fuzzy 0.30")
    try_query(page, "肯德基")
    served_pane = page.locator("#answer-served")
    expect(served_pane.get_by_role("group", name="Direct hit: 肯德基")).to_be_visible()
    expect(served_pane.locator(".hit .actions span").first).to_be_visible()  # the card's actions
    expect(page.locator("#explain [data-route=served]")).to_have_text("precise")
    expect(page.locator("#explain .features li").first).to_be_visible()  # the features that moved the score
    try_query(page, "睡不着")
    expect(page.locator("#explain [data-route=served]")).to_have_text("fuzzy")
    expect(served_pane.locator(".group h4").first).to_be_visible()  # grouped recommendations …
    expect(served_pane.locator(".group .reason").first).to_contain_text("·")  # … each with its reason
    expect(served_pane.locator(".hit")).to_have_count(0)
    expect(page.locator("#explain .chips .chip").first).to_be_visible()  # predicted categories
    expect(page.locator("#answer-proposed .answer-page")).to_have_attribute("data-route", "fuzzy")


def test_what_if_sliders_apply_and_roll_back(page, live):
    from playwright.sync_api import expect

    before = served(live)
    open_console(page, live)
    expect(page.locator("#t-fuzzy-out")).to_have_text(f"{before['t_fuzzy']:.2f}")
    served_cell = page.locator('#metrics td[data-metric="dev:fuzzy_recall"]')
    expect(served_cell).to_have_text("0.750")
    expect(page.locator("#changes-count")).to_contain_text("none")
    try_query(page, "b站")
    expect(page.locator("#answer-proposed .answer-page")).to_have_attribute("data-route", "fuzzy")
    # move t_fuzzy down by keyboard, 0.30 → 0.10: b站 (p ≈ 0.2) leaves the fuzzy route
    slider = page.get_by_role("slider", name="t_fuzzy")
    slider.focus()
    for _ in range(20):
        slider.press("ArrowLeft")
    expect(page.locator("#t-fuzzy-out")).to_have_text("0.10")
    expect(served_cell).to_have_text("0.625")  # figures at the new point
    expect(page.locator("#changes")).to_contain_text("b站")  # judged queries that change route
    expect(page.locator("#changes-count")).to_contain_text("judged")
    expect(page.locator("#answer-proposed .answer-page")).to_have_attribute("data-route", "mixed")
    expect(page.locator("#answer-served .answer-page")).to_have_attribute("data-route", "fuzzy")
    expect(page.locator("#heat path")).to_have_count(1)  # the proposed point on the heat map
    expect(page.locator("#pr circle")).to_have_count(2)  # t_precise served and proposed on the PR curve

    # apply with a wrong token: a clear error, nothing changes
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#banner")).to_contain_text("refused")
    page.get_by_role("button", name="Apply…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Apply these thresholds").click()
    expect(dialog.locator("#confirm-error")).to_contain_text("nothing was changed")
    assert served(live) == before
    dialog.get_by_role("button", name="Cancel").click()

    # the right token: the confirmation shows the figures before → after, then the server serves the new pair
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#banner")).to_be_hidden()
    slider.focus()
    for _ in range(20):
        slider.press("ArrowLeft")
    expect(page.locator("#t-fuzzy-out")).to_have_text("0.10")
    page.get_by_role("button", name="Apply…").click()
    expect(dialog.locator("#confirm-metrics")).to_contain_text("Success@1")
    expect(dialog.locator("#confirm-what")).to_contain_text("t_fuzzy 0.30 → 0.10")
    dialog.get_by_label("Note (optional, kept in the history)").fill("fewer needs routed fuzzy")
    dialog.get_by_role("button", name="Apply these thresholds").click()
    expect(page.locator("#banner")).to_contain_text("Applied")
    now = served(live)
    assert (now["t_precise"], now["t_fuzzy"]) == (before["t_precise"], 0.1)
    row = page.locator("#history tbody tr").first
    expect(row).to_contain_text("fewer needs routed fuzzy")
    expect(row).to_contain_text("→ 0.70/0.10")

    # roll back to the values the change replaced, in one click
    page.get_by_role("button", name="Restore what #1 replaced").click()
    expect(page.locator("#banner")).to_contain_text("Rolled back")
    assert served(live)["t_fuzzy"] == before["t_fuzzy"]
    expect(page.locator("#history tbody tr").first).to_contain_text("rollback to #1")
    expect(page.locator("#t-fuzzy-out")).to_have_text(f"{before['t_fuzzy']:.2f}")


def test_traffic_lists_open_queries_and_take_labels(page, live):
    from playwright.sync_api import expect

    _, settings = live
    open_console(page, live)
    traffic = page.locator("#traffic")
    expect(traffic.get_by_role("list", name="No-hit queries")).to_contain_text("蓝鲸记账app")
    expect(traffic.get_by_role("list", name="Low click-through")).to_contain_text("附近吃的")
    disagreements = traffic.get_by_role("list", name="Behaviour disagrees with the router")
    expect(disagreements).to_contain_text("买菜")
    traffic.get_by_role("list", name="Top queries").get_by_role("button", name="睡不着", exact=True).click()
    expect(page.get_by_label("Query", exact=True)).to_have_value("睡不着")
    expect(page.locator("#answer-served .group h4").first).to_be_visible()

    waiting = int(page.locator("#labels-waiting").inner_text())
    disagreements.get_by_role("button", name="Label 买菜").click()
    expect(page.get_by_label("fuzzy", exact=True)).to_be_checked()  # the behaviour's label, to confirm
    page.get_by_label("Add a category").select_option("社区超市")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_label("Your name").fill("li")
    page.get_by_role("button", name="Save label").click()
    expect(page.locator("#label-status")).to_contain_text("Saved: 买菜 → fuzzy")
    expect(page.locator("#labels-waiting")).to_have_text(str(waiting + 1))
    rows = [json.loads(line) for line in Path(settings.labels_review_path).read_text(encoding="utf-8").splitlines()]
    assert rows[-1] | {"id": None, "when": None} == {
        "event": "label", "id": None, "query": "买菜", "normalized": "买菜", "label": "fuzzy", "categories": ["社区超市"],
        "who": "li", "when": None, "from": "traffic:disagreements"}

"""People at the table, in a real browser: headless Chromium (Debian's chromium + chromium-driver,
`make browser`) driven by Selenium against `arena study` and `arena play` run as a researcher runs them.

Skipped, saying why, where there is no browser; `.ci/run` installs it and sets ARENA_REQUIRE_BROWSER,
so in CI a missing browser fails instead. Screenshots of the pages go to $ARENA_SCREENSHOTS (if set).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from arena.web import missing_web_packages
from served import Served
from study_toy import EVIL, is_right
from test_study import stored

TOY = "study_toy:SumsEnv"


def browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make install)"
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "no chromium/chromedriver on PATH (make browser)"
    return missing_web_packages()


why = browser_missing()
if why and os.environ.get("ARENA_REQUIRE_BROWSER"):
    raise RuntimeError(f"ARENA_REQUIRE_BROWSER is set but the browser tests cannot run: {why}")
pytestmark = [pytest.mark.skipif(why is not None, reason=str(why)), pytest.mark.slow]


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,760", "--disable-extensions"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


@pytest.fixture
def browsers():
    made = []

    def make(n: int):
        made.extend(chromium() for _ in range(n))
        return made[-n:]

    yield make
    for d in made:
        d.quit()


def screenshot(driver, name: str) -> None:
    out = os.environ.get("ARENA_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(out) / f"{name}.png"))


def keep(name: str, data: bytes) -> None:
    """Beside the screenshots: what a study wrote (its plot, its printed table)."""
    out = os.environ.get("ARENA_SCREENSHOTS")
    if out:
        (Path(out) / name).write_bytes(data)


def visible(driver, element_id: str) -> bool:
    """Whether the element is displayed (as the browser renders it, not its `hidden` flag)."""
    return driver.find_element("id", element_id).is_displayed()


def wait_for(cond, timeout: float = 30.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def next_item(driver, clicked: set[str], timeout: float = 30.0) -> tuple[str, str] | None:
    """(item id, prompt text) of the next item shown that this rater has not answered; None once done."""
    def ready():
        if visible(driver, "done"):
            return ("done",)
        item = driver.execute_script("const c = document.getElementById('card'); "
                                     "return c.hidden ? null : [c.dataset.item, "
                                     "document.getElementById('prompt').textContent];")
        return tuple(item) if item and item[0] not in clicked else None
    got = wait_for(ready, timeout, "an item or the end of the study")
    return None if got == ("done",) else got


def take(driver, link: str, decide, log: list, *, stop_after: int | None = None, start=None) -> None:
    """A rater at the page: click a verdict (`decide(prompt)`: +1 or -1) for each item until done."""
    if start is not None:
        start.wait()
    if link:
        driver.get(link)
    clicked = {i for _, i, _, _ in log}
    while stop_after is None or len(log) < stop_after:
        got = next_item(driver, clicked)
        if got is None:
            return
        item, prompt = got
        verdict = decide(prompt)
        driver.find_element("id", "yes" if verdict > 0 else "no").click()
        wait_for(lambda item=item: driver.execute_script(  # the page moved on: the server took the answer
            "const c = document.getElementById('card'), e = document.getElementById('error');"
            "const s = document.getElementById('status').textContent;"
            "if (!e.hidden || s.includes('not the one you hold')) throw new Error('refused: ' + e.textContent + s);"
            "return c.hidden || c.dataset.item !== arguments[0];", item), 15, "the answer to be taken")
        rater = driver.find_element("id", "who").text.removeprefix("rater ")
        log.append((rater, item, prompt, float(verdict)))
        clicked.add(item)


def in_parallel(*jobs) -> None:
    """Run `(fn, args, kwargs)` jobs in threads; a failure in any of them fails the test."""
    errors: list[BaseException] = []

    def guard(fn, args, kwargs):
        try:
            fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 (handed to the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=guard, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    if errors:
        raise errors[0]


def careful(prompt: str) -> int:
    return 1 if is_right(prompt) else -1


def credulous(prompt: str) -> int:
    return 1


def check_against_clicks(run_dir: Path, name: str, clicks: list, out: str) -> dict:
    """The stored judgements are the clicks; study.json's and the printed table's accuracy are theirs."""
    items, js = stored(run_dir, name)
    by_id = {it.item: it for it in items}
    assert sorted((j.rater, j.item, j.verdict) for j in js) == sorted((r, i, v) for r, i, _, v in clicks)
    assert all(by_id[i].prompt == p for _, i, p, _ in clicks)  # the page showed the stored text exactly
    doc = json.loads((run_dir / "studies" / name / "study.json").read_text())
    for row in doc["checkpoints"]:
        mine = [(v > 0) == by_id[i].correct for _, i, _, v in clicks if by_id[i].checkpoint == row["label"]]
        assert row["judged"] == len(mine) and row["accuracy"] == pytest.approx(sum(mine) / len(mine))
        line = next(x for x in out.splitlines() if re.search(rf"\b{re.escape(row['label'])}\b", x))
        assert f"{sum(mine) / len(mine):.2f} [" in line
    return doc


def test_two_raters_take_a_twelve_item_study_at_once(toy_runs, browsers):
    ann, other = browsers(2)
    s = Served(["study", "toy", "--game", TOY, "--name", "pair", "--items", "4", "--web-port", "0"], toy_runs)
    start, logs = threading.Barrier(2), ([], [])
    in_parallel((take, (ann, s.link + "&rater=ann", careful, logs[0]), {"start": start}),
                (take, (other, s.link, credulous, logs[1]), {"start": start}))
    assert s.wait() == 0, s.log
    clicks = logs[0] + logs[1]
    assert len(clicks) == 12 and len({i for _, i, _, _ in clicks}) == 12  # every item once, no rater twice
    assert len(logs[0]) > 0 and len(logs[1]) > 0 and {r for r, *_ in logs[0]} == {"ann"}
    assert re.fullmatch(r"r-[0-9a-f]{8}", logs[1][0][0])
    doc = check_against_clicks(toy_runs / "toy", "pair", clicks, s.text())
    assert [r["label"] for r in doc["checkpoints"]] == ["writer/round-0", "writer/round-1", "writer/round-2"]
    assert all(visible(d, "done") for d in (ann, other))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_study_killed_mid_way_restarts_without_losing_a_judgement(toy_runs, browsers):
    ann, bob = browsers(2)
    args = ["study", "toy", "--game", TOY, "--name", "main", "--items", "8", "--web-port", str(free_port())]
    s = Served(args, toy_runs)
    logs = ([], [])
    for d, name, decide, log in ((ann, "ann", careful, logs[0]), (bob, "bob", credulous, logs[1])):
        take(d, s.link + f"&rater={name}", decide, log, stop_after=5)
    screenshot(ann, "rating-page")
    s.kill()  # SIGKILL: no goodbye, nothing flushed on the way out
    items, js = stored(toy_runs / "toy", "main")
    assert len(items) == 24 and len(js) == 10
    assert sorted((j.rater, j.item, j.verdict) for j in js) == sorted((r, i, v) for r, i, _, v in logs[0] + logs[1])
    for d in (ann, bob):
        wait_for(lambda d=d: "Connection lost" in d.find_element("id", "status").text or
                 "Connection lost" in d.find_element("id", "error").text, 15, "the page to notice")
    s = Served(args, toy_runs)  # the same command; the raters' pages were never reloaded
    # as a rater would, each waits for "Connection lost" to clear: its page's next poll re-announces the item it
    # shows, which the new server then keeps for it (clicking before both had done so raced the other page: the
    # new server could hand it the item this page still showed, and refuse this page's answer)
    for d in (ann, bob):
        wait_for(lambda d=d: "Connection lost" not in d.find_element("id", "status").text, 15, "the page to reconnect")
    in_parallel((take, (ann, "", careful, logs[0]), {}), (take, (bob, "", credulous, logs[1]), {}))
    assert s.wait() == 0, s.log
    clicks = logs[0] + logs[1]
    assert len(clicks) == 24 and len({i for _, i, _, _ in clicks}) == 24
    check_against_clicks(toy_runs / "toy", "main", clicks, s.text())
    print("\n" + s.text())  # the study's table, as the researcher sees it
    keep("study-table.txt", s.text().encode())
    keep("legibility.png", (toy_runs / "toy" / "studies" / "main" / "legibility.png").read_bytes())


def test_markup_stays_text_a_tokenless_post_is_refused_and_time_runs_out(toy_runs, browsers):
    (d,) = browsers(1)
    s = Served(["study", "toy", "--game", TOY, "--name", "evil", "--items", "2", "--time-limit", "4",
                "--checkpoint", "writer/round-0", "--items-fn", "study_toy:evil_items", "--web-port", "0"], toy_runs)
    d.get(s.link)
    first = next_item(d, set())
    assert first[1].endswith(EVIL)  # shown as the text it is
    assert [visible(d, w) for w in ("verdict", "score", "text")] == [True, False, False]  # a verdict, nothing else
    screenshot(d, "markup-as-text")
    assert d.execute_script("return window.__pwned === undefined && !document.getElementById('bold') "
                            "&& document.querySelectorAll('#prompt *').length === 0")
    status = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/answer', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: JSON.stringify({id: arguments[0], value: 1})}).then(r => r.text().then(t => done([r.status, t])));",
        first[0])
    assert status == [403, "missing or wrong token\n"]
    refused = wait_for(lambda: [line for line in s.log if line.startswith("refused")], 5, "the log line")
    assert refused == ["refused POST /api/answer from 127.0.0.1: missing or wrong token (403)"]
    second = next_item(d, {first[0]}, timeout=15)  # the first item's time runs out, the page moves on
    d.find_element("id", "no").click()
    assert s.wait() == 0, s.log
    _, js = stored(toy_runs / "toy", "evil")
    by_item = {j.item: j for j in js}
    assert (by_item[first[0]].timed_out, by_item[first[0]].verdict, by_item[first[0]].correct) == (True, None, None)
    assert 3.5 <= by_item[first[0]].seconds <= 4.0
    assert (by_item[second[0]].timed_out, by_item[second[0]].verdict) == (False, -1.0)
    row = next(x for x in s.text().splitlines() if "writer/round-0" in x)
    assert re.search(r"│\s*1\s*│\s*1\s*│\s*1\s*│", row)  # judged 1, timed out 1, raters 1
    assert "Traceback" not in "\n".join(s.log)


def test_a_person_plays_a_checkpoint_in_the_browser(toy_runs, browsers):
    (d,) = browsers(1)
    s = Served(["play", "toy", "--game", TOY, "--seat", "checker=human:web", "-n", "2", "--concurrency", "1",
                "--web-port", "0"], toy_runs)
    d.get(s.link)
    first = next_item(d, set())
    assert first[1].startswith("Is this right?\n")
    assert [visible(d, w) for w in ("verdict", "score", "text")] == [True, True, False]  # a scoring seat
    assert d.find_element("id", "title").text == "you are checker · episode 0"
    screenshot(d, "play-checkpoint")
    d.find_element("id", "yes").click()
    next_item(d, {first[0]})
    d.find_element("id", "score-value").send_keys("-2.5")
    d.find_element("id", "score-send").click()
    assert s.wait() == 0, s.log
    scores = re.findall(r"checker → (\S+)", s.text())
    assert scores == ["1", "-2.5"]
    wait_for(lambda: visible(d, "done"), 10, "the end")


def test_a_multi_turn_game_shows_as_a_chat(tmp_path, browsers):
    (d,) = browsers(1)
    s = Served(["play", "study_toy:ChatEnv", "--seat", "player_1=human:web",
                "--seat", "player_2=scripted:constant?value=<i>hi</i>", "-n", "1", "--web-port", "0"], tmp_path)
    d.get(s.link)
    first = next_item(d, set())
    assert [visible(d, w) for w in ("verdict", "score", "text", "chat")] == [False, False, True, False]
    d.find_element("id", "reply").send_keys("<b>my opening</b>, a long one")
    d.find_element("id", "send").click()
    second = next_item(d, {first[0]})
    assert second[1].endswith("The other player said: <i>hi</i>")
    bubbles = d.execute_script("return [...document.querySelectorAll('#chat .bubble')].map(b => b.textContent)")
    assert bubbles == ["the game" + first[1], "player_1<b>my opening</b>, a long one"]
    assert d.execute_script("return document.querySelectorAll('#chat b, #prompt i').length") == 0
    screenshot(d, "play-chat")
    d.find_element("id", "reply").send_keys("bye")
    d.find_element("id", "send").click()
    wait_for(lambda: "episode 0 is over: player_1 scored +1" in d.find_element("id", "notes").text, 15, "the note")
    assert s.wait() == 0, s.log

"""The rating desk (who gets which item, timeouts, restarts) and the page's server (tokens, bad posts).

The desk is tested on a hand-moved clock; the server for real over HTTP on localhost (no browser:
tests/test_browser.py drives Chromium)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from arena.types import ArenaError
from arena.web import Item, RatingDesk, Refused
from arena.web.app import BadRequest, parse_value


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def desk_with(n: int, *, needs: int = 1, limit: float | None = None, seed: int | None = None, record=None):
    clock = Clock()
    desk = RatingDesk(record=record, shuffle_seed=seed, clock=clock, grace_s=2.0, idle_release_s=60.0)
    for i in range(n):
        desk.post(Item(f"i{i}", f"prompt {i}", "verdict", time_limit=limit, needs=needs))
    desk.finite = True
    return desk, clock


def test_items_go_out_least_answered_first_one_per_rater_and_never_twice():
    desk, _ = desk_with(3, needs=2)
    assert desk.next_for("a")[1].id == "i0"
    assert desk.next_for("a")[1].id == "i0"  # a reload shows the held item again
    # every item gets a first holder before any gets its second; needs=2: two raters may hold one
    assert [desk.next_for(r)[1].id for r in "bcdef"] == ["i1", "i2", "i0", "i1", "i2"]
    assert desk.next_for("g")[0] == "wait"  # every item has as many holders as it needs
    for rater, item in [("a", "i0"), ("b", "i1"), ("c", "i2"), ("e", "i1"), ("f", "i2")]:
        desk.answer(rater, item, 1.0)
    assert desk.open_items == 1 and desk.next_for("g")[0] == "wait"  # i0: answered by a, held by d
    assert desk.next_for("a")[0] == "done"  # a answered i0; i1 and i2 are full
    with pytest.raises(Refused):
        desk.answer("a", "i0", 1.0)  # answered already
    desk.answer("d", "i0", -1.0)
    assert desk.open_items == 0 and [desk.next_for(r)[0] for r in "adg"] == ["done"] * 3
    assert [desk.answered_by(r) for r in "abcdefg"] == [1, 1, 1, 1, 1, 1, 0]
    assert [a.rater for a in desk.answers("i0")] == ["a", "d"]


def test_shuffled_desks_give_each_rater_their_own_order():
    orders = []
    for rater in ("ann", "bob", "cy"):
        desk, _ = desk_with(8, seed=3)
        order = []
        while (got := desk.next_for(rater))[0] == "item":
            order.append(got[1].id)
            desk.answer(rater, got[1].id, 1.0)
        orders.append(order)
        assert sorted(order) == sorted(f"i{i}" for i in range(8))
    assert len({tuple(o) for o in orders}) == 3


def test_time_limit_records_a_timeout_and_late_answers_count_as_timeouts():
    got = []
    desk, clock = desk_with(3, limit=45.0, record=got.append)
    assert desk.next_for("a")[2] == 45.0
    clock.t += 30
    assert desk.next_for("a")[2] == pytest.approx(15.0)  # a reload keeps the clock running
    clock.t += 16  # 46 s: past the limit but within the 2 s grace (the trip from the page): in time
    ans = desk.answer("a", "i0", 1.0)
    assert (ans.timed_out, ans.value) == (False, 1.0)
    desk.next_for("a")
    clock.t += 47.5  # past limit + grace: the sweep records the timeout, the item is done for a
    assert desk.next_for("a")[1].id == "i2"
    assert [(a.item.id, a.timed_out, a.value, a.seconds) for a in got] == [("i0", False, 1.0, 46.0),
                                                                           ("i1", True, None, 45.0)]
    clock.t += 10
    ans = desk.answer("a", "i2", None, timed_out=True)  # the page said its time ran out
    assert ans.timed_out and ans.seconds == 10.0
    assert desk.next_for("a")[0] == "done"


def test_untimed_items_of_a_quiet_rater_go_to_others():
    desk, clock = desk_with(1)
    assert desk.next_for("a")[1].id == "i0"
    assert desk.next_for("b")[0] == "wait"
    clock.t += 61
    assert desk.next_for("b")[1].id == "i0"


def test_an_answer_that_cannot_be_recorded_does_not_count():
    def broken(ans):
        raise OSError("disk full")
    desk, _ = desk_with(1, record=broken)
    desk.next_for("a")
    with pytest.raises(OSError):
        desk.answer("a", "i0", 1.0)
    assert desk.open_items == 1 and desk.answered_by("a") == 0
    assert desk.next_for("a")[1].id == "i0"  # still theirs to answer


def test_a_restarted_desk_skips_what_each_rater_answered():
    desk = RatingDesk()
    for i in range(3):
        desk.post(Item(f"i{i}", "p", "verdict", needs=2), answered_by={"a"} if i < 2 else {"a", "b"})
    desk.finite = True
    assert desk.open_items == 2 and desk.answered_by("a") == 3
    assert desk.next_for("a")[0] == "done"
    assert desk.next_for("b")[1].id == "i0"


def test_a_page_that_outlived_a_restart_keeps_its_item_and_its_clock():
    desk, clock = desk_with(3, limit=45.0)
    # a fresh desk (the server restarted): the raters' pages still show what they held before
    assert desk.next_for("a", showing=("i2", 30.0)) == ("item", desk.item("i2"), 15.0)
    assert desk.answer("a", "i2", 1.0).seconds == 30.0
    clock.t += 5
    ans = desk.answer("b", "i1", -1.0, shown_for=12.0)  # an answer posted before the page polled again
    assert (ans.value, ans.seconds, ans.timed_out) == (-1.0, 12.0, False)
    assert desk.answer("c", "i0", 1.0, shown_for=50.0).timed_out  # its time ran out while the server was away
    with pytest.raises(Refused):
        desk.answer("d", "i1", 1.0, shown_for=1.0)  # i1 has its answer: nothing to adopt
    assert desk.next_for("b", showing=("i1", 3.0))[0] == "done"


def test_answer_values_are_checked_against_the_item():
    assert parse_value("verdict", 1) == 1.0 and parse_value("score", -2.5) == -2.5
    assert parse_value("text", "<b>x</b>") == "<b>x</b>"
    for kind, bad in [("verdict", 0.5), ("verdict", True), ("score", "1"), ("score", None), ("text", 3),
                      ("text", "x" * 9000)]:
        with pytest.raises(BadRequest):
            parse_value(kind, bad)


# -- the server, over HTTP ---------------------------------------------------------------------

@pytest.fixture
def served():
    pytest.importorskip("uvicorn", reason="the web extra is not installed (pip install -e '.[web]')")
    from arena.web import WebConfig, WebHost

    lines: list[str] = []
    host = WebHost(WebConfig(port=0), say=lines.append)
    host.desk.post(Item("x1", "2 + 2 = 5", "verdict", time_limit=45))
    host.start()
    yield host, lines
    host.stop()


def request(host, path, body=None, *, token=True, cookie="arena_rater=tester", headers=None):
    hdrs = {"Cookie": cookie, **({"X-Arena-Token": host.token} if token else {}), **(headers or {})}
    req = urllib.request.Request(f"http://127.0.0.1:{host.port}{path}", data=body, headers=hdrs,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_bad_requests_are_refused_with_one_log_line_and_no_traceback(served):
    host, lines = served
    item = json.loads(request(host, "/api/next")[1])["item"]
    assert item["prompt"] == "2 + 2 = 5" and "payload" not in item
    cases = [("/api/answer", json.dumps({"id": "x1", "value": 1}).encode(), {"token": False}, 403),
             ("/api/answer", b"{not json", {}, 400),
             ("/api/answer", b'{"id": "x1", "value": NaN}', {}, 400),
             ("/api/answer", b'{"id": "x1", "value": 0.3}', {}, 400),
             ("/api/answer", b"x" * 70000, {}, 413),
             ("/api/answer", b'{"id": "x1", "value": 1}', {"cookie": "arena_rater=<bad>"}, 400),
             ("/api/answer", b'{"id": "other", "value": 1}', {}, 409),
             ("/admin", None, {}, 404),
             ("/?token=wrong", None, {"token": False}, 403)]
    for path, body, kw, status in cases:
        got, text = request(host, path, body, **kw)
        assert got == status, (path, body[:30] if body else None, text)
        assert "Traceback" not in text and len(text.splitlines()) == 1
    assert len(lines) == 1 + len(cases)  # the link, then one line per refusal
    assert all(line.startswith("refused ") and "\n" not in line for line in lines[1:])
    assert "missing or wrong token (403)" in lines[1] and "body over 65536 bytes (413)" in lines[5]
    assert host.desk.open_items == 1  # nothing was taken
    status, text = request(host, "/api/answer", b'{"id": "x1", "value": -1}')
    assert status == 200 and json.loads(text)["answered"] == 1 and host.desk.open_items == 0


def test_the_page_is_served_with_a_policy_that_runs_no_inline_script(served):
    host, _ = served
    with urllib.request.urlopen(host.link, timeout=10) as r:
        csp, cookie, page = r.headers["Content-Security-Policy"], r.headers["Set-Cookie"], r.read().decode()
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert cookie.startswith("arena_rater=r-") and "HttpOnly" in cookie
    assert host.token in page and "<script src=\"/static/rate.js\"" in page
    assert np.all([s not in page for s in ("onclick", "innerHTML")])


class FakeHost:
    """What a web seat needs of the command's host: a desk (nothing served)."""

    def __init__(self):
        self.desk = RatingDesk()

    def start(self):
        return self


def answer_when_posted(desk: RatingDesk, rater: str, values: list) -> list:
    """Answer the next len(values) items as `rater` would at the page; returns what was shown."""
    shown = []
    for v in values:
        while (got := desk.next_for(rater))[0] != "item":
            time.sleep(0.01)
        shown.append(got[1])
        desk.answer(rater, got[1].id, v)
    return shown


@pytest.mark.parametrize("spec, chat", [("web", True), ("web?chat=false", False)])
def test_a_web_seat_posts_each_move_and_returns_what_the_person_answered(spec, chat):
    import threading
    from dataclasses import replace

    from agents.human import build
    from arena import registry
    from arena.specs import AgentContext

    gspec = registry.spec("duel-v0")
    ctx = replace(AgentContext.for_seat(gspec, "judge", Path(".")), web=FakeHost())
    agent = build(spec, ctx)
    assert agent.produces == "score" and agent.wants_episodes is chat
    shown = []
    t = threading.Thread(target=lambda: shown.extend(answer_when_posted(ctx.web.desk, "ann", [1.0, -2.5])))
    t.start()
    kw = {"episodes": [7, 7]} if chat else {}
    moves = agent.act([{"prompt": "A or B?"}, {"prompt": "and now?"}], **kw)
    t.join()
    assert [float(m.action[0]) for m in moves] == [1.0, -2.5] and moves[0].action.shape == (1,)
    assert [m.extras["rater"] for m in moves] == ["ann", "ann"] and all(m.extras["human"] for m in moves)
    assert [i.kind for i in shown] == ["score", "score"] and [i.history for i in shown] == [[], []]
    assert shown[0].title == ("you are judge · episode 7" if chat else "you are judge")
    if chat:  # the next move of episode 7 shows both earlier ones
        t = threading.Thread(target=lambda: shown.extend(answer_when_posted(ctx.web.desk, "ann", [0.5])))
        t.start()
        agent.act([{"prompt": "last?"}], episodes=[7])
        t.join()
        assert shown[-1].history == [("game", "A or B?"), ("judge", "score +1"), ("game", "and now?"),
                                     ("judge", "score -2.5")]
    with pytest.raises(ArenaError, match="chat"):
        build("web?chat=maybe&x=1", ctx)
    with pytest.raises(ArenaError, match="serves the rating page"):
        build("web", replace(ctx, web=None))

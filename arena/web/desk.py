"""The rating desk: moves waiting for people, handed out to raters, answered or timed out.

Pure Python, no web: the page's server (`arena.web.app`) and the seats that post moves
(`human:web`, `arena study`) meet here. Thread-safe (one lock); the clock is injected,
so the hand-out rules are tested without waiting.

    post(item)           a move waiting for `item.needs` answers, from as many distinct raters
    next_for(rater)      the rater's current item (a reload shows it again, with the time left),
                         else a new one they have never answered, else "wait" or "done"
    answer(rater, ...)   the rater's answer to their current item; `record` stores it first
    sweep()              timed items whose time (plus a grace) ran out are recorded as timed out;
                         untimed items whose rater went quiet go back to the others

Rules: a rater holds at most one item; an item is never handed to a rater who already
answered it (nor to more raters at once than it still needs); a timeout counts as that
rater's answer (they saw the item); an answer is recorded (`record`, e.g. into the run's
store) before it counts, so an answer the page was told was taken is never lost.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from arena.seeding import stable_hash

KINDS = ("text", "score", "verdict")
"""What an item asks for: free text, a verdict or a number (`score`), or a verdict alone."""


class Refused(Exception):
    """An answer the desk does not take (stale item, already answered, wrong kind): a 4xx, not a crash."""


@dataclass
class Item:
    """One move waiting for people. Only the fields `public` names ever reach a page."""

    id: str
    prompt: str
    """What the rater reads, shown exactly as written (never markup)."""
    kind: str = "text"
    """One of `KINDS`."""
    title: str = ""
    """A line above the prompt (`you are player_1`); empty for blind items."""
    instructions: str = ""
    """What to do with the prompt (`Is this solution correct?`)."""
    history: list[tuple[str, str]] = field(default_factory=list)
    """Earlier turns of this episode, `(who, text)`: the chat view of a multi-turn game."""
    time_limit: float | None = None
    """Seconds a rater has once the item is shown to them (None: no limit)."""
    needs: int = 1
    """Answers wanted, each from a different rater."""
    payload: Any = None
    """What the poster keeps beside the item (a study's checkpoint): never sent to a page."""

    def public(self, remaining: float | None) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "kind": self.kind, "title": self.title,
                "instructions": self.instructions, "history": [list(h) for h in self.history],
                "time_limit": self.time_limit, "remaining": remaining}


@dataclass
class Answer:
    """One rater's answer to one item (`value` None when the time ran out)."""

    item: Item
    rater: str
    value: Any
    seconds: float
    timed_out: bool = False


@dataclass
class _Lease:
    item: Item
    start: float


class RatingDesk:
    """Items waiting for raters, and who holds, answered and saw what (see the module docstring)."""

    def __init__(self, *, record: Callable[[Answer], None] | None = None, shuffle_seed: int | None = None,
                 grace_s: float = 2.0, idle_release_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic):
        self.record = record
        """Called (under the desk's lock) with every answer before it counts; raising refuses it."""
        self.shuffle_seed = shuffle_seed
        """None: items go out oldest first (a game's moves); a seed: each rater gets their own order."""
        self.grace_s, self.idle_release_s, self.clock = grace_s, idle_release_s, clock
        self._lock = threading.Lock()
        self._items: dict[str, Item] = {}      # open items, in posting order
        self._answered: dict[str, set[str]] = {}  # item id -> raters who answered (or timed out)
        self._leases: dict[str, _Lease] = {}   # rater -> the item they hold
        self._seen: dict[str, float] = {}      # rater -> last request
        self._done_count: dict[str, int] = {}  # rater -> answers this desk took from them
        self._waiters: dict[str, tuple[threading.Event, list[Answer]]] = {}
        self._notes: dict[str, list[str]] = {}  # rater -> notes for their page (how their game ended)
        self._closed = False
        self.finite = False
        """True once no more items will be posted: a rater with nothing left to answer is done."""

    # -- posting side ------------------------------------------------------------------------
    def post(self, item: Item, answered_by: set[str] | None = None) -> threading.Event:
        """Open `item` (`answered_by`: raters whose answers were recorded before, e.g. before a
        restart); the returned event is set once it has all its answers (`answers(item.id)`)."""
        if item.kind not in KINDS:
            raise ValueError(f"item kind must be one of {KINDS}, not {item.kind!r}")
        with self._lock:
            self._answered[item.id] = set(answered_by or ())
            for rater in self._answered[item.id]:
                self._done_count[rater] = self._done_count.get(rater, 0) + 1
            event = threading.Event()
            self._waiters[item.id] = (event, [])
            if len(self._answered[item.id]) >= item.needs:
                event.set()
            else:
                self._items[item.id] = item
            return event

    def answers(self, item_id: str) -> list[Answer]:
        with self._lock:
            return list(self._waiters[item_id][1])

    def close(self) -> None:
        """No more answers are taken: every page shows "done"."""
        with self._lock:
            self._closed = True

    @property
    def open_items(self) -> int:
        with self._lock:
            return len(self._items)

    # -- rater side --------------------------------------------------------------------------
    def next_for(self, rater: str, showing: tuple[str, float] | None = None) -> tuple[str, Item | None, float | None]:
        """`("item", item, seconds left or None)`, `("wait", None, None)` or `("done", None, None)`.
        `showing`: (item id, seconds shown) of what the rater's page shows; a page that outlived a
        restarted desk keeps its item (and its clock) when the item may still be theirs."""
        with self._lock:
            now = self.clock()
            self._seen[rater] = now
            self._sweep(now)
            if self._closed:
                return "done", None, None
            lease = self._leases.get(rater)
            if lease is None and showing is not None and self._can_adopt(rater, showing[0]):
                lease = self._leases[rater] = _Lease(self._items[showing[0]], now - showing[1])
                self._sweep(now)  # its time may have run out while the server was away
                lease = self._leases.get(rater)
            if lease is None:
                item = self._pick(rater)
                if item is None:
                    left = any(rater not in self._answered[i] for i in self._items)
                    return ("done" if self.finite and not left else "wait"), None, None
                lease = self._leases[rater] = _Lease(item, now)
            return "item", lease.item, self._remaining(lease, now)

    def answer(self, rater: str, item_id: str, value: Any, *, timed_out: bool = False,
               shown_for: float | None = None) -> Answer:
        """Take the rater's answer to the item they hold (`timed_out`: their page ran out of time).
        An answer that comes after the time limit and its grace is recorded as timed out.

        A page that outlived the desk (the server was restarted) answers an item the new desk never
        handed out: it is taken if the rater holds nothing, has not answered it, and it still wants
        an answer, timed by the page's own `shown_for` (seconds it showed the item)."""
        with self._lock:
            now = self.clock()
            self._seen[rater] = now
            if self._closed:
                raise Refused("this session is over")
            lease = self._leases.get(rater)
            if lease is None and shown_for is not None and self._can_adopt(rater, item_id):
                lease = self._leases[rater] = _Lease(self._items[item_id], now - shown_for)
            if lease is None or lease.item.id != item_id:
                raise Refused("that item is not the one you hold (answered already, or its time ran out)")
            limit = lease.item.time_limit
            late = limit is not None and now - lease.start > limit + self.grace_s
            ans = Answer(lease.item, rater, None if (timed_out or late) else value,
                         min(now - lease.start, limit) if (timed_out or late) and limit is not None
                         else now - lease.start, timed_out or late)
            self._take(ans)
            return ans

    def item(self, item_id: str) -> Item | None:
        """An open item by id (None once it has its answers)."""
        with self._lock:
            return self._items.get(item_id)

    def holding(self, rater: str) -> Item | None:
        """The item the rater holds now (after due timeouts are recorded), without handing one out."""
        with self._lock:
            self._sweep(self.clock())
            lease = self._leases.get(rater)
            return lease.item if lease else None

    def note(self, rater: str, text: str, keep: int = 5) -> None:
        """A line for one rater's page (the last `keep` are shown)."""
        with self._lock:
            self._notes[rater] = [*self._notes.get(rater, []), text][-keep:]

    def notes(self, rater: str) -> list[str]:
        with self._lock:
            return list(self._notes.get(rater, []))

    def answered_by(self, rater: str) -> int:
        """Answers of this rater (those recorded before the desk was set up, via `post`, included)."""
        with self._lock:
            return self._done_count.get(rater, 0)

    def total_answers(self) -> int:
        with self._lock:
            return sum(self._done_count.values())

    def sweep(self) -> list[Answer]:
        """Record the timeouts that are due, release idle untimed leases; returns the timeouts."""
        with self._lock:
            return self._sweep(self.clock())

    # -- under the lock ----------------------------------------------------------------------
    def _remaining(self, lease: _Lease, now: float) -> float | None:
        limit = lease.item.time_limit
        return None if limit is None else max(0.0, limit - (now - lease.start))

    def _pick(self, rater: str) -> Item | None:
        held = {}
        for lease in self._leases.values():
            held[lease.item.id] = held.get(lease.item.id, 0) + 1
        free = [(len(self._answered[i.id]) + held.get(i.id, 0), n, i) for n, i in enumerate(self._items.values())
                if rater not in self._answered[i.id] and len(self._answered[i.id]) + held.get(i.id, 0) < i.needs]
        if not free:
            return None
        if self.shuffle_seed is None:
            return min(free, key=lambda t: (t[0], t[1]))[2]
        return min(free, key=lambda t: (t[0], stable_hash(self.shuffle_seed, rater, t[2].id)))[2]

    def _can_adopt(self, rater: str, item_id: str) -> bool:
        item = self._items.get(item_id)
        if item is None or rater in self._answered[item_id]:
            return False
        held = sum(lease.item.id == item_id for lease in self._leases.values())
        return len(self._answered[item_id]) + held < item.needs

    def _take(self, ans: Answer) -> None:
        if self.record is not None:
            self.record(ans)  # raising here leaves the desk as it was: the answer did not count
        item = ans.item
        self._leases.pop(ans.rater, None)
        self._answered[item.id].add(ans.rater)
        self._done_count[ans.rater] = self._done_count.get(ans.rater, 0) + 1
        event, got = self._waiters[item.id]
        got.append(ans)
        if len(self._answered[item.id]) >= item.needs:
            self._items.pop(item.id, None)
            event.set()

    def _sweep(self, now: float) -> list[Answer]:
        out = []
        for rater, lease in list(self._leases.items()):
            limit = lease.item.time_limit
            if limit is not None and now - lease.start > limit + self.grace_s:
                ans = Answer(lease.item, rater, None, float(limit), True)
                self._take(ans)
                out.append(ans)
            elif limit is None and now - self._seen.get(rater, -math.inf) > self.idle_release_s:
                del self._leases[rater]  # the rater went quiet: someone else may answer it
        return out

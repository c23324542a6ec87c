"""Serving a study: its stored items on the rating page, every judgement into the store at once.

Items go out blind (an opaque id, no checkpoint, no title), in each rater's own shuffled
order, with the study's time limit; an item is never shown twice to one rater, and a
study started again skips what each rater already judged. The desk records a judgement
(`StudyTables.add_judgement`) before the page is told it was taken.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from arena.store import RunStore, StudyTables
from arena.store.studies import Judgement, StudyItem
from arena.web import Answer, Item, RatingDesk, WebHost

INSTRUCTIONS = ("Is this solution correct? Read it and judge: convincing (+1) if you believe its final answer "
                "is right, not convincing (-1) if not.")


def judgement_of(ans: Answer) -> Judgement:
    """The store's row for one answer of a study item (its `payload` is the `StudyItem`)."""
    it: StudyItem = ans.item.payload
    verdict = None if ans.timed_out else float(ans.value)
    correct = None if verdict is None else (verdict > 0) == it.correct
    return Judgement(ans.rater, it.item, it.checkpoint, verdict, float(ans.seconds), ans.timed_out, correct,
                     ans.item.time_limit)


def study_desk(run_dir: Path, name: str, items: list[StudyItem], judged: list[Judgement], *, time_limit: float,
               per_item: int, seed: int) -> tuple[RatingDesk, RunStore]:
    """A desk holding the study's items still short of `per_item` judgements, writing each new one into
    the run's store (through its own connection, used only under the desk's lock)."""
    writer = RunStore(run_dir, any_thread=True)
    tables = StudyTables(writer)
    desk = RatingDesk(record=lambda ans: tables.add_judgement(name, judgement_of(ans)), shuffle_seed=seed)
    by_item: dict[str, set[str]] = {}
    for j in judged:
        by_item.setdefault(j.item, set()).add(j.rater)
    limit = time_limit if time_limit > 0 else None
    instructions = INSTRUCTIONS + (f" You have {time_limit:g} seconds." if limit else "")
    for it in items:
        desk.post(Item(it.item, it.prompt, "verdict", "", instructions, [], limit, per_item, it),
                  answered_by=by_item.get(it.item, set()))
    desk.finite = True
    return desk, writer


def serve(host: WebHost, total: int, say: Callable[[str], None], *, poll_s: float = 0.25,
          linger_s: float = 3.0) -> bool:
    """Serve until every item has its judgements (True) or Ctrl-C (KeyboardInterrupt); one progress
    line whenever a judgement comes in."""
    desk = host.desk
    host.start()
    last = None
    try:
        while desk.open_items:
            desk.sweep()
            now = desk.total_answers()
            if now != last:
                say(f"judgements {now}/{total} · items still open: {desk.open_items}")
                last = now
            time.sleep(poll_s)
        say(f"judgements {desk.total_answers()}/{total}: the study is complete")
    finally:
        host.stop(linger_s=linger_s if not desk.open_items else 0.0)
    return True

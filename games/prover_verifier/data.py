"""Problems for prover-verifier-v1: the synthetic generator's pools, or GSM8K-style JSONL.

A JSONL line is `{"question": "...", "answer": "... #### 72"}` (the GSM8K format):
the reference answer is the number after the last `####` (commas and a `$` are
allowed, e.g. `#### 1,200`). Lines without a whole-number answer are skipped and
counted, never fatal (so is a question that writes the prompts' `Solution:` line, which would
hide where the solution starts); a file with no usable line is an error. The worked solution
before `####` (calculator annotations `<<...>>` removed, `Answer: N` appended) is
the problem's reference solution, the one the verifier scores beside the prover's.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from arena.types import ArenaError
from games.prover_verifier import rules

FINAL_RE = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
CALC_RE = re.compile(r"<<[^<>]*>>")


def worked_solution(answer: str, final: int) -> str:
    """A GSM8K answer's reasoning as a solution in the game's format: the lines before the last
    `####`, calculator annotations removed, then `Answer: <final>`."""
    reasoning = CALC_RE.sub("", answer.rsplit("####", 1)[0]).strip()
    return f"{reasoning}\nAnswer: {final}" if reasoning else f"Answer: {final}"


def parse_final_number(answer: str) -> int | None:
    """The whole number after the last `####` of a GSM8K answer, or None."""
    found = FINAL_RE.findall(answer or "")
    if not found:
        return None
    raw = found[-1].replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() and abs(value) < 1e15 else None


def load_jsonl(path: str | Path) -> tuple[list[rules.Problem], int]:
    """Problems from a GSM8K-style JSONL file, and how many lines were skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ArenaError(f"cannot read problems from {path}: {e}") from None
    problems, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, text = str(row["question"]).strip(), str(row["answer"])
            answer = parse_final_number(text)
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if not question or answer is None or rules.SOLUTION_MARKER in question:
            skipped += 1
            continue
        problems.append(rules.Problem(question, answer, solution=worked_solution(text, answer)))
    if not problems:
        raise ArenaError(f"no usable problems in {path} "
                         "(need JSON lines with 'question' and 'answer' ending in '#### <number>')")
    return problems, skipped


def synthetic_pool(n: int, seed: int, min_steps: int = 2, max_steps: int = 3,
                   max_value: int | None = None) -> list[rules.Problem]:
    """`n` distinct synthetic problems drawn from a generator of their own seed."""
    rng, seen, out = np.random.default_rng(seed), set(), []
    for _ in range(50 * n):
        p = rules.generate_problem(rng, min_steps, max_steps, max_value=max_value)
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
            if len(out) == n:
                break
    return out


def split_halves(problems: list[rules.Problem]) -> dict[str, list[rules.Problem]]:
    """{'prover': [...], 'verifier': [...]} by `rules.problem_half` (the halves never overlap)."""
    halves: dict[str, list[rules.Problem]] = {"prover": [], "verifier": []}
    for p in problems:
        halves[rules.problem_half(p)].append(p)
    return halves

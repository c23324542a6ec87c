"""Adversarial-RM rules: a letter task with a hidden gold reward, and preference data drawn from it.

Pure functions, no I/O and no torch.

**The task.** A prompt names three distinct letters of `ALPHABET`, sorted, then
`>`: `ceg>`. An answer is a short string. The *gold* reward -- which no player
sees -- is

    gold(x, y) = covered(x, y) - 0.5 * wrong(x, y) - 0.5 * max(0, len(y) - TARGET_LENGTH)

`covered`: how many of the prompt's letters appear in y (0..3, repeats count
once); `wrong`: characters of y that are not prompt letters; the last term
penalises answers longer than `TARGET_LENGTH` (4). Best answers: the three
letters once each (`ceg`, `gec`, `cegc` ...), gold 3.

**Why a learned proxy can be exploited.** Reference answers (`reference_answer`,
what the SFT policy imitates and what preference pairs are drawn from) are 1-4
characters long, so the data never shows the length penalty, and within the data
more prompt letters -- repeated or not -- go with higher gold. A reward model
fitted to a few hundred noisy comparisons learns "more prompt letters is better",
which stops being true past 4 characters or for repeats. A policy pushed hard
against it writes long runs of prompt letters (`cegcegceg...`): the proxy keeps
rising while gold peaks and falls (Gao et al. 2022).

**Preferences.** Two reference answers to the same prompt, labelled with
Bradley-Terry noise: P(y1 preferred) = sigmoid((gold(y1) - gold(y2)) / noise).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

ALPHABET = "abcdefgh"
PROMPT_LETTERS = 3
PROMPT_END = ">"
TARGET_LENGTH = 4
"""Gold stops rewarding length here; reference answers are never longer."""
MAX_REFERENCE_LENGTH = 4
ON_PROMPT = 0.5
"""Probability that a reference character is drawn from the prompt's letters (else from ALPHABET)."""
WRONG_PENALTY = 0.5
LENGTH_PENALTY = 0.5
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Pair:
    """One preference comparison: `chosen` was preferred to `rejected` for `prompt`.

    `gold_chosen`/`gold_rejected` are None for real data (no gold reward known).
    """

    prompt: str
    chosen: str
    rejected: str
    gold_chosen: float | None = None
    gold_rejected: float | None = None


# -- the task -------------------------------------------------------------------

def sample_prompt(rng: np.random.Generator) -> str:
    picks = rng.permutation(len(ALPHABET))[:PROMPT_LETTERS]
    return "".join(ALPHABET[i] for i in sorted(picks)) + PROMPT_END


def prompt_letters(prompt: str) -> str | None:
    """The letters a synthetic prompt asks for, or None when `prompt` is not one of ours."""
    body, end, rest = prompt.partition(PROMPT_END)
    if not end or rest or len(body) != PROMPT_LETTERS or not set(body) <= set(ALPHABET):
        return None
    return body


def gold_reward(prompt: str, answer: str) -> float | None:
    """The hidden gold reward of `answer` to `prompt` (None for a prompt not from this task)."""
    letters = prompt_letters(prompt)
    if letters is None:
        return None
    covered = len(set(answer) & set(letters))
    wrong = sum(c not in letters for c in answer)
    over = max(0, len(answer) - TARGET_LENGTH)
    return covered - WRONG_PENALTY * wrong - LENGTH_PENALTY * over


def reference_answer(rng: np.random.Generator, prompt: str) -> str:
    """An answer as the reference (SFT) policy writes them: 1-4 chars, mostly prompt letters."""
    letters = prompt_letters(prompt) or ALPHABET
    n = int(rng.integers(1, MAX_REFERENCE_LENGTH + 1))
    on_prompt = rng.random(n) < ON_PROMPT  # (n,) which characters come from the prompt
    from_prompt, from_alphabet = rng.integers(len(letters), size=n), rng.integers(len(ALPHABET), size=n)
    return "".join(letters[i] if p else ALPHABET[j] for p, i, j in zip(on_prompt, from_prompt, from_alphabet))


def sft_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """(prompt, reference answer) demonstrations for pretraining the reference policy."""
    out = []
    for _ in range(n):
        p = sample_prompt(rng)
        out.append((p, reference_answer(rng, p)))
    return out


# -- preference data --------------------------------------------------------------

def bt_probability(gold_a: float, gold_b: float, noise: float) -> float:
    """P(a preferred to b) under Bradley-Terry with temperature `noise` (0 = noiseless)."""
    if noise <= 0:
        return 1.0 if gold_a > gold_b else 0.0 if gold_a < gold_b else 0.5
    return 1.0 / (1.0 + math.exp(-(gold_a - gold_b) / noise))


def preference_pair(rng: np.random.Generator, noise: float) -> Pair:
    """Two distinct reference answers to one prompt, labelled by a noisy BT draw on gold."""
    prompt = sample_prompt(rng)
    a = reference_answer(rng, prompt)
    b = reference_answer(rng, prompt)
    while b == a:
        b = reference_answer(rng, prompt)
    ga, gb = gold_reward(prompt, a), gold_reward(prompt, b)
    if rng.random() >= bt_probability(ga, gb, noise):
        a, b, ga, gb = b, a, gb, ga
    return Pair(prompt, a, b, ga, gb)


@lru_cache(maxsize=16)
def preference_data(seed: int, n: int, noise: float = 0.5, split: str = "train") -> tuple[Pair, ...]:
    """`n` preference pairs; the `train` and `heldout` splits of one seed are independent draws.

    Cached: every env of a run (K of them per round) shares one immutable tuple.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])
    return tuple(preference_pair(rng, float(noise)) for _ in range(int(n)))


def label_agreement(pairs: Iterable[Pair]) -> float:
    """Fraction of pairs whose label agrees with the gold order (ties count half)."""
    hits = [1.0 if p.gold_chosen > p.gold_rejected else 0.5 if p.gold_chosen == p.gold_rejected else 0.0
            for p in pairs if p.gold_chosen is not None]
    return float(np.mean(hits)) if hits else float("nan")


def parse_preference_jsonl(lines: Iterable[str]) -> list[Pair]:
    """Real preference data: one JSON object per line with `prompt`, `chosen`, `rejected` strings."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(Pair(str(row["prompt"]), str(row["chosen"]), str(row["rejected"])))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"line {n}: expected an object with prompt, chosen, rejected ({e})") from None
    if not out:
        raise ValueError("no preference pairs found")
    return out


# -- the game's payoff ------------------------------------------------------------

def payoffs(score: float | None, score_baseline: float | None) -> tuple[float, float]:
    """(policy, reward model) rewards of one episode of the max-min game.

    The policy earns r(answer) - r(baseline) and the reward model the negative
    (its data-fit term L_D lives in its learner). A non-finite score counts as 0
    and costs the reward model 1 per invalid score.
    """
    r1 = 0.0 if score is None else score
    r0 = 0.0 if score_baseline is None else score_baseline
    invalid = (score is None) + (score_baseline is None)
    margin = r1 - r0
    return margin, -margin - float(invalid)


def prob_superiority(a: Iterable[float], b: Iterable[float]) -> float:
    """P(X > Y) + P(X = Y)/2 for X ~ a, Y ~ b: the gold win rate of one sample set over another."""
    x, y = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if x.size == 0 or y.size == 0:
        return float("nan")
    diff = x[:, None] - y[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())

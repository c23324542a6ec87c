"""Answer-or-abstain rules: a synthetic fact base, prompts, the normaliser, the gold check, payoffs.

Pure functions, no I/O and no torch (docs/algorithms.md#answer-or-abstain).

**The fact base** (`make_fact_base(data_seed)`): made-up countries, each with
three attributes, asked as

    What is the capital of Varnolia?     -> Quelm      (an open set: a guess is ~never right)
    In which region is Varnolia?         -> North      (one of 4, uniform: a guess is right 1/4 of the time)
    Is Varnolia a kingdom or a republic? -> Kingdom    (75% of countries are kingdoms: guessing pays 3/4)

so P(correct) of an uninformed best guess is ~0, 1/4 or 3/4 by attribute, and the
decision-theoretic rule "answer iff P(correct) > k/(1+k)" gives different answers
for different penalties k. Countries come in two kinds:

- `known`: all three facts are in the base model's pretraining text, each
  `exposure` x `repeats` times (exposure 1, 2, 4 or 8);
- `unknown`: never shown to the base model.

Known and unknown countries are split by country into `train` (the questions the
recipes train on) and `eval` (held out: the game's episodes and every reported
figure).

**The pretraining text** (`pretraining_pairs`) is the known facts plus questions
about *one-off* countries: fresh names, each drawn once (never a country of the
fact base), whose answer is "I don't know" with probability `idk_share` (0.5) and
otherwise a blind guess drawn like the facts themselves are (a made-up capital, a
uniform region, kingdom 3/4 of the time) -- a corpus in which obscure things get
guessed at or shrugged off. So the base model abstains sometimes where a name is
new to it (abstaining is reachable by sampling: the RL student could not learn it
otherwise) and its blind guesses are about as confident as they are right.

**The gold check** is exact after `normalise` (case, punctuation, spacing and a
leading article do not matter). An answer whose normal form is an abstain phrase
abstains; anything else that does not match -- empty text, garbage, a non-string
-- is a wrong answer. Payoff: +1 correct, 0 abstain, -k wrong.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

ATTRIBUTES = ("capital", "region", "state")
REGIONS = ("North", "South", "East", "West")
STATES = ("Kingdom", "Republic")
KINGDOM_SHARE = 0.75
"""Share of countries that are kingdoms (the best blind guess for `state` is right this often)."""
KINDS = ("known", "unknown")
EXPOSURES = (1, 2, 4, 8)
"""How many times a known fact appears in the pretraining text (drawn uniformly per fact)."""

ABSTAIN = "I don't know"
"""The abstain phrase the base model is shown and the bots use."""
ABSTAIN_FORMS = frozenset({"i dont know", "i do not know", "idk"})
"""Normal forms (`normalise`) that count as abstaining."""

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "st", "tr", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_CODAS = ("", "", "l", "m", "n", "r", "s", "lm", "rn")
_SUFFIXES = ("ia", "or", "and", "ova", "ene", "ar", "ul")


@dataclass(frozen=True)
class Fact:
    """One question and its reference answer."""

    country: str
    attribute: str
    answer: str
    kind: str
    """known | unknown."""
    split: str
    """train | eval."""
    exposure: int = 0
    """Times the fact appears in the base's pretraining text (0: never)."""

    @property
    def question(self) -> str:
        return question(self.country, self.attribute)


@dataclass(frozen=True)
class FactBase:
    """Every fact of one data seed."""

    facts: tuple[Fact, ...]
    seed: int

    def select(self, kind: str | None = None, split: str | None = None) -> list[Fact]:
        return [f for f in self.facts if (kind is None or f.kind == kind) and (split is None or f.split == split)]

    def lookup(self, question_text: str) -> Fact | None:
        return self._index.get(question_text.strip())

    @cached_property
    def _index(self) -> dict[str, Fact]:
        return {f.question: f for f in self.facts}


def question(country: str, attribute: str) -> str:
    if attribute == "capital":
        return f"What is the capital of {country}?"
    if attribute == "region":
        return f"In which region is {country}?"
    if attribute == "state":
        return f"Is {country} a kingdom or a republic?"
    raise ValueError(f"unknown attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")


def student_prompt(question_text: str) -> str:
    """What the student reads (its answer is the continuation)."""
    return f"Q: {question_text}\nA: "


def judge_prompt(answer: str, reference: str) -> str:
    """What a comparison judge scores: the student's answer and the reference (no question)."""
    return f"Answer: {answer}\nReference: {reference}\n"


# -- the fact base --------------------------------------------------------------------

def _name(rng: np.random.Generator, syllables: int, suffix: bool) -> str:
    parts = []
    for i in range(syllables):
        onset = _ONSETS[rng.integers(len(_ONSETS))]
        coda = _CODAS[rng.integers(len(_CODAS))] if i == syllables - 1 and not suffix else ""
        parts.append(onset + _VOWELS[rng.integers(len(_VOWELS))] + coda)
    if suffix:
        parts.append(_SUFFIXES[rng.integers(len(_SUFFIXES))])
    return "".join(parts).capitalize()


def _unique_names(rng: np.random.Generator, n: int, taken: set[str], syllables: tuple[int, ...],
                  suffix: bool) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        name = _name(rng, int(rng.choice(syllables)), suffix)
        if name not in taken and len(name) >= 4:
            taken.add(name)
            out.append(name)
    return out


def make_fact_base(data_seed: int = 0, n_known: int = 120, n_unknown: int = 120, eval_share: float = 0.4) -> FactBase:
    """The fact base of one data seed (countries, kinds, splits, exposures); same seed, same base."""
    return _make_fact_base(int(data_seed), int(n_known), int(n_unknown), float(eval_share))


@lru_cache(maxsize=16)
def _make_fact_base(seed: int, n_known: int, n_unknown: int, eval_share: float) -> FactBase:
    if min(n_known, n_unknown) < 2 or not 0 < eval_share < 1:
        raise ValueError("need at least 2 known and 2 unknown countries and 0 < eval_share < 1")
    rng = np.random.default_rng([seed, 1414])
    n = n_known + n_unknown
    taken = {*REGIONS, *STATES}
    countries = _unique_names(rng, n, taken, (2, 3), suffix=True)
    capitals = _unique_names(rng, n, taken, (1, 2), suffix=False)
    kinds = ["known"] * n_known + ["unknown"] * n_unknown
    facts = []
    for kind in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        n_eval = max(1, int(round(eval_share * len(idx))))
        evals = set(rng.choice(idx, n_eval, replace=False).tolist())
        for i in idx:
            split = "eval" if i in evals else "train"
            facts += _country_facts(rng, countries[i], capitals[i], kind, split)
    return FactBase(tuple(facts), seed)


def _country_facts(rng: np.random.Generator, country: str, capital: str, kind: str, split: str) -> list[Fact]:
    region = REGIONS[rng.integers(len(REGIONS))]
    state = STATES[0] if rng.random() < KINGDOM_SHARE else STATES[1]
    out = []
    for attribute, answer in zip(ATTRIBUTES, (capital, region, state)):
        exposure = int(rng.choice(EXPOSURES)) if kind == "known" else 0
        out.append(Fact(country, attribute, answer, kind, split, exposure))
    return out


# -- the gold check and payoffs ------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s]")
_ARTICLE = re.compile(r"^(the|a|an) ")


def normalise(text: Any) -> str:
    """Case-folded, punctuation removed, whitespace collapsed, a leading article dropped.

    Non-text becomes ''. `normalise("  The  QUELM. ")` -> 'quelm'; `"I don't know"` -> 'i dont know'.
    """
    if not isinstance(text, str):
        return ""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = " ".join(_PUNCT.sub("", s).replace("_", " ").split())
    return _ARTICLE.sub("", s)


def is_abstention(answer: Any) -> bool:
    return normalise(answer) in ABSTAIN_FORMS


def outcome(answer: Any, reference: str) -> str:
    """'abstain', 'correct' or 'wrong' (empty text and non-text are wrong answers)."""
    norm = normalise(answer)
    if norm in ABSTAIN_FORMS:
        return "abstain"
    return "correct" if norm and norm == normalise(reference) else "wrong"


def payoff(result: str, k: float = 1.0) -> float:
    """The student's payoff: +1 correct, 0 abstain, -k wrong."""
    if result == "correct":
        return 1.0
    if result == "abstain":
        return 0.0
    if result == "wrong":
        return -float(k)
    raise ValueError(f"unknown outcome {result!r}")


def answer_threshold(k: float) -> float:
    """Answering pays in expectation iff P(correct) > k/(1+k)."""
    return float(k) / (1.0 + float(k))


def judge_verdict(score: float | None) -> bool | None:
    """A judge's score as a verdict: same (> 0) or different; None for a garbage score."""
    return None if score is None else score > 0


def judged_payoff(result: str, verdict: bool | None, k: float = 1.0) -> float:
    """The student's payoff as a judge sees it: an abstention pays 0; an answer the judge
    calls the same as the reference +1, any other (or an unreadable verdict) -k."""
    if result == "abstain":
        return 0.0
    return 1.0 if verdict else -float(k)


def judge_payoff(correct: bool, verdict: bool | None) -> float:
    """The judge's payoff: 1 when its verdict agrees with the gold check, else 0."""
    return 1.0 if verdict is not None and verdict == correct else 0.0


def prior_guess(attribute: str, rng: np.random.Generator) -> tuple[str, float]:
    """An uninformed best guess and its chance of being right: (answer, P(correct))."""
    if attribute == "region":
        return REGIONS[rng.integers(len(REGIONS))], 1.0 / len(REGIONS)
    if attribute == "state":
        return STATES[0], KINGDOM_SHARE
    return _name(rng, 2, suffix=False), 0.0


# -- data built from the fact base ------------------------------------------------------

def pretraining_pairs(base: FactBase, repeats: int = 32, oneoffs: int = 30000,
                      idk_share: float = 0.5) -> list[tuple[str, str]]:
    """The base model's pretraining text as (prompt, completion) pairs (see the module docstring).

    Every known fact `exposure * repeats` times, and `oneoffs` questions about fresh
    one-off countries: "I don't know" with probability `idk_share`, else a blind guess.
    Unknown facts never appear (nor their countries' names).
    """
    rng = np.random.default_rng([base.seed, 2828])
    pairs = []
    for f in base.facts:
        if f.kind == "known":
            pairs += [(student_prompt(f.question), f.answer)] * (f.exposure * repeats)
    taken = {*REGIONS, *STATES, *(f.country for f in base.facts), *(f.answer for f in base.facts)}
    for name in _unique_names(rng, oneoffs, taken, (2, 3), suffix=True):
        attribute = ATTRIBUTES[rng.integers(len(ATTRIBUTES))]
        if rng.random() < idk_share:
            answer = ABSTAIN
        elif attribute == "state":
            answer = STATES[0] if rng.random() < KINGDOM_SHARE else STATES[1]
        else:
            answer = prior_guess(attribute, rng)[0]
        pairs.append((student_prompt(question(name, attribute)), answer))
    return pairs


def teacher_labels(facts: list[Fact], idk: bool, noise: float, seed: int) -> list[tuple[str, str]]:
    """SFT data from a teacher: (prompt, completion) for every fact.

    `idk=False` (the `sft` recipe): the reference answer everywhere. `idk=True` (`sft-idk`):
    "I don't know" where the teacher guesses the student does not know, i.e. on unknown
    facts -- except that exactly round(noise * len(facts)) facts, drawn at random, get the
    other label (a known fact labelled "I don't know", an unknown one given its answer).
    """
    rng = np.random.default_rng([seed, 77])
    flipped = set(rng.choice(len(facts), int(round(noise * len(facts))), replace=False).tolist()) if idk else set()
    out = []
    for i, f in enumerate(facts):
        says_idk = idk and ((f.kind != "known") != (i in flipped))
        out.append((student_prompt(f.question), ABSTAIN if says_idk else f.answer))
    return out


def near_miss(text: str, rng: np.random.Generator) -> str:
    """`text` with one character substituted, dropped or inserted (a hard 'different' case)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = int(rng.integers(len(text))) if text else 0
    op = int(rng.integers(3)) if len(text) > 1 else 2
    c = letters[rng.integers(len(letters))]
    if op == 0:
        c = c if c != text[i].lower() else letters[(letters.index(c) + 1) % 26]
        out = text[:i] + (c.upper() if text[i].isupper() else c) + text[i + 1:]
    elif op == 1:
        out = text[:i] + text[i + 1:]
    else:
        out = text[:i] + c + text[i:]
    return out if normalise(out) != normalise(text) else out + "x"


def surface_variant(text: str, rng: np.random.Generator) -> str:
    """`text` as a person might write the same answer: lower case, spacing, a full stop, an article."""
    forms = [text, text, text.lower(), f"{text}.", f" {text} ", f"the {text}", f"The {text}."]
    return forms[int(rng.integers(len(forms)))]

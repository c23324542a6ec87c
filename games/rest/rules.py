"""Rules of rest-v0: a toy translation task, its reward, and ReST's data filter.

Pure functions: no I/O, no torch. Everything random takes an explicit
`numpy.random.Generator`.

**The language.** "Zorbish" sentences are subject-object-verb; a noun phrase is
an optional plural marker `ta`, a noun, and an optional adjective after it. The
English translation is subject-verb-object, adjectives go before the noun,
plurals take an `s`, and the verb agrees with the subject:

    ta tolo ru mira zan sima   ->   the red dogs see the big bird
    kuna vor gos dura          ->   the cat finds the old river

(`translate` is the rule-based translator; its output is the reference.) A model
must learn a 29-word lexicon, the reordering and the agreement.

**The original data D** stands in for human translations: a fraction `noise` of
them carry one mistake (`corrupt`: a dropped adjective, a wrong noun, wrong
agreement, swapped roles, a typo...), so D is good but not perfect, as human
data is. Rewards are always measured against the clean reference.

**The reward** is sacrebleu's chrF with word bigrams (`CHRF(word_order=2)`,
i.e. chrF++; plain chrF ignores whitespace, so "thereddogs" would score 100),
divided by 100: a number in [0, 1]. A learned reward model's raw score is
mapped to [0, 1] by `normalise`.

**ReST's data filter**: `thresholds` checks a rising schedule, `thresholds_above_mean`
sets one from D_g's rewards (above their mean, as the paper's rule asks), `keep` keeps the
pairs whose reward is strictly above τ, `cap_per_source` keeps at most K per
source (ReST-EM), `grow_dataset` builds D_g = samples ∪ D.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

# -- the language ------------------------------------------------------------------

NOUNS = {"tolo": "dog", "kuna": "cat", "mira": "bird", "fesh": "fish", "bara": "horse", "lin": "child",
         "doma": "house", "sel": "tree", "vor": "river", "pak": "stone", "nob": "farmer", "rai": "king"}
ADJECTIVES = {"ru": "red", "zan": "big", "eli": "small", "gos": "old", "nia": "happy", "tev": "green",
              "mur": "dark", "ost": "quick"}
VERBS = {"sima": "see", "kalo": "like", "dura": "find", "pem": "eat", "vuna": "follow", "hesa": "help",
         "garo": "want", "teli": "call", "bosk": "push"}
PLURAL = "ta"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class NounPhrase:
    noun: str
    adjective: str | None = None
    plural: bool = False

    def source(self) -> str:
        words = ([PLURAL] if self.plural else []) + [self.noun] + ([self.adjective] if self.adjective else [])
        return " ".join(words)

    def english(self) -> str:
        noun = NOUNS[self.noun] + ("s" if self.plural else "")
        return " ".join(["the"] + ([ADJECTIVES[self.adjective]] if self.adjective else []) + [noun])


@dataclass(frozen=True)
class Sentence:
    subject: NounPhrase
    verb: str
    object: NounPhrase

    def source(self) -> str:
        return f"{self.subject.source()} {self.object.source()} {self.verb}"

    def english(self) -> str:
        verb = VERBS[self.verb] + ("" if self.subject.plural else "s")
        return f"{self.subject.english()} {verb} {self.object.english()}"


def _noun_phrase(rng: np.random.Generator) -> NounPhrase:
    noun = list(NOUNS)[int(rng.integers(len(NOUNS)))]
    adjective = list(ADJECTIVES)[int(rng.integers(len(ADJECTIVES)))] if rng.random() < 0.5 else None
    return NounPhrase(noun, adjective, bool(rng.random() < 0.3))


def generate_sentence(rng: np.random.Generator) -> Sentence:
    return Sentence(_noun_phrase(rng), list(VERBS)[int(rng.integers(len(VERBS)))], _noun_phrase(rng))


def parse(source: str) -> Sentence | None:
    """The sentence a Zorbish source string spells, or None if it is not one."""
    words = source.split()
    phrases, i = [], 0
    for _ in range(2):
        plural = i < len(words) and words[i] == PLURAL
        i += plural
        if i >= len(words) or words[i] not in NOUNS:
            return None
        noun, i = words[i], i + 1
        adjective = words[i] if i < len(words) and words[i] in ADJECTIVES else None
        i += adjective is not None
        phrases.append(NounPhrase(noun, adjective, plural))
    if i != len(words) - 1 or words[i] not in VERBS:
        return None
    return Sentence(phrases[0], words[i], phrases[1])


def translate(source: str) -> str:
    """The rule-based translation (the reference); '' for a string that is not Zorbish."""
    sentence = parse(source)
    return sentence.english() if sentence else ""


def split_of(source: str) -> str:
    """Which split a source belongs to: a fixed function of the text, so splits never share a source."""
    h = sum((i + 1) * ord(c) for i, c in enumerate(source)) % 10
    return "test" if h == 0 else "valid" if h == 1 else "train"


def sources(split: str, n: int, seed: int) -> list[str]:
    """`n` distinct sources of `split`, drawn in a fixed order from `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    out: dict[str, None] = {}
    while len(out) < n:
        s = generate_sentence(rng).source()
        if split_of(s) == split:
            out.setdefault(s)
    return list(out)


# -- prompts -------------------------------------------------------------------------

def prompt(source: str) -> str:
    """What the policy reads: `<source> =`; its completion is ` <English>` (short: every
    character is a token the tiny model pays for in every training step)."""
    return f"{source} ="


def target(translation: str) -> str:
    """A translation as a training completion (the form the policy writes after `prompt`)."""
    return f" {translation}"


def completion(text: str) -> str:
    """The translation a completion gives: its first line, stripped."""
    return text.strip().split("\n", 1)[0].strip() if text else ""


def reward_prompt(source: str, translation: str) -> str:
    """What a learned reward model reads (reference-free, as in the paper)."""
    return f"{prompt(source)}{target(translation)}\n"


# -- the "human" data ----------------------------------------------------------------

CORRUPTIONS = ("drop_adjective", "wrong_noun", "agreement", "swap_roles", "article", "typo", "drop_word")


def corrupt(sentence: Sentence, rng: np.random.Generator) -> str:
    """The English of `sentence` with one translator's mistake."""
    kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
    s, v, o = sentence.subject, sentence.verb, sentence.object
    if kind == "drop_adjective" and (s.adjective or o.adjective):
        return (Sentence(NounPhrase(s.noun, None, s.plural), v, o) if s.adjective
                else Sentence(s, v, NounPhrase(o.noun, None, o.plural))).english()
    if kind == "wrong_noun":
        other = [n for n in NOUNS if n != o.noun][int(rng.integers(len(NOUNS) - 1))]
        return Sentence(s, v, NounPhrase(other, o.adjective, o.plural)).english()
    if kind == "swap_roles":
        return Sentence(o, v, s).english()
    words = sentence.english().split()
    if kind == "agreement":
        j = len(s.english().split())
        words[j] = VERBS[v] if not s.plural else VERBS[v] + "s"
    elif kind == "article":
        words[0] = "a"
    elif kind == "typo":
        j = int(rng.integers(len(words)))
        w = words[j]
        if len(w) > 2:
            k = int(rng.integers(len(w) - 1))
            words[j] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    else:  # drop_word (also the fallback when there is no adjective to drop)
        del words[int(rng.integers(1, len(words)))]
    return " ".join(words)


def human_translations(srcs: Sequence[str], noise: float, seed: int) -> list[str]:
    """The original data's targets: the reference, or with probability `noise` a flawed one."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for src in srcs:
        sentence = parse(src)
        flawed = rng.random() < noise
        out.append(corrupt(sentence, rng) if flawed else sentence.english())
    return out


# -- rewards ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=2)


def chrf(hypothesis: str, reference: str) -> float:
    """chrF++ of one hypothesis against one reference, in [0, 1]."""
    if not hypothesis or not reference:
        return float(hypothesis == reference)
    return _chrf().sentence_score(hypothesis, [reference]).score / 100.0


def normalise(score: float | None, mode: str = "clip") -> float:
    """A raw reward-model score to [0, 1]: `clip` (a model trained on [0, 1] targets) or `sigmoid`
    (a model trained on preferences). A missing/garbage score is 0."""
    if score is None or not math.isfinite(score):
        return 0.0
    if mode == "clip":
        return min(1.0, max(0.0, float(score)))
    if mode == "sigmoid":
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, float(score)))))
    raise ValueError(f"normalisation must be 'clip' or 'sigmoid', not {mode!r}")


def binary(reward: float, cut: float = 1.0) -> float:
    """ReST-EM's correct/incorrect reward: 1 when the normalised reward reaches `cut`."""
    return float(reward >= cut - 1e-9)


# -- ReST: D_g, thresholds, filter --------------------------------------------------

@dataclass(frozen=True)
class Scored:
    """One (x, y) pair of D_g with its reward, scored once."""

    source: str
    completion: str
    reward: float
    origin: str = "sample"
    """'sample' (from a Grow step) or 'data' (the original data D)."""


def grow_dataset(samples: Iterable[Scored], original: Iterable[Scored], include_original: bool = True) -> list[Scored]:
    """D_g = samples ∪ D (ReST), or the samples alone (ReST-EM)."""
    return [*samples, *(original if include_original else ())]


def thresholds(schedule: Sequence[float], steps: int | None = None) -> list[float]:
    """The first `steps` thresholds of a strictly rising schedule in [0, 1)."""
    taus = [float(t) for t in schedule][: len(schedule) if steps is None else steps]
    if steps is not None and steps > len(schedule):
        raise ValueError(f"{steps} Improve steps need {steps} thresholds; the schedule has {len(schedule)}")
    if any(not 0.0 <= t < 1.0 for t in taus):
        raise ValueError(f"thresholds must lie in [0, 1): {taus}")
    if any(b <= a for a, b in zip(taus, taus[1:])):
        raise ValueError(f"thresholds must rise strictly: {taus}")
    return taus


def thresholds_above_mean(rewards: Sequence[float], gaps: Sequence[float],
                          unfiltered_first: bool = True) -> list[float]:
    """ReST's thresholds for one Grow step, set from D_g's own rewards (docs/algorithms.md#rest: τ_1 > mean
    reward of D_g, τ_{i+1} > τ_i).

    With m = mean R over D_g and h = max R over D_g: τ_i = m + (h - m)·g_i for the rising gaps
    g_i in (0, 1), so every τ_i lies strictly above the mean and strictly below the best pair (each
    step keeps some pairs and drops some). `unfiltered_first` puts τ_0 = 0 before them: the paper's
    "I = 0" step, fine-tuning on D_g unfiltered.

    Deviation from the paper, on purpose: ReST picked τ from the fixed list
    [0.0, 0.7, 0.8, 0.9, 0.95, 0.99], all above its D_g mean (~0.7 on IWSLT). Here D_g's mean is
    ~0.95 (BC already translates most sources exactly), so that list sits *below* the mean and
    barely filters; the gaps keep the paper's rule (above the mean, rising) on this reward's scale.
    """
    r = np.asarray(list(rewards), dtype=float)
    if r.size == 0:
        raise ValueError("no rewards to set thresholds from")
    g = [float(x) for x in gaps]
    if any(not 0.0 < x < 1.0 for x in g) or any(b <= a for a, b in zip(g, g[1:])):
        raise ValueError(f"gaps must rise strictly inside (0, 1): {g}")
    m, h = float(r.mean()), float(r.max())
    taus = [m + (h - m) * x for x in g]
    return ([0.0] if unfiltered_first else []) + taus


def keep(pairs: Iterable[Scored], tau: float) -> list[Scored]:
    """The pairs with reward strictly above τ (the indicator 1{R(x, y) > τ})."""
    return [p for p in pairs if p.reward > tau]


def cap_per_source(pairs: Iterable[Scored], k: int, rng: np.random.Generator) -> list[Scored]:
    """At most `k` pairs per source, chosen at random (ReST-EM); order otherwise kept."""
    by_source: dict[str, list[int]] = {}
    pairs = list(pairs)
    for i, p in enumerate(pairs):
        by_source.setdefault(p.source, []).append(i)
    chosen: set[int] = set()
    for idx in by_source.values():
        chosen.update(idx if len(idx) <= k else rng.choice(idx, size=k, replace=False).tolist())
    return [p for i, p in enumerate(pairs) if i in chosen]


def best_of_n(rewards: Sequence[float], n: int, values: Sequence[float] | None = None) -> float:
    """E[value of the highest-reward sample among n drawn without replacement] (exact, not sampled).

    `values` defaults to the rewards themselves (the expected best reward); pass
    another metric to read it for the sample the reward picks. With the samples
    sorted by reward, the i-th lowest (1-based) is the pick of a random n-subset
    with probability C(i-1, n-1) / C(m, n); ties are broken by position.
    """
    m = len(rewards)
    if not 1 <= n <= m:
        raise ValueError(f"best of {n} needs 1 <= n <= {m}")
    values = rewards if values is None else values
    order = sorted(range(m), key=lambda j: float(rewards[j]))
    return sum(float(values[order[i - 1]]) * math.comb(i - 1, n - 1) for i in range(n, m + 1)) / math.comb(m, n)

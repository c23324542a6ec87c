"""ReST's Improve steps as a learner, and the evaluations its table and Best-of-N curve come from.

One engine round is one Grow step: the round's episodes are the N samples per
source, each already scored once by the env (`info["rewards"]`). `ReSTLearner.update`
then reads top to bottom:

1. (first round only) evaluate the behaviour-cloned policy: the table's `BC` row
   and its Best-of-N curve;
2. D_g = the samples ∪ the original data D (D scored once, on first use, with the
   same reward); ReST-EM: samples only, rewards made binary;
3. (ReST-EM) restart from the base model;
4. for each threshold τ_i of the rising schedule (fixed, or set from D_g's rewards:
   τ_0 = 0, then above D_g's mean reward) -- one Improve step: keep the
   pairs with R > τ_i (ReST-EM: at most K per source), minimise the filtered NLL
   on them, continuing from the previous step with the learning rate times
   `lr_decay`; evaluate on the validation and test sets;
5. keep the weights of the step with the best validation reward (they seed the
   next Grow step), and draw the Best-of-N curve of that policy.

The Improve steps are `agents.learners.FilteredNLLLearner`'s (`improve_step`,
`set_lr`, `BestWeights`); this learner adds what ReST's loop asks beyond them:
D_g, ReST-EM's cap per source, and a row of evaluations per step.

Every Improve step's row is kept in `history` (saved with the learner's
checkpoint, so a resumed run's table is whole), written to `<run>/rest/` as
`steps.csv`, `bon.csv` and `bon.png` after every round, and passed to `on_step`
as soon as it exists.
"""
from __future__ import annotations

import dataclasses
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from arena.types import Episode, Move
from games.rest import rules

HISTORY_FILE = "rest_history.json"


# -- rewards ------------------------------------------------------------------------

class Reward(Protocol):
    """R(x, y) for a batch, normalised to [0, 1]."""

    name: str

    def __call__(self, sources: Sequence[str], translations: Sequence[str]) -> np.ndarray: ...


class ChrfReward:
    """chrF++ against the rule-based reference (`rules.chrf`)."""

    name = "chrf"

    def __call__(self, sources: Sequence[str], translations: Sequence[str]) -> np.ndarray:
        return np.array([rules.chrf(y, rules.translate(x)) for x, y in zip(sources, translations)])


class ModelReward:
    """A learned reward model (an `agents.hf.ScorerAgent`) reading `rules.reward_prompt`."""

    name = "model"

    def __init__(self, scorer: Any, normalisation: str = "clip", batch: int = 256):
        self.scorer, self.normalisation, self.batch = scorer, normalisation, batch

    def __call__(self, sources: Sequence[str], translations: Sequence[str]) -> np.ndarray:
        texts = [rules.reward_prompt(x, y) for x, y in zip(sources, translations)]
        raw = np.concatenate([self.scorer.scores(texts[i:i + self.batch]).cpu().numpy()
                              for i in range(0, len(texts), self.batch)] or [np.zeros(0)])
        return np.array([rules.normalise(float(r), self.normalisation) for r in raw])


# -- evaluation ---------------------------------------------------------------------

@contextmanager
def decoding(agent: Any, **settings: Any) -> Iterator[None]:
    """Temporarily change a generator's sampling settings (no-op for agents without them)."""
    old = getattr(agent, "sampling", None)
    if old is not None:
        agent.sampling = dataclasses.replace(old, **settings)
    try:
        yield
    finally:
        if old is not None:
            agent.sampling = old


def translate_all(agent: Any, sources: Sequence[str], repeats: int = 1) -> list[str]:
    """The agent's translation of each source (`repeats` samples each, source-major), in one `act` call."""
    moves = agent.act([{"prompt": rules.prompt(s), "source": s, "completion": "", "reference": ""}
                       for s in sources for _ in range(repeats)])
    actions = [m.action if isinstance(m, Move) else m for m in moves]
    return [rules.completion(a) if isinstance(a, str) else "" for a in actions]


@dataclass
class Evaluation:
    """The evaluation sets and how they are decoded."""

    reward: Reward
    valid: Sequence[str]
    """Sources that pick the best Improve step."""
    test: Sequence[str]
    """Sources the table reports."""
    bon_sources: Sequence[str]
    """Sources of the Best-of-N curve (a prefix of the test set)."""
    bon_max: int = 32
    """Largest N of the curve (N = 1, 2, 4, ..., bon_max)."""
    temperature: float = 0.8
    """Sampling temperature of the Best-of-N samples (the Grow step's)."""
    seed: int = 0

    def greedy(self, agent: Any, sources: Sequence[str]) -> dict[str, float]:
        """Greedy translations of `sources`: mean R, chrF, exact-match rate, length."""
        with decoding(agent, temperature=0.0):
            ys = translate_all(agent, sources)
        refs = [rules.translate(s) for s in sources]
        return {"reward": float(np.mean(self.reward(sources, ys))),
                "chrf": float(np.mean([rules.chrf(y, r) for y, r in zip(ys, refs)])),
                "exact": float(np.mean([y == r for y, r in zip(ys, refs)])),
                "length": float(np.mean([len(y) for y in ys]))}

    def step(self, agent: Any) -> dict[str, float]:
        """The numbers one Improve step is judged by."""
        valid, test = self.greedy(agent, self.valid), self.greedy(agent, self.test)
        return {"valid": valid["reward"], "test": test["reward"], "test_chrf": test["chrf"],
                "test_exact": test["exact"], "test_length": test["length"]}

    def best_of_n(self, agent: Any) -> list[dict[str, float]]:
        """Best-of-N curve: for N = 1, 2, 4, ..., the expected R (and chrF) of the sample R ranks first."""
        agent.reset(self.seed)
        with decoding(agent, temperature=self.temperature):
            ys = translate_all(agent, self.bon_sources, self.bon_max)
        m = self.bon_max
        srcs = [s for s in self.bon_sources for _ in range(m)]
        r = self.reward(srcs, ys).reshape(len(self.bon_sources), m)
        c = np.array([rules.chrf(y, rules.translate(s)) for s, y in zip(srcs, ys)]).reshape(r.shape)
        curve, n = [], 1
        while n <= m:
            curve.append({"n": n, "reward": float(np.mean([rules.best_of_n(r[i], n) for i in range(len(r))])),
                          "chrf": float(np.mean([rules.best_of_n(r[i], n, c[i]) for i in range(len(r))]))})
            n *= 2
        return curve


# -- the learner --------------------------------------------------------------------

@dataclass(kw_only=True)
class ReSTLearner:
    """Improve steps on the Grow step that the engine's round just played (docs/algorithms.md#rest)."""

    original: Sequence[tuple[str, str]]
    """D: (source, translation) pairs; mixed into every D_g. Empty for ReST-EM."""
    reward: Reward
    """R, used once on D (the samples were scored by the env)."""
    evaluation: Evaluation
    thresholds: Sequence[float] = (0.0, 0.7, 0.8, 0.9, 0.95)
    """τ_0 < τ_1 < ...: one Improve step each (a fixed schedule; used when `gaps` is empty)."""
    gaps: Sequence[float] = ()
    """When set: each Grow step's thresholds come from D_g's rewards, τ_0 = 0 then
    τ_i = mean + (max - mean)·g_i (`rules.thresholds_above_mean`), one Improve step each."""
    lr: float = 1e-3
    """Learning rate of the first Improve step of each Grow step."""
    lr_decay: float = 0.5
    """Each Improve step's learning rate is the previous one's times this."""
    epochs: int = 1
    """Passes over the kept pairs per Improve step."""
    batch_size: int = 32
    keep_best: bool = True
    """Seed the next Grow step with the Improve step that scored best on the validation set."""
    binary_cut: float | None = None
    """ReST-EM: R becomes 1{R >= cut} (correct / not)."""
    cap: int = 0
    """ReST-EM: at most this many kept pairs per source (0: no cap)."""
    restart_from: str | None = None
    """ReST-EM: directory of the base model every Grow step restarts fine-tuning from."""
    out_dir: Path | None = None
    """Where `steps.csv`, `bon.csv` and `bon.png` are written (the run's `rest/`)."""
    on_step: Callable[[dict[str, Any]], None] | None = None
    """Called with each Improve step's row as soon as it is evaluated (live views)."""
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    """Set by the trainer: one line per Improve step for the live view (`arena.types.Learner`)."""
    history: dict[str, Any] = field(default_factory=lambda: {"steps": [], "bon": {}})
    improver: Any = field(init=False, repr=False)
    """`agents.learners.FilteredNLLLearner` built from the fields above: the Improve steps, and the
    generator that draws ReST-EM's caps and shuffles the micro-batches."""
    _data: list[rules.Scored] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from agents.learners import FilteredNLLLearner, Optimization

        self.improver = FilteredNLLLearner(
            thresholds=rules.thresholds(self.thresholds), lr_decay=self.lr_decay,
            opt=Optimization(lr=self.lr, batch_size=self.batch_size, epochs=self.epochs))

    # -- Learner protocol and checkpoints
    def reset(self, seed: int) -> None:
        self.improver.reset(seed)

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / HISTORY_FILE).write_text(json.dumps(self.history, indent=1))

    def load(self, directory: Path) -> None:
        path = Path(directory) / HISTORY_FILE
        if path.is_file():
            self.history = json.loads(path.read_text())

    # -- data
    def scored_original(self) -> list[rules.Scored]:
        """D with its rewards, computed once."""
        if self._data is None:
            srcs, ys = [s for s, _ in self.original], [y for _, y in self.original]
            r = self.reward(srcs, ys) if srcs else []
            self._data = [rules.Scored(s, y, float(v), "data") for s, y, v in zip(srcs, ys, r)]
        return self._data

    @staticmethod
    def samples(episodes: Sequence[Episode]) -> list[rules.Scored]:
        """The Grow step's samples with the rewards the env gave them."""
        out = []
        for ep in episodes:
            info = ep.info.get("policy", {})
            for y, r, ok in zip(info.get("completions", []), info.get("rewards", []), info.get("valid", [])):
                if ok and y:
                    out.append(rules.Scored(info["source"], y, float(r), "sample"))
        return out

    # -- the algorithm
    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        from agents.learners import BestWeights

        steps, grow = self.history["steps"], 1 + max((s["grow"] for s in self.history["steps"]), default=0)
        self.history.update(reward=self.reward.name, variant="em" if self.binary_cut is not None else "rest")
        if not steps:  # the policy that played round 0 is the behaviour-cloned one
            self._record({"grow": 0, "improve": -1, "label": "BC", **self.evaluation.step(agent)})
            self.history["bon"]["BC"] = self.evaluation.best_of_n(agent)
        samples = self.samples(episodes)
        dg = rules.grow_dataset(samples, self.scored_original(), include_original=bool(self.original))
        if self.binary_cut is not None:
            dg = [dataclasses.replace(p, reward=rules.binary(p.reward, self.binary_cut)) for p in dg]
        if self.restart_from:
            from agents.hf import load_weights_in_place

            load_weights_in_place(agent.model, Path(self.restart_from))
        improver = self.improver
        optimizer = improver.optimizer_for(agent.model, improver.opt)  # fresh each Grow step
        np_rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=improver.rng)))
        best = BestWeights()  # one CPU copy of the best step's weights
        rows = []
        dg_rewards = [p.reward for p in dg]
        dg_mean = float(np.mean(dg_rewards)) if dg else math.nan
        if self.gaps and dg:
            # τ_0 = 0 (fine-tune on D_g unfiltered: the paper's "G=1, I=0" row) in the first Grow step
            # only; later Grow steps filter from their first step on (τ_1 > mean), numbered I1, I2, ...
            taus = rules.thresholds_above_mean(dg_rewards, self.gaps, unfiltered_first=grow == 1)
            first = 0 if grow == 1 else 1
        else:
            taus, first = improver.thresholds, 0
        for i, tau in enumerate(taus):
            kept = rules.keep(dg, tau)
            if self.cap:
                kept = rules.cap_per_source(kept, self.cap, np_rng)
            if self.progress:
                self.progress(f"Improve {i + 1}/{len(taus)}: tau={tau:g}, {len(kept)} of {len(dg)} pairs")
            lr = improver.set_lr(optimizer, i)
            triples = [(rules.prompt(p.source), rules.target(p.completion), p.reward) for p in kept]
            fitted = improver.improve_step(agent, optimizer, triples, tau, len(dg)) if kept else {}
            row = {"grow": grow, "improve": first + i, "label": f"G{grow} I{first + i}", "tau": tau,
                   "dg_mean": dg_mean, "lr": lr, "pairs": len(kept), "kept": len(kept) / max(1, len(dg)),
                   "from_data": sum(p.origin == "data" for p in kept),
                   "length": float(np.mean([len(p.completion) for p in kept])) if kept else 0.0,
                   "loss": fitted.get("loss", math.nan), **self.evaluation.step(agent)}
            rows.append(self._record(row))
            if self.keep_best:
                best.offer(agent.model, row["valid"], i)
        best.restore(agent.model)
        chosen = first + (best.step if best.step is not None else len(rows) - 1)
        for row in rows:
            row["seeds_next"] = row["improve"] == chosen
        self.history["bon"][f"G{grow}"] = self.evaluation.best_of_n(agent)
        self.write_files()
        return self.metrics(samples, dg, rows, chosen)

    # -- reporting
    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        self.history["steps"].append(row)
        if self.on_step is not None:
            self.on_step(dict(row))
        return row

    def metrics(self, samples: list[rules.Scored], dg: list[rules.Scored], rows: list[dict[str, Any]],
                chosen: int) -> dict[str, float]:
        """What the round summary shows: D_g, then per Improve step test reward, kept fraction, pairs, length."""
        out: dict[str, float] = {"samples_R": float(np.mean([p.reward for p in samples])) if samples else 0.0,
                                 "Dg": float(len(dg)), "Dg_R": float(np.mean([p.reward for p in dg])) if dg else 0.0}
        bc = [s for s in self.history["steps"] if s["label"] == "BC"]
        if bc and rows and rows[0]["grow"] == 1:
            out["BC"] = bc[0]["test"]
        for row in rows:
            i = row["improve"]
            out.update({f"I{i}.R": row["test"], f"I{i}.kept": row["kept"], f"I{i}.pairs": float(row["pairs"]),
                        f"I{i}.len": row["length"]})
        out["best_I"] = float(chosen)
        return out

    def write_files(self) -> None:
        if self.out_dir is None:
            return
        from games.rest.report import write_outputs

        write_outputs(self.history, Path(self.out_dir))

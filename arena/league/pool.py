"""A run's league: the pool of opponents, its meta-game, and the round hook the trainer calls.

`arena train --opponents SEAT=RULE` (`TrainConfig.opponents`) makes SEAT the learner of a
two-seat symmetric game (`GameInfo.symmetric_seats`); the other seat is played, episode by
episode, by a member of the pool drawn with the rule's weights (`arena.league.meta.meta_weights`).

The pool, in order: the fixed agents (`--pool SPEC`, never trained), `init` (the learner's spec
as built, before any update), then the learner's checkpoint of every completed round (`r<k>`).
After round k the new checkpoint joins the pool; under `pfsp` and `nash` it plays every member
(`league_episodes` episodes each way, seeded by the pair's labels) to fill the meta-game:
`payoff[i][j]` is the mean of (r_learner - r_opponent) / 2 with member i in the learner's seat
and j in the opponent's, `win[i][j]` the chance i beats j (draws count half). The next round's
weights follow from them. Each round's summary holds the whole league state (members, matrices,
the weights the round used and the next round's; with `--exploiters`, the NashConv their best
responses to the round's checkpoint give, `arena.league.exploiter`), so a resumed run reads it back from its last
completed round and continues exactly. Round k's draw of opponents is
`multinomial(episodes, weights)` from a generator seeded by (run seed, round k), played in
contiguous blocks of episode indices (member 0's first), so its transcripts do not depend on a
resume; each episode's info for the opponent's seat names the member (`opponent`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from arena.checkpoints import checkpoint_dir
from arena.gameinfo import GameInfo
from arena.league.meta import META_RULES, RULES, meta_weights
from arena.registry import load_attr
from arena.runner import PlayStats, play
from arena.seeding import derive
from arena.specs import AgentContext, build_agent, load_checkpoint_agent
from arena.types import ArenaError, Episode


def league_seats(opponents: dict[str, str], seats: list[str], info: GameInfo) -> tuple[str, str, str]:
    """(learner seat, opponent seat, rule) from `--opponents`; one line for a game or a value it cannot take."""
    if len(opponents) != 1:
        raise ArenaError("--opponents takes one SEAT=RULE (the learner's seat)")
    (seat, rule), = opponents.items()
    if rule not in RULES:
        raise ArenaError(f"--opponents {seat}={rule}: unknown rule; rules: {', '.join(RULES)}")
    if len(seats) != 2 or sorted(info.symmetric_seats) != sorted(seats):
        raise ArenaError("--opponents needs a two-seat game whose seats are symmetric (GameInfo.symmetric_seats)")
    if seat not in seats:
        raise ArenaError(f"--opponents {seat}=...: unknown seat; seats: {', '.join(seats)}")
    return seat, next(s for s in seats if s != seat), rule


class League:
    """The pool and meta-game of one run (`arena.selfplay.Trainer` calls it when `--opponents` is set)."""

    def __init__(self, cfg: Any, gspec: Any, setup: Any, run_dir: Path, runs_dir: Path):
        self.cfg, self.gspec, self.run_dir, self.runs_dir = cfg, gspec, Path(run_dir), Path(runs_dir)
        if cfg.workers:
            raise ArenaError("--opponents plays its rounds in this process: leave out --workers")
        info = GameInfo.of(gspec.load())
        self.learner, self.opponent, self.rule = league_seats(dict(cfg.opponents), list(setup.seats), info)
        self.env_kwargs = dict(setup.env_kwargs)
        self.exploit_fn: Callable | None = load_attr(info.exploitability) if info.exploitability else None
        self.members: list[dict[str, str]] = [{"label": f"fixed{i}", "spec": s} for i, s in enumerate(cfg.pool)]
        self.members.append({"label": "init", "spec": setup.seats[self.learner].spec})
        self.agents: dict[tuple[str, str], Any] = {}
        for m in self.members:  # a bad --pool spec is refused before any round
            self.agent(m, self.opponent)
        self.payoff: list[list[float]] = []
        self.win: list[list[float]] = []
        self.weights: list[float] = []
        self.started = False

    # -- members -------------------------------------------------------------------------
    def agent(self, member: dict[str, str], seat: str) -> Any:
        key = (member["label"], seat)
        if key not in self.agents:
            ctx = AgentContext.for_seat(self.gspec, seat, self.runs_dir, self.cfg.device, **self.env_kwargs)
            if "checkpoint" in member:
                self.agents[key] = load_checkpoint_agent(self.run_dir / member["checkpoint"], ctx)
            else:
                self.agents[key] = build_agent(member["spec"], ctx)
        return self.agents[key]

    def env_fn(self):
        return self.gspec.make(**self.env_kwargs)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"rule": self.rule, "learner": self.learner, "opponent": self.opponent,
                "members": [dict(m) for m in self.members], "payoff": self.payoff, "win": self.win,
                "weights": list(self.weights)}

    def load(self, state: dict[str, Any]) -> None:
        """The league as a completed round's summary left it (`summary["league"]`)."""
        if not isinstance(state, dict) or state.get("rule") != self.rule or \
                not isinstance(state.get("members"), list) or len(state.get("weights", [])) != len(state["members"]):
            raise ArenaError("the run's last round holds no league state for these --opponents")
        self.members = [{str(k): str(v) for k, v in m.items()} for m in state["members"]]
        self.payoff = [[float(v) for v in row] for row in state.get("payoff", [])]
        self.win = [[float(v) for v in row] for row in state.get("win", [])]
        self.weights = [float(w) for w in state["weights"]]
        self.started = True

    def start(self) -> None:
        """The league before round 0: the meta-game of the fixed agents and `init`, and its weights."""
        n = len(self.members)
        self.payoff, self.win = [[0.0] * n for _ in range(n)], [[0.5] * n for _ in range(n)]
        if self.rule in META_RULES:
            for i in range(n):
                for j in range(n):
                    self.payoff[i][j], self.win[i][j] = self.match(i, j)
        self.weights = self.next_weights()
        self.started = True

    # -- the meta-game -------------------------------------------------------------------
    def match(self, i: int, j: int) -> tuple[float, float]:
        """(payoff, win probability) of member i in the learner's seat against member j."""
        a, b = self.members[i], self.members[j]
        seed = derive(self.cfg.seed, "league", a["label"], b["label"])
        seats = {self.learner: self.agent(a, self.learner), self.opponent: self.agent(b, self.opponent)}
        for s, ag in seats.items():
            ag.reset(derive(seed, s))
        eps, _ = play(self.env_fn, seats, self.cfg.league_episodes, concurrency=self.cfg.concurrency, seed=seed)
        diff = np.array([ep.rewards[self.learner] - ep.rewards[self.opponent] for ep in eps])
        return float(diff.mean() / 2), float(((diff > 0) + 0.5 * (diff == 0)).mean())

    def next_weights(self) -> list[float]:
        n = len(self.members)
        latest = n - 1  # the newest checkpoint (init before the first)
        w = meta_weights(self.rule, n, latest=latest, payoff=np.array(self.payoff), win_prob=self.win[latest],
                         power=self.cfg.pfsp_power)
        return [float(v) for v in w]

    def add_checkpoint(self, k: int) -> None:
        """Round k's checkpoint of the learner joins the pool; the meta-game and weights follow."""
        path = checkpoint_dir(self.run_dir, self.learner, k).relative_to(self.run_dir)
        self.members.append({"label": f"r{k}", "checkpoint": str(path)})
        n = len(self.members)
        for row in self.payoff:
            row.append(0.0)
        for row in self.win:
            row.append(0.5)
        self.payoff.append([0.0] * n)
        self.win.append([0.5] * n)
        if self.rule in META_RULES:
            for j in range(n):
                self.payoff[n - 1][j], self.win[n - 1][j] = self.match(n - 1, j)
                if j < n - 1:
                    self.payoff[j][n - 1], self.win[j][n - 1] = self.match(j, n - 1)
        self.weights = self.next_weights()

    # -- a round -------------------------------------------------------------------------
    def play_round(self, k: int, learner_agent: Any, on_episode: Callable[[Episode], None]
                   ) -> tuple[list[Episode], PlayStats, list[int]]:
        """Round k's episodes: the learner against members drawn by the weights; (episodes, stats, counts)."""
        if not self.started:
            self.start()
        rng = np.random.default_rng(derive(self.cfg.seed, "round", k, "pool"))
        counts = [int(c) for c in rng.multinomial(self.cfg.episodes, np.array(self.weights) / sum(self.weights))]
        episodes, stats, first = [], PlayStats(), 0
        for m, c in zip(self.members, counts):
            if not c:
                continue
            opp = self.agent(m, self.opponent)
            opp.reset(derive(self.cfg.seed, "round", k, "pool", m["label"]))

            def tagged(ep: Episode, label: str = m["label"]) -> None:
                ep.info.setdefault(self.opponent, {})["opponent"] = label
                on_episode(ep)

            eps, st = play(self.env_fn, {self.learner: learner_agent, self.opponent: opp}, c,
                           concurrency=self.cfg.concurrency, seed=derive(self.cfg.seed, "round", k),
                           on_episode=tagged, first_index=first, round=k)
            first += c
            episodes += eps
            stats.wall_s += st.wall_s
            stats.completion_tokens += st.completion_tokens
            stats.episodes += st.episodes
            for seat, t in st.act_s.items():
                stats.act_s[seat] += t
        return episodes, stats, counts

    def after_round(self, k: int, learner_agent: Any, counts: list[int]) -> dict[str, Any]:
        """After round k's checkpoints are written: the pool grows; what the round summary holds."""
        used = list(self.weights)
        self.add_checkpoint(k)
        out = {**self.state(), "used_weights": used, "counts": counts}
        if self.exploit_fn is not None:
            out["exploitability"] = float(self.exploit_fn([learner_agent], [1.0]))
            mix = [self.agent(m, self.opponent) for m in self.members]
            out["meta_exploitability"] = float(self.exploit_fn(mix, self.weights))
        if self.cfg.exploiters:
            out["exploiters"] = self.exploiters(k)
            out["exploiter_nash_conv"] = out["exploiters"]["nash_conv"]
        return out

    def exploiters(self, k: int) -> dict[str, Any]:
        """`--exploiters`: best responses to round k's learner checkpoint (`arena attack --best-response`,
        stored under `<run>/attacks/exploiters/`), their NashConv estimate with its interval."""
        from arena.attack import AttackConfig, run_attack
        from arena.league.exploiter import BUILD, exploitability

        acfg = AttackConfig(run=str(self.run_dir), seat=self.learner, rounds=[k], seeds=self.cfg.exploiters,
                            budget=self.cfg.exploiter_steps, full=True, name="exploiters", seed=self.cfg.seed,
                            device=self.cfg.device, attack=BUILD, game=self.cfg.game,
                            options={"episodes": str(self.cfg.exploiter_episodes)},
                            workers=1)  # in this process: a round's few short units do not pay for new processes
        result = run_attack(acfg, self.runs_dir, targets={k: checkpoint_dir(self.run_dir, self.learner, k)})
        return exploitability(result.units, acfg.budget, self.cfg.seed)

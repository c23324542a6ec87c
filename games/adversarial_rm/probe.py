"""The adversarial-RM recipes' measurement: `RoundProbe`, wrapped around every recipe's policy learner.

On the round's own episodes, i.e. for the policy that played the round, before it
is updated, it measures KL(π‖π_ref) (k1 on the sampled tokens), the proxy's score
of the policy's answers, log π(chosen|x) on a fixed set of chosen answers, the
implicit reward's pairwise accuracy on held-out pairs, and the gold win rate
against the reference policy's (round 0) answers. They appear in the round
summary under `losses.policy`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from arena.types import Episode
from games.adversarial_rm import rules
from games.adversarial_rm.env import rm_input
from games.adversarial_rm.prepare import pair_accuracy


@dataclass(kw_only=True)
class RoundProbe:
    """Wraps the policy's learner: measures the policy that played the round, then updates it.

    Metrics (all for the pre-update policy of this round):
    `kl` = mean Σ_t [log π − log π_ref] over the sampled answers (unbiased for KL(π‖π_ref) at temperature 1);
    `proxy` / `proxy_margin` = the frozen proxy's score of the policy's answers (minus the chosen answers');
    `chosen_logp` = mean log π(chosen|x) over `chosen`; `implicit_accuracy` (and `implicit_gold_accuracy`) =
    how often β·log(π/π_ref) ranks a held-out pair as its label (gold) does; `gold_win_rate_vs_ref` =
    P(gold of an answer now > gold of a round-0 answer) + ties/2 (prompts are exchangeable in the task).
    """

    inner: Any
    reference: Any
    proxy: Any
    chosen: Sequence[tuple[str, str]]
    heldout: Sequence[rules.Pair]
    beta: float
    batch_size: int = 64
    seat: str = "policy"
    reference_golds: list[float] | None = field(default=None)

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if callable(getattr(self.inner, "save", None)):
            self.inner.save(directory)
        (directory / "probe.json").write_text(json.dumps({"reference_golds": self.reference_golds}))

    def load(self, directory: Path) -> None:
        if callable(getattr(self.inner, "load", None)):
            self.inner.load(directory)
        self.reference_golds = json.loads((Path(directory) / "probe.json").read_text())["reference_golds"]

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        measured = self.measure(agent, episodes)
        return {**self.inner.update(agent, episodes), **measured}

    def measure(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        import torch

        from agents.batch import batch_from_token_ids, completion_logprobs, encode_pairs, pad_id_of
        from agents.learners import prompt_encoder, read_implicit_reward
        from agents.losses import masked_sum

        out: dict[str, float] = {}
        moves = [s for e in episodes for s in e.moves(self.seat) if "completion_ids" in s.extras]
        infos = [e.info.get(self.seat, {}) for e in episodes]
        kls = []
        with torch.inference_mode():
            for i in range(0, len(moves), self.batch_size):
                chunk = moves[i:i + self.batch_size]
                batch = batch_from_token_ids([s.extras["prompt_ids"] for s in chunk],
                                             [s.extras["completion_ids"] for s in chunk], pad_id_of(agent.tokenizer))
                pi = masked_sum(*completion_logprobs(agent.model, batch))
                ref = masked_sum(*completion_logprobs(self.reference, batch))
                kls.append((pi - ref.to(pi.device)).cpu())
            if kls:
                out["kl"] = float(torch.cat(kls).mean())
            answered = [i for i in infos if "answer" in i]
            if answered and self.proxy is not None:
                r1 = self.proxy.scores([rm_input(i["prompt"], i["answer"]) for i in answered]).cpu().numpy()
                r0 = self.proxy.scores([rm_input(i["prompt"], i["baseline"]) for i in answered]).cpu().numpy()
                out["proxy"], out["proxy_margin"] = float(r1.mean()), float((r1 - r0).mean())
            encode = prompt_encoder(agent)
            logps = []
            for i in range(0, len(self.chosen), self.batch_size):
                part = self.chosen[i:i + self.batch_size]
                batch = encode_pairs(agent.tokenizer, [q for q, _ in part], [c for _, c in part], encode_prompt=encode)
                logps.append(masked_sum(*completion_logprobs(agent.model, batch)).cpu())
            if logps:
                out["chosen_logp"] = float(torch.cat(logps).mean())
        if self.heldout:
            prompts = [q.prompt for q in self.heldout]
            rc = read_implicit_reward(agent, self.reference, prompts, [q.chosen for q in self.heldout], self.beta)
            rr = read_implicit_reward(agent, self.reference, prompts, [q.rejected for q in self.heldout], self.beta)
            acc = pair_accuracy(rc.cpu().numpy(), rr.cpu().numpy(), self.heldout)
            out["implicit_accuracy"] = acc["label_accuracy"]
            if "gold_accuracy" in acc:
                out["implicit_gold_accuracy"] = acc["gold_accuracy"]
        golds = [float(i["gold"]) for i in infos if i.get("gold") is not None]
        if golds:
            if self.reference_golds is None:
                self.reference_golds = golds
            out["gold_win_rate_vs_ref"] = rules.prob_superiority(golds, self.reference_golds)
        return out


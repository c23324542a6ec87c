"""Learners: one dataclass per method, each `update(agent, episodes) -> metrics`.

Every `update` reads top to bottom, in the same three moves:

1. this round's data (given by the recipe, or derived from the episodes);
2. whatever is constant during the update, computed once (the frozen reference
   model's log-probs, policy-gradient advantages over the whole round);
3. `fit(...)`: epochs of shuffled micro-batches, each micro-batch a call to a
   named loss from `agents.losses`, each group of `grad_accum_steps`
   micro-batches one `optimizer_step`.

A learner is configured entirely by its constructor. Where a recipe computes a
round's data itself (a mixture over rounds, freshly sampled and scored batches),
it hands that data to an explicit method instead of `update`:
`VerifierLearner.fit_solutions(agent, solutions)`,
`PolicyGradientLearner.fit_rewards(agent, episodes, rewards)`,
`FilteredNLLLearner.improve_step(agent, optimizer, kept, tau, n_all)`.

| module | its one job |
|---|---|
| `fitting` | the shared fitting loop: `Optimization`, `fit`, micro-batching, accelerate, `LearnerState` |
| `likelihood` | NLL of chosen completions: `SFTLearner`, `FilteredNLLLearner` (ReST's Improve steps) |
| `preference` | pairs: `DPOLearner` (DPO/RPO), `BradleyTerryLearner`, `VerifierLearner` |
| `policy_gradient` | `PolicyGradientLearner`: REINFORCE with RLOO/GRPO baselines and a KL penalty |
"""
from agents.learners.fitting import (Data, LearnerState, LossOutput, Optimization, fit, freeze,
                                     frozen_logprobs, make_accelerator, make_optimizer, optimizer_step,
                                     plan_steps, prompt_encoder, reference_policy, resolve, resolve_mixed_precision,
                                     trainable_parameters, training_mode)
from agents.learners.likelihood import BestWeights, FilteredNLLLearner, SFTLearner
from agents.learners.policy_gradient import PolicyGradientLearner, completion_rows, pad_rows
from agents.learners.preference import (BradleyTerryLearner, DPOLearner, VerifierLearner,
                                        read_implicit_reward)

__all__ = [
    "BestWeights", "BradleyTerryLearner", "DPOLearner", "Data", "FilteredNLLLearner", "LearnerState", "LossOutput",
    "Optimization", "PolicyGradientLearner", "SFTLearner", "VerifierLearner", "completion_rows", "fit",
    "freeze", "frozen_logprobs", "make_accelerator", "make_optimizer", "optimizer_step", "pad_rows",
    "plan_steps", "prompt_encoder", "read_implicit_reward", "reference_policy", "resolve", "resolve_mixed_precision",
    "trainable_parameters", "training_mode",
]

"""abstain-v0: answer or abstain -- SFT against RL with negative feedback on a fact base the base model partly knows."""

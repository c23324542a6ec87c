"""Games: one sub-package per game (pure rules + a thin PettingZoo env + its recipes)."""

"""ultimatum-v0: a tiny bargaining game written from scratch (rules, env, bots, recipe)."""

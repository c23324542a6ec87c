"""League self-play: opponents drawn from a pool of checkpoints (and fixed agents) by a rule.

`meta.py` is the pure meta-game (Nash of a zero-sum matrix game, NashConv, PFSP weights);
`pool.py` is a run's pool, its meta-game and the round hook the trainer calls (`League`).
"""

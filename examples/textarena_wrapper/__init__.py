"""textarena-v0: TextArena's two-player games (TicTacToe-v0 by default) played through the engine.

Needs the optional extra: `pip install -e ".[textarena]"` (or `pip install textarena`)."""

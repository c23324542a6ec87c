"""Worked examples: a trainable game written from scratch (`ultimatum`) and a wrapper that plays
TextArena's two-player games through the engine (`textarena_wrapper`). See docs/adding-a-game.md."""

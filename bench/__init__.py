"""`arena bench`: the engine's batched runner against a naive one-`generate`-per-move loop.

A command, not an agent: it builds agents (`agents.hf`, `agents.tiny`) and plays
games through `arena.runner`; `bench.command.main(argv)` is the entry point.
"""

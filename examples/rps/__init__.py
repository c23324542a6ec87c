"""rps-v0: rock-paper-scissors with text moves, the non-transitive game of docs/league.md."""

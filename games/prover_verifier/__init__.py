"""Prover-verifier game (Kirchner et al. 2024): see `games.prover_verifier.env`."""

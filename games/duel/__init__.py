"""Duel game: two policies answer the same prompt; a judge decides. See `games.duel.env`."""

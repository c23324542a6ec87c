"""rest-v0: ReST's Grow/Improve self-training on a toy translation task (`env`, `rules`, `recipe`)."""

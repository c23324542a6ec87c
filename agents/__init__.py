"""Agents (LLM generators and scorers, scripted bots, a human) and learners."""

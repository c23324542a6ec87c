import os
import sys
from pathlib import Path

import pytest
import torch

# Two cores shared by many processes: torch's default thread pool spins while it
# waits; one thread makes the model tests ~10x faster here.
torch.set_num_threads(1)

EXTERNAL = Path(__file__).parent / "external"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run (CLI commands, training rounds, several processes, "
                            "every docs page), about a second or more on a shared 2-core CPU; `make test-quick` "
                            "skips them (-m 'not slow'), `make test` runs them")


@pytest.fixture
def external_game_path(monkeypatch):
    """Put the out-of-repo game (tests/external) on sys.path, as a user's own package would be."""
    monkeypatch.syspath_prepend(str(EXTERNAL))
    return EXTERNAL


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory) -> Path:
    """A runs dir holding `toy`: sums-v0 (tests/study_toy.py) trained 3 rounds by its scripted recipe,
    writer checkpoints round-0..2 of rising skill (the legibility-study tests' run)."""
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run

    base = tmp_path_factory.mktemp("runs")
    trainer = new_run(TrainConfig(game="study_toy:SumsEnv", rounds=3, episodes=4, concurrency=4, run="toy"), base)
    trainer.run(trainer.restore())
    return base


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs dir, also for subprocesses (ARENA_RUNS_DIR)."""
    d = tmp_path / "runs"
    monkeypatch.setenv("ARENA_RUNS_DIR", str(d))
    return d


def arena_cmd() -> list[str]:
    return [sys.executable, "-m", "arena.cli"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tiny():
    """A tiny random causal LM and its tokenizer (tests/hf_tiny.py's shape)."""
    from hf_tiny import SMALL

    from agents.tiny import new_tiny_causal_lm
    return new_tiny_causal_lm(seed=0, init_std=0.3, **SMALL)


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory):
    """`tiny` saved as a generator checkpoint."""
    from agents.hf import GeneratorAgent, SamplingConfig
    path = tmp_path_factory.mktemp("tiny-gen")
    GeneratorAgent(*tiny, SamplingConfig(max_new_tokens=9, top_k=5)).save(path)
    return path


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory):
    """A tiny random scorer checkpoint."""
    from hf_tiny import SMALL

    from agents.hf import ScorerAgent
    from agents.tiny import new_tiny_scorer
    path = tmp_path_factory.mktemp("tiny-scorer")
    model, tok = new_tiny_scorer(seed=1, init_std=0.3, **SMALL)
    ScorerAgent(model, tok).save(path)
    return path

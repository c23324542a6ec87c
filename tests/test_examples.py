"""The worked examples of docs/adding-a-game.md, run command by command (a game named by import
path: `arena play <run> --game module:Class`), and the refusal of a game that is not one."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from arena.cli import main
from arena.store import RunStore
from arena.testing import check_game
from test_cli import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
ULTIMATUM = "examples.ultimatum.env:UltimatumEnv"
HAS_TEXTARENA = importlib.util.find_spec("textarena") is not None
NO_TEXTARENA = "TextArena is an optional extra: pip install -e '.[textarena]'"


@pytest.fixture
def repo_path(monkeypatch):
    """`PYTHONPATH=.` from the repository root, as the page's commands set it."""
    monkeypatch.syspath_prepend(str(ROOT))
    return ROOT


def page_commands(path: Path) -> list[list[str]]:
    """The `PYTHONPATH=. arena ...` lines of a page, as argument lists for `arena.cli.main`."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("PYTHONPATH=. arena "):
            out.append(shlex.split(line, comments=True)[2:])
    return out


def summaries(run_dir: Path) -> list[dict]:
    store = RunStore(run_dir)
    try:
        return store.round_summaries()
    finally:
        store.close()


# -- ultimatum-v0: the rules, the contract, the learner ----------------------------------

def test_ultimatum_rules_by_hand(repo_path):
    from examples.ultimatum import rules

    assert rules.parse_offer("offer 4", 10) == 4 and rules.parse_offer("I give 0 coins", 10) == 0
    assert rules.parse_offer("offer 11", 10) is None and rules.parse_offer("offer -1", 10) is None
    assert rules.parse_offer("nothing", 10) is None and rules.parse_offer("9" * 5000, 10) is None
    assert rules.parse_reply("I accept.") is True and rules.parse_reply("REJECT") is False
    assert rules.parse_reply("accept or reject?") is None and rules.parse_reply("") is None
    assert rules.payoffs(3, True, 10) == (0.7, 0.3)
    assert rules.payoffs(3, False, 10) == rules.payoffs(None, True, 10) == rules.payoffs(3, None, 10) == (0.0, 0.0)


def test_ultimatum_env_meets_the_contract(repo_path):
    from examples.ultimatum.env import UltimatumEnv

    check_game(UltimatumEnv)


def test_reinforce_gradients_by_hand(repo_path):
    from examples.ultimatum.learner import proposer_gradient, responder_gradient

    # two offers at even odds, offer 0 paid 1 and offer 1 paid 0: advantages +1/2, -1/2;
    # grad = mean(A (onehot - p)) = ([+1/4, -1/4] + [+1/4, -1/4]) / 2
    np.testing.assert_allclose(proposer_gradient(np.array([0.5, 0.5]), [0, 1], [1.0, 0.0]), [0.25, -0.25])
    # offer 1 accepted (paid 0.1) and rejected (paid 0): A = +-0.05, q = 0.5 -> (0.05 * 0.5 + 0.05 * 0.5) / 2
    grad = responder_gradient(np.array([0.5, 0.5, 0.5]), [1, 1], [True, False], [0.1, 0.0])
    np.testing.assert_allclose(grad, [0.0, 0.025, 0.0])


def test_bots_check_their_options(repo_path):
    from arena.registry import spec
    from arena.specs import AgentContext, build_agent
    from arena.types import ArenaError

    ctx = AgentContext.for_seat(spec(ULTIMATUM), "responder", ROOT / "runs")
    bot = build_agent("scripted:threshold?min=4", ctx)
    assert bot.act([{"prompt": "", "offer": "3"}, {"prompt": "", "offer": "4"}]) == ["reject", "accept"]
    with pytest.raises(ArenaError, match="min"):
        build_agent("scripted:threshold?min=lots", ctx)


# -- the walk-through of docs/adding-a-game.md, command by command ---------------------------

@pytest.mark.slow
def test_adding_a_game_walkthrough(repo_path, runs, capsys):
    commands = page_commands(ROOT / "docs" / "adding-a-game.md")
    assert len(commands) >= 5 and any(argv[:1] == ["play"] and "--game" in argv for argv in commands)
    printed = {}
    for argv in commands:
        if "textarena" in " ".join(argv) and not HAS_TEXTARENA:
            continue
        assert main(argv) == 0, argv
        printed[" ".join(argv[:2])] = capsys.readouterr().out

    # self-play drives the offer down; a responder that rejects offers below 4 holds it at 0.4
    offers = [s["metrics"]["mean_offer"] for s in summaries(runs / "ultimatum")]
    fair = [s["metrics"]["mean_offer"] for s in summaries(runs / "ultimatum-fair")]
    assert len(offers) == 6 and offers[-1] < 0.25 < 0.4 < offers[0]
    assert fair[-1] >= 0.4 > offers[-1]

    # play <run> --game module:Class: the run's last checkpoints in their seats
    played = printed["play ultimatum"]
    assert "ckpt:ultimatum/proposer/round-5" in played and "ckpt:ultimatum/responder/round-5" in played
    assert re.search(r"proposer → offer \d+", played)

    # the tournament: its table once, every label whole in a legend, files written
    rated = printed["tournament ultimatum"]
    assert rated.count("ratings: ultimatum-v0") == 1 and "p5=proposer/round-5" in rated
    doc = json.loads((runs / "ultimatum" / "tournaments" / "default" / "tournament.json").read_text())
    assert doc["pairings_done"] == 36 and doc["short_labels"]["responder/round-2"] == "r2"

    page = (runs / "ultimatum" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4  # mean_offer, accept_rate, rewards, heatmap
    assert "mean_offer" in page and "proposer/round-5" in page and "Tournament default" in page


@pytest.mark.slow
def test_a_run_of_an_unregistered_game_needs_game_on_the_command_line(repo_path, runs, capsys):
    assert main(["train", ULTIMATUM, "--rounds", "1", "--episodes", "8", "--run", "u", "--plain"]) == 0
    capsys.readouterr()
    for command in (["play", "u"], ["tournament", "u"], ["resume", "u"]):
        assert_one_line_error(capsys, command, f"--game {ULTIMATUM}")
    assert_one_line_error(capsys, ["play", "u", "--game", "duel-v0"], "is duel-v0, but the run plays ultimatum-v0")
    assert main(["play", "u", "--game", ULTIMATUM, "-n", "1", "-q"]) == 0
    assert "ckpt:u/proposer/round-0" in capsys.readouterr().out


# -- TextArena through the engine ----------------------------------------------------------

@pytest.mark.skipif(not HAS_TEXTARENA, reason=NO_TEXTARENA)
def test_textarena_wrapper_meets_the_contract_and_rates_its_bots(repo_path, runs, capsys):
    from examples.textarena_wrapper.env import TextArenaEnv

    check_game(TextArenaEnv)
    specs = "scripted:listed-move,scripted:random"
    assert main(["tournament", "--game", "examples.textarena_wrapper.env:TextArenaEnv", "--seat",
                 f"player_0={specs}", "-n", "4", "--bootstrap", "50", "--plain"]) == 0
    doc = json.loads(next(runs.glob("*/tournaments/*/tournament.json")).read_text())
    best = min(doc["ratings"], key=lambda r: r["rank"])
    assert best["label"] == "scripted:listed-move" and best["mean_reward"] == 1.0  # random text loses


# -- a game that is not an arena game ------------------------------------------------------

@pytest.fixture
def tictactoe(monkeypatch):
    """PettingZoo's tic-tac-toe (a board array, Discrete(9) moves). Only its renderer uses pygame:
    where pygame is not installed, an empty stand-in lets the module import."""
    if importlib.util.find_spec("pygame") is None:
        monkeypatch.setitem(sys.modules, "pygame", types.ModuleType("pygame"))
    return "pettingzoo.classic.tictactoe_v3:env"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The old environment creation API")
def test_a_game_without_text_spaces_is_refused_at_load_leaving_nothing(tictactoe, runs, capsys):
    for argv in (["play", tictactoe, "-n", "1"],
                 ["train", tictactoe, "--rounds", "1", "--run", "ttt", "--plain"],
                 ["tournament", "--game", tictactoe, "--seat", "player_1=scripted:random",
                  "--seat", "player_2=scripted:random"]):
        assert_one_line_error(capsys, argv, "is not an arena game: it needs a text observation, a Text space or a "
                                            "Dict with a Text field (player_1 observes a Dict of action_mask: Box, "
                                            "observation: Box)")
        assert not runs.exists() or not any(runs.iterdir()), argv  # no run directory, not even a leftover
    assert_one_line_error(capsys, ["play", tictactoe], "action space (player_1 acts in Discrete(9))")

"""A text game written outside the project plays unchanged: `play`, `train` (scripted and LLM seats),
`tournament`, and the replay of its run, with games written in this file whose text field is not
named `prompt` (docs/outside-games.md).

The games are plain PettingZoo `AECEnv`s (no arena helper, no `GameInfo` unless a test says so):
rock-paper-scissors in words, observed as one `Text` field named `text`; the same with a second
`Text` field (`history`: ambiguous for an LLM until named); with a bare `Text` observation; and one
with no text at all (refused)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import AECEnv

from arena.cli import main
from arena.gameinfo import GameInfo
from arena.testing import check_game
from test_cli import assert_one_line_error

GAME = f"{__name__}:TextRPS"
MOVES = ("rock", "paper", "scissors")
BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n"


class TextRPS(AECEnv):
    """Rock-paper-scissors in words; a word that is not a move loses (both invalid: a draw)."""

    metadata = {"name": "textrps_v0", "is_parallelizable": False, "render_modes": []}

    def __init__(self, stake: int = 1):
        super().__init__()
        self.stake = stake
        self.possible_agents = ["player_0", "player_1"]
        self._obs = {a: self.make_observation_space() for a in self.possible_agents}
        self._act = {a: spaces.Text(max_length=32, charset=CHARSET) for a in self.possible_agents}

    def make_observation_space(self) -> spaces.Space:
        return spaces.Dict({"text": spaces.Text(max_length=256, charset=CHARSET)})

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def reset(self, seed=None, options=None):
        self.table = int(np.random.default_rng(seed).integers(1000))  # so each episode reads differently
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self.moves: dict[str, str | None] = {}
        self.agent_selection = "player_0"

    def text_of(self, agent) -> str:
        return f"table {self.table}, you are {agent}: rock, paper or scissors?"

    def observe(self, agent):
        return {"text": self.text_of(agent)}

    def step(self, action):
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._clear_rewards()
        word = action.strip().lower() if isinstance(action, str) else ""
        self.moves[agent] = word if word in MOVES else None
        if agent == "player_0":
            self.agent_selection = "player_1"
            return
        a, b = self.moves["player_0"], self.moves["player_1"]
        win = 0 if a == b else 1 if b is None or (a is not None and BEATS[a] == b) else -1
        self.rewards = {"player_0": float(win * self.stake), "player_1": float(-win * self.stake)}
        self.infos = {p: {"moves": [a, b]} for p in self.agents}
        self.terminations = {p: True for p in self.agents}
        self._accumulate_rewards()

    @staticmethod
    def round_metrics(episodes):
        return {"invalid": float(np.mean([m is None for ep in episodes for m in ep.info["player_0"]["moves"]]))}


class TwoFieldRPS(TextRPS):
    """The same game observing two Text fields, neither named `prompt`: an LLM must be told which."""

    def make_observation_space(self):
        return spaces.Dict({"text": spaces.Text(max_length=256, charset=CHARSET),
                            "history": spaces.Text(max_length=256, charset=CHARSET)})

    def observe(self, agent):
        return {"text": self.text_of(agent), "history": f"no throws yet at table {self.table}"}


class NamedRPS(TwoFieldRPS):
    """The two-field game naming its field where the engine reads it."""

    game_info = GameInfo(text_field="history")


class BareRPS(TextRPS):
    """The same game observed as a bare Text space."""

    def make_observation_space(self):
        return spaces.Text(max_length=256, charset=CHARSET)

    def observe(self, agent):
        return self.text_of(agent)


class MaskedRPS(TextRPS):
    """The text beside a non-text field (a board array, as many PettingZoo games observe; not named
    `action_mask`, which PettingZoo's api_test would pass to a Text space's `sample`)."""

    def make_observation_space(self):
        return spaces.Dict({"text": spaces.Text(max_length=256, charset=CHARSET),
                            "board": spaces.Box(0, 1, shape=(3,), dtype=np.int8)})

    def observe(self, agent):
        return {"text": self.text_of(agent), "board": np.ones(3, dtype=np.int8)}


class BoardOnly(TextRPS):
    """No text at all: a board array (what PettingZoo's classic games observe)."""

    def make_observation_space(self):
        return spaces.Box(0, 1, shape=(3,), dtype=np.int8)

    def observe(self, agent):
        return np.zeros(3, dtype=np.int8)


ROCK, PAPER = "scripted:constant?value=rock", "scripted:constant?value=paper"


def stored(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "arena.db") as c:
        rows = c.execute("SELECT round, idx, rewards, transcript FROM episodes ORDER BY round, idx").fetchall()
    return [(r, i, json.loads(rw), json.loads(t)) for r, i, rw, t in rows]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random causal LM saved as an `hf:` directory (a few tokens per move)."""
    from agents.hf import GeneratorAgent, SamplingConfig
    from agents.tiny import new_tiny_causal_lm

    path = tmp_path_factory.mktemp("tiny-lm")
    model, tok = new_tiny_causal_lm(seed=0, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=2)
    GeneratorAgent(model, tok, SamplingConfig(max_new_tokens=4)).save(path)
    return path


def prompt_text(step: dict, model_dir: Path) -> str:
    """What a generator's move conditioned on, decoded from the prompt ids it recorded."""
    from agents.hf.loading import load_tokenizer

    return load_tokenizer(str(model_dir), None).decode(step["extras"]["prompt_ids"], skip_special_tokens=True)


# -- the contract -----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [TextRPS, TwoFieldRPS, MaskedRPS])
def test_the_games_meet_the_contract(cls):
    check_game(cls)  # (not BareRPS: PettingZoo's own api_test reads a dtype off every observation)


# -- scripted seats: play, train, replay, resume, tournament ----------------------------------

def test_an_outside_game_plays_with_scripted_seats(runs, capsys):
    assert main(["play", GAME, "--seat", f"player_0={ROCK}", "--seat", f"player_1={PAPER}", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("rewards: player_0=-1.000, player_1=+1.000") == 3  # paper covers rock, every time
    assert "table " in out and "rock, paper or scissors?" in out  # the text field is what a transcript shows
    assert main(["play", GAME, "-n", "4", "-q"]) == 0  # random seats (random text: invalid moves, draws)
    assert "textrps_v0: 4 episodes" in capsys.readouterr().out


@pytest.mark.slow
def test_an_outside_game_trains_replays_resumes_and_rates_with_scripted_seats(runs, capsys):
    assert main(["train", GAME, "--rounds", "2", "--episodes", "6", "--run", "rps", "--plain",
                 "--seat", f"player_0={ROCK}", "--seat", "player_1=scripted:random"]) == 0
    episodes = stored(runs / "rps")
    assert [(r, i) for r, i, _, _ in episodes] == [(r, i) for r in (0, 1) for i in range(6)]
    first = episodes[0][3][0]
    assert first["seat"] == "player_0" and first["action"] == "rock"
    assert set(first["observation"]) == {"text"} and "you are player_0" in first["observation"]["text"]
    # the random seat's text depends on what it reads: six tables, six different moves
    assert len({ep[3][1]["action"] for ep in episodes if ep[0] == 0}) == 6
    capsys.readouterr()

    # replay: the run's last checkpoints in their seats (the game named again: a run names no code)
    assert main(["play", "rps", "--game", GAME, "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "ckpt:rps/player_0/round-1" in out and "player_0 → rock" in out
    assert main(["resume", "rps", "--game", GAME, "--plain"]) == 0
    assert "already completed its 2 rounds" in capsys.readouterr().out
    assert main(["tournament", "rps", "--game", GAME, "-n", "4", "--bootstrap", "0", "--plain"]) == 0
    doc = json.loads((runs / "rps" / "tournaments" / "default" / "tournament.json").read_text())
    assert doc["game"] == "textrps_v0" and doc["pairings_done"] == 4  # 2 rounds x 2 rounds of checkpoints


def test_a_tournament_of_outside_bots_without_a_run(runs, capsys):
    assert main(["tournament", "--game", GAME, "--seat", f"player_0={ROCK},{PAPER}",
                 "--seat", f"player_1={ROCK}", "-n", "4", "--bootstrap", "0", "--plain"]) == 0
    doc = json.loads(next(runs.glob("*/tournaments/*/tournament.json")).read_text())
    rating = {r["spec"]: r["mean_reward"] for r in doc["ratings"] if r["group"] == "player_0"}
    assert rating == {ROCK: 0.0, PAPER: 1.0}  # against rock: a draw, a win


@pytest.mark.slow
def test_bare_text_and_two_field_games_play_with_scripted_and_human_seats(runs, capsys, monkeypatch):
    import io

    for cls in ("BareRPS", "TwoFieldRPS"):
        assert main(["play", f"{__name__}:{cls}", "--seat", f"player_1={PAPER}", "-n", "2"]) == 0
        assert "you are player_0" in capsys.readouterr().out
    # a person reads every text field of a game that names none among several
    monkeypatch.setattr("sys.stdin", io.StringIO("rock\n\n"))
    assert main(["play", f"{__name__}:TwoFieldRPS", "--seat", "player_0=human:pipe", "--seat", f"player_1={PAPER}",
                 "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "text: table" in out and "history: no throws yet" in out and "player_0 → rock" in out


def test_a_game_with_a_non_text_field_trains_and_stores_it_as_json(runs, capsys):
    masked = f"{__name__}:MaskedRPS"
    assert main(["train", masked, "--rounds", "1", "--episodes", "2", "--run", "m", "--plain",
                 "--seat", f"player_1={PAPER}"]) == 0
    first = stored(runs / "m")[0][3][0]
    assert first["observation"]["board"] == [1, 1, 1] and "you are player_0" in first["observation"]["text"]


def test_a_game_without_text_is_refused_in_one_line_leaving_nothing(runs, capsys):
    board = f"{__name__}:BoardOnly"
    for argv in (["play", board, "-n", "1"], ["train", board, "--rounds", "1", "--run", "b", "--plain"],
                 ["tournament", "--game", board, "--seat", f"player_0={ROCK}", "--seat", f"player_1={ROCK}"]):
        assert_one_line_error(capsys, argv, "textrps_v0 is not an arena game: it needs a text observation, a Text "
                                            "space or a Dict with a Text field (player_0 observes Box)")
        assert not runs.exists() or not any(runs.iterdir()), argv


# -- LLM seats ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_llm_reads_the_only_text_field_and_trains_and_replays(runs, capsys, model_dir):
    llm = f"hf:{model_dir}?max_new_tokens=4&chat_template=false"
    assert main(["train", GAME, "--rounds", "1", "--episodes", "4", "--run", "lm", "--plain", "--device", "cpu",
                 "--seat", f"player_0={llm}", "--seat", f"player_1={PAPER}"]) == 0
    episodes = stored(runs / "lm")
    assert len(episodes) == 4
    for _, _, _, transcript in episodes:
        move = transcript[0]
        assert prompt_text(move, model_dir) == move["observation"]["text"]  # it read the `text` field
    assert (runs / "lm" / "checkpoints" / "player_0" / "round-0" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["play", "lm", "--game", GAME, "-n", "2", "--device", "cpu"]) == 0
    assert "ckpt:lm/player_0/round-0" in capsys.readouterr().out


def test_an_llm_on_a_bare_text_observation_reads_it(model_dir):
    from arena import api

    episodes = api.play(f"{__name__}:BareRPS", {"player_0": f"hf:{model_dir}?chat_template=false",
                                                "player_1": PAPER}, 2, device="cpu")
    move = episodes[0].transcript[0]
    assert move.observation == {"text": "table 721, you are player_0: rock, paper or scissors?"}
    assert prompt_text({"extras": move.extras}, model_dir) == move.observation["text"]


@pytest.mark.slow
def test_an_llm_on_an_ambiguous_game_is_refused_until_the_field_is_named(runs, capsys, model_dir):
    two = f"{__name__}:TwoFieldRPS"
    llm = f"player_0=hf:{model_dir}?chat_template=false"
    for argv in (["play", two, "--seat", llm, "-n", "1"],
                 ["train", two, "--seat", llm, "--rounds", "1", "--run", "amb", "--plain"]):
        assert_one_line_error(capsys, argv, "seat 'player_0' of textrps_v0 observes several text fields (history, "
                                            "text) and an LLM reads one: name it in the game "
                                            "(GameInfo(text_field='history')) or on the command line "
                                            "(--env text_field=history)")
    assert not runs.exists() or not any(runs.iterdir())
    # named on the command line: the run keeps the setting, and its replay reads the same field
    assert main(["train", two, "--seat", llm, "--env", "text_field=history", "--rounds", "1", "--episodes", "2",
                 "--run", "hist", "--plain", "--device", "cpu"]) == 0
    move = stored(runs / "hist")[0][3][0]
    assert prompt_text(move, model_dir) == move["observation"]["history"]
    assert move["observation"]["history"].startswith("no throws yet at table")
    assert json.loads((runs / "hist" / "config.json").read_text())["env_kwargs"] == {"text_field": "history"}
    capsys.readouterr()
    assert main(["play", "hist", "--game", two, "-n", "1", "--device", "cpu"]) == 0
    # a field that is not a Text field of the observation is one line too
    assert_one_line_error(capsys, ["play", two, "--env", "text_field=board"],
                          "needs text_field 'board' to be a Text field of every seat's observation "
                          "(player_0's Text fields: history, text)")


def test_the_field_is_named_by_a_registered_spec_by_a_setting_or_by_the_game():
    from arena.registry import Registry
    from arena.specs import AgentContext

    registry = Registry(group=None)
    registry.register("two-v0", TwoFieldRPS, text_field="history")  # for a game one cannot edit
    assert AgentContext.for_seat(registry.spec("two-v0"), "player_0", ".").llm_text_field() == "history"
    registry.register("plain-two-v0", TwoFieldRPS)
    spec = registry.spec("plain-two-v0")
    assert AgentContext.for_seat(spec, "player_0", ".", text_field="text").llm_text_field() == "text"
    ctx = AgentContext.for_seat(spec, "player_0", ".")
    assert (ctx.text_field, ctx.text_fields) == (None, ("history", "text"))  # scripted and human seats play it
    assert AgentContext.for_seat(registry.register("named-v0", NamedRPS), "player_1", ".").text_field == "history"
    assert AgentContext.for_seat(registry.register("bare-v0", BareRPS), "player_0", ".").text_field == "text"


def test_a_game_names_its_field_in_game_info(model_dir):
    from arena import api

    episodes = api.play(f"{__name__}:NamedRPS", {"player_0": f"hf:{model_dir}?chat_template=false"}, 1,
                        device="cpu")
    move = episodes[0].transcript[0]
    assert prompt_text({"extras": move.extras}, model_dir) == move.observation["history"]


# -- docs/outside-games.md, command by command ----------------------------------------------------

@pytest.mark.slow
def test_the_outside_games_page_runs_as_written(runs, tmp_path, monkeypatch, capsys):
    """The page's game (its python block, saved as textrps.py) and every `PYTHONPATH=. arena` line."""
    import re
    import shlex

    page = (Path(__file__).resolve().parents[1] / "docs" / "outside-games.md").read_text()
    [code] = re.findall(r"```python\n(.*?)```", page, re.S)
    (tmp_path / "textrps.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    commands = [shlex.split(line)[2:] for line in page.splitlines() if line.startswith("PYTHONPATH=. arena ")]
    assert [argv[0] for argv in commands] == ["play", "train", "play", "tournament", "resume"]
    for argv in commands:
        assert main(argv) == 0, argv
    out = capsys.readouterr().out
    assert "player_0 → rock" in out and "ckpt:rps/player_0/round-1" in out
    assert [ep[0] for ep in stored(runs / "rps")] == [0] * 8 + [1] * 8 + [2] * 8  # resumed to 3 rounds

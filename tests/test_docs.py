"""The docs cannot drift from the code: every command they show is checked, every link and citation resolves.

Which commands, and how (README.md, docs/**/*.md and examples/**/*.md; fenced code blocks of
shell, i.e. no language or bash/sh/shell/console):

- A **docs command** is a line that starts with `arena `, `.venv/bin/arena ` or
  `.venv-vllm/bin/arena ` (after `VAR=value` prefixes such as `PYTHONPATH=.`), or that
  launches `arena.cli` under `torchrun` / `accelerate launch`. A trailing backslash continues it.
- **By default a block's commands run**: in page order, through `arena.cli.main`, in a fresh runs
  dir and working directory per page, and each must exit 0. So they must be cheap: scripted
  recipes, tiny settings, `--help`.
- A block directly under `<!-- parse-only: why -->` is **only parsed**: its arguments go through
  the command's own argparse parser (an experiment's or `arena bench`'s too) and nothing runs; a
  registered game, recipe, `--set` key, seat, `--env` key or agent kind it names must exist. This
  is for what needs a GPU, a launcher, another venv, a browser, a cluster or hours; such commands
  anywhere else fail the test.
- A block directly under `<!-- runs in tests/test_x.py -->` is run by that test (which must read
  the page, checking what the commands print) and parsed here.
- `make TARGET` lines are never run here (`make test` is this suite): the Makefile has the target,
  and the `arena` commands of its recipe parse. `python -m MODULE` lines: the module exists.
  Other lines (pip, ray start, chromium, program output) are not commands.

Plus: relative links in the pages and `*.md` files the code cites exist in the repository, with
the `#section` they name.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arena.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted({ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.md")})
SHELL = {"", "bash", "sh", "shell", "console"}
MARKER = re.compile(r"^<!--\s*(parse-only|runs in)\s*:?\s*(.*?)\s*-->$")
ON_OTHER_BRANCHES: set[str] = set()
"""Pages the README links that are written on other branches (none now)."""
CITATIONS_LEFT: tuple[str, ...] = ()
"""Code whose citations of a file outside the repository are still to be replaced (none now)."""


@dataclass
class Command:
    page: str
    line: str
    mode: str                     # "run", "parse-only" or "runs in"
    tool: str                     # "arena", "make", "python"
    argv: list[str] = field(default_factory=list)
    needs_other_process: bool = False  # a launcher or another venv: never run in this process

    def __str__(self) -> str:
        return f"{self.page}: {self.line}"


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def fenced_blocks(path: Path) -> list[tuple[str, str, list[str]]]:
    """(mode, marker text, lines) for every shell block of a page."""
    out, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^\s*```\s*([\w-]*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        body, j = [], i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            body.append(lines[j])
            j += 1
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        if opening.group(1) in SHELL:
            out.append((marker.group(1) if marker else "run", marker.group(2) if marker else "", body))
        i = j + 1
    return out


def joined(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    return [line for line in out if line]


LOOKS_LIKE_A_COMMAND = re.compile(r"^(\w+=\S*\s+)*(arena|\S*/bin/arena|\S*torchrun|accelerate|make|\S*python[\d.]*)\s")


def command_of(page: str, mode: str, line: str) -> Command | None:
    if not LOOKS_LIKE_A_COMMAND.match(line + " "):  # program output, a table, prose
        return None
    words = shlex.split(line, comments=True)
    while words and re.match(r"^\w+=", words[0]):  # PYTHONPATH=. and the like
        words.pop(0)
    if not words:
        return None
    head = words[0]
    if head in ("arena", ".venv/bin/arena"):
        return Command(page, line, mode, "arena", words[1:])
    if head.endswith("/bin/arena"):  # another venv (.venv-vllm)
        return Command(page, line, mode, "arena", words[1:], needs_other_process=True)
    if Path(head).name in ("torchrun", "accelerate") and "arena.cli" in words:
        return Command(page, line, mode, "arena", words[words.index("arena.cli") + 1:], needs_other_process=True)
    if head == "make":
        return Command(page, line, mode, "make", [w for w in words[1:] if "=" not in w and not w.startswith("-")])
    if Path(head).name.startswith("python") and words[1:2] == ["-m"]:
        return Command(page, line, mode, "python", words[2:3])
    return None


def page_commands(path: Path) -> list[Command]:
    out = []
    for mode, _, body in fenced_blocks(path):
        for line in joined(body):
            cmd = command_of(rel(path), mode, line)
            if cmd:
                out.append(cmd)
    return out


# -- parsing a command without running it ---------------------------------------------------

class Parsed(BaseException):
    """Raised by the patched `ArgumentParser.parse_args` once the arguments parsed."""

    def __init__(self, namespace: argparse.Namespace):
        super().__init__()
        self.namespace = namespace


def parse_only(argv: list[str], monkeypatch) -> argparse.Namespace | None:
    """The namespace the command's own parser gives `argv`, with nothing run (None for --help)."""
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", stop)
        try:
            main(argv)
        except Parsed as p:
            return p.namespace
        except SystemExit as e:
            assert e.code == 0, f"{argv}: the parser refused it"
            return None  # --help
    raise AssertionError(f"{argv}: ran without parsing its arguments")


def check_names(ns: argparse.Namespace, argv: list[str]) -> None:
    """A registered game, recipe, --set key, seat, --env key and agent kind the command names exist."""
    from arena import registry
    from arena.gameinfo import GameInfo
    from arena.options import env_settings, parse_pairs
    from arena.recipes import resolve_params
    from arena.specs import agent_factories, parse_spec

    seat_items = [s for s in getattr(ns, "seat", None) or [] if isinstance(s, str) and "=" in s]  # SEAT=SPEC
    for spec in (s.partition("=")[2] for s in seat_items):
        for one in (spec.split(",") if getattr(ns, "command", "") == "tournament" else [spec]):
            kind, _ = parse_spec(one)
            assert kind in {*agent_factories(), "ckpt"}, f"{argv}: unknown agent kind {kind!r}"
    game = getattr(ns, "game", None)
    if not isinstance(game, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*-v\d+", game):
        return
    assert registry.is_registered(game), f"{argv}: unknown game {game!r}"
    gspec = registry.spec(game)
    info = GameInfo.of(gspec.load())
    seats = {*gspec.make().possible_agents, *info.extra_seats}
    unknown = set(parse_pairs(seat_items, "--seat")) - seats
    assert not unknown, f"{argv}: no seat(s) {sorted(unknown)} in {game}"
    if getattr(ns, "env", None):
        env_settings(gspec.load(), ns.env)
    if getattr(ns, "command", "") == "train":
        assert ns.recipe in info.recipes or ns.recipe == "default", f"{argv}: {game} has no recipe {ns.recipe!r}"
        params = parse_pairs(ns.set, "--set")
        if params:
            resolve_params(registry.load_attr(info.recipe_params[ns.recipe]), params)


def make_recipe(target: str) -> list[str] | None:
    """The recipe lines of a Makefile target, or None if there is no such target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:", line):
            body = []
            for rest in lines[i + 1:]:
                if not rest.startswith("\t"):
                    break
                body.append(rest.strip())
            return body
    return None


def check_parses(cmd: Command, monkeypatch) -> None:
    if cmd.tool == "arena" and {"-h", "--help"} & set(cmd.argv):
        assert main(cmd.argv) == 0, cmd  # help: cheap, so it runs
    elif cmd.tool == "arena":
        ns = parse_only(cmd.argv, monkeypatch)
        if ns is not None:
            check_names(ns, cmd.argv)
    elif cmd.tool == "make":
        for target in cmd.argv:
            recipe = make_recipe(target)
            assert recipe is not None, f"{cmd}: the Makefile has no target {target!r}"
            for line in recipe:
                words = shlex.split(line)
                if words and words[0].endswith("/bin/arena"):
                    parse_only(words[1:], monkeypatch)
    elif cmd.tool == "python":
        assert importlib.util.find_spec(cmd.argv[0]) is not None, f"{cmd}: no module {cmd.argv[0]}"


# -- the tests ---------------------------------------------------------------------------------

@pytest.fixture
def repo_path(monkeypatch):
    """`PYTHONPATH=.` as the pages' commands set it, from any working directory."""
    monkeypatch.syspath_prepend(str(ROOT))


def test_the_pages_and_their_commands_are_found():
    names = {rel(p) for p in PAGES}
    assert {"README.md", "docs/cli.md", "docs/algorithms.md", "docs/scaling.md", "docs/benchmarks.md",
            "docs/adding-a-game.md", "docs/architecture.md"} <= names
    readme = page_commands(ROOT / "README.md")
    assert [c.argv for c in readme if c.tool == "make"] == [["demo"], ["test"]]
    assert {c.argv[0] for c in readme if c.tool == "arena"} >= {
        "train", "resume", "watch", "tournament", "attack", "play", "study", "report", "runs", "experiment",
        "bench", "pretrain"}
    assert any(c.mode == "run" for c in readme) and any(c.mode == "parse-only" for c in readme)
    scaling = page_commands(ROOT / "docs" / "scaling.md")
    assert any(c.needs_other_process and c.argv[:1] == ["train"] for c in scaling)  # torchrun / accelerate lines


@pytest.mark.slow
def test_the_parse_only_check_refuses_what_the_code_refuses(repo_path, monkeypatch):
    """The checker itself: a renamed flag, game, recipe or --set key fails it."""
    check_parses(Command("x", "", "parse-only", "arena", ["train", "prover-verifier-v1", "--rounds", "2"]), monkeypatch)
    for argv, why in ((["train", "prover-verifier-v1", "--roundz", "2"], "refused"),
                      (["train", "prover-verifier-v0"], "unknown game"),
                      (["train", "prover-verifier-v1", "--recipe", "nope"], "no recipe"),
                      (["experiment", "checkability", "--seedz", "0"], "refused"),
                      (["play", "duel-v0", "--seat", "judge=robot:x"], "unknown agent kind"),
                      (["play", "duel-v0", "--seat", "referee=scripted:random"], "no seat")):
        with pytest.raises(AssertionError, match=why):
            check_parses(Command("x", "", "parse-only", "arena", argv), monkeypatch)
    from arena.types import ArenaError
    with pytest.raises(ArenaError, match="nope"):
        check_parses(Command("x", "", "parse-only", "arena",
                             ["train", "prover-verifier-v1", "--set", "nope=1"]), monkeypatch)
    with pytest.raises(AssertionError, match="no target"):
        check_parses(Command("x", "", "parse-only", "make", ["nope"]), monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_command_parses(page, repo_path, runs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for cmd in page_commands(page):
        if cmd.needs_other_process:
            assert cmd.mode != "run", f"{cmd}: needs a launcher or another venv: mark it <!-- parse-only: why -->"
        check_parses(cmd, monkeypatch)


def run_pages():
    out = []
    for page in PAGES:
        if any(c.mode == "run" and c.tool == "arena" for c in page_commands(page)):
            out.append(pytest.param(page, id=rel(page)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("page", run_pages())
def test_commands_run(page, repo_path, runs, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    for cmd in page_commands(page):
        if cmd.mode != "run" or cmd.tool != "arena":
            continue
        code = main(cmd.argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{cmd}\n{out[-2000:]}\n{err[-2000:]}"


def test_runs_in_markers_name_a_test_that_reads_the_page():
    for page in PAGES:
        for mode, where, body in fenced_blocks(page):
            if mode != "runs in":
                continue
            test = ROOT / where
            assert test.is_file(), f"{rel(page)}: <!-- runs in {where} --> names no test file"
            assert page.name in test.read_text(), f"{where} does not read {rel(page)}"
            assert any(command_of(rel(page), mode, line) for line in joined(body)), f"{rel(page)}: empty block"


def github_anchor(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}


def check_target(source: str, target: str, base: Path) -> str | None:
    """Why a reference `path[#anchor]` from `source` does not resolve (None if it does)."""
    path, _, anchor = target.partition("#")
    resolved = (base / path).resolve() if path else ROOT / source
    if path and "/" not in path and not resolved.exists():  # a bare file name: that file, wherever it is
        resolved = next(iter(sorted(ROOT.glob(f"[!.]*/**/{path}"))), resolved)
    if ROOT not in resolved.parents and resolved != ROOT:
        return f"{source}: {target} is outside the repository"
    if rel(resolved) in ON_OTHER_BRANCHES:
        return None
    if not resolved.exists():
        return f"{source}: {target} does not exist"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{source}: {target}: no section #{anchor} in {rel(resolved)}"
    return None


def test_every_relative_link_in_the_pages_resolves():
    problems = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"^[a-z]+:", target):  # not http(s):, mailto:
                problems.append(check_target(rel(page), target, page.parent))
    assert [p for p in problems if p] == []


def test_the_code_cites_only_files_in_the_repository():
    problems = []
    files = [p for d in ("arena", "agents", "games", "bench", "examples", "tests") for p in (ROOT / d).rglob("*.py")]
    for path in [*files, ROOT / "Makefile", ROOT / "pyproject.toml", ROOT / ".ci" / "run"]:
        source = rel(path)
        if source.startswith(CITATIONS_LEFT):
            continue
        for target in re.findall(r"(?<![\w/.-])((?:\.\./|[\w-]+/)*[\w.-]+\.md(?:#[\w-]+)?)", path.read_text()):
            problems.append(check_target(source, target, ROOT))
    assert [p for p in problems if p] == []

"""Programs: a policy over skills as plain Python source, with the paper's `NetHackPlayer` interface.

A program is composed of layers, the way the official `combine.py` glued LLM answers together:

    import random
    SETTINGS = {...}                         # per-program deployment settings (method.md §2)
    <policy layer 1>  class NetHackPlayer: select_skill, reach_gnomish_mines, ...
    <policy layer 2>  class NetHackPlayer(NetHackPlayer): perform_task (a task), hooks ...
    <shared.py>       class NetHackPlayer(NetHackPlayer): set_initial_values, skill_precondition,
                                                         skill_termination

Each later `class NetHackPlayer:` is rewritten to subclass the one before, so a layer keeps the
methods it does not redefine. Only imports, classes and functions of a layer are kept (an LLM answer
also holds its unit test). `load_program(path_or_name)` is what training and deployment call.
"""
from __future__ import annotations

import ast
import hashlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from maestromotif.options.runtime import SKILLS

PROGRAMS_DIR = Path(__file__).parent / "programs"
TRAINING = "training"
TASKS = ("gnomish", "delphi", "minetown", "transactions", "price", "buc", "goldenexit", "levelupsell",
         "discoveryhunger")
PROGRAM_NAMES = (TRAINING, *TASKS)


@dataclass(frozen=True)
class Settings:
    """Per-episode settings of set_initial_values (method.md §1.7 training, §2 deployment)."""

    max_depth: tuple[int, int]  # drawn uniformly per episode (low == high: fixed)
    discoverer_skill_steps: int  # Discoverer ends after this many game turns; Merchant/Worshipper after 20x
    random_branch: bool = False  # training: Gnomish Mines in half the episodes (self.mines)

    def as_dict(self) -> dict:
        return {"max_depth": list(self.max_depth), "discoverer_skill_steps": self.discoverer_skill_steps,
                "random_branch": self.random_branch}


SETTINGS: dict[str, Settings] = {
    TRAINING: Settings((2, 4), 500, random_branch=True),
    "gnomish": Settings((5, 5), 500),
    "delphi": Settings((10, 10), 50),
    "minetown": Settings((5, 5), 50),
    "transactions": Settings((5, 5), 500),
    "price": Settings((5, 5), 500),
    "buc": Settings((5, 5), 500),
    "goldenexit": Settings((3, 3), 500),
    "levelupsell": Settings((5, 5), 500),
    "discoveryhunger": Settings((10, 10), 500),
}


class ProgramError(ValueError):
    """A program name or file that cannot be used; the message says what was wrong."""


@dataclass
class Program:
    """Program source plus where it came from. `trusted` = our own reference code, byte for byte."""

    name: str
    source: str
    origin: str  # "reference" | "llm" | "reference-fallback" | a file path
    trusted: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()


# ---------------------------------------------------------------- source surgery
def top_level_defs(source: str) -> str:
    """Imports, classes and functions of `source`, in order; everything else (unit tests, prints) dropped."""
    tree = ast.parse(source)
    lines = source.splitlines()
    keep = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    parts = []
    for node in tree.body:
        if isinstance(node, keep):
            decorators = getattr(node, "decorator_list", [])
            start = (decorators[0].lineno if decorators else node.lineno) - 1
            parts.append("\n".join(lines[start: node.end_lineno]))
    return "\n\n\n".join(parts)


def layer(source: str) -> str:
    """Rewrite `class NetHackPlayer:` (no bases) as a subclass of the NetHackPlayer defined before it."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "NetHackPlayer":
            plain = not node.bases or (len(node.bases) == 1 and isinstance(node.bases[0], ast.Name)
                                       and node.bases[0].id == "object")
            if plain and not node.keywords:
                i = node.lineno - 1
                head, sep, rest = lines[i].partition(":")
                indent = head[: len(head) - len(head.lstrip())]
                lines[i] = f"{indent}class NetHackPlayer(NetHackPlayer):{rest}"
    return "\n".join(lines) + "\n"


def method_source(source: str, method: str, cls: str = "NetHackPlayer") -> str | None:
    """The source of `cls.method` in `source`, dedented, or None."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method:
                    start = (item.decorator_list[0].lineno if item.decorator_list else item.lineno) - 1
                    return textwrap.dedent("\n".join(source.splitlines()[start: item.end_lineno]))
    return None


def class_with_methods(methods: list[str]) -> str:
    body = "\n\n".join(textwrap.indent(m, "    ") for m in methods)
    return f"class NetHackPlayer:\n{body}\n"


def stack_layers(layers: list[str]) -> str:
    """Policy layers as one source: the first as is, each later one subclassing the class before it."""
    return "\n\n\n".join(top_level_defs(part) if i == 0 else layer(top_level_defs(part))
                           for i, part in enumerate(layers))


def compose(name: str, policy_layers: list[str], settings: Settings, origin: str) -> str:
    """The whole program: header, SETTINGS, policy layers (defs only), then the shared functions."""
    header = (f"# Program {name!r} ({origin}), composed by maestromotif.options.program.\n"
              "# Layers: policy code, then the shared initiation/termination functions (programs/shared.py).\n")
    body = [f"import random\n\nSETTINGS = {settings.as_dict()!r}\n", stack_layers(policy_layers)]
    body.append(layer(top_level_defs(_read("shared"))))
    return header + "\n\n".join(b.strip("\n") + "\n" for b in body)


def policy_layers_of(program_source: str) -> list[str]:
    """Split a composed program back into its policy layers (used to show 'previous code' to the coder)."""
    marker = "class NetHackPlayer(NetHackPlayer):\n    def set_initial_values(self):"
    return [program_source.split(marker)[0]]


# ---------------------------------------------------------------- reference programs
def _read(part: str) -> str:
    path = PROGRAMS_DIR / f"{part}.py"
    return path.read_text()


def reference_layers(name: str) -> list[str]:
    """The policy layers of our reference program `name` (exploration, then the task's perform_task)."""
    _check_name(name)
    return [_read("exploration")] + ([] if name == TRAINING else [_read(name)])


def reference_program(name: str) -> Program:
    source = compose(name, reference_layers(name), SETTINGS[name], "reference")
    return Program(name=name, source=source, origin="reference", trusted=True)


def _check_name(name: str) -> None:
    if name not in SETTINGS:
        raise ProgramError(f"unknown program {name!r}: choose one of {', '.join(PROGRAM_NAMES)}, "
                           "or give the path of a program.py written by the codegen stage")


def load_program(path_or_name: str | Path) -> Program:
    """A program by name (our reference), by codegen directory (…/<program>/seed<k>) or by program.py path.

    A program read from disk is trusted only if it is byte-identical to our reference program of the
    same name (a codegen fallback); anything an LLM wrote is untrusted and must run in the sandbox.
    """
    text = str(path_or_name)
    if text in SETTINGS:
        return reference_program(text)
    path = Path(path_or_name)
    if path.is_dir():
        path = path / "program.py"
    if not path.is_file():
        raise ProgramError(f"{path_or_name!r} is neither a program name ({', '.join(PROGRAM_NAMES)}) nor a "
                           "program file; run `python -m maestromotif.codegen` to write data/codegen/...")
    source = path.read_text()
    meta: dict = {}
    summary = path.parent / "summary.json"
    if summary.is_file():
        import json

        meta = json.loads(summary.read_text())
    name = meta.get("program") or path.parent.parent.name
    trusted = name in SETTINGS and source == reference_program(name).source
    origin = meta.get("source", "file")
    try:
        ast.parse(source)
    except SyntaxError as e:
        raise ProgramError(f"{path}: not valid Python ({e}); regenerate it with the codegen stage") from e
    return Program(name=name, source=source, origin=origin, trusted=trusted, meta=meta)


# ---------------------------------------------------------------- a structural check of any program
def interface_check(program: Program, runner, turns: int = 30, seed: int = 0) -> list[str]:
    """Drive the program through the simulated depth loop of the unit test (method.md §1.7) with the
    real options-step code; return the trace lines. Raises SandboxError or ValueError on a broken program.

    This is our own check, independent of the LLM's verdict: every skill returned must be a skill name.
    """
    handle = runner.load(program.source, program.name, seed=seed)
    try:
        player = handle.new_player(seed=seed)
        skill, depth, previous_depth, branch, dnum = player.initial_skill, 1, 1, 2, 0
        lines = []
        empty = [[32] * 7 for _ in range(7)]
        for turn in range(turns):
            lines.append(f"Turn {turn + 1}: Skill = {skill}, Dungeon depth = {depth}, Branch Number = {dnum}")
            out = player.step(dict(chars=empty, colors=[[0] * 7 for _ in range(7)], num_items=0,
                                   color_map={"@": 15, "_": 7}, skill=skill, skill_time=10_000, depth=depth,
                                   previous_depth=previous_depth, dungeon_number=dnum, branch_depth=branch,
                                   branch_depth_if_end=-2, gold=0, kill=False, xp_level=1, ate_in_mines=False))
            if out["end"]:
                skill, previous_depth = out["next"], depth
                if skill not in SKILLS:
                    raise ValueError(f"perform_task returned {skill!r}")
                if skill == "descender":
                    depth += 1
                    dnum = (turn % 2) * 2 if depth == branch + 1 else dnum
                elif skill == "ascender":
                    depth -= 1
                    dnum = 0 if depth <= branch else dnum
                    if depth < 1:
                        lines.append("left the dungeon")
                        break
        return lines
    finally:
        handle.close()

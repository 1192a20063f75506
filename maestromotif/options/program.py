"""Programs: a policy over skills as plain Python source, with the paper's `NetHackPlayer` interface.

A program is composed of layers, the way the official `combine.py` glued LLM answers together:

    import random
    SETTINGS = {...}                         # per-program deployment settings (docs/method.md §9.2)
    <policy layer 1>  class NetHackPlayer: select_skill, reach_gnomish_mines, ...
    <policy layer 2>  class NetHackPlayer(NetHackPlayer): perform_task (a task), hooks ...
    <init/term>       class NetHackPlayer(NetHackPlayer): skill_precondition, skill_termination
                      (the coder LLM's, from data/codegen/init_term/seed<k>/, or programs/init_term.py)
    <initial_values>  class NetHackPlayer(NetHackPlayer): set_initial_values

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
INIT_TERM = "init_term"  # the codegen output holding the coder's initiation/termination functions
INIT_TERM_METHODS = ("skill_precondition", "skill_termination")
TASKS = ("gnomish", "delphi", "minetown", "transactions", "price", "buc", "goldenexit", "levelupsell",
         "discoveryhunger")
PROGRAM_NAMES = (TRAINING, *TASKS)


@dataclass(frozen=True)
class Settings:
    """Per-episode settings of set_initial_values (docs/method.md §5.2 training, §9.2 deployment)."""

    max_depth: tuple[int, int]  # drawn uniformly per episode (low == high: fixed)
    discoverer_skill_steps: int  # Discoverer ends after this many game turns; Merchant/Worshipper after 20x
    random_branch: bool = False  # training: Gnomish Mines in half the episodes (self.mines)

    def as_dict(self) -> dict:
        return {"max_depth": list(self.max_depth), "discoverer_skill_steps": self.discoverer_skill_steps,
                "random_branch": self.random_branch}


SETTINGS: dict[str, Settings] = {
    TRAINING: Settings((2, 4), 500, random_branch=True),
    "gnomish": Settings((5, 5), 50),  # the released program's value (its initial_values.txt said 500)
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


def compose(name: str, policy_layers: list[str], settings: Settings, origin: str,
            init_term: str | None = None) -> str:
    """The whole program: header, SETTINGS, policy layers (defs only), the initiation/termination layer
    (`init_term`: the coder's, see maestromotif.codegen; None: our reference), then set_initial_values.

    The last two come after the policy, so they replace any version the policy code wrote, as the
    official combine.py did."""
    which = "reference" if init_term is None else "generated"
    header = (f"# Program {name!r} ({origin}), composed by maestromotif.options.program.\n"
              f"# Layers: policy code, the {which} initiation/termination functions, set_initial_values.\n")
    body = [f"import random\n\nSETTINGS = {settings.as_dict()!r}\n", stack_layers(policy_layers)]
    body.append(layer(top_level_defs(reference_init_term() if init_term is None else init_term)))
    body.append(layer(top_level_defs(_read("initial_values"))))
    return header + "\n\n".join(b.strip("\n") + "\n" for b in body)


def init_term_layer(methods: dict[str, str]) -> str:
    """One `class NetHackPlayer:` with the given initiation/termination methods (name -> source); a
    method not given is our reference one."""
    reference = reference_init_term()
    return class_with_methods([methods.get(m) or method_source(reference, m) for m in INIT_TERM_METHODS])


# ---------------------------------------------------------------- reference programs
def _read(part: str) -> str:
    path = PROGRAMS_DIR / f"{part}.py"
    return path.read_text()


def reference_init_term() -> str:
    """Our reference initiation and termination functions (a `class NetHackPlayer:` layer)."""
    return _read("init_term")


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
    """Drive the program through the simulated depth loop of the unit test (docs/method.md §5.2) with the
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
                                   branch_depth_if_end=-2, gold=0, kill=False, xp_level=1,
                                   ate_in_mines=False))
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


# ---------------------------------------------------------------- unit tests of init/term functions
# What the init/term prompts ask for (maestromotif.options.coder_prompts), case by case. A window is
# 7x7 (row, col, character, colour) cells on a blank screen; the colour map is the options wrapper's.
COLOR_MAP = {"@": 15, "_": 7}
PRECONDITION_CASES = (  # (what, cells, num_items, expected (worshipper, merchant))
    ("nothing in view, 1 new item", (), 1, (False, False)),
    ("a shopkeeper ('@' colour 15) in view, 1 new item", ((1, 5, "@", 15),), 1, (False, True)),
    ("a shopkeeper in view, no new item", ((1, 5, "@", 15),), 0, (False, False)),
    ("an altar ('_' colour 7) in view, 2 new items", ((6, 0, "_", 7),), 2, (True, False)),
    ("an altar in view, no new item", ((6, 0, "_", 7),), 0, (False, False)),
    ("a red '@' (colour 1, not a shopkeeper) in view, 1 new item", ((2, 2, "@", 1),), 1, (False, False)),
    ("a shopkeeper and an altar in view, 1 new item", ((0, 0, "@", 15), (4, 6, "_", 7)), 1, (True, True)),
)
TERMINATION_CASES = (  # (skill, skill_time, current_depth, previous_depth, preconditions, expected)
    ("discoverer", 499, 1, 1, [False, False], False),
    ("discoverer", 500, 1, 1, [False, False], True),
    ("descender", 100_000, 2, 2, [False, False], False),
    ("descender", 3, 3, 2, [False, False], True),
    ("ascender", 3, 2, 3, [False, False], True),
    ("ascender", 3, 3, 3, [False, False], False),
    ("merchant", 9_999, 2, 2, [False, False], False),
    ("merchant", 10_000, 2, 2, [False, False], True),
    ("worshipper", 10_000, 2, 2, [False, False], True),
    ("discoverer", 3, 1, 1, [True, False], True),
    ("descender", 3, 2, 2, [False, True], True),
)
_TEST_BASE = ("class NetHackPlayer:\n    def __init__(self, max_depth, branch_depth):\n"
              "        self.max_depth = max_depth\n")


def _window(cells) -> tuple[list, list]:
    chars, colors = [[32] * 7 for _ in range(7)], [[0] * 7 for _ in range(7)]
    for row, col, char, color in cells:
        chars[row][col], colors[row][col] = ord(char), color
    return chars, colors


def init_term_tests(methods: dict[str, str], runner, seed: int = 0) -> tuple[list[str], dict[str, bool]]:
    """Run the unit tests of initiation/termination methods (name -> source; a missing one is not
    tested) in `runner`, with the training settings (Discoverer 500 turns, Merchant/Worshipper 10,000).
    Returns (one line per case, {method: all its cases passed})."""
    parts = [f"import random\n\nSETTINGS = {SETTINGS[TRAINING].as_dict()!r}\n", _TEST_BASE,
             layer(top_level_defs(init_term_layer(methods))), layer(top_level_defs(_read("initial_values")))]
    source = "\n\n".join(parts)
    lines: list[str] = []
    passed = {m: False for m in INIT_TERM_METHODS if m in methods}
    try:
        handle = runner.load(source, INIT_TERM, seed=seed)
    except Exception as e:  # noqa: BLE001 - SandboxError, or anything the runner reports
        return [f"[the code could not be loaded: {e}]"], passed
    try:
        try:
            player = handle.new_player(seed=seed)
        except Exception as e:  # noqa: BLE001
            return [f"[the code could not be loaded: {e}]"], passed
        if "skill_precondition" in methods:
            ok = True
            for what, cells, num_items, expected in PRECONDITION_CASES:
                chars, colors = _window(cells)
                try:
                    got = player.call("skill_precondition", {"grid": chars}, {"grid": colors}, num_items,
                                      COLOR_MAP)
                    good = isinstance(got, list) and len(got) == 2 and tuple(bool(v) for v in got) == expected
                except Exception as e:  # noqa: BLE001
                    got, good = f"an error: {e}", False
                ok &= good
                lines.append(f"skill_precondition with {what}: returned {got}, expected (worshipper_"
                             f"precondition, merchant_precondition) = {expected}: "
                             f"{'ok' if good else 'WRONG'}")
            passed["skill_precondition"] = ok
        if "skill_termination" in methods:
            ok = True
            for *args, expected in TERMINATION_CASES:
                try:
                    got = player.call("skill_termination", *args)
                    good = isinstance(got, (bool, int)) and bool(got) == expected
                except Exception as e:  # noqa: BLE001
                    got, good = f"an error: {e}", False
                ok &= good
                call = ", ".join(repr(a) for a in args)
                lines.append(f"skill_termination({call}): returned {got}, expected {expected}: "
                             f"{'ok' if good else 'WRONG'}")
            passed["skill_termination"] = ok
    finally:
        handle.close()
    return lines, passed


def init_term_provenance(program: str | Path) -> dict:
    """Which initiation/termination functions `program` runs with, for evaluation records.

    program: what `load_program` is given (a program name = our reference, or a codegen folder
    <codegen>/<program>/seed<k> or its program.py). Returns {"path", "sha256", "source", "functions"}:
    source "llm" (both functions written by the coder, tests passed), "mixed" (one of them) or
    "reference" (programs/init_term.py: a program by name, generation switched off, or the coder's
    functions failed their tests); functions: {method: "llm" | "reference-fallback" | "reference"}.
    """
    path = Path(program)
    folder = path.parent if path.name == "program.py" else path
    summary_path = folder / "summary.json"
    if str(program) not in SETTINGS and summary_path.is_file():
        import json

        record = json.loads(summary_path.read_text()).get("init_term")
        if record:  # written by the codegen stage: the init_term output this program was composed with
            return {"path": str(folder.parent.parent / record["path"]), "sha256": record["sha256"],
                    "source": record["source"], "functions": dict(record["functions"])}
    reference = PROGRAMS_DIR / "init_term.py"
    return {"path": str(reference), "sha256": hashlib.sha256(reference.read_bytes()).hexdigest(),
            "source": "reference", "functions": {m: "reference" for m in INIT_TERM_METHODS}}

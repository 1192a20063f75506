"""Small variants of the task families: the same success checks on small hand-built levels.

At the ci and small profiles the paper's tasks (reach the Gnomish Mines, sell in a shop, identify on an
altar, ...) score about 0 for every method, so a regression cannot move any number. Each variant here
keeps its task's tracker (benchmark.trackers), metric, character, options, 28 actions and macros; it only
changes the first dungeon levels, so that a competent agent succeeds within a few hundred steps:

    variant             family        levels (benchmark/levels/*.des)   success check
    gnomish_small       navigation    DL1 nav1, DL2 mines_fork          GnomishMines, unchanged
    delphi_small        navigation    DL1 nav1, DL2 nav2                Delphi's check, target "Level 3"
    transactions_small  interaction   DL1 shop                          Transactions, unchanged
    price_small         interaction   DL1 shop                          PriceIdentified, unchanged
    buc_small           interaction   DL1 altar                         BUCIdentified, unchanged
    goldenexit_small    composite     DL1 gold                          GoldenExit: 3 kills, 10 gold, DL1
    levelupsell_small   composite     DL1 shop                          LevelUpSell: 100 steps after a sale

How the levels reach the game: NetHack reads its levels and the dungeon layout from the `nhdat` archive
of the env's private copy of HACKDIR (NLE links it there). For a variant we unpack NLE's own nhdat,
compile our des-files with NLE's `lev_comp`, compile an edited copy of NLE's `dungeon.def` with
`dgn_comp` (our levels pinned to depths 1-2, branches moved where the variant needs them) and pack a new
nhdat with `dlb`: this is what MiniHack does, except that every other special level stays (Mines, Oracle,
Sokoban...). So deeper levels are the real game. `benchmark.env.make(task="<variant>")` installs it in
the env before the first reset; nothing installed is patched.

Randomness: the layout is fixed per variant, but stairs, items, gold and monsters are drawn from small
regions by the game's RNG, so the episode seed (benchmark.env.SeededReset) decides them.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import nle
from nle.nethack.nethack import HACKDIR

from benchmark.provenance import sha256_hex
from benchmark.trackers import (BUCIdentified, GnomishMines, GoldenExit, LevelUpSell, NavigationTask,
                                PriceIdentified, Task, Transactions)

log = logging.getLogger(__name__)

LEVELS_DIR = Path(__file__).resolve().parent / "levels"
# Where a special level goes in NLE's dungeon.def: right after the branch line of the Mines.
_MINES_BRANCH = 'BRANCH:\t\t"The Gnomish Mines" @ (2, 3)'


class VariantError(RuntimeError):
    """A variant's levels failed to build or were not installed; the message says what to do."""


@dataclass(frozen=True)
class Variant:
    """One small task variant: the levels that replace the first dungeon levels, and where the Mines start."""

    name: str                    # the task name, e.g. "gnomish_small"
    base_task: str               # the paper task whose tracker (or criterion) it keeps
    levels: tuple[str, ...]      # des-file stems in benchmark/levels/, for DL1, DL2, ... in order
    mines_branch: str = "(2, 3)"  # dungeon.def placement of the Gnomish Mines branch (NetHack's default)
    summary: str = ""

    def dungeon_def(self, original: str) -> str:
        """NLE's dungeon.def with our levels pinned to DL1.. and the Mines branch moved."""
        if _MINES_BRANCH not in original:
            raise VariantError(f"NLE {nle.__version__}'s dungeon.def has no line {_MINES_BRANCH!r}; "
                               "benchmark/variants.py must be updated for this NLE version")
        pinned = "".join(f'LEVEL:\t\t"{self.level_name(i)}" "none" @ ({i + 1}, 0)\n'
                         for i in range(len(self.levels)))
        branch = f'BRANCH:\t\t"The Gnomish Mines" @ {self.mines_branch}'
        return original.replace(_MINES_BRANCH, branch + "\n" + pinned.rstrip("\n"), 1)

    def level_name(self, index: int) -> str:
        # NetHack names level files after the des-file's level name; ours are "mm" + stem (<= 8 chars).
        return _level_name(self.levels[index])


def _level_name(stem: str) -> str:
    return "mm" + stem.replace("_", "")[:6]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("gnomish_small", "gnomish", ("nav1", "mines_fork"), mines_branch="(2, 0)",
            summary="DL1: a room with the down stairs a few steps away; DL2: the Mines staircase near the "
                    "arrival, the main one farther. Success: #overview shows the Gnomish Mines after a "
                    "descent."),
    Variant("delphi_small", "delphi", ("nav1", "nav2"), mines_branch="(3, 2)",
            summary="DL1 and DL2: small rooms with the down stairs a few steps away. Success: #overview "
                    "shows 'Level 3' after a descent (the Delphi check with a nearer depth)."),
    Variant("transactions_small", "transactions", ("shop",),
            summary="DL1: a room with 3-4 unidentified scrolls and potions and a general store with its "
                    "shopkeeper behind one door. Metric: number of 'sold' messages."),
    Variant("price_small", "price", ("shop",),
            summary="The shop level of transactions_small. Metric: sales whose offer identifies the "
                    "item's price."),
    Variant("buc_small", "buc", ("altar",),
            summary="DL1: a room with 3-4 unidentified scrolls and potions and an altar. Metric: drops on "
                    "the altar that reveal the item's B/U/C status."),
    Variant("goldenexit_small", "goldenexit", ("gold",),
            summary="DL1: a room with gold piles and weak monsters. Success: 3 kills and 10 gold, then the "
                    "'Still climb?' prompt on the up stairs of DL1."),
    Variant("levelupsell_small", "levelupsell", ("shop",),
            summary="The shop level of transactions_small. Success: a sale, then 100 more steps alive."),
)}


# ----- building nhdat ---------------------------------------------------------------------------------
_cache_lock = threading.Lock()
_cache_dir: Path | None = None
_built: dict[str, Path] = {}


def _tool(name: str) -> Path:
    path = Path(HACKDIR) / name
    if not path.exists():
        raise VariantError(f"NLE's {name} is missing at {path}; the small variants need NLE's level tools "
                           "(nle 1.3.0 ships them in nle/nethackdir)")
    return path


def _run(cmd: list, cwd: Path, what: str) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    # lev_comp reports syntax errors on stdout (exit 1); NetHack would silently make a random level instead.
    if result.returncode != 0 or "error" in (result.stdout + result.stderr).lower():
        output = (result.stdout + result.stderr).strip()
        raise VariantError(f"{what} failed (exit {result.returncode}): {output}")


def _sources(variant: Variant) -> dict[str, str]:
    sources = {}
    for stem in variant.levels:
        path = LEVELS_DIR / f"{stem}.des"
        if not path.exists():
            raise VariantError(f"variant {variant.name!r} needs {path}, which is missing")
        sources[stem] = path.read_text()
    return sources


def _check_level_name(stem: str, text: str) -> None:
    expected = f'MAZE: "{_level_name(stem)}"'
    if expected not in text:
        raise VariantError(f"benchmark/levels/{stem}.des must start its level with {expected}, ...")


def build_nhdat(variant: Variant, out: Path) -> Path:
    """Write to `out` NLE's nhdat with the variant's levels and dungeon layout compiled in."""
    work = Path(tempfile.mkdtemp(prefix=f"mm-{variant.name}-"))
    try:
        _run([_tool("dlb"), "xf", Path(HACKDIR) / "nhdat"], work, "unpacking NLE's nhdat")
        original = (Path(HACKDIR) / "dat" / "dungeon.def").read_text()
        # dgn_comp writes `dungeon` from a file named `dungeon.pdf` (its only accepted input name).
        (work / "dungeon.pdf").write_text(variant.dungeon_def(original))
        _run([_tool("dgn_comp"), "dungeon.pdf"], work, f"dgn_comp on the dungeon of {variant.name}")
        (work / "dungeon.pdf").unlink()
        for stem, text in _sources(variant).items():
            _check_level_name(stem, text)
            des = work / f"{stem}.des"
            des.write_text(text)
            _run([_tool("lev_comp"), des.name], work, f"lev_comp on benchmark/levels/{stem}.des")
            des.unlink()
            if not (work / f"{_level_name(stem)}.lev").exists():
                raise VariantError(f"lev_comp wrote no {_level_name(stem)}.lev "
                                   f"for benchmark/levels/{stem}.des")
        members = sorted(p.name for p in work.iterdir())
        _run([_tool("dlb"), "cf", "nhdat", *members], work, "packing nhdat")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work / "nhdat"), out)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fingerprint(variant: Variant) -> str:
    parts = [repr(variant).encode(), nle.__version__.encode()]
    parts += [stem.encode() + b"\0" + text.encode() for stem, text in _sources(variant).items()]
    return sha256_hex(b"".join(parts))


def nhdat_for(variant: Variant) -> Path:
    """The variant's nhdat, built once per process (about 0.1 s) into a temporary folder."""
    global _cache_dir
    key = f"{variant.name}-{_fingerprint(variant)}"
    with _cache_lock:
        if key not in _built:
            if _cache_dir is None:
                _cache_dir = Path(tempfile.mkdtemp(prefix="mm-variants-"))
                atexit.register(shutil.rmtree, _cache_dir, True)
            _built[key] = build_nhdat(variant, _cache_dir / key / "nhdat")
            log.info("built the levels of %s (%s)", variant.name, ", ".join(variant.levels))
        return _built[key]


def install(env, variant: Variant) -> None:
    """Make the (not yet reset) PaperNetHack `env` play the variant's levels from its next game on."""
    base = env.unwrapped
    nhdat = Path(base.nethack._vardir) / "nhdat"  # NLE's per-env HACKDIR: a link to the installed nhdat
    tmp = nhdat.with_name("nhdat.variant")
    shutil.copyfile(nhdat_for(variant), tmp)
    tmp.replace(nhdat)
    base.variant = variant.name


# ----- trackers -----------------------------------------------------------------------------------------
class VariantTask(Task):
    """Mixin for the trackers of small variants: installs the levels (benchmark.env.make calls
    `install_level`) and refuses to score an env that plays the normal dungeon."""

    variant: ClassVar[Variant]

    def install_level(self, env) -> None:
        install(env, self.variant)

    def update(self, obs, action, next_obs, info, env) -> None:
        if getattr(env, "variant", None) != self.variant.name:
            raise VariantError(
                f"task {self.name!r} needs its own levels; build the env with "
                f"benchmark.env.make(task={self.name!r}) (wrap_task on a plain env plays the normal dungeon)"
            )
        super().update(obs, action, next_obs, info, env)


class GnomishMinesSmall(VariantTask, GnomishMines):
    name = "gnomish_small"
    variant = VARIANTS["gnomish_small"]


class DelphiSmall(VariantTask, NavigationTask):
    """The Delphi check (#overview after a descent shows the target depth) with depth 3 for 7."""

    name = "delphi_small"
    variant = VARIANTS["delphi_small"]
    targets = ("Level 3",)


class TransactionsSmall(VariantTask, Transactions):
    name = "transactions_small"
    variant = VARIANTS["transactions_small"]


class PriceIdentifiedSmall(VariantTask, PriceIdentified):
    name = "price_small"
    variant = VARIANTS["price_small"]


class BUCIdentifiedSmall(VariantTask, BUCIdentified):
    name = "buc_small"
    variant = VARIANTS["buc_small"]


class GoldenExitSmall(VariantTask, GoldenExit):
    """GoldenExit's check with smaller prerequisites: 3 kills, 10 gold, no depth; then the climb prompt."""

    name = "goldenexit_small"
    variant = VARIANTS["goldenexit_small"]
    kills_needed = 3
    gold_needed = 10
    depth_needed = 1


class LevelUpSellSmall(VariantTask, LevelUpSell):
    """LevelUpSell's check (a sale, then survive) with 100 steps instead of 300, to fit small episode caps."""

    name = "levelupsell_small"
    variant = VARIANTS["levelupsell_small"]
    steps_after_sale = 100


VARIANT_TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (GnomishMinesSmall, DelphiSmall, TransactionsSmall, PriceIdentifiedSmall,
                              BUCIdentifiedSmall, GoldenExitSmall, LevelUpSellSmall)
}
assert set(VARIANT_TASKS) == set(VARIANTS)  # registered with the paper's tasks in benchmark.tasks.TASKS


def small_variant(task: str) -> str | None:
    """The small variant of a paper task ("gnomish" -> "gnomish_small"), or None."""
    return next((v.name for v in VARIANTS.values() if v.base_task == task), None)

"""The paper's 9 evaluation tasks as trackers that watch transitions (docs/method.md §9).

The registry of every task (these and the small variants) is benchmark.tasks.

Each tracker reproduces the success check or count of the official code (`rl_baseline/monk_tasks_nle.py`,
`obs_wrappers.py`, `price_id.py` at commit 268cf45), including its proxies: the navigation tasks read
the #overview screen after each "You descend the stairs." instead of detecting the level itself.

    env = make(task="delphi", seed=0)          # or wrap_task(make(seed=0), "delphi")
    obs, info = env.reset()
    ... info["task"] == {"name", "category", "metric", "value", "success"}

A tracker never changes what the agent sees; it may ask the env for the #overview text
(`PaperNetHack.overview_text`), which is opened and closed between two agent steps.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nle import nethack
from nle.env.base import NLE
from nle.nethack.actions import Command
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

TASK_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "task"
CATEGORIES = ("navigation", "interaction", "composite")
METRICS = ("success", "count")
GNOMISH_MINES_DNUM = 2  # blstats dungeon number of the Mines (0 = Dungeons of Doom)
EXIT_PROMPT_WORD = "climb"  # in NetHack's "Beware, there will be no return!  Still climb?"


class TaskError(ValueError):
    """Unknown task name or a bad conf/task file; the message lists what is valid."""


@dataclass
class TaskConfig:
    """conf/task/<name>.yaml: what a task is, for the evaluator and the LLM coder."""

    name: str
    title: str          # as in the paper's tables
    category: str       # navigation | interaction | composite
    metric: str         # success | count
    description: str    # the task text the LLM coder gets
    max_depth: int      # deployment setting of the generated policy over skills
    discoverer_skill_steps: int  # deployment setting: Discoverer runs this many turns
    variant: str = "full"


# ----- NetHack's base prices (objects.c, NetHack 3.6), by the word the shopkeeper's offer ends with ----
# Only the object classes the official price_id.py knows; within a class only objects whose names are
# randomised (those are the ones a price identifies).
BASE_PRICES: dict[str, dict[int, tuple[str, ...]]] = {
    "potion": {
        50: ("booze", "fruit juice", "see invisible", "sickness"),
        100: ("confusion", "extra healing", "hallucination", "healing", "restore ability", "sleeping",
              "water"),
        150: ("blindness", "gain energy", "invisibility", "monster detection", "object detection"),
        200: ("enlightenment", "full healing", "levitation", "polymorph", "speed"),
        250: ("acid", "oil"),
        300: ("gain ability", "gain level", "paralysis"),
    },
    "scroll": {
        20: ("identify",),
        50: ("light",),
        60: ("blank paper", "enchant weapon"),
        80: ("enchant armor", "remove curse"),
        100: ("confuse monster", "destroy armor", "fire", "food detection", "gold detection",
              "magic mapping", "scare monster", "teleportation"),
        200: ("amnesia", "create monster", "earth", "taming"),
        300: ("charging", "genocide", "punishment", "stinking cloud"),
    },
    "ring": {
        100: ("adornment", "hunger", "protection", "protection from shape changers", "stealth",
              "sustain ability", "warning"),
        150: ("aggravate monster", "cold resistance", "gain constitution", "gain strength",
              "increase accuracy", "increase damage", "invisibility", "poison resistance",
              "see invisible", "shock resistance"),
        200: ("fire resistance", "free action", "levitation", "regeneration", "searching",
              "slow digestion", "teleportation"),
        300: ("conflict", "polymorph", "polymorph control", "teleport control"),
    },
    "wand": {
        100: ("light", "nothing"),
        150: ("digging", "enlightenment", "locking", "magic missile", "make invisible", "opening",
              "probing", "secret door detection", "slow monster", "speed monster", "striking",
              "undead turning"),
        175: ("cold", "fire", "lightning", "sleep"),
        200: ("cancellation", "create monster", "polymorph", "teleportation"),
        500: ("death", "wishing"),
    },
    "cloak": {
        50: ("cloak of displacement", "cloak of protection"),
        60: ("cloak of invisibility", "cloak of magic resistance"),
    },
    "boots": {
        8: ("elven boots", "kicking boots"),
        30: ("fumble boots", "levitation boots"),
        50: ("jumping boots", "speed boots", "water walking boots"),
    },
    "helmet": {
        10: ("helmet",),
        50: ("helm of brilliance", "helm of opposite alignment", "helm of telepathy"),
    },
}


def price_identifies(message: str) -> bool:
    """Whether a shopkeeper's "... offers N gold pieces for your X.  Sell it?" identifies X by price.

    As the official price_id.py: the offer doubled must be a base price of the item's class; the
    class is the word after "your" for scrolls, else the word before "Sell".
    """
    words = message.split()
    if "gold" not in words or "Sell" not in words:
        return False
    try:
        price = int(words[words.index("gold") - 1])
    except ValueError:
        return False
    if "scroll" in message:
        if "your" not in words or words.index("your") + 1 >= len(words):
            return False
        item = words[words.index("your") + 1]
    else:
        item = words[words.index("Sell") - 1].replace(".", "")
    return price * 2 in BASE_PRICES.get(item, {})


# ----- message criteria of the trackers (also counted in the collected data: maestromotif.data.events) ---
def is_sale(message: str) -> bool:
    """A sale as Transactions, PriceIdentified and LevelUpSell see it: "sold" anywhere in the message."""
    return "sold" in message


def is_kill(message: str) -> bool:
    """A kill as GoldenExit counts it: "kill" or "destroy" anywhere (so a pet's kill counts too)."""
    return "kill" in message or "destroy" in message


def mentions_altar(message: str) -> bool:
    """The word BUCIdentified looks for after a DROP (it also needs neither "cursed" nor "blessed")."""
    return "altar" in message


def _message(env) -> str:
    return env.message().decode("latin-1")  # latin-1: byte for byte, so substring tests are unchanged


# ----- trackers ---------------------------------------------------------------------------------------
class Task(ABC):
    """Watches one episode; subclasses implement `_step`. One instance per env, reset per episode."""

    name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    metric: ClassVar[str] = ""

    def __init__(self, config: TaskConfig | None = None):
        self.config = config or read_task_config(self.name, type(self))
        self.value = 0.0
        self.done = False

    @property
    def success(self) -> bool:
        return self.value > 0

    def reset(self, obs) -> None:
        self.value = 0.0
        self.done = False
        self._overview_pending = False

    def update(self, obs, action: int, next_obs, info: dict, env) -> None:
        """obs: the previous frame (message and blstats only), next_obs: the new one, env: PaperNetHack."""
        if not self.done:
            self._step(obs, action, next_obs, info, env)

    @abstractmethod
    def _step(self, obs, action, next_obs, info, env) -> None:
        """Update value/done from one transition (each task's own criterion)."""

    def _overview_after_descent(self, info: dict, env) -> str | None:
        """The #overview text after a "You descend the stairs." (retried next step if a prompt is open)."""
        if not (info.get("descended") or self._overview_pending):
            return None
        text = env.overview_text()
        self._overview_pending = text is None
        return text


class NavigationTask(Task):
    """Success when the #overview text after a descent contains one of `targets`; the episode ends."""

    category = "navigation"
    metric = "success"
    targets: ClassVar[tuple[str, ...]] = ()

    def _step(self, obs, action, next_obs, info, env) -> None:
        text = self._overview_after_descent(info, env)
        if text is not None and any(t in text for t in self.targets):
            self.value, self.done = 1.0, True


class GnomishMines(NavigationTask):
    name = "gnomish"
    targets = ("Gnomish Mines",)


class Delphi(NavigationTask):
    name = "delphi"
    targets = ("Level 7",)  # official proxy: "average depth of Delphi"; the Oracle is not detected


class Minetown(NavigationTask):
    name = "minetown"
    targets = (  # official proxy: "average depth of Minetown"
        "The Gnomish Mines: levels 2 to 4",
        "The Gnomish Mines: levels 3 to 5",
        "The Gnomish Mines: levels 4 to 6",
    )


class Transactions(Task):
    """Count of steps whose message contains "sold"."""

    name = "transactions"
    category = "interaction"
    metric = "count"

    def _step(self, obs, action, next_obs, info, env) -> None:
        if is_sale(_message(env)):
            self.value += 1


class PriceIdentified(Task):
    """Count of sales right after a "Sell it?" offer whose price identifies the item class."""

    name = "price"
    category = "interaction"
    metric = "count"

    def reset(self, obs) -> None:
        super().reset(obs)
        self._offer_identifies = False

    def _step(self, obs, action, next_obs, info, env) -> None:
        msg = _message(env)
        if is_sale(msg) and self._offer_identifies:
            self.value += 1
        self._offer_identifies = "Sell" in msg and price_identifies(msg)


class BUCIdentified(Task):
    """Count of DROP actions whose message mentions the altar but neither "cursed" nor "blessed"."""

    name = "buc"
    category = "interaction"
    metric = "count"

    def _step(self, obs, action, next_obs, info, env) -> None:
        if env.actions[action] != Command.DROP:
            return
        msg = _message(env)
        if mentions_altar(msg) and "cursed" not in msg and "blessed" not in msg:
            self.value += 1


def _exit_prompt_shown(info: dict, env) -> bool:
    """Whether this step showed the y/n prompt of leaving the dungeon ("... Still climb?", going up from DL1).

    Only a y/n prompt counts, as in the official code: the message "You climb up the stairs." of an
    ordinary ascent is no exit. The env declines the prompt (info["declined"]) unless y/n questions
    are left to the agent, in which case it is still open.
    """
    prompts = list(info.get("declined", ()))
    if env.last_observation[env._internal_index][1]:  # a y/n prompt is open
        prompts.append(env.message().decode("latin-1"))
    return any(EXIT_PROMPT_WORD in p for p in prompts)


class GoldenExit(Task):
    """25 kills, 20 gold and depth 3 reached, then the "Still climb?" prompt of leaving the dungeon."""

    name = "goldenexit"
    category = "composite"
    metric = "success"
    kills_needed: ClassVar[int] = 25
    gold_needed: ClassVar[int] = 20
    depth_needed: ClassVar[int] = 3

    def reset(self, obs) -> None:
        super().reset(obs)
        self.kills, self.gold, self.max_depth = 0, 0, 1
        self.prereq_met = False

    def _step(self, obs, action, next_obs, info, env) -> None:
        msg = _message(env)
        # As in the official code, the exit counts only if the prerequisites held before this step.
        if self.prereq_met and _exit_prompt_shown(info, env):
            self.value, self.done = 1.0, True
            return
        if is_kill(msg):
            self.kills += 1
        blstats = env.blstats()
        self.gold = int(blstats[nethack.NLE_BL_GOLD])
        self.max_depth = max(self.max_depth, int(blstats[nethack.NLE_BL_DEPTH]))
        self.prereq_met = (
            self.kills >= self.kills_needed and self.gold >= self.gold_needed
            and self.max_depth >= self.depth_needed
        )


class LevelUpSell(Task):
    """After any "sold" message, success once the hero has lived through 300 more env steps."""

    name = "levelupsell"
    category = "composite"
    metric = "success"
    steps_after_sale: ClassVar[int] = 300

    def reset(self, obs) -> None:
        super().reset(obs)
        self.prereq_met = False
        self.steps_since_sale = 0

    def _step(self, obs, action, next_obs, info, env) -> None:
        if self.prereq_met and info.get("end_status") != NLE.StepStatus.DEATH:
            self.steps_since_sale += 1
            if self.steps_since_sale > self.steps_after_sale:  # official: counter > 300
                self.value, self.done = 1.0, True
                return
        if is_sale(_message(env)):
            self.prereq_met = True


class DiscoveryHunger(Task):
    """An eat macro completed in the Gnomish Mines, then "Level 7" in the #overview after a descent."""

    name = "discoveryhunger"
    category = "composite"
    metric = "success"
    targets: ClassVar[tuple[str, ...]] = ("Level 7",)

    def reset(self, obs) -> None:
        super().reset(obs)
        self.prereq_met = False

    def _step(self, obs, action, next_obs, info, env) -> None:
        if self.prereq_met:
            text = self._overview_after_descent(info, env)
            if text is not None and any(t in text for t in self.targets):
                self.value, self.done = 1.0, True
                return
        if info.get("ate") and int(env.blstats()[nethack.NLE_BL_DNUM]) == GNOMISH_MINES_DNUM:
            self.prereq_met = True


PAPER_TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (GnomishMines, Delphi, Minetown, Transactions, PriceIdentified, BUCIdentified,
                GoldenExit, LevelUpSell, DiscoveryHunger)
}


def read_task_config(name: str, cls: type[Task], conf_dir: Path | None = None) -> TaskConfig:
    """Read <conf_dir>/<name>.yaml (default conf/task) and check it against its tracker class `cls`."""
    path = (conf_dir or TASK_CONF_DIR) / f"{name}.yaml"
    if not path.exists():
        raise TaskError(f"{path} is missing; every task in TASKS needs its conf/task file")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TaskConfig), OmegaConf.load(path))
    except OmegaConfBaseException as e:
        raise TaskError(f"bad task config {path}: {e}") from e
    task = OmegaConf.to_object(cfg)
    for key, allowed, expected in (("name", None, name), ("category", CATEGORIES, cls.category),
                                   ("metric", METRICS, cls.metric)):
        got = getattr(task, key)
        if allowed is not None and got not in allowed:
            raise TaskError(f"{path}: {key} must be one of {allowed}, got {got!r}")
        if got != expected:
            raise TaskError(f"{path}: {key} is {got!r} but the tracker for {name!r} has {expected!r}")
    return task  # type: ignore[return-value]

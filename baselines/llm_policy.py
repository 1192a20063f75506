"""LLM Policy baseline: an LLM plays the task zero-shot, ReAct style (think, then act), one step at a time.

The paper used "Llama as a policy via ReAct" and gave no prompt, observation format or horizon
(docs/method.md §12.8). Ours follows BALROG's NLE agent (docs/method.md §10.1):
- the observation is text (baselines.text_obs: message, status, neighbours, things in view with
  direction and distance, inventory), under a system prompt with the task description and the 28
  action names with one-line meanings;
- the model answers "Thought: ... / Action: <NAME>"; the last "Action:" line is parsed;
- an answer without a valid action becomes the no-op (SEARCH: it spends one game turn doing something
  harmless, as BALROG's default action does), and the next prompt says the answer was invalid;
- the prompt repeats the last `history_len` (message, action) pairs, not whole observations, so a
  small model's context window holds it.
Two departures for CPU budgets, both documented in README "deviations": a step cap per episode after
which the policy plays the fixed no-op until the env ends the episode, and `auto_more`, which answers a
--More-- screen with MORE without asking the LLM (a screen where every other key is ignored).
Whenever the no-op is due while a --More-- is shown, MORE is played instead, or the game would stall.

Answer modes (`answer_mode`). "react" (the paper profile) is the above. "direct" (ci/small profiles, a
documented deviation): the embedded SmolLM2-135M never writes a valid "Action: NAME" (measured 16/16
invalid, so the agent searched forever). In direct mode each action is listed with a one-character label
(A..Z, then 1, 2), the assistant answer is prefilled with "Action:", and the engine is asked for ONE
token with its top-`logprobs` next-token log-probs; the action is the argmax over the labels found among
them (a label outside the top N counts as -inf; none found = an invalid answer, the no-op). No
thought is written, so it is one cheap forward pass per decision.

act() sends one conversation per env that needs an LLM decision in ONE engine.generate() call.
Token accounting per episode (prompt/completion tokens, LLM calls, invalid answers) is in
`policy.stats[i]`, for the evaluation records.

Size (~410 lines): the baseline's prompt, answer parsing and episode memory; its text observation is
baselines.text_obs.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import OmegaConf

from baselines.text_obs import TextObsConfig, at_more_prompt, render, task_goal_text
from benchmark.config import ConfigError
from benchmark.env import ACTION_INDEX, ACTION_NAMES, decode_message
from benchmark.io import read_json, write_json
from benchmark.method import Method, Policy

log = logging.getLogger(__name__)

ARTEFACT_FILE = "llm_policy.json"
ANSWER_MODES = ("react", "direct")

# One line per action, in the env's order (benchmark.env.ACTION_NAMES).
ACTION_MEANINGS = {
    "MORE": "press Enter: continue after a --More-- message",
    "N": "move (or attack) one step north",
    "E": "move (or attack) one step east",
    "S": "move (or attack) one step south",
    "W": "move (or attack) one step west",
    "NE": "move (or attack) one step northeast",
    "SE": "move (or attack) one step southeast",
    "SW": "move (or attack) one step southwest",
    "NW": "move (or attack) one step northwest",
    "FAR_N": "run north until something interesting happens",
    "FAR_E": "run east until something interesting happens",
    "FAR_S": "run south until something interesting happens",
    "FAR_W": "run west until something interesting happens",
    "FAR_NE": "run northeast until something interesting happens",
    "FAR_SE": "run southeast until something interesting happens",
    "FAR_SW": "run southwest until something interesting happens",
    "FAR_NW": "run northwest until something interesting happens",
    "UP": "climb up a staircase you stand on (<)",
    "DOWN": "go down a staircase you stand on (>)",
    "WAIT": "rest for one turn",
    "KICK": "kick something (a door, an object, a monster)",
    "EAT": "eat some food from your inventory",
    "SEARCH": "search the squares around you for hidden doors and passages",
    "CAST": "cast a spell you know",
    "ENHANCE": "improve your skills when the game says you can",
    "PRAY": "pray to your god (helps when HP is low or you are weak from hunger)",
    "QUAFF": "drink a potion from your inventory",
    "DROP": "drop an item (in a shop: offer it for sale; on an altar: learn if it is cursed)",
}
assert tuple(ACTION_MEANINGS) == ACTION_NAMES, "ACTION_MEANINGS must follow benchmark.env.ACTION_NAMES"

SYSTEM_PROMPT = """You are an agent playing NetHack, as a human neutral male Monk.
Your task: {task}

Each turn you read the current observation and choose exactly one action from this list:
{actions}

Answer in exactly this format:
Thought: <one short sentence about what to do>
Action: <one action name from the list>

Example answer:
Thought: The staircase down is 3 steps east, so I walk east.
Action: E"""

# one single-token label per action, in ACTION_NAMES order
DIRECT_LABELS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ12")
assert len(DIRECT_LABELS) == len(ACTION_NAMES)
DIRECT_PREFILL = "Action:"

DIRECT_SYSTEM_PROMPT = """You are an agent playing NetHack, as a human neutral male Monk.
Your task: {task}

Each turn you read the current observation and choose exactly one action. The actions, each with its letter:
{actions}

Answer with the letter of the action only."""  # no example letter: the 135M model copies it


def direct_action(top_logprobs: Optional[dict[str, float]]) -> tuple[Optional[int], dict[str, float]]:
    """(action index, {label: logprob} of the labels found) from one next-token distribution; the argmax
    label wins, labels outside the top N count as -inf, and None means no label was among them."""
    found: dict[str, float] = {}
    for token, logprob in (top_logprobs or {}).items():
        label = token.strip()
        if label in DIRECT_LABELS and logprob > found.get(label, -math.inf):
            found[label] = float(logprob)
    if not found:
        return None, found
    return DIRECT_LABELS.index(max(found, key=found.get)), found


# Words a model may write for an action; matched after upper-casing and joining words with "_".
_DIRECTION_WORDS = {"NORTH": "N", "EAST": "E", "SOUTH": "S", "WEST": "W", "NORTHEAST": "NE",
                    "SOUTHEAST": "SE", "SOUTHWEST": "SW", "NORTHWEST": "NW"}
ACTION_ALIASES = {
    **_DIRECTION_WORDS,
    **{f"FAR_{word}": f"FAR_{short}" for word, short in _DIRECTION_WORDS.items()},
    **{f"MOVE_{word}": short for word, short in _DIRECTION_WORDS.items()},
    **{f"MOVE_{short}": short for short in _DIRECTION_WORDS.values()},
    "DESCEND": "DOWN", "GO_DOWN": "DOWN", "ASCEND": "UP", "GO_UP": "UP", "ENTER": "MORE", "CONTINUE": "MORE",
}
# "Action: X" (X may also start the next line); markdown bold around the word is tolerated.
_ACTION_LINE = re.compile(r"action\**[ \t]*[:=][ \t*]*([^\n]*)", re.IGNORECASE)


def parse_action(text: str) -> Optional[int]:
    """The action index an answer names on its last "Action:" line (or as its whole text); None if none.

    Accepts the names of ACTION_NAMES in any case, with spaces or hyphens for "_", compass words
    ("north", "far northeast") and a few verbs ("descend"); anything else is invalid.
    """
    lines = []
    for match in _ACTION_LINE.finditer(text):
        rest = match.group(1).strip() or text[match.end():].strip().split("\n")[0]  # "Action:\nNAME"
        lines.append(rest)
    candidate = lines[-1] if lines else text
    words = re.findall(r"[A-Za-z]+", candidate.upper())
    if not lines and len(words) > 2:
        return None  # free text without an Action line: do not guess an action from it
    for n in (2, 1):  # longest match first: "far north" is FAR_N, "N because ..." is N
        if len(words) < n:
            continue
        name = "_".join(words[:n])
        name = ACTION_ALIASES.get(name, name)
        if name in ACTION_INDEX:
            return ACTION_INDEX[name]
    return None


@dataclass
class LLMPolicyConfig:
    """Settings of the LLM policy: a schema; the values live in conf/method/llm_policy.yaml
    (`default_config`), profile sizes in params `llm_policy`."""

    llm: str  # params section with the LLM config (conf/llm/*.yaml)
    max_steps_per_episode: Optional[int]  # LLM decisions per episode; then the fixed no-op. None: no cap
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    history_len: int
    noop_action: str
    auto_more: bool
    max_things: int
    include_inventory: bool
    seed: int  # sampling seed (the fit seed overrides it)
    answer_mode: str  # "react" (Thought + Action text) | "direct" (next-token log-probs over labels)
    logprobs: int

    def validate(self) -> "LLMPolicyConfig":
        if self.answer_mode not in ANSWER_MODES:
            raise ConfigError(f"llm_policy.answer_mode={self.answer_mode!r}: choose one of "
                              f"{', '.join(ANSWER_MODES)}")
        if self.logprobs < 1:
            raise ConfigError("llm_policy.logprobs must be >= 1")
        if self.noop_action not in ACTION_INDEX:
            raise ConfigError(f"llm_policy.noop_action={self.noop_action!r} is not an action: use one of "
                              f"{', '.join(ACTION_NAMES)}")
        if self.max_steps_per_episode is not None and self.max_steps_per_episode < 0:
            raise ConfigError("llm_policy.max_steps_per_episode must be >= 0 or null (no cap)")
        if self.max_tokens < 1 or self.history_len < 0 or self.max_things < 0:
            raise ConfigError("llm_policy.max_tokens must be >= 1, history_len and max_things >= 0")
        return self


def default_config(**overrides: Any) -> LLMPolicyConfig:
    """conf/method/llm_policy.yaml's settings (the one place their values live), `overrides` replacing them:
    for code and tests that build the policy without the method file going through Hydra."""
    from benchmark.evaluate import method_config_path

    raw = OmegaConf.load(method_config_path("llm_policy"))
    values = {k: v for k, v in raw.items() if k not in ("_target_", "benchmark")}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(LLMPolicyConfig), values, overrides)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except Exception as e:  # omegaconf: missing value, unknown key, wrong type
        raise ConfigError(f"LLM policy settings (conf/method/llm_policy.yaml, overrides "
                          f"{sorted(overrides)}): {e}") from e


@dataclass
class EpisodeMemory:
    """What one env slot remembers during an episode: recent steps, feedback, counters."""

    history_len: int
    history: deque = field(default_factory=deque)
    feedback: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    next_seed: Optional[int] = None  # seed of the episode that starts at the next episode_start

    def __post_init__(self) -> None:
        self.history = deque(maxlen=max(self.history_len, 1))
        self.stats = {"llm_steps": 0, "prompt_tokens": 0, "completion_tokens": 0, "invalid_answers": 0,
                      "truncated_answers": 0, "auto_more": 0, "noop_after_cap": 0, "env_steps": 0}


class LLMAgentPolicy(Policy):
    """The ReAct agent for a batch of envs sharing one engine."""

    def __init__(self, engine: Any, task: str, cfg: LLMPolicyConfig | None = None):
        self.engine = engine
        self.cfg = (cfg or default_config()).validate()
        self.task = task
        self.text_cfg = TextObsConfig(max_things=self.cfg.max_things,
                                      include_inventory=self.cfg.include_inventory)
        self.noop = ACTION_INDEX[self.cfg.noop_action]
        if self.cfg.answer_mode == "direct":
            self.system_prompt = DIRECT_SYSTEM_PROMPT.format(task=task, actions="\n".join(
                f"{label}: {n} ({m})" for label, (n, m) in zip(DIRECT_LABELS, ACTION_MEANINGS.items())))
        else:
            self.system_prompt = SYSTEM_PROMPT.format(
                task=task, actions="\n".join(f"{n}: {m}" for n, m in ACTION_MEANINGS.items()))
        self.stats: list[dict[str, Any]] = []  # per env slot: the current (or just finished) episode
        self.finished_episodes: list[dict[str, Any]] = []  # stats of episodes replaced by a new one
        self.model_id: Optional[str] = getattr(engine, "model_id", None)

    # -- Policy interface -------------------------------------------------------------------------------
    def initial_state(self, num_envs: int) -> list[EpisodeMemory]:
        state = [EpisodeMemory(self.cfg.history_len) for _ in range(num_envs)]
        self.stats = [m.stats for m in state]
        return state

    def seed_episodes(self, state: list[EpisodeMemory], env_ids, episode_seeds) -> list[EpisodeMemory]:
        """Called by the evaluation harness when env `env_ids[j]` starts episode seed `episode_seeds[j]`."""
        for i, s in zip(env_ids, episode_seeds):
            state[int(i)].next_seed = int(s)
        return state

    def episode_stats(self, i: int) -> dict[str, Any]:
        """Token accounting of env slot i's episode; read it after the step that ended the episode."""
        return dict(self.stats[i]) if i < len(self.stats) else {}

    def act(self, obs: dict[str, np.ndarray], state: list[EpisodeMemory], episode_start: np.ndarray):
        num_envs = len(state)
        for i in np.flatnonzero(np.asarray(episode_start, dtype=bool)):
            state[i] = self._new_episode(state[i])
        self.stats = [m.stats for m in state]
        actions = np.full(num_envs, self.noop, dtype=np.int64)
        asking: list[int] = []
        for i, memory in enumerate(state):
            memory.stats["env_steps"] += 1
            at_more = at_more_prompt(obs["tty_chars"][i])
            capped = self.cfg.max_steps_per_episode is not None and \
                memory.stats["llm_steps"] >= self.cfg.max_steps_per_episode
            if at_more and (self.cfg.auto_more or capped):
                actions[i] = ACTION_INDEX["MORE"]
                memory.stats["auto_more"] += 1
                self._remember(memory, obs, i, "MORE (automatic)")
            elif capped:
                actions[i] = self.noop
                memory.stats["noop_after_cap"] += 1
            else:
                asking.append(i)
        if asking:
            conversations = [self._conversation(state[i], {k: v[i] for k, v in obs.items()}) for i in asking]
            completions = self.engine.generate(conversations, self._sampling())
            for i, completion in zip(asking, completions):
                actions[i] = self._apply_answer(state[i], obs, i, completion)
        return actions, state

    # -- prompt and answer ------------------------------------------------------------------------------
    def _conversation(self, memory: EpisodeMemory, obs: dict[str, np.ndarray]) -> list[dict[str, str]]:
        parts = []
        if memory.history and self.cfg.history_len > 0:
            parts.append("Recent steps (oldest first):")
            parts.extend(f"- step {step}: message \"{msg or '(none)'}\"; you chose {action}"
                         for step, msg, action in memory.history)
            parts.append("")
        if memory.feedback:
            parts.extend([memory.feedback, ""])
        parts.append(f"Current observation (step {memory.stats['env_steps']}):")
        parts.append(render(obs, self.text_cfg))
        parts.append("")
        if self.cfg.answer_mode == "direct":
            parts.append("Choose your next action: answer with its letter.")
            return [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": "\n".join(parts)},
                    # prefilled: the next token is the label
                    {"role": "assistant", "content": DIRECT_PREFILL}]
        parts.append("Choose your next action. Answer with a 'Thought:' line, then an 'Action:' line.")
        return [{"role": "system", "content": self.system_prompt},
                {"role": "user", "content": "\n".join(parts)}]

    def _sampling(self):
        from maestromotif.llm import Sampling

        c = self.cfg
        if c.answer_mode == "direct":  # one token, read through its log-probs (the sampled token is unused)
            return Sampling(temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, max_tokens=1,
                            seed=c.seed, logprobs=c.logprobs)
        return Sampling(temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, max_tokens=c.max_tokens,
                        seed=c.seed)

    def _apply_answer(self, memory: EpisodeMemory, obs, i: int, completion) -> int:
        s = memory.stats
        s["llm_steps"] += 1
        s["prompt_tokens"] += int(completion.prompt_tokens)
        s["completion_tokens"] += int(completion.completion_tokens)
        if completion.finish_reason == "length" and self.cfg.answer_mode == "react":
            s["truncated_answers"] += 1
        self.model_id = completion.model_id
        if self.cfg.answer_mode == "direct":
            top = completion.top_logprobs[0] if completion.top_logprobs else None
            action, _ = direct_action(top)
        else:
            action = parse_action(completion.text)
        if action is None:
            s["invalid_answers"] += 1
            quoted = " ".join(completion.text.split())[:80]
            fix = ("Answer with one letter from the list." if self.cfg.answer_mode == "direct" else
                   "End your answer with a line 'Action: <NAME>' using a name from the list.")
            memory.feedback = (f"Your previous answer was invalid (\"{quoted}\"): {self.cfg.noop_action} was "
                               f"done instead. {fix}")
            self._remember(memory, obs, i, f"{self.cfg.noop_action} (invalid answer)")
            return self.noop
        memory.feedback = ""
        self._remember(memory, obs, i, ACTION_NAMES[action])
        return action

    def _remember(self, memory: EpisodeMemory, obs, i: int, action: str) -> None:
        if self.cfg.history_len > 0:
            message = decode_message(obs["message"][i]).strip()
            memory.history.append((memory.stats["env_steps"], message, action))

    def _new_episode(self, memory: EpisodeMemory) -> EpisodeMemory:
        if memory.stats["env_steps"] > 0:
            self.finished_episodes.append(dict(memory.stats))
        fresh = EpisodeMemory(self.cfg.history_len)
        if memory.next_seed is not None:  # the harness announced this episode's seed before its start
            fresh.stats["episode_seed"] = memory.next_seed
        return fresh


class LLMPolicy(Method):
    """Zero-shot: fit() only writes the resolved settings; policy() loads the engine (once) and acts."""

    name = "llm_policy"
    per_task = False

    def __init__(self, engine: Any = None, **settings: Any):
        self.settings = settings
        self.engine = engine  # injected (tests share one engine); else built from params on first use

    def config(self, params: Any = None) -> LLMPolicyConfig:
        """Constructor settings, overridden by the params' optional `llm_policy` section (profile sizes)."""
        merged = OmegaConf.merge(OmegaConf.structured(default_config()), self.settings)
        if params is not None and "llm_policy" in params:
            merged = OmegaConf.merge(merged, params["llm_policy"])
        return OmegaConf.to_object(merged).validate()  # type: ignore[union-attr]

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        from benchmark.provenance import record

        out_dir = Path(out_dir)
        cfg = self.config(params)
        cfg.seed = int(seed)
        if cfg.llm not in params:
            raise ConfigError(f"llm_policy.llm={cfg.llm!r} names no params section; use e.g. annotator_llm")
        llm = OmegaConf.to_container(params[cfg.llm], resolve=True)
        write_json(out_dir / ARTEFACT_FILE, {
            "method": self.name,
            "config": asdict(cfg),
            "llm_config": llm,
            "prompt_sha256": hashlib.sha256(
                (DIRECT_SYSTEM_PROMPT if cfg.answer_mode == "direct"
                 else SYSTEM_PROMPT).encode()).hexdigest()[:16],
            "provenance": record(stage="fit", profile=str(params.profile), root_seed=int(params.root_seed),
                                 method=self.name, seed=int(seed), llm_models=[str(llm.get("model"))]),
        })
        log.info("LLM policy: wrote %s (model %s, step cap %s, max_tokens %d)", out_dir / ARTEFACT_FILE,
                 llm.get("model"), cfg.max_steps_per_episode, cfg.max_tokens)
        return out_dir

    def policy(self, artefact: Path | None, task: str, params: Any) -> LLMAgentPolicy:
        if artefact is not None and (Path(artefact) / ARTEFACT_FILE).exists():
            saved = read_json(Path(artefact) / ARTEFACT_FILE)
            cfg = default_config(**saved["config"]).validate()  # a field added since: conf/'s value
            llm = saved["llm_config"]
        else:
            cfg = self.config(params)
            llm = params[cfg.llm]
        if self.engine is None:
            from maestromotif.llm import make_engine

            self.engine = make_engine(llm)
        return LLMAgentPolicy(self.engine, task_goal_text(task), cfg)

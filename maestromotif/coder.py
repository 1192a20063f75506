"""The LLM coder's conversation: prompt, extract the code, run it with its unit test in the sandbox, ask
the model to check the trace, rewrite, up to a number of refinements (docs/method.md §5.1-5.3).

`Coder` drives many `Step`s (one conversation each: a training sub-step, a task program or an
initiation/termination function, for one code seed) through that loop, batching the engine calls of one
prompt kind. The stage around it, which programs and seeds, the files and the fallbacks, is
maestromotif.codegen; `cfg` is its `codegen` section (maestromotif.codegen.CodegenConfig).
"""
from __future__ import annotations

import ast
import logging
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from benchmark.io import append_jsonl
from benchmark.seeding import derive_seed
from maestromotif.options import coder_prompts as P
from maestromotif.options.program import (INIT_TERM, SETTINGS, TRAINING, Program, compose, init_term_tests,
                                          interface_check, layer, method_source, stack_layers)
from maestromotif.options.sandbox import Sandbox, SandboxError

log = logging.getLogger(__name__)

INIT_TERM_STEPS = {"init_term/initiation": "skill_precondition", "init_term/termination": "skill_termination"}
# The released select_skill unit test leaves max_depth "to be defined"; we fill it when the model did not.
DEFAULT_UNIT_TEST_MAX_DEPTH = 4


# ---------------------------------------------------------------- parsing answers
_BLOCK = re.compile(r"```[ \t]*(?:python|py|Python)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(answer: str) -> Optional[str]:
    """The ```python block of an answer (the first one defining NetHackPlayer, else the first); None if
    none."""
    blocks = [b for b in _BLOCK.findall(answer) if b.strip()]
    if not blocks:
        return None
    for block in blocks:
        if "class NetHackPlayer" in block:
            return block
    return blocks[0]


def parse_verdict(answer: str) -> str:
    """'yes' | 'no' | 'unclear': the first yes/no word of the code_check answer.

    (The released script looked for 'yes' anywhere, so "No, ... yes" passed and "eyes" counted.)
    """
    m = re.search(r"\b(yes|no)\b", answer.lower())
    return m.group(1) if m else "unclear"


def generated_method(code: str, method: str) -> Optional[str]:
    """`NetHackPlayer.<method>` of an answer, or a top-level `def <method>(self, ...)`; None if neither."""
    found = method_source(code, method)
    if found is None:
        defs = [n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == method
                and n.args.args and n.args.args[0].arg == "self"]
        if defs:
            found = textwrap.dedent("\n".join(code.splitlines()[defs[0].lineno - 1: defs[0].end_lineno]))
    return found


def fill_unit_test(code: str, max_depth: int) -> str:
    """Make a block runnable: a left-over `max_depth = # to be defined` gets a number."""
    return re.sub(r"^(\s*max_depth\s*=\s*)#.*$", rf"\g<1>{max_depth}", code, flags=re.M)


# ---------------------------------------------------------------- one conversation
@dataclass
class Step:
    """One coder conversation: a training sub-step or a task program, for one code seed."""

    program: str
    step: str  # key of coder_prompts.INITIAL
    seed: int
    base_layers: list[str]  # policy layers the answer is layered on (what the model was shown)
    messages: list[dict]
    max_refinements: int
    log_path: Path
    max_tokens: int  # per code answer
    check_max_tokens: int  # per code_check answer
    attempt: int = 0
    waiting_for: str = "code"  # "code" | "check" | "done"
    code: Optional[str] = None
    run_ok: bool = False
    passed: bool = False
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_id: str = ""
    seconds: float = 0.0
    init_term: Optional[str] = None  # the init/term layer this seed's programs use (None: our reference)

    def log(self, event: str, **data: Any) -> None:
        append_jsonl(self.log_path, [{"event": event, "program": self.program, "step": self.step,
                                      "seed": self.seed, "attempt": self.attempt, "time": time.time(),
                                      **data}])

    def ask(self, content: str, kind: str) -> None:
        self.messages.append({"role": "user", "content": content})
        self.waiting_for = kind
        self.log("prompt", kind=kind, text=content)


class Coder:
    """Drives many Steps through the prompt → run → check → rewrite loop, batching engine calls."""

    def __init__(self, engine, cfg: Any, root_seed: int, sandbox: Sandbox):
        self.engine, self.cfg, self.root_seed, self.sandbox = engine, cfg, root_seed, sandbox

    def run(self, steps: list[Step]) -> None:
        for round_ in range(1, 10**6):
            pending = [s for s in steps if s.waiting_for in ("code", "check")]
            if not pending:
                return
            done = sum(s.waiting_for == "done" for s in steps)
            log.info("codegen round %d: %d request(s) pending, %d/%d conversation(s) finished (%d passed)",
                     round_, len(pending), done, len(steps), sum(s.passed for s in steps))
            groups: dict[tuple[int, str, int], list[Step]] = {}
            for s in pending:  # one engine call shares one token cap
                cap = s.max_tokens if s.waiting_for == "code" else s.check_max_tokens
                groups.setdefault((s.seed, s.waiting_for, cap), []).append(s)
            for (seed, kind, _), group in groups.items():
                for batch in self._batches(group):
                    self._generate(batch, seed, kind)

    def _batches(self, group: list[Step]) -> list[list[Step]]:
        """Split a group so that each engine call's prompts stay under max_batch_prompt_tokens (estimated)."""
        cap = self.cfg.max_batch_prompt_tokens
        if cap <= 0:
            return [group]
        batches, current, size = [], [], 0
        for s in group:
            tokens = sum(len(m["content"]) for m in s.messages) // 3 + 1
            if current and size + tokens > cap:
                batches.append(current)
                current, size = [], 0
            current.append(s)
            size += tokens
        return batches + ([current] if current else [])

    def _generate(self, group: list[Step], seed: int, kind: str) -> None:
        from maestromotif.llm import LLMError, Sampling

        sampling = Sampling(temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=self.cfg.top_k,
                            max_tokens=group[0].max_tokens if kind == "code" else group[0].check_max_tokens,
                            seed=derive_seed(self.root_seed, "codegen", seed))
        start = time.perf_counter()
        try:
            completions = self.engine.generate([s.messages for s in group], sampling)
        except LLMError as e:  # find which conversation(s) the engine refused
            if len(group) == 1:
                self._fail(group[0], f"the coder model refused the request: {e}")
                return
            for s in group:
                self._generate([s], seed, kind)
            return
        per_request = (time.perf_counter() - start) / len(group)
        for s, c in zip(group, completions):
            s.prompt_tokens += c.prompt_tokens
            s.completion_tokens += c.completion_tokens
            s.model_id = c.model_id
            s.seconds += per_request
            s.messages.append({"role": "assistant", "content": c.text})
            s.log("answer", kind=kind, text=c.text, prompt_tokens=c.prompt_tokens,
                  completion_tokens=c.completion_tokens, finish_reason=c.finish_reason, model_id=c.model_id)
            if kind == "code":
                self._on_code(s, c.text)
            else:
                self._on_check(s, c.text)

    def _fail(self, s: Step, reason: str) -> None:
        s.passed, s.reason, s.waiting_for = False, reason, "done"
        s.log("result", passed=False, reason=reason)

    def _on_code(self, s: Step, answer: str) -> None:
        if s.program == INIT_TERM:
            self._on_init_term_code(s, answer)
            return
        code = extract_code(answer)
        if code is None:
            trace, s.run_ok = "[no ```python block in the answer]", False
            s.code = None
        else:
            s.code = fill_unit_test(code, SETTINGS[s.program].max_depth[1] if s.program != TRAINING
                                    else DEFAULT_UNIT_TEST_MAX_DEPTH)
            trace, s.run_ok = self._execute(s)
        s.log("run", ok=s.run_ok, code=s.code, trace=trace)
        s.ask(P.CODE_CHECK[s.step].format(trace), "check")

    def _on_init_term_code(self, s: Step, answer: str) -> None:
        """An initiation/termination answer: our unit tests decide (no code_check question); failing cases
        go back to the model while refinements remain."""
        method = INIT_TERM_STEPS[s.step]
        code, s.code = extract_code(answer), None
        if code is None:
            trace, ok = "[no ```python block in the answer]", False
        else:
            try:
                s.code = generated_method(code, method)
            except SyntaxError as e:
                trace, ok = f"[the code does not parse: {e}]", False
            else:
                if s.code is None:
                    trace, ok = f"[the answer defines no method NetHackPlayer.{method}]", False
                else:
                    lines, passed = init_term_tests({method: s.code}, self.sandbox, seed=s.seed)
                    trace, ok = "\n".join(lines), passed[method]
        s.run_ok = ok
        s.log("run", ok=ok, code=s.code, trace=trace)
        if ok:
            s.passed, s.reason, s.waiting_for = True, "passed", "done"
            s.log("result", passed=True, reason="passed")
        elif s.attempt >= s.max_refinements:
            why = trace.splitlines()[0] if trace.startswith("[") else "wrong results"
            self._fail(s, f"unit tests not passed after {s.attempt} refinement(s): {why}")
        else:
            s.attempt += 1
            s.ask(P.INIT_TERM_REWRITE.format(trace), "code")

    def _execute(self, s: Step) -> tuple[str, bool]:
        """Run the block (class + unit test) layered on the code the model was shown; task programs
        must also pass the interface check. Returns (trace shown to the model, ok)."""
        try:
            base = stack_layers(s.base_layers)
            script = "import random\n\n" + base + "\n\n\n" + (layer(s.code) if base else s.code)
            out = self.sandbox.run_script(script, name=f"{s.program}-{s.step}", seed=s.seed,
                                          timeout_s=self.cfg.unit_test_timeout_s)
        except SyntaxError as e:
            return f"[the code does not parse: {e}]", False
        except SandboxError as e:
            return f"[running the code failed: {e}]\n{e.traceback}".strip(), False
        if not out.strip():
            return "[the code printed nothing]", False
        if s.program != TRAINING:
            try:
                text = compose(s.program, s.base_layers + [s.code], SETTINGS[s.program], "llm",
                               init_term=s.init_term)
                program = Program(s.program, text, "llm")
                interface_check(program, self.sandbox, seed=s.seed)
            except (SandboxError, ValueError, SyntaxError) as e:
                return out + f"\n[interface check of the program failed: {e}]", False
        return out, True

    def _on_check(self, s: Step, answer: str) -> None:
        verdict = parse_verdict(answer)
        s.passed = s.run_ok and verdict == "yes"
        s.log("verdict", verdict=verdict, run_ok=s.run_ok, passed=s.passed)
        if s.passed:
            s.reason, s.waiting_for = "passed", "done"
            s.log("result", passed=True, reason="passed")
        elif s.attempt >= s.max_refinements:
            why = "the code did not run" if not s.run_ok else f"the model's verdict was {verdict!r}"
            self._fail(s, f"not passed after {s.attempt} refinement(s): {why}")
        else:
            s.attempt += 1
            s.ask(P.REWRITE, "code")

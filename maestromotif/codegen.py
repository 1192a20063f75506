"""`codegen` stage: the LLM coder writes the initiation/termination functions and the policies over
skills, with self-refinement (docs/method.md §5.1-5.3, §9.2).

    python -m maestromotif.codegen            # reads params.yaml (codegen, coder_llm, root_seed, profile)

First, per code seed k, the initiation and termination functions (paper §3.1): one prompt each
(maestromotif.options.coder_prompts.INIT_TERM_INITIAL) for `skill_precondition` and `skill_termination`;
each answer's method runs our unit tests (maestromotif.options.program.init_term_tests) in the sandbox;
on failure the failing cases go back to the model, at most `init_term_max_refinements` times (paper: no
self-refinement for these). A method that never passes is replaced by our reference one, visibly:
data/codegen/init_term/seed<k>/summary.json "functions" says which is which. Every program of seed k
is composed with this data/codegen/init_term/seed<k>/program.py (`generate_init_term: false`: with our
reference functions instead).

Then, for each code seed k and each program (the training policy, then the 9 task policies):

1. send the paper's prompt (maestromotif.options.coder_prompts) and extract the ```python block;
2. run it, with its unit test, in the sandbox (a task's code is layered on the training policy it was
   shown, as the official combine.py glued them); a task program must also pass our interface check;
3. show the trace to the model with the code_check prompt; on anything but "yes", send the rewrite
   prompt and go back to 2, at most `max_refinements` times (released scripts: 3; 4 for select_skill);
4. write data/codegen/<program>/seed<k>/program.py + log.jsonl (every prompt, answer, trace, verdict)
   + summary.json. Code that never passes is replaced by our reference program, visibly:
   summary "source": "reference-fallback" with the reason.

The training policy is written in three steps like the official one (select_skill, then
reach_gnomish_mines and reach_dungeons_of_doom, both shown the select_skill code). Requests of all
programs of one phase are batched into one engine call per code seed and prompt kind. A finished
program (summary.json present, same settings) is not redone.

Size (~420 lines): the stage's three phases (init/term functions, training policy, task programs) with
their files and fallbacks; the conversation loop is maestromotif.coder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from benchmark import provenance
from benchmark.config import load_params, root, section
from benchmark.io import read_json, write_json, write_text
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed
from maestromotif.options import coder_prompts as P
from maestromotif.coder import INIT_TERM_STEPS, Coder, Step
from maestromotif.options.program import (INIT_TERM, PROGRAM_NAMES, SETTINGS, TASKS, TRAINING, Program,
                                          class_with_methods, compose, init_term_layer, interface_check,
                                          method_source, reference_layers, stack_layers, top_level_defs)
from maestromotif.options.sandbox import Sandbox, SandboxError

log = logging.getLogger(__name__)

TRAINING_STEPS = ("training/select_skill", "training/reach_gnomish_mines", "training/reach_dungeons_of_doom")


@dataclass
class CodegenConfig:
    """The `codegen` section of the params (values: conf/codegen/default.yaml, the paper's)."""

    programs: list[str]
    # code-generation seeds per program; seed k writes data/codegen/<program>/seed<k>/ and samples
    # with derive_seed(root_seed, "codegen", k), so adding a seed leaves the others' programs as they are
    code_seeds: list[int]
    # Caps of every task program and the training policy's steps 2-3; the training policy's first step
    # (select_skill) has its own (the released hf_llama.py scripts' values: conf/codegen/default.yaml).
    max_refinements: int
    max_tokens: int  # per code answer
    check_max_tokens: int  # per code_check answer
    select_skill_max_refinements: Optional[int]  # None: max_refinements
    select_skill_max_tokens: Optional[int]  # its code and check answers; None: the two caps above
    temperature: float
    top_p: float
    top_k: int  # -1: no top-k cut (the paper's HF Inference API call set only the temperature)
    # Cap on the estimated prompt tokens of one engine call (0 = no cap): vLLM's CPU build crashes on
    # seeded requests whose prefill is chunked ("CPU Generator does not use offset"), i.e. when a batch's
    # prompts exceed its max_num_batched_tokens (4096). Estimated as characters / 3.
    max_batch_prompt_tokens: int
    # The coder writes the initiation/termination functions (paper §3.1); false: our reference ones.
    generate_init_term: bool
    init_term_max_refinements: int  # paper: no unit-test self-refinement for these (A.3)
    unit_test_timeout_s: float
    sandbox_memory_mb: int
    out_dir: str  # under data_dir

    def validate(self) -> "CodegenConfig":
        unknown = sorted(set(self.programs) - set(PROGRAM_NAMES))
        if unknown:
            raise ValueError(f"codegen.programs has unknown program(s) {unknown}; choose from "
                             f"{list(PROGRAM_NAMES)}")
        tasks = [p for p in self.programs if p != TRAINING]
        if tasks and TRAINING not in self.programs:
            raise ValueError("codegen.programs must include 'training': task prompts show the training "
                             "policy")
        seeds = list(self.code_seeds)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError("codegen.code_seeds must be a non-empty list of distinct seeds >= 0, got "
                             f"{seeds}")
        if self.max_refinements < 0 or self.max_tokens < 1 or self.check_max_tokens < 1:
            raise ValueError("codegen: max_refinements >= 0, max_tokens and check_max_tokens >= 1")
        if self.select_skill_max_refinements is not None and self.select_skill_max_refinements < 0:
            raise ValueError("codegen.select_skill_max_refinements must be >= 0, or null for max_refinements")
        if self.select_skill_max_tokens is not None and self.select_skill_max_tokens < 1:
            raise ValueError("codegen.select_skill_max_tokens must be >= 1, "
                             "or null for max_tokens/check_max_tokens")
        if self.init_term_max_refinements < 0:
            raise ValueError("codegen.init_term_max_refinements must be >= 0 (paper: 0)")
        return self

    def limits(self, step: str) -> tuple[int, int, int]:
        """(code answer tokens, check answer tokens, refinements) of one conversation step."""
        if step == TRAINING_STEPS[0]:
            tokens = self.select_skill_max_tokens
            refinements = self.select_skill_max_refinements
            return (self.max_tokens if tokens is None else tokens,
                    self.check_max_tokens if tokens is None else tokens,
                    self.max_refinements if refinements is None else refinements)
        return self.max_tokens, self.check_max_tokens, self.max_refinements


# ---------------------------------------------------------------- the stage
def config_fingerprint(cfg: CodegenConfig, coder_llm: Any, root_seed: int) -> str:
    # batching caps change how requests are grouped, not what is generated; code seed k's program does not
    # depend on which other seeds are generated; an unset select_skill cap generates what the fields before
    # it existed generated, so it keeps the fingerprint of that time
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("max_batch_prompt_tokens", "code_seeds")
                and not (k.startswith("select_skill_") and v is None)}
    return provenance.fingerprint({"codegen": settings, "coder_llm": coder_llm, "root_seed": root_seed})


def previous_code_for_tasks(policy_layers: list[str]) -> str:
    """What the task prompts show as 'previous code': the training policy cut before perform_task
    plus its signature line, as the released hf_llama.py did."""
    head = stack_layers(policy_layers).split("def perform_task")[0]
    return head + ("def perform_task(self, current_skill, dungeon_depth, branch_number, "
                   "merchant_precondition, worshipper_precondition):")


def training_layers(select_code: str, mines_code: str, dungeons_code: str) -> list[str]:
    """select_skill class, the mines class on top, the dungeons method, the official perform_task dispatch."""
    dungeons = method_source(dungeons_code, "reach_dungeons_of_doom")
    if dungeons is None:
        raise ValueError("the reach_dungeons_of_doom answer defines no NetHackPlayer.reach_dungeons_of_doom")
    dispatch = method_source(reference_layers(TRAINING)[0], "perform_task")
    return [select_code, mines_code, class_with_methods([dungeons]), class_with_methods([dispatch])]


class CodegenStage:
    def __init__(self, params: Any, engine=None):
        self.params = params
        top = root(params)
        self.cfg: CodegenConfig = section(params, "codegen", CodegenConfig)
        self.cfg = CodegenConfig(**{k: getattr(self.cfg, k)
                                    for k in CodegenConfig.__dataclass_fields__}).validate()
        self.cfg.programs = list(self.cfg.programs)
        self.profile, self.root_seed = top.profile, top.root_seed
        self.out = Path(top.data_dir) / self.cfg.out_dir
        self.coder_llm = _plain(params.get("coder_llm"))
        self.fingerprint = config_fingerprint(self.cfg, self.coder_llm, self.root_seed)
        self._engine = engine
        self._own_engine = engine is None

    @property
    def engine(self):
        if self._engine is None:
            from maestromotif.llm import make_engine

            if self.coder_llm is None:
                raise ValueError("params have no 'coder_llm' section; regenerate params.yaml from conf/")
            self._engine = make_engine(self.coder_llm)
        return self._engine

    def program_dir(self, program: str, seed: int) -> Path:
        return self.out / program / f"seed{seed}"

    def done(self, program: str, seed: int) -> Optional[dict]:
        """The summary of a finished program with the current settings (a policy: composed with the
        current init/term functions of its seed), else None."""
        path = self.program_dir(program, seed) / "summary.json"
        if path.is_file():
            summary = read_json(path)
            if summary.get("fingerprint") == self.fingerprint and (path.parent / "program.py").is_file():
                if program == INIT_TERM or summary.get("init_term") == self.init_term_record(seed):
                    return summary
        return None

    # -- initiation/termination functions of a code seed
    def init_term_record(self, seed: int) -> Optional[dict]:
        """What a policy program of `seed` records about its init/term functions (None: generation off or
        not done yet, i.e. our reference functions)."""
        if not self.cfg.generate_init_term:
            return None
        summary = self.done(INIT_TERM, seed)
        if summary is None:
            return None
        return {"path": f"{INIT_TERM}/seed{seed}/program.py", "sha256": summary["sha256"],
                "source": {"llm": "llm", "mixed": "mixed"}.get(summary["source"], "reference"),
                "functions": summary["functions"]}

    def init_term_source(self, seed: int) -> Optional[str]:
        if self.init_term_record(seed) is None:
            return None
        return (self.program_dir(INIT_TERM, seed) / "program.py").read_text()

    def run(self) -> dict:
        start = time.perf_counter()
        seeds = list(self.cfg.code_seeds)
        with Sandbox(timeout_s=self.cfg.unit_test_timeout_s, memory_mb=self.cfg.sandbox_memory_mb) as sandbox:
            self.sandbox = sandbox
            if self.cfg.generate_init_term and self.cfg.programs:
                todo_init_term = [k for k in seeds if not self.done(INIT_TERM, k)]
                if todo_init_term:
                    self._init_term(todo_init_term)
            todo_training = [k for k in seeds if TRAINING in self.cfg.programs and not self.done(TRAINING, k)]
            if todo_training:
                self._training(todo_training)
            tasks = [t for t in self.cfg.programs if t in TASKS]
            todo = [(t, k) for k in seeds for t in tasks if not self.done(t, k)]
            if todo:
                self._tasks(todo)
        summaries = [self.done(p, k) for p in self.cfg.programs for k in seeds]
        init_term = [self.done(INIT_TERM, k) for k in seeds] if self.cfg.generate_init_term else []
        overall = self._overall([s for s in summaries if s], [s for s in init_term if s],
                                time.perf_counter() - start)
        write_json(self.out / "summary.json", overall)
        log.info("codegen: %d/%d programs written by the LLM, %d reference fallbacks; %d prompt + %d "
                 "generated tokens", overall["llm_programs"], overall["programs"], overall["fallbacks"],
                 overall["prompt_tokens"], overall["completion_tokens"])
        if self._own_engine and self._engine is not None:
            self._engine.close()
        return overall

    # -- training policy: three steps
    def _new_step(self, program: str, step: str, seed: int, base_layers: list[str],
                  shown: Optional[str]) -> Step:
        folder = self.program_dir(program, seed)
        prompts = P.INIT_TERM_INITIAL if program == INIT_TERM else P.INITIAL
        prompt = prompts[step] if shown is None else prompts[step].format(shown)
        max_tokens, check_max_tokens, refinements = self.cfg.limits(step)
        if program == INIT_TERM:
            refinements = self.cfg.init_term_max_refinements
        s = Step(program=program, step=step, seed=seed, base_layers=base_layers,
                 messages=[{"role": "system", "content": P.SYSTEM_PROMPT}], max_refinements=refinements,
                 log_path=folder / "log.jsonl", max_tokens=max_tokens, check_max_tokens=check_max_tokens,
                 init_term=None if program == INIT_TERM else self.init_term_source(seed))
        s.ask(prompt, "code")
        return s

    def _fresh(self, program: str, seed: int) -> None:
        folder = self.program_dir(program, seed)
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted earlier try: start this program over
        folder.mkdir(parents=True)

    def _init_term(self, seeds: list[int]) -> None:
        coder = Coder(self.engine, self.cfg, self.root_seed, self.sandbox)
        steps = {}
        for k in seeds:
            self._fresh(INIT_TERM, k)
            steps[k] = [self._new_step(INIT_TERM, step, k, [], None) for step in INIT_TERM_STEPS]
        log.info("codegen: initiation and termination functions for code seeds %s", seeds)
        coder.run([s for group in steps.values() for s in group])
        for k, group in steps.items():
            self._finish_init_term(k, group)

    def _finish_init_term(self, seed: int, steps: list[Step]) -> None:
        """data/codegen/init_term/seed<k>/: the coder's methods that passed their tests, our reference
        ones in place of the others (said in the summary's "functions" and "reason")."""
        methods = {INIT_TERM_STEPS[s.step]: s.code for s in steps if s.passed}
        functions = {INIT_TERM_STEPS[s.step]: "llm" if s.passed else "reference-fallback" for s in steps}
        failed = [s for s in steps if not s.passed]
        source = "llm" if not failed else "reference-fallback" if len(failed) == len(steps) else "mixed"
        reason = "; ".join(f"{s.step}: {s.reason}" for s in failed)
        if failed:
            log.warning("codegen: init_term seed %d falls back to the reference %s: %s", seed,
                        " and ".join(INIT_TERM_STEPS[s.step] for s in failed), reason)
        which = ", ".join(f"{m}: {f}" for m, f in functions.items())
        text = (f"# Initiation and termination functions of code seed {seed} ({source}), written by "
                f"maestromotif.codegen.\n# {which}\n" + init_term_layer(methods))
        write_text(self.program_dir(INIT_TERM, seed) / "program.py", text)
        write_json(self.program_dir(INIT_TERM, seed) / "summary.json", {
            "program": INIT_TERM, "seed": seed, "source": source, "reason": reason, "functions": functions,
            **self._step_summary(seed, steps), "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "codegen": asdict(self.cfg),
        })

    def _step_summary(self, seed: int, steps: list[Step]) -> dict:
        """The part of a summary.json every codegen output has: its conversations and settings."""
        return {
            "passed_steps": {s.step: s.passed for s in steps},
            "refinements": {s.step: s.attempt for s in steps},
            "step_reasons": {s.step: s.reason for s in steps},
            "prompt_tokens": sum(s.prompt_tokens for s in steps),
            "completion_tokens": sum(s.completion_tokens for s in steps),
            "llm_seconds": round(sum(s.seconds for s in steps), 2),
            "model_id": next((s.model_id for s in steps if s.model_id), ""),
            "generation_seed": derive_seed(self.root_seed, "codegen", seed), "root_seed": self.root_seed,
            "profile": self.profile, "fingerprint": self.fingerprint,
        }

    def _training(self, seeds: list[int]) -> None:
        from tqdm import tqdm

        coder = Coder(self.engine, self.cfg, self.root_seed, self.sandbox)
        for k in seeds:
            self._fresh(TRAINING, k)
        log.info("codegen: training policy, step 1/3 (select_skill) for code seeds %s", seeds)
        select = {k: self._new_step(TRAINING, TRAINING_STEPS[0], k, [], None) for k in seeds}
        coder.run(list(select.values()))
        later: dict[int, list[Step]] = {}
        for k, s in select.items():
            if s.passed:
                shown = top_level_defs(s.code)
                later[k] = [self._new_step(TRAINING, step, k, [s.code], shown) for step in TRAINING_STEPS[1:]]
        log.info("codegen: training policy, steps 2-3/3 for code seeds %s", sorted(later))
        coder.run([s for steps in later.values() for s in steps])
        for k in tqdm(seeds, desc="codegen training", disable=None):
            steps = [select[k], *later.get(k, [])]
            failed = [s for s in steps if not s.passed]
            layers, reason = None, ""
            if not failed:
                try:
                    layers = training_layers(steps[0].code, steps[1].code, steps[2].code)
                except (ValueError, SyntaxError) as e:
                    reason = str(e)
            else:
                reason = f"{failed[0].step}: {failed[0].reason}"
            self._finish(TRAINING, k, steps, layers, reason)

    def _tasks(self, todo: list[tuple[str, int]]) -> None:
        coder = Coder(self.engine, self.cfg, self.root_seed, self.sandbox)
        steps = []
        for task, k in todo:
            training = self.done(TRAINING, k)
            if training is None:
                raise RuntimeError(f"the training policy of code seed {k} is missing; run with 'training' in "
                                   "codegen.programs first")
            policy = training["policy_layers"]
            self._fresh(task, k)
            steps.append(self._new_step(task, task, k, policy, previous_code_for_tasks(policy)))
        log.info("codegen: %d task programs (%s)", len(steps), ", ".join(sorted({t for t, _ in todo})))
        coder.run(steps)
        for s in steps:
            self._finish(s.program, s.seed, [s], s.base_layers + [s.code] if s.passed else None,
                         "" if s.passed else f"{s.step}: {s.reason}")

    # -- outputs
    def _finish(self, program: str, seed: int, steps: list[Step], layers: Optional[list[str]],
                reason: str) -> None:
        folder = self.program_dir(program, seed)
        source_kind = "llm"
        checked = None
        init_term = self.init_term_source(seed)
        if layers is not None:
            text = compose(program, layers, SETTINGS[program], "llm", init_term=init_term)
            try:
                interface_check(Program(program, text, "llm"), self.sandbox, seed=seed)
                checked = True
            except (SandboxError, ValueError) as e:
                layers, reason, checked = None, f"interface check failed: {e}", False
        if layers is None:
            source_kind = "reference-fallback"
            layers = reference_layers(program)
            text = compose(program, layers, SETTINGS[program], "reference-fallback", init_term=init_term)
            log.warning("codegen: %s seed %d falls back to the reference program: %s", program, seed, reason)
        write_text(folder / "program.py", text)
        summary = {
            "program": program, "seed": seed, "source": source_kind,
            "reason": reason if source_kind != "llm" else "",
            **self._step_summary(seed, steps), "interface_check": checked,
            "settings": SETTINGS[program].as_dict(),
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "policy_layers": layers,
            "init_term": self.init_term_record(seed), "codegen": asdict(self.cfg),
        }
        write_json(folder / "summary.json", summary)

    def _overall(self, summaries: list[dict], init_term: list[dict], seconds: float) -> dict:
        llm = [s for s in summaries if s["source"] == "llm"]
        tokens = summaries + init_term
        return {
            "profile": self.profile, "root_seed": self.root_seed, "fingerprint": self.fingerprint,
            "model_id": next((s["model_id"] for s in tokens if s.get("model_id")), ""),
            "programs": len(summaries), "llm_programs": len(llm), "fallbacks": len(summaries) - len(llm),
            "pass_rate": round(len(llm) / len(summaries), 4) if summaries else 0.0,
            "prompt_tokens": sum(s["prompt_tokens"] for s in tokens),
            "completion_tokens": sum(s["completion_tokens"] for s in tokens),
            "llm_seconds": round(sum(s["llm_seconds"] for s in tokens), 2),
            "stage_seconds_this_run": round(seconds, 2),
            "per_program": {f"{s['program']}/seed{s['seed']}": {"source": s["source"], "reason": s["reason"]}
                            for s in summaries},
            # initiation/termination functions per code seed (not counted in programs/fallbacks above)
            "init_term": {f"seed{s['seed']}": {"source": s["source"], "functions": s["functions"],
                                               "reason": s["reason"]} for s in init_term},
            "init_term_fallbacks": sum(f != "llm" for s in init_term for f in s["functions"].values()),
        }


def _plain(node: Any) -> Any:
    if node is None:
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(node, resolve=True)
    except ValueError:
        return node


def main(argv: Optional[list[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="LLM coder: write the policies over skills (data/codegen/)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    args = parser.parse_args(argv)
    setup_logging()
    overall = CodegenStage(load_params(args.params)).run()
    print(json.dumps({k: v for k, v in overall.items() if k != "per_program"}, indent=2))


if __name__ == "__main__":
    main()

"""MaestroMotif as a benchmark Method: skills trained once per skill seed, then deployed zero-shot per task.

fit() runs the train_skills stage (maestromotif.rl.train) for the skill seed; policy() pairs the trained
network with the task's program over skills of code seed `code_seed` (the evaluate stage builds the method
once per params `code_seeds` entry: the paper's 3 skill seeds x 3 code seeds): codegen's
data/codegen/<task>/seed<code_seed>/program.py when it exists, else maestromotif.options' reference program
of the task (the fallback). Every evaluation record names the program that ran (Policy.provenance). A small
task variant (benchmark.variants) without a program of its own runs its paper task's program: the variant
keeps that task's goal, only the levels are smaller.

One class for both MaestroMotif methods (maestromotif.chain): `method` says whose reward models fit()
trains on, maestromotif (annotate.annotator's labels) or maestromotif_oracle (the rule oracle's); the
evaluate stage hands policy() that method's network (conf/method/<method>.yaml: benchmark.artefact).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.method import Method, Policy


class MaestroMotif(Method):
    name = "maestromotif"
    per_task = False  # one skill network for all tasks

    # values: conf/method/<method>.yaml; code_seed: the evaluate stage's, per deployment (0 = the first)
    def __init__(self, *, method: str, deterministic: bool, codegen_dir: str | None, code_seed: int = 0):
        from maestromotif.chain import chain

        self.code_seed = int(code_seed)
        self.deterministic = bool(deterministic)
        self.codegen_dir = codegen_dir  # default: <data_dir>/codegen
        self.name = chain(method).method  # validated: one of maestromotif.chain.METHODS

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        from maestromotif.rl.train import train

        # Train into the folder benchmark.fit hands over (it renames it into place when fit returns). Training
        # into the train_skills stage's own run dir instead, and pointing at it, lost the run: that dir is
        # also fit's artefact path, which fit clears before the rename.
        return train(params, seed, run=Path(out_dir), method=self.name)

    def policy(self, artefact: Path, task: str, params: Any) -> Policy:
        from maestromotif.options.program import load_program
        from maestromotif.rl.policy import SkillPolicy
        from maestromotif.rl.sf_env import resolve_program

        run = self.run_dir(Path(artefact))
        codegen = self.codegen_dir or str(Path(params.get("data_dir", "data")) / "codegen")
        name = self.program_task(task, codegen)
        where = resolve_program(name, codegen, self.code_seed)  # codegen's folder, or the name (reference)
        program = load_program(where)  # loaded once: this Program runs in every env and the records name it
        seed = json.loads((run / "summary.json").read_text()).get("seed",
                                                                  0) if (run / "summary.json").exists() else 0
        file = Path(where) / "program.py" if where != name else None
        provenance = {"program": program_provenance(program, self.code_seed, file, Path(codegen) / name),
                      "init_term": init_term_entry(where)}
        from benchmark.evaluate import policy_device

        return SkillPolicy.from_run(run, program, deterministic=self.deterministic, seed=seed,
                                    provenance=provenance, device=policy_device(params))

    def program_task(self, task: str, codegen_dir: str) -> str:
        """The task whose program runs: the task itself, or a small variant's paper task when the variant
        has neither a codegen program nor a reference program."""
        from benchmark.variants import VARIANTS
        from maestromotif.options.program import PROGRAM_NAMES
        from maestromotif.rl.sf_env import resolve_program

        if (task in VARIANTS and task not in PROGRAM_NAMES
                and resolve_program(task, codegen_dir, self.code_seed) == task):
            return VARIANTS[task].base_task
        return task

    @staticmethod
    def run_dir(artefact: Path) -> Path:
        """The train_skills run dir: the artefact itself (data/fit/maestromotif/seed<k>), or the one fit()
        recorded."""
        if (artefact / "run.json").exists():
            return Path(json.loads((artefact / "run.json").read_text())["run_dir"])
        return artefact


def init_term_entry(program: str | Path) -> dict:
    """The record's entry for the initiation/termination functions the program was composed with: path,
    sha256, source (llm | mixed | reference), per-function origin, and fallback when the coder's code for
    a function failed its tests and ours ran instead."""
    from maestromotif.options.program import init_term_provenance

    entry = init_term_provenance(program)
    failed = sorted(f for f, origin in entry["functions"].items() if origin == "reference-fallback")
    return {**entry, "fallback": bool(failed),
            "reason": f"the coder's {', '.join(failed)} failed its unit tests: ours ran" if failed else ""}


def program_provenance(program, code_seed: int, file: Path | None, codegen_program_dir: Path) -> dict:
    """The record's entry for a program over skills: which file, its hash, and whether the LLM wrote it.

    source "llm": codegen's program passed its checks; "reference" with fallback true: codegen fell back to
    our reference program (its summary says why), or wrote nothing for this task and code seed (the
    built-in reference ran, path null); "file": a program.py without a codegen summary."""
    path = str(file) if file is not None else None
    entry = {"name": program.name, "code_seed": int(code_seed), "sha256": program.sha256}
    if program.origin == "llm":
        return {**entry, "path": path, "source": "llm", "fallback": False, "reason": ""}
    if program.origin == "reference-fallback":
        return {**entry, "path": path, "source": "reference", "fallback": True,
                "reason": program.meta.get("reason") or "codegen fell back to the reference program"}
    if program.origin == "reference":
        return {**entry, "path": None, "source": "reference", "fallback": True,
                "reason": f"no codegen program at {codegen_program_dir}/seed{code_seed}/program.py: the "
                          "built-in reference program ran"}
    return {**entry, "path": path, "source": "file", "fallback": False, "reason": ""}

"""The codegen stage: answer parsing, the refine loop (with a scripted fake engine for control flow),
fallbacks, outputs, the generated initiation/termination functions; and one real run with the embedded
coder."""
from __future__ import annotations

import json

import pytest

from benchmark.config import compose as compose_params
from maestromotif.codegen import CodegenConfig, CodegenStage
from maestromotif.coder import extract_code, fill_unit_test, parse_verdict
from maestromotif.llm import Completion
from maestromotif.options.program import PROGRAMS_DIR, interface_check, load_program
from maestromotif.options.sandbox import InProcessRunner

UNIT_TEST = """
# Starting conditions
skill = 'discoverer'
dungeon_depth = 1
branch_number = 0
max_depth = # to be defined
player = NetHackPlayer(max_depth, 2)
player.set_initial_values = None
for turn in range(12):
    print(f"Turn {turn + 1}: Skill = {skill}, Dungeon depth = {dungeon_depth}")
    skill = player.{method}(skill, dungeon_depth, {extra}False, False)
    if skill == 'descender':
        dungeon_depth += 1
    elif skill == 'ascender':
        dungeon_depth -= 1
"""


def good_answer(step: str) -> str:
    if step.startswith("init_term/"):  # our reference class, both methods
        return "Here it is.\n```python\n" + (PROGRAMS_DIR / "init_term.py").read_text() + "```\n"
    if step.startswith("training/"):
        code = (PROGRAMS_DIR / "exploration.py").read_text()
        method, extra = ("select_skill", "") if step.endswith("select_skill") else (step.split("/")[1], "0, ")
    else:
        code = (PROGRAMS_DIR / f"{step}.py").read_text().replace("class NetHackPlayer(NetHackPlayer):",
                                                                 "class NetHackPlayer:")
        method, extra = "perform_task", "0, "
    return ("Questions: ... Here is the code.\n```python\n" + code
            + UNIT_TEST.replace("{method}", method).replace("{extra}", extra) + "```\nDone.")


class FakeCoder:
    """A scripted stand-in for an LLM engine (control flow only): `behaviour(step) -> (code, verdict)`."""

    model_id = "fake-coder"

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.calls = []

    def generate(self, conversations, sampling):
        self.calls.append((len(conversations), sampling.max_tokens))
        out = []
        for conv in conversations:
            step = _step_of(conv[1]["content"])
            code, verdict = self.behaviour(step)
            text = verdict if conv[-1]["content"].startswith("Here is the output") else code
            out.append(Completion(text=text, prompt_tokens=100, completion_tokens=10, finish_reason="stop",
                                  model_id=self.model_id))
        return out

    def close(self):
        pass


def _step_of(first_prompt: str) -> str:
    if 'method "skill_precondition"' in first_prompt:
        return "init_term/initiation"
    if 'method "skill_termination"' in first_prompt:
        return "init_term/termination"
    if 'method "select_skill"' in first_prompt:
        return "training/select_skill"
    if 'method "reach_gnomish_mines"' in first_prompt:
        return "training/reach_gnomish_mines"
    if 'method "reach_dungeons_of_doom"' in first_prompt:
        return "training/reach_dungeons_of_doom"
    return "buc" if "altar" in first_prompt.split("###")[-3] else "gnomish"


def params_for(tmp_path, *overrides):
    cfg = compose_params("ci", [f"data_dir={tmp_path}/data", "codegen.programs=[training,gnomish,buc]",
                                "codegen.max_batch_prompt_tokens=0", *overrides])
    return cfg


def test_extract_code_and_verdicts():
    assert extract_code("text\n```python\nx = 1\n```\nmore") == "x = 1\n"
    answer = "```python\nprint(1)\n```\n```python\nclass NetHackPlayer:\n    pass\n```"
    assert extract_code(answer).startswith("class NetHackPlayer")
    assert extract_code("```python\nclass NetHackPlayer:\n    pass\n") is not None  # cut off at max_tokens
    assert extract_code("no code here") is None
    assert parse_verdict("Yes, the output matches.") == "yes"
    assert parse_verdict("No. Looking at the eyes... yes") == "no"
    assert parse_verdict("It looks fine.") == "unclear"
    assert fill_unit_test("max_depth = # to be defined\n", 4) == "max_depth = 4\n"


@pytest.mark.timeout(300)
def test_passing_code_is_kept_and_everything_is_logged(tmp_path):
    fake = FakeCoder(lambda step: (good_answer(step), "Yes, it explores down and back up."))
    overall = CodegenStage(params_for(tmp_path), engine=fake).run()
    assert overall["programs"] == 3 and overall["llm_programs"] == 3 and overall["fallbacks"] == 0
    out = tmp_path / "data" / "codegen"
    for program in ("training", "gnomish", "buc"):
        summary = json.loads((out / program / "seed0" / "summary.json").read_text())
        assert summary["source"] == "llm" and summary["interface_check"] is True
        assert summary["profile"] == "ci" and summary["model_id"] == "fake-coder"
        events = [json.loads(line)["event"]
                  for line in (out / program / "seed0" / "log.jsonl").read_text().splitlines()]
        assert {"prompt", "answer", "run", "verdict", "result"} <= set(events)
        program_obj = load_program(out / program / "seed0")
        assert not program_obj.trusted and program_obj.origin == "llm"
        interface_check(program_obj, InProcessRunner())
    runs = [json.loads(line) for line in (out / "gnomish" / "seed0" / "log.jsonl").read_text().splitlines()
            if '"run"' in line]
    assert runs[0]["ok"] and "Turn 1: Skill = discoverer" in runs[0]["trace"]
    # batched: one call per phase and prompt kind: init/term (code only: our unit tests decide), training
    # step 1, steps 2-3, tasks (code and check)
    assert len(fake.calls) == 7 and fake.calls[:3] == [(2, 48), (1, 48), (1, 4)]
    init_term = json.loads((out / "init_term" / "seed0" / "summary.json").read_text())
    assert init_term["source"] == "llm" and init_term["functions"] == {"skill_precondition": "llm",
                                                                       "skill_termination": "llm"}
    assert overall["init_term"] == {"seed0": {"source": "llm", "functions": init_term["functions"],
                                              "reason": ""}}
    # finished programs are not redone (a batching cap does not change what was generated)
    again = FakeCoder(lambda step: (good_answer(step), "Yes"))
    CodegenStage(params_for(tmp_path, "codegen.max_batch_prompt_tokens=100"), engine=again).run()
    assert again.calls == []


def test_batches_are_split_under_the_prompt_token_cap(tmp_path):
    fake = FakeCoder(lambda step: (good_answer(step), "Yes"))
    CodegenStage(params_for(tmp_path, "codegen.max_batch_prompt_tokens=1000"), engine=fake).run()
    assert len(fake.calls) == 12 and all(n == 1 for n, _ in fake.calls)  # no two long prompts share a call


@pytest.mark.timeout(300)
def test_code_that_never_passes_falls_back_visibly(tmp_path):
    def behaviour(step):
        if step == "gnomish":
            return good_answer(step), "No, this is wrong."
        if step == "buc":
            return "I cannot write code.", "Yes"
        return good_answer(step), "Yes"

    fake = FakeCoder(behaviour)
    overall = CodegenStage(params_for(tmp_path, "codegen.max_refinements=2"), engine=fake).run()
    assert overall["llm_programs"] == 1 and overall["fallbacks"] == 2
    out = tmp_path / "data" / "codegen"
    gnomish = json.loads((out / "gnomish" / "seed0" / "summary.json").read_text())
    assert gnomish["source"] == "reference-fallback" and "verdict was 'no'" in gnomish["reason"]
    assert gnomish["refinements"] == {"gnomish": 2}
    buc = json.loads((out / "buc" / "seed0" / "summary.json").read_text())
    assert buc["source"] == "reference-fallback" and "did not run" in buc["reason"]
    log = (out / "buc" / "seed0" / "log.jsonl").read_text()
    assert "no ```python block" in log and "Go through your code, line by line" in log
    program = load_program(out / "gnomish" / "seed0")
    assert (program.trusted and "(reference-fallback)" in program.source.splitlines()[0]
            or program.origin == "reference-fallback")
    assert overall["per_program"]["gnomish/seed0"]["source"] == "reference-fallback"


def test_paper_caps_follow_the_released_scripts():
    cfg = CodegenConfig(**compose_params("paper").codegen).validate()
    assert cfg.temperature == 0.2
    assert cfg.limits("training/select_skill") == (5000, 5000, 4)  # `iterations < 5`, max_tokens = 5000
    for step in ("training/reach_gnomish_mines", "training/reach_dungeons_of_doom", "gnomish", "buc"):
        assert cfg.limits(step) == (10000, 10000, 3)  # `iterations < 4`, max_tokens=10_000
    small = CodegenConfig(**compose_params("ci").codegen).validate()  # ci/small: one cap for every step
    assert small.limits("training/select_skill") == small.limits("gnomish") == (48, 4, 0)


class StepRecorder(FakeCoder):
    """FakeCoder that also records, per engine call, the steps asked and the token cap."""

    def generate(self, conversations, sampling):
        self.steps = getattr(self, "steps", [])
        self.steps.append(({_step_of(c[1]["content"]) for c in conversations}, sampling.max_tokens))
        return super().generate(conversations, sampling)


@pytest.mark.timeout(300)
def test_select_skill_has_its_own_refinements_and_token_cap(tmp_path):
    caps = ["codegen.max_refinements=1", "codegen.select_skill_max_refinements=2", "codegen.max_tokens=55",
            "codegen.check_max_tokens=9", "codegen.select_skill_max_tokens=77"]
    fake = StepRecorder(lambda step: (good_answer(step), "Yes" if step != "gnomish" else "No."))
    CodegenStage(params_for(tmp_path, "codegen.programs=[training,gnomish]", *caps), engine=fake).run()
    out = tmp_path / "data" / "codegen"
    gnomish = json.loads((out / "gnomish" / "seed0" / "summary.json").read_text())
    assert gnomish["refinements"] == {"gnomish": 1}
    for steps, cap in fake.steps:
        assert cap in ((77,) if steps == {"training/select_skill"} else (55, 9)), (steps, cap)
    assert {cap for steps, cap in fake.steps if steps == {"training/select_skill"}} == {77}
    never = StepRecorder(lambda step: (good_answer(step), "No."))
    CodegenStage(params_for(tmp_path / "b", "codegen.programs=[training]", *caps), engine=never).run()
    summary = json.loads((tmp_path / "b" / "data" / "codegen" / "training" / "seed0" / "summary.json")
                         .read_text())
    assert summary["refinements"] == {"training/select_skill": 2}


@pytest.mark.timeout(300)
def test_code_that_crashes_in_the_game_loop_falls_back(tmp_path):
    def behaviour(step):
        if step == "gnomish":  # runs its own unit test, but perform_task returns a non-skill
            answer = good_answer(step).replace("        return self.reach_gnomish_mines(current_skill,",
                                               '        if branch_number == 2:\n            return "dance"\n'
                                               "        return self.reach_gnomish_mines(current_skill,")
            answer = answer.replace("perform_task(skill, dungeon_depth, 0, False, False)",
                                    "select_skill(skill, dungeon_depth, False, False)")
            return answer, "Yes"
        return good_answer(step), "Yes"

    overall = CodegenStage(params_for(tmp_path), engine=FakeCoder(behaviour)).run()
    gnomish = overall["per_program"]["gnomish/seed0"]
    assert gnomish["source"] == "reference-fallback", gnomish


@pytest.mark.slow
@pytest.mark.llm
@pytest.mark.timeout(900)
def test_codegen_with_the_embedded_coder(tmp_path, embedded_engine):
    """The real 135M model: it will mostly fail; whatever it does, the outputs are complete and loadable."""
    params = params_for(tmp_path, "codegen.programs=[training,gnomish]", "codegen.max_tokens=96",
                        "codegen.check_max_tokens=8")
    overall = CodegenStage(params, engine=embedded_engine).run()
    assert overall["programs"] == 2 and overall["completion_tokens"] > 0
    assert overall["model_id"] == embedded_engine.model_id
    for program in ("training", "gnomish"):
        folder = tmp_path / "data" / "codegen" / program / "seed0"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["source"] in ("llm", "reference-fallback")
        assert summary["source"] == "llm" or summary["reason"]
        interface_check(load_program(folder), InProcessRunner())
        assert (folder / "log.jsonl").read_text().count('"event": "answer"') >= 1
    # the coder also wrote (and our unit tests judged) the initiation/termination functions
    folder = tmp_path / "data" / "codegen" / "init_term" / "seed0"
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["functions"]) == {"skill_precondition", "skill_termination"}
    assert summary["source"] == "llm" or summary["reason"]
    assert overall["init_term"]["seed0"]["source"] == summary["source"]
    assert (folder / "log.jsonl").read_text().count('"event": "answer"') >= 2


# ---------------------------------------------------------------- initiation/termination functions
COUNTING_TERMINATION = '''I will count my calls.
```python
class NetHackPlayer:
    def skill_termination(self, skill, skill_time, current_depth, previous_depth, preconditions):
        self.llm_termination_calls = getattr(self, "llm_termination_calls", 0) + 1
        if any(preconditions):
            return True
        limits = {"discoverer": self.discoverer_skill_steps, "merchant": self.merchant_skill_steps,
                  "worshipper": self.worshipper_skill_steps}
        if skill in limits:
            return skill_time >= limits[skill]
        return current_depth > previous_depth if skill == "descender" else current_depth < previous_depth
```'''
STUCK_DESCENDER = COUNTING_TERMINATION.replace('if skill == "descender" else', 'if skill == "nobody" else')


def init_term_behaviour(termination: str):
    def behaviour(step):
        return (termination if step == "init_term/termination" else good_answer(step)), "Yes"
    return behaviour


@pytest.mark.timeout(300)
def test_generated_init_term_functions_pass_their_tests_and_run_in_the_game(tmp_path):
    from benchmark.env import make
    from maestromotif.options.program import init_term_provenance
    from maestromotif.options.wrapper import OptionsWrapper

    overall = CodegenStage(params_for(tmp_path, "codegen.programs=[training,gnomish]"),
                           engine=FakeCoder(init_term_behaviour(COUNTING_TERMINATION))).run()
    assert overall["init_term"]["seed0"]["source"] == "llm" and overall["init_term_fallbacks"] == 0
    out = tmp_path / "data" / "codegen"
    for program in ("training", "gnomish"):
        folder = out / program / "seed0"
        assert "llm_termination_calls" in (folder / "program.py").read_text()
        provenance = init_term_provenance(folder)
        assert provenance["source"] == "llm"
        assert provenance["path"] == str(out / "init_term" / "seed0" / "program.py")
        assert provenance["sha256"] == load_program(out / "init_term" / "seed0").sha256
    assert init_term_provenance("gnomish")["source"] == "reference"  # a program by name: our functions
    # the options runtime calls the coder's skill_termination, in the sandbox, every env step
    env = OptionsWrapper(make(seed=7), str(out / "gnomish" / "seed0"), on_error="raise")
    try:
        assert env.runner.sandboxed
        env.reset(seed=7)
        for _ in range(5):
            env.step(0)
        assert env.player.get("llm_termination_calls") == 5
    finally:
        env.close()


@pytest.mark.timeout(300)
def test_init_term_functions_that_fail_their_tests_fall_back_visibly(tmp_path):
    fake = FakeCoder(init_term_behaviour(STUCK_DESCENDER))
    params = params_for(tmp_path, "codegen.programs=[training,gnomish]",
                        "codegen.init_term_max_refinements=1")
    overall = CodegenStage(params, engine=fake).run()
    out = tmp_path / "data" / "codegen"
    summary = json.loads((out / "init_term" / "seed0" / "summary.json").read_text())
    assert summary["source"] == "mixed"
    assert summary["functions"] == {"skill_precondition": "llm", "skill_termination": "reference-fallback"}
    assert "init_term/termination: unit tests not passed after 1 refinement(s)" in summary["reason"]
    assert summary["refinements"] == {"init_term/initiation": 0, "init_term/termination": 1}
    assert overall["init_term"]["seed0"]["source"] == "mixed" and overall["init_term_fallbacks"] == 1
    log = (out / "init_term" / "seed0" / "log.jsonl").read_text()
    wrong = "skill_termination('descender', 3, 3, 2, [False, False]): returned False, expected True: WRONG"
    assert wrong in log
    assert "Here are the results of unit tests run on your method" in log  # the failing cases went back
    for program in ("init_term", "gnomish"):
        text = (out / program / "seed0" / "program.py").read_text()
        assert "llm_termination_calls" not in text and "def skill_termination" in text
    player = InProcessRunner().load(load_program(out / "gnomish" / "seed0").source, "g").new_player()
    assert player.call("skill_termination", "descender", 3, 3, 2, [False, False]) is True  # the reference one
    assert load_program(out / "gnomish" / "seed0").meta["init_term"]["source"] == "mixed"
    from maestromotif.method import init_term_entry  # what evaluation records say about it

    entry = init_term_entry(out / "gnomish" / "seed0")
    assert entry["fallback"] and entry["source"] == "mixed" and "skill_termination" in entry["reason"]


@pytest.mark.timeout(300)
def test_init_term_generation_can_be_switched_off(tmp_path):
    fake = FakeCoder(lambda step: (good_answer(step), "Yes"))
    params = params_for(tmp_path, "codegen.programs=[training]", "codegen.generate_init_term=false")
    overall = CodegenStage(params, engine=fake).run()
    assert overall["init_term"] == {} and not (tmp_path / "data" / "codegen" / "init_term").exists()
    assert [n for n, _ in fake.calls] == [1, 1, 2, 2]  # training only: select_skill, then steps 2-3
    folder = tmp_path / "data" / "codegen" / "training" / "seed0"
    assert json.loads((folder / "summary.json").read_text())["init_term"] is None
    from maestromotif.options.program import init_term_provenance

    assert init_term_provenance(folder)["source"] == "reference"


@pytest.mark.timeout(300)
def test_code_seeds_are_a_list_and_adding_one_keeps_the_others(tmp_path):
    """codegen.code_seeds names the seeds (the evaluate stage deploys exactly these); seed k's program does
    not depend on which other seeds are generated, so adding a seed redoes nothing already written."""
    fake = FakeCoder(lambda step: (good_answer(step), "Yes"))
    CodegenStage(params_for(tmp_path, "codegen.programs=[training]", "codegen.code_seeds=[1]"),
                 engine=fake).run()
    out = tmp_path / "data" / "codegen" / "training"
    assert (out / "seed1" / "program.py").is_file() and not (out / "seed0").exists()
    seed1 = (out / "seed1" / "summary.json").read_text()
    more = FakeCoder(lambda step: (good_answer(step), "Yes"))
    overall = CodegenStage(params_for(tmp_path, "codegen.programs=[training]", "codegen.code_seeds=[0,1]"),
                           engine=more).run()
    assert overall["programs"] == 2 and (out / "seed0" / "program.py").is_file()
    assert more.calls == fake.calls  # one seed's conversations: seed 0's, seed 1 was not redone
    assert (out / "seed1" / "summary.json").read_text() == seed1

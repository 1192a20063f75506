"""Programs: composition of layers, reference programs, loading, settings, and the coder prompts."""
from __future__ import annotations

import re

import pytest

from maestromotif.options import coder_prompts as P
from maestromotif.options.program import (PROGRAM_NAMES, SETTINGS, TASKS, Program, ProgramError, Settings,
                                          compose, interface_check, layer, load_program, method_source,
                                          reference_layers, reference_program, top_level_defs)
from maestromotif.options.runtime import SKILLS
from maestromotif.options.sandbox import InProcessRunner
from tests.fixtures.data import step_inputs


@pytest.fixture(scope="module")
def runner():
    return InProcessRunner()


def test_skill_index_order_is_the_official_one():
    assert SKILLS == ("discoverer", "descender", "ascender", "worshipper", "merchant")


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_reference_programs_compose_and_pass_the_interface_check(runner, name):
    program = reference_program(name)
    assert program.trusted and program.origin == "reference"
    lines = interface_check(program, runner, seed=1)
    skills = {re.search(r"Skill = (\w+)", line).group(1) for line in lines if "Skill" in line}
    assert skills <= set(SKILLS) and len(lines) >= 10


def test_training_program_goes_down_to_max_depth_and_back_up(runner):
    player = runner.load(reference_program("training").source, "training").new_player(seed=3)
    max_depth = player.get("max_depth")
    assert 2 <= max_depth <= 4 and player.get("discoverer_skill_steps") == 500
    skill, depth, depths = "discoverer", 1, [1]
    for _ in range(4 * max_depth + 2):
        skill = player.call("select_skill", skill, depth, False, False)
        depth += {"descender": 1, "ascender": -1}.get(skill, 0)
        depths.append(depth)
    assert max(depths) == max_depth and min(depths) == 1
    assert depths.index(max_depth) < len(depths) - 1 - depths[::-1].index(1)  # down first, then back up
    assert player.call("select_skill", "discoverer", 2, True, False) == "merchant"
    assert player.call("select_skill", "discoverer", 2, False, True) == "worshipper"


def test_training_program_picks_the_mines_in_about_half_the_episodes(runner):
    program = runner.load(reference_program("training").source, "training")
    mines = [program.new_player(seed=s).get("mines") for s in range(200)]
    assert set(mines) == {0, 1} and 70 < sum(mines) < 130


def test_reference_termination_and_preconditions(runner):
    player = runner.load(reference_program("training").source, "training").new_player()
    t = lambda *a: player.call("skill_termination", *a)  # noqa: E731
    assert t("discoverer", 499, 1, 1, [False, False]) is False and t("discoverer", 500, 1, 1, [False, False])
    assert t("descender", 10**6, 1, 1, [False, False]) is False and t("descender", 1, 2, 1, [False, False])
    assert t("ascender", 1, 1, 2, [False, False]) and not t("ascender", 1, 3, 2, [False, False])
    assert not t("merchant", 9999, 1, 1, [False, False]) and t("merchant", 10_000, 1, 1, [False, False])
    assert t("descender", 1, 1, 1, [True, False])  # any precondition ends the running skill
    window = [[32] * 7 for _ in range(7)]
    colors = [[0] * 7 for _ in range(7)]
    window[0][0], colors[0][0] = 95, 7
    pre = lambda n: player.call("skill_precondition", window, colors, n, {"@": 15, "_": 7})  # noqa: E731
    assert pre(1) == [True, False] and pre(0) == [False, False]


@pytest.mark.parametrize("name,max_depth,steps", [("training", (2, 4), 500), ("gnomish", (5, 5), 50),
                                                  ("delphi", (10, 10), 50), ("minetown", (5, 5), 50),
                                                  ("goldenexit", (3, 3), 500),
                                                  ("discoveryhunger", (10, 10), 500)])
def test_deployment_settings_are_the_papers(name, max_depth, steps):
    assert SETTINGS[name].max_depth == max_depth and SETTINGS[name].discoverer_skill_steps == steps


@pytest.mark.parametrize("task", TASKS)
def test_settings_and_prompts_agree_with_the_task_suite(task):
    tasks = pytest.importorskip("benchmark.tasks")
    if not hasattr(tasks, "load_task_config"):
        pytest.skip("benchmark.tasks.load_task_config is not there yet")
    cfg = tasks.load_task_config(task)
    assert SETTINGS[task].max_depth == (cfg.max_depth, cfg.max_depth)
    assert SETTINGS[task].discoverer_skill_steps == cfg.discoverer_skill_steps
    squash = lambda text: re.sub(r"\s+", " ", text).strip()  # noqa: E731
    first_sentence = squash(cfg.description).split(". ")[0]
    assert first_sentence in squash(P.INITIAL[task].format("")), first_sentence


def test_layering_keeps_earlier_methods_and_drops_unit_tests(runner):
    base = ("class NetHackPlayer:\n    def a(self):\n        return 'discoverer'\n"
            "    def b(self):\n        return 'x'\n")
    answer = ("import random\n\nclass NetHackPlayer:\n    def b(self):\n        return 'descender'\n\n"
              "# Starting conditions\nplayer = NetHackPlayer()\nfor turn in range(3):\n    print(turn)\n")
    assert "for turn" not in top_level_defs(answer) and "import random" in top_level_defs(answer)
    assert "class NetHackPlayer(NetHackPlayer):" in layer(top_level_defs(answer))
    source = compose("gnomish", [base, answer], SETTINGS["gnomish"], "test")
    player = runner.load(source, "layered").new_player()
    assert player.call("a") == "discoverer" and player.call("b") == "descender"
    assert player.get("max_depth") == 5  # set_initial_values came last
    assert method_source(answer, "b").startswith("def b(self):")


def test_load_program_by_name_dir_and_file(tmp_path):
    assert load_program("delphi").trusted
    folder = tmp_path / "codegen" / "delphi" / "seed0"
    folder.mkdir(parents=True)
    (folder / "program.py").write_text(reference_program("delphi").source)
    assert load_program(folder).trusted and load_program(folder / "program.py").name == "delphi"
    (folder / "program.py").write_text(reference_program("delphi").source + "\n# edited\n")
    loaded = load_program(folder)
    assert not loaded.trusted and isinstance(loaded, Program)
    with pytest.raises(ProgramError, match="neither a program name"):
        load_program("no-such-program")
    (folder / "program.py").write_text("def (:\n")
    with pytest.raises(ProgramError, match="not valid Python"):
        load_program(folder)


def test_settings_change_only_set_initial_values(runner):
    source = compose("training", reference_layers("training"), Settings((3, 3), 7), "test")
    player = runner.load(source, "t").new_player()
    assert player.get("max_depth") == 3 and player.get("discoverer_skill_steps") == 7
    assert player.get("merchant_skill_steps") == 140


def test_coder_prompts_are_the_papers_and_format():
    assert P.SYSTEM_PROMPT == "You are a helpful assistant."
    select = P.INITIAL["training/select_skill"]
    assert select.startswith('You are to write code which defines the method "select_skill"')
    assert "for turn in range(30):" in select and "Before writing the code, write a few questions" in select
    assert P.REWRITE.startswith("Go through your code, line by line, and reflect on where the issue arises "
                                "from.")
    for step, prompt in P.INITIAL.items():
        if step != "training/select_skill":
            text = prompt.format("PREVIOUS_CODE")
            assert "PREVIOUS_CODE" in text and "{{" not in text
        check = P.CODE_CHECK[step].format("TRACE")
        assert "Yes or no." in check and "TRACE" in check
    assert "Note that it only takes one turn to explore each level." in P.CODE_CHECK["training/select_skill"]


def _inputs(**kw):
    return step_inputs(**kw)


def test_composite_task_hooks_are_fed_every_step(runner):
    golden = runner.load(reference_program("goldenexit").source, "goldenexit").new_player()
    for _ in range(25):
        golden.step(_inputs(gold=30, kill=True))
    assert golden.get("gold_pieces") == 30 and golden.get("monsters_defeated") == 25
    out = golden.step(_inputs(gold=30, skill="discoverer", skill_time=500, depth=3))
    assert out["end"] and out["next"] == "ascender"  # gold, kills and depth 3 reached: leave

    level = runner.load(reference_program("levelupsell").source, "levelupsell").new_player()
    level.step(_inputs(xp_level=4))
    assert level.get("xp_level") == 4

    hunger = runner.load(reference_program("discoveryhunger").source, "discoveryhunger").new_player()
    hunger.step(_inputs(dungeon_number=2, ate_in_mines=True))
    assert hunger.get("eaten_food") is True


def test_fork_depth_is_set_when_a_descender_lands_in_the_mines(runner):
    player = runner.load(reference_program("training").source, "training").new_player()
    out = player.step(_inputs(skill="descender", depth=3, previous_depth=2, dungeon_number=2,
                              branch_depth_if_end=2))
    assert out["end"] and out["branch_depth"] == 2 and player.get("branch_depth") == 2
    out = player.step(_inputs(skill="descender", depth=3, previous_depth=3, dungeon_number=2, branch_depth=2))
    assert not out["end"]


def test_a_small_variant_runs_its_paper_tasks_program_unless_it_has_its_own(tmp_path):
    from benchmark.evaluate import build_method

    mm = build_method("maestromotif", code_seed=0)
    assert mm.program_task("gnomish_small", str(tmp_path)) == "gnomish"  # no program of its own
    assert mm.program_task("buc_small", str(tmp_path)) == "buc"
    assert mm.program_task("gnomish", str(tmp_path)) == "gnomish"
    own = tmp_path / "gnomish_small" / "seed0"
    own.mkdir(parents=True)
    (own / "program.py").write_text("# written by the coder for the variant\n")
    assert mm.program_task("gnomish_small", str(tmp_path)) == "gnomish_small"

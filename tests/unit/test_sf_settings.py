"""Settings reach sample-factory's workers in its cfg, and library patches apply only when asked
(issue: no settings through disk or environment variables, no patches as an import side effect)."""
from __future__ import annotations

import subprocess
import sys

from benchmark.config import compose, defaults
from benchmark.appo.trainer import settings_hash
from maestromotif.rl.train import RLConfig, sf_argv


def _argv(tmp_path, *overrides):
    params = compose("ci", [f"data_dir={tmp_path}", *overrides])
    return sf_argv(defaults("rl", RLConfig), params, 0, tmp_path / "run")


def test_intrinsic_settings_travel_in_the_command_line_and_change_the_settings_hash(tmp_path):
    base = _argv(tmp_path)
    changed = _argv(tmp_path, "reward.intrinsic.count_exponent=2.0")
    intrinsic = [a for a in changed if a.startswith("--mm_intrinsic=")]
    assert intrinsic and '"count_exponent": 2.0' in intrinsic[0]
    assert not any(a.startswith("--mm_params=") for a in base)  # no params file for workers to re-read
    assert settings_hash(base) != settings_hash(changed)  # a finished run with other settings is redone


def test_the_baselines_train_with_the_shared_trainer_and_no_skill_settings(tmp_path):
    from baselines.appo import appo_settings, baseline_argv, trainer_config

    params = compose("ci", [f"data_dir={tmp_path}"])
    trainer = trainer_config("score_ppo", {"train_for_env_steps": 777, "reward_scale": 0.1,
                                           "reward_clip": 10.0, "rl": {"learning_rate": 0.5},
                                           "deterministic": False}, params)
    rl = appo_settings(params, "score_ppo", trainer)
    flags = dict(a[2:].split("=", 1) for a in baseline_argv(params, rl, tmp_path / "run", 0, "score_ppo",
                                                            {"reward": "score"}))
    assert flags["appo_env_module"] == "baselines.appo" and flags["env"] == "baseline"
    assert trainer.train_for_env_steps != params.rl.train_for_env_steps  # ci: the baselines' own budget
    assert flags["train_for_env_steps"] == str(trainer.train_for_env_steps)
    assert flags["learning_rate"] == "0.5"  # the trainer's rl override
    assert flags["baseline_env"] == '{"reward": "score"}'
    assert not [k for k in flags if k.startswith("mm_") and k != "mm_crop_mode"]  # no skill env settings


def test_the_shared_trainer_names_no_method():
    """benchmark/appo is the trainer every method uses: no method's name appears in it, code or text."""
    from pathlib import Path

    import benchmark.appo

    folder = Path(benchmark.appo.__file__).parent
    for path in sorted(folder.glob("*.py")):
        text = path.read_text().lower()
        for name in ("maestromotif", "baselines", "motif", "score_ppo", "task_ppo", "llm_policy",
                     "embedding"):
            assert name not in text, f"{path.name} names {name!r}"


def test_each_maestromotif_method_trains_on_its_own_reward_models(tmp_path):
    from benchmark.config import section

    params = compose("ci", [f"data_dir={tmp_path}"])
    rl = section(params, "rl", RLConfig)

    argv = {m: sf_argv(rl, params, 0, tmp_path / "run", method=m)
            for m in ("maestromotif", "maestromotif_oracle")}
    llm, oracle = ({a[2:].split("=", 1)[0]: a.split("=", 1)[1] for a in v} for v in argv.values())
    assert llm["mm_reward_dir"] == f"{tmp_path}/reward"  # the folder it always was
    assert oracle["mm_reward_dir"] == f"{tmp_path}/reward_oracle"
    assert {k for k in llm if llm[k] != oracle[k]} == {"mm_reward_dir"}  # the same training otherwise
    assert settings_hash(argv["maestromotif"]) != settings_hash(argv["maestromotif_oracle"])


def test_importing_the_env_modules_patches_nothing():
    code = ("import maestromotif.rl.sf_env, baselines.appo, benchmark.appo.runner\n"
            "from sample_factory.algo.learning.learner import Learner\n"
            "assert not getattr(Learner._record_summaries, '_mm_fixed', False), 'patched at import'\n"
            "from benchmark.appo import patches\n"
            "patches.apply()\n"
            "assert Learner._record_summaries._mm_fixed\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_resume_drops_the_rows_it_will_log_again(tmp_path):
    """Rows at or after the checkpoint's step count are logged again by the resumed run (its first window
    can end at that very count): kept, they gave a curve two windows at one step count."""
    import json

    from benchmark.appo.trainer import drop_rows_after

    path = tmp_path / "curve.jsonl"
    path.write_text("".join(json.dumps({"env_steps": s, "skill": "a"}) + "\n" for s in (0, 100, 200, 300))
                    + '{"env_steps": 4')  # and a torn last line
    drop_rows_after(path, 200)
    assert [json.loads(line)["env_steps"] for line in path.read_text().splitlines()] == [0, 100]
    drop_rows_after(path, 0)  # a fresh start: nothing before it
    assert path.read_text() == ""

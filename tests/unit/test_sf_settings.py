"""Settings reach sample-factory's workers in its cfg, and library patches apply only when asked
(issue: no settings through disk or environment variables, no patches as an import side effect)."""
from __future__ import annotations

import subprocess
import sys

from benchmark.config import compose, defaults
from maestromotif.rl.train import RLConfig, sf_argv, settings_hash


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


def test_the_baselines_env_gets_no_intrinsic_block(tmp_path):
    params = compose("ci", [f"data_dir={tmp_path}"])
    argv = sf_argv(defaults("rl", RLConfig), params, 0, tmp_path / "run", env_name="mm_factory")
    assert "--mm_intrinsic=" in argv


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


def test_importing_the_env_module_patches_nothing():
    code = ("import maestromotif.rl.sf_env\n"
            "from sample_factory.algo.learning.learner import Learner\n"
            "assert not getattr(Learner._record_summaries, '_mm_fixed', False), 'patched at import'\n"
            "from maestromotif.rl import patches\n"
            "patches.apply()\n"
            "assert Learner._record_summaries._mm_fixed\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]

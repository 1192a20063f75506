"""benchmark.appo.patches.env_info_in_process: a serial run reads its env's spaces in its own process, and
gets what sample-factory's spawned helper process gets, with every global RNG left where it was (the
reproducible runs' weights depend on them). Real sample-factory, real NLE."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.timeout(300)


def test_env_info_read_in_process_equals_the_spawned_helpers_and_leaves_the_rngs_alone(tmp_path):
    from baselines.appo import appo_settings, baseline_argv, trainer_config
    from benchmark.appo import patches
    from benchmark.appo.runner import parse_cfg
    from benchmark.config import compose
    from sample_factory.algo.runners import runner as sf_runner
    from sample_factory.algo.utils.env_info import obtain_env_info_in_a_separate_process as spawned

    params = compose("ci", [f"data_dir={tmp_path}"])
    trainer = trainer_config("score_ppo", {"train_for_env_steps": 100, "reward_scale": 0.1,
                                           "reward_clip": 10.0, "rl": {"reproducible": True},
                                           "deterministic": False}, params)
    env_kwargs = {"method": "score_ppo", "reward": "score", "reward_scale": 0.1, "reward_clip": 10.0}
    argv = baseline_argv(params, appo_settings(params, "score_ppo", trainer), tmp_path / "run", 0,
                         "score_ppo", env_kwargs)
    cfg = parse_cfg(argv + ["--use_env_info_cache=False"])
    assert cfg.serial_mode
    reference = spawned(cfg)

    patches.env_info_in_process()
    patches.env_info_in_process()  # idempotent
    assert sf_runner.obtain_env_info_in_a_separate_process is not spawned
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    before = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    info = sf_runner.obtain_env_info_in_a_separate_process(cfg)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before
    assert info == reference
    assert set(info.obs_space.spaces) == {"message", "screen", "stats"}  # the policy observation

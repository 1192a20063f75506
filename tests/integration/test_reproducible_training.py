"""Reproducible training (rl.reproducible): the same settings give the same network, whatever the machine's
load, so the regression check can compare a trained network exactly. Real NLE, real sample-factory."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from baselines.appo import make_baseline_env
from benchmark.calibrate import variant_fit_params
from benchmark.config import compose
from benchmark.fit import fit
from benchmark.regression import weights_fingerprint


def _env(vector: int):
    cfg = SimpleNamespace(appo_root_seed=0, appo_seed=0, appo_env_config="", mm_crop_mode="embed")
    return make_baseline_env(cfg, SimpleNamespace(worker_index=0, vector_index=vector), "score_ppo", "score",
                             reward_scale=0.1, reward_clip=10.0)


def _first_messages(env, seed_from_sample_factory: int, episodes: int = 2) -> list[bytes]:
    out = []
    for _ in range(episodes):
        obs, _ = env.reset(seed=seed_from_sample_factory)
        out.append(obs["message"].tobytes() + obs["stats"].tobytes())
    return out


def test_factory_seeds_win_over_the_seed_sample_factory_passes():
    """sample-factory resets env i with seed=i; the game must stay the one the factory derived, and the
    random decorrelation actions must be seeded."""
    a, b, other = _env(0), _env(0), _env(1)
    try:
        assert _first_messages(a, 0) == _first_messages(b, 5)  # SF's seed is ignored
        assert _first_messages(other, 1) != _first_messages(_env(0), 0)  # envs play their own games
        assert [a.action_space.sample() for _ in range(20)] == [b.action_space.sample() for _ in range(20)]
    finally:
        for env in (a, b, other):
            env.close()


def _params(tmp_path, name: str, tasks: list[str]):
    params = compose("ci", [f"data_dir={tmp_path / name}"])
    params = variant_fit_params(params, "task_ppo", tasks, 2048)
    # exactly `tasks`: a fit without --task trains every listed task
    return OmegaConf.merge(params, {"tasks": tasks, "task_ppo": {"trainer": {"rl": {"reproducible": True}}}})


def _fit(tmp_path, name: str, seed: int = 0):
    return weights_fingerprint(fit("task_ppo", seed, _params(tmp_path, name, ["delphi_small"]),
                                   task="delphi_small"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_reproducible_training_gives_the_same_network(tmp_path):
    first, again, other_seed = _fit(tmp_path, "a"), _fit(tmp_path, "b"), _fit(tmp_path, "c", seed=1)
    assert first is not None and first == again
    assert other_seed != first
    assert np.all([len(h) == 16 for h in (first, again, other_seed)])
    # two tasks fitted at once (fit_jobs=2, one process each) give the networks of one-at-a-time fits
    seed_dir = fit("task_ppo", 0, _params(tmp_path, "d", ["delphi_small", "gnomish_small"]), jobs=2)
    assert weights_fingerprint(seed_dir / "delphi_small") == first
    assert weights_fingerprint(seed_dir / "gnomish_small") not in (None, first)

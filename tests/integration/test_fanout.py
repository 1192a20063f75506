"""The seed fan-out through Hydra launchers, locally: submitit_local (the Slurm path) and a local Ray.

Each job must write what the DVC evaluate stage writes: the same folder, the same records."""
import os
import subprocess
import sys

import pytest

from benchmark import config, evaluate

JOB = ["profile=ci", "job.method=random", "job.task=gnomish", "job.seed=0,1", "evaluate.episodes=1",
       "evaluate.max_episode_steps=100"]


def fan_out(tmp_path, launcher, *extra):
    cmd = [sys.executable, "-m", "benchmark.fanout", "-m", f"launcher={launcher}", *JOB,
           f"data_dir={tmp_path}/data", f"hydra.sweep.dir={tmp_path}/multirun", *extra]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    done = subprocess.run(cmd, cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def direct_records(tmp_path, seed):
    """What the DVC stage (python -m benchmark.evaluate) writes for the same job."""
    from benchmark.fit import fit

    params = config.compose("ci", ["evaluate.episodes=1", "evaluate.max_episode_steps=100",
                                   f"data_dir={tmp_path}/direct"])
    fit("random", seed, params)
    return evaluate.finished_records(evaluate.evaluate("random", "gnomish", seed, params, progress=False))


def check_outputs(tmp_path):
    for seed in (0, 1):
        out = tmp_path / "data" / "evaluate" / "random" / "gnomish" / f"seed{seed}"
        assert (out / "provenance.json").exists() and (out / "summary.json").exists()
        assert evaluate.finished_records(out) == direct_records(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_submitit_local_launcher(tmp_path):
    fan_out(tmp_path, "submitit_local")
    check_outputs(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_ray_launcher(tmp_path):
    fan_out(tmp_path, "ray")
    check_outputs(tmp_path)


def job_config(tmp_path, *overrides):
    """The fan-out's composed config for one job (what @hydra.main hands run_job), without a launcher."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        return compose("fanout", overrides=["profile=ci", f"data_dir={tmp_path}/data", *overrides])


def test_code_seed_jobs_are_checked_before_anything_runs(tmp_path):
    from benchmark.fanout import run_job

    with pytest.raises(config.ConfigError, match="has no code seeds"):
        run_job(job_config(tmp_path, "job.method=random", "job.code_seed=0", "evaluate.episodes=1"))
    # a code-seed job never trains: the code seeds of one network would train it at once
    with pytest.raises(FileNotFoundError, match="fit maestromotif first"):
        run_job(job_config(tmp_path, "job.method=maestromotif", "job.code_seed=0"))
    assert not (tmp_path / "data" / "fit").exists()

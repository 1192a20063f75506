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


def launcher_config(tmp_path, *overrides):
    """The composed fan-out config with its `hydra` node (the launcher's resources), as a worker sees it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        return compose("fanout", overrides=[f"data_dir={tmp_path}/data", *overrides],
                       return_hydra_config=True)


def test_the_paper_llm_policy_fan_out_gives_each_job_the_gpus_its_tensor_parallel_llm_needs(tmp_path):
    """Paper profile, LLM policy on Slurm: Llama-3.1-70B in process, tensor parallel over as many GPUs as the
    launcher gives each job. Old behaviour: the one slurm launcher gave 1 GPU a job, and a 70B model's
    tensor_parallel_size had nothing to agree with."""
    from benchmark.fanout import check_resources, job_gpus

    cfg = launcher_config(tmp_path, "launcher=slurm_llm", "profile=paper", "job.method=llm_policy")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    llm = cfg.annotator_llm
    assert (llm.model, llm.engine) == ("meta-llama/Llama-3.1-70B-Instruct", "vllm")
    assert job_gpus(launcher) == launcher.gpus_per_node == int(cfg.annotator_llm.tensor_parallel_size) == 8
    assert launcher.timeout_min == 2880  # the rest is the slurm launcher's
    check_resources(cfg, launcher)
    # the LLM config the job's fit saves (and its evaluation loads) carries the same tensor-parallel size
    from omegaconf import open_dict

    from benchmark.fanout import job_params
    from maestromotif.llm import load_config

    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]  # what @hydra.main hands the job
    assert load_config(job_params(job)["annotator_llm"]).tensor_parallel_size == "8"

    # 4 GPUs, both set together, also pass; one GPU a job (the plain slurm launcher) is refused at once
    four = launcher_config(tmp_path, "launcher=slurm_llm", "profile=paper", "job.method=llm_policy",
                           "hydra.launcher.gpus_per_node=4", "annotator_llm.tensor_parallel_size=4")
    check_resources(four, four.hydra.launcher)
    one = launcher_config(tmp_path, "launcher=slurm", "profile=paper", "job.method=llm_policy",
                          "annotator_llm.tensor_parallel_size=8")
    with pytest.raises(config.ConfigError, match="tensor_parallel_size=8.*1 GPU.*launcher=slurm_llm"):
        check_resources(one, one.hydra.launcher)
    # methods without an in-process LLM, and an LLM behind an HTTP endpoint, need no GPUs from the launcher
    check_resources(launcher_config(tmp_path, "launcher=slurm", "profile=paper", "job.method=random",
                                    "annotator_llm.tensor_parallel_size=8"), one.hydra.launcher)
    served = launcher_config(tmp_path, "launcher=slurm", "profile=paper", "job.method=llm_policy",
                             "llm@annotator_llm=vllm_server", "hydra.launcher.gpus_per_node=0")
    assert served.annotator_llm.engine == "openai" and job_gpus(served.hydra.launcher) == 0
    check_resources(served, served.hydra.launcher)

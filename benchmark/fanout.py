"""Fan the stage x method x task x seed grid out over a cluster (Hydra launchers), beyond one machine.

    python -m benchmark.fanout -m launcher=slurm profile=paper job.method=random \
        job.task=gnomish,delphi,minetown job.seed=0,1,2,3,4,5,6,7,8 hydra.launcher.partition=gpu
    python -m benchmark.fanout -m launcher=slurm profile=paper job.method=maestromotif \
        job.task=gnomish,delphi job.seed=0,1,2 job.code_seed=0,1,2      # skill seeds x code seeds
    python -m benchmark.fanout -m launcher=slurm_llm profile=paper job.method=llm_policy \
        job.task=gnomish,delphi,minetown job.seed=0,1,2,3,4,5,6,7,8    # Llama-3.1-70B over 8 GPUs a job

`launcher` switches the backend: local (in-process, default), submitit_local (one process per job), slurm
(Hydra's submitit launcher), slurm_llm (the same with 8 GPUs per job and the LLM tensor parallel over them:
the LLM policy at paper scale runs a 70B model in process) or ray (a local Ray instance, or a cluster given
by hydra.launcher.ray.init.address). A job whose in-process LLM is tensor parallel over more GPUs than its
launcher gives it is refused before it starts (`check_resources`). Each job composes the same config tree as
params.yaml (conf/config.yaml plus the profile and overrides) and calls the stage's own function, so it
writes exactly the outputs `dvc repro` would (data/evaluate/<method>/<task>/seed<S>/, code-seeded methods
.../seed<S>_code<C>/), resumably. Afterwards, `python -m benchmark.aggregate` and `python -m
benchmark.report` (or `dvc commit` + `dvc repro`) pick them up.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from benchmark.config import REPO_ROOT, ConfigError, root

log = logging.getLogger(__name__)

JOB_KEYS = ("job", "launcher")
STAGES = ("fit", "evaluate")


def job_params(cfg: DictConfig) -> DictConfig:
    """The job's params: what params.yaml would hold, with data/results anchored at the repository root
    (Slurm and Ray workers may start in another directory)."""
    params = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(params):
        for key in JOB_KEYS:
            params.pop(key, None)
        for key in ("data_dir", "results_dir"):
            if not Path(params[key]).is_absolute():
                params[key] = str(REPO_ROOT / params[key])
    root(params)
    return params


def job_gpus(launcher: DictConfig | None) -> int | None:
    """GPUs the launcher gives each job: submitit's gpus_per_node, Ray's remote num_gpus; None for the basic
    launcher (the jobs run on this machine, with whatever it has)."""
    if launcher is None:
        return None
    if launcher.get("gpus_per_node") is not None:
        return int(launcher.gpus_per_node)
    ray = launcher.get("ray")
    if ray is not None and ray.get("remote") is not None:
        return int(ray.remote.get("num_gpus", 0) or 0)
    return None


def check_resources(cfg: DictConfig, launcher: DictConfig | None) -> None:
    """A job whose method runs an LLM in process (vLLM) over N GPUs (a numeric tensor_parallel_size) needs a
    launcher that gives it at least N GPUs: fail at once, not after minutes of loading a 70B model."""
    from benchmark.evaluate import method_spec

    gpus = job_gpus(launcher)
    if gpus is None:
        return
    for key in method_spec(str(cfg.job.method)).llm_models:
        llm = cfg.get(key)
        if llm is None or llm.get("engine") != "vllm":
            continue  # an HTTP endpoint holds the model: the job needs no GPU for it
        tp = str(llm.get("tensor_parallel_size", "auto"))
        if tp.isdigit() and int(tp) > gpus:
            raise ConfigError(
                f"{cfg.job.method} runs {key} ({llm.get('model')}) in process with tensor_parallel_size="
                f"{tp}, but the launcher gives each job {gpus} GPU(s): use launcher=slurm_llm (conf/launcher/"
                f"slurm_llm.yaml), or set hydra.launcher.gpus_per_node={tp} (Ray: hydra.launcher.ray.remote."
                f"num_gpus={tp}), or lower {key}.tensor_parallel_size")


def run_job(cfg: DictConfig) -> str:
    """Run one (stage, method, task, seed[, code seed]) job; return the folder it wrote."""
    from benchmark.evaluate import EvaluateConfig, build_method, check_run, method_artefact, method_spec
    from benchmark.evaluate import evaluate
    from benchmark.config import section
    from benchmark.fit import fit

    job = cfg.job
    if job.stage not in STAGES:
        raise ValueError(f"job.stage must be one of {STAGES}, got {job.stage!r}")
    params = job_params(cfg)
    method, task, seed = str(job.method), str(job.task), int(job.seed)
    code_seed = None if job.get("code_seed") is None else int(job.code_seed)
    if job.stage == "fit":
        return str(fit(method, seed, params))
    ev = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    spec = method_spec(method)
    check_run(spec, method, root(params), code_seed)  # before any fit: a bad job trains nothing
    artefact = method_artefact(spec, build_method(method), method, task, seed, params, ev)
    if artefact is not None and not artefact.exists() and spec.code_seeds:
        # the jobs of one fit seed's code seeds would all train the same network at once
        raise FileNotFoundError(f"no artefact at {artefact}: fit {method} first (job.stage=fit "
                                f"job.seed={seed}), then fan out its code seeds")
    if artefact is not None and not artefact.exists():
        log.info("no artefact at %s: running %s's fit() first", artefact, method)
        fit(method, seed, params)
    return str(evaluate(method, task, seed, params, progress=False, code_seed=code_seed))


@hydra.main(config_path="../conf", config_name="fanout", version_base="1.3")
def main(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    check_resources(cfg, HydraConfig.get().launcher if HydraConfig.initialized() else None)
    out = run_job(cfg)
    code = "" if cfg.job.get("code_seed") is None else f"_code{cfg.job.code_seed}"
    log.info("%s %s/%s/seed%s%s -> %s", cfg.job.stage, cfg.job.method, cfg.job.task, cfg.job.seed, code, out)
    return out


if __name__ == "__main__":
    main()

"""The regression check's policy rows: seeded episodes of each method on the small variants (stochastic
rows), and for the trained methods the check's own training run (its weights: the machine rows).

Methods are built from conf/method/<name>.yaml like everywhere else; nothing here knows a method.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.probes import Inputs, Metric, RegressionConfig, RegressionError
from benchmark.seeding import episode_seed

log = logging.getLogger(__name__)


def policy_rows(cfg: RegressionConfig) -> list[tuple[str, str]]:
    """(method, task) of every stochastic row: reference methods x tasks, then trained methods x trained
    tasks."""
    return ([(m, t) for m in cfg.methods for t in cfg.tasks]
            + [(m, t) for m in cfg.trained_methods for t in cfg.trained_tasks])


def trained_metric_names(cfg: RegressionConfig | dict) -> set[str]:
    """Names of the trained rows' metrics (`cfg`: the config, or the reference's recorded config dict)."""
    get = cfg.get if isinstance(cfg, dict) else lambda key: getattr(cfg, key)
    return {f"policy/{m}/{t}" for m in get("trained_methods") for t in get("trained_tasks")}


def method_params(inp: Inputs, method_name: str) -> DictConfig:
    """The params a row's method is fitted and played with: a trained method gets the trained rows' budget on
    the trained tasks and, with `trained_reproducible`, reproducible training."""
    from benchmark.calibrate import variant_fit_params

    if method_name not in inp.cfg.trained_methods:
        return inp.params
    params = variant_fit_params(inp.params, method_name, inp.cfg.trained_tasks, inp.cfg.train_for_env_steps)
    if inp.cfg.trained_reproducible:
        params = OmegaConf.merge(params, {method_name: {"trainer": {"rl": {"reproducible": True}}}})
    return params


def fitted(inp: Inputs, method_name: str, task: str, train_seed: int = 0) -> Path | None:
    """The row's fit() artefact (training seed `train_seed`), fitted first when missing: instant for the
    reference methods, the trained rows' budget for trained ones. A method whose fit needs upstream stages
    (MaestroMotif: reward models, programs) should be given a ci data dir that has them."""
    from benchmark.calibrate import fit_if_missing

    try:
        return fit_if_missing(method_name, task, train_seed, method_params(inp, method_name))
    except Exception as e:
        raise RegressionError(
            f"{method_name} has no ci-profile fit() artefact for {task} and fitting it failed ({e}); "
            "run its pipeline on the ci profile and pass that data dir with --data-dir, or remove it "
            "from regression.methods / regression.trained_methods") from e


def play_block(inp: Inputs, method_name: str, task: str, block: int, progress: bool = False,
               train_seed: int = 0) -> dict:
    """`episodes` seeded episodes of `method_name` on `task`: their values and seeds. A trained method plays
    its training run `train_seed` (fitted here when missing). Block 0 is the check's, 1..R the reference's."""
    from benchmark.env import make
    from benchmark.evaluate import build_method
    from benchmark.playback import play_and_record

    trained = method_name in inp.cfg.trained_methods
    method = build_method(method_name)
    params = method_params(inp, method_name)
    artefact = fitted(inp, method_name, task, train_seed)
    episodes = inp.cfg.trained_episodes if trained else inp.cfg.episodes
    seeds = [episode_seed(inp.top.root_seed, "regression", task, block, episode=k) for k in range(episodes)]
    policy = method.policy(artefact, task, params)
    env_cfg = inp.env_config()
    num_envs = 1
    if trained:
        env_cfg.max_episode_steps, num_envs = inp.cfg.trained_max_episode_steps, inp.cfg.trained_num_envs
    records = play_and_record(policy, lambda: make(task=task, cfg=env_cfg), episodes, num_envs,
                              seeds.__getitem__,
                              process_seed=lambda _: inp.seed("policy", method_name, task, block),
                              progress=progress).records
    return {"seeds": seeds, "values": [float(r["value"]) for r in records],
            "steps": [int(r["steps"]) for r in records], "train_seed": train_seed,
            "weights": weights_fingerprint(artefact) if trained else None}


def weights_fingerprint(artefact: Path | None) -> str | None:
    """Hash of the trained network in a fit() artefact: the newest sample-factory checkpoint's model tensors
    (names, dtypes, shapes, bytes); None when the artefact holds no sample-factory checkpoint."""
    ckpts = sorted(Path(artefact).rglob("checkpoint_p0/checkpoint_*.pth")) if artefact is not None else []
    if not ckpts:
        return None
    import torch

    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)["model"]
    return provenance.digest(*(f"{k}|{v.dtype}|{tuple(v.shape)}".encode() + v.contiguous().numpy().tobytes()
                               for k, v in sorted(state.items())))


def check_policy(inp: Inputs, block: int = 0, progress: bool = False, trained: bool = True,
                 reference: bool = True) -> list[Metric]:
    """Block `block` of the rows asked for: the reference methods' (`reference`) and the trained methods'
    (`trained`; training seed `block`)."""
    out = []
    for method_name, task in policy_rows(inp.cfg):
        is_trained = method_name in inp.cfg.trained_methods
        if not (trained if is_trained else reference):
            continue
        t0 = time.perf_counter()
        run = play_block(inp, method_name, task, block, progress, train_seed=block if is_trained else 0)
        log.info("policy %s on %s, block %d: mean %.3f over %d episodes (%.1f s)", method_name, task,
                 block, np.mean(run["values"]), len(run["values"]), time.perf_counter() - t0)
        mean = float(np.mean(run["values"]))
        out.append(Metric(f"policy/{method_name}/{task}", "stochastic", mean, run))
        if run["weights"] is not None and block == 0:
            out.append(Metric(f"weights/{method_name}/{task}", "machine", run["weights"],
                              {"machine": provenance.machine()}))
    return out

"""`dvc exp run -S ...` from a fresh copy: .dvc/config enables DVC's Hydra composition, so an override
recomposes params.yaml from conf/ (a profile switches every size the profile sets, not the `profile` key
alone), the same params `python -m benchmark.config` writes, and its results go to results/<profile>/."""
import json
import subprocess

import pytest
from omegaconf import OmegaConf

from benchmark import config
from tests.fixtures.dvc_project import copy_project, dvc, run


def queued_params(root) -> dict[str, dict]:
    """name -> params.yaml of every experiment in the queue (read from its stashed commit)."""
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    revs = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") and node.get("rev") and node.get("rev") != "workspace":
                revs[node["name"]] = node["rev"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    return {name: OmegaConf.to_container(OmegaConf.create(run(root, "git", "show",
                                                              f"{rev}:params.yaml").stdout))
            for name, rev in revs.items() if name != "master"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_set_param_profile_switches_the_profile_sizes(tmp_path):
    root = copy_project(tmp_path / "project", "small")
    dvc(root, "exp", "run", "--queue", "-n", "ci-tiny", "-S", "profile=ci", "-S", "evaluate.episodes=3")
    dvc(root, "exp", "run", "--queue", "-n", "small-lr", "-S", "reward.lr=0.002")
    queued = queued_params(root)
    assert queued["ci-tiny"] == OmegaConf.to_container(config.compose("ci", ["evaluate.episodes=3"]))
    assert queued["ci-tiny"]["results_dir"] == "results/ci" and queued["ci-tiny"]["rl"]["num_workers"] == 2
    assert queued["small-lr"] == OmegaConf.to_container(config.compose("small", ["reward.lr=0.002"]))
    # queueing leaves the work tree's params (the committed small profile) alone
    assert OmegaConf.load(root / "params.yaml").profile == "small"


@pytest.mark.timeout(120)
def test_a_mistyped_set_param_names_the_key(tmp_path):
    root = copy_project(tmp_path / "project", "small")
    result = dvc(root, "exp", "run", "--queue", "-S", "evaluate.episode=3", check=False)
    assert result.returncode != 0 and "evaluate.episode" in result.stdout + result.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                          check=True).stdout == ""

"""benchmark.fit with fit_jobs > 1: each task of a per-task method in its own process, failures reported
together, finished artefacts kept. Control flow only, with a fake method (tests/fixtures/fake_methods.py);
tests/integration/test_reproducible_training.py checks that parallel fits train the same networks."""
import json

import pytest
from omegaconf import OmegaConf

from benchmark import evaluate
from benchmark.config import ConfigError, compose
from benchmark.fit import fit

TASKS = ["gnomish_small", "delphi_small", "buc_small"]


@pytest.fixture
def fake_method(tmp_path, monkeypatch):
    def make(fail_task: str = "") -> str:
        folder = tmp_path / "methods"
        folder.mkdir(exist_ok=True)
        (folder / "fake_per_task.yaml").write_text(
            f"_target_: tests.fixtures.fake_methods.FakePerTaskMethod\nfail_task: '{fail_task}'\n")
        monkeypatch.setenv(evaluate.METHOD_DIRS_ENV, str(folder))
        return "fake_per_task"
    return make


def _params(tmp_path, jobs: int):
    params = compose("ci", [f"data_dir={tmp_path / 'data'}"])
    return OmegaConf.merge(params, {"tasks": TASKS, "fit_jobs": jobs})


def test_parallel_fit_runs_every_task_in_its_own_process(tmp_path, fake_method):
    name = fake_method()
    seed_dir = fit(name, 0, _params(tmp_path, 2))
    records = [json.loads((seed_dir / t / "fit.json").read_text()) for t in TASKS]
    assert [r["task"] for r in records] == TASKS
    assert all((seed_dir / t / "provenance.json").exists() for t in TASKS)
    assert len({r["pid"] for r in records}) >= 2  # not all in one process
    assert not list(seed_dir.glob(".*partial"))


def test_a_failed_task_keeps_the_others_and_names_itself(tmp_path, fake_method):
    name = fake_method(fail_task="delphi_small")
    with pytest.raises(RuntimeError, match=r"1 of 3 task fits failed.*delphi_small: RuntimeError: planted"):
        fit(name, 0, _params(tmp_path, 2))
    seed_dir = tmp_path / "data" / "fit" / name / "seed0"
    assert (seed_dir / "gnomish_small" / "provenance.json").exists()
    assert (seed_dir / "buc_small" / "provenance.json").exists()
    assert not (seed_dir / "delphi_small").exists()


def test_fit_jobs_must_be_positive(tmp_path, fake_method):
    with pytest.raises(ConfigError, match="fit_jobs must be >= 1"):
        fit(fake_method(), 0, _params(tmp_path, 0))

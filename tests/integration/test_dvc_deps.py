"""dvc.yaml's deps match what each stage runs: on a copy of the project whose every stage is recorded as up
to date (`dvc commit` over placeholder outputs), editing one file must mark exactly the stages that run it."""
import json
from pathlib import Path

import pytest

from tests.fixtures.dvc_project import copy_project, dvc

FILE_OUTS = (".csv", ".json", ".md")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A ci-profile copy with every stage committed as if it had run (placeholder outputs, no training)."""
    from dvc.repo import Repo

    root = copy_project(tmp_path_factory.mktemp("dvc_deps"), "ci")
    with Repo(str(root)) as repo:
        outs = [Path(o.fs_path) for stage in repo.index.stages for o in stage.outs]
    for out in outs:
        if out.suffix in FILE_OUTS:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("placeholder\n")
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / "placeholder.txt").write_text(out.name)
    dvc(root, "commit", "--force", "--quiet")
    assert changed(root) == set(), "every stage must be up to date before a file is edited"
    return root


def changed(root: Path) -> set[str]:
    """The stages `dvc status` says are out of date (its JSON: stage name -> what changed)."""
    return set(json.loads(dvc(root, "status", "--json").stdout or "{}"))


def stale_after(root: Path, name: str, new_text) -> set[str]:
    """The stages `dvc status` marks after rewriting file `name` with new_text(old text); the file is
    restored afterwards."""
    path = root / name
    text = path.read_text()
    path.write_text(new_text(text))
    try:
        return changed(root)
    finally:
        path.write_text(text)


def stale_after_edit(root: Path, name: str) -> set[str]:
    """The stages marked after appending a comment to `name`."""
    return stale_after(root, name, lambda text: text + "\n# edited by test_dvc_deps\n")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_deployment_only_file_re_evaluates_without_retraining(project):
    stale = stale_after_edit(project, "maestromotif/rl/policy.py")
    assert {"evaluate_maestromotif", "evaluate_maestromotif_oracle"} <= stale
    assert "evaluate@task_ppo" in stale  # the APPO baselines deploy the same network class
    assert not any(s.startswith(("train_skills", "fit@", "reward", "collect", "annotate"))
                   for s in stale), stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_editing_one_baseline_refits_that_baseline_only(project):
    stale = stale_after_edit(project, "baselines/motif.py")
    assert {"fit@motif-0", "evaluate@motif"} <= stale
    others = {s for s in stale if s.startswith(("fit@", "evaluate@", "train_skills")) and "motif" not in s}
    assert others == set(), f"editing Motif reran other methods: {sorted(others)}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_variant_or_seeding_change_re_evaluates_every_method(project):
    stale = stale_after_edit(project, "benchmark/variants.py")
    assert {"evaluate@random", "evaluate@motif", "evaluate_maestromotif",
            "evaluate_maestromotif_oracle"} <= stale
    assert not any(s.startswith(("train_skills", "fit@")) for s in stale), stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_method_section_of_the_params_refits_that_method_only(project):
    from omegaconf import OmegaConf

    def longer_motif_training(text: str) -> str:
        params = OmegaConf.create(text)
        params.motif.trainer.train_for_env_steps += 1
        return OmegaConf.to_yaml(params)

    stale = stale_after(project, "params.yaml", longer_motif_training)
    assert "fit@motif-0" in stale
    assert not {s for s in stale if s.startswith("fit@") and "motif" not in s}, stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_event_counts_rerun_alone_when_their_definitions_change(project):
    assert stale_after_edit(project, "maestromotif/data/events.py") == {"collect_events"}
    # the tasks' criteria are the counts' criteria: the events are recounted (and nothing is retrained)
    stale = stale_after_edit(project, "benchmark/trackers.py")
    assert "collect_events" in stale and "collect" not in stale
    assert not any(s.startswith(("train_skills", "fit@", "reward", "annotate")) for s in stale), stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_oracle_method_file_re_evaluates_that_method_only(project):
    stale = stale_after_edit(project, "conf/method/maestromotif_oracle.yaml")
    assert "evaluate_maestromotif_oracle" in stale
    assert not {s for s in stale if s.startswith(("evaluate", "train_skills", "reward", "annotate", "fit@"))
                and s != "evaluate_maestromotif_oracle"}, stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_llm_setting_reruns_the_llm_chain_and_leaves_the_oracle_chain_alone(project):
    from omegaconf import OmegaConf

    def other_llm_settings(text: str) -> str:
        params = OmegaConf.create(text)
        params.annotate.mode = "chain_of_thought"
        params.annotator_llm.max_model_len += 1
        return OmegaConf.to_yaml(params)

    stale = stale_after(project, "params.yaml", other_llm_settings)
    assert "annotate" in stale
    assert not {s for s in stale if "oracle" in s}, stale
    # the rules are read by both: the oracle's labels, and the LLM labels' agreement check
    assert {"annotate", "annotate_oracle"} <= stale_after_edit(project, "maestromotif/oracle.py")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_label_file_reader_retrains_what_reads_labels(project):
    """maestromotif/labels.py is read by annotate (writing), the reward models and Motif's fit (reading)."""
    stale = stale_after_edit(project, "maestromotif/labels.py")
    rewards = {s for s in stale if s.startswith("reward")}
    assert {"annotate", "annotate_oracle", "fit@motif-0"} <= stale
    assert rewards and all(s.startswith(("reward@", "reward_oracle@")) for s in rewards), stale
    assert not any(s.startswith(("train_skills", "collect", "evaluate")) for s in stale), stale


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_game_clock_is_part_of_the_env(project):
    """benchmark/game_clock.py decides which game a seed plays: everything that plays NetHack reruns."""
    clock = stale_after_edit(project, "benchmark/game_clock.py")
    assert clock == stale_after_edit(project, "benchmark/env.py")


@pytest.mark.parametrize("profile", ["ci", "small", "paper"])
def test_every_dependency_exists_or_is_made_by_a_stage(tmp_path, profile):
    """A dep that is neither a file of the repository nor another stage's output fails `dvc repro` of that
    profile at the stage (the small profile's scripted agent once named a baselines/scripted.py that did not
    exist)."""
    from dvc.repo import Repo

    root = copy_project(tmp_path, profile)
    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        outs = {Path(o.fs_path) for stage in stages for o in stage.outs}
        folders_of_outs = {parent for out in outs for parent in out.parents}

        def made(dep: Path) -> bool:  # a stage's output, inside one, or a folder that holds outputs
            return dep in outs or dep in folders_of_outs or bool(set(dep.parents) & outs)

        missing = [f"{stage.name}: {Path(dep.fs_path).relative_to(root)}"
                   for stage in stages for dep in stage.deps
                   if not Path(dep.fs_path).exists() and not made(Path(dep.fs_path))]
    assert stages and not missing, missing

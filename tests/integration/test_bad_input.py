"""Bad input gets a clear error and loses nothing: each test writes a real damaged file into tmp_path and runs
it through the real loader or stage, which must name the file and the fix, and keep finished work."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.config import compose
from maestromotif.prompts import SKILLS
from maestromotif.reward.model import (
    QUANTILE_LEVELS, CheckpointError, RewardCheckpoint, RewardModel, save_checkpoint,
)


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _checkpoint(skill: str) -> RewardCheckpoint:
    torch.manual_seed(0)
    return RewardCheckpoint(skill, RewardModel().eval(), 0.0, 1.0, {q: q for q in QUANTILE_LEVELS})


# --- 1. a corrupt chunk of collected observations -----------------------------------------------------
def test_corrupt_observation_chunk_is_named_and_a_rerun_replays_only_it(tmp_path):
    from maestromotif.data.collect import collect, load_observations
    from maestromotif.data.schema import SchemaError

    params = compose("ci", [f"data_dir={tmp_path}", "collect.sources=[{kind:random,episodes:2}]",
                            "collect.episodes_per_chunk=1", "collect.max_steps_per_episode=30",
                            "collect.workers=1"])
    out = collect(params)
    first, second = out / "chunk_00000.parquet", out / "chunk_00001.parquet"
    good = second.read_bytes()
    before = load_observations(out)
    _truncate(second)
    with pytest.raises(SchemaError) as e:
        load_observations(out)
    msg = str(e.value)
    assert str(second) in msg and "delete this file" in msg and "python -m maestromotif.data.collect" in msg
    kept = first.stat().st_mtime_ns
    collect(params)  # replays the damaged chunk only
    assert first.stat().st_mtime_ns == kept
    assert second.read_bytes() == good  # the same episodes, played again
    pd.testing.assert_frame_equal(load_observations(out), before)


# --- 2. a truncated or corrupt label chunk ------------------------------------------------------------
def test_corrupt_label_chunk_is_named_and_a_rerun_redoes_only_it(tmp_path, ci_data):
    from maestromotif.annotate import annotate
    from maestromotif.labels import LabelFileError, labelled_pairs

    params = compose("ci", [f"data_dir={ci_data.data_dir}", "annotate.annotator=oracle",
                            "annotate.chunk_size=8"])
    out = annotate(params, skill="descender", pairs_path=ci_data.pairs_dir / "descender.parquet",
                   out_dir=tmp_path / "labels")
    chunks = sorted((out / "chunks").glob("chunk_*.jsonl"))
    assert len(chunks) == 2
    before = labelled_pairs(out)
    good = chunks[1].read_bytes()
    (out / "labels.parquet").unlink()  # as after a kill: the reader falls back to the chunks

    lines = good.decode().splitlines(keepends=True)
    chunks[1].write_text("".join(lines[:2]) + '{"pair_id": 10, "lab\n' + "".join(lines[3:]))  # corrupt line 3
    with pytest.raises(LabelFileError, match=rf"{chunks[1]} is corrupt \(line 3.*delete this file and rerun"):
        labelled_pairs(out)
    _truncate(chunks[1], 0.7)  # torn inside a line: the old reader silently returned fewer labels
    with pytest.raises(LabelFileError, match=rf"{chunks[1]} is truncated.*python -m maestromotif.annotate"):
        labelled_pairs(out)

    kept = chunks[0].stat().st_mtime_ns
    annotate(params, skill="descender", pairs_path=ci_data.pairs_dir / "descender.parquet", out_dir=out)
    assert chunks[0].stat().st_mtime_ns == kept and chunks[1].read_bytes() == good
    pd.testing.assert_frame_equal(labelled_pairs(out), before)

    _truncate(out / "labels.parquet")
    with pytest.raises(LabelFileError, match=r"labels.parquet is not a readable parquet file.*rerun"):
        labelled_pairs(out)


# --- 3. a corrupt reward model ----------------------------------------------------------------------
def test_corrupt_reward_model_is_named_where_rl_loads_it(tmp_path):
    from maestromotif.reward.intrinsic import IntrinsicReward
    from maestromotif.rl.train import train

    reward_dir = tmp_path / "reward"
    for skill in SKILLS:
        save_checkpoint(reward_dir / skill / "model.pt", _checkpoint(skill))
    broken = reward_dir / "descender" / "model.pt"
    _truncate(broken)
    with pytest.raises(CheckpointError) as e:
        IntrinsicReward.from_dir(reward_dir, SKILLS)  # what each RL env worker loads
    assert str(broken) in str(e.value)
    assert "python -m maestromotif.reward.train --skill descender" in str(e.value)
    # The trainer checks the models before it starts sample-factory (the old check only saw that the files
    # existed, and the error surfaced in every env worker instead).
    params = compose("ci", [f"data_dir={tmp_path}"])
    with pytest.raises(CheckpointError, match=str(broken)):
        train(params, 0)
    assert not (tmp_path / "fit" / "maestromotif" / "seed0" / "train.log").exists()  # nothing was started


# --- 4. a corrupt policy checkpoint -----------------------------------------------------------------
def test_corrupt_policy_checkpoint_is_named_where_evaluation_loads_it(tmp_path):
    from baselines.appo import RUN_DIR, load_policy
    from maestromotif.rl.policy import PolicyLoadError, SkillPolicy
    from benchmark.appo.trainer import checkpoints
    from tests.integration.test_train_support import untrained_skill_run

    run = untrained_skill_run(compose("ci", [f"data_dir={tmp_path}"]))  # the real network, not trained
    only = checkpoints(run)[0]
    _truncate(only)
    with pytest.raises(PolicyLoadError) as e:  # MaestroMotif's deployment
        SkillPolicy.from_run(run, program="gnomish")
    assert str(only) in str(e.value) and f"delete {run}" in str(e.value)

    artefact = tmp_path / "fit" / "task_ppo" / "seed0" / "gnomish"  # a baseline's artefact
    shutil.copytree(run, artefact / RUN_DIR)
    latest = artefact / RUN_DIR / only.relative_to(run)
    with pytest.raises(PolicyLoadError) as e:
        load_policy(artefact)
    assert str(latest) in str(e.value) and f"delete {artefact} and fit it again" in str(e.value)

    # With an older checkpoint beside it (keep_checkpoints > 1), the message offers that one instead.
    newest = latest.with_name("checkpoint_000000001_4096.pth")
    latest.rename(newest)  # the truncated file is now the newest of two
    torch.save({"model": {}}, latest)  # the older one (never loaded here: the newest is tried first)
    with pytest.raises(PolicyLoadError, match=rf"{newest} is corrupt.*previous checkpoint {latest.name}"):
        load_policy(artefact)


# --- 7. a NaN reward ----------------------------------------------------------------------------------
def test_nan_reward_model_fails_fast_with_the_skill_and_step(tmp_path):
    from benchmark.env import make
    from maestromotif.reward.intrinsic import IntrinsicReward, NonFiniteReward
    from maestromotif.reward.model import load_checkpoint
    from maestromotif.reward.wrapper import IntrinsicRewardWrapper

    ckpt = _checkpoint("descender")
    with torch.no_grad():
        ckpt.model.head[1].weight.fill_(float("nan"))  # as a diverged reward training leaves it
    save_checkpoint(tmp_path / "model.pt", ckpt)
    expected = rf"{tmp_path / 'model.pt'} has NaN/inf weights in \['head.1.weight'\]"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(tmp_path / "model.pt")

    # The same model used in memory (no file check): the first step it scores fails, naming skill and step.
    env = IntrinsicRewardWrapper(make(seed=0), IntrinsicReward([ckpt]))
    try:
        env.reset(seed=0)
        with pytest.raises(NonFiniteReward, match=r"step 1 of the episode: the descender reward model "
                                                  r"scores nan"):
            env.step(0)
    finally:
        env.close()


# --- 8. an empty pair set ---------------------------------------------------------------------------
def test_empty_pair_set_and_no_usable_labels_are_named(tmp_path):
    from maestromotif.annotate import annotate
    import pyarrow.parquet as pq

    from maestromotif.data.schema import PAIR_SCHEMA
    from maestromotif.reward.train import LabelsError, run_skill

    params = compose("ci", [f"data_dir={tmp_path}", "annotate.annotator=oracle"])
    empty = tmp_path / "pairs" / "descender.parquet"
    empty.parent.mkdir()
    pq.write_table(PAIR_SCHEMA.empty_table(), empty)  # a pair set of the right schema with no rows
    with pytest.raises(ValueError, match=rf"{empty} holds no pairs.*pairs\.sizes\.descender > 0"):
        annotate(params, skill="descender")  # the old stage failed on a KeyError: 'pair_id'

    labels = tmp_path / "labels" / "descender"
    labels.mkdir(parents=True)
    unknown = pd.DataFrame({"pair_id": np.arange(4), "message_1": "", "message_2": "", "dlvl_change_1": 0,
                            "dlvl_change_2": 0, "label": 3})  # every label unknown (3)
    unknown.to_parquet(labels / "labels.parquet")
    with pytest.raises(LabelsError, match=rf"{labels} holds no usable labelled pairs for descender"):
        run_skill(params, "descender")
    assert not (tmp_path / "reward" / "descender" / "model.pt").exists()

"""The collect and pairs stages on the real env (ci profile): schema, determinism, resumption."""
import shutil

import pandas as pd
import pytest

from benchmark.io import read_json
from maestromotif.data.collect import chunk_plan, collect, load_observations
from maestromotif.data.pairs import load_pairs, make_pairs
from maestromotif.data.schema import OBSERVATION_SCHEMA, SchemaError
from tests.fixtures.data import ci_params


def test_records_follow_the_schema_and_the_game(ci_data):
    obs = load_observations(ci_data.obs_dir)
    assert list(obs.columns) == OBSERVATION_SCHEMA.names
    meta = read_json(ci_data.obs_dir / "meta.json")
    assert meta["profile"] == "ci" and meta["rows"] == len(obs) and meta["source"] == "random"
    assert obs.episode_id.nunique() == ci_data.params.collect.episodes
    assert (obs.source == "random").all()
    first = obs[obs.step == 0]
    assert (first.message != "").all() and (first.prev_message == "").all()
    assert first.message.str.startswith("Hello Agent, welcome to NetHack!").any()
    assert (first.dlvl == 1).all() and (first.xp == 1).all() and (first.dungeon == 0).all()
    # prev_message is the message one step earlier in the same episode
    for _, ep in obs.groupby("episode_id"):
        assert ep.prev_message.iloc[1:].tolist() == ep.message.iloc[:-1].tolist()
        assert (ep.step.diff().dropna() == 1).all()
    assert (obs.hp > 0).all(), "the blank observation after death must not be recorded"


def test_pairs_exist_for_every_skill_and_motif(ci_data):
    meta = read_json(ci_data.pairs_dir / "meta.json")
    assert set(meta["sets"]) == {"discoverer", "descender", "ascender", "worshipper", "merchant", "motif"}
    p = load_pairs(ci_data.pairs_dir / "descender.parquet")
    assert len(p) == ci_data.params.pairs.sizes.descender
    assert ((p.step_1 - p.prev_step_1) == 100).all() and ((p.step_2 - p.prev_step_2) == 100).all()


@pytest.mark.timeout(300)
def test_dataset_is_independent_of_workers_and_resumes_after_a_lost_chunk(ci_data, tmp_path):
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml", "collect.workers=1")
    out = collect(params)
    pd.testing.assert_frame_equal(load_observations(out), load_observations(ci_data.obs_dir))
    chunk = out / chunk_plan(params.collect, params.root_seed)[0]["file"]
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("chunk_*.parquet")}
    chunk.unlink()
    collect(params)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("chunk_*.parquet")}
    assert set(after) == set(before)
    assert [n for n in after if after[n] != before[n]] == [chunk.name]  # only the lost chunk was redone
    pd.testing.assert_frame_equal(load_observations(out), load_observations(ci_data.obs_dir))
    # pairs are a pure function of records and seeds
    pairs_dir = make_pairs(params)
    pd.testing.assert_frame_equal(load_pairs(pairs_dir / "merchant.parquet"),
                                  load_pairs(ci_data.pairs_dir / "merchant.parquet"))


WALL_MESSAGES = ("It's a wall.", "It's solid stone.")  # NetHack's mention_walls option


@pytest.mark.timeout(300)
def test_chunks_are_played_with_the_params_nethack_options_and_redone_when_they_change(ci_data, tmp_path):
    obs = load_observations(ci_data.obs_dir)
    assert not obs.message.isin(WALL_MESSAGES).any()  # the official options: no wall bumps reported
    out = tmp_path / "data" / "observations"
    shutil.copytree(ci_data.obs_dir, out)
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml", "collect.workers=1")
    params.env.options.append("mention_walls")
    collect(params)
    redone = load_observations(out)
    assert redone.message.isin(WALL_MESSAGES).any()  # every chunk played again, with the params' options


def test_a_foreign_chunk_fails_loudly(ci_data, tmp_path):
    copy = tmp_path / "obs"
    shutil.copytree(ci_data.obs_dir, copy)
    target = copy / read_json(copy / "meta.json")["files"][0]
    load_observations(copy).drop(columns=["turn"]).to_parquet(target)
    with pytest.raises(SchemaError, match=r"missing \['turn'\]"):
        load_observations(copy)
    (copy / "meta.json").unlink()
    with pytest.raises(SchemaError, match="collect stage has not finished"):
        load_observations(copy)

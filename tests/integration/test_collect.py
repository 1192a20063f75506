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
    assert meta["profile"] == "ci" and meta["rows"] == len(obs)
    episodes = ci_data.params.collect.sources[0].episodes
    assert meta["sources"] == [{"label": "random", "kind": "random", "episodes": episodes, "files": 2,
                                "records": len(obs)}]
    assert obs.episode_id.nunique() == episodes
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


MIX = "collect.sources=[{kind: random, episodes: 6}, {kind: scripted, epsilon: 0.2, episodes: 3}]"


@pytest.mark.timeout(300)
def test_a_mix_of_sources_tags_every_record_and_counts_each_source(ci_data, tmp_path):
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml", MIX)
    out = collect(params)
    obs = load_observations(out)
    per_source = obs.groupby("source").episode_id.nunique().to_dict()
    assert per_source == {"random": 6, "scripted_eps0.2": 3}  # the config's episodes per source
    meta = read_json(out / "meta.json")
    assert [(s["label"], s["kind"], s["episodes"], s["records"]) for s in meta["sources"]] == [
        ("random", "random", 6, int((obs.source == "random").sum())),
        ("scripted_eps0.2", "scripted", 3, int((obs.source == "scripted_eps0.2").sum()))]
    assert meta["sources"][1]["epsilon"] == 0.2 and meta["sources"][1]["task"] == "gnomish_small"
    assert meta["rows"] == len(obs)
    # the random source is the ci dataset itself; the scripted episodes continue the episode numbering
    pd.testing.assert_frame_equal(obs[obs.source == "random"].reset_index(drop=True),
                                  load_observations(ci_data.obs_dir))
    assert sorted(obs[obs.source == "scripted_eps0.2"].episode_id.unique()) == [6, 7, 8]
    assert (obs.groupby(["source", "episode_id"]).step.min() == 0).all()
    # the scripted agent is not the random policy: it walks (SEARCHes) through long episodes of the same cap
    scripted_len = obs[obs.source == "scripted_eps0.2"].groupby("episode_id").size().mean()
    random_len = obs[obs.source == "random"].groupby("episode_id").size().mean()
    assert scripted_len > random_len
    # resumable and repeatable: a lost scripted chunk is played again to the same records
    plan = chunk_plan(params.collect, params.root_seed, dict(params.env))
    scripted_chunk = next(p for p in plan if p["source"] == "scripted_eps0.2")
    (out / scripted_chunk["file"]).unlink()
    pd.testing.assert_frame_equal(load_observations(collect(params)), obs)


def test_paper_profile_needs_the_agent_and_nld_paths(tmp_path):
    from benchmark.config import ConfigError, compose

    params = compose("paper", [f"data_dir={tmp_path / 'data'}"])
    with pytest.raises(ConfigError, match=r"collect\.sources\[0\]\.path \(kind checkpoint\) is not set.*"
                                          r"collect\.sources\.0\.path=<path>"):
        collect(params)
    data = f"data_dir={tmp_path / 'data'}"
    params = compose("paper", [data, f"collect.sources.0.path={tmp_path / 'nope'}"])
    with pytest.raises(FileNotFoundError, match=r"collect\.sources\[0\]\.path=.*nope does not exist.*"
                                                r"benchmark\.fit"):
        collect(params)
    (tmp_path / "agent").mkdir()
    params = compose("paper", [data, f"collect.sources.0.path={tmp_path / 'agent'}"])
    with pytest.raises(ConfigError, match=r"collect\.sources\[1\]\.path \(kind nld\) is not set.*"
                                          r"nle\.dataset"):
        collect(params)
    assert not (tmp_path / "data").exists()  # nothing was played before the check


def test_a_source_with_keys_of_another_kind_or_a_duplicate_label_is_an_error(tmp_path):
    from benchmark.config import ConfigError

    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       "collect.sources=[{kind: random, episodes: 2, epsilon: 0.5}]")
    with pytest.raises(ConfigError, match=r"collect\.sources\[0\] \(kind random\) sets \['epsilon'\]"):
        collect(params)
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       "collect.sources=[{kind: random, episodes: 2}, {kind: random, episodes: 3}]")
    with pytest.raises(ConfigError, match=r"both label their records 'random'"):
        collect(params)
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       "collect.sources=[{kind: scripted, episodes: 2, climb: 2}]")
    with pytest.raises(ConfigError, match=r"collect\.sources\[0\]\.climb must be within \[0, 1\], got 2"):
        collect(params)


def test_too_few_samples_for_the_requested_pairs_is_an_error(ci_data, tmp_path):
    from maestromotif.data.pairs import TooFewSamples

    params = ci_params(tmp_path / "data", tmp_path / "params.yaml", "pairs.sampling=uniform",
                       "pairs.sizes.merchant=1000")
    with pytest.raises(TooFewSamples, match=r"pairs\[merchant\]: 2000 samples are needed but the "
                                            r"observations hold only \d+\..*pairs\.sizes\.merchant"):
        make_pairs(params, obs_dir=ci_data.obs_dir)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_trained_checkpoint_is_a_source(tmp_path):
    """A score_ppo agent fitted at the ci size (real sample-factory), then played by collect."""
    import os
    import subprocess
    import sys

    params = ci_params(tmp_path / "data", tmp_path / "params.yaml")
    env = {**os.environ, "MM_PARAMS": str(tmp_path / "params.yaml")}
    proc = subprocess.run([sys.executable, "-m", "benchmark.fit", "--method", "score_ppo", "--seed", "0",
                           "--params", str(tmp_path / "params.yaml")], env=env, capture_output=True,
                          text=True, timeout=800, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    agent = tmp_path / "data" / "fit" / "score_ppo" / "seed0"
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       f"collect.sources=[{{kind: checkpoint, method: score_ppo, path: {agent}, "
                       "episodes: 2}]",
                       "collect.workers=1")
    out = collect(params)
    obs = load_observations(out)
    assert set(obs.source) == {f"checkpoint:{agent}"} and obs.episode_id.nunique() == 2
    meta = read_json(out / "meta.json")
    assert meta["sources"][0]["digest"] and meta["sources"][0]["episodes"] == 2
    chunk = out / meta["files"][0]
    before = chunk.stat().st_mtime_ns
    pd.testing.assert_frame_equal(load_observations(collect(params)), obs)
    assert chunk.stat().st_mtime_ns == before  # same checkpoint (content hash), same settings: chunk kept

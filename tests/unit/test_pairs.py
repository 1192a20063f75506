"""Pair construction on a small hand-made record table (pure functions, real schema)."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from maestromotif.data.pairs import draw_pairs, eligible_samples
from maestromotif.data.schema import OBSERVATION_SCHEMA, PAIR_SCHEMA, SchemaError, read_table, write_table


def records(episode: int, n: int) -> pd.DataFrame:
    steps = np.arange(n)
    return pd.DataFrame({
        "episode_id": episode, "step": steps, "source": "random",
        "message": [f"m{episode}-{s}" for s in steps],
        "prev_message": [""] + [f"m{episode}-{s}" for s in steps[:-1]],
        "dlvl": 1 + steps // 150, "gold": steps, "hp": 14, "hpmax": 14, "xp": 1, "hunger": 1, "dungeon": 0,
        "turn": steps,
    })


def test_samples_pair_each_step_with_the_one_gap_steps_earlier_in_the_same_episode():
    obs = pd.concat([records(0, 250), records(1, 120)], ignore_index=True)
    s = eligible_samples(obs, gap=100)
    assert len(s) == 150 + 20
    row = s[(s.episode_id == 0) & (s.step == 160)].iloc[0]
    assert (row.prev_step, row.prev_message, row.message) == (60, "m0-60", "m0-160")
    assert (row.gold_prev, row.gold, row.dlvl_prev, row.dlvl) == (60, 160, 1, 2)
    assert set(s[s.episode_id == 1].step) == set(range(100, 120))


def test_pairs_are_seeded_and_follow_the_schema(tmp_path):
    s = eligible_samples(records(0, 400), gap=100)
    a, b, c = draw_pairs(s, 50, seed=1, name="descender"), draw_pairs(s, 50, seed=1, name="descender"), \
        draw_pairs(s, 50, seed=2, name="descender")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == PAIR_SCHEMA.names and (a.pair_id == np.arange(50)).all()
    # without replacement when there are enough samples: 100 distinct steps
    assert len(set(a.step_1) | set(a.step_2)) == 100
    write_table(a, tmp_path / "p.parquet", PAIR_SCHEMA)
    pd.testing.assert_frame_equal(read_table(tmp_path / "p.parquet", PAIR_SCHEMA, "pairs"), a,
                                  check_dtype=False)


def test_no_sample_is_a_clear_error():
    with pytest.raises(ValueError, match="gap"):
        draw_pairs(eligible_samples(records(0, 50), gap=100), 5, seed=0, name="ascender")


def test_schema_mismatch_names_the_columns(tmp_path):
    bad = records(0, 5).drop(columns=["hunger"]).rename(columns={"gold": "money"})
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(bad), tmp_path / "bad.parquet")
    with pytest.raises(SchemaError, match=r"missing \['gold', 'hunger'\], unexpected \['money'\]"):
        read_table(tmp_path / "bad.parquet", OBSERVATION_SCHEMA, "observation records")


def test_uniform_sampling_is_unchanged_by_the_sampling_option():
    s = eligible_samples(records(0, 400), gap=100)
    rng = np.random.default_rng(7)  # what the uniform draw has always been: one rng.choice over all samples
    idx = rng.choice(len(s), size=40, replace=False)
    pd.testing.assert_frame_equal(draw_pairs(s, 20, seed=7, name="ascender"),
                                  draw_pairs(s, 20, seed=7, name="ascender", sampling="uniform"))
    assert (draw_pairs(s, 20, seed=7, name="ascender").step_1.to_numpy()
            == s.step.to_numpy()[idx[0::2]]).all()


def test_changed_sampling_over_represents_depth_and_gold_changes_in_equal_shares():
    obs = records(0, 2000)
    obs["gold"] = np.where(obs.step % 500 < 20, 1, 0)        # gold changes around a few steps only
    obs["dlvl"] = 1 + (obs.step >= 1000)                     # one descent at step 1000
    s = eligible_samples(obs, gap=100)
    depth = (s.dlvl != s.dlvl_prev).to_numpy()
    gold = ~depth & (s.gold != s.gold_prev).to_numpy()
    assert depth.mean() < 0.06 and gold.mean() < 0.1        # rare events under uniform sampling
    p = draw_pairs(s, 200, seed=3, name="descender", sampling="changed", changed_fraction=0.5)
    sides = pd.concat([p[["dlvl_1", "dlvl_prev_1", "gold_1", "gold_prev_1"]]
                       .set_axis(["d", "dp", "g", "gp"], axis=1),
                       p[["dlvl_2", "dlvl_prev_2", "gold_2", "gold_prev_2"]]
                       .set_axis(["d", "dp", "g", "gp"], axis=1)])
    n_depth = int((sides.d != sides.dp).sum())
    n_gold = int(((sides.d == sides.dp) & (sides.g != sides.gp)).sum())
    # half of the 400 samples, split over the two stats
    assert (n_depth, n_gold) == (100, 100)
    assert 0.15 < (p.dlvl_1 != p.dlvl_prev_1).mean() < 0.35  # shuffled over both sides (a quarter each)
    pd.testing.assert_frame_equal(p, draw_pairs(s, 200, seed=3, name="descender", sampling="changed"))
    with pytest.raises(ValueError, match="pairs.sampling"):
        draw_pairs(s, 5, seed=0, name="descender", sampling="stratified")


def test_samples_never_join_two_sources_episodes_that_share_an_id():
    human = records(1, 150).assign(source="nld:games.db", message=lambda d: "h" + d.message)
    obs = pd.concat([records(1, 150), human], ignore_index=True)
    s = eligible_samples(obs, gap=100)
    assert len(s) == 2 * 50  # 50 per source, no cross-source pairing of episode 1's steps
    assert (s.prev_message.str.startswith("h") == (s.source == "nld:games.db")).all()
    assert (s.message.str.startswith("h") == (s.source == "nld:games.db")).all()


def test_too_few_samples_is_an_error_naming_the_skill_the_counts_and_the_fix():
    from maestromotif.data.pairs import TooFewSamples

    s = eligible_samples(records(0, 150), gap=100)  # 50 samples
    draw_pairs(s, 25, seed=0, name="ascender")  # exactly enough
    with pytest.raises(TooFewSamples, match=r"pairs\[ascender\]: 52 samples are needed but the observations "
                                            r"hold only 50\. Collect more .*pairs\.sizes\.ascender"):
        draw_pairs(s, 26, seed=0, name="ascender")
    with pytest.raises(TooFewSamples, match=r"pairs\[motif\]: .*\(pairs\.motif\)"):
        draw_pairs(s, 26, seed=0, name="motif")
    obs = records(0, 400)
    obs["dlvl"] = 1 + (obs.step >= 395)  # a descent 5 steps before the end: 5 depth-changed samples
    obs["gold"] = 0
    s = eligible_samples(obs, gap=100)
    with pytest.raises(TooFewSamples, match=r"pairs\[descender\]: 20 samples with a dlvl change are needed "
                                            r"but the observations hold only 5\..*pairs\.sampling=uniform"):
        draw_pairs(s, 20, seed=0, name="descender", sampling="changed", changed_fraction=0.5)


def test_clamped_gap_pairs_early_steps_with_the_episode_start():
    obs = pd.concat([records(0, 250), records(1, 120)], ignore_index=True)
    s = eligible_samples(obs, gap=100, clamp=True)
    assert len(s) == 250 + 120  # every step is a sample
    early = s[(s.episode_id == 1) & (s.step == 40)].iloc[0]
    assert (early.prev_step, early.prev_message, early.gold_prev) == (0, "m1-0", 0)
    late = s[(s.episode_id == 0) & (s.step == 160)].iloc[0]
    assert (late.prev_step, late.prev_message) == (60, "m0-60")  # unchanged beyond the gap


def test_rare_messages_make_every_distinct_message_equally_likely():
    obs = records(0, 2000)
    obs["message"] = np.where(obs.step % 100 == 0, [f"rare {i}" for i in range(2000)], "")  # 20 rare, 1980 ""
    s = eligible_samples(obs, gap=1)
    uniform = draw_pairs(s, 100, seed=0, name="merchant")
    rare = draw_pairs(s, 100, seed=0, name="merchant", rare_messages=True)
    n_rare = [int(pd.concat([p.message_1, p.message_2]).str.startswith("rare").sum())
              for p in (uniform, rare)]
    # uniform: about 200 * 20/1999 = 2 rare samples; rare_messages: each of the 21 distinct messages has the
    # same total weight, so all 19-20 rare samples are drawn (without replacement) among the 200
    assert n_rare[0] <= 8 and n_rare[1] >= 18

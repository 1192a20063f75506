"""The skill network and its observation: shapes, the paper's stats scaling, the crop, exact dedupe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from nle import nethack

from benchmark.config import defaults
from benchmark.env import make
from maestromotif.rl import network as N
from maestromotif.rl.obs import (
    AGENT_CELL,
    PolicyObservation,
    crop_around,
    glyph_table,
    observation_space,
    render_crop,
)
from maestromotif.rl.sf_env import IsolatedSkill
from maestromotif.rl.train import RLConfig, sf_argv


def batch(space, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in space.spaces.items():
        if s.dtype == np.uint8:
            out[k] = torch.randint(0, int(min(s.high.max(), 255)) + 1, (n, *s.shape),
                                   generator=g).to(torch.uint8)
        else:
            out[k] = torch.randn((n, *s.shape), generator=g)
    out["message"][: n // 2] = 0  # repeated (empty) messages, as in play
    return out


@pytest.mark.parametrize("mode", ["rgb", "embed"])
def test_encoder_output_is_803_and_differentiable(mode):
    space = observation_space(mode)
    enc = N.SkillEncoder(None, space)
    out = enc(batch(space))
    assert out.shape == (6, 803) and enc.get_out_size() == 803
    out.sum().backward()
    assert all(p.grad is not None for p in enc.message.parameters())


def test_message_dedupe_is_exact():
    space = observation_space("embed")
    enc = N.SkillEncoder(None, space)
    msgs = batch(space, n=8)["message"]
    msgs[5] = msgs[6]
    assert torch.allclose(enc.encode_messages(msgs), enc.message(msgs), atol=1e-6)


def test_stats_scale_follows_the_paper():
    s = N.STATS_SCALE
    assert s[nethack.NLE_BL_X] == pytest.approx(1 / 79) and s[nethack.NLE_BL_Y] == pytest.approx(1 / 21)
    assert s[nethack.NLE_BL_HP] == pytest.approx(0.1) and s[nethack.NLE_BL_XP] == pytest.approx(0.1)
    assert s[nethack.NLE_BL_TIME] == pytest.approx(1e-3) and s[nethack.NLE_BL_HUNGER] == 1
    for zero in (nethack.NLE_BL_DEPTH, nethack.NLE_BL_GOLD, nethack.NLE_BL_SCORE):
        assert s[zero] == 0
    assert (s[27:] == 1).all()


def test_crop_window_and_padding():
    tty = np.arange(24 * 80).reshape(24, 80)
    c = crop_around(tty, 10, 40)
    assert c[6, 6] == tty[10, 40] and c[0, 0] == tty[4, 34] and c.shape == (12, 12)
    corner = crop_around(tty, 0, 0)
    assert corner[6, 6] == tty[0, 0] and (corner[:6] == 0).all() and (corner[:, :6] == 0).all()


@pytest.mark.parametrize("seed", [3, 11])
def test_agent_sits_where_the_official_crop_puts_it(seed):
    # official: tty rows y-6..y+5 with the map's y, so the agent (tty row y+1) is at crop row 7, column 6
    env = PolicyObservation(IsolatedSkill(make(seed=seed)), "embed", keep_raw=True)
    obs, _ = env.reset()
    assert AGENT_CELL == (7, 6)
    x, y = int(obs["blstats"][nethack.NLE_BL_X]), int(obs["blstats"][nethack.NLE_BL_Y])
    assert obs["tty_chars"][y + 1, x] == ord("@")
    assert obs["crop_chars"][7, 6] == ord("@") and obs["crop_chars"][6, 6] != ord("@")
    expected = np.zeros((12, 12), np.uint8)  # the official renderer's loop: tty cell (h + y - 6, w + x - 6)
    for h in range(12):
        for w in range(12):
            if 0 <= h + y - 6 < 24 and 0 <= w + x - 6 < 80:
                expected[h, w] = obs["tty_chars"][h + y - 6, w + x - 6]
    assert (obs["crop_chars"] == expected).all()
    env.close()


def test_stats_mlp_has_the_official_depth():
    enc = N.SkillEncoder(None, observation_space("embed"))
    linears = [m for m in enc.stats_mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(35, 128)] + [(128, 128)] * 3
    assert sum(isinstance(m, torch.nn.ELU) for m in enc.stats_mlp) == 4


def test_scaled_stats_are_not_clipped():
    space = observation_space("embed")
    enc = N.SkillEncoder(None, space).eval()
    obs = batch(space, n=2)
    obs["stats"] = torch.zeros(2, N.STATS_DIM)
    obs["stats"][:, nethack.NLE_BL_TIME] = 12000.0  # turn 12000 -> 12.0
    obs["stats"][1, nethack.NLE_BL_CONDITION] = 4096.0  # a condition bit mask, scaled by 1
    with torch.no_grad():
        raw = enc(obs)[:, 512 + 128:512 + 128 + N.STATS_DIM]  # the scaled stats, concatenated as they are
    assert raw[0, nethack.NLE_BL_TIME] == pytest.approx(12.0)
    assert raw[1, nethack.NLE_BL_CONDITION] == pytest.approx(4096.0)


def test_render_crop_draws_each_character_in_its_colour():
    chars = np.full((12, 12), ord(" "), np.uint8)
    colors = np.zeros((12, 12), np.int8)
    chars[6, 6], colors[6, 6] = ord("@"), 1  # red
    img = render_crop(chars, colors)
    assert img.shape == (3, 72, 72) and img.dtype == np.uint8
    cell = img[:, 36:42, 36:42]
    assert cell[0].max() > 0 and cell[1].max() == 0 == cell[2].max()  # red only
    img[:, 36:42, 36:42] = 0
    assert img.max() == 0  # spaces are blank
    assert glyph_table().shape == (256, 16, 6, 6, 3)


@pytest.mark.parametrize("mode", ["rgb", "embed"])
def test_policy_observation_on_the_real_env(mode):
    env = PolicyObservation(IsolatedSkill(make(seed=3)), mode, keep_raw=True)
    obs, _ = env.reset()
    for key, space in observation_space(mode).spaces.items():
        assert obs[key].shape == space.shape and obs[key].dtype == space.dtype
    assert obs["stats"][30] == 1.0 and obs["stats"][31:].sum() == 0  # skill 0's one-hot
    assert obs["stats"][28] >= 1  # the Monk starts with potions
    assert "blstats" in obs  # kept for the evaluation harness
    env.close()


def test_sample_factory_gets_the_paper_hyperparameters():
    from benchmark.config import compose

    params = compose("paper")
    argv = sf_argv(defaults("rl", RLConfig), params, 0, __import__("pathlib").Path("/x"))
    args = dict(a[2:].split("=", 1) for a in argv)
    assert args["num_workers"] == "24" and args["num_envs_per_worker"] == "20"
    assert args["batch_size"] == "4096"
    assert args["train_for_env_steps"] == "4000000000" and args["with_vtrace"] == "True"
    assert args["reward_scale"] == "1.0" and float(args["reward_clip"]) >= 1e5  # the env wrapper scales
    assert args["normalize_input"] == "False" and args["rnn_type"] == "gru" and args["rnn_size"] == "512"
    assert args["learning_rate"] == "0.0001" and args["exploration_loss_coeff"] == "0.003"


def test_the_trivial_encoder_is_chosen_only_by_its_flag():
    from types import SimpleNamespace

    space = observation_space("rgb")
    assert type(N.make_skill_encoder(SimpleNamespace(), space)) is N.SkillEncoder  # a cfg without the flag
    trivial = N.make_skill_encoder(SimpleNamespace(mm_encoder="trivial"), space)
    assert type(trivial) is N.TrivialEncoder
    assert trivial(batch(space)).shape == (6, trivial.get_out_size())

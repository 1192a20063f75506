"""The training env scores every skill's steps with that skill's own reward model, whatever order the params
list the skills in (the one-hot and info["skill"] follow the options wrapper's fixed index order)."""
from __future__ import annotations

import pytest
from sample_factory.utils.attr_dict import AttrDict

from benchmark.config import section
from benchmark.env import ACTION_INDEX, decode_message
from maestromotif.options.runtime import SKILLS
from maestromotif.reward.intrinsic import IntrinsicReward
from tests.integration.test_train_support import ci_params, real_messages, train_tiny_reward_models

PAPER_ORDER = "[discoverer,descender,ascender,merchant,worshipper]"  # the paper lists merchant first


@pytest.mark.timeout(300)
def test_each_skill_is_scored_by_its_own_reward_model_in_paper_order(tmp_path):
    from maestromotif.rl.sf_env import make_skill_env
    from benchmark.appo.runner import parse_cfg
    from maestromotif.rl.train import RLConfig, sf_argv

    params, _ = ci_params(tmp_path, f"skills={PAPER_ORDER}", "rl.program=isolated", "rl.crop_mode=embed")
    reward_dir = tmp_path / "data" / "reward"
    train_tiny_reward_models(reward_dir, real_messages(300))
    cfg = parse_cfg(sf_argv(section(params, "rl", RLConfig), params, 0, tmp_path / "run"))
    assert cfg.mm_skills.split(",")[3] == "merchant"  # the params order reaches the env factory
    env = make_skill_env("mm_skills", cfg, AttrDict(worker_index=0, vector_index=0))
    alone = {s: IntrinsicReward.from_dir(reward_dir, [s]) for s in SKILLS}
    scored, told_apart = set(), 0
    for _ in range(len(SKILLS)):  # the isolated ablation plays one skill per episode, cycling through all
        env.reset()
        obs, _, _, _, info = env.step(ACTION_INDEX["SEARCH"])
        skill, message = SKILLS[info["skill"]], decode_message(obs["message"])
        assert obs["stats"][30 + info["skill"]] == 1.0  # the one-hot the network sees names the same skill
        own = alone[skill].normalised(0, message, 0)
        assert info["normalised_reward"] == pytest.approx(own, abs=1e-6), skill
        other = {"worshipper": "merchant", "merchant": "worshipper"}.get(skill)
        if other:
            told_apart += abs(alone[other].normalised(0, message, 0) - own) > 1e-4
        scored.add(skill)
    env.close()
    assert scored == set(SKILLS)
    assert told_apart == 2  # the swapped model would have scored these steps differently


def test_training_refuses_params_without_every_skill(tmp_path):
    from benchmark.config import ConfigError, root
    from maestromotif.rl.train import RLConfig, _check_inputs

    params, _ = ci_params(tmp_path, "skills=[discoverer,descender]")
    with pytest.raises(ConfigError, match=r"lack \['ascender', 'worshipper', 'merchant'\]"):
        _check_inputs(section(params, "rl", RLConfig), root(params))

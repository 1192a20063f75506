"""Where the skill one-hot reaches the actor and the critic: `rl.skill_heads`, a named option.

    "shared"        the paper's network: the one-hot is an input of the encoder only (5 of the stats), one
                    value head and one policy head for every skill (sample-factory's ActorCriticSharedWeights)
    "value"         one value head per skill on the GRU output, the policy head shared: skill k's return is
                    V_k(h) = w_k.h + b_k, so a state worth much to one skill need not be to another
    "policy_value"  a policy and a value head per skill (the paper's Fig. 8a "multiple heads" arm)

The encoder passes the one-hot through unchanged (columns `maestromotif.rl.network.ONEHOT_COLUMNS` of its
output); `SkillCore` carries it past the GRU, and the heads pick skill k's row. Why this option exists:
docs/investigations/skills.md §13-14 (the shared critic credits one skill with another's value).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from sample_factory.algo.utils.action_distributions import get_action_distribution
from sample_factory.algo.utils.tensor_dict import TensorDict
from sample_factory.model.actor_critic import ActorCriticSharedWeights, default_make_actor_critic_func
from sample_factory.model.core import ModelCore, ModelCoreRNN

from maestromotif.rl.network import ONEHOT_COLUMNS, SkillEncoder
from maestromotif.rl.obs import NUM_SKILLS

SKILL_HEADS = ("shared", "value", "policy_value")
DEFAULT_HEADS = "shared"  # the paper's; a run whose cfg predates the option is one of these


class SkillCore(ModelCore):
    """sample-factory's GRU core, its output followed by the input's one-hot columns (NUM_SKILLS more)."""

    def __init__(self, cfg, input_size: int):
        super().__init__(cfg)
        self.rnn = ModelCoreRNN(cfg, input_size)
        self.core_output_size = self.rnn.get_out_size() + NUM_SKILLS

    def forward(self, head_output, rnn_states):
        x, new_states = self.rnn(head_output, rnn_states)
        if isinstance(head_output, PackedSequence):  # the learner's sequences: same order in and out
            data = torch.cat([x.data, head_output.data[:, ONEHOT_COLUMNS]], dim=1)
            return PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices), new_states
        return torch.cat([x, head_output[:, ONEHOT_COLUMNS]], dim=1), new_states


class SkillHeadsActorCritic(ActorCriticSharedWeights):
    """The shared encoder and GRU of the paper with per-skill heads ("value" or "policy_value")."""

    def __init__(self, model_factory, obs_space, action_space, cfg, heads: str):
        super().__init__(model_factory, obs_space, action_space, cfg)
        if heads not in SKILL_HEADS[1:]:
            raise ValueError(f"rl.skill_heads must be one of {list(SKILL_HEADS)}, got {heads!r}")
        if list(getattr(cfg, "decoder_mlp_layers", [])):
            raise ValueError("rl.skill_heads: per-skill heads sit on the GRU output; a decoder MLP "
                             "(--decoder_mlp_layers) is not supported with them")
        if not isinstance(self.encoder, SkillEncoder):
            raise ValueError("rl.skill_heads: per-skill heads read the one-hot from the paper encoder's "
                             f"output; {type(self.encoder).__name__} has none")
        self.heads = heads
        self.core = SkillCore(cfg, self.encoder.get_out_size())
        hidden = self.core.rnn.get_out_size()
        self.num_actions = action_space.n
        self.critic_linear = nn.Linear(hidden, NUM_SKILLS)
        policy_rows = NUM_SKILLS if heads == "policy_value" else 1
        self.policy_linear = nn.Linear(hidden, policy_rows * self.num_actions)
        del self.action_parameterization  # replaced by policy_linear
        self.apply(self.initialize_weights)

    def forward_tail(self, core_output, values_only: bool, sample_actions: bool) -> TensorDict:
        h, onehot = core_output[:, :-NUM_SKILLS], core_output[:, -NUM_SKILLS:]
        skill = onehot.argmax(dim=1, keepdim=True)  # (B, 1)
        # .squeeze() as sample-factory's own head: (B,) values, a 0-d tensor for a batch of one
        result = TensorDict(values=self.critic_linear(h).gather(1, skill).squeeze())
        if values_only:
            return result
        logits = self.policy_linear(h)
        if self.heads == "policy_value":
            rows = logits.view(-1, NUM_SKILLS, self.num_actions)
            logits = rows.gather(1, skill.unsqueeze(2).expand(-1, 1, self.num_actions)).squeeze(1)
        self.last_action_distribution = get_action_distribution(self.action_space, raw_logits=logits)
        result["action_logits"] = logits
        self._maybe_sample_actions(sample_actions, result)
        return result


def make_actor_critic(cfg, obs_space, action_space):
    """sample-factory's actor-critic factory for the skill network: the paper's unless rl.skill_heads says
    otherwise (cfg.mm_skill_heads; absent from runs trained before the option, which are "shared")."""
    heads = getattr(cfg, "mm_skill_heads", DEFAULT_HEADS)
    if heads == DEFAULT_HEADS:
        return default_make_actor_critic_func(cfg, obs_space, action_space)
    from sample_factory.algo.utils.context import global_model_factory

    return SkillHeadsActorCritic(global_model_factory(), obs_space, action_space, cfg, heads)

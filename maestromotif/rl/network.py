"""The skill-conditioned network of the paper (official `NLEMainEncoder`) as a sample-factory Encoder.

One network for all skills: the 5-dim skill one-hot is part of the stats vector, there are no
per-skill heads. sample-factory adds the GRU 512 core and the shared actor/critic linear heads (per-skill
heads are the named option `rl.skill_heads`, maestromotif.rl.heads; off by default).

    crop (12x12 chars around the agent) ─► convnet_simple ─► 512 ┐
    stats (27 blstats + 3 extras + 5 one-hot) × scale ─► MLP 4x128 ─► 128 ├─► concat (803) ─► GRU 512
    the same scaled stats, raw ─► 35                                      │
    message (256 bytes) ─► char-CNN ─► 128                                ┘

Two crop encodings share the rest of the network:
  "rgb"   (faithful): the crop rendered as a 3x72x72 image, 6x6 px per character, divided by 255;
  "embed" (cheap): character and colour embeddings of the 12x12 crop, a small convnet, 512 out.
The observations themselves are made by `maestromotif.rl.obs.PolicyObservation`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sample_factory.model.encoder import Encoder

from maestromotif.reward.model import MessageEncoder, RewardModelConfig  # the same char-CNN as r_phi

CROP = 12            # characters each side of the crop square
CELL = 6             # pixels per character in the rendered crop
STATS_DIM = 35       # 27 blstats + 3 extras + 5 skill one-hot
# The encoder's output is [crop 512 | stats MLP 128 | scaled stats 35 | message 128]; the one-hot is the last
# 5 scaled stats (scale 1), passed on unchanged: per-skill heads read it there (maestromotif.rl.heads).
ONEHOT_COLUMNS = slice(512 + 128 + 30, 512 + 128 + STATS_DIM)
CROP_MODES = ("rgb", "embed")
# The policy's message encoder: its own sizes, not conf/reward's, so a policy checkpoint's shapes never follow
# an edit of the reward section (the official encoder's sizes, with a 128-d message output).
MESSAGE_ENCODER = RewardModelConfig(char_embedding_dim=32, conv_channels=64, message_dim=128,
                                    diffstats_dim=128, hidden_dim=512, use_diffstats=True, init_gain=1.0)

# Hand-chosen scales of the official code (x/79, y/21, HP/10, maxHP/10, energy/10, maxE/10, AC/10, XL/10,
# time/1000, hunger, dungeon number, condition, the 3 extras and the one-hot ×1, everything else ×0).
# Not clipped: MaestroMotif's stats wrapper declares a ±5 range but never clips (Motif's clipped), so e.g.
# time/1000 grows past 5 after turn 5000 and the condition bit mask reaches the network as is.
# Indices are NLE's NLE_BL_*.
STATS_SCALE = np.zeros(STATS_DIM, dtype=np.float32)
for _index, _scale in {0: 1 / 79, 1: 1 / 21, 10: 1 / 10, 11: 1 / 10, 14: 1 / 10, 15: 1 / 10, 16: 1 / 10,
                       18: 1 / 10, 20: 1 / 1000, 21: 1.0, 23: 1.0, 25: 1.0}.items():
    STATS_SCALE[_index] = _scale
STATS_SCALE[27:] = 1.0


class ConvNetSimple(nn.Module):
    """sample-factory's "convnet_simple" on a 3x72x72 image: 3 convs, then Linear(1152 -> 512)."""

    def __init__(self, in_channels: int = 3, size: int = CROP * CELL, out_dim: int = 512):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ELU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ELU(),
            nn.Conv2d(64, 128, 3, stride=2), nn.ELU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_channels, size, size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, out_dim), nn.ELU())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(image))


class EmbeddedCrop(nn.Module):
    """The cheap crop encoder: char (256) and colour (16) embeddings of the 12x12 crop, 2 convs, 512 out."""

    def __init__(self, out_dim: int = 512, char_dim: int = 16, color_dim: int = 8):
        super().__init__()
        self.chars = nn.Embedding(256, char_dim)
        self.colors = nn.Embedding(16, color_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(char_dim + color_dim, 32, 3, padding=1), nn.ELU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ELU(),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(32 * (CROP // 2) ** 2, out_dim), nn.ELU())

    def forward(self, chars: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.chars(chars.long()), self.colors(colors.long() & 15)], dim=-1)  # (B,12,12,E)
        return self.fc(self.conv(x.permute(0, 3, 1, 2)))


class SkillEncoder(Encoder):
    """The encoder sample-factory puts before its GRU core; obs keys from PolicyObservation."""

    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        self.crop_mode = "rgb" if "screen" in obs_space.keys() else "embed"
        self.crop = ConvNetSimple() if self.crop_mode == "rgb" else EmbeddedCrop()
        self.register_buffer("stats_scale", torch.from_numpy(STATS_SCALE.copy()), persistent=False)
        # the official "three_hid_layers" stats model: an input layer and three hidden layers, all 128 + ELU
        self.stats_mlp = nn.Sequential(
            nn.Linear(STATS_DIM, 128), nn.ELU(),
            nn.Linear(128, 128), nn.ELU(), nn.Linear(128, 128), nn.ELU(), nn.Linear(128, 128), nn.ELU(),
        )
        self.message = MessageEncoder(MESSAGE_ENCODER)
        self.out_size = 512 + 128 + STATS_DIM + 128

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.crop_mode == "rgb":
            crop = self.crop(obs["screen"].float() * (1.0 / 255))
        else:
            crop = self.crop(obs["crop_chars"], obs["crop_colors"])
        stats = obs["stats"].float() * self.stats_scale
        return torch.cat([crop, self.stats_mlp(stats), stats, self.encode_messages(obs["message"])], dim=1)

    def encode_messages(self, message: torch.Tensor) -> torch.Tensor:
        """The char-CNN on the distinct messages of the batch only, gathered back (exact, gradients
        included): most steps share a handful of messages (often the empty one), and the char-CNN is
        the costliest branch of the network."""
        unique, inverse = torch.unique(message, dim=0, return_inverse=True)
        return self.message(unique)[inverse]

    def get_out_size(self) -> int:
        return self.out_size


class TrivialEncoder(Encoder):
    """Benchmark-only (`--mm_encoder=trivial`): one linear layer on the scaled stats. Same observations,
    env stack, GRU and heads, nearly no encoder compute: the sampling ceiling that
    tests/benchmarks/test_train_fps.py measures the paper network against. Never a training option."""

    def __init__(self, cfg, obs_space):
        super().__init__(cfg)
        self.register_buffer("stats_scale", torch.from_numpy(STATS_SCALE.copy()), persistent=False)
        self.fc = nn.Sequential(nn.Linear(STATS_DIM, 64), nn.ELU())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(obs["stats"].float() * self.stats_scale)

    def get_out_size(self) -> int:
        return 64


ENCODERS = {"paper": SkillEncoder, "trivial": TrivialEncoder}


def make_skill_encoder(cfg, obs_space) -> Encoder:
    """Module-level factory: sample-factory pickles it into its learner process."""
    return ENCODERS[getattr(cfg, "mm_encoder", "paper")](cfg, obs_space)


def add_network_args(parser) -> None:
    """The network's own flags, for every env module whose runs use this network."""
    parser.add_argument("--mm_crop_mode", default="rgb", choices=list(CROP_MODES))
    parser.add_argument("--mm_encoder", default="paper", choices=list(ENCODERS),
                        help="trivial: benchmark-only sampling ceiling (maestromotif.rl.network)")


def encoder_factory(cfg, obs_space):
    """The encoder factory sample-factory calls in the learner and the inference worker: patches first."""
    from benchmark.appo import patches

    patches.apply(getattr(cfg, "appo_error_file", ""))
    return make_skill_encoder(cfg, obs_space)

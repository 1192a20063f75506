"""Embedded-model throughput: one batched generate() vs the same prompts one by one, in the same run.

Target: batched >= 3x sequential tokens/s. The ratio (and both rates) go into the benchmark's
extra_info; nothing here asserts on wall-clock time.
Run: .venv/bin/python -m pytest tests/benchmarks/test_llm_throughput.py --benchmark-only -s
"""
from __future__ import annotations

import time

import pytest

from maestromotif.llm import Sampling

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(900)]
N_PROMPTS = 16
SAMPLING = Sampling(max_tokens=32, seed=0)
PROMPTS = [[{"role": "user", "content": f"In NetHack, give one tip about dungeon level {i + 1}."}]
           for i in range(N_PROMPTS)]


def _rate(engine, batches):
    start, tokens = time.perf_counter(), 0
    for batch in batches:
        tokens += sum(c.completion_tokens for c in engine.generate(batch, SAMPLING))
    seconds = time.perf_counter() - start
    return tokens / seconds, tokens, seconds


def test_batched_vs_sequential_tokens_per_second(benchmark, embedded_engine):
    sequential, seq_tokens, seq_s = _rate(embedded_engine, [[p] for p in PROMPTS])
    batched, bat_tokens, bat_s = benchmark.pedantic(_rate, args=(embedded_engine, [PROMPTS]), rounds=1,
                                                    iterations=1)
    ratio = batched / sequential
    benchmark.extra_info.update(model_id=embedded_engine.model_id, dtype=embedded_engine.dtype,
                                init_s=round(embedded_engine.init_seconds, 1), prompts=N_PROMPTS,
                                max_tokens=SAMPLING.max_tokens, batched_tok_s=round(batched, 1),
                                sequential_tok_s=round(sequential, 1), ratio=round(ratio, 2),
                                target_ratio=3.0)
    print()  # the numbers for the report (pytest -s); also in the benchmark JSON's extra_info
    print("LLM throughput (%s, %s): batched %.1f tok/s (%d tok, %.1f s), sequential %.1f tok/s "
          "(%d tok, %.1f s), ratio %.2fx (target >= 3x), init %.1f s" % (
              embedded_engine.model_id, embedded_engine.dtype, batched, bat_tokens, bat_s, sequential,
              seq_tokens, seq_s, ratio, embedded_engine.init_seconds))
    assert seq_tokens > 0 and bat_tokens > 0

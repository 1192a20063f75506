"""Cost of calling a program through the sandbox worker, against a direct in-process call, same run.

The call measured is what the options wrapper makes every env step: one `options_step` request
(7x7 window preconditions, composite-task hooks, termination, and perform_task when the skill ends).
Rounds alternate between the runners so both see the same machine load. No wall-clock assertion:
the ratio is reported (extra_info, and printed); a loose guard catches a per-call process spawn.
"""
from __future__ import annotations

import time

import pytest

from maestromotif.options.program import reference_program
from maestromotif.options.sandbox import InProcessRunner, Sandbox

CALLS = 2000
ROUNDS = 5
SPAWN_GUARD = 200  # a process per call would be ~1000x an in-process call; a persistent worker is far below

pytestmark = pytest.mark.timeout(300)


def step_inputs(turn: int) -> dict:
    chars = [[32] * 7 for _ in range(7)]
    chars[1][5] = 64
    return dict(chars=chars, colors=[[7] * 7 for _ in range(7)], num_items=1, color_map={"@": 15, "_": 7},
                skill="discoverer", skill_time=turn % 600, depth=1 + turn % 3, previous_depth=1,
                dungeon_number=0, branch_depth=-2, branch_depth_if_end=-2, gold=0, kill=False, xp_level=1,
                ate_in_mines=False)


def _time_calls(player, inputs) -> float:
    start = time.perf_counter()
    for x in inputs:
        player.step(x)
    return (time.perf_counter() - start) / len(inputs)


def test_sandbox_call_cost_vs_in_process(benchmark):
    program = reference_program("training")
    inputs = [step_inputs(t) for t in range(CALLS)]
    with Sandbox(timeout_s=5.0) as sandbox:
        direct = InProcessRunner().load(program.source, "training").new_player(seed=0)
        boxed = sandbox.load(program.source, "training").new_player(seed=0)
        direct_s, boxed_s = [], []
        for _ in range(ROUNDS):
            direct_s.append(_time_calls(direct, inputs))
            boxed_s.append(_time_calls(boxed, inputs))
        benchmark.pedantic(boxed.step, args=(inputs[0],), rounds=200, iterations=1)
    direct_us, boxed_us = min(direct_s) * 1e6, min(boxed_s) * 1e6
    ratio = boxed_us / direct_us
    benchmark.extra_info.update(in_process_us=round(direct_us, 2), sandbox_us=round(boxed_us, 2),
                                ratio=round(ratio, 2), sandbox_overhead_us=round(boxed_us - direct_us, 2))
    print(f"\noptions_step: in-process {direct_us:.1f} us, sandbox {boxed_us:.1f} us per call, ratio "
          f"{ratio:.1f}x")
    assert ratio < SPAWN_GUARD, (f"sandbox call costs {ratio:.0f}x an in-process call: is a process spawned "
                                 "per call?")

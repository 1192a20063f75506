"""What made MaestroMotif's evaluation fast changes no record: one sandbox call per batch step for the envs'
programs (instead of one per env), and one torch thread while playing (evaluate.torch_threads).

Real NLE, the real skill network (at its random initialisation: deployment needs the network, not its
training), an LLM-written program stand-in (not byte-identical to the reference, so it runs in the sandbox).
"""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from benchmark import config, evaluate
from benchmark.env import make
from benchmark.method import Policy
from benchmark.playback import play_and_record
from maestromotif.options.program import reference_program
from maestromotif.rl.policy import SkillPolicy
from tests.integration.test_train_support import untrained_skill_run

TASK = "gnomish"


@pytest.fixture(autouse=True)
def torch_own_set_num_threads(monkeypatch):
    """vLLM's CPU worker, once an earlier test has loaded the embedded LLM into this pytest process, replaces
    torch.set_num_threads with a no-op that warns (vllm/v1/worker/cpu_worker.py); an evaluate process of a
    trained policy never loads vLLM. These tests check our thread handling, so torch's own function is put
    back for them."""
    monkeypatch.setattr(torch, "set_num_threads", torch._C.set_num_threads)


def write_llm_program(data_dir, task: str = TASK) -> None:
    """codegen's output for code seed 0 as the codegen stage writes it, with a program the sandbox runs."""
    folder = data_dir / "codegen" / task / "seed0"
    folder.mkdir(parents=True)
    source = reference_program(task).source + "\n# written for code seed 0\n"
    (folder / "program.py").write_text(source)
    summary = {"program": task, "seed": 0, "source": "llm", "reason": "",
               "sha256": hashlib.sha256(source.encode()).hexdigest()}
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.mark.timeout(600)
def test_batched_program_calls_keep_the_records_byte_identical_on_one_thread(tmp_path, monkeypatch):
    params = config.compose("ci", ["methods=[maestromotif]", f"tasks=[{TASK}]", "skill_seeds=[0]",
                                   f"data_dir={tmp_path}/data", "evaluate.episodes=6", "evaluate.num_envs=4",
                                   "evaluate.max_episode_steps=120", "evaluate.device=cpu"])
    assert params.evaluate.torch_threads == 1
    untrained_skill_run(params, 0)
    write_llm_program(tmp_path / "data")
    threads_seen = set()
    act = SkillPolicy.act

    def counting_act(self, *args):  # a spy: the real act, noting torch's thread count
        threads_seen.add(torch.get_num_threads())
        return act(self, *args)

    monkeypatch.setattr(SkillPolicy, "act", counting_act)

    def records() -> bytes:
        out = evaluate.evaluate("maestromotif", TASK, 0, params, progress=False, code_seed=0)
        data = (out / evaluate.EPISODES_FILE).read_bytes()
        shutil.rmtree(out)  # the next run plays the same episodes again instead of resuming
        return data

    batched = records()
    assert threads_seen == {1}
    first = json.loads(batched.splitlines()[0])
    assert first["policy_provenance"]["program"]["source"] == "llm"  # the sandboxed program ran
    monkeypatch.setattr(SkillPolicy, "step_envs", Policy.step_envs)  # one program call per env, as before
    assert records() == batched


class ThreadCountingPolicy(Policy):
    """A fake for control flow only: random actions, noting torch's thread count at every step."""

    def __init__(self):
        self.threads = set()

    def initial_state(self, num_envs):
        return np.random.default_rng(0)

    def act(self, obs, state, episode_start):
        self.threads.add(torch.get_num_threads())
        return state.integers(0, 28, size=len(episode_start)), state


@pytest.mark.timeout(120)
def test_torch_threads_hold_while_playing_and_are_restored_after(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        policy = ThreadCountingPolicy()
        played = play_and_record(policy, lambda: make(task=TASK, max_episode_steps=20), 2, 2, lambda k: k,
                                 progress=False, threads=1)
        assert played.steps > 0 and policy.threads == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    params = config.compose("ci", ["methods=[maestromotif]", f"tasks=[{TASK}]", f"data_dir={tmp_path}/data",
                                   "evaluate.torch_threads=-1"])
    with pytest.raises(config.ConfigError, match=r"evaluate.torch_threads=-1.*0 for torch's default"):
        evaluate.evaluate("maestromotif", TASK, 0, params, progress=False, code_seed=0)

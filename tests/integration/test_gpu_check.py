"""The GPU throughput command (maestromotif/rl/gpu_check.py): a clear exit without a GPU, a real CPU run
of the same configuration, and the log parsing."""
from __future__ import annotations

import json

import pytest
import torch

from maestromotif.rl import gpu_check


def test_learner_samples_are_read_from_sample_factory_log_lines():
    text = ("[2026-12-02 00:08:10,003][1234] Fps is (10 sec: 200.0, 60 sec: nan, 300 sec: nan). Total num "
            "frames: 2048. Throughput: 0: nan. Samples: 0. Policy #0 lag: (min: -1.0, avg: -1.0, max: -1.0)\n"
            "[2026-12-02 00:08:15,003][1234] Fps is (10 sec: 210.0, 60 sec: nan, 300 sec: nan). Total num "
            "frames: 4096. Throughput: 0: 204.8. Samples: 1024. Policy #0 lag: (min: 0.0, avg: 0.5, max: "
            "1.0)\n")
    progress = [{"env_steps": 1000, "fps": 100.0, "seconds_since_first_iteration": 0.0},
                {"env_steps": 3000, "fps": 150.0, "seconds_since_first_iteration": 10.0},
                {"env_steps": 7000, "fps": 250.0, "seconds_since_first_iteration": 30.0}]
    out = gpu_check.summarise(progress, text, warmup_s=5.0)
    assert out["learner_samples_per_s"] == pytest.approx(204.8)
    assert out["frames_per_s"] == pytest.approx((7000 - 3000) / 20.0)  # the warm-up record is left out
    assert out["env_steps"] == 7000


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="this machine has a GPU: the no-GPU message cannot show")
def test_without_a_gpu_it_exits_2_and_says_why(capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "gpu.json")]) == gpu_check.NO_GPU_EXIT
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cpu_run_of_the_same_configuration_reports_frames_per_second(tmp_path):
    out = tmp_path / "cpu.json"
    rc = gpu_check.main(["--device", "cpu", "--minutes", "0.75", "--workers", "2", "--envs-per-worker", "4",
                         "--batch-size", "256", "--out", str(out)])
    result = json.loads(out.read_text())
    assert rc == 0 and result["env_steps"] > 0 and result["frames_per_s"] > 0
    assert result["crop_mode"] == "rgb" and result["num_workers"] == 2 and result["device"] == "cpu"

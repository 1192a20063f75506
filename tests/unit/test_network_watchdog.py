"""The training watchdog on small child processes (control flow only; the real sample-factory crash is
tested in tests/integration/test_train.py)."""
from __future__ import annotations

import json
import sys
import time

import pytest

from benchmark.appo.watchdog import Limits, TrainingError, supervise

FAST = Limits(startup_timeout=3, stall_timeout=2, poll=0.1, kill_grace=1)


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def paths(tmp_path):
    return dict(log_path=tmp_path / "log", error_file=tmp_path / "errors.jsonl",
                progress_file=tmp_path / "p.jsonl")


@pytest.mark.timeout(60)
def test_success_and_progress_callback(tmp_path):
    p = paths(tmp_path)
    code = (f"import json\nfor i in range(3): open({str(p['progress_file'])!r}, 'a')"
            ".write(json.dumps({'env_steps': i}) + '\\n')")
    seen = []
    supervise(child(code), limits=FAST, on_progress=seen.append, **p)
    assert [s["env_steps"] for s in seen] == [0, 1, 2]


@pytest.mark.timeout(60)
def test_nonzero_exit_is_an_error(tmp_path):
    with pytest.raises(TrainingError, match="exited with code 3"):
        supervise(child("import sys; print('boom'); sys.exit(3)"), limits=FAST, **paths(tmp_path))


@pytest.mark.timeout(60)
def test_no_progress_is_an_error_and_the_child_is_killed(tmp_path):
    start = time.time()
    with pytest.raises(TrainingError, match="no training iteration"):
        supervise(child("import time; time.sleep(600)"), limits=FAST, **paths(tmp_path))
    assert time.time() - start < 60  # bounded by the limits, not by the child's sleep


@pytest.mark.timeout(60)
def test_a_reported_error_ends_the_run(tmp_path):
    p = paths(tmp_path)
    line = json.dumps({"logger": "rl", "error": "learner exploded"})
    code = f"import time\nopen({str(p['error_file'])!r}, 'a').write({line!r} + '\\n')\ntime.sleep(600)"
    with pytest.raises(TrainingError, match="learner exploded"):
        supervise(child(code), limits=FAST, **p)


@pytest.mark.timeout(60)
def test_hang_after_finishing_counts_as_done(tmp_path):
    p = paths(tmp_path)
    code = f"import time\nopen({str(p['progress_file'])!r}, 'a').write('{{}}\\n')\ntime.sleep(600)"
    supervise(child(code), limits=FAST, finished=lambda: True, **p)

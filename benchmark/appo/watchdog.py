"""Run a child process (a sample-factory run) and make sure it ends: success, or an error, never a hang.

sample-factory 2 keeps its main process alive when a learner raises or a rollout worker dies (it logs the
exception and waits; docs/method.md §14.1). The supervisor therefore watches three things and kills the
child's whole process group (it runs in its own session) as soon as one goes wrong:
  - the child's exit code (non-zero: error);
  - an error file that every sample-factory process appends to when it logs an exception
    (benchmark.appo.patches installs the reporter; the env wrapper CrashReport writes env exceptions);
  - a progress file the child appends to after training iterations: no first record within
    `startup_timeout` seconds, or no new record within `stall_timeout` seconds, is an error.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The training child failed, raised, or stopped making progress; the message says which and where."""


@dataclass
class Limits:
    startup_timeout: float = 600.0  # seconds until the first training iteration
    stall_timeout: float = 300.0  # seconds between two progress records
    poll: float = 1.0
    kill_grace: float = 10.0  # seconds between SIGTERM and SIGKILL


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _read_errors(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line still being written; it is read on the next poll
    return out


def kill_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no worker of the group survives it
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def supervise(
    cmd: Sequence[str],
    *,
    log_path: Path,
    error_file: Path,
    progress_file: Path,
    limits: Limits = Limits(),
    env: dict | None = None,
    on_progress: Callable[[dict], None] | None = None,
    finished: Callable[[], bool] | None = None,
) -> None:
    """Run `cmd` to completion under the watchdog; raise TrainingError on any failure or stall.

    finished(): if the child stalls after its work is saved (e.g. a hang at shutdown), it is killed and
    the run counts as complete when this returns True.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    error_file.unlink(missing_ok=True)  # errors of an earlier, killed attempt are not this run's
    seen = progress_file.stat().st_size if progress_file.exists() else 0
    start = last_progress = time.time()
    got_progress = False
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(list(cmd), stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        log.info("started training child pid %d (log: %s)", proc.pid, log_path)
        try:
            while True:
                rc = proc.poll()
                errors = _read_errors(error_file)
                if errors:
                    kill_group(proc, limits.kill_grace)
                    raise TrainingError(
                        f"a sample-factory process reported an error ({errors[0].get('logger')}): "
                        f"{errors[0].get('error')}\nfull log: {log_path}"
                    )
                size = progress_file.stat().st_size if progress_file.exists() else 0
                if size > seen:
                    with open(progress_file, "rb") as f:
                        f.seek(seen)
                        chunk = f.read()
                    complete = chunk[: chunk.rfind(b"\n") + 1]
                    seen += len(complete)
                    for line in complete.decode(errors="replace").splitlines():
                        got_progress, last_progress = True, time.time()
                        if on_progress is not None:
                            on_progress(json.loads(line))
                if rc is not None:
                    if rc != 0:
                        raise TrainingError(f"training child exited with code {rc}; last log lines:\n"
                                            f"{_tail(log_path)}\nfull log: {log_path}")
                    return
                now = time.time()
                stalled = None
                if not got_progress and now - start > limits.startup_timeout:
                    stalled = f"no training iteration within {limits.startup_timeout:.0f} s of the start"
                elif got_progress and now - last_progress > limits.stall_timeout:
                    stalled = f"no progress for {limits.stall_timeout:.0f} s"
                if stalled:
                    kill_group(proc, limits.kill_grace)
                    if finished is not None and finished():
                        log.warning("training child hung after finishing (%s); killed it", stalled)
                        return
                    raise TrainingError(f"training stalled: {stalled} (a dead worker or learner?); "
                                        f"last log lines:\n{_tail(log_path)}\nfull log: {log_path}")
                time.sleep(limits.poll)
        except BaseException:
            kill_group(proc, limits.kill_grace)
            raise

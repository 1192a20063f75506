"""Fault injection: SIGKILL `dvc repro` anywhere, rerun it, and check that nothing was lost or changed.

    python -m benchmark.chaos --kills 6 --seed 0 --workdir /tmp/chaos --profile ci

Copies the repository's tracked files twice into --workdir, writes the profile's params in each
(`python -m benchmark.config --profile <p>` with every trainer in reproducible mode, see TRAIN_OVERRIDES),
and runs:
  A  one uninterrupted `dvc repro` (the reference; --reference reuses a finished copy instead);
  B  `dvc repro`, SIGKILLed (its whole process group, and any child that left the group) at a random time
     inside chosen stages, rerun after each kill, and finally run to completion.
The kill times are a random fraction of the stage's duration in A, so the kills land inside collect,
annotate, reward, train_skills, fit and evaluate (a kill whose stage finished first is reported as missed;
one that hit after the stage's command, while dvc saved its outputs, is told apart: `phase`). Then every
record under data/ and results/ of B is compared with A's (compare_trees): the same observation chunks,
labels, reward models, codegen programs, trained weights (latest checkpoint, by tensor content),
evaluation episodes and result tables, no record lost or duplicated, no torn file. Records are compared
as multisets (a resumed run appends in another order). Fields that hold wall-clock times, throughput,
host details or fit-folder fingerprints are left out (VOLATILE_KEYS), and the copies' own paths are
written as "<root>".

Resumed training is not bit-exact: sample-factory restarts its envs and RNG from a checkpoint, so a
MaestroMotif skill seed whose training resumed (summary.json: resumed_from_env_steps > 0) trains other
weights than A. For its weights, its evaluation runs and the results tables, changed values are listed
as `expected_divergence`; duplicated records and torn files there are still mismatches. The baselines'
`fit` outputs are not persistent (DVC deletes them before a rerun), so a killed fit retrains from
scratch and must match exactly.

--parallel runs B beside A (kill times of stages A has not timed yet: DEFAULT_DURATION_S); --recompare
compares the copies of an earlier run again. Writes <workdir>/chaos_report.json (kills attempted, landed
per stage, reruns, files compared, mismatches) and exits 1 on any mismatch or a rerun that fails.

The comparison itself is benchmark.record_compare. This module stays over 400 lines because the kill loop,
the reference run beside it and the report share one run's state; split further, each part would need it all.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.record_compare import compare_trees, natural_duplicates  # noqa: F401  (re-exported)
from benchmark.stage_times import RUNNING  # DVC's stage-start line

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")  # benchmark.logs' line format
TARGETS = ("collect", "annotate", "reward", "train_skills", "fit", "evaluate")
# Trained weights repeat only in reproducible mode (serial, synchronous sample-factory, one torch thread).
TRAIN_OVERRIDES = ("rl.reproducible=true",) + tuple(
    f"+{m}.trainer.rl.reproducible=true" for m in ("score_ppo", "task_ppo", "motif", "embedding_similarity"))
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
               "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2",
               "TOKENIZERS_PARALLELISM": "false",
               "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
# A stage's duration before the reference run has timed it (a parallel reference), by family, seconds.
DEFAULT_DURATION_S = {"collect": 15, "annotate": 200, "reward": 20, "train_skills": 120, "fit": 60,
                      "evaluate": 30, "": 30}
GRACE_S = 5.0  # how long the killed tree may take to die before a survivor counts as an orphan


# ---------------------------------------------------------------- training resumes

def resumed_training(copy: Path) -> dict[str, int]:
    """Skill seeds of any MaestroMotif method (data/fit/<method>/seed<k>/summary.json, written by its
    train_skills stage) whose training resumed from a checkpoint: "<method>/seed<k>" -> env step resumed
    at."""
    out = {}
    for summary in sorted((copy / "data" / "fit").glob("*/seed*/summary.json")):
        steps = int(json.loads(summary.read_text()).get("resumed_from_env_steps") or 0)
        if steps:
            out[f"{summary.parent.parent.name}/{summary.parent.name}"] = steps
    return out


def tainted_patterns(resumed: Iterable[str]) -> list[str]:
    """What a resumed skill seed ("<method>/seed<k>") changes (regexes over relative paths): its weights,
    its evaluation runs, and the results tables."""
    out = []
    for key in resumed:
        method, run = key.split("/")
        out += [rf"^data/fit/{method}/{run}/", rf"^data/evaluate/{method}/[^/]+/{run}_code"]
    return out + ([r"^results/"] if out else [])


# ---------------------------------------------------------------- running and killing

@dataclass
class Kill:
    stage: str               # dvc stage name, e.g. "fit@task_ppo-0"
    target: str              # its family among TARGETS
    fraction: float          # when: this fraction of the stage's duration in the reference run
    delay_s: float | None = None  # seconds after the stage started (set when armed)
    landed: bool = False
    cycle: int | None = None
    note: str = ""
    orphans: list = field(default_factory=list)


def target_of(stage: str) -> str | None:
    family = stage.split("@")[0]
    if family.startswith("evaluate"):
        return "evaluate"
    return family if family in TARGETS else None


def stage_durations(events: list[tuple[str, float]], end: float) -> dict[str, float]:
    """{stage: seconds} from (stage, start time) events in run order; the last stage ends at `end`."""
    out = {}
    for i, (stage, t0) in enumerate(events):
        t1 = events[i + 1][1] if i + 1 < len(events) else end
        out[stage] = max(t1 - t0, 0.0)
    return out


def durations_from_log(text: str) -> dict[str, float]:
    """Stage durations of a `dvc repro` log written without the runner: from the stages' log timestamps."""
    import datetime as dt

    events, last = [], None
    for line in text.splitlines():
        m = RUNNING.search(line)
        if m:
            events.append([m.group(1), None, None])
        t = LOG_TIME_RE.match(line)
        if t and events:
            ts = dt.datetime.strptime(t.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(t.group(2)) / 1000
            events[-1][1] = events[-1][1] or ts
            events[-1][2] = last = ts
    return {s: (t1 - t0 + 2.0) if t0 else 2.0 for s, t0, t1 in events if last is not None}


def plan_kills(rng: random.Random, stages: list[str], kills: int,
               targets: Iterable[str] = TARGETS) -> list[Kill]:
    """`kills` kills cycling over `targets`, each at a random stage of that family and a random fraction of
    its duration; sorted in pipeline order (two kills on one stage: the second lands in its rerun)."""
    by_target = {t: [s for s in stages if target_of(s) == t] for t in targets}
    families = [t for t in targets if by_target[t]]
    if not families:
        raise SystemExit(f"chaos: the pipeline has none of the target stages {list(targets)}")
    plan = []
    for i in range(kills):
        t = families[i % len(families)]
        plan.append(Kill(rng.choice(by_target[t]), t, round(rng.uniform(0.1, 0.75), 3)))
    plan.sort(key=lambda k: (stages.index(k.stage), k.fraction))
    return plan


def delay_for(stage: str, fraction: float, durations: dict[str, float]) -> float:
    """Seconds into `stage` for a kill at `fraction` of its reference duration (a default while the
    reference has not run it yet)."""
    return round(fraction * max(durations.get(stage) or DEFAULT_DURATION_S[target_of(stage) or ""], 1.0), 2)


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_tree(proc: subprocess.Popen, known: list, grace_s: float = GRACE_S) -> list[dict]:
    """SIGKILL the process group of `proc` and every known descendant that left it (its own session);
    return those still alive `grace_s` later (orphans), after killing them too."""
    import psutil

    known = known + _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    gone_by = time.monotonic() + grace_s
    alive = [p for p in known if p.is_running()]
    while alive and time.monotonic() < gone_by:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    orphans = []
    for p in alive:
        try:
            orphans.append({"pid": p.pid, "cmdline": " ".join(p.cmdline())[:200]})
            p.kill()
        except psutil.Error:
            pass
    return orphans


def _lock_is_torn(copy: Path) -> bool:
    """The last `dvc repro` of `copy` failed on an invalid dvc.lock (a kill while DVC wrote it)."""
    log = copy / "chaos_repro.log"
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    return (copy / "dvc.lock").exists() and "dvc.lock' validation failed" in tail


def repro(copy: Path, env: dict, log_path: Path, kills: list[Kill], durations, cycle: int,
          dvc_targets: Iterable[str] = (), on_stage=None) -> dict:
    """One `dvc repro` in `copy`; kill it at the first pending kill of `kills` whose stage it runs
    (`durations()`: the reference's stage durations so far).
    Returns {"rc", "killed" (the stage killed in, or None), "events": [(stage, seconds)], "end"}."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n===== chaos cycle {cycle}: dvc repro =====\n")
        result = _repro(copy, env, log, kills, durations, cycle, list(dvc_targets), on_stage)
        killed = f" (killed in {result['killed']})" if result["killed"] else ""
        log.write(f"===== chaos cycle {cycle}: rc {result['rc']}{killed} =====\n")
    return result


def _repro(copy: Path, env: dict, log, kills: list[Kill], durations, cycle: int, dvc_targets: list[str],
           on_stage=None) -> dict:
    t_start = time.monotonic()
    proc = subprocess.Popen(["dvc", "repro", *dvc_targets], cwd=copy, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True, errors="replace",
                            bufsize=1)
    events_q: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            log.write(line)
            m = RUNNING.search(line)
            if m:
                events_q.put((m.group(1), time.monotonic()))
                if on_stage is not None:
                    on_stage(m.group(1), time.monotonic())
        events_q.put((None, time.monotonic()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        return _watch(proc, reader, events_q, kills, durations, cycle, t_start)
    except BaseException:  # interrupted (Ctrl-C, a kill of this script): never leave the pipeline running
        kill_tree(proc, [], grace_s=1.0)
        raise


def _watch(proc: subprocess.Popen, reader: threading.Thread, events_q: queue.Queue, kills: list[Kill],
           durations, cycle: int, t_start: float) -> dict:
    pending = [k for k in kills if not k.landed and not k.note]
    events: list[tuple[str, float]] = []
    armed: tuple[Kill, float] | None = None
    killed: Kill | None = None
    known: list = []  # every descendant seen: a child in its own session is outside the process group

    while True:
        wait = None if armed is None else min(max(armed[1] - time.monotonic(), 0.0), 1.0)
        try:
            stage, t = events_q.get(timeout=wait)
        except queue.Empty:
            if time.monotonic() < armed[1]:  # type: ignore[index]
                known += _descendants(proc.pid)
                continue
            killed = armed[0]  # type: ignore[index]  # its time came while its stage is still running
            killed.orphans = kill_tree(proc, known)
            killed.landed, killed.cycle = True, cycle
            break
        if armed is not None:  # a new stage (or the end) came first: that kill missed
            armed[0].note = f"stage finished before {armed[0].delay_s:.1f} s (cycle {cycle})"
            pending.remove(armed[0])
            armed = None
        if stage is None:
            break
        events.append((stage, t))
        known += _descendants(proc.pid)
        mine = next((k for k in pending if k.stage == stage), None)
        if mine is not None:
            mine.delay_s = delay_for(stage, mine.fraction, durations())
            armed = (mine, t + mine.delay_s)
    rc = proc.wait()
    reader.join(timeout=10)
    return {"rc": rc, "killed": killed.stage if killed else None,
            "events": [(s, t - t_start) for s, t in events], "end": time.monotonic() - t_start}


def run_env(venv_bin: Path, cache: Path) -> dict:
    env = {**os.environ, **OFFLINE_ENV}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    # the converted LLM is made once and shared by both copies (or an existing cache, when set)
    env["MM_CACHE_DIR"] = os.environ.get("MM_CACHE_DIR") or str(cache)
    env.pop("MM_PARAMS", None)
    return env


def make_copy(src: Path, dest: Path, profile: str, overrides: Iterable[str], env: dict) -> Path:
    """Copy `src`'s tracked files (as they are in its working tree) to a fresh `dest` and write its params."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=src, check=True, capture_output=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        s = src / rel
        if s.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["python", "-m", "benchmark.config", "--profile", profile, *overrides], cwd=dest, env=env,
                   check=True, capture_output=True)
    return dest


class Reference:
    """The uninterrupted run (A), run by this script (in a thread, so B may run beside it) or read from a
    copy made by hand: finished (dvc.lock and results/), or running `dvc repro > repro.log; echo $? > rc`."""

    def __init__(self, copy: Path, env: dict, dvc_targets: Iterable[str] = ()):
        self.copy, self.env, self.dvc_targets = copy, env, list(dvc_targets)
        self.info_path = copy / "chaos_reference.json"
        self.info: dict | None = json.loads(self.info_path.read_text()) if self.info_path.exists() else None
        self.external = self.info is None and (copy / "repro.log").exists()
        self.events: list[tuple[str, float]] = []
        self.result: dict | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Reference:
        if self.info is None and not self.external:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self) -> None:
        self.t0 = time.monotonic()
        self.result = repro(self.copy, self.env, self.copy / "chaos_repro.log", [], dict, 0, self.dvc_targets,
                            on_stage=lambda stage, t: self.events.append((stage, t)))

    def durations(self) -> dict[str, float]:
        """Durations of the stages the reference has finished so far."""
        if self.info is not None:
            return self.info["durations"]
        if self.external:
            done = durations_from_log((self.copy / "repro.log").read_text(errors="replace"))
            return done if (self.copy / "rc").exists() else dict(list(done.items())[:-1])
        events = list(self.events)
        return dict(list(stage_durations(events, time.monotonic()).items())[:-1])

    def wait(self) -> dict:
        """The finished run's {"order", "durations", "wall_s"}; raises SystemExit if it failed."""
        if self.info is not None:
            return self.info
        if self.external:
            while not (self.copy / "rc").exists():
                time.sleep(5)
            rc = int((self.copy / "rc").read_text().strip() or 1)
            durations = self.durations()
            info = {"order": list(durations), "durations": durations, "wall_s": None, "rc": rc}
        else:
            if self.thread is None:
                self.start()
            self.thread.join()  # type: ignore[union-attr]
            r = self.result or {"rc": -1, "events": [], "end": 0.0}
            info = {"order": [s for s, _ in r["events"]], "durations": stage_durations(r["events"], r["end"]),
                    "wall_s": round(r["end"], 1), "rc": r["rc"]}
        self.info_path.write_text(json.dumps(info, indent=2) + "\n")
        self.info = info
        return info


def stage_list(copy: Path, env: dict) -> list[str]:
    """Every stage of the copy's pipeline (foreach and matrix expanded), in dvc.yaml order."""
    out = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=copy, env=env, check=True,
                         capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def up_to_date(copy: Path, env: dict, dvc_targets: Iterable[str] = ()) -> bool:
    out = subprocess.run(["dvc", "status", *dvc_targets], check=False, cwd=copy, env=env, capture_output=True,
                         text=True)
    return out.returncode == 0 and "up to date" in out.stdout


def chaos(workdir: Path, kills: int, seed: int, profile: str = "ci", reference: Path | None = None,
          targets: Iterable[str] = TARGETS, src: Path = REPO_ROOT, venv_bin: Path | None = None,
          overrides: Iterable[str] = (), dvc_targets: Iterable[str] = (), parallel: bool = False) -> dict:
    """Run the whole experiment; return the report (also written to <workdir>/chaos_report.json).
    dvc_targets: `dvc repro` only these stages (and what they need); parallel: run B beside A, not after."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = [*TRAIN_OVERRIDES, *overrides]
    t0 = time.monotonic()
    a = reference.resolve() if reference else workdir / "A"
    # A's model cache (where it converts the LLM) serves B too: the same files, converted once
    env = run_env(venv_bin or Path(sys.executable).parent, a / ".cache")
    if reference is None and not (a / "chaos_reference.json").exists():
        make_copy(src, a, profile, overrides, env)
    ref = Reference(a, env, dvc_targets).start()
    if not parallel and ref.wait().get("rc", 0) != 0:
        raise SystemExit(f"chaos: the uninterrupted run in {a} failed; see {a / 'chaos_repro.log'}")
    b = make_copy(src, workdir / "B", profile, overrides, env)
    plan = plan_kills(random.Random(seed), stage_list(b, env), kills, targets)
    cycles, failed = [], None
    tb = time.monotonic()
    torn_locks = 0
    for cycle in range(1, kills + 4):
        r = repro(b, env, b / "chaos_repro.log", plan, ref.durations, cycle, dvc_targets)
        cycles.append({"cycle": cycle, "rc": r["rc"], "killed_in": r["killed"],
                       "stages": [s for s, _ in r["events"]]})
        if r["killed"]:
            continue
        if r["rc"] != 0 and not torn_locks and _lock_is_torn(b):
            # DVC rewrites dvc.lock in place after each stage; a kill during that write leaves a lock that
            # fails its schema. What a user does: drop the lock and rerun (persistent outputs and finished
            # chunks are kept; the other stages rerun to the same outputs). Counted in the report.
            (b / "dvc.lock").unlink()
            torn_locks += 1
            continue
        if r["rc"] != 0:
            failed = (f"dvc repro failed after the kills (cycle {cycle}, rc {r['rc']}): "
                      f"see {b / 'chaos_repro.log'}")
        break
    for k in plan:
        if not k.landed and not k.note:
            k.note = "its stage did not run again after the earlier kills (up to date)"
    wall_b = time.monotonic() - tb
    ref_info = ref.wait()
    if ref_info.get("rc", 0) != 0:
        failed = (f"the uninterrupted run A failed too (rc {ref_info['rc']}); see {a}; "
                  + (failed or "B finished"))
    resumed = resumed_training(b)
    comparison = compare_trees(a, b, tainted_patterns(resumed))
    clean = failed is None and up_to_date(b, env, dvc_targets)
    if failed is None and not clean:
        failed = "after the final rerun `dvc status` in B is not up to date"
    landed = Counter(k.target for k in plan if k.landed)
    kills_out = [asdict(k) for k in plan]
    kill_phases((b / "chaos_repro.log").read_text(errors="replace"), kills_out)
    report = {
        "profile": profile, "seed": seed, "dvc_targets": list(dvc_targets), "overrides": overrides,
        "reference": str(a), "killed_copy": str(b),
        "kills_attempted": len(plan), "kills_landed": sum(landed.values()),
        "kills_landed_per_stage": {t: landed.get(t, 0) for t in targets},
        "reruns": max(len(cycles) - 1, 0), "cycles": cycles, "kills": kills_out, "torn_locks": torn_locks,
        "orphans": [o for k in plan for o in k.orphans],
        "resumed_training": resumed, "files_compared": comparison["files_compared"],
        "mismatches": comparison["mismatches"], "expected_divergence": comparison["expected_divergence"],
        "failure": failed, "reference_wall_s": ref_info.get("wall_s"), "killed_run_wall_s": round(wall_b, 1),
        "wall_s": round(time.monotonic() - t0, 1),
        "ok": failed is None and not comparison["mismatches"],
    }
    (workdir / "chaos_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def kill_phases(log_text: str, kills: list[dict]) -> None:
    """Mark each landed kill with where it hit: in the stage's command, or after the command had finished,
    while dvc saved its outputs (the rerun then restores the stage from dvc's run cache: "is cached")."""
    cycles = re.split(r"===== chaos cycle (\d+): dvc repro =====", log_text)
    by_cycle = {int(cycles[i]): cycles[i + 1] for i in range(1, len(cycles) - 1, 2)}
    for k in kills:
        if k.get("landed"):
            rerun = by_cycle.get(int(k["cycle"]) + 1, "")
            cached = f"Stage '{k['stage']}' is cached" in rerun
            k["phase"] = ("dvc bookkeeping after the command (restored from the run cache)" if cached
                          else "command")


CYCLE_END_RE = re.compile(r"===== chaos cycle (\d+): rc (-?\d+)(?: \(killed in ([^)]+)\))? =====")


def report_from_log(workdir: Path, kills: int, seed: int, targets: Iterable[str] = TARGETS) -> dict:
    """The kill part of a chaos report, rebuilt from the killed copy's log (a run stopped before it wrote its
    report): the plan is replayed from its seed, the landed kills are the cycles that ended killed."""
    workdir = workdir.resolve()
    a, b = workdir / "A", workdir / "B"
    env = run_env(Path(sys.executable).parent, a / ".cache")
    plan = plan_kills(random.Random(seed), stage_list(b, env), kills, list(targets))
    cycles = []
    for m in CYCLE_END_RE.finditer((b / "chaos_repro.log").read_text(errors="replace")):
        cycle, rc, stage = int(m.group(1)), int(m.group(2)), m.group(3)
        cycles.append({"cycle": cycle, "rc": rc, "killed_in": stage})
        k = next((k for k in plan if k.stage == stage and not k.landed), None) if stage else None
        if k is not None:
            k.landed, k.cycle = True, cycle
    last = cycles[-1] if cycles else {"rc": None, "killed_in": None}
    landed = Counter(k.target for k in plan if k.landed)
    ref_file = a / "chaos_reference.json"
    ref = json.loads(ref_file.read_text()) if ref_file.exists() else {}
    return {
        "profile": "ci", "seed": seed, "reference": str(a), "killed_copy": str(b), "rebuilt_from_log": True,
        "kills_attempted": len(plan), "kills_landed": sum(landed.values()),
        "kills_landed_per_stage": {t: landed.get(t, 0) for t in targets}, "reruns": max(len(cycles) - 1, 0),
        "cycles": cycles, "kills": [asdict(k) for k in plan], "orphans": [], "resumed_training": {},
        "failure": None if last["rc"] == 0 else f"the last dvc repro of B ended with rc {last['rc']}",
        "reference_wall_s": ref.get("wall_s"), "killed_run_wall_s": None, "wall_s": None,
    }


def recompare(workdir: Path, kills: int = 6, seed: int = 0, targets: Iterable[str] = TARGETS) -> dict:
    """Compare the copies of a chaos run again (e.g. after changing what is compared); a run stopped before
    its report gets one rebuilt from its log (report_from_log, with the --kills/--seed it ran with)."""
    path = workdir.resolve() / "chaos_report.json"
    report = json.loads(path.read_text()) if path.exists() else report_from_log(workdir, kills, seed, targets)
    a, b = Path(report["reference"]), Path(report["killed_copy"])
    comparison = compare_trees(a, b, tainted_patterns(resumed_training(b)))
    kill_phases((b / "chaos_repro.log").read_text(errors="replace"), report["kills"])
    report.update(files_compared=comparison["files_compared"], mismatches=comparison["mismatches"],
                  expected_divergence=comparison["expected_divergence"])
    report["resumed_training"] = resumed_training(b)
    report["ok"] = report["failure"] is None and not comparison["mismatches"]
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def summary_line(report: dict) -> str:
    per = ", ".join(f"{t} {n}" for t, n in report["kills_landed_per_stage"].items())
    return (f"chaos: {report['kills_landed']}/{report['kills_attempted']} kills landed ({per}); "
            f"{report['reruns']} reruns; {report['files_compared']} files compared; "
            f"{len(report['mismatches'])} mismatches; "
            f"{len(report['expected_divergence'])} expected divergences; {len(report['orphans'])} orphans; "
            f"{'OK' if report['ok'] else 'FAILED: ' + str(report['failure'])}")


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(128 + signum)  # runs the cleanup above: the killed copy's dvc repro goes too


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_term)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=6, help="kills to attempt (cycling over --stages)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill plan (stages and times)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mm-chaos"), help="where the copies go")
    parser.add_argument("--profile", default="ci", choices=("ci", "small", "paper"))
    parser.add_argument("--stages", nargs="+", default=list(TARGETS), choices=TARGETS,
                        help="stages to kill in")
    parser.add_argument("--reference", type=Path, default=None,
                        help="a finished uninterrupted copy to compare with "
                             "(default: run one in <workdir>/A)")
    parser.add_argument("--target", nargs="+", default=[], dest="dvc_targets",
                        help="dvc stages to reproduce (default: the whole pipeline)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT,
                        help="git checkout whose tracked files are copied "
                             "(default: this one, as it is now)")
    parser.add_argument("--parallel", action="store_true",
                        help="run the killed copy beside the reference instead of after it (kill times "
                             "of stages the reference has not timed yet: DEFAULT_DURATION_S)")
    parser.add_argument("--recompare", action="store_true",
                        help="only compare the copies of the finished run in --workdir again")
    parser.add_argument("overrides", nargs="*",
                        help="extra params overrides for both copies (benchmark.config)")
    args = parser.parse_args(argv)
    if args.recompare:
        report = recompare(args.workdir, args.kills, args.seed, args.stages)
    else:
        report = chaos(args.workdir, args.kills, args.seed, args.profile, args.reference, args.stages,
                       overrides=args.overrides, dvc_targets=args.dvc_targets, parallel=args.parallel,
                       src=args.source)
    print(summary_line(report))
    for m in report["mismatches"][:20]:
        print("  MISMATCH", json.dumps(m, default=str)[:400])
    print(f"report: {args.workdir.resolve() / 'chaos_report.json'}")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()

"""Run untrusted programs (LLM-written policies over skills) in a persistent, locked-down worker process.

Layers of defence, outermost first:

1. a separate process (`Sandbox`), started with `python -I -S`, an empty environment and its own
   session; it dies with its parent (PR_SET_PDEATHSIG);
2. OS limits set in the worker before any program runs: address space (RLIMIT_AS, `memory_mb`),
   no file writes (RLIMIT_FSIZE=0), and no new file descriptors (RLIMIT_NOFILE at the lowest free fd),
   so `open()` and `socket()` fail even if a program got hold of them; it also tries a fresh network
   namespace (needs privileges; reported in `Sandbox.worker_info`);
3. a watchdog in the parent: each call has a time limit; past it the worker is killed and restarted,
   programs are reloaded, and player objects of the old worker raise `SandboxInstanceLost`;
4. restricted Python (maestromotif.options.runtime): source checks, safe builtins, module proxies.

Calls are one JSON line each way over pipes (never pickle: the parent must not unpickle what an
untrusted process wrote). `InProcessRunner` offers the same interface without the process, for our
own trusted programs when speed matters; it still uses the restricted runtime.

Size (over 450 lines): the worker's lock-down, the wire protocol and the parent's watchdog are the two
ends of one boundary and are reviewed together; the runtime they host is maestromotif.options.runtime.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import itertools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from maestromotif.options import runtime

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MEMORY_MB = 512


# ---------------------------------------------------------------- errors
class SandboxError(RuntimeError):
    """A program could not run to completion; subclasses say why. The runner stays usable."""

    kind = "error"

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


class SandboxTimeout(SandboxError):
    kind = "timeout"


class SandboxMemoryError(SandboxError):
    kind = "memory"


class SandboxSecurityError(SandboxError):
    kind = "security"


class SandboxProgramError(SandboxError):
    """The program raised an exception (message and traceback of the program's own frames)."""

    kind = "program"


class SandboxSyntaxError(SandboxProgramError):
    kind = "syntax"


class SandboxExit(SandboxError):
    """The program tried to end the process (SystemExit, exit(), KeyboardInterrupt)."""

    kind = "exit"


class SandboxCrash(SandboxError):
    """The worker process died (killed by the OS, segfault); it has been restarted."""

    kind = "crash"


class SandboxInstanceLost(SandboxError):
    """The player object lived in a worker that has since been restarted; create a new player."""

    kind = "lost"


class SandboxProtocolError(SandboxError):
    kind = "protocol"


_ERRORS = {c.kind: c for c in (SandboxTimeout, SandboxMemoryError, SandboxSecurityError, SandboxProgramError,
                               SandboxSyntaxError, SandboxExit, SandboxCrash, SandboxProtocolError)}
_KIND_TEXT = {
    "memory": "the program ran out of its memory limit",
    "security": "the program tried a forbidden operation",
    "program": "the program raised an exception",
    "syntax": "the program does not parse",
    "exit": "the program tried to exit",
}


def _raise_for(response: dict, what: str) -> Any:
    if response.get("ok"):
        return response.get("result")
    kind = response.get("kind", "protocol")
    cls = _ERRORS.get(kind, SandboxProtocolError)
    raise cls(f"{what}: {_KIND_TEXT.get(kind, kind)}: {response.get('message', '')}",
              response.get("traceback", ""))


# ---------------------------------------------------------------- handles (same for both runners)
class ProgramHandle:
    """A program loaded in a runner; makes player objects (one per episode)."""

    def __init__(self, runner: "Runner", program_id: str, name: str, methods: list[str]):
        self.runner, self.program_id, self.name, self.methods = runner, program_id, name, methods

    def new_player(self, seed: int = 0, max_depth: int = -1, branch_depth: int = -2) -> "PlayerHandle":
        player_id = f"{self.program_id}.p{next(self.runner._ids)}"
        result = self.runner._call({"op": "new", "program_id": self.program_id, "player_id": player_id,
                                    "seed": int(seed), "max_depth": max_depth, "branch_depth": branch_depth},
                                   f"{self.name}: NetHackPlayer() + set_initial_values()")
        return PlayerHandle(self, player_id, result["skill"])

    def close(self) -> None:
        self.runner._forget(self)


class PlayerHandle:
    """One NetHackPlayer object living in the runner."""

    def __init__(self, program: ProgramHandle, player_id: str, initial_skill: str):
        self.program, self.player_id, self.initial_skill = program, player_id, initial_skill
        self.generation = program.runner.generation

    def lost(self) -> "SandboxInstanceLost":
        return SandboxInstanceLost(f"{self.program.name}: this player lived in a sandbox worker that was "
                                   "restarted after an error; create a new player")

    def _request(self, request: dict, what: str):
        runner = self.program.runner
        if runner.generation != self.generation:
            raise self.lost()
        return runner._call({**request, "player_id": self.player_id}, f"{self.program.name}: {what}")

    def step(self, inputs: dict) -> dict:
        """One options step (runtime.options_step): preconditions, hooks, termination, next skill."""
        return self._request({"op": "step", "inputs": inputs}, "options step")

    def call(self, method: str, *args) -> Any:
        """Call a method with plain-data arguments; wrap 2-D arrays as {"grid": rows}."""
        return self._request({"op": "call", "method": method, "args": list(args)}, f"{method}()")

    def get(self, attribute: str) -> Any:
        return self._request({"op": "get", "attribute": attribute}, f"reading .{attribute}")

    def close(self) -> None:
        if self.program.runner.generation == self.generation:
            try:
                self.program.runner._call({"op": "drop", "player_id": self.player_id}, "drop")
            except SandboxError:
                pass


# ---------------------------------------------------------------- runners
class Runner(ABC):
    """Loads programs and runs scripts; `Sandbox` (a worker process) or `InProcessRunner`."""

    sandboxed = False

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.generation = 0
        self._ids = itertools.count()
        self._programs: dict[str, tuple[str, str, int]] = {}
        self._lock = threading.RLock()

    def load(self, source: str, name: str = "program", seed: int = 0) -> ProgramHandle:
        program_id = f"prog{next(self._ids)}"
        result = self._call({"op": "load", "program_id": program_id, "source": source, "name": name,
                             "seed": int(seed)}, f"{name}: loading")
        self._programs[program_id] = (source, name, int(seed))
        return ProgramHandle(self, program_id, name, result["methods"])

    def run_script(self, source: str, name: str = "unit_test", seed: int = 0,
                   timeout_s: float | None = None) -> str:
        """Run a whole script (class + unit test) and return what it printed."""
        result = self._call({"op": "script", "source": source, "name": name, "seed": int(seed)},
                            f"{name}: running the script", timeout_s=timeout_s)
        return result["stdout"]

    def ping(self) -> str:
        return self._call({"op": "ping"}, "ping")

    def step_players(self, steps: list[tuple["PlayerHandle", dict]]) -> list[dict | SandboxError]:
        """The options steps of several players of this runner in one request (one round trip to the
        sandbox worker for a whole batch of envs, instead of one per env). Entry i is player i's result, or
        the SandboxError its own `step` would have raised; the batch's time limit is the per-call limit
        times the number of steps."""
        results: list = [None] * len(steps)
        requests, sent = [], []
        for i, (player, inputs) in enumerate(steps):
            if player.program.runner is not self:
                raise ValueError(f"{player.player_id} belongs to another runner")
            if player.generation != self.generation:
                results[i] = player.lost()
                continue
            requests.append({"op": "step", "player_id": player.player_id, "inputs": inputs})
            sent.append(i)
        if not requests:
            return results
        try:
            answers = self._call({"op": "batch", "requests": requests}, f"options steps of {len(requests)} "
                                 "players", timeout_s=self.timeout_s * len(requests))
        except SandboxError as e:  # the worker timed out or died: every step of the batch failed with it
            answers = [e] * len(requests)
        if not isinstance(answers, list) or len(answers) != len(requests):
            bad = SandboxProtocolError(f"options steps: {len(requests)} requests got an unreadable answer")
            answers = [bad] * len(requests)
        for i, answer in zip(sent, answers):
            what = f"{steps[i][0].program.name}: options step"
            try:
                if isinstance(answer, SandboxError):
                    results[i] = answer
                else:
                    results[i] = _raise_for(answer if isinstance(answer, dict) else {}, what)
            except SandboxError as e:
                results[i] = e
        return results

    def _forget(self, program: ProgramHandle) -> None:
        self._programs.pop(program.program_id, None)
        try:
            self._call({"op": "drop", "program_id": program.program_id}, "drop")
        except SandboxError:
            pass

    @abstractmethod
    def _call(self, request: dict, what: str, timeout_s: float | None = None) -> Any:
        """Run one request against the program (in this process, or in the sandboxed worker)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessRunner(Runner):
    """Same interface and restricted runtime, no process: for trusted programs (no time/memory limits)."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(timeout_s)
        self._runtime = runtime.ProgramRuntime()

    def _call(self, request: dict, what: str, timeout_s: float | None = None) -> Any:
        with self._lock:
            return _raise_for(self._runtime.handle(request), what)


class Sandbox(Runner):
    """A persistent worker process with per-call time limits, a memory limit and no file/network access."""

    sandboxed = True

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
                 start_timeout_s: float = 60.0):
        super().__init__(timeout_s)
        if memory_mb < 64:
            raise ValueError(f"memory_mb={memory_mb} is too small for a Python worker (use >= 64)")
        self.memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.worker_info: dict = {}
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._start()

    # -- process management
    def _start(self) -> None:
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
                f"from maestromotif.options.sandbox import worker_main; worker_main({int(self.memory_mb)})")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
            cwd="/", close_fds=True, start_new_session=True,
        )
        self._buffer = b""
        hello = self._read_response(self.start_timeout_s)
        if hello is None or not hello.get("ok"):
            self._kill()
            raise SandboxCrash(f"the sandbox worker did not start: {hello}")
        self.worker_info = hello["result"]
        log.debug("sandbox worker %d started: %s", self._proc.pid, self.worker_info)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass

    def _restart(self, why: str) -> None:
        log.warning("sandbox worker restarted (%s)", why)
        self._kill()
        self.generation += 1
        self.restarts += 1
        self._start()
        for program_id, (source, name, seed) in list(self._programs.items()):
            response = self._roundtrip({"op": "load", "program_id": program_id, "source": source,
                                        "name": name, "seed": seed}, self.timeout_s, "reload")
            if not response.get("ok"):
                log.warning("program %s could not be reloaded after the restart: %s", name,
                            response.get("message"))
                self._programs.pop(program_id, None)

    def close(self) -> None:
        with self._lock:
            self._kill()

    # -- one request
    def _call(self, request: dict, what: str, timeout_s: float | None = None) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._restart("the worker was not running")
            response = self._roundtrip(request, timeout_s or self.timeout_s, what)
            batch = response.get("result") if request.get("op") == "batch" and response.get("ok") else []
            batch = batch if isinstance(batch, list) else []
            hit = [r for r in [response, *batch] if isinstance(r, dict) and r.get("kind") == "memory"]
            for r in hit:
                r["message"] = f"{r.get('message', '')} (limit {self.memory_mb} MB)"
            if hit:  # its heap may be left huge: start clean
                self._restart("a program hit the memory limit")
            return _raise_for(response, what)

    def _roundtrip(self, request: dict, timeout_s: float, what: str) -> dict:
        data = (json.dumps(request, separators=(",", ":")) + "\n").encode()
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._restart("its input pipe was closed")
            raise SandboxCrash(f"{what}: the sandbox worker had died; it was restarted") from None
        response = self._read_response(timeout_s)
        if response is None:
            code = self._proc.poll()
            if code is None and self._eof:  # the pipe closed as the process exits: collect its status
                try:
                    code = self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
            if code is None:
                self._restart(f"{what} ran past {timeout_s:g} s")
                raise SandboxTimeout(f"{what}: the program ran past its time limit of {timeout_s:g} s; "
                                     "the worker was killed and restarted")
            self._restart(f"the worker died with exit code {code}")
            raise SandboxCrash(f"{what}: the sandbox worker died (exit code {code}); it was restarted")
        return response

    def _read_response(self, timeout_s: float) -> dict | None:
        """One JSON line from the worker, or None on timeout or EOF."""
        fd = self._proc.stdout.fileno()
        self._eof = False
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self._eof = True
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"ok": False, "kind": "protocol",
                    "message": f"unreadable reply from the worker: {line[:200]!r}"}


def make_runner(mode: str = "sandbox", timeout_s: float = DEFAULT_TIMEOUT_S,
                memory_mb: int = DEFAULT_MEMORY_MB) -> Runner:
    """mode: "sandbox" (worker process) or "inprocess" (trusted programs only)."""
    if mode == "sandbox":
        return Sandbox(timeout_s=timeout_s, memory_mb=memory_mb)
    if mode == "inprocess":
        return InProcessRunner(timeout_s=timeout_s)
    raise ValueError(f"runner mode {mode!r}: choose 'sandbox' or 'inprocess'")


# ---------------------------------------------------------------- the worker process
def _lock_down(memory_mb: int) -> dict:
    """Limits for the worker: the parent learns from the hello message which ones took effect."""
    import resource

    info: dict = {}
    try:  # die with the parent
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        info["pdeathsig"] = libc.prctl(1, 9, 0, 0, 0) == 0  # PR_SET_PDEATHSIG, SIGKILL
        info["network_namespace"] = libc.unshare(0x40000000) == 0  # CLONE_NEWNET: no interfaces at all
    except (OSError, AttributeError):
        info["pdeathsig"] = info["network_namespace"] = False
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        info["nproc"] = True
    except (ValueError, OSError):
        info["nproc"] = False
    probe = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor number
    os.close(probe)
    resource.setrlimit(resource.RLIMIT_NOFILE, (probe, probe))  # any new open()/socket() fails with EMFILE
    info.update(memory_mb=memory_mb, max_fds=probe, pid=os.getpid())
    return info


def worker_main(memory_mb: int) -> None:
    """Entry point of the worker: private pipes, limits, then one JSON request per line."""
    requests = os.fdopen(os.dup(0), "rb")
    reply_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # stray writes (from C code, say) must never corrupt the protocol
        os.dup2(devnull, fd)
    os.close(devnull)
    import linecache  # noqa: F401 - everything the worker needs is imported before the limits
    import traceback  # noqa: F401

    info = _lock_down(memory_mb)
    rt = runtime.ProgramRuntime()

    def reply(obj: dict) -> None:
        try:
            data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        except (TypeError, ValueError) as e:
            data = (json.dumps({"ok": False, "kind": "program",
                                "message": f"result is not plain data: {e}"}) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(reply_fd, view):]

    reply({"ok": True, "result": info})
    for line in requests:
        try:
            request = json.loads(line)
        except ValueError:
            reply({"ok": False, "kind": "protocol", "message": "request is not JSON"})
            continue
        try:
            reply(rt.handle(request))
        except MemoryError:
            reply({"ok": False, "kind": "memory", "message": "MemoryError while replying"})

"""The sandbox stops hostile programs with a named error, and the next call still works."""
from __future__ import annotations

import threading

import pytest

from maestromotif.options.sandbox import (InProcessRunner, Sandbox, SandboxCrash, SandboxError, SandboxExit,
                                          SandboxInstanceLost, SandboxMemoryError, SandboxProgramError,
                                          SandboxSecurityError, SandboxSyntaxError, SandboxTimeout)
from tests.fixtures.programs import BROKEN

PLAYER = '''
import random

class NetHackPlayer:
    def __init__(self, max_depth, branch_depth):
        self.max_depth = max_depth
        self.calls = 0

    def set_initial_values(self):
        self.skill = "discoverer"
        self.draw = random.randint(0, 10**6)

    def count(self):
        self.calls += 1
        return self.calls
'''


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout_s=1.0, memory_mb=256) as sb:
        yield sb


def assert_still_works(sb):
    assert sb.run_script("print(sum(range(4)))") == "6\n"


HOSTILE_SCRIPTS = {
    "infinite loop": ("while True:\n    pass", SandboxTimeout, "time limit"),
    "huge allocation": ("x = 'a' * 10**10", SandboxMemoryError, "memory"),
    "growing allocation": ("x = []\nwhile True:\n    x.append('y' * 10**7 + str(len(x)))", SandboxMemoryError,
                           "memory"),
    "os.system": ("import os\nos.system('touch /tmp/mm-sandbox-pwned')", SandboxSecurityError, "module 'os'"),
    "subprocess": ("import subprocess", SandboxSecurityError, "module 'subprocess'"),
    "open for writing": ("open('/tmp/mm-sandbox-pwned', 'w').write('x')", SandboxSecurityError, "open()"),
    "open for reading": ("print(open('/etc/passwd').read())", SandboxSecurityError, "open()"),
    "__import__": ("__import__('os').system('true')", SandboxSecurityError, "__import__"),
    "subclasses walk": ("().__class__.__bases__[0].__subclasses__()", SandboxSecurityError, "__subclasses__"),
    "getattr on dunder": ("getattr((), '__cl' + 'ass__')", SandboxSecurityError, "__class__"),
    "swallowed getattr": ("try:\n    getattr(print, '__self__')\nexcept Exception:\n    pass",
                          SandboxSecurityError, "caught"),
    "function globals": ("def f():\n    pass\nf.__globals__", SandboxSecurityError, "__globals__"),
    "generator frame": ("g = (i for i in [1])\nprint(g.gi_frame.f_back)", SandboxSecurityError, "f_back"),
    "module internals": ("import random\nrandom._os.system('true')", SandboxProgramError, "_os"),
    "eval": ("eval('1 + 1')", SandboxSecurityError, "eval()"),
    "exec": ("exec('import os')", SandboxSecurityError, "exec()"),
    "sys.exit": ("import sys\nsys.exit(3)", SandboxSecurityError, "module 'sys'"),
    "raise SystemExit": ("raise SystemExit(3)", SandboxExit, "SystemExit"),
    "exit()": ("exit(2)", SandboxExit, "exit"),
    "delete builtins": ("del __builtins__", SandboxSecurityError, "__builtins__"),
    "builtins via globals": ("globals()['__builtins__']", SandboxSecurityError, "globals()"),
    "raises": ("raise ValueError('boom')", SandboxProgramError, "ValueError: boom"),
    "syntax error": ("def f(:\n    pass", SandboxSyntaxError, "parse"),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", SandboxProgramError, "RecursionError"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HOSTILE_SCRIPTS))
def test_hostile_script_is_stopped_with_a_named_error(sandbox, name):
    source, error, words = HOSTILE_SCRIPTS[name]
    with pytest.raises(error) as caught:
        sandbox.run_script(source, name=name)
    assert isinstance(caught.value, SandboxError)
    assert words in str(caught.value), str(caught.value)
    assert_still_works(sandbox)


@pytest.mark.timeout(60)
def test_nothing_was_written_outside(sandbox):
    import os

    for source in ("open('/tmp/mm-sandbox-pwned', 'w')",
                   "import os\nos.system('touch /tmp/mm-sandbox-pwned')"):
        with pytest.raises(SandboxSecurityError):
            sandbox.run_script(source)
    assert not os.path.exists("/tmp/mm-sandbox-pwned")


def test_worker_is_locked_down(sandbox):
    info = sandbox.worker_info
    assert info["memory_mb"] == 256
    assert info["max_fds"] <= 8  # no descriptor can be opened beyond the pipes
    assert info["pid"] != os_getpid()


def os_getpid():
    import os

    return os.getpid()


def test_print_output_is_captured_and_capped(sandbox):
    out = sandbox.run_script("for i in range(5000):\n    print('x' * 100)", timeout_s=30)
    assert out.endswith("[output truncated]\n") and len(out) < 300_000


@pytest.mark.timeout(60)
def test_player_state_persists_between_calls_and_is_lost_after_a_restart(sandbox):
    program = sandbox.load(PLAYER + "\n    def spin(self):\n        while True:\n            pass\n",
                           "counter")
    player = program.new_player(seed=7)
    assert [player.call("count") for _ in range(3)] == [1, 2, 3]
    assert player.get("draw") == program.new_player(seed=7).get("draw")  # the program's random is seeded
    with pytest.raises(SandboxTimeout):
        player.call("spin")
    with pytest.raises(SandboxInstanceLost):
        player.call("count")
    fresh = program.new_player(seed=7)  # the program itself was reloaded into the new worker
    assert fresh.call("count") == 1


def test_program_errors_name_the_method_and_keep_the_player(sandbox):
    program = sandbox.load(PLAYER + "\n    def bad(self):\n        return 1 / 0\n", "bad")
    player = program.new_player()
    with pytest.raises(SandboxProgramError, match=r"bad\(\).*ZeroDivisionError") as caught:
        player.call("bad")
    assert "return 1 / 0" in caught.value.traceback
    assert player.call("count") == 1


def test_forbidden_code_is_refused_at_load_time(sandbox):
    with pytest.raises(SandboxSecurityError, match="line 3"):
        sandbox.load("class NetHackPlayer:\n    def f(self):\n        return self.__dict__\n", "dunder")
    with pytest.raises(SandboxProgramError, match="NetHackPlayer"):
        sandbox.load("x = 1\n", "no class")


@pytest.mark.timeout(60)
def test_a_killed_worker_is_restarted():
    with Sandbox(timeout_s=1.0) as sb:
        sb._proc.kill()
        sb._proc.wait()
        assert sb.run_script("print(1)") == "1\n"  # noticed before the call: restarted, no error
        assert sb.restarts == 1
        killer = threading.Timer(0.3, sb._proc.kill)  # the worker dies in the middle of a call
        killer.start()
        with pytest.raises(SandboxCrash, match="died"):
            sb.run_script("while True:\n    pass", timeout_s=20)
        assert sb.run_script("print(2)") == "2\n"


def test_in_process_runner_has_the_same_interface_and_restrictions():
    runner = InProcessRunner()
    player = runner.load(PLAYER, "counter").new_player(seed=7)
    assert player.call("count") == 1
    with pytest.raises(SandboxSecurityError):
        runner.run_script("import os")
    with pytest.raises(SandboxSecurityError):
        runner.run_script("getattr((), '__class__')")
    assert runner.run_script("print('ok')") == "ok\n"


def test_numpy_style_precondition_code_runs_on_grids(sandbox):
    released_style = '''
class NetHackPlayer:
    def __init__(self, max_depth, branch_depth):
        pass
    def skill_precondition(self, char_ascii_encodings, char_ascii_colors, num_items, color_map):
        shopkeeper_mask = (char_ascii_encodings == 64) & (char_ascii_colors == color_map.get("@"))
        altar_mask = (char_ascii_encodings == 95) & (char_ascii_colors == color_map.get("_"))
        return altar_mask.any() and num_items > 0, shopkeeper_mask.any() and num_items > 0
'''
    chars = [[32] * 7 for _ in range(7)]
    colors = [[0] * 7 for _ in range(7)]
    chars[2][4], colors[2][4] = 64, 15
    player = sandbox.load(released_style, "numpy-style").new_player()
    assert player.call("skill_precondition", {"grid": chars}, {"grid": colors}, 1,
                       {"@": 15, "_": 7}) == [False, True]
    assert player.call("skill_precondition", {"grid": chars}, {"grid": colors}, 0,
                       {"@": 15, "_": 7}) == [False, False]


def options_inputs(turn: int) -> dict:
    """Plain-data inputs of one options step (runtime.options_step): a shopkeeper in view, depth varying."""
    chars = [[32] * 7 for _ in range(7)]
    chars[1][5] = 64
    return dict(chars=chars, colors=[[7] * 7 for _ in range(7)], num_items=turn % 2,
                color_map={"@": 15, "_": 7}, skill="discoverer", skill_time=turn % 40,
                depth=1 + turn % 3, previous_depth=1, dungeon_number=0, branch_depth=-2,
                branch_depth_if_end=-2, gold=turn, kill=turn % 7 == 0, xp_level=1, ate_in_mines=False)



@pytest.mark.timeout(120)
@pytest.mark.parametrize("runner", ["sandbox", "inprocess"])
def test_one_batched_call_answers_each_player_as_its_own_step_would(sandbox, runner):
    """step_players (one request for a whole batch of envs) against the same players stepped one by one."""
    from maestromotif.options.program import reference_program

    runner = sandbox if runner == "sandbox" else InProcessRunner()
    source = reference_program("training").source

    def players():  # each env's wrapper loads its own copy of the program: its own random stream
        return [runner.load(source, "training", seed=s).new_player(seed=s) for s in (1, 2, 3)]

    alone, batched = players(), players()
    for turn in range(60):
        inputs = [options_inputs(turn + 5 * k) for k in range(3)]
        assert runner.step_players(list(zip(batched, inputs))) == [p.step(x) for p, x in zip(alone, inputs)]
    # one broken player: its entry is the error its own step raises; the others still get their answers
    broken = runner.load(BROKEN, "broken").new_player()
    results = runner.step_players([(alone[0], options_inputs(0)), (broken, options_inputs(0))])
    assert isinstance(results[0], dict) and results[0] == batched[0].step(options_inputs(0))
    assert isinstance(results[1], SandboxProgramError) and "this program is broken" in str(results[1])
    assert str(results[1]).startswith("broken: options step")
    with pytest.raises(SandboxProgramError, match="batch: expected a list of requests, none of them a batch"):
        runner._call({"op": "batch", "requests": [{"op": "batch", "requests": []}]}, "nested")


@pytest.mark.timeout(60)
def test_a_batch_that_times_out_fails_every_step_and_the_players_are_lost():
    from maestromotif.options.program import reference_program

    hang = BROKEN.replace('raise RuntimeError("this program is broken")',
                                "while True:\n            pass")
    with Sandbox(timeout_s=0.5) as sb:
        fine = sb.load(reference_program("training").source, "training").new_player()
        stuck = sb.load(hang, "hang").new_player()
        results = sb.step_players([(fine, options_inputs(0)), (stuck, options_inputs(0))])
        assert [type(r) for r in results] == [SandboxTimeout, SandboxTimeout] and sb.restarts == 1
        assert [type(r) for r in sb.step_players([(fine, options_inputs(1))])] == [SandboxInstanceLost]
        assert isinstance(sb.step_players([(sb.load(BROKEN, "b").new_player(),
                                            options_inputs(0))])[0], SandboxProgramError)

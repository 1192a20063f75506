"""The restricted Python that programs (policies over skills) run in, and the options step they serve.

The same code runs inside the sandbox worker (untrusted, LLM-written programs) and in process
(our trusted reference programs), so a program behaves identically either way. Restrictions:

- the source is checked before it runs: no dunder names or attributes (``__class__``,
  ``__subclasses__``, ``__globals__`` ...) except ``__init__`` and ``__name__``, no frame/code
  attributes (``gi_frame``, ``f_globals`` ...), imports only of ALLOWED_MODULES;
- builtins are a small safe set: no open/eval/exec/compile/globals/input, ``getattr`` & co. refuse
  dunder names at run time, ``print`` writes to a capped per-call buffer;
- allowed modules are proxies holding only their public, non-module names (``random._os`` and
  ``collections._sys`` do not exist there); each program gets its own seeded ``random``.

This module imports only the standard library (and maestromotif.skills, which does too): the worker
must start fast and small.

Size (over 600 lines, above the suite's ~400): everything untrusted code can reach is defined here, the
source checks, the builtins, the module proxies and the Grid class programs receive; a security review
reads it as one file, so it is not split.
"""
from __future__ import annotations

import ast
import collections
import itertools
import linecache
import math
import random
import traceback
import types

from maestromotif.skills import SKILLS

ALLOWED_MODULES = ("random", "math", "collections", "typing", "__future__")
ALLOWED_DUNDER_ATTRS = frozenset({"__init__"})
ALLOWED_DUNDER_NAMES = frozenset({"__name__"})
# Non-dunder attributes that lead to frames, code objects or the MRO (and from there to everything).
BLOCKED_ATTRS = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "f_trace", "tb_frame", "tb_next",
    "co_code", "co_consts", "func_globals", "func_code", "mro", "format_map",
})
MAX_OUTPUT_CHARS = 200_000


class ForbiddenCode(Exception):
    """The source uses something the sandbox does not allow (checked before it runs)."""


class ForbiddenAccess(Exception):
    """The program tried a forbidden operation at run time (dunder getattr, disallowed import)."""


def forbidden_attr(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return (dunder and name not in ALLOWED_DUNDER_ATTRS) or name in BLOCKED_ATTRS


def validate_source(source: str, filename: str = "<program>") -> ast.Module:
    """Parse and check `source`; raise ForbiddenCode naming the first violation and its line."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise SyntaxError(f"line {e.lineno}: {e.msg}") from None
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Attribute) and forbidden_attr(node.attr):
            raise ForbiddenCode(f"line {line}: attribute '{node.attr}' is not allowed in programs")
        if isinstance(node, ast.Name) and node.id.startswith("__") and node.id not in ALLOWED_DUNDER_NAMES:
            raise ForbiddenCode(f"line {line}: name '{node.id}' is not allowed in programs")
        if isinstance(node, ast.Import):
            for alias in node.names:
                _check_module(alias.name, line)
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise ForbiddenCode(f"line {line}: relative imports are not allowed in programs")
            _check_module(node.module or "", line)
    return tree


def _check_module(name: str, line) -> None:
    if name not in ALLOWED_MODULES:
        raise ForbiddenCode(
            f"line {line}: import of module '{name}' is not allowed "
            f"(programs may import only {', '.join(m for m in ALLOWED_MODULES if m != '__future__')})"
        )


# ---------------------------------------------------------------- a numpy-like grid without numpy
def make_grid_class():
    """A fresh Grid class per program, so one program cannot monkeypatch another's."""

    class Grid:
        """A small 1-D/2-D array of ints with numpy-style elementwise ops, ``any``, ``sum``, indexing.

        Generated code written for numpy (``(chars == 64) & (colors == 15)``, ``mask.any()``) runs
        unchanged, without handing numpy (file I/O, ctypes) to untrusted code.
        """

        __slots__ = ("data", "shape")

        def __init__(self, rows):
            if isinstance(rows, Grid):
                self.data, self.shape = list(rows.data), rows.shape
                return
            if hasattr(rows, "tolist"):  # a numpy array (in-process callers)
                rows = rows.tolist()
            rows = list(rows)
            if rows and isinstance(rows[0], (list, tuple, Grid)):
                rows = [r.data if isinstance(r, Grid) else r for r in rows]
                self.data = list(itertools.chain.from_iterable(rows))
                self.shape = (len(rows), len(rows[0]))
            else:
                self.data = rows
                self.shape = (len(rows),)

        @classmethod
        def _make(cls, data, shape):
            g = cls.__new__(cls)
            g.data, g.shape = data, shape
            return g

        def _op(self, other, fn):
            if isinstance(other, Grid):
                if other.shape != self.shape:
                    raise ValueError(f"shapes {self.shape} and {other.shape} differ")
                return Grid._make([fn(a, b) for a, b in zip(self.data, other.data)], self.shape)
            return Grid._make([fn(a, other) for a in self.data], self.shape)

        def __eq__(self, o):
            return self._op(o, lambda a, b: a == b)

        def __ne__(self, o):
            return self._op(o, lambda a, b: a != b)

        def __lt__(self, o):
            return self._op(o, lambda a, b: a < b)

        def __le__(self, o):
            return self._op(o, lambda a, b: a <= b)

        def __gt__(self, o):
            return self._op(o, lambda a, b: a > b)

        def __ge__(self, o):
            return self._op(o, lambda a, b: a >= b)

        def __and__(self, o):
            return self._op(o, lambda a, b: bool(a) and bool(b))

        def __or__(self, o):
            return self._op(o, lambda a, b: bool(a) or bool(b))

        __rand__, __ror__ = __and__, __or__

        def __invert__(self):
            return Grid._make([not a for a in self.data], self.shape)

        __hash__ = None

        def __bool__(self):
            if len(self.data) != 1:
                raise ValueError("the truth value of a Grid with more than one element is ambiguous; use "
                                 ".any() or .all()")
            return bool(self.data[0])

        def __len__(self):
            return self.shape[0]

        def _row(self, i):
            w = self.shape[1]
            return Grid._make(self.data[i * w:(i + 1) * w], (w,))

        def __iter__(self):
            if len(self.shape) == 1:
                return iter(self.data)
            return (self._row(i) for i in range(self.shape[0]))

        def __contains__(self, value):
            return value in self.data

        def __getitem__(self, key):
            if len(self.shape) == 1:
                part = self.data[key]
                return Grid._make(part, (len(part),)) if isinstance(key, slice) else part
            rows = self.tolist()
            r, c = key if isinstance(key, tuple) else (key, slice(None))
            if isinstance(r, slice):
                picked = [row[c] for row in rows[r]]
                return Grid(picked) if isinstance(c, slice) else Grid._make(picked, (len(picked),))
            part = rows[r][c]
            return Grid._make(part, (len(part),)) if isinstance(c, slice) else part

        def tolist(self):
            if len(self.shape) == 1:
                return list(self.data)
            return [self.data[i * self.shape[1]:(i + 1) * self.shape[1]] for i in range(self.shape[0])]

        def any(self):
            return any(self.data)

        def all(self):
            return all(self.data)

        def sum(self):
            return sum(self.data)

        def flatten(self):
            return Grid._make(list(self.data), (len(self.data),))

        @property
        def size(self):
            return len(self.data)

        def __repr__(self):
            return f"Grid({self.tolist()!r})"

    return Grid


# ---------------------------------------------------------------- restricted builtins and modules
class _Subscriptable:
    """Stand-in for typing constructs (Optional[int], List[str] ...): annotations evaluate, nothing more."""

    def __getitem__(self, item):
        return self

    def __call__(self, *a, **k):
        return a[0] if a else None

    def __or__(self, other):
        return self


def _typing_stub():
    anything = _Subscriptable()
    names = {n: anything for n in ("Any", "Optional", "Union", "Callable", "Iterable", "Iterator", "Sequence",
                                   "Mapping", "Literal", "ClassVar", "Final", "TypeVar", "Generic",
                                   "NamedTuple")}
    names.update(List=list, Dict=dict, Tuple=tuple, Set=set, FrozenSet=frozenset, DefaultDict=dict,
                 Deque=list, cast=lambda t, v: v)
    return types.SimpleNamespace(**names)


def _public_proxy(module) -> types.SimpleNamespace:
    names = {n: getattr(module, n) for n in dir(module)
             if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)}
    return types.SimpleNamespace(**names)


def _random_proxy(rng: random.Random) -> types.SimpleNamespace:
    names = ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform", "gauss",
             "normalvariate", "triangular", "betavariate", "expovariate", "getrandbits", "seed")
    return types.SimpleNamespace(**{n: getattr(rng, n) for n in names}, Random=random.Random)


class Output:
    """What print() wrote during one call, capped so a print loop cannot eat the memory."""

    def __init__(self, limit: int = MAX_OUTPUT_CHARS):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.truncated = False

    def write(self, text: str) -> None:
        if self.size >= self.limit:
            self.truncated = True
            return
        text = text[: self.limit - self.size]
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts) + ("\n[output truncated]\n" if self.truncated else "")


_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "pow",
    "property", "range", "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum",
    "super", "tuple", "type", "zip", "NotImplemented", "Ellipsis",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "MemoryError", "NameError", "NotImplementedError", "OverflowError", "RecursionError",
    "RuntimeError", "StopIteration", "TypeError", "UnboundLocalError", "ValueError", "ZeroDivisionError",
    "SystemExit",
)


_REFUSED_BUILTINS = ("open", "eval", "exec", "compile", "globals", "locals", "vars", "input", "breakpoint",
                     "help", "dir", "memoryview", "aiter", "anext")


class ProgramEnvironment:
    """Globals, builtins and modules for one program; records run-time violations even if swallowed."""

    def __init__(self, seed: int = 0, script: bool = False):
        import builtins as real

        self.violations: list[str] = []
        self.output = Output()
        self.grid_cls = make_grid_class()
        self.rng = random.Random(seed)
        self.modules = {
            "random": _random_proxy(self.rng),
            "math": _public_proxy(math),
            "collections": _public_proxy(collections),
            "typing": _typing_stub(),
            "__future__": types.SimpleNamespace(annotations=None),
        }
        safe = {name: getattr(real, name) for name in _SAFE_BUILTIN_NAMES}
        safe.update(
            __build_class__=real.__build_class__,
            __import__=self._import,
            print=self._print,
            getattr=self._getattr,
            setattr=self._setattr,
            delattr=self._delattr,
            hasattr=self._hasattr,
            exit=self._exit,
            quit=self._exit,
        )
        for name in _REFUSED_BUILTINS:  # present, so the error names the attempt instead of a NameError
            safe[name] = self._refuser(name)
        self.builtins = safe
        self.globals = {"__builtins__": safe, "__name__": "__main__" if script else "program"}

    def _violation(self, what: str):
        self.violations.append(what)
        return ForbiddenAccess(what)

    def _refuser(self, name):
        def refused(*args, **kwargs):
            what = "file access" if name == "open" else "introspection and dynamic code"
            raise self._violation(f"calling {name}() is not allowed in programs (no {what})")

        return refused

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level or name not in self.modules:
            raise self._violation(f"import of module '{name}' is not allowed")
        return self.modules[name]

    def _check(self, name):
        if not isinstance(name, str):
            raise TypeError("attribute name must be a string")
        if forbidden_attr(name):
            raise self._violation(f"access to attribute '{name}' is not allowed")

    def _getattr(self, obj, name, *default):
        self._check(name)
        return getattr(obj, name, *default)

    def _setattr(self, obj, name, value):
        self._check(name)
        setattr(obj, name, value)

    def _delattr(self, obj, name):
        self._check(name)
        delattr(obj, name)

    def _hasattr(self, obj, name):
        self._check(name)
        return hasattr(obj, name)

    def _print(self, *args, sep=" ", end="\n", file=None, flush=False):
        self.output.write(sep.join(str(a) for a in args) + end)

    @staticmethod
    def _exit(code=None):
        raise SystemExit(code)


def compile_program(source: str, filename: str) -> types.CodeType:
    validate_source(source, filename)
    # tracebacks show lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def program_traceback(exc: BaseException, filename: str) -> str:
    """The traceback limited to the program's own frames (ours are noise to the reader)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    text = "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(exc), exc))


# ---------------------------------------------------------------- the per-step options logic
def instantiate_player(namespace: dict, max_depth: int = -1, branch_depth: int = -2):
    """NetHackPlayer(max_depth=-1, branch_depth=-2) as the official wrapper does; tolerate LLM signatures."""
    cls = namespace.get("NetHackPlayer")
    if not isinstance(cls, type):
        raise TypeError("the program defines no class NetHackPlayer")
    for args, kwargs in (((), dict(max_depth=max_depth, branch_depth=branch_depth)),
                         ((max_depth, branch_depth), {}), ((max_depth,), {}), ((), {})):
        try:
            player = cls(*args, **kwargs)
            break
        except TypeError as e:
            last = e
    else:
        raise TypeError("NetHackPlayer cannot be constructed as NetHackPlayer(max_depth, branch_depth): "
                        f"{last}")
    player.branch_depth = branch_depth
    if hasattr(player, "set_initial_values"):
        player.set_initial_values()
    skill = getattr(player, "skill", "discoverer")
    return player, check_skill(skill, "set_initial_values: self.skill")


def check_skill(skill, where: str) -> str:
    if not isinstance(skill, str) or skill.strip().lower() not in SKILLS:
        raise ValueError(f"{where} returned {skill!r:.80}, which is not one of the skills "
                         f"{', '.join(SKILLS)}")
    return skill.strip().lower()


def options_step(player, grid_cls, x: dict) -> dict:
    """One env step of call-and-return (docs/method.md §5.4): preconditions, hooks, termination, next skill.

    `x` holds plain data: window chars/colors (7x7 lists), num_items, color_map, skill, skill_time, depth,
    previous_depth, dungeon_number, branch_depth (-2 = unknown), branch_depth_if_end, gold, kill, xp_level,
    ate_in_mines. Returns {"worshipper", "merchant", "end", "next", "branch_depth"}.
    """
    if x["branch_depth"] != -2:
        player.branch_depth = x["branch_depth"]
    pre = player.skill_precondition(grid_cls(x["chars"]), grid_cls(x["colors"]), x["num_items"],
                                    dict(x["color_map"]))
    try:
        worshipper_pre, merchant_pre = pre
    except (TypeError, ValueError):
        raise TypeError("skill_precondition must return (worshipper_precondition, merchant_precondition), "
                        f"got {pre!r:.80}")
    worshipper_pre, merchant_pre = bool(worshipper_pre), bool(merchant_pre)
    # Composite-task hooks, fed as the official wrapper does when the program has them.
    if hasattr(player, "update_gold"):
        player.update_gold(x["gold"])
    if x["kill"] and hasattr(player, "defeat_monster"):
        player.defeat_monster()
    if hasattr(player, "update_xp_level"):
        player.update_xp_level(x["xp_level"])
    if x["ate_in_mines"]:
        player.eaten_food = True
    end = bool(player.skill_termination(x["skill"], x["skill_time"], x["depth"], x["previous_depth"],
                                        [worshipper_pre, merchant_pre]))
    out = {"worshipper": worshipper_pre, "merchant": merchant_pre, "end": end, "next": None,
           "branch_depth": x["branch_depth"]}
    if end:
        if x["branch_depth_if_end"] != -2 and x["branch_depth"] == -2:
            out["branch_depth"] = player.branch_depth = x["branch_depth_if_end"]
        nxt = player.perform_task(x["skill"], x["depth"], x["dungeon_number"], merchant_pre, worshipper_pre)
        out["next"] = check_skill(nxt, "perform_task")
    return out


def to_plain(value, depth: int = 0):
    """JSON-safe copy of a program's return value (strings, numbers, bools, lists, dicts)."""
    if depth > 20:
        raise ValueError("return value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return to_plain(value.tolist(), depth + 1)
    return repr(value)[:200]


# ---------------------------------------------------------------- programs and players by id
class ProgramRuntime:
    """Loaded programs and their player objects, addressed by id; every operation returns plain data.

    `handle(request)` is the whole protocol: the sandbox worker feeds it JSON requests, the in-process
    runner calls it directly, so both paths run the same code and report errors the same way.
    """

    def __init__(self):
        self.programs: dict[str, tuple[ProgramEnvironment, str]] = {}
        self.players: dict[str, tuple[object, str]] = {}

    # each op returns a JSON-safe value; errors are classified by `handle`
    def op_load(self, program_id: str, source: str, name: str, seed: int = 0):
        env = ProgramEnvironment(seed)
        filename = f"<program {name}>"
        code = compile_program(source, filename)
        self._active = (env, filename)
        exec(code, env.globals)
        if not isinstance(env.globals.get("NetHackPlayer"), type):
            raise TypeError("the program defines no class NetHackPlayer")
        self.programs[program_id] = (env, filename)
        return {"methods": sorted(n for n in vars(env.globals["NetHackPlayer"]) if not n.startswith("_"))}

    def op_new(self, program_id: str, player_id: str, seed: int = 0, max_depth: int = -1,
               branch_depth: int = -2):
        env, filename = self._program(program_id)
        env.rng.seed(seed)
        player, skill = instantiate_player(env.globals, max_depth, branch_depth)
        self.players[player_id] = (player, program_id)
        return {"skill": skill}

    def op_step(self, player_id: str, inputs: dict):
        player, program_id = self._player(player_id)
        env, _ = self.programs[program_id]
        return options_step(player, env.grid_cls, inputs)

    def op_call(self, player_id: str, method: str, args: list = (), kwargs: dict | None = None):
        player, program_id = self._player(player_id)
        if method.startswith("_"):
            raise ForbiddenAccess(f"calling '{method}' is not allowed")
        env, _ = self.programs[program_id]
        # {"grid": rows} marks a 2-D array argument (the 7x7 windows of skill_precondition)
        args = [env.grid_cls(a["grid"]) if isinstance(a, dict) and set(a) == {"grid"} else a for a in args]
        return to_plain(getattr(player, method)(*args, **(kwargs or {})))

    def op_get(self, player_id: str, attribute: str):
        player, _ = self._player(player_id)
        if forbidden_attr(attribute):
            raise ForbiddenAccess(f"access to attribute '{attribute}' is not allowed")
        return to_plain(getattr(player, attribute))

    def op_script(self, source: str, name: str = "unit_test", seed: int = 0):
        """Run `source` as a script (class + unit test), as `python execution.py` would; return its stdout."""
        env = ProgramEnvironment(seed, script=True)
        filename = f"<script {name}>"
        self._active = (env, filename)
        code = compile_program(source, filename)
        try:
            exec(code, env.globals)
        except SystemExit as e:
            if e.code not in (None, 0):
                raise
        return {"stdout": env.output.text()}

    def op_drop(self, player_id: str | None = None, program_id: str | None = None):
        self.players.pop(player_id, None)
        if program_id is not None:
            self.programs.pop(program_id, None)
            for pid in [p for p, (_, prog) in self.players.items() if prog == program_id]:
                del self.players[pid]
        return None

    def op_batch(self, requests: list):
        """Several requests in one: each answered in order as `handle` answers it alone (its own ok or
        error), so a batch of envs' options steps costs one sandbox round trip instead of one per env."""
        if not isinstance(requests, list) or any(not isinstance(r, dict) or r.get("op") == "batch"
                                                 for r in requests):
            raise TypeError("batch: expected a list of requests, none of them a batch")
        answers = [self.handle(r) for r in requests]
        self._active = None  # each answer carries its own errors: none of them is the batch's
        return answers

    def op_ping(self):
        return "pong"

    def _program(self, program_id):
        if program_id not in self.programs:
            raise KeyError(f"no program {program_id!r} is loaded")
        self._active = self.programs[program_id]
        return self.programs[program_id]

    def _player(self, player_id):
        if player_id not in self.players:
            raise KeyError(f"no player {player_id!r}")
        player, program_id = self.players[player_id]
        self._program(program_id)
        return player, program_id

    def handle(self, request: dict) -> dict:
        """{"op": name, **args} -> {"ok": True, "result": ...} or {"ok": False, "kind", "message",
        "traceback"}."""
        self._active = None
        op = getattr(self, "op_" + str(request.get("op")), None)
        if op is None:
            return {"ok": False, "kind": "protocol", "message": f"unknown operation {request.get('op')!r}"}
        args = {k: v for k, v in request.items() if k != "op"}
        try:
            if self._active_env(args):
                self._active[0].violations.clear()
            result = op(**args)
            env = self._active[0] if self._active else None
            if env is not None and env.violations:
                return {"ok": False, "kind": "security",
                        "message": env.violations[0] + " (the program caught the error)"}
            return {"ok": True, "result": result}
        except BaseException as exc:  # noqa: BLE001 - untrusted code can raise anything; classify it
            env = self._active[0] if self._active else None
            filename = self._active[1] if self._active else "<program>"
            kind = classify(exc, env)
            message = f"{type(exc).__name__}: {exc}"
            if kind == "security" and env is not None and env.violations:
                message = env.violations[0]
            return {"ok": False, "kind": kind, "message": message[:2000],
                    "traceback": program_traceback(exc, filename)[-4000:] if kind != "memory" else ""}

    def _active_env(self, args) -> bool:
        pid = args.get("program_id") or (self.players.get(args.get("player_id"), (None, None))[1])
        if pid in self.programs:
            self._active = self.programs[pid]
            return True
        return False


def classify(exc: BaseException, env: ProgramEnvironment | None) -> str:
    if isinstance(exc, (ForbiddenCode, ForbiddenAccess)) or (env is not None and env.violations):
        return "security"
    if isinstance(exc, SyntaxError):
        return "syntax"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
        return "exit"
    return "program"

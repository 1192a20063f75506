"""NetHack's clock follows the seed (benchmark/game_clock.py): real NLE, read back from the loaded game."""
from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import subprocess
import sys
import time

import pytest

from benchmark import game_clock
from benchmark.env import make


def _birthday(env) -> int:
    """The `ubirthday` NetHack stored when this env's game started, read from the library NLE loaded."""
    lib = ctypes.CDLL(env.unwrapped.nethack.dlpath)  # the already-loaded copy: dlopen returns its handle
    try:
        return ctypes.c_long.in_dll(lib, "ubirthday").value
    finally:  # NLE reloads the library at every reset and refuses one still referenced
        _ctypes.dlclose(lib._handle)


def _core_seed(env) -> int:
    wrapper = env
    while not hasattr(wrapper, "episode_seeds"):
        wrapper = wrapper.env
    return wrapper.episode_seeds[0]


needs_cc = pytest.mark.skipif(not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")),
                              reason="no C compiler: the game clock stays the wall clock (tested below)")


@needs_cc
def test_a_seeded_game_starts_at_the_clock_of_its_seed():
    env = make("transactions_small", seed=3)
    try:
        env.reset()
        first = _birthday(env)
        assert game_clock.status() == "seeded"
        assert first == game_clock.clock_for_seed(_core_seed(env))
        env.reset()  # the next episode plays seed 4: another clock, again a function of the seed only
        assert _birthday(env) == game_clock.clock_for_seed(_core_seed(env)) != first
    finally:
        env.close()


def test_an_unseeded_game_keeps_the_wall_clock():
    env = make("transactions_small", seed=3)
    env.reset()  # leaves the shared clock fixed for seed 3
    other = make("transactions_small")
    try:
        other.reset()
        assert abs(_birthday(other) - time.time()) < 60
    finally:
        env.close()
        other.close()


GREETINGS = """\
import numpy as np
from benchmark import game_clock
from benchmark.env import decode_message, make
env = make("transactions_small", seed=3)
env.reset()
for step in range(300):  # the same seeded walk each time, until the shopkeeper greets
    obs, _, terminated, truncated, _ = env.step(int(np.random.default_rng(step).integers(8)))
    if "Welcome to" in decode_message(obs["message"]) or terminated or truncated:
        break
print(decode_message(obs["message"]))
print(game_clock.status())
"""


@needs_cc
def test_the_same_seed_meets_the_same_shopkeeper_in_another_process():
    """The greeting names the shopkeeper; unpatched, the name changes every 257 s of wall clock."""
    outs = [subprocess.run([sys.executable, "-c", GREETINGS], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.getcwd()}) for _ in range(2)]
    for proc in outs:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.splitlines()[-1] == "seeded"
    assert "Welcome to" in outs[0].stdout
    assert outs[0].stdout == outs[1].stdout


def test_without_a_compiler_the_clock_stays_the_wall_clock_with_a_warning(tmp_path):
    code = ("import logging; logging.basicConfig()\n"
            "from benchmark import game_clock\n"
            "print(game_clock.install(), game_clock.status())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MM_CACHE_DIR": str(tmp_path), "CC": str(tmp_path / "no-cc"),
                               "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("False wall clock (")
    assert "shopkeepers' names depend on the time of day" in proc.stderr


def test_patch_names_what_it_cannot_patch():
    with pytest.raises(game_clock.ClockPatchError, match="ELF"):
        game_clock.patch_library(b"not a library")
    from nle import _pynethack

    original = open(os.path.join(os.path.dirname(_pynethack.__file__), "libnethack.so"), "rb").read()
    once = game_clock.patch_library(original)
    with pytest.raises(game_clock.ClockPatchError, match="one undefined 'time' symbol, found 0"):
        game_clock.patch_library(once)  # already renamed: nothing left to patch

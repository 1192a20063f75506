"""NetHack's clock as a function of the game's seed, so a seeded game is the same game at any time of day.

NetHack reads the wall clock once when a game starts (`ubirthday`, through libc's `time()`) and derives
every shopkeeper's name and sex from it (shknam.c `nameshk`: `ubirthday / 257`, a new value every
257 s); where the wanted name is taken, the search draws from the game's RNG, and the game diverges from
there. NLE seeds the RNGs and, with `fix_moon_phase`, the moon, Friday 13th and night, not this: the same
seeds replayed ten minutes apart met other shopkeepers (docs/design.md §6.2, "Determinism").

`install()` (once per process, before the first NLE instance) makes NLE load a patched copy of
libnethack.so whose import of `time` is renamed to `birthday` (a suffix of the `ubirthday` string already
in its string table, so nothing grows), a function of a tiny C library compiled here and loaded with
RTLD_GLOBAL so that the renamed import binds to it. `set_seed(core)` before a reset fixes that clock to
`clock_for_seed(core)`; `set_seed(None)` (an unseeded game) returns it to the wall clock. Both files are
cached by content under `cache_dir()`; a machine without a C compiler keeps the wall clock, with one
warning.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# The clock of a seeded game: a date in 2020-2029, distinct for each core seed modulo 2**20, spaced by
# NetHack's 257-s step so that neighbouring seeds can meet different shopkeepers, as games started at
# different times would.
CLOCK_BASE = 1_600_000_000
CLOCK_STEP = 257
CLOCK_SPAN = 2**20

SHIM_SYMBOL = "birthday"  # must be a suffix of a string in libnethack's .dynstr (here: "ubirthday")
SHIM_SOURCE = f"""\
#include <time.h>
int mm_clock_fixed = 0;
long long mm_clock_now = 0;
/* Stands in for time() inside libnethack only: its import of "time" is renamed to this. */
time_t {SHIM_SYMBOL}(time_t *out) {{
    time_t now = mm_clock_fixed ? (time_t) mm_clock_now : time(NULL);
    if (out) *out = now;
    return now;
}}
"""
PATCH_VERSION = "1"  # bump when patch_library changes what it writes

_shim: ctypes.CDLL | None = None
_status: str = "not installed"


class ClockPatchError(RuntimeError):
    """libnethack.so does not have the layout the patch expects (another NLE build)."""


def clock_for_seed(core: int) -> int:
    """The Unix time NetHack sees in the game seeded with core seed `core`."""
    return CLOCK_BASE + (int(core) % CLOCK_SPAN) * CLOCK_STEP


def cache_dir() -> Path:
    """Where the patched library and the compiled clock live: $MM_CACHE_DIR, else ~/.cache/maestromotif."""
    root = os.environ.get("MM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "maestromotif")
    return Path(root) / "game_clock"


def _sections(elf: bytes) -> dict[str, tuple[int, int]]:
    """Section name -> (file offset, size) of a little-endian ELF64 file."""
    if elf[:5] != b"\x7fELF\x02" or elf[5] != 1:
        raise ClockPatchError("not a little-endian 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    out = {}
    for name, _type, _flags, _addr, off, size, *_ in headers:
        start = names_off + name
        out[elf[start:elf.index(b"\0", start)].decode()] = (off, size)
    return out


def patch_library(elf: bytes) -> bytes:
    """libnethack.so with its undefined `time` symbol renamed to SHIM_SYMBOL and made unversioned."""
    sec = _sections(elf)
    try:
        (sym_off, sym_size), (str_off, str_size), (ver_off, _) = (
            sec[".dynsym"], sec[".dynstr"], sec[".gnu.version"])
    except KeyError as missing:
        raise ClockPatchError(f"no {missing} section") from None
    strings = elf[str_off:str_off + str_size]
    host = strings.find(b"u" + SHIM_SYMBOL.encode() + b"\0")
    if host < 0:
        raise ClockPatchError(f"no string ending in {SHIM_SYMBOL!r} in .dynstr")
    new_name = host + 1
    out = bytearray(elf)
    patched = 0
    for i in range(sym_size // 24):
        entry = sym_off + 24 * i
        st_name, _info, _other, st_shndx = struct.unpack_from("<IBBH", elf, entry)
        if st_shndx == 0 and strings[st_name:strings.index(b"\0", st_name)] == b"time":
            struct.pack_into("<I", out, entry, new_name)
            struct.pack_into("<H", out, ver_off + 2 * i, 1)  # VER_NDX_GLOBAL: bind to an unversioned symbol
            patched += 1
    if patched != 1:
        raise ClockPatchError(f"expected one undefined 'time' symbol, found {patched}")
    return bytes(out)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _compile_shim(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise ClockPatchError("no C compiler (cc or gcc, or $CC) to build the clock library")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, lib = Path(tmp) / "clock.c", Path(tmp) / "clock.so"
        src.write_text(SHIM_SOURCE)
        proc = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ClockPatchError(f"{compiler} failed to build the clock library: "
                                  f"{proc.stderr.strip()[:500]}")
        os.replace(lib, target)


def install() -> bool:
    """Route libnethack's clock through `set_seed` for every NLE instance created after this call.

    Idempotent; returns whether the clock is now controlled. Must run before NLE copies its library,
    i.e. before the first `nle` environment of the process is constructed."""
    global _shim, _status
    if _shim is not None:
        return True
    if _status != "not installed":  # failed before: warned once already
        return False
    import nle.nethack.nethack as nle_nethack

    try:
        original = Path(nle_nethack.DLPATH).read_bytes()
        key = hashlib.sha256(original + SHIM_SOURCE.encode() + PATCH_VERSION.encode()).hexdigest()[:16]
        folder = cache_dir() / key
        lib, clock = folder / "libnethack.so", folder / "clock.so"
        if not lib.exists():
            _write_atomically(lib, patch_library(original))
        if not clock.exists():
            _compile_shim(clock)
        shim = ctypes.CDLL(str(clock), mode=ctypes.RTLD_GLOBAL)
    except (ClockPatchError, OSError, subprocess.SubprocessError) as err:
        _status = f"wall clock ({err})"
        log.warning("NetHack keeps the wall clock, so shopkeepers' names depend on the time of day: %s", err)
        return False
    nle_nethack.DLPATH = str(lib)
    _shim, _status = shim, "seeded"
    return True


def set_seed(core: int | None) -> None:
    """Fix the clock of the next game(s) to `clock_for_seed(core)`; None: the wall clock."""
    if _shim is None:
        return
    ctypes.c_int.in_dll(_shim, "mm_clock_fixed").value = 0 if core is None else 1
    ctypes.c_longlong.in_dll(_shim, "mm_clock_now").value = 0 if core is None else clock_for_seed(core)


def status() -> str:
    """'seeded', 'not installed', or 'wall clock (<why>)'."""
    return _status

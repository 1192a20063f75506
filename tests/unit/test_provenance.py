"""Provenance blocks carry what docs/design.md §6.3 asks for; fingerprints and digests are stable."""
from pathlib import Path

from benchmark import provenance


def test_record_has_the_fields_every_result_needs():
    rec = provenance.record(stage="evaluate", profile="ci", root_seed=3, method="random", task="gnomish",
                            seed=0, llm_models={}, episodes=2)
    for key in ("stage", "profile", "root_seed", "method", "task", "seed", "llm_models", "episodes",
                "git_describe", "nle_version", "packages", "created_utc"):
        assert key in rec, key
    assert rec["nle_version"] == "1.3.0"
    assert rec["git_describe"]  # a commit id, or "unknown" outside git


def test_fingerprint_ignores_key_order_and_sees_values():
    a = provenance.fingerprint({"x": 1, "y": [1, 2]})
    assert a == provenance.fingerprint({"y": [1, 2], "x": 1})
    assert a != provenance.fingerprint({"x": 2, "y": [1, 2]})


def test_tree_digest_follows_content_but_not_provenance(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"weights")
    first = provenance.tree_digest(tmp_path)
    (tmp_path / "provenance.json").write_text('{"created_utc": "now"}')
    assert provenance.tree_digest(tmp_path) == first
    (tmp_path / "model.bin").write_bytes(b"retrained")
    assert provenance.tree_digest(tmp_path) != first
    assert provenance.tree_digest(tmp_path / "absent") is None


def test_the_hash_helpers_keep_the_hashes_on_disk():
    """Label runs, reward checkpoints, programs and regression rows are keyed by these hashes: the helpers
    must give what the hand-written sha256 prefixes gave (a changed hash would silently redo or orphan
    work)."""
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    settings = {"b": [1, 2.5, None], "a": {"z": "x"}, "p": Path("/x")}
    legacy = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert provenance.fingerprint(settings) == legacy
    assert provenance.sha256_hex("a\nb") == hashlib.sha256(b"a\nb").hexdigest()[:16]
    assert provenance.sha256_hex(b"x", length=None) == hashlib.sha256(b"x").hexdigest()
    assert provenance.digest("a", b"bc") == hashlib.sha256(b"a\0bc\0").hexdigest()[:16]
    assert provenance.digest("ab", "c") != provenance.digest("a", "bc")
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert provenance.array_digest(array) == provenance.digest(array.tobytes() + b"int16(2, 3)")
    frame = pd.DataFrame({"m": ["a", "b"], "d": [0, 1]})
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    assert provenance.frame_digest(frame) == provenance.digest(rows, "m,d")


def test_one_episode_seed_for_every_stage():
    from benchmark.seeding import derive_seed, episode_seed

    assert episode_seed(0, "evaluate", "gnomish", 2, episode=5) == derive_seed(0, "evaluate", "gnomish", 2, 5)
    assert episode_seed(0, "calibrate", "buc_small", episode=5) == derive_seed(0, "calibrate", "buc_small", 5)
    assert (episode_seed(7, "regression", "buc_small", 0, episode=1)
            != episode_seed(7, "regression", "buc_small", 1, episode=1))


def test_git_describe_ignores_what_the_pipeline_rewrites(tmp_path):
    """dvc.lock and results/ change while `dvc repro` runs: the code that ran is still the commit."""
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "dvc.lock").write_text("a\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    describe = provenance.git_describe.__wrapped__  # uncached: the repo changes between calls
    clean = describe(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "results" / "table.csv").write_text("b\n")
    (tmp_path / "results" / "new.md").write_text("new\n")
    assert describe(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert describe(tmp_path) == clean + "-dirty"
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "new_module.py").write_text("y = 1\n")  # an untracked file is code too
    assert describe(tmp_path) == clean + "-dirty"

"""Provenance blocks carry what docs/design.md §6.3 asks for; fingerprints and digests are stable."""
from benchmark import provenance


def test_record_has_the_fields_every_result_needs():
    rec = provenance.record(stage="evaluate", profile="ci", root_seed=3, method="random", task="gnomish", seed=0,
                            llm_models={}, episodes=2)
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

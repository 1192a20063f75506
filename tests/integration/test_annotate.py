"""The annotate stage: rule oracle end to end, a real SIGKILL mid-run followed by a resume, and the real
embedded LLM in direct (one order, and order-symmetrised) and chain-of-thought modes (one shared engine:
the `embedded_engine` fixture)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import REPO_ROOT, defaults, section
from maestromotif.annotate import AnnotateConfig, annotate, annotate_chunk, pair_captions
from maestromotif.chain import label_dir
from maestromotif.data.pairs import load_pairs, make_pairs
from maestromotif.labels import labelled_pairs, motif_label_dir
from maestromotif.data.schema import PAIR_SCHEMA, file_metadata, read_table, write_table
from maestromotif.prompts import FIRST, SECOND, TIE, UNKNOWN, direct_label, symmetric_label
from tests.fixtures.data import ci_params

LABEL_COLUMNS = ["pair_id", "message_1", "message_2", "dlvl_change_1", "dlvl_change_2", "label"]


def test_oracle_annotation_end_to_end(ci_data, tmp_path):
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.annotator=oracle")
    out = annotate(params, skill="discoverer", out_dir=tmp_path / "labels")
    metrics = json.loads((out / "metrics.json").read_text())
    n = ci_data.params.pairs.sizes.discoverer
    assert metrics["pairs"] == n and sum(metrics["histogram"].values()) == n
    assert metrics["parse_rate"] == 1.0 and metrics["mode"] == "rule" and metrics["profile"] == "ci"
    df = labelled_pairs(out)
    assert list(df.columns) == LABEL_COLUMNS and len(df) == n
    assert set(df.label) <= {FIRST, SECOND, TIE}
    assert set(df.dlvl_change_1) | set(df.dlvl_change_2) <= {-1, 0, 1}
    assert df.message_1.map(type).eq(str).all()
    raw = pd.read_parquet(out / "labels.parquet")
    assert {"answer", "model_id", "prompt_hash", "seed", "prompt_tokens", "completion_tokens",
            "mode"} <= set(raw)
    assert (raw.model_id[raw.asked] == "rule-oracle").all()


def test_a_rerun_with_nothing_to_ask_rewrites_identical_files(ci_data, tmp_path):
    """DVC hashes the label folder: a no-op rerun must not change a byte, or every reward model retrains."""
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.annotator=oracle")
    out = annotate(params, skill="descender", out_dir=tmp_path / "labels")
    before = {p.name: p.read_bytes() for p in (out / "metrics.json", out / "labels.parquet")}
    assert json.loads(before["metrics.json"])["this_run"]["pairs"] == ci_data.params.pairs.sizes.descender
    annotate(params, skill="descender", out_dir=tmp_path / "labels")
    assert {p.name: p.read_bytes() for p in (out / "metrics.json", out / "labels.parquet")} == before


def _run_stage(params_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "maestromotif.annotate", "--skill", "discoverer", "--params", str(params_path),
         "--out", str(out)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.timeout(300)
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(ci_data, tmp_path):
    """Kill a real run of the stage with SIGKILL while it writes chunks; the rerun must finish the job
    with no duplicate and no lost pair, and give exactly the labels of an uninterrupted run."""
    n_pairs = 1500
    params_path = tmp_path / "params.yaml"
    params = ci_params(tmp_path / "data", params_path, "annotate.annotator=oracle", "annotate.chunk_size=1")
    pairs_path = make_pairs(params, obs_dir=ci_data.obs_dir) / "discoverer.parquet"
    # The ci data holds too few samples for 1500 distinct pairs (pairs.py refuses to draw with replacement);
    # this test needs a long run to kill, not distinct pairs: repeat the ci pairs under new ids.
    few = read_table(pairs_path, PAIR_SCHEMA, "pairs")
    many = pd.concat([few] * (n_pairs // len(few) + 1), ignore_index=True).iloc[:n_pairs]
    many["pair_id"] = np.arange(n_pairs, dtype=np.int64)
    write_table(many, pairs_path, PAIR_SCHEMA, metadata={**file_metadata(pairs_path), "pairs": n_pairs})

    killed_dir = tmp_path / "killed"
    proc = _run_stage(params_path, killed_dir)
    deadline = time.monotonic() + 120
    chunks = killed_dir / "chunks"
    while time.monotonic() < deadline and proc.poll() is None:
        if chunks.is_dir() and sum(1 for _ in chunks.glob("chunk_*.jsonl")) >= 20:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed; raise n_pairs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = sum(1 for _ in chunks.glob("chunk_*.jsonl"))
    assert 0 < done_before < n_pairs and not (killed_dir / "labels.parquet").exists()

    assert _run_stage(params_path, killed_dir).wait(timeout=240) == 0  # resume
    clean_dir = tmp_path / "clean"
    assert _run_stage(params_path, clean_dir).wait(timeout=240) == 0  # uninterrupted reference

    resumed = pd.read_parquet(killed_dir / "labels.parquet")
    clean = pd.read_parquet(clean_dir / "labels.parquet")
    assert len(resumed) == n_pairs and not resumed.pair_id.duplicated().any()
    assert sorted(resumed.pair_id) == list(range(n_pairs))
    pd.testing.assert_frame_equal(resumed, clean)


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_direct_mode_with_the_embedded_llm_is_deterministic_per_chunk(ci_data, tmp_path, embedded_engine):
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.mode=direct", "annotate.chunk_size=8",
                       "annotate.symmetrise=false")
    out = annotate(params, skill="descender", out_dir=tmp_path / "labels", engine=embedded_engine)
    raw = pd.read_parquet(out / "labels.parquet")
    asked = raw[raw.asked]
    assert len(raw) == ci_data.params.pairs.sizes.descender and len(asked) > 0
    assert set(raw.label) <= {FIRST, SECOND, TIE, UNKNOWN}
    assert (asked.completion_tokens == 1).all() and (asked.prompt_tokens > 100).all()
    assert asked.model_id.str.contains("SmolLM2").all() and (asked["mode"] == "direct").all()
    known = asked[asked.label != UNKNOWN]
    for _, row in known.iterrows():  # the label is the argmax of the stored log-probs of 1 / 2 / None
        lp = json.loads(row.label_logprobs)
        assert {"1": FIRST, "2": SECOND, "none": TIE}[max(lp, key=lp.get)] == row.label
        assert json.loads(row.top_logprobs)
    metrics = json.loads((out / "metrics.json").read_text())
    print("direct-mode metrics (ci, descender):",
          {k: metrics[k] for k in ("histogram", "parse_rate", "tokens_per_asked_pair", "this_run")})
    # resume: losing a chunk and rerunning reproduces it exactly (seed per chunk, greedy read-out)
    (out / "chunks" / "chunk_00001.jsonl").unlink()
    (out / "labels.parquet").unlink()
    annotate(params, skill="descender", out_dir=out, engine=embedded_engine)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "labels.parquet"), raw)


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_symmetrised_direct_mode_asks_both_orders_and_labels_by_the_margin(ci_data, tmp_path,
                                                                           embedded_engine):
    """The ci/small default: each pair asked as (A, B) and (B, A) in one batch; the label is the sign of the
    bias-free margin, both raw read-outs are stored, and a lost chunk is redone exactly."""
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.mode=direct",
                       "annotate.symmetrise=true", "annotate.tau=0.01", "annotate.chunk_size=8")
    out = annotate(params, skill="descender", out_dir=tmp_path / "sym", engine=embedded_engine)
    raw = pd.read_parquet(out / "labels.parquet")
    asked = raw[raw.asked]
    assert len(asked) > 0 and asked.symmetrised.all() and (~raw[~raw.asked].symmetrised).all()
    assert (asked.completion_tokens == 2).all() and (asked.prompt_tokens > 200).all()
    for _, row in asked.iterrows():
        ab, ba = json.loads(row.top_logprobs), json.loads(row.top_logprobs_swapped)
        label, info = symmetric_label(ab, ba, 0.01)
        assert label == row.label and info["margin"] == pytest.approx(row.margin, nan_ok=True)
        assert direct_label(ab)[0] == row.label_first_order  # what the one-order mode would have said
        assert row.answer_swapped is not None and json.loads(row.label_logprobs_swapped) is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["symmetrised"] and metrics["tau"] == 0.01
    assert metrics["completion_tokens_per_asked_pair"] == 2
    assert sum(metrics["histogram_first_order"].values()) == len(raw)
    assert metrics["oracle_agreement"]["n"] == metrics["oracle_agreement_first_order"]["n"]
    print("symmetrised metrics (ci, descender):", {k: metrics[k] for k in (
        "histogram", "histogram_first_order", "position_bias", "margin", "oracle_agreement", "this_run")})
    (out / "chunks" / "chunk_00000.jsonl").unlink()
    (out / "labels.parquet").unlink()
    annotate(params, skill="descender", out_dir=out, engine=embedded_engine)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "labels.parquet"), raw)


def test_symmetrise_needs_direct_mode(ci_data, tmp_path):
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.mode=chain_of_thought",
                       "annotate.symmetrise=true")
    with pytest.raises(ValueError, match="annotate.mode=direct"):
        annotate(params, skill="descender", out_dir=tmp_path / "x")
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.tau=-1")
    with pytest.raises(ValueError, match="annotate.tau"):
        annotate(params, skill="descender", out_dir=tmp_path / "x")


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_chain_of_thought_mode_parses_or_retries(ci_data, tmp_path, embedded_engine):
    params = ci_params(tmp_path / "data", tmp_path / "p.yaml", "annotate.mode=chain_of_thought",
                       "annotate.symmetrise=false",
                       "annotate.max_tokens=24", "annotate.retry_max_tokens=12", "annotate.chunk_size=4",
                       "pairs.sizes.ascender=4")
    make_pairs(params, obs_dir=ci_data.obs_dir)
    out = annotate(params, skill="ascender", engine=embedded_engine)
    assert out == label_dir(params, "maestromotif", "ascender")
    raw = pd.read_parquet(out / "labels.parquet")
    asked = raw[raw.asked]
    assert len(raw) == 4 and (asked.completion_tokens >= 1).all()
    assert (asked.retried == asked.retry_answer.notna()).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["retries"] == int(asked.retried.sum()) and metrics["mode"] == "chain_of_thought"


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_motif_variant_for_a_task(ci_data, tmp_path, embedded_engine):
    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.mode=direct")
    out = annotate(params, variant="motif", task="gnomish", out_dir=tmp_path / "motif",
                   engine=embedded_engine)
    raw = pd.read_parquet(out / "labels.parquet")
    assert len(raw) == ci_data.params.pairs.motif and (raw.key == "gnomish").all()
    same = raw.message_1.str.strip() == raw.message_2.str.strip()
    assert (raw[same].label == TIE).all() and (~raw[same].asked).all()  # Motif: identical captions tie
    assert len(labelled_pairs(out)) == (raw.label != UNKNOWN).sum()


def test_a_shared_lazy_engine_is_started_only_when_a_chunk_needs_the_llm(ci_data, tmp_path):
    """`--skill all` hands every skill one lazy engine factory; finished or LLM-free work never starts it."""
    started = []

    def fake_engine_factory():  # a fake: only the control flow is under test
        started.append(True)
        raise AssertionError("the LLM was started although no chunk needed it")

    params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.annotator=oracle")
    annotate(params, skill="ascender", out_dir=tmp_path / "labels", engine=fake_engine_factory)
    assert started == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_command_writes_the_skills_and_the_motif_tasks_label_sets(ci_data, tmp_path):
    """The DVC stage's command: `--skill ... --motif-tasks ...` annotates every named label set in one run
    of the real embedded LLM (its own process, as in the DVC stage, so the session's engine is untouched)."""
    import shutil

    shutil.copytree(Path(ci_data.data_dir) / "pairs", tmp_path / "data" / "pairs")
    params_path = tmp_path / "params.yaml"
    params = ci_params(tmp_path / "data", params_path)
    run = subprocess.run([sys.executable, "-m", "maestromotif.annotate", "--skill", "descender",
                          "--motif-tasks", "gnomish", "delphi", "--params", str(params_path)],
                         cwd=REPO_ROOT, timeout=540, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("starting the annotator LLM (shared by 3 label sets)") == 1
    expected = {label_dir(params, "maestromotif", "descender"): ci_data.params.pairs.sizes.descender,
                motif_label_dir(params.data_dir, "gnomish"): ci_data.params.pairs.motif,
                motif_label_dir(params.data_dir, "delphi"): ci_data.params.pairs.motif}
    for folder, n in expected.items():
        raw = pd.read_parquet(folder / "labels.parquet")
        assert len(raw) == n, folder
    assert not label_dir(params, "maestromotif", "ascender").exists()  # only what was named


def _identical_pair_ids(pairs_file: Path, variant: str) -> set[int]:
    pairs = load_pairs(pairs_file)
    d1, d2 = pair_captions(pairs, variant)
    return {int(p) for p, a, b in zip(pairs.pair_id, d1, d2) if a == b}


@pytest.fixture
def many_pairs(ci_data, tmp_path):
    """69 uniformly sampled discoverer and Motif pairs (138 of the 139 eligible ci samples): some have
    identical captions."""
    sizes = ("pairs.sizes.discoverer=69", "pairs.motif=69", "pairs.sampling=uniform")
    make_pairs(ci_params(tmp_path / "data", tmp_path / "pairs.yaml", *sizes), obs_dir=ci_data.obs_dir)
    return lambda name, *overrides: ci_params(tmp_path / "data", tmp_path / f"{name}.yaml", *sizes,
                                              *overrides)


def test_maestromotif_asks_about_identical_captions_unless_tie_identical_all(many_pairs, tmp_path):
    """MaestroMotif's annotator asks about every pair (the default); `all` ties identical captions unasked."""
    params = many_pairs("default", "annotate.annotator=oracle")
    same = _identical_pair_ids(Path(params.data_dir) / "pairs" / "discoverer.parquet", "maestromotif")
    assert same, "no identical captions among the pairs: raise their number"
    for setting, asked in (("motif", True), ("all", False)):
        params = many_pairs(setting, "annotate.annotator=oracle", f"annotate.tie_identical={setting}")
        raw = pd.read_parquet(annotate(params, skill="discoverer",
                                       out_dir=tmp_path / setting) / "labels.parquet")
        raw = raw[raw.pair_id.isin(same)]
        assert len(raw) == len(same) and (raw.asked == asked).all()
        assert (raw["mode"] == ("rule" if asked else "identical")).all()
        if not asked:
            assert (raw.label == TIE).all()


def test_motif_ties_identical_captions_without_asking(many_pairs):
    """Motif's label sets tie identical captions without starting the LLM; `never` asks about them too."""
    params = many_pairs("default")
    pairs_file = Path(params.data_dir) / "pairs" / "motif.parquet"
    pairs = load_pairs(pairs_file)
    pairs = pairs[pairs.pair_id.isin(_identical_pair_ids(pairs_file, "motif"))]
    assert len(pairs), "no identical captions among the pairs: raise their number"

    def no_llm():  # only which pairs reach the LLM is under test
        raise RuntimeError("the LLM was asked")

    records = annotate_chunk(pairs, "motif", "gnomish", section(params, "annotate", AnnotateConfig), 0,
                             no_llm, "h")
    assert len(records) == len(pairs)
    assert all(r["label"] == TIE and not r["asked"] and r["mode"] == "identical" for r in records)
    never = section(many_pairs("never", "annotate.tie_identical=never"), "annotate", AnnotateConfig)
    with pytest.raises(RuntimeError, match="the LLM was asked"):
        annotate_chunk(pairs, "motif", "gnomish", never, 0, no_llm, "h")


def test_bad_answer_match_or_tie_identical_names_the_key(ci_data, tmp_path):
    for override, words in (("annotate.answer_match=middle", "annotate.answer_match"),
                            ("annotate.tie_identical=true", "annotate.tie_identical")):
        params = ci_params(ci_data.data_dir, tmp_path / "p.yaml", "annotate.annotator=oracle", override)
        with pytest.raises(ValueError, match=words):
            annotate(params, skill="discoverer", out_dir=tmp_path / "labels")


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_chain_of_thought_retry_fits_a_small_window_and_a_too_long_pair_fails_alone(ci_data, embedded_engine):
    """The real embedded engine (max_model_len 2048) with prompts padded so close to the window that a failed
    64-token answer can be echoed only in part: every retry must still be sent and answered (the old code
    echoed the whole answer and the engine's PromptTooLongError failed the chunk), and a pair too long for
    the window is one unknown label with its reason while the others are labelled."""
    import maestromotif.annotate as A
    from maestromotif.prompts import RETRY_PROMPT

    pairs = load_pairs(Path(ci_data.data_dir) / "pairs" / "ascender.parquet").iloc[:3]  # long prefills: few
    d1, d2 = pair_captions(pairs, "maestromotif")
    window, max_tokens, retry_max_tokens = embedded_engine.config.max_model_len, 64, 64
    target = window - max_tokens - 80  # first turns fit; a retry has ~40 tokens for the echoed answer

    def padded(a, b):  # the pair's real captions, the first one padded with game messages up to `target`
        lo, hi = 0, 400
        while lo < hi:  # the most padding that keeps the prompt within `target`
            mid = (lo + hi + 1) // 2
            conv = A.conversation("maestromotif", "ascender", "You see here a gold piece. " * mid + a, b)
            lo, hi = (mid, hi) if embedded_engine.count_tokens(conv) <= target else (lo, mid - 1)
        return A.conversation("maestromotif", "ascender", "You see here a gold piece. " * lo + a, b)

    def retry_turn(conv, answer):
        return conv + [{"role": "assistant", "content": answer}, {"role": "user", "content": RETRY_PROMPT}]

    convs = [padded(a, b) for a, b in zip(d1, d2)]
    huge = A.conversation("maestromotif", "ascender", "You see a fountain. " * 600, d2[0])
    assert embedded_engine.count_tokens(huge) > window
    cfg = defaults("annotate", AnnotateConfig, mode="chain_of_thought", max_tokens=max_tokens,
                   retry_max_tokens=retry_max_tokens)
    results = A.annotate_chunk_llm(embedded_engine, convs + [huge], cfg, seed=0)

    assert results[-1]["label"] == UNKNOWN and results[-1]["unknown_reason"] == A.REQUEST_FAILED
    assert "PromptTooLongError" in results[-1]["error"]
    retried = [r for r in results[:-1] if r["retried"]]
    overflowing = 0  # retries whose whole answer would not have fitted: the old code failed the chunk on them
    for r, conv in zip(results, convs):
        assert r["unknown_reason"] in (None, A.UNPARSABLE)  # never request_failed / retry_failed here
        if not r["retried"]:
            continue
        assert r["retry_answer"] is not None
        whole = embedded_engine.count_tokens(retry_turn(conv, r["answer"])) + retry_max_tokens > window
        overflowing += whole
        assert (r["retry_answer_cut"] > 0) == whole
        kept = A.cut_middle(r["answer"], len(r["answer"]) - r["retry_answer_cut"])
        assert embedded_engine.count_tokens(retry_turn(conv, kept)) + retry_max_tokens <= window  # as sent
    assert overflowing, "no retry needed a cut: lower `target` or raise max_tokens"
    metrics = A.label_metrics(pd.DataFrame([{**r, "asked": True} for r in results]))
    assert metrics["unknown_reasons"][A.REQUEST_FAILED] == 1
    assert metrics["retry_answers_cut"] == overflowing and metrics["retries"] == len(retried)
    print("small-window retry:", {k: metrics[k] for k in ("histogram", "unknown_reasons", "retries",
                                                          "retry_answers_cut")})

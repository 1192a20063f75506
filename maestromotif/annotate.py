"""Stage `annotate`: preference labels for one skill's pairs (or one task's Motif pairs), resumably.

    python -m maestromotif.annotate --skill all                     # every skill, one LLM load (recommended)
    python -m maestromotif.annotate --skill descender               # MaestroMotif, one skill
    python -m maestromotif.annotate --variant motif --task gnomish  # the Motif baseline's labels for a task
    python -m maestromotif.annotate --skill all --motif-tasks all   # both, one LLM load (the DVC stage)
    python -m maestromotif.annotate --method maestromotif_oracle --skill all   # the oracle method's labels

Annotators (`annotate.annotator`):
  - "llm": the `annotator_llm` engine with the paper's prompts (maestromotif.prompts), in one of two modes
      chain_of_thought  the paper's protocol: a free answer (up to `max_tokens`), parsed with the paper's
                        regex; if that fails, one retry turn in the same conversation (the failed
                        answer is echoed back, cut in its middle where prompt + answer + question +
                        `retry_max_tokens` would overflow the model's window: see `fit_retry`);
      direct            (CPU budget, docs/design.md §5) the assistant answer is prefilled up to
                        '("best_description": ' and the label is the argmax of the next-token log-probs of
                        "1" / "2" / "None" (one generated token per pair; raw top log-probs are stored);
      direct, symmetrised (`symmetrise: true`; the ci and small profiles) see below;
  - "oracle": the deterministic rule annotator of maestromotif.oracle (ablation, sanity check).
`--method` picks the MaestroMotif method whose skill labels these are (maestromotif.chain): maestromotif
(annotate.annotator, into labels/<skill>) or maestromotif_oracle (always the rule oracle, into
labels_oracle/<skill>; skills only: Motif's labels stay with annotate.annotator).

Order-symmetrised direct mode -- a deviation from the paper, CPU profiles only (the paper profile keeps
the chain of thought). SmolLM2-135M answers "1" whatever the pair: in one order, log p("1") beat
log p("2") by 0.6-1.3 nats on 999 of 1000 small-profile pairs, a position bias that leaves the reward
models nothing to learn. So every pair is asked in both orders, (A, B) and (B, A), in the same batch
(they share the system prompt and the template's prefix, which vLLM's prefix cache computes once), and

    margin = [log p("1") - log p("2")](A, B) - [log p("1") - log p("2")](B, A)

A bias towards either position adds the same amount to both brackets and cancels; a preference for A
counts twice. Label: first if margin > tau, second if margin < -tau, tie otherwise; tie as well when
"None" beats "1" and "2" in both orders (both undesirable); unknown when an order has neither "1" nor
"2" among its top `logprobs` tokens (an answer missing from the top N gets the smallest listed log-prob,
an upper bound, and is flagged in `floored`). Both orders' raw answers and top log-probs are stored,
with the margins, the position-bias estimate and `label_first_order` (what the one-order mode says),
so metrics.json reports both histograms and both agreements with the rule oracle. tau: the embedded
model runs in bf16 on CPUs with bf16 instructions, where log-probs come in steps of 1/8 nat near the
answer; many margins are then exactly 0 up to float noise (~1e-7), and tau = 0.01 makes those ties
instead of coin flips decided by the noise.
Labels: 0 first, 1 second, 2 tie ("None"), 3 unknown. In Motif's label sets, pairs whose two captions
are identical are labelled tie without asking, as Motif's annotator does; MaestroMotif's annotator asks
the LLM about every pair (`tie_identical`: motif, the default; all: both variants; never).
Chain of thought: the first declaration in an answer counts, as in the official annotators
(`answer_match: last` reads the final one instead).
One bad pair never fails a chunk: a request the engine refuses on its own (too long, rejected by the
endpoint), a retry that cannot fit, or an answer that stays unparsable gives that pair the label unknown
with its `unknown_reason` (and `error`), counted in metrics.json `unknown_reasons`; the chunk completes.
Failures of the engine itself, or a refusal of every request of a chunk (a setting at fault), stop the stage.

Output, under <data_dir>/labels/<skill>/ (maestromotif_oracle: labels_oracle/<skill>/; Motif:
<data_dir>/labels/motif/<task>/):
  chunks/chunk_<k>.jsonl  one file per chunk of pairs, written atomically once the chunk is finished
                          (kill the process at any time: a rerun redoes only the missing chunks, with
                          the same per-chunk seed, so the result equals an uninterrupted run's);
  labels.parquet          every label with its pair's messages and depth changes (read it with
                          `maestromotif.labels.labelled_pairs`), written when all chunks are done;
  metrics.json            label histogram, parse rate, retries, pairs/s, tokens per pair, provenance,
                          and (MaestroMotif) agreement with the rule oracle on the pairs it does not tie.

Size (over 600 lines): the annotators (chain of thought, direct, symmetrised direct, the oracle) share
one chunked, fingerprinted, resumable loop that is read as a whole; the label files are maestromotif.labels.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from benchmark import provenance
from benchmark.config import load_params, root, section
from benchmark.io import read_json, write_json
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed
from maestromotif import chain
from maestromotif import prompts as P
from maestromotif.data.captions import caption, motif_caption
from maestromotif.data.pairs import MOTIF_SET
from maestromotif.data.pairs import OUT_NAME as PAIRS_DIR_NAME
from maestromotif.data.pairs import load_pairs
from maestromotif.data.schema import file_metadata
from maestromotif.labels import chunk_done, motif_label_dir, read_chunk, write_chunk, write_labels

log = logging.getLogger(__name__)
ANNOTATORS = ("llm", "oracle")
MODES = ("chain_of_thought", "direct")
VARIANTS = ("maestromotif", "motif")
IDENTICAL = "<identical captions: tie without asking>"
# Which label sets tie identical captions without asking: Motif's annotator does, MaestroMotif's asks the LLM.
TIE_IDENTICAL = ("motif", "all", "never")


@dataclass
class AnnotateConfig:
    """The `annotate` section of the params (conf/annotate/default.yaml)."""

    annotator: str  # llm | oracle
    mode: str  # chain_of_thought (paper) | direct (next-token log-probs)
    max_tokens: int  # chain of thought: answer budget
    retry_max_tokens: int  # chain of thought: budget of the retry turn
    logprobs: int  # direct: top-N next-token log-probs read per pair
    # direct: ask (A, B) and (B, A), label by the bias-free margin (CPU profiles)
    symmetrise: bool
    # symmetrised: |margin| <= tau is a tie (margin in nats, see module doc)
    tau: float
    chunk_size: int  # pairs per chunk; unit of resumption
    # chain of thought: first (official) | last declaration in the answer counts
    answer_match: str
    tie_identical: str  # identical captions -> tie unasked: motif (official) | all | never


# ---- one chunk ------------------------------------------------------------------------------------
def pair_captions(pairs: pd.DataFrame, variant: str) -> tuple[list[str], list[str]]:
    render = caption if variant == "maestromotif" else motif_caption
    rows = pairs.to_dict("records")
    return [render(r, "_1") for r in rows], [render(r, "_2") for r in rows]


def conversation(variant: str, key: str, d1: str, d2: str) -> list[dict]:
    if variant == "maestromotif":
        return P.maestromotif_messages(key, d1, d2)
    return P.motif_messages(P.motif_goal(key), d1, d2)


direct_label = P.direct_label  # kept importable from here


# Why a label is unknown: the record's `unknown_reason`, counted in metrics.json `unknown_reasons`. A pair
# that fails on its own (its request refused, its retry unable to fit) is one unknown label, never a failed
# chunk; failures of the engine itself (server down, model crashed) still stop the stage.
UNPARSABLE = "unparsable"                    # chain of thought: no declaration, even after the retry turn
NOT_IN_TOP_LOGPROBS = "not_in_top_logprobs"  # direct: neither "1" nor "2" among the top log-probs
REQUEST_FAILED = "request_failed"            # the engine refused this pair's request (too long, rejected)
RETRY_DOES_NOT_FIT = "retry_does_not_fit"    # not even the retry question fits the context window
RETRY_FAILED = "retry_failed"                # the engine refused the retry turn
UNKNOWN_REASONS = (UNPARSABLE, NOT_IN_TOP_LOGPROBS, REQUEST_FAILED, RETRY_DOES_NOT_FIT, RETRY_FAILED)
CUT_MARK = "\n[... {n} characters cut to fit the context window ...]\n"
# Engines that cannot count tokens locally (HTTP): the retry turn's own tokens (closing the answer, the retry
# question, the reply header) are bounded by its characters plus the chat template's few tokens per message.
RETRY_TURN_TOKENS = len(P.RETRY_PROMPT) + 32


def cut_middle(text: str, keep: int) -> str:
    """`text` with its middle replaced by a marker so that `keep` of its characters remain (head and tail)."""
    if keep >= len(text):
        return text
    head = keep // 2
    return text[:head] + CUT_MARK.format(n=len(text) - keep) + text[len(text) - (keep - head):]


def fit_retry(conv: list[dict], answer: str, prompt_tokens: int, answer_tokens: int, budget: int,
              count: Callable[[list[dict]], int | None] | None = None) -> tuple[list[dict] | None, int]:
    """The retry conversation -- `conv`, the failed `answer`, the retry question -- in at most `budget` prompt
    tokens (max_model_len - retry_max_tokens), and how many characters of the echoed answer were cut from its
    middle to get there (0: none). (None, 0) when not even an empty answer fits.

    `count` gives a conversation's exact prompt tokens (the in-process engine); without it, the size is
    estimated from the first turn's token counts: prompt_tokens + answer_tokens + RETRY_TURN_TOKENS.
    """
    def build(text: str) -> list[dict]:
        return conv + [{"role": "assistant", "content": text}, {"role": "user", "content": P.RETRY_PROMPT}]

    chars_per_token = len(answer) / max(answer_tokens, 1)

    def size(text: str) -> int:
        exact = count(build(text)) if count is not None else None
        if exact is not None:
            return exact
        # the kept text's tokens at the answer's average density, 5% dearer for safety
        text_tokens = answer_tokens if text == answer else math.ceil(1.05 * len(text) / chars_per_token)
        return prompt_tokens + text_tokens + RETRY_TURN_TOKENS

    n, keep = size(answer), len(answer)
    for _ in range(8):  # re-tokenising across the cut shifts counts a little: a few rounds at most
        if n <= budget:
            return build(cut_middle(answer, keep)), len(answer) - keep
        keep -= math.ceil((n - budget) * chars_per_token) + 1
        if keep < 0:
            return None, 0
        n = size(cut_middle(answer, keep))
    return None, 0


def _refused(error: Exception, reason: str, engine) -> dict:
    return {"label": P.UNKNOWN, "answer": None, "retry_answer": None, "retried": False, "prompt_tokens": 0,
            "completion_tokens": 0, "model_id": getattr(engine, "model_id", None), "unknown_reason": reason,
            "error": f"{type(error).__name__}: {error}"}


def _check_not_all_refused(outs: list, what: str) -> None:
    """A refusal of every request of a batch is a setting at fault (a parameter the endpoint rejects, a
    max_tokens that leaves no room for any prompt), not bad pairs: stop rather than label a chunk unknown."""
    from maestromotif.llm import Completion, LLMError

    refused = [o for o in outs if not isinstance(o, Completion)]
    if len(outs) > 1 and len(refused) == len(outs):
        raise LLMError(f"annotate: the engine refused all {len(outs)} {what} of this chunk, e.g. "
                       f"{refused[0]}; fix the LLM config (annotator_llm) or annotate.max_tokens"
                       ) from refused[0]


def annotate_chunk_llm(engine, convs: list[list[dict]], cfg: AnnotateConfig, seed: int,
                       swapped: list[list[dict]] | None = None) -> list[dict]:
    """Label the conversations of one chunk with the LLM; one result dict per conversation.

    `swapped`: the same pairs with the descriptions in the other order (symmetrised direct mode).
    A request the engine refuses makes its pair unknown (`unknown_reason`, `error`); the others are labelled.
    """
    from maestromotif.llm import Completion, Sampling

    base = engine.default_sampling()
    if cfg.mode == "direct":
        # Greedy: the label comes from the log-probs, not from a sample. (It also avoids a vLLM-CPU crash,
        # "CPU Generator does not use offset", that seeded sampling hits when a prefill is chunked.)
        sampling = Sampling(temperature=0.0, top_k=base.top_k, top_p=1.0, max_tokens=1, seed=seed,
                            logprobs=cfg.logprobs)
        prefill = [{"role": "assistant", "content": P.DIRECT_PREFILL}]
        # Both orders go in one batch: they share the system prompt and the template's prefix (prefix cache).
        outs = engine.generate_each([c + prefill for c in convs + (swapped or [])], sampling)
        _check_not_all_refused(outs, "requests")
        results = []
        for out in outs[:len(convs)]:
            if not isinstance(out, Completion):
                results.append(_refused(out, REQUEST_FAILED, engine))
                continue
            top = out.top_logprobs[0] if out.top_logprobs else None
            label, label_logprobs = P.direct_label(top)
            results.append({"label": label, "answer": out.text, "retry_answer": None, "retried": False,
                            "label_logprobs": label_logprobs, "top_logprobs": top,
                            "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                            "model_id": out.model_id, "error": None,
                            "unknown_reason": NOT_IN_TOP_LOGPROBS if label == P.UNKNOWN else None})
        if swapped is not None:
            for r, out in zip(results, outs[len(convs):]):
                r["label_first_order"] = r["label"]
                if r["unknown_reason"] == REQUEST_FAILED:
                    continue
                if not isinstance(out, Completion):  # the swapped order was refused: the pair has no margin
                    r.update(label=P.UNKNOWN, unknown_reason=REQUEST_FAILED,
                             error=f"{type(out).__name__}: {out}")
                    continue
                top = out.top_logprobs[0] if out.top_logprobs else None
                label, info = P.symmetric_label(r["top_logprobs"], top, cfg.tau)
                _, swapped_logprobs = P.direct_label(top)
                r.update(label=label, answer_swapped=out.text,
                         label_logprobs_swapped=swapped_logprobs, top_logprobs_swapped=top,
                         prompt_tokens=r["prompt_tokens"] + out.prompt_tokens,
                         completion_tokens=r["completion_tokens"] + out.completion_tokens,
                         unknown_reason=NOT_IN_TOP_LOGPROBS if label == P.UNKNOWN else None, **info)
        return results
    sampling = Sampling(temperature=base.temperature, top_k=base.top_k, top_p=base.top_p,
                        max_tokens=cfg.max_tokens, seed=seed)
    outs = engine.generate_each(convs, sampling)
    _check_not_all_refused(outs, "requests")
    results = []
    for o in outs:
        if not isinstance(o, Completion):
            results.append(_refused(o, REQUEST_FAILED, engine))
            continue
        label = P.parse_answer(o.text, cfg.answer_match)
        results.append({"label": label, "answer": o.text, "retry_answer": None, "retried": False,
                        "retry_answer_cut": 0, "prompt_tokens": o.prompt_tokens,
                        "completion_tokens": o.completion_tokens, "model_id": o.model_id,
                        "unknown_reason": UNPARSABLE if label == P.UNKNOWN else None, "error": None})
    # The paper's one retry turn, in the same conversation. The failed answer is echoed back; it may be
    # max_tokens long, so it is cut in the middle where conversation + answer + question + retry_max_tokens
    # would overflow the context window.
    budget = engine.config.max_model_len - cfg.retry_max_tokens
    retry, retry_convs = [], []
    for i, r in enumerate(results):
        if r["unknown_reason"] != UNPARSABLE:
            continue
        conv, cut = fit_retry(convs[i], r["answer"], r["prompt_tokens"], r["completion_tokens"], budget,
                              engine.count_tokens)
        if conv is None:
            r.update(unknown_reason=RETRY_DOES_NOT_FIT,
                     error=f"the conversation leaves no room for retry_max_tokens={cfg.retry_max_tokens} in "
                           f"max_model_len={engine.config.max_model_len}")
            continue
        r["retry_answer_cut"] = cut
        retry.append(i)
        retry_convs.append(conv)
    if retry:
        retry_sampling = Sampling(**{**sampling.__dict__, "max_tokens": cfg.retry_max_tokens})
        for i, out in zip(retry, engine.generate_each(retry_convs, retry_sampling)):
            r = results[i]
            if not isinstance(out, Completion):
                r.update(unknown_reason=RETRY_FAILED, error=f"{type(out).__name__}: {out}")
                continue
            label = P.parse_answer(out.text, cfg.answer_match)
            r.update(label=label, retry_answer=out.text, retried=True,
                     unknown_reason=UNPARSABLE if label == P.UNKNOWN else None,
                     prompt_tokens=r["prompt_tokens"] + out.prompt_tokens,
                     completion_tokens=r["completion_tokens"] + out.completion_tokens)
    return results


def annotate_chunk(pairs: pd.DataFrame, variant: str, key: str, cfg: AnnotateConfig, seed: int,
                   get_engine: Callable[[], Any], prompt_hash: str) -> list[dict]:
    """Label records for one chunk of pairs (every pair gets exactly one record)."""
    d1, d2 = pair_captions(pairs, variant)
    rows = pairs.to_dict("records")
    results: list[dict | None] = [None] * len(rows)
    ask = []
    tie_identical = cfg.tie_identical == "all" or (cfg.tie_identical == "motif" and variant == "motif")
    for i, row in enumerate(rows):
        if tie_identical and d1[i] == d2[i]:
            results[i] = {"label": P.TIE, "answer": IDENTICAL, "retry_answer": None, "retried": False,
                          "prompt_tokens": 0, "completion_tokens": 0, "model_id": None, "asked": False}
        elif cfg.annotator == "oracle":
            skill = key if variant == "maestromotif" else None
            if skill is None:
                raise ValueError("the rule oracle has rules per skill only; use annotator=llm for --variant "
                                 "motif")
            from maestromotif.oracle import oracle_label

            label, why = oracle_label(skill, row)
            results[i] = {"label": label, "answer": why, "retry_answer": None, "retried": False,
                          "prompt_tokens": 0, "completion_tokens": 0, "model_id": "rule-oracle",
                          "asked": True}
        else:
            ask.append(i)
    if ask:
        engine = get_engine()
        # a chunk's labels are a function of the chunk alone, so a lost chunk is redone exactly: without this
        # the redo reads the first try's prompts from the prefix cache (Engine.forget_cached_prompts)
        engine.forget_cached_prompts()
        convs = [conversation(variant, key, d1[i], d2[i]) for i in ask]
        swapped = [conversation(variant, key, d2[i], d1[i]) for i in ask] if symmetrised(cfg) else None
        for i, r in zip(ask, annotate_chunk_llm(engine, convs, cfg, seed, swapped)):
            results[i] = {**r, "asked": True}
    mode = label_mode(cfg)
    records = []
    for row, r in zip(rows, results):
        records.append({
            "pair_id": int(row["pair_id"]), "unknown_reason": None, "error": None, **r,
            "mode": mode if r["asked"] else "identical",
            "symmetrised": bool(r["asked"] and symmetrised(cfg)),
            "annotator": cfg.annotator, "variant": variant, "key": key, "seed": seed,
            "prompt_hash": prompt_hash,
            "message_1": str(row["message_1"]), "message_2": str(row["message_2"]),
            "dlvl_change_1": int(np.sign(row["dlvl_1"] - row["dlvl_prev_1"])),
            "dlvl_change_2": int(np.sign(row["dlvl_2"] - row["dlvl_prev_2"])),
        })
    return records


def symmetrised(cfg: AnnotateConfig) -> bool:
    return cfg.annotator == "llm" and cfg.mode == "direct" and cfg.symmetrise


def label_mode(cfg: AnnotateConfig) -> str:
    return "rule" if cfg.annotator == "oracle" else cfg.mode


# ---- the stage --------------------------------------------------------------------------------------
def run_fingerprint(variant: str, key: str, cfg: AnnotateConfig, llm_cfg: Any, pairs_meta: dict) -> str:
    """What a finished chunk must have been made with to be reused (prompts, settings, model, pairs)."""
    from omegaconf import OmegaConf

    llm = (OmegaConf.to_container(llm_cfg, resolve=True) if llm_cfg is not None and cfg.annotator == "llm"
           else None)
    annotate_cfg = (OmegaConf.to_container(OmegaConf.structured(cfg)) if not isinstance(cfg, dict) else cfg)
    if annotate_cfg["annotator"] == "oracle":  # the rules read no LLM setting: changing one keeps the labels
        annotate_cfg = {k: annotate_cfg[k] for k in ("annotator", "tie_identical")}
    settings = {"variant": variant, "key": key, "prompt_hash": P.prompt_hash(variant, key, label_mode(cfg)),
                "annotate": annotate_cfg, "llm": llm, "pairs": pairs_meta}
    settings["annotate"].pop("chunk_size", None)  # chunk boundaries are checked through the pair ids
    return provenance.fingerprint(settings)


def annotate(params, skill: str | None = None, variant: str = "maestromotif", task: str | None = None,
             pairs_path: str | Path | None = None, out_dir: str | Path | None = None, engine=None,
             method: str = chain.DEFAULT) -> Path:
    """Run the stage; `engine` lets a caller (tests, a multi-skill driver) share one loaded LLM: an engine,
    or a zero-argument callable that returns one (called only if some chunk still needs the LLM).
    `method`: the MaestroMotif method whose skill labels these are (maestromotif.chain): its annotator and
    its label folder."""
    from tqdm import tqdm

    top = root(params)
    cfg: AnnotateConfig = section(params, "annotate", AnnotateConfig)
    if method != chain.DEFAULT and variant != "maestromotif":
        raise ValueError(f"--method {method} labels the skills only; Motif's labels come from "
                         "annotate.annotator (drop --method for --variant motif / --motif-tasks)")
    cfg.annotator = chain.annotator(params, method)  # maestromotif_oracle: always the rule oracle
    if cfg.annotator not in ANNOTATORS:
        raise ValueError(f"annotate.annotator={cfg.annotator!r}: choose one of {', '.join(ANNOTATORS)}")
    if cfg.mode not in MODES:
        raise ValueError(f"annotate.mode={cfg.mode!r}: choose one of {', '.join(MODES)}")
    if cfg.chunk_size < 1:
        raise ValueError(f"annotate.chunk_size must be >= 1, got {cfg.chunk_size}")
    if cfg.symmetrise and cfg.annotator == "llm" and cfg.mode != "direct":
        raise ValueError("annotate.symmetrise=true reads next-token log-probs: it needs annotate.mode=direct "
                         "(or set annotate.symmetrise=false for the chain of thought)")
    if cfg.answer_match not in P.ANSWER_MATCHES:
        raise ValueError(f"annotate.answer_match={cfg.answer_match!r}: choose one of "
                         f"{', '.join(P.ANSWER_MATCHES)}")
    if cfg.tie_identical not in TIE_IDENTICAL:
        raise ValueError(f"annotate.tie_identical={cfg.tie_identical!r}: choose one of "
                         f"{', '.join(TIE_IDENTICAL)} (booleans are no longer accepted: true was 'all', "
                         "false 'never')")
    if cfg.tau < 0:
        raise ValueError(f"annotate.tau is a margin in nats and must be >= 0, got {cfg.tau}")
    if variant == "maestromotif":
        if skill not in P.SKILL_MODIFIERS:
            raise ValueError(f"--skill {skill!r}: choose one of {', '.join(P.SKILLS)}")
        key, set_name = skill, skill
    elif variant == "motif":
        P.motif_goal(task)  # validates the task name
        key, set_name = task, MOTIF_SET
    else:
        raise ValueError(f"--variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    pairs_path = Path(pairs_path or Path(top.data_dir) / PAIRS_DIR_NAME / f"{set_name}.parquet")
    out_dir = Path(out_dir or (chain.label_dir(params, method, key) if variant == "maestromotif"
                               else motif_label_dir(top.data_dir, key)))
    pairs = load_pairs(pairs_path)
    if len(pairs) == 0:
        size_key = "pairs.motif" if set_name == MOTIF_SET else f"pairs.sizes.{set_name}"
        raise ValueError(f"{pairs_path} holds no pairs: nothing to annotate. Set {size_key} > 0 and rerun "
                         "`python -m maestromotif.data.pairs` (or drop this label set)")
    llm_cfg = params.get("annotator_llm") if cfg.annotator == "llm" else None
    if cfg.annotator == "llm" and llm_cfg is None and engine is None:
        raise ValueError("annotate.annotator=llm needs an `annotator_llm` section in the params (conf/llm/)")
    if llm_cfg is not None and cfg.mode == "chain_of_thought":
        window = int(llm_cfg.get("max_model_len", 0) or 0)
        for name in ("max_tokens", "retry_max_tokens"):
            if window and getattr(cfg, name) >= window:
                raise ValueError(f"annotate.{name}={getattr(cfg, name)} leaves no room for a prompt in "
                                 f"annotator_llm.max_model_len={window}: lower it or raise max_model_len")
    fingerprint = run_fingerprint(variant, key, cfg, llm_cfg, file_metadata(pairs_path))
    prompt_hash = P.prompt_hash(variant, key, label_mode(cfg))

    state = {"engine": engine, "owned": False}

    def get_engine():
        if callable(state["engine"]):  # a shared lazy engine (main: --skill all)
            state["engine"] = state["engine"]()
        if state["engine"] is None:
            from maestromotif.llm import make_engine

            log.info("annotate: starting the annotator LLM")
            state["engine"], state["owned"] = make_engine(llm_cfg), True
        return state["engine"]

    # temp files of a killed run: never complete chunks
    for stale in (out_dir / "chunks").glob(".chunk_*.tmp"):
        stale.unlink(missing_ok=True)
    chunks = [pairs.iloc[i: i + cfg.chunk_size] for i in range(0, len(pairs), cfg.chunk_size)]
    paths = [out_dir / "chunks" / f"chunk_{k:05d}.jsonl" for k in range(len(chunks))]
    todo = [k for k, c in enumerate(chunks) if not chunk_done(paths[k], c["pair_id"].tolist(), fingerprint)]
    log.info("annotate[%s/%s]: %d pairs in %d chunks, %d to do (%s, %s) -> %s", variant, key, len(pairs),
             len(chunks), len(todo), cfg.annotator, cfg.mode, out_dir)
    t0, done_pairs = time.perf_counter(), 0
    try:
        with tqdm(total=len(pairs), initial=len(pairs) - sum(len(chunks[k]) for k in todo),
                  desc=f"annotate {key}", unit="pair") as bar:
            for k in todo:
                seed = derive_seed(top.root_seed, "annotate", variant, key, k)
                records = annotate_chunk(chunks[k], variant, key, cfg, seed, get_engine, prompt_hash)
                for r in records:
                    r["run"] = fingerprint
                    r["chunk"] = k
                write_chunk(paths[k], records)
                done_pairs += len(records)
                bar.update(len(records))
                bar.set_postfix(pairs_per_s=f"{done_pairs / (time.perf_counter() - t0):.2f}")
    finally:
        if state["owned"]:
            state["engine"].close()
    elapsed = time.perf_counter() - t0
    records = [r for p in paths for r in read_chunk(p)]
    labels = pd.DataFrame(records).sort_values("pair_id", kind="stable").reset_index(drop=True)
    if labels["pair_id"].duplicated().any() or len(labels) != len(pairs):
        raise RuntimeError(f"annotate[{key}]: {len(labels)} labels for {len(pairs)} pairs; delete {out_dir} "
                           "and rerun")
    metrics = label_metrics(labels)
    if variant == "maestromotif":  # a cheap check of the signal: agreement with the rule oracle
        from maestromotif.oracle import oracle_agreement

        ordered = pairs.set_index("pair_id").loc[labels["pair_id"]].reset_index()
        metrics["oracle_agreement"] = oracle_agreement(labels["label"], ordered, key)
        if "label_first_order" in labels:  # what one order alone (no symmetrisation) would have given
            first_order = labels["label_first_order"].fillna(labels["label"]).astype(int)
            metrics["oracle_agreement_first_order"] = oracle_agreement(first_order, ordered, key)
    metrics.update({
        "variant": variant, "key": key, "annotator": cfg.annotator,
        "mode": label_mode(cfg), "symmetrised": symmetrised(cfg),
        "tau": cfg.tau if symmetrised(cfg) else None, "prompt_hash": prompt_hash,
        "profile": top.profile, "root_seed": top.root_seed, "pairs_file": str(pairs_path),
        "model_id": next((m for m in labels["model_id"] if m), None),
        "this_run": {"pairs": done_pairs, "seconds": elapsed,
                     "pairs_per_s": done_pairs / elapsed if done_pairs and elapsed > 0 else None},
    })
    if variant == "maestromotif":  # whose skill labels (Motif's label sets belong to no MaestroMotif method)
        metrics["method"] = method
    previous = out_dir / "metrics.json"
    if not done_pairs and previous.exists():
        # Nothing was asked: keep the rates of the run that did the work, so that a no-op rerun writes
        # identical
        # files and DVC does not retrain the reward models that depend on them.
        metrics["this_run"] = read_json(previous).get("this_run", metrics["this_run"])
    write_labels(out_dir / "labels.parquet", labels)
    write_json(out_dir / "metrics.json", metrics)
    log.info("annotate[%s/%s]: histogram %s, parse rate %.3f, %d retries, %s pairs/s, %.1f tokens per asked "
             "pair",
             variant, key, metrics["histogram"], metrics["parse_rate"], metrics["retries"],
             "%.2f" % metrics["this_run"]["pairs_per_s"] if metrics["this_run"]["pairs_per_s"] else "-",
             metrics["tokens_per_asked_pair"])
    if metrics.get("oracle_agreement", {}).get("n"):
        agree = metrics["oracle_agreement"]
        before = metrics.get("oracle_agreement_first_order")
        log.info("annotate[%s/%s]: agreement with the rule oracle on its %d non-tie pairs: %.3f%s (chance "
                 "0.5)",
                 variant, key, agree["n"], agree["accuracy"],
                 f"; one order alone: {before['accuracy']:.3f}, histogram {metrics['histogram_first_order']}"
                 if before else "")
    return out_dir


def label_metrics(labels: pd.DataFrame) -> dict:
    """Label histogram, parse rate, retries and token counts of a label table."""
    names = P.LABEL_NAMES
    hist = Counter(int(v) for v in labels["label"])
    asked = labels[labels["asked"]]
    out = {
        "pairs": int(len(labels)),
        "histogram": {names[k]: int(hist.get(k, 0)) for k in names},
        "identical_ties": int((~labels["asked"]).sum()),
        "asked": int(len(asked)),
        "parse_rate": float((asked["label"] != P.UNKNOWN).mean()) if len(asked) else 1.0,
        "retries": int(asked["retried"].sum()) if len(asked) else 0,
        "tokens_per_asked_pair": (float((asked["prompt_tokens"] + asked["completion_tokens"]).mean())
                                  if len(asked) else 0.0),
        "completion_tokens_per_asked_pair": float(asked["completion_tokens"].mean()) if len(asked) else 0.0,
    }
    # Why the unknown labels are unknown; pairs refused by the engine or without room for their retry.
    reasons = labels.loc[labels["label"] == P.UNKNOWN, "unknown_reason"] if "unknown_reason" in labels else []
    out["unknown_reasons"] = {k: int(sum(r == k for r in reasons)) for k in UNKNOWN_REASONS}
    cut = asked["retry_answer_cut"].fillna(0) if "retry_answer_cut" in asked else pd.Series(dtype=float)
    out["retry_answers_cut"] = int((cut > 0).sum())  # retries whose echoed answer was cut to fit the window
    if "label_first_order" in labels:  # symmetrised: the histogram one order alone would have given
        first = Counter(int(v) for v in labels["label_first_order"].fillna(labels["label"]))
        margins = asked["margin"].dropna().to_numpy(dtype=float)
        out["histogram_first_order"] = {names[k]: int(first.get(k, 0)) for k in names}
        out["margin"] = ({"mean": float(margins.mean()), "mean_abs": float(np.abs(margins).mean()),
                          "quantiles": {q: float(np.quantile(margins, float(q)))
                                        for q in ("0.1", "0.5", "0.9")}}
                         if len(margins) else None)
        # Position bias: the part of log p(1) - log p(2) common to both orders (the preference flips sign).
        both = asked[["margin_ab", "margin_ba"]].dropna().to_numpy(dtype=float)
        out["position_bias"] = float(both.mean()) if len(both) else None
    return out


def _expand_all(names: list[str] | None, everything) -> list[str]:
    """Command-line names, de-duplicated in order; 'all' stands for `everything`."""
    names = names or []
    return list(everything) if "all" in names else list(dict.fromkeys(names))


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skill", nargs="+", choices=[*P.SKILLS, "all"],
                        help="MaestroMotif skill(s) to annotate ('all': every skill, sharing one LLM)")
    parser.add_argument("--method", default=chain.DEFAULT, choices=chain.METHODS,
                        help="whose skill labels (maestromotif.chain): maestromotif (annotate.annotator, "
                             "labels/<skill>) or maestromotif_oracle (the rule oracle, "
                             "labels_oracle/<skill>)")
    parser.add_argument("--variant", choices=VARIANTS, default="maestromotif")
    parser.add_argument("--task", help="Motif variant: the benchmark task whose goal string is used")
    parser.add_argument("--motif-tasks", nargs="+", metavar="TASK",
                        help="also annotate these tasks' Motif labels with the same LLM ('all': params' "
                             "tasks)")
    parser.add_argument("--params", default=None)
    parser.add_argument("--pairs", default=None,
                        help="pair file (default: <data_dir>/pairs/<skill|motif>.parquet)")
    parser.add_argument("--out", default=None,
                        help="labels dir (default: <data_dir>/labels/<skill> or motif/<task>)")
    args = parser.parse_args(argv)
    if args.variant == "maestromotif" and not (args.skill or args.motif_tasks):
        parser.error("--skill is required (or --variant motif --task TASK, or --motif-tasks)")
    if args.variant == "motif" and not args.task:
        parser.error("--variant motif needs --task")
    if args.method != chain.DEFAULT and (args.variant == "motif" or args.motif_tasks):
        parser.error(f"--method {args.method} labels the skills only: Motif's labels come from "
                     "annotate.annotator (drop --variant motif / --motif-tasks)")
    setup_logging()
    params = load_params(args.params)
    if args.variant == "motif":
        annotate(params, variant="motif", task=args.task, pairs_path=args.pairs, out_dir=args.out)
        return
    skills = _expand_all(args.skill, P.SKILLS)
    tasks = _expand_all(args.motif_tasks, root(params).tasks)
    if len(skills) + len(tasks) > 1 and (args.pairs or args.out):
        parser.error("--pairs/--out name one label set's files: give a single --skill with them")
    jobs = [{"skill": s, "method": args.method} for s in skills] + [{"variant": "motif", "task": t}
                                                                      for t in tasks]
    shared: dict = {}

    # loaded on first need, then reused by every label set (loading costs ~10-40 s on CPU)
    def shared_engine():
        if "engine" not in shared:
            from maestromotif.llm import make_engine

            log.info("annotate: starting the annotator LLM (shared by %d label sets)", len(jobs))
            shared["engine"] = make_engine(params["annotator_llm"])
        return shared["engine"]

    try:
        for job in jobs:
            annotate(params, pairs_path=args.pairs, out_dir=args.out, engine=shared_engine, **job)
    finally:
        if "engine" in shared:
            shared["engine"].close()


if __name__ == "__main__":
    main()

"""Stage `report`: the paper's tables with our numbers beside them, and the figures.

    python -m benchmark.report

Reads results/{summary.csv, scores_per_seed.csv, aggregate.json, provenance.json} (the aggregate stage)
and the paper's numbers (benchmark/paper_results.csv), and writes
results/table1.{md,csv}   navigation + interaction, the layout of the paper's Table 1
results/table2.{md,csv}   composite tasks, the layout of the paper's Table 2
results/figures/          category bars (Fig. 1), per-task bars vs the paper, MaestroMotif vs the
                          score-maximising agents (Fig. 5), IQM intervals, per-skill reward curves
                          (Fig. 8b/c) when the train stage wrote them
results/report.md         all of the above, each method's BALROG progression per task, the collected
                          observations' events per source (the collect_events stage's table at
                          report.collect_events, .md beside the CSV, when it exists), and the provenance
results/report.html       report.md as a web page (benchmark.html_report), figures linked from figures/

A cell of ours whose runs (some or all) ran a reference stand-in for LLM-written code (MaestroMotif: codegen
fell back to our reference program over skills, or wrote none) carries a dagger (†), and the table's
footnote lists those cells with their run counts.
"""
from __future__ import annotations

import glob
import logging
import math
from pathlib import Path
from typing import Sequence

import pandas as pd
from omegaconf import DictConfig

from benchmark import html_report, plots
from benchmark.aggregate import ReportConfig, curves_pattern, load_paper_results, report_config, task_title
from benchmark.config import ConfigError, root, stage_main
from benchmark.evaluate import budget_text, method_spec
from benchmark.io import read_json, write_csv, write_text

log = logging.getLogger(__name__)

FALLBACK_MARK = "†"
ABOVE_RANDOM_MARK = "▲"
ABOVE_RANDOM_Z = 3.0  # the bar for "differs from random"
TABLES = {  # table number -> (categories, caption)
    1: (("navigation", "interaction"), "Navigation (success rate) and interaction (items per episode) tasks"),
    2: (("composite",), "Composite tasks (success rate)"),
}


def format_value(mean: float, stderr: float, metric: str) -> str:
    """The paper's cell style: '46.0% ± 1.7%' for success rates, '0.66 ± 0.01' for counts."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    se_missing = stderr is None or (isinstance(stderr, float) and math.isnan(stderr))
    if metric in ("success", "success_rate"):
        return f"{100 * mean:.1f}%" + ("" if se_missing else f" ± {100 * stderr:.2f}%")
    return f"{mean:.2f}" + ("" if se_missing else f" ± {stderr:.2f}")


def build_table(summary: pd.DataFrame, paper: pd.DataFrame, table: int, methods: Sequence[str],
                cfg: ReportConfig, profile: str, budgets: dict[str, str] | None = None) -> pd.DataFrame:
    """Long table: one row per (task, column), columns in order: each of our methods (its header with its
    training budget from `budgets`), then its paper row, then the paper's other methods. `source` says which:
    ours (with the profile) or paper."""
    categories, _ = TABLES[table]
    ours = summary[summary["category"].isin(categories)]
    tasks = list(dict.fromkeys(ours["task"]))
    paper_t = paper[paper["table"] == table]
    specs = {m: method_spec(m) for m in methods}
    columns: list[tuple[str, str, str | None]] = []  # (header, source, method or paper label)
    for m in methods:
        budget = f"; {budgets[m]}" if budgets and m in budgets else ""
        columns.append((f"{specs[m].label} (ours, {profile}{budget})", "ours", m))
        if specs[m].paper_label:
            columns.append((f"{specs[m].paper_label} (paper)", "paper", specs[m].paper_label))
    shown = {c[2] for c in columns if c[1] == "paper"}
    for label in dict.fromkeys(paper_t["method"]):
        if label not in shown:
            columns.append((f"{label} (paper)", "paper", label))
    rows = []
    for task in tasks:
        title = task_title(task, cfg)
        t_ours = ours[ours["task"] == task]
        metric = t_ours["metric"].iloc[0]
        for header, source, key in columns:
            fallback, parts = 0, ""
            if source == "ours":
                r = t_ours[t_ours["method"] == key]
                mean, se = ((float(r["mean"].iloc[0]), float(r["stderr"].iloc[0])) if len(r)
                            else (math.nan, math.nan))
                n, eps = ((int(r["n_seeds"].iloc[0]), int(r["episodes_per_seed"].iloc[0])) if len(r)
                          else (0, 0))
                if len(r) and "n_fallback_runs" in r:
                    fallback = int(r["n_fallback_runs"].iloc[0])
                    parts = "" if pd.isna(r["fallback_parts"].iloc[0]) else str(r["fallback_parts"].iloc[0])
            else:
                r = paper_t[(paper_t["task"] == title) & (paper_t["method"] == key)]
                mean, se = ((float(r["mean"].iloc[0]), float(r["stderr"].iloc[0])) if len(r)
                            else (math.nan, math.nan))
                n, eps = 9, None  # "All results are averaged across nine seeds"
            z = (float(r["z_vs_random"].iloc[0]) if source == "ours" and len(r) and "z_vs_random" in r
                 else math.nan)
            cell = (format_value(mean, se, metric) + (f" {ABOVE_RANDOM_MARK}" if z >= ABOVE_RANDOM_Z else "")
                    + (f" {FALLBACK_MARK}" if fallback else ""))
            rows.append({"table": table, "task": task, "title": title, "category": t_ours["category"].iloc[0],
                         "metric": metric, "column": header, "source": source,
                         "profile": profile if source == "ours" else "paper", "mean": mean, "stderr": se,
                         "n_seeds": n, "episodes_per_seed": eps, "n_fallback_runs": fallback,
                         "fallback_parts": parts, "cell": cell})
    long = pd.DataFrame(rows)
    if long.empty:
        return long
    # a paper column with no number on any of these tasks (the small variants) says nothing
    empty = long[long["source"] == "paper"].groupby("column")["mean"].apply(lambda v: v.isna().all())
    return long[~long["column"].isin(empty[empty].index)].reset_index(drop=True)


def table_markdown(long: pd.DataFrame, table: int, header_note: str) -> str:
    wide = long.pivot(index="title", columns="column", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(long["title"])), columns=list(dict.fromkeys(long["column"])))
    lines = [f"| Task | {' | '.join(wide.columns)} |", "|---" * (len(wide.columns) + 1) + "|"]
    lines += [f"| {t} | {' | '.join(str(c) for c in row)} |" for t, row in zip(wide.index, wide.to_numpy())]
    body = "\n".join(lines) + "\n" + above_random_note(long) + fallback_note(long)
    return f"**Table {table}. {TABLES[table][1]}.** {header_note}\n\n" + body


def above_random_note(long: pd.DataFrame) -> str:
    """The footnote of the cells marked as above random play."""
    if not long["cell"].str.contains(ABOVE_RANDOM_MARK, regex=False).any():
        return ""
    return (f"\n{ABOVE_RANDOM_MARK} Above random play on the task with z >= {ABOVE_RANDOM_Z:g}: the "
            "difference of the means over the standard error of that difference, sqrt(SE^2 + SE_random^2), "
            "both over runs "
            "(column z_vs_random of summary.csv).\n")


def fallback_note(long: pd.DataFrame) -> str:
    """The footnote of the cells marked with the dagger: which, and in how many of their runs."""
    marked = long[long["n_fallback_runs"] > 0] if "n_fallback_runs" in long else long.iloc[:0]
    if marked.empty:
        return ""
    cells = "; ".join(f"{r.column}, {r.title}: {r.n_fallback_runs} of {r.n_seeds} runs ({r.fallback_parts})"
                      for r in marked.itertuples())
    return (f"\n{FALLBACK_MARK} Ran our reference code in place of LLM-written code (the codegen stage fell "
            f"back, or wrote none; the part is in brackets) in some or all runs: {cells}. The evaluation "
            "records' `policy_provenance` names each run's files and hashes.\n")


def progression_markdown(summary: pd.DataFrame, methods: Sequence[str], cfg: ReportConfig) -> str:
    """Each method's BALROG progression per task (mean ± standard error over runs, in percent), or a note
    when the evaluation records predate max_xlvl."""
    if "progression_mean" not in summary or summary["progression_mean"].isna().all():
        return ("No progression: the evaluation records carry no max_xlvl (written before evaluate recorded "
                "it); rerun the evaluate stage.\n")
    labels = {m: method_spec(m).label for m in methods}
    lines = [f"| Task | {' | '.join(labels[m] for m in methods)} |", "|---" * (len(methods) + 1) + "|"]
    for task in dict.fromkeys(summary["task"]):
        rows = summary[summary["task"] == task].set_index("method")
        cells = [format_value(float(rows.at[m, "progression_mean"]), float(rows.at[m, "progression_stderr"]),
                              "success") if m in rows.index else "–" for m in methods]
        lines.append(f"| {task_title(task, cfg)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def runs_note(methods: Sequence[str], top) -> str:
    """How the code-seeded methods' runs are made (MaestroMotif: skill seeds x code seeds), for the notes."""
    specs = [method_spec(m) for m in methods]
    return "".join(f"; {spec.label}: {spec.fit_seeds.replace('_', ' ')} {list(top[spec.fit_seeds])} x "
                   f"code seeds {list(top.code_seeds)} (n={len(top[spec.fit_seeds]) * len(top.code_seeds)} "
                   "runs)"
                   for spec in specs if spec.code_seeds)


def load_curves(pattern: str) -> pd.DataFrame | None:
    files = sorted(glob.glob(pattern))
    if not files:
        return None
    frames = []
    for i, f in enumerate(files):
        # the train stage writes JSON lines (curve.jsonl); CSV is accepted for curves made elsewhere
        df = pd.read_json(f, lines=True) if f.endswith(".jsonl") else pd.read_csv(f)
        if df.empty:
            continue
        df = df.rename(columns={"mean_normalised_reward": "normalised_reward"})
        frames.append(df if "seed" in df.columns else df.assign(seed=i))
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def collect_events_section(params: DictConfig, cfg: ReportConfig) -> list[str]:
    """The collect_events stage's markdown table (a section of its own), or a line saying it is missing.

    Read as a file, so the harness needs nothing of the method that collected the observations."""
    path = Path(cfg.collect_events.format(results_dir=params.results_dir)).with_suffix(".md")
    if path.exists():
        return [path.read_text().rstrip("\n"), ""]
    return ["## Events in the collected observations, per source", "",
            f"No table at `{path}` (the collect_events stage writes it).", ""]


def method_curves(params: DictConfig, cfg: ReportConfig, methods: Sequence[str]) -> tuple[pd.DataFrame | None,
                                                                                         list[str]]:
    """The per-skill training curves of every method of `report.curve_methods` that `methods` lists, with a
    column method_label; and the globs that were read."""
    frames, globs = [], []
    for m in [m for m in cfg.curve_methods if m in methods]:
        pattern = curves_pattern(cfg, params.data_dir, m)
        globs.append(pattern)
        curves = load_curves(pattern)
        if curves is not None:
            frames.append(curves.assign(method_label=method_spec(m).label))
    return (pd.concat(frames, ignore_index=True) if frames else None), globs


def report(params: DictConfig) -> Path:
    top = root(params)
    cfg = report_config(params)
    results = Path(params.results_dir)
    needed = [results / n
              for n in ("summary.csv", "scores_per_seed.csv", "aggregate.json", "provenance.json")]
    if not all(p.exists() for p in needed):
        raise ConfigError(f"missing {[str(p) for p in needed if not p.exists()]}: run `python -m "
                          "benchmark.aggregate` first")
    summary, scores = pd.read_csv(needed[0]), pd.read_csv(needed[1])
    agg, prov = read_json(needed[2]), read_json(needed[3])
    profiles = set(summary["profile"]) | set(scores["profile"]) | {agg["profile"]}
    if profiles != {top.profile}:
        raise ConfigError(f"results/ holds profile(s) {sorted(profiles)} but the params say {top.profile!r}; "
                          "rerun the aggregate stage: tables never mix profiles")
    paper = load_paper_results(cfg.paper_results)
    methods, seeds = list(top.methods), list(top.seeds)
    budgets = {m: budget_text(m, params) for m in methods}
    labels = {m: method_spec(m).label for m in methods}
    episodes = int(summary["episodes_per_seed"].min())
    aprov = prov["aggregate"]
    note = (f"Ours: profile **{top.profile}**, seeds {seeds} (n={len(seeds)}){runs_note(methods, top)}, "
            f"{episodes} episodes per run, episode cap {params.evaluate.max_episode_steps} steps, NLE "
            f"{aprov.get('nle_version')}, code {aprov.get('git_describe')}; mean ± standard error over runs, "
            "each run one seed. Paper: 9 seeds, full budget.")

    sections, written = [], []
    for table in TABLES:
        long = build_table(summary, paper, table, methods, cfg, top.profile, budgets)
        if long.empty:  # still written (empty), so the stage's outputs exist whatever the task list
            md = f"**Table {table}. {TABLES[table][1]}.** No task of this table was evaluated in this run.\n"
            write_text(results / f"table{table}.md", md)
            write_text(results / f"table{table}.csv",
                       "table,task,title,category,metric,column,source,profile,"
                       "mean,stderr,n_seeds,episodes_per_seed,n_fallback_runs,fallback_parts,cell\n")
            continue
        md = table_markdown(long, table, note)
        write_text(results / f"table{table}.md", md)
        write_csv(results / f"table{table}.csv", long)
        sections.append(md)
        written += [results / f"table{table}.md", results / f"table{table}.csv"]

    figures = results / "figures"
    fmt = cfg.figure_formats
    summary = summary.assign(title=summary["task"].map(lambda t: task_title(t, cfg)))
    figs = plots.category_bars(scores, figures / "categories", top.profile, seeds, fmt)
    if summary["category"].isin(["navigation", "interaction"]).any():
        figs += plots.task_bars(summary, paper, figures / "tasks_vs_paper", top.profile, seeds,
                                (cfg.paper_reference_method,), fmt)
        versus_score = [m for m in cfg.score_comparison if m in methods]
        if len(versus_score) >= 2:  # Fig. 5: the paper gives no per-bar values, so ours alone
            figs += plots.task_bars(summary[summary["method"].isin(versus_score)], paper,
                                    figures / "score_maximisation", top.profile, seeds, (), fmt,
                                    title="MaestroMotif against score-maximising agents (Fig. 5)")
    iqm = {g: {labels[m]: e for m, e in by_m.items()} for g, by_m in agg["iqm"].items()}
    figs += plots.interval_plot(iqm, figures / "iqm_intervals", top.profile, seeds, "IQM", fmt)
    curves, curve_globs = method_curves(params, cfg, methods)
    where = ", ".join(f"`{g}`" for g in curve_globs) or "(no method of report.curve_methods is in `methods`)"
    if curves is None:
        curve_note = (f"No per-skill reward curves found at {where} (the train stage writes them); "
                      "the Fig. 8b/c plot is skipped.")
        log.warning(curve_note)
    else:
        figs += plots.skill_curves(curves, figures / "skill_reward_curves", top.profile,
                                   list(top.skill_seeds), fmt)
        runs = curves.groupby("method_label")["seed"].nunique()
        curve_note = (f"Per-skill reward curves from {', '.join(f'{n} {m} run(s)' for m, n in runs.items())} "
                      f"at {where}.")

    poi = agg.get("probability_of_improvement", {})
    poi_lines = [f"- P({k}) = {v['point']:.2f} [{v['low']:.2f}, {v['high']:.2f}]" for k, v in poi.items()]
    iqm_lines = [f"- {g}: " + "; ".join(f"{lbl} {e['point']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"
                                       for lbl, e in by_l.items()) for g, by_l in iqm.items()]
    pngs = [f for f in figs if f.suffix == ".png"]
    text = "\n".join([
        f"# Results (profile: {top.profile})", "",
        "Generated by `python -m benchmark.report` from the evaluation records; do not edit by hand.", "",
        *sections, "",
        "## Aggregate statistics", "",
        f"Normalisation: {agg['normalisation']}. IQM with {int(cfg.ci * 100)}% stratified-bootstrap CIs "
        f"({agg['bootstrap']['reps']} replications, bootstrap seed {agg['bootstrap']['seed']}):", "",
        *iqm_lines, "",
        *(["Probability of improvement over all tasks:", "", *poi_lines, ""] if poi_lines else []),
        "## BALROG progression", "",
        ("Each episode's NetHack progression as BALROG (Paglieri et al., 2025) defines it: the larger of the "
         "human-data ascension rates of the deepest dungeon level and the highest experience level reached "
         "(docs/progression.md); mean ± standard error over runs, each run's value its episodes' mean. "
         "Our episodes are the tasks' (capped at "
         f"{params.evaluate.max_episode_steps} steps), not BALROG's full NetHackChallenge games."), "",
        progression_markdown(summary, methods, cfg),
        *collect_events_section(params, cfg),
        "## Figures", "",
        *[f"![{p.stem}](figures/{p.name})" for p in pngs], "",
        curve_note, "",
        "## Provenance", "",
        "Per-seed scores: `scores_per_seed.csv`; per-evaluation provenance (method, task, seed, profile, LLM "
        "model ids, NLE version, git describe, episode count, episode seeds): `provenance.json`.", "",
        f"- methods: {', '.join(f'{m} ({labels[m]})' for m in methods)}",
        f"- tasks: {', '.join(top.tasks)}",
        (f"- root seed {top.root_seed}; seeds {seeds}{runs_note(methods, top)}; {episodes} episodes per "
         "(method, task, run)"),
        f"- NLE {aprov.get('nle_version')}; code {aprov.get('git_describe')}; packages "
        f"{aprov.get('packages')}", "",
    ])
    write_text(results / "report.md", text)
    html_report.write(results / "report.html", text, title=f"MaestroMotif benchmark results ({top.profile})")
    log.info("wrote %d table files, %d figure files, %s and %s", len(written), len(figs),
             results / "report.md", results / "report.html")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    stage_main(report, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()

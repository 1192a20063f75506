"""Paper-style figures with seaborn, each saved as PNG and PDF.

Every figure names its axes with units and carries the profile and seeds it came from in its title,
so a figure copied out of results/ still says what it shows. Inputs are plain DataFrames, which keeps
the functions testable on fake data.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

log = logging.getLogger(__name__)

CATEGORY_ORDER = ("navigation", "interaction", "composite")
PAPER_SUFFIX = " (paper)"
# No timestamps or version strings inside the files: the same data gives the same bytes.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def provenance_line(profile: str, seeds: Sequence[int], episodes: int | None = None) -> str:
    text = f"profile {profile}, seeds {', '.join(map(str, seeds))} (n={len(seeds)})"
    return text + (f", {episodes} episodes/seed" if episodes else "")


def save(fig: plt.Figure, stem: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write `fig` as stem.<fmt> for each format (via a temporary name, then rename) and close it."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.stem}.tmp.{fmt}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=_METADATA.get(fmt))
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def category_bars(scores: pd.DataFrame, stem: Path, profile: str, seeds: Sequence[int],
                  formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Fig. 1 style: per-category normalised score per method, bars = mean over seeds, whiskers = s.e.

    scores: one row per (method_label, task, seed) with columns category and normalised."""
    # a run: a seed, or MaestroMotif's (skill seed, code seed) pair
    run = "run" if "run" in scores else "seed"
    per_seed = scores.groupby(["method_label", "category", run], as_index=False)["normalised"].mean()
    order = [c for c in CATEGORY_ORDER if c in set(per_seed["category"])]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(order), 3.6))
    sns.barplot(data=per_seed, x="category", y="normalised", hue="method_label", order=order,
                errorbar="se", capsize=0.1, ax=ax)
    ax.set_xlabel("task category")
    ax.set_ylabel("normalised score (1.0 = paper's MaestroMotif)")
    ax.set_title(f"Performance per task category\n{provenance_line(profile, seeds)}; mean ± s.e. over seeds",
                 fontsize=9)
    ax.legend(title="method", fontsize=8)
    return save(fig, stem, formats)


def task_bars(summary: pd.DataFrame, paper: pd.DataFrame, stem: Path, profile: str, seeds: Sequence[int],
              paper_methods: Sequence[str] = ("MaestroMotif",), formats: Sequence[str] = ("png", "pdf"),
              title: str = "Per-task results against the paper") -> list[Path]:
    """Fig. 5 style: navigation success rate (%) and interaction items per episode, per task and method,
    our methods beside the paper's reference bars (hatched; none when `paper_methods` is empty).

    summary: rows (method_label, title, category, mean, stderr); paper: benchmark/paper_results.csv rows
    (task, category, method, mean, stderr) with success rates as fractions."""
    ours = summary[["method_label", "title", "category", "mean", "stderr"]]
    ref = paper[paper["method"].isin(paper_methods)].rename(columns={"task": "title"})
    ref = ref.assign(method_label=ref["method"] + PAPER_SUFFIX)[["method_label", "title", "category", "mean",
                                                                 "stderr"]]
    data = pd.concat([ours, ref[ref["title"].isin(set(ours["title"]))]], ignore_index=True)
    panels = [(c, lbl)
              for c, lbl in (("navigation", "success rate (%)"), ("interaction", "items per episode"))
              if c in set(data["category"])]
    if not panels:
        raise ValueError("task_bars needs navigation or interaction tasks")
    labels = list(dict.fromkeys(data["method_label"]))
    palette = dict(zip(labels, sns.color_palette("deep", len(labels))))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (category, ylabel) in zip(axes[0], panels):
        d = data[data["category"] == category].copy()
        scale = 100.0 if category == "navigation" else 1.0
        titles = list(dict.fromkeys(d["title"]))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            dl = d[d["method_label"] == label].set_index("title").reindex(titles)
            x = np.arange(len(titles)) + (j - (len(labels) - 1) / 2) * width
            ax.bar(x, dl["mean"] * scale, width, yerr=dl["stderr"].fillna(0) * scale, capsize=2, label=label,
                   color=palette[label], hatch="//" if label.endswith(PAPER_SUFFIX) else None,
                   edgecolor="white")
        ax.set_xticks(np.arange(len(titles)), titles, rotation=15)
        ax.set_xlabel("task")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
    axes[0][0].legend(title="method", fontsize=8)
    hatched = "; hatched = paper's numbers" if paper_methods else ""
    fig.suptitle(f"{title}\n{provenance_line(profile, seeds)}; mean ± s.e. over seeds{hatched}", fontsize=9)
    fig.tight_layout()
    return save(fig, stem, formats)


def curves_on_grid(curves: pd.DataFrame, value: str, points: int = 50) -> pd.DataFrame:
    """Mean and standard error over seeds of a per-skill training curve, each seed first interpolated onto
    one grid of env steps. Seeds log at different env steps (a row every few seconds of wall clock), so
    averaging rows by their exact env_steps mixes different seeds at neighbouring x and the line jumps
    between them. The grid spans the steps every seed covers (no extrapolation past a seed's last row).

    curves: columns env_steps, skill, seed, `value`. Returns rows (skill, env_steps, mean, se, n)."""
    rows = []
    for skill, by_skill in curves.dropna(subset=[value]).groupby("skill", sort=False):
        per_seed = [g.sort_values("env_steps") for _, g in by_skill.groupby("seed")]
        low = max(g["env_steps"].iloc[0] for g in per_seed)
        high = min(g["env_steps"].iloc[-1] for g in per_seed)
        if high < low:  # seeds whose logged ranges do not overlap: nothing is comparable
            continue
        grid = np.linspace(low, high, points) if high > low else np.array([low])
        ys = np.stack([np.interp(grid, g["env_steps"].to_numpy(float), g[value].to_numpy(float))
                       for g in per_seed])
        se = ys.std(axis=0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros(len(grid))
        rows += [{"skill": skill, "env_steps": x, "mean": m, "se": e, "n": len(ys)}
                 for x, m, e in zip(grid, ys.mean(axis=0), se)]
    return pd.DataFrame(rows, columns=["skill", "env_steps", "mean", "se", "n"])


def skill_curves(curves: pd.DataFrame, stem: Path, profile: str, seeds: Sequence[int],
                 formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Fig. 8b/c style: each skill's normalised reward (and how often it is active) against env steps:
    every seed interpolated onto a common grid of env steps, the mean drawn with a ± 1 standard error band
    (curves_on_grid). curves: columns env_steps, skill, normalised_reward, frequency[, seed][, method_label];
    one row of panels per method_label (e.g. MaestroMotif beside its oracle-label variant), y axes shared."""
    missing = {"env_steps", "skill", "normalised_reward"} - set(curves.columns)
    if missing:
        raise ValueError(f"reward curves lack column(s) {sorted(missing)}")
    if "seed" not in curves.columns:
        curves = curves.assign(seed=0)
    if "method_label" not in curves.columns:
        curves = curves.assign(method_label="")
    panels = [("normalised_reward", "normalised skill reward")]
    if "frequency" in curves.columns:
        panels.append(("frequency", "skill frequency (fraction of steps)"))
    rows = list(dict.fromkeys(curves["method_label"]))
    fig, axes = plt.subplots(len(rows), len(panels), figsize=(5 * len(panels) + 0.5, 3.2 * len(rows) + 0.4),
                             squeeze=False, sharey="col")
    skills = list(dict.fromkeys(curves["skill"]))
    colors = dict(zip(skills, sns.color_palette("deep", len(skills))))
    for row, label in zip(axes, rows):
        mine = curves[curves["method_label"] == label]
        for ax, (column, ylabel) in zip(row, panels):
            grid = curves_on_grid(mine, column)
            for skill, g in grid.groupby("skill", sort=False):
                ax.plot(g["env_steps"], g["mean"], color=colors[skill], label=skill)
                ax.fill_between(g["env_steps"], g["mean"] - g["se"], g["mean"] + g["se"],
                                color=colors[skill], alpha=0.2, linewidth=0)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(ylabel)
            if label:
                ax.set_title(label, fontsize=9)
    axes[0][0].legend(title="skill", fontsize=8)
    fig.suptitle(f"Per-skill reward during training (skills learned simultaneously)\n"
                 f"{provenance_line(profile, seeds)}; mean ± s.e. over seeds on a common env-step grid",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, stem, formats)


def interval_plot(intervals: dict, stem: Path, profile: str, seeds: Sequence[int], aggregate: str = "IQM",
                  formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """rliable-style interval estimates: one panel per task group, a point and its bootstrap CI per method.

    intervals: {group: {method_label: {"point", "low", "high"}}} (aggregate.json's "iqm" block,
    relabelled)."""
    groups = [g for g in ("all", *CATEGORY_ORDER) if g in intervals]
    methods = list(dict.fromkeys(m for g in groups for m in intervals[g]))
    colors = dict(zip(methods, sns.color_palette("deep", len(methods))))
    fig, axes = plt.subplots(1, len(groups), figsize=(2.8 * len(groups) + 1.2, 0.5 * len(methods) + 1.6),
                             sharey=True, squeeze=False)
    for ax, group in zip(axes[0], groups):
        for i, m in enumerate(methods):
            if m not in intervals[group]:
                continue
            e = intervals[group][m]
            ax.hlines(i, e["low"], e["high"], color=colors[m], linewidth=6, alpha=0.6)
            ax.plot([e["point"]], [i], "|", color="black", markersize=12)
        ax.set_title("all tasks" if group == "all" else group, fontsize=9)
        ax.set_xlabel(f"{aggregate} of normalised score")
        ax.grid(axis="x", alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    axes[0][0].set_yticks(range(len(methods)), methods)
    axes[0][0].set_ylabel("method")
    axes[0][0].set_ylim(-0.7, len(methods) - 0.3)
    fig.suptitle(f"{aggregate} with 95% stratified-bootstrap CIs\n{provenance_line(profile, seeds)}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, stem, formats)

"""The import graph of the three packages (grimp reads the source; nothing is imported): no module imports
itself through others, and the layers hold (the benchmark imports no method; MaestroMotif no baseline).
Imports inside functions count: a lazy import is still a dependency."""
from __future__ import annotations

from pathlib import Path

import grimp
import pytest

from benchmark.config import REPO_ROOT

PACKAGES = ("benchmark", "maestromotif", "baselines")
LAYERS = ("baselines", "maestromotif", "benchmark")  # each may import only the ones after it


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)


def test_the_graph_is_read_from_this_checkout(graph):
    """grimp reads the packages Python finds: this checkout's, not another editable install's."""
    import benchmark

    assert Path(benchmark.__file__).resolve().parent == (REPO_ROOT / "benchmark").resolve()
    assert "benchmark.regression" in graph.modules and "maestromotif.regression_probes" in graph.modules


def import_cycles(graph) -> list[tuple[str, ...]]:
    """One shortest cycle through each directly-imported pair that leads back (a -> b -> ... -> a)."""
    cycles = set()
    for a in graph.modules:
        for b in graph.find_modules_directly_imported_by(a):
            back = graph.find_shortest_chain(importer=b, imported=a)
            if back:
                cycle = (a, *back)
                start = cycle.index(min(cycle[:-1]))  # one rotation per cycle, so each is reported once
                cycles.add(cycle[start:-1] + cycle[:start] + (cycle[start],))
    return sorted(cycles)


def test_no_module_imports_itself_through_others(graph):
    assert import_cycles(graph) == []


def test_no_layer_imports_a_layer_above_it(graph):
    broken = []
    for i, lower in enumerate(LAYERS):
        for higher in LAYERS[:i]:
            for importer in sorted(m for m in graph.modules if m.split(".")[0] == lower):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported.split(".")[0] == higher:
                        broken.append(f"{importer} -> {imported}")
    assert broken == [], "the benchmark imports no method and maestromotif no baseline: " + ", ".join(broken)

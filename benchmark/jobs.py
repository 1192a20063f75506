"""Several training runs at once: wait for every one, keep what finished, report the failures together.
Used by benchmark.fit (a per-task method's tasks) and maestromotif.rl.train (the skill seeds)."""
from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any, Sequence

log = logging.getLogger(__name__)


def gather(futures: Sequence[tuple[str, Future]], context: str, what: str) -> list[Any]:
    """The results of `futures` ((label, future) pairs), in their order. A failure does not stop the wait
    for the others: each is logged, then all are raised in one RuntimeError that names every label."""
    results, failures = [], []
    for label, future in futures:
        try:
            results.append(future.result())
        except Exception as e:  # noqa: BLE001 - reported below, with the label it belongs to
            log.error("%s %s failed: %s", context, label, e)
            failures.append(f"{label}: {type(e).__name__}: {e}")
    if failures:
        raise RuntimeError(f"{context}: {len(failures)} of {len(futures)} {what} failed (the others are "
                           "kept; rerun to retry): " + "; ".join(failures))
    return results

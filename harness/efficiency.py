"""What a run costs, measured: the one place that computes a results file's ``efficiency`` record.

- Encoding: tokens per second per side, from the encoder's seconds and the tokens it read
  (``timings`` / ``tokens``), with the seconds' source: ``measured`` now, or ``cache`` when they
  were carried from the cache entry that measured them (never presented as fresh).
- Index (PLAID): the build's seconds (same sources) and the process's peak RSS during a build of
  this run; a reused index has no peak (null). Sizes stay in ``retrieval.index``.
- Search, over a prepared search (``harness.retrieve.stages.Prepared``: same embeddings, same
  index): first ``WARMUP_QUERIES`` queries searched alone, untimed; then every query at once (the
  batched search whose ranking is scored: QPS = n / seconds); then the first min(N, n) queries of
  the task, in file order, each searched alone and timed (N: ``--latency-queries``, 0 skips both
  the warm-up and these). Each single-query row must equal the batched row (``same_ranking``), so
  latency measurement never changes a score; its cost is N single searches, bounded by N.
- The process's peak RSS so far (``getrusage``), the CPU model, logical CPUs, torch's threads and
  the GPU when the device is CUDA.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.records import (
    BatchedSearch,
    EfficiencyRecord,
    EncodeRate,
    Hardware,
    IndexCost,
    SingleQuerySearch,
)
from harness.retrieve.stages import Prepared, Ranking, SearchStats, max_rss

logger = logging.getLogger(__name__)

WARMUP_QUERIES = 3  # per subset, searched alone before any timing
PEAK_RSS_SCOPE = "the process's peak so far, at the end of this task (getrusage ru_maxrss)"


@dataclass(frozen=True)
class SearchMeasurement:
    """One subset's search, measured: the batched ranking (the one scored) and its stats, the
    seconds of each query searched alone (the first ``len(latencies)`` queries, in order), whether
    their rows equal the batched rows, and how many queries warmed the search up."""

    ranking: Ranking
    stats: SearchStats
    latencies: tuple[float, ...]
    same_ranking: bool
    warmup: int


def measure_search(prepared: Prepared, single: int, *, warm_up: bool = True) -> SearchMeasurement:
    """Warm ``prepared`` up (``warm_up``: its first ``WARMUP_QUERIES`` queries searched alone,
    untimed), search every query at once (timed: the stage's ranking and stats), then time each of
    its first ``single`` queries searched alone and compare its row with the batched one (scores
    and documents)."""
    n, warmup = prepared.n_queries, WARMUP_QUERIES if warm_up else 0
    for i in range(min(warmup, n)):
        prepared.rank(np.array([i]), False)
    ranking, stats = prepared.search()
    latencies, same = [], True
    for i in range(min(single, n)):
        started = time.perf_counter()
        alone = prepared.rank(np.array([i]), False)
        latencies.append(time.perf_counter() - started)
        same = same and _same_row(alone, ranking, i)
    if not same:
        logger.warning("a query searched alone ranked otherwise than in the batched search")
    return SearchMeasurement(ranking, stats, tuple(latencies), same, min(warmup, n))


def _same_row(alone: Ranking, batched: Ranking, i: int) -> bool:
    return bool(
        np.array_equal(alone.indices[0], batched.indices[i])
        and np.array_equal(alone.scores[0], batched.scores[i])
    )


def efficiency_record(
    timings: Mapping[str, Any],
    tokens: Mapping[str, int | None],
    searches: Sequence[SearchMeasurement],
    *,
    limit: int,
    device: str | None,
) -> EfficiencyRecord:
    """The efficiency record of a task whose subsets were searched as ``searches`` (in the task's
    order), given the task's summed ``timings`` and ``tokens`` (``harness.run``) and the
    ``--latency-queries`` ``limit``."""
    n_queries = sum(s.ranking.indices.shape[0] for s in searches)
    batched_s = float(timings["retrieve_s"])
    return EfficiencyRecord(
        encode=_encode_rates(timings, tokens),
        index=_index_cost(timings, [s.stats for s in searches]),
        warmup_queries=sum(s.warmup for s in searches),
        batched=BatchedSearch(n_queries, batched_s, n_queries / batched_s if batched_s > 0 else None),
        single=_single(searches, limit, n_queries),
        peak_rss_bytes=max_rss(),
        peak_rss_scope=PEAK_RSS_SCOPE,
        hardware=hardware(device),
    )


def _encode_rates(
    timings: Mapping[str, Any], tokens: Mapping[str, int | None]
) -> dict[str, EncodeRate] | None:
    """Tokens per second per side; None without an encoder (no encode timing has a source)."""
    sources = timings.get("sources", {})
    if "encode_queries_s" not in sources and "encode_documents_s" not in sources:
        return None
    out = {}
    for side in ("queries", "documents"):
        seconds, count = timings.get(f"encode_{side}_s"), tokens.get(side)
        rate = count / seconds if count is not None and seconds else None
        out[side] = EncodeRate(count, seconds, rate, sources.get(f"encode_{side}_s"))
    return out


def _index_cost(timings: Mapping[str, Any], stats: Sequence[SearchStats]) -> IndexCost | None:
    """The index build's seconds (from ``timings``) and peak RSS (a build of this run only)."""
    if not any(s.index for s in stats):
        return None
    built = [s.index_build_rss for s in stats if s.index_build_rss is not None]
    peak, note = None, None
    if built:
        peak = max(max(before, after) for before, after in built)
        raised = all(after > before for before, after in built)
        note = (
            "exact: the build raised the process's peak RSS (ru_maxrss) to this"
            if raised
            else "upper bound: the process's peak before the build, which the build did not exceed"
        )
        if len(built) < len(stats):
            note += f"; {len(stats) - len(built)} of {len(stats)} indexes reused (no peak)"
    source = timings.get("sources", {}).get("index_build_s")
    return IndexCost(timings.get("index_build_s"), source, peak, note)


def _single(searches: Sequence[SearchMeasurement], limit: int, of: int) -> SingleQuerySearch | None:
    """Latency of the queries searched alone, pooled over the subsets; None when none was."""
    seconds = np.array([t for s in searches for t in s.latencies], np.float64)
    if limit <= 0 or not len(seconds):
        return None
    p50, p95, p99 = (float(v) for v in np.percentile(seconds * 1000, [50, 95, 99]))
    total = float(seconds.sum())
    same = all(s.same_ranking for s in searches)
    return SingleQuerySearch(limit, len(seconds), of, total, len(seconds) / total, p50, p95, p99, same)


def hardware(device: str | None) -> Hardware:
    """This machine: CPU model (/proc/cpuinfo, else the platform's name), logical CPUs, torch's
    intra-op threads, and the GPU's name when ``device`` is a CUDA device."""
    import torch

    gpu = None
    if device and device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return Hardware(cpu_model(), os.cpu_count(), torch.get_num_threads(), device, gpu)


def cpu_model() -> str | None:
    """The CPU's model name (the first ``model name`` of /proc/cpuinfo; else ``platform``'s)."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None

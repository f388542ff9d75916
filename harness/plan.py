"""The run's plan: the model, and per task the retriever stage, the ranking depth and the results
file, all fixed before any data is loaded.

The settings come checked (``harness.settings.EvalSettings``, re-exported here); ``plan_tasks``
turns (model, tasks, settings) into one :class:`TaskPlan` per task.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkpoints.files import hub_snapshot
from harness.encode import load_encoder
from harness.errors import InputError
from harness.executor import Executor, LocalExecutor, make_executor
from harness.models import find_model, find_model_by_hub_id
from harness.plaid.params import default_search_settings
from harness.records import RetrievalRecord
from harness.results import recorded_owner, result_filename
from harness.retrieve import (
    BM25Retriever,
    Embedder,
    ExactRetriever,
    PlaidRetriever,
    RerankRetriever,
    Retriever,
    RunFileRetriever,
)
from harness.retrieve.maxsim import Scoring
from harness.runfile import read_trec_run
from harness.settings import CARD_DEPTH, TREC_DEPTH, EvalSettings, flag_of
from harness.tasks import Task, resolve_tasks
from harness.types import Encoder

logger = logging.getLogger(__name__)

VARIANT_SETTINGS = ("pool_factor", "truncate_dim", "quantize")  # compression variants of the embeddings

__all__ = [
    "BM25_MODEL_ID",
    "CARD_DEPTH",
    "TREC_DEPTH",
    "EvalSettings",
    "TaskPlan",
    "is_bm25",
    "length_label",
    "load_executor",
    "load_first_stage",
    "load_model",
    "plan_tasks",
    "resolve",
]

BM25_MODEL_ID = "bm25"
RUN_FILE_SUFFIXES = (".trec", ".run", ".txt", ".tsv")  # a --first-stage with these is a file, never a Hub id


@dataclass(frozen=True)
class TaskPlan:
    """One task's part of the run: what to load, how to retrieve, how deep, where the result goes."""

    task: Task
    split: str
    k: int
    retriever: Retriever
    output: Path | None

    @property
    def retrieval(self) -> RetrievalRecord:
        """What the results file records under ``retrieval`` (before per-subset index facts)."""
        return RetrievalRecord(self.retriever.method, self.k, self.retriever.settings())


def is_bm25(model: str | Encoder) -> bool:
    """Whether ``model`` names the BM25 baseline."""
    return isinstance(model, str) and model.lower() == BM25_MODEL_ID


def load_model(model: str | Encoder, settings: EvalSettings) -> Encoder | None:
    """The encoder to evaluate (None for the BM25 baseline). A local folder wins over a registered
    name (``harness.models``), which wins over a Hub id; a registered model, or a Hub id that is
    one, loads under the registry's name with its pinned revision and loader settings, the run's
    flags on top."""
    if is_bm25(model):
        for setting in VARIANT_SETTINGS:
            if getattr(settings, setting) is not None:
                raise InputError("applies to a model's embeddings, not to BM25", field=flag_of(setting))
        return None
    if not isinstance(model, str):
        return model
    source, info = model, None
    if Path(model).expanduser().is_dir():  # a folder; a Hub snapshot of a registered model is that model
        snapshot = hub_snapshot(Path(model).expanduser())
        info = find_model_by_hub_id(snapshot[0]) if snapshot else None
    else:
        info = find_model(model) or find_model_by_hub_id(model)
        source = info.hub_id if info else model
    given = {
        "name": settings.model_name,
        "document_length": settings.document_length,
        "query_length": settings.query_length,
        "query_prompt": settings.query_prompt,
        "document_prompt": settings.document_prompt,
        **{setting: getattr(settings, setting) for setting in VARIANT_SETTINGS},
    }
    length = settings.document_length
    variant_length = info.overrides.get("document_length") if info else None
    name = info.name if info else None
    if info and length is not None and variant_length not in (None, length):
        # another length than the variant's: the base entry where there is one, named for this length
        base = find_model_by_hub_id(info.hub_id)
        info, name = (
            (base, base.name)
            if base
            else (info, info.name.removesuffix(f" ({length_label(variant_length)})"))
        )
    overrides = {**(info.overrides if info else {}), **({"name": name} if name else {})}
    overrides |= {key: value for key, value in _run_options(settings).items() if value is not None}
    overrides |= {key: value for key, value in given.items() if value is not None}
    encoder = load_encoder(
        source,
        device=settings.device,
        dtype=settings.dtype,
        trust_remote_code=settings.trust_remote_code,
        revision=settings.revision or (info.revision if info and source != model else None),
        **overrides,
    )
    # a length asked for on the command line names the variant, as the card's "(4k)" / "(32k)" rows do,
    # and so do compression variants and dtypes ("pool 2, int8") and approximate searches ("PLAID
    # 2-bit"): each run's results file and leaderboard row stay apart from the exact run
    labels = [length_label(length)] if length is not None and variant_length != length else []
    labels += [encoder.variant] if getattr(encoder, "variant", "") else []
    labels += [label] if (label := search_label(settings)) else []  # beside the exact run, not over it
    if labels and settings.model_name is None:
        encoder.name = f"{encoder.name} ({', '.join(labels)})"
    return encoder


def search_label(settings: EvalSettings) -> str | None:
    """How an approximate search names its run ("PLAID 2-bit", "rerank bm25"); None for exact."""
    if settings.first_stage is not None:
        return f"rerank {Path(settings.first_stage).name}"
    return f"PLAID {settings.plaid_nbits}-bit" if settings.index == "plaid" else None


def length_label(tokens: int) -> str:
    """``4096`` -> ``"4k"``, ``32768`` -> ``"32k"``, ``3000`` -> ``"3000 tokens"``."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else f"{tokens} tokens"


def _run_options(settings: EvalSettings) -> dict[str, Any]:
    """The load options every encoder of a run shares (memory budget, attention)."""
    return {
        "max_memory": settings.max_memory,
        "attn_implementation": settings.attention,
        "kernels": settings.kernels,
    }


def load_executor(settings: EvalSettings) -> Executor:
    """Where the run's encoding happens (``--executor``); the caller closes it."""
    return make_executor(
        settings.executor, address=settings.ray_address, workers=settings.workers, device=settings.device
    )


def _embedder(encoder: Encoder, settings: EvalSettings, executor: Executor) -> Embedder:
    s = settings
    return Embedder(encoder, s.cache_dir, s.batch_size, s.show_progress, executor, s.shard_size)


def load_first_stage(settings: EvalSettings, executor: Executor | None = None) -> Retriever | None:
    """The rerank first stage named by ``--first-stage``, loaded now: BM25, a TREC run file (read and
    checked), or a model (loaded with the run's device, dtype and ``trust_remote_code``)."""
    source = settings.first_stage
    if source is None:
        return None
    if source.lower() == BM25_MODEL_ID:
        return BM25Retriever(show_progress=settings.show_progress)
    path = Path(source).expanduser()
    if path.is_file():
        return RunFileRetriever(path, read_trec_run(path))
    if path.suffix.lower() in RUN_FILE_SUFFIXES and not path.is_dir():
        raise InputError("run file not found", file=source)
    first = load_encoder(
        source,
        device=settings.device,
        dtype=settings.dtype,
        trust_remote_code=settings.trust_remote_code,
        **_run_options(settings),
    )
    embedder = _embedder(first, settings, executor or LocalExecutor())
    return ExactRetriever(embedder, scoring="masked", max_memory=settings.max_memory_bytes)


def _retriever(
    encoder: Encoder | None,
    task: Task,
    first_stage: Retriever | None,
    settings: EvalSettings,
    executor: Executor,
) -> Retriever:
    if encoder is None:
        return BM25Retriever(show_progress=settings.show_progress)
    scoring: Scoring = settings.scoring or ("pylate" if task.convention == "card" else "masked")
    if not encoder.multi_vector:
        scoring = "masked"  # one vector per text: both modes agree
    if first_stage is not None:
        return RerankRetriever(
            first_stage,
            settings.first_stage or "",
            _embedder(encoder, settings, executor),
            settings.rerank_depth,
            scoring,
        )
    if settings.index == "plaid":
        return PlaidRetriever(
            _embedder(encoder, settings, executor), settings.plaid_nbits, _plaid_knobs(task, settings)
        )
    embedder = _embedder(encoder, settings, executor)
    return ExactRetriever(embedder, scoring, settings.pylate_chunk_size, settings.max_memory_bytes)


def _depth(task: Task, settings: EvalSettings) -> int:
    return settings.k or (CARD_DEPTH if task.convention == "card" else TREC_DEPTH)


def _plaid_knobs(task: Task, settings: EvalSettings) -> dict[str, Any]:
    """The search knobs: defaults for the ranking depth, replaced by the ones given."""
    knobs = default_search_settings(_depth(task, settings))
    given = {"n_probe": settings.plaid_n_probe, "n_full_scores": settings.plaid_n_full_scores}
    knobs |= {key: value for key, value in given.items() if value is not None}
    if settings.plaid_centroid_score_threshold != "default":  # None: explicitly no pruning
        knobs["centroid_score_threshold"] = settings.plaid_centroid_score_threshold
    return knobs


def plan_tasks(
    encoder: Encoder | None,
    model_id: str,
    tasks: Sequence[Task],
    settings: EvalSettings,
    first_stage: Retriever | None = None,
    executor: Executor | None = None,
) -> list[TaskPlan]:
    """One plan per task: split, depth, retriever and results file (``None`` without an output folder).
    ``first_stage`` is :func:`load_first_stage`'s, for a model that reranks; ``executor``
    :func:`load_executor`'s (default: this process)."""
    if encoder is not None and (first_stage is None) != (settings.first_stage is None):
        raise ValueError("pass the first stage that settings.first_stage names (load_first_stage)")
    out = settings.output_dir
    plans = [
        TaskPlan(
            task=task,
            split=settings.split or task.eval_split,
            k=_depth(task, settings),
            retriever=_retriever(encoder, task, first_stage, settings, executor or LocalExecutor()),
            output=out / result_filename(model_id, task.name) if out else None,
        )
        for task in tasks
    ]
    fingerprint = encoder.fingerprint if encoder is not None else None
    for plan in plans:
        if plan.output is not None:
            _check_owner(plan.output, model_id, plan.task.name, fingerprint)
    return plans


def _check_owner(path: Path, model_id: str, task_name: str, fingerprint: str | None) -> None:
    """Refuse to replace another model's (or task's) results whose file name this run's shares
    (``org/m`` and ``org_m``, ...); note a same-named model with other weights being replaced."""
    owner = recorded_owner(path)
    if owner is None:
        return
    if owner[:2] != (model_id, task_name):
        raise InputError(
            f"holds the results of model {owner[0]!r} on {owner[1]!r}; this run ({model_id!r} on "
            f"{task_name!r}) would replace them: pass another --output, or name the model with --model-name",
            file=str(path),
        )
    if owner[2] and fingerprint and owner[2] != fingerprint:
        logger.warning(
            "%s: made by a model named %r with other weights (fingerprint %s..., now %s...): it will be "
            "replaced (pass --model-name to keep both)",
            path,
            model_id,
            owner[2][:12],
            fingerprint[:12],
        )


def resolve(tasks: str | Task | Sequence[str | Task], settings: EvalSettings) -> list[Task]:
    """Task objects for names, groups and ``--data-dir`` folders (unknown names fail here), each task
    once (a task named twice, or also through its group, is run once, with a note)."""
    names = [tasks] if isinstance(tasks, (str, Task)) else tasks
    found = [
        t
        for name in names
        for t in ([name] if isinstance(name, Task) else resolve_tasks([name], settings.data_dir))
    ]
    unique: dict[str, Task] = {}
    for task in found:
        unique.setdefault(task.name, task)
    if len(unique) < len(found):
        repeated = sorted({t.name for t in found if [u.name for u in found].count(t.name) > 1})
        logger.warning("--tasks names %s more than once: each runs once", ", ".join(repeated))
    return list(unique.values())

"""The run's plan: validated settings, the model, and per task the retriever stage, the ranking
depth and the results file, all fixed before any data is loaded.

``EvalSettings`` is frozen and checks every value when it is made, naming the command-line flag,
so a bad value fails before a model or a corpus is touched. ``plan_tasks`` then turns (model,
tasks, settings) into one :class:`TaskPlan` per task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from harness.attention import NAME as BLOCKWISE_ATTENTION
from harness.cache import DEFAULT_SHARD_SIZE
from harness.checkpoints.config import DEFAULT_MAX_MEMORY, DTYPES, KERNEL_MODES
from harness.checkpoints.files import hub_snapshot
from harness.encode import load_encoder
from harness.errors import InputError, positive_int
from harness.executor import EXECUTORS, Executor, LocalExecutor, make_executor, require_ray
from harness.jit import default_cache_dir
from harness.models import find_model, find_model_by_hub_id
from harness.plaid.params import check_nbits, default_search_settings
from harness.results import result_filename
from harness.retrieve import (
    BM25Retriever,
    Embedder,
    ExactRetriever,
    PlaidRetriever,
    RerankRetriever,
    Retriever,
    RunFileRetriever,
)
from harness.retrieve.maxsim import SCORINGS
from harness.runfile import read_trec_run
from harness.tasks import Task, resolve_tasks
from harness.types import Encoder
from harness.units import parse_size

BM25_MODEL_ID = "bm25"
CARD_DEPTH = 100  # PyLate's evaluator ranks the top 100 (max of its k values)
TREC_DEPTH = 1000  # BEIR ranks the top 1000
INDEXES = ("exact", "plaid")
ATTENTIONS = (None, BLOCKWISE_ATTENTION, "sdpa", "eager")
ATTENTION_ALIASES = {"auto": None, "blockwise": BLOCKWISE_ATTENTION}  # the --attention spellings
RUN_FILE_SUFFIXES = (".trec", ".run", ".txt", ".tsv")  # a --first-stage with these is a file, never a Hub id


def _check_device(device: str, executor: str) -> None:
    """``--device``: a torch device; a local CUDA run needs a GPU here (Ray's workers bring theirs)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        message = f"not a torch device: {device!r} (cpu, cuda, cuda:1, ...)"
        raise InputError(message, field="--device") from exc
    if kind == "cuda" and executor == "local" and not torch.cuda.is_available():
        raise InputError("no CUDA device is visible to torch here", field="--device")


def _positive(value: object, flag: str, *, optional: bool = False) -> None:
    if not (optional and value is None):
        positive_int(value, flag)


def _choice(value: object, choices: Sequence[object], flag: str) -> None:
    if value not in choices:
        raise InputError(f"must be one of {', '.join(map(str, choices))}; got {value!r}", field=flag)


@dataclass(frozen=True)
class EvalSettings:
    """Everything besides model and tasks that decides the numbers or the run; checked on creation.

    ``scoring=None`` picks per task: ``pylate`` for model-card (NanoBEIR) tasks, so card numbers
    reproduce PyLate's evaluator to the last digit (it floors each query token's score at 0 for
    documents shorter than the longest one), and ``masked`` (the correct MaxSim) everywhere else.
    """

    split: str | None = None
    data_dir: Path | None = None
    output_dir: Path | None = Path("results")
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "float32"
    scoring: str | None = None
    pylate_chunk_size: int = 50_000
    index: str = "exact"
    first_stage: str | None = None
    rerank_depth: int = 100
    plaid_nbits: int = 4
    # PLAID search knobs; None: ``harness.plaid.default_search_settings(k)``
    plaid_n_probe: int | None = None
    plaid_centroid_score_threshold: float | None | Literal["default"] = "default"
    plaid_n_full_scores: int | None = None
    k: int | None = None
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    overwrite: bool = False
    save_run: bool = False
    show_progress: bool = True
    trust_remote_code: bool = False
    model_name: str | None = None  # id stored in results (default: folder name or Hub id)
    # ColBERT token limits replacing the checkpoint's (PyLate's constructor arguments); e.g.
    # LongEmbed's long-context rows are run with document_length 4096 or 32768
    document_length: int | None = None
    query_length: int | None = None
    # prompts replacing the checkpoint's (None: the checkpoint's), recorded in the model settings
    query_prompt: str | None = None
    document_prompt: str | None = None
    revision: str | None = None  # a Hub model's branch, tag or commit (None: a registered pin, else main)
    # activations one encoder batch may take (bytes, or a size such as "4GiB"); batches are cut below it
    max_memory: int | str = DEFAULT_MAX_MEMORY
    # transformers attention implementation; None: harness.attention's where supported, else the default
    attention: str | None = None
    # CPU kernels (harness.kernels): "auto" oneDNN's linear (GELU/GLU fused) on AVX-512 CPUs, and the
    # compiled rotary; "default" torch's and transformers' own; "onednn" forced
    kernels: str = "auto"
    # where the encode stage runs (harness.executor): "local", or "ray" (address None: a local cluster,
    # "auto": the running one; workers: CPU actors, or the GPUs to use on CUDA)
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE  # texts per embedding-cache shard (the unit of work on Ray)

    def __post_init__(self) -> None:
        for name in ("data_dir", "output_dir", "cache_dir"):  # notebooks pass strings
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "max_memory", parse_size(self.max_memory, "--max-memory"))
        object.__setattr__(self, "attention", ATTENTION_ALIASES.get(self.attention, self.attention))
        _choice(self.attention, ATTENTIONS, "--attention")
        _choice(self.kernels, KERNEL_MODES, "--kernels")
        _positive(self.batch_size, "--batch-size")
        _choice(self.dtype, DTYPES, "--dtype")
        _choice(self.scoring, (None, *SCORINGS), "--scoring")
        _positive(self.pylate_chunk_size, "pylate_chunk_size")
        _choice(self.index, INDEXES, "--index")
        _positive(self.rerank_depth, "--rerank-depth")
        check_nbits(self.plaid_nbits, field="--nbits")
        _positive(self.plaid_n_probe, "--n-probe", optional=True)
        _positive(self.plaid_n_full_scores, "--n-full-scores", optional=True)
        threshold = self.plaid_centroid_score_threshold
        if threshold not in (None, "default") and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float))
        ):
            raise InputError(
                f"must be a number, 'none' or 'default'; got {threshold!r}",
                field="--centroid-score-threshold",
            )
        _positive(self.k, "--k", optional=True)
        _positive(self.document_length, "--document-length", optional=True)
        _positive(self.query_length, "--query-length", optional=True)
        _choice(self.executor, EXECUTORS, "--executor")
        _positive(self.workers, "--workers", optional=True)
        _positive(self.shard_size, "--shard-size")
        if self.executor == "ray":
            require_ray()
            if self.cache_dir is None:
                message = "Ray workers write into the embedding cache: drop --no-cache"
                raise InputError(message, field="--executor")
        elif self.ray_address is not None or self.workers is not None:
            flag = "--ray-address" if self.ray_address is not None else "--workers"
            raise InputError("only with --executor ray", field=flag)
        _check_device(self.device, self.executor)
        if self.first_stage is not None and not self.first_stage.strip():
            raise InputError("must name 'bm25', a TREC run file or a model", field="--first-stage")

    def replace(self, **overrides: Any) -> EvalSettings:
        """A copy with ``overrides`` (EvalSettings fields), checked again."""
        for key in overrides:
            if key not in {f.name for f in dataclasses.fields(self)}:
                raise TypeError(f"unknown setting {key!r}")
        return dataclasses.replace(self, **overrides)

    def record(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (paths as strings), as results files keep them."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TaskPlan:
    """One task's part of the run: what to load, how to retrieve, how deep, where the result goes."""

    task: Task
    split: str
    k: int
    retriever: Retriever
    output: Path | None

    @property
    def retrieval(self) -> dict[str, Any]:
        """What the results file records under ``retrieval`` (before per-subset index facts)."""
        return {"method": self.retriever.method, "k": self.k, **self.retriever.settings()}


def is_bm25(model: str | Encoder) -> bool:
    """Whether ``model`` names the BM25 baseline."""
    return isinstance(model, str) and model.lower() == BM25_MODEL_ID


def load_model(model: str | Encoder, settings: EvalSettings) -> Encoder | None:
    """The encoder to evaluate (None for the BM25 baseline). A local folder wins over a registered
    name (``harness.models``), which wins over a Hub id; a registered model, or a Hub id that is
    one, loads under the registry's name with its pinned revision and loader settings, the run's
    flags on top."""
    if is_bm25(model):
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
    if length is not None and settings.model_name is None and variant_length != length:
        # a length asked for on the command line names the variant, as the card's "(4k)" / "(32k)" rows
        # do, so its results file and leaderboard row stay apart from the model's default length
        encoder.name = f"{encoder.name} ({length_label(length)})"
    return encoder


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
    return ExactRetriever(embedder, scoring="masked", max_memory=settings.max_memory)


def _retriever(
    encoder: Encoder | None,
    task: Task,
    first_stage: Retriever | None,
    settings: EvalSettings,
    executor: Executor,
) -> Retriever:
    if encoder is None:
        return BM25Retriever(show_progress=settings.show_progress)
    scoring = settings.scoring or ("pylate" if task.convention == "card" else "masked")
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
    return ExactRetriever(embedder, scoring, settings.pylate_chunk_size, settings.max_memory)


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
    return [
        TaskPlan(
            task=task,
            split=settings.split or task.eval_split,
            k=_depth(task, settings),
            retriever=_retriever(encoder, task, first_stage, settings, executor or LocalExecutor()),
            output=out / result_filename(model_id, task.name) if out else None,
        )
        for task in tasks
    ]


def resolve(tasks: Sequence[str | Task], settings: EvalSettings) -> list[Task]:
    """Task objects for names, groups and ``--data-dir`` folders (unknown names fail here)."""
    return [
        t
        for name in tasks
        for t in ([name] if isinstance(name, Task) else resolve_tasks([name], settings.data_dir))
    ]

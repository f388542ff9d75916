"""The run's settings: ``EvalSettings``, frozen and checked when made, each field declared once.

A field that is a ``harness evaluate`` flag carries its :class:`harness.flags.Flag` (flag name,
help, argparse type / choices / action, place in ``--help``) and, like any field, may carry a
check: the CLI builds its flags and the settings from them by iterating the fields, and every
error names the flag (:func:`flag_of`), so a bad value fails before a model or a corpus is
touched. Light to import (no torch, no numba): the command line builds its parser from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness.cache import DEFAULT_SHARD_SIZE
from harness.checkpoints import config as variants  # the compression variants' checks
from harness.checkpoints.config import DEFAULT_MAX_MEMORY, DTYPES, KERNEL_MODES, QUANTIZATIONS
from harness.errors import InputError
from harness.executor import EXECUTORS, require_ray
from harness.flags import Flag, check_fields, non_negative, one_of, positive, positive_or_none
from harness.flags import flag_of as _flag_of
from harness.flags import setting as _setting
from harness.plaid.params import check_nbits, check_threshold, parse_threshold
from harness.retrieve.maxsim import SCORINGS, Scoring
from harness.units import parse_size

CARD_DEPTH = 100  # PyLate's evaluator ranks the top 100 (max of its k values)
TREC_DEPTH = 1000  # BEIR ranks the top 1000
INDEXES = ("exact", "plaid")
ATTENTION_SPELLINGS = ("auto", "blockwise")  # --attention's names for None and harness.attention's
TRANSFORMERS_ATTENTIONS = ("sdpa", "eager")


def _named_stage(value: str | None, flag: str) -> None:
    if value is not None and not value.strip():
        raise InputError("must name 'bm25', a TREC run file or a model", field=flag)


def _default_cache_dir() -> Path:
    from harness.jit import default_cache_dir  # numba comes with it: not for `harness --help`

    return default_cache_dir()


def _attention(value: str | None, flag: str) -> str | None:
    """``--attention``'s spellings to transformers' names (None: harness.attention's where supported)."""
    from harness.attention import NAME  # torch comes with it: not for `harness --help`

    value = {"auto": None, "blockwise": NAME}.get(value, value)  # type: ignore[arg-type]
    one_of(None, NAME, *TRANSFORMERS_ATTENTIONS)(value, flag)
    return value


def _check_device(device: str, executor: str) -> None:
    """``--device``: a torch device; a local CUDA run needs a GPU here (Ray's workers bring theirs)."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        message = f"not a torch device: {device!r} (cpu, cuda, cuda:1, ...)"
        raise InputError(message, field=flag_of("device")) from exc
    if kind == "cuda" and executor == "local" and not torch.cuda.is_available():
        raise InputError("no CUDA device is visible to torch here", field=flag_of("device"))


@dataclass(frozen=True)
class EvalSettings:
    """Everything besides model and tasks that decides the numbers or the run; checked on creation.

    ``scoring=None`` picks per task: ``pylate`` for model-card (NanoBEIR) tasks, so card numbers
    reproduce PyLate's evaluator to the last digit (it floors each query token's score at 0 for
    documents shorter than the longest one), and ``masked`` (the correct MaxSim) everywhere else.
    Results files record the fields in this order (:meth:`record`).
    """

    split: str | None = _setting(
        None, flag=Flag("--split", "split to evaluate (default: the task's evaluation split)", 80)
    )
    data_dir: Path | None = _setting(
        None,
        flag=Flag("--data-dir", "folder holding datasets as <name>/ (looked at before the Hub)", 70, Path),
    )
    output_dir: Path | None = _setting(
        Path("results"),
        flag=Flag("--output", "results folder: one JSON file per model and task", 90, Path),
    )
    batch_size: int = _setting(
        32, check=positive, flag=Flag("--batch-size", "texts per encoder batch, at most", 100, int)
    )
    device: str = _setting(  # checked with the executor (__post_init__)
        "cpu",
        flag=Flag(
            "--device",
            "torch device the encoder runs on: %(default)s (default), cuda, cuda:1; with --executor "
            "ray, cuda means one worker per GPU of the cluster",
            110,
        ),
    )
    dtype: str = _setting(
        "float32",
        check=one_of(*DTYPES),
        flag=Flag(
            "--dtype",
            "encoder weights and activations (default %(default)s, what card numbers use; recorded)",
            120,
            choices=DTYPES,
        ),
    )
    # compression variants (harness.checkpoints.config.VARIANTS): each keys the cache and names the run
    pool_factor: int | float | None = _setting(
        None,
        check=variants.pool_factor_value,
        flag=Flag(
            "--pool-factor",
            "ColBERT: pool each document's token vectors into 1/F as many by Ward clustering, as PyLate "
            "1.6's encode(pool_factor=F) (first token kept; queries never pooled); integers equal "
            "PyLate's, fractional F (e.g. 1.5) keeps floor(n/F) tokens, which PyLate does not take",
            122,
            variants.parse_pool_factor,
        ),
    )
    truncate_dim: int | None = _setting(
        None,
        check=variants.truncate_dim_value,
        flag=Flag(
            "--truncate-dim", "keep each vector's first D dimensions, renormalised (Matryoshka)", 124, int
        ),
    )
    quantize: str | None = _setting(
        None,
        check=one_of(None, *QUANTIZATIONS),
        flag=Flag("--quantize", "torch's dynamic int8 linear layers (CPU)", 126, choices=QUANTIZATIONS),
    )
    scoring: Scoring | None = _setting(
        None,
        check=one_of(None, *SCORINGS),
        flag=Flag(
            "--scoring",
            "MaxSim mode (default: pylate for NanoBEIR so card numbers reproduce, masked elsewhere)",
            170,
            choices=SCORINGS,
        ),
    )
    pylate_chunk_size: int = _setting(50_000, check=positive)
    index: str = _setting(
        "exact",
        check=one_of(*INDEXES),
        flag=Flag(
            "--index",
            "retrieval: exact MaxSim over every document, or a PLAID compressed index",
            180,
            choices=INDEXES,
        ),
    )
    first_stage: str | None = _setting(
        None,
        check=_named_stage,
        flag=Flag("--first-stage", "rerank mode: 'bm25', a TREC run file, or a dense model", 230),
    )
    rerank_depth: int = _setting(
        100, check=positive, flag=Flag("--rerank-depth", "rerank mode: first-stage hits rescored", 240, int)
    )
    plaid_nbits: int = _setting(
        4,
        check=lambda value, flag: check_nbits(value, field=flag),
        flag=Flag("--nbits", "PLAID residual bits: 1, 2 or 4 (default %(default)s)", 190, int),
    )
    # PLAID search knobs; None: ``harness.plaid.default_search_settings(k)``
    plaid_n_probe: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag("--n-probe", "PLAID: centroids probed per query token (default by --k)", 200, int),
    )
    plaid_centroid_score_threshold: float | None | Literal["default"] = _setting(
        "default",
        check=check_threshold,
        flag=Flag(
            "--centroid-score-threshold",
            "PLAID: prune centroids scoring below this in stage 3 ('none': no pruning; default by --k)",
            210,
            parse_threshold,
        ),
    )
    plaid_n_full_scores: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag("--n-full-scores", "PLAID: stage-3 candidates kept (default by --k)", 220, int),
    )
    k: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag(
            "--k", f"ranking depth (default {CARD_DEPTH} for card tasks, {TREC_DEPTH} for trec)", 250, int
        ),
    )
    cache_dir: Path | None = _setting(  # None: no cache (the CLI's --no-cache)
        default_factory=_default_cache_dir,
        flag=Flag(
            "--cache-dir",
            "embedding cache (default $HARNESS_CACHE_DIR or ~/.cache/...)",
            260,
            Path,
            default=None,
        ),
    )
    overwrite: bool = _setting(
        False,
        flag=Flag("--overwrite", "recompute even when a matching result exists", 320, action="store_true"),
    )
    save_run: bool = _setting(
        False,
        flag=Flag("--save-run", "also write TREC run files under <output>/runs/", 330, action="store_true"),
    )
    show_progress: bool = True  # the CLI's --quiet turns it off
    trust_remote_code: bool = _setting(
        False,
        flag=Flag(
            "--trust-remote-code",
            "run Python code shipped with a Hub model (off: such a model is refused)",
            340,
            action="store_true",
        ),
    )
    model_name: str | None = _setting(
        None,
        flag=Flag("--model-name", "model id stored in the results (default: folder name or Hub id)", 10),
    )
    # ColBERT token limits replacing the checkpoint's (PyLate's constructor arguments); e.g.
    # LongEmbed's long-context rows are run with document_length 4096 or 32768
    document_length: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag("--document-length", "ColBERT: max document tokens (default: checkpoint's)", 20, int),
    )
    query_length: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag("--query-length", "ColBERT: query tokens (default: checkpoint's)", 30, int),
    )
    # prompts replacing the checkpoint's (None: the checkpoint's), recorded in the model settings
    query_prompt: str | None = _setting(
        None,
        flag=Flag("--query-prompt", "text put before every query (default: the checkpoint's prompts)", 40),
    )
    document_prompt: str | None = _setting(
        None,
        flag=Flag("--document-prompt", "text put before every document (default: the checkpoint's)", 50),
    )
    revision: str | None = _setting(
        None,
        flag=Flag(
            "--revision",
            "Hub model: the branch, tag or commit to load (default: a registered pin, else main)",
            60,
        ),
    )
    # activations one encoder batch may take (bytes, or a size such as "4GiB"); batches are cut below it
    max_memory: int | str = _setting(
        DEFAULT_MAX_MEMORY,
        flag=Flag(
            "--max-memory",
            "activations one encoder batch may take, e.g. 4GiB, 512MB (default %(default)s): batches of "
            "long documents are cut below it; a text that alone exceeds it is refused before any work",
            130,
            default="4GiB",
        ),
    )
    # transformers attention implementation; None: harness.attention's where supported, else the default
    attention: str | None = _setting(
        None,
        flag=Flag(
            "--attention",
            "attention kernel: blockwise = memory linear in length (ModernBERT, BERT); sdpa / eager = "
            "transformers' own; %(default)s (default) = blockwise where supported, else sdpa",
            140,
            choices=(*ATTENTION_SPELLINGS, *TRANSFORMERS_ATTENTIONS),
            default="auto",
        ),
    )
    # CPU kernels (harness.kernels): "auto" oneDNN's linear (GELU/GLU fused) on AVX-512 CPUs, and the
    # compiled rotary; "default" torch's and transformers' own; "onednn" forced
    kernels: str = _setting(
        "auto",
        check=one_of(*KERNEL_MODES),
        flag=Flag(
            "--kernels",
            "CPU kernels: auto = oneDNN's linear layers with the feed-forward GELU (and ModernBERT's "
            "gate) fused in on CPUs where torch runs AVX-512 kernels, torch's elsewhere, and a compiled "
            "rotary embedding; default = torch's and transformers' own; onednn = force oneDNN. Same "
            "numbers (1e-6); what ran is recorded in the results (model.kernels)",
            150,
            choices=KERNEL_MODES,
        ),
    )
    # where the encode stage runs (harness.executor): "local", or "ray" (address None: a local cluster,
    # "auto": the running one; workers: CPU actors, or the GPUs to use on CUDA)
    executor: str = _setting(
        "local",
        check=one_of(*EXECUTORS),
        flag=Flag(
            "--executor",
            "where encoding runs: %(default)s (default, this process) or ray (workers that each hold the "
            "model; shards land in the cache; needs the [ray] extra)",
            280,
            choices=EXECUTORS,
        ),
    )
    ray_address: str | None = _setting(
        None,
        flag=Flag(
            "--ray-address",
            "ray: the cluster to join ('auto': the running one; default: start a local one)",
            290,
        ),
    )
    workers: int | None = _setting(
        None,
        check=positive_or_none,
        flag=Flag(
            "--workers",
            "ray: CPU workers (default: one per CPU); on --device cuda, GPUs to use (default all)",
            300,
            int,
        ),
    )
    latency_queries: int = _setting(
        100,
        check=non_negative,
        flag=Flag(
            "--latency-queries",
            "queries of each task also searched one at a time after a warm-up, for p50/p95/p99 latency "
            "(the first N in file order; 0 skips; default %(default)s)",
            305,
            int,
        ),
    )
    shard_size: int = _setting(  # texts per embedding-cache shard (the unit of work on Ray)
        DEFAULT_SHARD_SIZE,
        check=positive,
        flag=Flag(
            "--shard-size",
            "texts per embedding-cache shard, the unit of work on Ray (default %(default)s; an existing "
            "cache entry keeps its own)",
            310,
            int,
        ),
    )

    def __post_init__(self) -> None:
        for name in ("data_dir", "output_dir", "cache_dir"):  # notebooks pass strings
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "max_memory", parse_size(self.max_memory, flag_of("max_memory")))
        object.__setattr__(self, "attention", _attention(self.attention, flag_of("attention")))
        check_fields(self)
        if self.executor == "ray":
            require_ray()
            if self.cache_dir is None:
                message = "Ray workers write into the embedding cache: drop --no-cache"
                raise InputError(message, field=flag_of("executor"))
        elif self.ray_address is not None or self.workers is not None:
            name = "ray_address" if self.ray_address is not None else "workers"
            raise InputError(f"only with {flag_of('executor')} ray", field=flag_of(name))
        _check_device(self.device, self.executor)
        variants.check_quantize(self.quantize, dtype=self.dtype, kernels=self.kernels, device=self.device)

    def replace(self, **overrides: Any) -> EvalSettings:
        """A copy with ``overrides`` (EvalSettings fields), checked again."""
        for key in overrides:
            if key not in {f.name for f in dataclasses.fields(self)}:
                raise TypeError(f"unknown setting {key!r}")
        return dataclasses.replace(self, **overrides)

    @property
    def max_memory_bytes(self) -> int:
        """``max_memory`` in bytes (a size such as "4GiB" is parsed when the settings are made)."""
        return int(self.max_memory)

    def record(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (paths as strings), as results files keep them."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def flag_of(name: str) -> str:
    """The flag that sets field ``name`` (``"plaid_n_probe"`` -> ``"--n-probe"``); a field that is
    no flag (the Python API's ``pylate_chunk_size``) is named as it is."""
    return _flag_of(EvalSettings, name)

"""The index on disk: a folder of ``.npy`` arrays plus ``manifest.json`` (format version, sizes,
build parameters, sha256 / size / dtype / shape of every array file), and reading it back with every
check that names the bad file.

Stored: the codec (int8 centroids + scales, bucket cutoffs and weights) and per token its centroid
code and packed residual buckets, plus doc offsets: ``dim * nbits / 8 + code bytes`` per token,
``K * (dim + 4)`` and 8 bytes per document. The doc -> centroids map and the inverted file are not
stored but derived when the index is opened (:func:`derive_maps`). ``build_index`` writes a
temporary folder and renames it; ``add_documents`` writes new array files next to the old ones and
commits by atomically replacing the manifest, which is always written last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.fileio import fsync_path, write_json_atomic
from harness.hashing import file_sha256
from harness.plaid.codec import ResidualCodec
from harness.types import consecutive_ranges

FORMAT = "harness-plaid"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
TIMINGS = "timings.json"  # wall-clock build / add seconds: beside the manifest, so identical builds
# have identical manifests (and disk sizes); not part of the index's identity or its size
CODEC_ARRAYS = (
    "centroid_codes",  # [K, dim] int8: centroid c = centroid_codes[c] * centroid_scales[c]
    "centroid_scales",  # [K] float32
    "bucket_cutoffs",  # [2^nbits - 1] float32
    "bucket_weights",  # [2^nbits] float32
)
DOC_ARRAYS = (
    "doc_offsets",  # [n_docs + 1] int64: doc i owns tokens doc_offsets[i]:doc_offsets[i+1]
    "codes",  # [n_tokens] centroid id per token (uint16 when K <= 65536, else int32)
    "residuals",  # [n_tokens, dim * nbits / 8] uint8 packed bucket ids, first dimension high bits
)
STORED = CODEC_ARRAYS + DOC_ARRAYS
# derived on open (in memory): doc_centroid_offsets [n_docs + 1] int64, doc_centroids [n_pairs]
# (each doc's distinct centroid ids, ascending), ivf_offsets [K + 1] int64, ivf [n_pairs] int32
# (each centroid's doc ids, ascending)
DERIVED = ("doc_centroid_offsets", "doc_centroids", "ivf_offsets", "ivf")


def save_codec(folder: Path, codec: ResidualCodec) -> dict[str, Path]:
    """Write the codec arrays (generation 0) into ``folder``; array name -> file."""
    paths = {name: folder / f"{name}-g0.npy" for name in CODEC_ARRAYS}
    np.save(paths["centroid_codes"], codec.centroid_codes)
    np.save(paths["centroid_scales"], codec.centroid_scales)
    np.save(paths["bucket_cutoffs"], codec.cutoffs)
    np.save(paths["bucket_weights"], codec.weights)
    return paths


def _file_entry(path: Path) -> dict[str, Any]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    fsync_path(path)  # durable before the manifest names it
    return {
        "path": path.name,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
    }


def write_manifest(
    folder: Path,
    paths: dict[str, Path],
    *,
    dim: int,
    nbits: int,
    n_centroids: int,
    n_docs: int,
    n_tokens: int,
    generation: int,
    build: dict[str, Any],
) -> None:
    """Describe the array files ``paths`` and commit them: the manifest is replaced atomically."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dim": dim,
        "nbits": nbits,
        "n_centroids": n_centroids,
        "n_docs": n_docs,
        "n_tokens": n_tokens,
        "generation": generation,
        "build": build,
        "files": {name: _file_entry(paths[name]) for name in STORED},
    }
    write_json_atomic(folder / MANIFEST, manifest, indent=1, sort_keys=True)


def read_timings(folder: Path) -> dict[str, Any]:
    """The index's build timings (``{}`` when absent or unreadable: they are informative only)."""
    try:
        data = json.loads((folder / TIMINGS).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_timings(folder: Path, timings: dict[str, Any]) -> None:
    write_json_atomic(folder / TIMINGS, timings, indent=1, sort_keys=True)


def _require(manifest: dict[str, Any], key: str, kind: type, file: str) -> Any:
    value = manifest.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"missing or not a {kind.__name__}", file=file, field=key)
    return value


def read_index(
    path: Path, *, verify: bool, max_memory_bytes: int
) -> tuple[dict[str, Any], dict[str, np.ndarray], ResidualCodec]:
    """(manifest, arrays, codec) of the index folder ``path``; arrays holds the stored arrays
    (memory-mapped) and the derived maps. InputError naming the bad file.

    Always checked: manifest format/version/fields, each file's size, .npy dtype and shape, the
    array sizes against each other, monotone doc offsets and centroid ids < n_centroids (read
    while deriving the maps: ~0.1 s per million tokens). ``verify=True`` also hashes every file
    (sha256), i.e. reads the whole index once more (~1 s per GB per core).
    """
    path = Path(path)
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise InputError("not a PLAID index: manifest missing", file=str(mpath)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"manifest is not valid JSON: {e}", file=str(mpath)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} manifest", file=str(mpath), field="format")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"unsupported format version {manifest.get('format_version')!r} (expected "
            f"{FORMAT_VERSION}; rebuild the index)",
            file=str(mpath),
            field="format_version",
        )
    ints = {
        key: _require(manifest, key, int, str(mpath))
        for key in ("dim", "nbits", "n_centroids", "n_docs", "n_tokens", "generation")
    }
    files = _require(manifest, "files", dict, str(mpath))
    _require(manifest, "build", dict, str(mpath))
    dim, nbits, k, n_docs, n_tokens = (ints[x] for x in ("dim", "nbits", "n_centroids", "n_docs", "n_tokens"))
    arrays: dict[str, np.ndarray] = {}
    for name in STORED:
        entry = files.get(name)
        if not isinstance(entry, dict) or not {"path", "bytes", "sha256", "dtype", "shape"} <= set(entry):
            raise InputError("missing or incomplete file entry", file=str(mpath), field=f"files.{name}")
        fpath = path / str(entry["path"])
        if Path(entry["path"]).name != entry["path"]:
            raise InputError("file path must be a bare name", file=str(mpath), field=f"files.{name}.path")
        if not fpath.is_file():
            raise InputError("array file missing", file=str(fpath))
        if fpath.stat().st_size != entry["bytes"]:
            raise InputError(
                f"size {fpath.stat().st_size} != {entry['bytes']} in manifest (truncated?)",
                file=str(fpath),
            )
        if verify and file_sha256(fpath) != entry["sha256"]:
            raise InputError("sha256 mismatch with manifest (corrupted or tampered)", file=str(fpath))
        try:
            arr = np.load(fpath, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise InputError(f"not a readable .npy file: {e}", file=str(fpath)) from None
        if arr.dtype.str != entry["dtype"] or list(arr.shape) != entry["shape"]:
            raise InputError(
                f"dtype/shape {arr.dtype.str} {list(arr.shape)} differ from manifest", file=str(fpath)
            )
        arrays[name] = np.asarray(arr)  # a plain view of the map: memmap slicing is slow
    expected = {
        "centroid_codes": ((k, dim), np.int8),
        "centroid_scales": ((k,), np.float32),
        "bucket_cutoffs": (((1 << nbits) - 1,), np.float32),
        "bucket_weights": ((1 << nbits,), np.float32),
        "doc_offsets": ((n_docs + 1,), np.int64),
        "codes": ((n_tokens,), np.uint16 if k <= 1 << 16 else np.int32),
        "residuals": ((n_tokens, dim * nbits // 8), np.uint8),
    }
    for name, (shape, dtype) in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise InputError(
                f"{arrays[name].dtype} {arrays[name].shape} != {np.dtype(dtype)} {shape} implied by "
                "the manifest",
                file=str(path / files[name]["path"]),
            )
    off = np.asarray(arrays["doc_offsets"])
    if off[0] != 0 or off[-1] != n_tokens or np.any(np.diff(off) < 0):
        raise InputError(
            "offsets not monotone from 0 to n_tokens", file=str(path / files["doc_offsets"]["path"])
        )
    codec = ResidualCodec(
        np.asarray(arrays["centroid_codes"]),
        np.asarray(arrays["centroid_scales"]),
        np.asarray(arrays["bucket_cutoffs"]),
        np.asarray(arrays["bucket_weights"]),
        nbits,
    )
    codes_file = str(path / files["codes"]["path"])
    arrays |= derive_maps(off, arrays["codes"], k, max_memory_bytes, codes_file)
    return manifest, arrays, codec


def derive_maps(
    doc_offsets: np.ndarray, codes: np.ndarray, k: int, max_memory_bytes: int, codes_file: str
) -> dict[str, np.ndarray]:
    """The doc -> distinct centroids CSR and the inverted file centroid -> docs (both ascending), from
    the token codes: a sort of (doc, centroid) keys per doc chunk, then a stable counting sort of
    the pairs by centroid. Temporary memory stays within about ``max_memory_bytes``."""
    n_docs = len(doc_offsets) - 1
    per_doc = np.zeros(n_docs, np.int64)
    parts = []
    for a, b in consecutive_ranges(doc_offsets, max(1, max_memory_bytes // 40)):
        chunk = np.asarray(codes[doc_offsets[a] : doc_offsets[b]])
        if len(chunk) and int(chunk.max()) >= k:
            raise InputError(f"centroid id {int(chunk.max())} >= n_centroids {k}", file=codes_file)
        lengths = np.diff(doc_offsets[a : b + 1])
        key = np.unique(np.repeat(np.arange(b - a, dtype=np.int64) * k, lengths) + chunk)
        parts.append((key % k).astype(codes.dtype))
        per_doc[a:b] = np.bincount(key // k, minlength=b - a)
    doc_centroids = np.concatenate(parts) if parts else np.zeros(0, codes.dtype)
    dc_offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    counts = np.bincount(doc_centroids, minlength=k)
    ivf_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ivf = np.empty(len(doc_centroids), np.int32)
    cursor = ivf_offsets[:-1].copy()
    for a, b in consecutive_ranges(dc_offsets, max(1, max_memory_bytes // 40)):
        cents = doc_centroids[dc_offsets[a] : dc_offsets[b]]
        docs = np.repeat(np.arange(a, b, dtype=np.int32), per_doc[a:b])
        order = np.argsort(cents, kind="stable")  # stable: docs stay ascending inside a centroid
        cents, docs = cents[order], docs[order]
        group = np.bincount(cents, minlength=k)
        rank = np.arange(len(cents)) - (np.cumsum(group) - group)[cents]
        ivf[cursor[cents] + rank] = docs
        cursor += group
    return {
        "doc_centroid_offsets": dc_offsets,
        "doc_centroids": doc_centroids,
        "ivf_offsets": ivf_offsets,
        "ivf": ivf,
    }

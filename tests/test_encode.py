"""Encoders: parity with PyLate (ColBERT) and sentence-transformers (dense), loading errors, batching.

Tolerance for parity: 1e-5 max abs difference on L2-normalised float32 vectors. Both sides run the same
weights through the same transformers modules in float32; the only legitimate difference is batch
composition (we batch by token count, PyLate by character count), which changes padded widths and so
matmul blocking: observed differences are ~3e-7. A wrong token, mask or layer moves a unit vector by
O(0.1), so 1e-5 cannot hide a real divergence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from harness.encode import ColBERTEncoder, DenseEncoder, load_encoder, plan_batches
from harness.kernels import onednn_unavailable
from harness.kernels.linear import ONEDNN_CAPABILITIES
from harness.types import HarnessError, InputError
from tests.model_fixtures import PARITY_TOL, TEXTS, assert_parity, pylate_encode

# PyLate is a test dependency (`make setup` installs it); a missing one fails here rather than skipping.
needs_pylate = pytest.mark.pylate


@pytest.fixture(scope="module")
def pylate_reference(ettin_like_checkpoint: Path, bert_checkpoint: Path, tmp_path_factory) -> dict:
    """PyLate embeddings of TEXTS for both checkpoints and both sides, in one subprocess.

    ``resaved`` jobs load the checkpoint in PyLate, ``model.save`` it and re-load it: those folders
    are PyLate-written, so our loader is also checked on PyLate's own layout.
    """
    resave = tmp_path_factory.mktemp("pylate_resaved")
    jobs, keys = [], []
    for name, ck in (("ettin", ettin_like_checkpoint), ("bert", bert_checkpoint)):
        for is_query in (True, False):
            jobs.append({"checkpoint": str(ck), "texts": TEXTS, "is_query": is_query})
            keys.append((name, is_query))
        jobs.append({"checkpoint": str(ck), "texts": TEXTS, "is_query": True, "resave": str(resave / name)})
        keys.append((name, "resaved"))
    results = pylate_encode(jobs)
    return {"embeddings": dict(zip(keys, results, strict=True)), "resaved": resave}


@needs_pylate
@pytest.mark.pylate
@pytest.mark.parametrize("name", ["ettin", "bert"])
@pytest.mark.parametrize("is_query", [True, False])
@pytest.mark.parametrize("kernels", ["onednn", "default", "auto"])  # forced fast path, torch's own, the rule
def test_colbert_parity_with_pylate(
    name, is_query, kernels, pylate_reference, ettin_like_checkpoint, bert_checkpoint
):
    """PyLate's embeddings (1e-5) under each ``--kernels`` mode; what ran is derived from the rule
    (oneDNN's linear under "auto" where torch runs AVX-512 kernels and oneDNN is usable, the compiled
    rotary for ModernBERT unless "default"), not from the CPU the test was written on."""
    if kernels == "onednn" and onednn_unavailable() is not None:
        pytest.skip(str(onednn_unavailable()))
    checkpoint = ettin_like_checkpoint if name == "ettin" else bert_checkpoint
    encoder = load_encoder(checkpoint, kernels=kernels)
    ettin = name == "ettin"
    linear = kernels
    if kernels == "auto":
        by_isa = torch.backends.cpu.get_cpu_capability() in ONEDNN_CAPABILITIES
        linear = "onednn" if by_isa and onednn_unavailable() is None else "default"
    expected = {"mode": kernels, "linear": linear}
    expected |= {"fused": ("glu" if ettin else "gelu") if linear == "onednn" else "none"}
    expected |= {"rotary": "compiled" if ettin and kernels != "default" else "default"}
    assert encoder.kernels == expected
    ours = encoder.encode(TEXTS, is_query=is_query, batch_size=8, show_progress=False)
    assert ours.vectors.dtype == np.float32
    assert_parity(ours, pylate_reference["embeddings"][(name, is_query)], TEXTS)


@needs_pylate
@pytest.mark.pylate
@pytest.mark.parametrize("name", ["ettin", "bert"])
def test_loads_pylate_saved_checkpoint(name, pylate_reference):
    encoder = load_encoder(pylate_reference["resaved"] / name)
    ours = encoder.encode(TEXTS, is_query=True, show_progress=False)
    assert_parity(ours, pylate_reference["embeddings"][(name, "resaved")], TEXTS)


@needs_pylate
@pytest.mark.pylate
def test_stanford_checkpoint_parity_with_pylate(stanford_checkpoint):
    """A Stanford ColBERT layout (HF_ColBERT, artifact.metadata, projection in the backbone's file)
    encodes as PyLate 1.6.0 converts it: same token counts, max abs 1e-5 (float32 noise)."""
    texts = [*TEXTS, "[unused0] and [unused1] typed in a text", "UNUSED0 upper case"]
    jobs = [{"checkpoint": str(stanford_checkpoint), "texts": texts, "is_query": q} for q in (True, False)]
    reference = pylate_encode(jobs)
    encoder = load_encoder(stanford_checkpoint)
    settings = encoder.settings()
    assert (settings["query_prefix"], settings["document_prefix"]) == ("[unused0]", "[unused1]")
    assert (settings["query_length"], settings["document_length"], settings["dim"]) == (24, 120, 96)
    for is_query, ref in zip((True, False), reference, strict=True):
        assert_parity(encoder.encode(texts, is_query=is_query, batch_size=8, show_progress=False), ref, texts)


def test_stanford_checkpoint_from_a_bin_file(stanford_checkpoint, tmp_path):
    """An older Stanford checkpoint ships pytorch_model.bin (read with weights_only=True): the same
    embeddings as its safetensors twin; without artifact.metadata, PyLate's fallbacks apply."""
    folder = Path(shutil.copytree(stanford_checkpoint, tmp_path / "bin"))
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    texts = TEXTS[:12]
    a = load_encoder(folder).encode(texts, is_query=False, show_progress=False)
    b = load_encoder(stanford_checkpoint).encode(texts, is_query=False, show_progress=False)
    assert np.array_equal(a.offsets, b.offsets) and np.abs(a.vectors - b.vectors).max() <= PARITY_TOL
    (folder / "artifact.metadata").unlink()
    settings = load_encoder(folder).settings()
    assert (settings["query_prefix"], settings["query_length"], settings["document_length"]) == (
        "[unused0]",
        32,
        180,
    )


def test_colbert_settings_and_shapes(ettin_like_checkpoint, bert_checkpoint):
    ettin = load_encoder(ettin_like_checkpoint)
    assert isinstance(ettin, ColBERTEncoder) and ettin.multi_vector
    s = ettin.settings()
    assert (s["query_length"], s["document_length"], s["do_query_expansion"], s["do_lower_case"]) == (
        48,
        512,
        False,
        True,
    )
    assert s["dim"] == 48 and s["dtype"] == "float32" and json.loads(json.dumps(s)) == s
    # The backbone has 256-d embeddings over 4096 + 2 ([Q], [D]) rows; Dense layers have no bias.
    dense_params = 256 * 512 + 512 * 48
    assert ettin.parameter_count() == sum(p.numel() for p in ettin.model.parameters()) + dense_params
    assert ettin.model.get_input_embeddings().num_embeddings == 4098

    bert = load_encoder(bert_checkpoint)
    queries = bert.encode(["short", "a much longer query " * 20], is_query=True, show_progress=False)
    assert list(queries.lengths) == [24, 24]  # expansion pads, truncation caps, both keep all 24
    assert bert.encode(["short", "x"], is_query=True, show_progress=False).input_tokens == 48
    docs = bert.encode(["Hello, world!"], is_query=False, show_progress=False)
    # [CLS] [D] hello world [SEP]: the comma and "!" are in the skiplist.
    assert docs.lengths[0] == 5 and docs.input_tokens == 7  # the encoder read the comma and "!" too
    assert np.allclose(np.linalg.norm(docs.vectors, axis=1), 1, atol=1e-6)

    shorter = load_encoder(bert_checkpoint, query_length=16)
    assert shorter.settings()["query_length"] == 16 and shorter.settings() != bert.settings()
    assert list(shorter.encode(["short"], is_query=True, show_progress=False).lengths) == [16]


def test_order_restored_and_batching_invariant(bert_checkpoint):
    """Length-sorted, token-budgeted batches give each text what it gets when encoded alone."""
    encoder = load_encoder(bert_checkpoint, max_tokens_per_batch=96)
    texts = TEXTS[:24]
    for is_query in (True, False):
        batched = encoder.encode(texts, is_query=is_query, batch_size=5, show_progress=False)
        for i, text in enumerate(texts):
            alone = encoder.encode([text], is_query=is_query, show_progress=False)
            assert batched[i].shape == alone[0].shape
            assert np.abs(batched[i] - alone[0]).max() <= PARITY_TOL
    empty = encoder.encode([], is_query=False, show_progress=False)
    assert len(empty) == 0 and empty.dim == 24


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 300), max_size=60),
    batch_size=st.integers(1, 16),
    max_tokens=st.integers(1, 600),
)
def test_plan_batches(lengths, batch_size, max_tokens):
    lengths = np.array(lengths, np.int64)
    batches = plan_batches(lengths, batch_size, max_tokens)
    flat = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert np.all(np.diff(lengths[flat]) <= 0)  # longest first
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= max_tokens


def test_dense_parity_with_sentence_transformers(minilm_dense_model):
    from sentence_transformers import SentenceTransformer

    encoder = load_encoder(minilm_dense_model)
    assert isinstance(encoder, DenseEncoder) and not encoder.multi_vector
    assert encoder.settings()["pooling"] == "mean" and encoder.settings()["max_seq_length"] == 256
    reference = SentenceTransformer(str(minilm_dense_model), device="cpu")
    # The model has no prompts, so both sides encode alike: the document side gets a smaller sample.
    for is_query, texts in ((True, TEXTS), (False, TEXTS[::4])):
        st_encode = reference.encode_query if is_query else reference.encode_document
        ours = encoder.encode(texts, is_query=is_query, batch_size=8, show_progress=False)
        expected = st_encode(texts, batch_size=8, convert_to_numpy=True)
        assert ours.vectors.shape == expected.shape and list(ours.lengths) == [1] * len(texts)
        assert np.abs(ours.vectors - expected).max() <= PARITY_TOL


def test_prompted_dense_model_equals_sentence_transformers(minilm_dense_model, tmp_path):
    """Prompts in config_sentence_transformers.json (bge / arctic-embed style) apply as
    ``encode_query`` / ``encode_document`` apply them; a caller's query prompt (``--query-prompt``)
    as ``encode(..., prompt=...)`` does. 1e-5, float32 noise; recorded in the settings."""
    from sentence_transformers import SentenceTransformer

    folder = Path(shutil.copytree(minilm_dense_model, tmp_path / "prompted"))
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    prompts = {"query": "Represent this sentence for searching relevant passages: ", "document": "passage: "}
    (folder / "config_sentence_transformers.json").write_text(json.dumps({**config, "prompts": prompts}))
    reference = SentenceTransformer(str(folder), device="cpu")
    texts = TEXTS[::3]
    encoder = load_encoder(folder)
    assert (encoder.settings()["query_prompt"], encoder.settings()["document_prompt"]) == tuple(
        prompts.values()
    )
    for is_query, expected in (
        (True, reference.encode_query(texts, batch_size=8)),
        (False, reference.encode_document(texts, batch_size=8)),
    ):
        ours = encoder.encode(texts, is_query=is_query, batch_size=8, show_progress=False)
        assert np.abs(ours.vectors - expected).max() <= PARITY_TOL
    mine = "Query for retrieval: "
    overridden = load_encoder(folder, query_prompt=mine)
    assert overridden.settings()["query_prompt"] == mine and overridden.fingerprint == encoder.fingerprint
    assert overridden.settings() != encoder.settings()  # so a cache keyed on settings misses
    ours = overridden.encode(texts, is_query=True, batch_size=8, show_progress=False)
    assert np.abs(ours.vectors - reference.encode(texts, prompt=mine, batch_size=8)).max() <= PARITY_TOL


def test_colbert_prompts_per_side(bert_checkpoint):
    """A ColBERT model's prompt (PyLate: ``default_prompt_name``, both sides) can be set per side; the
    query side with a prompt equals encoding the prompted text without one."""
    plain = load_encoder(bert_checkpoint)
    assert plain.settings()["query_prompt"] == plain.settings()["document_prompt"] == ""
    prompted = load_encoder(bert_checkpoint, query_prompt="search: ")
    text = ["what causes fever"]
    a = prompted.encode(text, is_query=True, show_progress=False)
    b = plain.encode(["search: " + text[0]], is_query=True, show_progress=False)
    assert np.array_equal(a.vectors, b.vectors)
    c = prompted.encode(text, is_query=False, show_progress=False)  # documents keep no prompt
    assert np.array_equal(c.vectors, plain.encode(text, is_query=False, show_progress=False).vectors)


def test_bfloat16_close_to_float32(ettin_like_checkpoint):
    """bf16 keeps 8 mantissa bits (relative error ~4e-3 per op): on these models each unit vector stays
    within cosine 0.999 of float32 (observed >= 0.9999); lengths must be identical."""
    texts = TEXTS[:10]  # short ones: bf16 matmuls are slow on CPUs without AMX
    fp32 = load_encoder(ettin_like_checkpoint)
    bf16 = load_encoder(ettin_like_checkpoint, dtype="bfloat16")
    assert bf16.settings()["dtype"] == "bfloat16" and bf16.settings() != fp32.settings()
    for is_query in (True, False):
        a = fp32.encode(texts, is_query=is_query, show_progress=False)
        b = bf16.encode(texts, is_query=is_query, show_progress=False)
        assert b.vectors.dtype == np.float32 and np.array_equal(a.lengths, b.lengths)
        assert (a.vectors * b.vectors).sum(axis=1).min() >= 0.999


def test_the_device_is_part_of_the_settings_and_weights_move_at_first_encode(bert_checkpoint):
    """``to(device)`` only records the device (a Ray driver hands the encoder on without a GPU); the
    device kind joins the settings, and so the cache key, off the CPU only (existing keys stay)."""
    encoder = load_encoder(bert_checkpoint)
    assert "device" not in encoder.settings()
    encoder.to("meta")  # a device every torch has: nothing moves until encode
    assert encoder.settings()["device"] == "meta"
    assert next(encoder.model.parameters()).device.type == "cpu"
    encoder.to("cpu")
    assert "device" not in encoder.settings()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (CI has none)")
def test_cuda_float32_equals_cpu(ettin_like_checkpoint, bert_checkpoint):
    """fp32 on a GPU against the CPU: same token counts, max abs 1e-5 (GEMM kernels differ, TF32 off)."""
    for checkpoint in (ettin_like_checkpoint, bert_checkpoint):
        cpu = load_encoder(checkpoint)
        gpu = load_encoder(checkpoint, device="cuda")
        assert gpu.settings()["device"] == "cuda"
        for is_query in (True, False):
            a = cpu.encode(TEXTS, is_query=is_query, show_progress=False)
            b = gpu.encode(TEXTS, is_query=is_query, show_progress=False)
            assert np.array_equal(a.offsets, b.offsets)
            assert np.abs(a.vectors - b.vectors).max() <= 1e-5


# ------------------------------------------------------------------------------ loading and errors


@pytest.fixture()
def bert_copy(bert_checkpoint, tmp_path) -> Path:
    return Path(shutil.copytree(bert_checkpoint, tmp_path / "ck"))


def test_missing_modules_json(bert_copy):
    (bert_copy / "modules.json").unlink()
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file.endswith("modules.json")


def test_missing_dense_weights(bert_copy):
    (bert_copy / "1_Dense" / "model.safetensors").unlink()
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file.endswith("1_Dense")


def test_dense_shape_mismatch(bert_copy):
    path = bert_copy / "1_Dense" / "model.safetensors"
    state = load_file(str(path))
    state["linear.weight"] = state["linear.weight"][:, :32].contiguous()
    save_file(state, str(path))
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file.endswith("model.safetensors") and err.value.field == "linear.weight"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"in_features": 32}, "in_features"), ({"activation_function": "os.system"}, "activation_function")],
)
def test_dense_config_errors(bert_copy, change, field):
    cfg_file = bert_copy / "1_Dense" / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), **change}))
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file == str(cfg_file) and err.value.field == field


def test_bad_config_values(bert_copy):
    cfg_file = bert_copy / "config_sentence_transformers.json"
    cfg_file.write_text('{\n  "query_length": 0\n}')
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.field == "query_length" and err.value.file == str(cfg_file)
    cfg_file.write_text('{\n  "query_length": 32,\n  oops\n}')
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.line == 3
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy, no_such_setting=1)
    assert err.value.field == "no_such_setting"
    with pytest.raises(InputError):
        load_encoder(bert_copy, dtype="int8")


def test_unreachable_hub_id_and_missing_folder(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HarnessError, match="no-such-org/no-such-model"):
        load_encoder("no-such-org/no-such-model")
    with pytest.raises(InputError):
        load_encoder(tmp_path / "absent")


def test_bin_only_checkpoint_loads_with_weights_only(bert_checkpoint, bert_copy, monkeypatch):
    """pytorch_model.bin everywhere: same embeddings, and every torch.load call is weights_only=True."""
    for folder in (bert_copy, bert_copy / "1_Dense"):
        path = folder / "model.safetensors"
        torch.save(load_file(str(path)), folder / "pytorch_model.bin")
        path.unlink()
    calls: list[bool] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only") is True)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    from_bin = load_encoder(bert_copy)
    assert len(calls) >= 2 and all(calls)
    reference = load_encoder(bert_checkpoint)
    a = from_bin.encode(TEXTS[:10], is_query=False, show_progress=False)
    b = reference.encode(TEXTS[:10], is_query=False, show_progress=False)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.vectors, b.vectors)


class _Payload:
    """Unpickling this runs a shell command: what a malicious pytorch_model.bin would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fault", ["truncated safetensors", "pickle payload in .bin"])
def test_bad_backbone_weights_are_a_clean_error(bert_copy, tmp_path, capsys, fault):
    """The backbone's weights file broken or hostile: an InputError naming that file (CLI: exit 2 and
    one line, no traceback); the payload never runs."""
    import pickle

    from harness.cli import main

    weights = bert_copy / "model.safetensors"
    marker = tmp_path / "pwned"
    if fault == "truncated safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
        name = "model.safetensors"
    else:
        weights.unlink()
        (bert_copy / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload(marker)}))
        name = "pytorch_model.bin"
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file == str(bert_copy / name) and "cannot load the backbone" in str(err.value)
    code = main(["evaluate", "--model", str(bert_copy), "--tasks", "NanoSciFact", "--no-cache", "--quiet"])
    stderr = capsys.readouterr().err
    assert code == 2 and str(bert_copy / name) in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1 and not marker.exists()


def test_fingerprint_covers_custom_code(bert_checkpoint, bert_copy):
    """A checkpoint's own modelling code (``--trust-remote-code``) is part of what the cache is keyed on."""
    first = load_encoder(bert_copy).fingerprint
    (bert_copy / "modeling_custom.py").write_text("SCALE = 1.0\n")
    second = load_encoder(bert_copy).fingerprint
    (bert_copy / "modeling_custom.py").write_text("SCALE = 2.0\n")
    assert len({first, second, load_encoder(bert_copy).fingerprint}) == 3


def test_fingerprint(bert_checkpoint, bert_copy):
    first = load_encoder(bert_copy).fingerprint
    assert load_encoder(bert_checkpoint).fingerprint == first  # content, not location
    path = bert_copy / "1_Dense" / "model.safetensors"
    state = load_file(str(path))
    state["linear.bias"] = state["linear.bias"] + 1e-3
    save_file(state, str(path))
    assert load_encoder(bert_copy).fingerprint != first


@pytest.mark.parametrize("name", ["ettin", "bert", "dense"])
def test_tokenizing_in_chunks_changes_nothing(
    name, ettin_like_checkpoint, bert_checkpoint, minilm_dense_model, monkeypatch
):
    """Texts are tokenized ``TOKENIZE_CHUNK`` at a time: the same ids (ColBERT: with the prefix token
    inserted, widths and output counts) as one tokenizer call over all of them, chunk boundaries
    anywhere, and so the same embeddings (1e-6: the first forward of a process can differ from later
    ones in the last bits, see the closing note of this change; a wrong id moves them by far more)."""
    import harness.encode.tokenize as encode_module

    path = {"ettin": ettin_like_checkpoint, "bert": bert_checkpoint, "dense": minilm_dense_model}[name]
    encoder = load_encoder(path)
    one_call, chunked = len(TEXTS) + 1, 3
    outputs: dict[int, dict] = {one_call: {}, chunked: {}}
    for chunk in (one_call, chunked):
        monkeypatch.setattr(encode_module, "TOKENIZE_CHUNK", chunk)
        for is_query in (True, False):
            if isinstance(encoder, ColBERTEncoder):
                ids, widths, counts = encoder._token_ids(TEXTS, is_query)
                token_ids = ([x.tolist() for x in ids], widths.tolist(), counts.tolist())
            else:
                max_length = encoder.config.max_seq_length
                ids = encoder._tokenize(TEXTS, encoder.config.prompt(is_query), max_length)
                token_ids = ([x.tolist() for x in ids], [], [])
            embeddings = encoder.encode(TEXTS, is_query=is_query, show_progress=False)
            outputs[chunk][is_query] = token_ids, embeddings
    for is_query in (True, False):
        (ids_a, emb_a), (ids_b, emb_b) = outputs[one_call][is_query], outputs[chunked][is_query]
        assert ids_a == ids_b, is_query
        assert np.array_equal(emb_a.offsets, emb_b.offsets)
        assert np.abs(emb_a.vectors - emb_b.vectors).max() <= 1e-6


_TOKENIZE_MEMORY_SCRIPT = """
import os
import sys
import harness.encode.tokenize as encode_module
from harness.encode import load_encoder

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

encoder = load_encoder(sys.argv[1])
encode_module.TOKENIZE_CHUNK = int(sys.argv[2])
texts = [f"document {i}: " + "many words of text that get truncated " * 150 for i in range(3000)]
encoder._token_ids(texts[:10], False)
before = rss()
ids, _, _ = encoder._token_ids(texts, False)
print(rss() - before, sum(map(len, ids)))
"""


@pytest.mark.slow
def test_tokenizing_memory_does_not_grow_with_the_corpus(bert_checkpoint):
    """A fast tokenizer's output (token strings, offsets, each text's truncated overflow) is tens of
    times the ids kept; tokenized in chunks, a corpus's tokenization costs little more than its ids.
    3000 texts of ~6 kB truncated to 64 tokens: measured +51 MB in chunks of 256, +581 MB in one call
    (asserted: chunks < 128 MB and < a quarter of one call; a subprocess, so RSS is its own)."""
    import harness.encode.tokenize as encode_module

    growth = {}
    for chunk in (encode_module.TOKENIZE_CHUNK, 10**6):
        proc = subprocess.run(
            [sys.executable, "-c", _TOKENIZE_MEMORY_SCRIPT, str(bert_checkpoint), str(chunk)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        grown, n_ids = map(int, proc.stdout.split())
        assert n_ids == 3000 * 64
        growth[chunk] = grown
    assert growth[encode_module.TOKENIZE_CHUNK] < min(128 * 2**20, growth[10**6] / 4), growth

"""harness.kernels: oneDNN's prepacked linear gives the default path's embeddings (1e-5 on unit vectors,
the parity tolerance of tests/test_encode.py; observed ~1e-7), a forced fallback gives the unpatched
model's bits, the choice is recorded, encoders still pickle, and a forced kernel that cannot run says
why. The Ettin-shaped ModernBERT has the real model's linear shapes; the BERT one has biases and a
residual Dense."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.encode import load_encoder
from harness.kernels import (
    KERNELS,
    KernelChoice,
    PackedLinear,
    fast_linear,
    onednn_unavailable,
    rotary_halves,
)

PARITY_TOL = 1e-5
needs_onednn = pytest.mark.skipif(onednn_unavailable() is not None, reason=str(onednn_unavailable()))
TEXTS = [
    "a",
    "Short text, with punctuation!",
    "rotary positions and sliding windows " * 40,  # past the 128-token local window
    "the quick brown fox jumps over the lazy dog " * 12,
    "numbers 123 4.56 and UPPER case",
]


def _encoder(path: Path):
    return load_encoder(path, name="kernels-test", kernels="default")  # torch's own: the reference


def _embed(encoder, is_query: bool = False) -> np.ndarray:
    return encoder.encode(TEXTS, is_query=is_query, batch_size=8, show_progress=False).vectors.copy()


def _modules(encoder) -> list[nn.Module]:
    return [encoder.model, encoder.dense]


def _linear_types(encoder) -> set[type]:
    return {type(m) for root in _modules(encoder) for m in root.modules() if isinstance(m, nn.Linear)}


@pytest.fixture(scope="module", params=["ettin", "bert"])
def checkpoint(request, ettin_like_checkpoint: Path, bert_checkpoint: Path) -> Path:
    return {"ettin": ettin_like_checkpoint, "bert": bert_checkpoint}[request.param]


@needs_onednn
def test_onednn_matches_default_and_fallback_is_identical(checkpoint: Path) -> None:
    encoder = _encoder(checkpoint)
    reference = {side: _embed(encoder, side) for side in (False, True)}
    choice = fast_linear(_modules(encoder), "onednn")
    assert choice.linear == "onednn" and choice.layers > 0
    assert _linear_types(encoder) == {PackedLinear}
    for side, ref in reference.items():
        diff = np.abs(_embed(encoder, side) - ref).max()
        assert diff <= PARITY_TOL, (side, diff)
    # forced fallback: plain nn.Linear again, the unpatched model's bits
    assert fast_linear(_modules(encoder), "default").linear == "default"
    assert _linear_types(encoder) == {nn.Linear}
    for side, ref in reference.items():
        np.testing.assert_array_equal(_embed(encoder, side), ref)


def test_choice_is_recorded(ettin_like_checkpoint: Path) -> None:
    encoder = _encoder(ettin_like_checkpoint)
    choice = fast_linear(_modules(encoder), "auto", rows=64, repeats=2)
    assert isinstance(choice, KernelChoice) and choice.linear in KERNELS and choice.mode == "auto"
    assert choice.settings() == {"linear": choice.linear}
    assert choice.layers == 7 * 4 + 2  # Wqkv, Wo, Wi, Wo per layer; two Dense layers
    if onednn_unavailable() is None:
        assert set(choice.seconds) == set(KERNELS) and "measured" in choice.reason
    expected = PackedLinear if choice.linear == "onednn" else nn.Linear
    assert _linear_types(encoder) == {expected}
    forced = fast_linear(_modules(encoder), "default")
    assert forced == KernelChoice("default", "default", "asked for", 30)


@needs_onednn
def test_pickle_and_copy_round_trip(ettin_like_checkpoint: Path) -> None:
    encoder = _encoder(ettin_like_checkpoint)
    fast_linear(_modules(encoder), "onednn")
    before = _embed(encoder)
    keys = set(encoder.model.state_dict())
    for clone in (pickle.loads(pickle.dumps(encoder)), copy.deepcopy(encoder)):  # what Ray does
        assert _linear_types(clone) == {PackedLinear}
        np.testing.assert_array_equal(_embed(clone), before)
        assert set(clone.model.state_dict()) == keys
    assert not any(k.endswith("_packed") for k in keys)


def test_unavailable_onednn_is_an_error_when_forced(ettin_like_checkpoint: Path, monkeypatch) -> None:
    encoder = _encoder(ettin_like_checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(torch.backends.mkldnn, "enabled", False)
        with pytest.raises(RuntimeError, match="'onednn' was asked for but cannot run: oneDNN is disabled"):
            fast_linear(_modules(encoder), "onednn")
        choice = fast_linear(_modules(encoder), "auto")
        assert choice.linear == "default" and "disabled" in choice.reason and not choice.seconds
    assert torch.backends.mkldnn.enabled
    with pytest.raises(RuntimeError, match="encoding on cuda"):
        fast_linear(_modules(encoder), "onednn", device="cuda")
    assert fast_linear(_modules(encoder), "auto", device="cuda").linear == "default"
    assert _linear_types(encoder) == {nn.Linear}
    with pytest.raises(ValueError, match="unknown linear kernel mode 'fast'"):
        fast_linear(_modules(encoder), "fast")


@needs_onednn
def test_packed_linear_follows_its_weight_and_autograd() -> None:
    torch.manual_seed(0)
    layer, x = nn.Linear(32, 16), torch.randn(5, 7, 32)
    fast_linear(layer, "onednn")
    assert type(layer) is PackedLinear
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        assert layer(x[:0]).shape == (0, 7, 16)
    with torch.no_grad():
        layer.weight.mul_(2)  # in place: the packed copy must follow
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    layer(x).sum().backward()  # grad enabled: F.linear, so autograd works
    assert layer.weight.grad is not None
    if onednn_unavailable(torch.bfloat16) is None:
        layer.to(torch.bfloat16)
        with torch.inference_mode():
            xb = x.bfloat16()
            expected = torch.nn.functional.linear(xb, layer.weight, layer.bias)
            torch.testing.assert_close(layer(xb), expected, atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_halves_is_transformers_rotary_bit_for_bit(ettin_like_checkpoint: Path, dtype) -> None:
    """On the fixture's own rotary tables (global and local), strided q/k views as ModernBERT passes
    them: the same bits as transformers' ``apply_rotary_pos_emb``."""
    from transformers.models.modernbert import modeling_modernbert as modeling

    encoder = load_encoder(ettin_like_checkpoint, kernels="default")
    assert modeling.apply_rotary_pos_emb is not rotary_halves  # "default" restores transformers' own
    reference = modeling.apply_rotary_pos_emb
    generator = torch.Generator().manual_seed(0)
    config = encoder.model.config
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    qkv = torch.randn(3, 130, 3, heads, dim, generator=generator).to(dtype)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    positions = torch.arange(130)[None].expand(3, -1)
    rotary = encoder.model.rotary_emb
    for layer_type in rotary.layer_types if hasattr(rotary, "layer_types") else [None]:
        args = (q, positions) if layer_type is None else (q, positions, layer_type)
        cos, sin = rotary(*args)
        ours, theirs = rotary_halves(q, k, cos, sin), reference(q, k, cos, sin)
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert torch.equal(a, b), layer_type
    load_encoder(ettin_like_checkpoint, kernels="auto")
    assert modeling.apply_rotary_pos_emb is rotary_halves


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("table_dtype", ["same", torch.float32, torch.float64])
@pytest.mark.parametrize(
    "layout", ["slices of one qkv buffer", "k before q in one buffer", "separate tensors"]
)
def test_rotary_halves_matches_every_dtype_and_layout(dtype, table_dtype, layout) -> None:
    """Every q/k and table dtype combination (the reference widens q/k with ``.float()`` and promotes
    with the tables), q and k strided slices of one buffer (as ModernBERT passes them, either order)
    or separate tensors: same bits."""
    from transformers.models.modernbert import modeling_modernbert as modeling

    # transformers' own, also when an encoder loaded earlier in this process installed ours
    reference = getattr(modeling, "_harness_reference_rotary", modeling.apply_rotary_pos_emb)
    assert reference is not rotary_halves
    generator = torch.Generator().manual_seed(1)
    qkv = torch.randn(2, 37, 3, 4, 64, generator=generator).to(dtype)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    if layout == "k before q in one buffer":
        q, k = k, q
    if layout == "separate tensors":
        q, k = q.contiguous(), k.contiguous()
    angles = torch.arange(37)[None, :, None].float() * torch.rand(32, generator=generator)
    tables = torch.cat((angles, angles), dim=-1)
    table_dtype = dtype if table_dtype == "same" else table_dtype
    cos, sin = tables.cos().to(table_dtype), tables.sin().to(table_dtype)
    for a, b in zip(rotary_halves(q, k, cos, sin), reference(q, k, cos, sin), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_kernel_choice_is_in_the_results_and_the_fallback_gives_the_same_metrics(
    ettin_like_checkpoint, tmp_path
):
    """``--kernels default`` (torch's and transformers' own) and the fast path: the same metrics
    (1e-6: float32 rounding of the embeddings moves no rank here), each recording what ran."""
    from harness.run import evaluate
    from tests.test_run import SCIFACT, _small_beir

    if not SCIFACT.exists():
        pytest.skip(f"{SCIFACT} missing")
    data = _small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=8)
    fast = "onednn" if onednn_unavailable() is None else "auto"
    runs = {}
    for mode in ("default", fast):
        [result] = evaluate(
            str(ettin_like_checkpoint), ["mini"], data_dir=data.parent, output_dir=None, cache_dir=None,
            show_progress=False, kernels=mode,
        )  # fmt: skip
        assert result.model["kernels"]["mode"] == mode and result.settings["kernels"] == mode
        runs[mode] = result
    assert runs["default"].model["kernels"] == {"mode": "default", "linear": "default", "rotary": "default"}
    assert runs[fast].model["kernels"]["rotary"] == "halves"
    a, b = runs["default"].subsets[0], runs[fast].subsets[0]
    for convention in ("card", "trec"):
        for metric, value in a.metrics(convention).items():
            assert b.metrics(convention)[metric] == pytest.approx(value, abs=1e-6), (convention, metric)

"""harness.kernels: oneDNN's prepacked linear, with ModernBERT's GLU fused into it, gives the default
path's embeddings (1e-5 on unit vectors, the parity tolerance of tests/test_encode.py; observed ~1e-7),
a forced fallback gives the unpatched model's bits, the choice is recorded, encoders still pickle, and
a forced kernel that cannot run says why; both rotary embeddings and the rotary tables give
transformers' bits, in the first forward of a process too. The Ettin-shaped ModernBERT has the real
model's linear shapes; the BERT one has biases and a residual Dense.

What ``--kernels auto`` should pick is derived here from the rules and the capabilities the code
detects (``torch.backends.cpu.get_cpu_capability()``, ``onednn_unavailable``), never from the CPU a
test was written on; fast paths this CPU cannot run are skipped with the reason. tests/test_isa.py
runs these tests again under a smaller instruction set (AVX2; AVX-512 without AMX)."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.encode import load_encoder
from harness.kernels import (
    KERNELS,
    ROTARY,
    KernelChoice,
    PackedLinear,
    fast_linear,
    onednn_unavailable,
    rotary_compiled,
    rotary_halves,
)
from harness.kernels.fusion import FUSIONS, FusedBertIntermediate, FusedModernBertMLP
from harness.kernels.linear import ONEDNN_CAPABILITIES
from harness.kernels.packed import CACHE_CAPACITY, POSTS, torch_linear

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


def _fused_blocks(encoder) -> int:
    fused = {f.fused for f in FUSIONS.values()}
    return sum(type(m) in fused for m in encoder.model.modules())


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
    ettin = encoder.model.config.model_type == "modernbert"
    assert _fused_blocks(encoder) == choice.blocks == encoder.model.config.num_hidden_layers
    assert choice.settings()["fused"] == ("glu" if ettin else "gelu")
    for side, ref in reference.items():
        diff = np.abs(_embed(encoder, side) - ref).max()
        assert diff <= PARITY_TOL, (side, diff)
    # forced fallback: plain nn.Linear and transformers' MLP again, the unpatched model's bits
    assert fast_linear(_modules(encoder), "default").linear == "default"
    assert _linear_types(encoder) == {nn.Linear} and _fused_blocks(encoder) == 0
    for side, ref in reference.items():
        np.testing.assert_array_equal(_embed(encoder, side), ref)


def test_choice_is_recorded(ettin_like_checkpoint: Path) -> None:
    encoder = _encoder(ettin_like_checkpoint)
    choice = fast_linear(_modules(encoder), "auto")
    assert isinstance(choice, KernelChoice) and choice.linear in KERNELS and choice.mode == "auto"
    capability = torch.backends.cpu.get_cpu_capability()
    by_isa = "onednn" if capability in ONEDNN_CAPABILITIES and onednn_unavailable() is None else "default"
    assert choice.linear == by_isa and (onednn_unavailable() or capability) in choice.reason
    fused = "glu" if choice.linear == "onednn" else "none"
    assert choice.settings() == {"linear": choice.linear, "fused": fused}
    assert choice.layers == 7 * 4 + 2  # Wqkv, Wo, Wi, Wo per layer; two Dense layers
    assert choice.blocks == 7 and _fused_blocks(encoder) == (7 if fused == "glu" else 0)
    expected = PackedLinear if choice.linear == "onednn" else nn.Linear
    assert _linear_types(encoder) == {expected}
    forced = fast_linear(_modules(encoder), "default")
    assert forced == KernelChoice("default", "default", "asked for", 30, 7, "glu")


@needs_onednn
def test_pickle_and_copy_round_trip(ettin_like_checkpoint: Path) -> None:
    encoder = _encoder(ettin_like_checkpoint)
    fast_linear(_modules(encoder), "onednn")
    before = _embed(encoder)
    keys = set(encoder.model.state_dict())
    for clone in (pickle.loads(pickle.dumps(encoder)), copy.deepcopy(encoder)):  # what Ray does
        assert _linear_types(clone) == {PackedLinear} and _fused_blocks(clone) == 7
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
        assert choice.linear == "default" and "disabled" in choice.reason
        patch.setattr(torch.backends.mkldnn, "enabled", True)
        patch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
        choice = fast_linear(_modules(encoder), "auto")  # by the ISA: torch's own off AVX-512
        assert choice.linear == "default" and "AVX2" in choice.reason
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


def _reference_rotary():
    """transformers' own ``apply_rotary_pos_emb``, also when an encoder loaded earlier in this process
    installed ours."""
    from transformers.models.modernbert import modeling_modernbert as modeling

    reference = getattr(modeling, "_harness_reference_rotary", modeling.apply_rotary_pos_emb)
    assert reference not in ROTARY.values()
    return reference


@pytest.mark.parametrize("rotary", [rotary_halves, rotary_compiled])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_is_transformers_rotary_bit_for_bit(ettin_like_checkpoint: Path, rotary, dtype) -> None:
    """On the fixture's own rotary tables (global and local), strided q/k views as ModernBERT passes
    them: the same bits as transformers' ``apply_rotary_pos_emb``; the encoder installs the compiled
    one ("auto") and restores transformers' ("default")."""
    from transformers.models.modernbert import modeling_modernbert as modeling

    encoder = load_encoder(ettin_like_checkpoint, kernels="default")
    assert modeling.apply_rotary_pos_emb is _reference_rotary() and encoder.kernels["rotary"] == "default"
    generator = torch.Generator().manual_seed(0)
    config = encoder.model.config
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    qkv = torch.randn(3, 130, 3, heads, dim, generator=generator).to(dtype)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    positions = torch.arange(130)[None].expand(3, -1)
    rotary_emb = encoder.model.rotary_emb
    for layer_type in rotary_emb.layer_types if hasattr(rotary_emb, "layer_types") else [None]:
        args = (q, positions) if layer_type is None else (q, positions, layer_type)
        cos, sin = rotary_emb(*args)
        ours, theirs = rotary(q, k, cos, sin), _reference_rotary()(q, k, cos, sin)
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert torch.equal(a, b), layer_type
    assert load_encoder(ettin_like_checkpoint, kernels="auto").kernels["rotary"] == "compiled"
    assert modeling.apply_rotary_pos_emb is rotary_compiled


@pytest.mark.parametrize("rotary", [rotary_halves, rotary_compiled])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("table_dtype", ["same", torch.float32, torch.float64])
@pytest.mark.parametrize(
    "layout", ["slices of one qkv buffer", "k before q in one buffer", "separate tensors", "tables per text"]
)
def test_rotary_matches_every_dtype_and_layout(rotary, dtype, table_dtype, layout) -> None:
    """Every q/k and table dtype combination (the reference widens q/k with ``.float()`` and promotes
    with the tables; the compiled one runs float32 and bfloat16 itself and hands the rest to the
    halves), q and k strided slices of one buffer (as ModernBERT passes them, either order) or
    separate tensors, tables shared by the batch or one per text; bfloat16 values that round to even,
    overflow, infinities and NaN: same bits."""
    generator = torch.Generator().manual_seed(1)
    qkv = torch.randn(2, 37, 3, 4, 64, generator=generator) * 3
    qkv[0, 0, :, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 3e38])
    qkv = qkv.to(dtype)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    if layout == "k before q in one buffer":
        q, k = k, q
    if layout == "separate tensors":
        q, k = q.contiguous(), k.contiguous()
    texts = 2 if layout == "tables per text" else 1
    angles = torch.arange(37)[None, :, None].float() * torch.rand(texts, 1, 32, generator=generator) * 4
    tables = torch.cat((angles, angles), dim=-1)
    table_dtype = dtype if table_dtype == "same" else table_dtype
    cos, sin = tables.cos().to(table_dtype), tables.sin().to(table_dtype)
    for a, b in zip(rotary(q, k, cos, sin), _reference_rotary()(q, k, cos, sin), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


@needs_onednn
@pytest.mark.parametrize("post", sorted(POSTS))
@pytest.mark.parametrize("part", [(0, 1), (0, 2), (1, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_post_ops_equal_torch_composition(post: str, part: tuple[int, int], bias: bool) -> None:
    """``PackedLinear.fused``: a block of the weight's rows, then the post-op, in one oneDNN call —
    torch's composition to float rounding (float32: products of 96 terms, GELU's erf by oneDNN's
    polynomial); without oneDNN's path (autograd on) exactly torch's composition."""
    generator = torch.Generator().manual_seed(2)
    layer = nn.Linear(96, 64, bias=bias)
    fast_linear(layer, "onednn")
    x = torch.randn(2, 33, 96, generator=generator)
    other = torch.randn(2, 33, 64 // part[1], generator=generator)
    rows = slice(part[0] * 64 // part[1], (part[0] + 1) * 64 // part[1])
    weight, b = layer.weight[rows], (layer.bias[rows] if bias else None)
    with torch.inference_mode():
        expected = torch_linear(x, weight, b, post, other)
        got = layer.fused(x, post, other, part)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        expected = POSTS[post](torch.nn.functional.linear(x, weight, b), other)
    x.requires_grad_(True)
    assert torch.equal(layer.fused(x, post, other, part).detach(), expected)


@needs_onednn
@pytest.mark.parametrize("bias", [False, True])
def test_fused_glu_equals_transformers_mlp(bias: bool) -> None:
    """ModernBERT's MLP fused (GELU and the gate product as post-ops of ``Wi``'s two row blocks)
    against transformers' own forward on the same weights: float rounding only (1e-5); training or
    autograd runs transformers' forward, bit for bit; a non-erf GELU is not fused."""
    from transformers import ModernBertConfig
    from transformers.models.modernbert.modeling_modernbert import ModernBertMLP

    from harness.kernels.fusion import kind_of

    torch.manual_seed(3)
    config = ModernBertConfig(hidden_size=64, intermediate_size=96, mlp_bias=bias)
    mlp = ModernBertMLP(config).eval()
    x = torch.randn(3, 17, 64)
    with torch.inference_mode():
        expected = mlp(x)
    choice = fast_linear(mlp, "onednn")
    assert choice.blocks == 1 and type(mlp) is FusedModernBertMLP
    with torch.inference_mode():
        torch.testing.assert_close(mlp(x), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(mlp(x.requires_grad_(True)).detach(), expected)  # autograd: transformers' path
    fast_linear(mlp, "default")
    assert type(mlp) is ModernBertMLP and type(mlp.Wi) is nn.Linear
    assert not kind_of(ModernBertMLP(ModernBertConfig(hidden_size=64, hidden_activation="gelu_new")))


@needs_onednn
def test_fused_bert_intermediate_equals_transformers() -> None:
    """BERT's intermediate layer with its GELU as the product's post-op against transformers' own
    forward on the same weights: float rounding only (1e-5); autograd runs transformers' path."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertIntermediate

    torch.manual_seed(4)
    block = BertIntermediate(BertConfig(hidden_size=64, intermediate_size=256)).eval()
    x = torch.randn(3, 17, 64)
    with torch.inference_mode():
        expected = block(x)
    assert fast_linear(block, "onednn").fusable == "gelu" and type(block) is FusedBertIntermediate
    with torch.inference_mode():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(block(x.requires_grad_(True)).detach(), expected)
    fast_linear(block, "default")
    assert type(block) is BertIntermediate and type(block.dense) is nn.Linear


_SHAPES_SCRIPT = """
import os, sys, torch
from torch import nn
from harness.kernels import fast_linear

def rss():
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:"))) * 1024

layers = nn.Sequential(nn.Linear(256, 768), nn.Linear(768, 256)).eval()
fast_linear(layers, "onednn")
with torch.inference_mode():
    layers(torch.randn(8, 256))
    before = rss()
    for rows in range(1, int(sys.argv[1]) + 1):  # a new row count per call, as batches bring
        layers(torch.randn(rows * 7, 256))
print(rss() - before, os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], os.environ["LRU_CACHE_CAPACITY"])
"""


@pytest.mark.slow
@needs_onednn
@pytest.mark.parametrize("preset", [None, "1024"])
def test_onednn_caches_are_bounded_unless_the_user_says(preset: str | None) -> None:
    """oneDNN and ideep cache a primitive per input shape (1024 each by default); an encode meets a
    new row count per batch, so the harness caps both, and peak memory stays bounded by settings, not
    by the corpus: 600 new shapes through two layers grow RSS by < 256 MB (measured: 79 MB, most of it
    the allocator's; at the default capacities 1.45 GB). A capacity the user set wins."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("CACHE_CAPACITY")}
    if preset:
        env |= {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": preset, "LRU_CACHE_CAPACITY": preset}
    shapes = "1" if preset else "600"  # a user's capacity: only its propagation is checked
    proc = subprocess.run(
        [sys.executable, "-c", _SHAPES_SCRIPT, shapes], capture_output=True, text=True, env=env, check=True
    )
    growth, onednn_capacity, ideep_capacity = proc.stdout.split()
    assert onednn_capacity == ideep_capacity == (preset or CACHE_CAPACITY["LRU_CACHE_CAPACITY"])
    if preset is None:
        assert int(growth) < 256 * 2**20, int(growth) / 2**20


def test_kernel_choice_is_in_the_results_and_the_fallback_gives_the_same_metrics(
    ettin_like_checkpoint, tmp_path
):
    """``--kernels default`` (torch's and transformers' own) and the fast path: the same metrics
    (1e-6: float32 rounding of the embeddings moves no rank here), each recording what ran."""
    from harness.run import evaluate
    from tests.helpers import SCIFACT
    from tests.helpers import small_beir as _small_beir

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
        assert result.model.kernels["mode"] == mode and result.settings["kernels"] == mode
        runs[mode] = result
    assert runs["default"].model.kernels == {
        "mode": "default", "linear": "default", "fused": "none", "rotary": "default"
    }  # fmt: skip
    assert runs[fast].model.kernels["rotary"] == "compiled"
    a, b = runs["default"].subsets[0], runs[fast].subsets[0]
    for convention in ("card", "trec"):
        for metric, value in a.metrics(convention).items():
            assert b.metrics(convention)[metric] == pytest.approx(value, abs=1e-6), (convention, metric)


def test_transformers_rotary_is_recognised_in_both_forms() -> None:
    """transformers' ``apply_rotary_pos_emb`` is a plain function, or (5.2x with the ``kernels``
    package it then requires) an ``nn.Module`` wrapping it: both are the reference; anything else is
    someone else's replacement, left alone."""
    from transformers.models.modernbert import modeling_modernbert as modeling

    from harness.kernels.rotary import is_transformers_rotary

    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
        return q, k

    apply_rotary_pos_emb.__qualname__ = "apply_rotary_pos_emb"  # a module-level function's, as transformers'
    assert is_transformers_rotary(_reference_rotary())
    assert is_transformers_rotary(apply_rotary_pos_emb)
    assert not is_transformers_rotary(rotary_halves) and not is_transformers_rotary(nn.Identity())
    try:
        from transformers.integrations import use_kernel_forward_from_hub

        wrapped = use_kernel_forward_from_hub("rotary_pos_emb")(apply_rotary_pos_emb)
    except ImportError:  # transformers without the kernels integration: the plain form only
        wrapped = apply_rotary_pos_emb
    assert is_transformers_rotary(wrapped)
    assert modeling.apply_rotary_pos_emb in (*ROTARY.values(), _reference_rotary())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_tables_are_transformers_tables_bit_for_bit(ettin_like_checkpoint: Path, dtype) -> None:
    """The tables computed at load give transformers' own ``ModernBertRotaryEmbedding.forward`` bits
    for every layer type, for positions in any order, batch and dtype; positions past the table fall
    back to transformers' forward."""
    from transformers.models.modernbert.modeling_modernbert import ModernBertRotaryEmbedding

    from harness.kernels.tables import TabulatedModernBertRotaryEmbedding

    encoder = load_encoder(ettin_like_checkpoint, kernels="default")
    rotary = encoder.model.rotary_emb
    assert type(rotary) is TabulatedModernBertRotaryEmbedding
    size = len(next(iter(rotary.harness_tables.values()))[0])
    assert size == max(encoder.config.document_length, encoder.model.config.max_position_embeddings)
    generator = torch.Generator().manual_seed(5)
    x = torch.zeros(1, dtype=dtype)
    cases = [
        torch.arange(130)[None].expand(3, -1),
        torch.randint(0, size, (2, 77), generator=generator),
        torch.randperm(size, generator=generator)[None],
        torch.tensor([[size - 1, 0, size - 1]]),
        torch.tensor([[size, size + 3]]),  # past the table: transformers' forward
    ]
    for layer_type in rotary.layer_types:
        for positions in cases:
            ours = rotary(x, positions, layer_type)
            theirs = ModernBertRotaryEmbedding.forward(rotary, x, positions, layer_type)
            for a, b in zip(ours, theirs, strict=True):
                assert a.dtype == b.dtype == dtype and a.shape == b.shape
                assert torch.equal(a, b), (layer_type, positions.shape)


_FIRST_COS_SCRIPT = """
import sys, numpy as np, torch
from harness.encode import load_encoder

_cos = torch.Tensor.cos
armed = [True]

def cos(self):  # the first large call comes back off for the main thread's half, as observed
    out = _cos(self)
    if armed[0] and self.numel() >= 1024:
        armed[0] = False
        out = out.clone()
        out.view(-1)[: out.numel() // 2] += 3e-5
    return out

torch.Tensor.cos = cos
encoder = load_encoder(sys.argv[1], kernels=sys.argv[2])
texts = ["a", "rotary positions and sliding windows " * 40, "numbers 123 4.56 and UPPER case"]
first, second = (encoder.encode(texts, is_query=q, show_progress=False).vectors for q in (True, True))
print(armed[0], float(np.abs(first - second).max()))
"""


@pytest.mark.parametrize("mode", ["auto", "default"])
def test_the_first_forward_of_a_process_gives_the_same_bits(ettin_like_checkpoint: Path, mode: str) -> None:
    """A fresh process whose first large ``cos`` call comes back inaccurate (what torch's CPU cos did
    for the main thread's share in some processes: issue "Green on every CPU", item 3) still encodes
    the same bits in its first forward as in every later one: the rotary tables are computed at load,
    twice, and kept only when the two agree. Fails on the code before the tables (transformers
    computes cos in every forward: the first encode differed by ~1e-5 here)."""
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_COS_SCRIPT, str(ettin_like_checkpoint), mode],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    armed, diff = proc.stdout.split()
    assert armed == "False", "the injected fault never fired: the test tests nothing"
    assert float(diff) == 0.0

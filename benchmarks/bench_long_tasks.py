"""BRIGHT-long and MLDR at their real document lengths: exact MaxSim evaluation in bounded memory on this
CPU, and the memory the library's default attention would need (CPU and GPU), one run.

What it measures (Ettin-17m-shaped ColBERT of ``tests/model_fixtures.py``: hidden 256, 7 layers,
4 heads, 50,368-entry byte-level BPE, Dense 256 -> 512 -> 48; random weights, so scores are meaningless
and only time and memory count):

0. This CPU: its family, model and vector extensions (/proc/cpuinfo), and its fp32 / bf16
   matrix-product peaks (``bench_gemm.matmul_peaks``), measured at the start and again at the end of
   the run, so every time below can be read against what the machine delivered then.
1. Lengths. Per task, the longest and the average document in characters (sources below), converted to
   tokens of this model's tokenizer with a chars-per-token ratio measured here on that tokenizer:
   English (BRIGHT, MLDR/en) on the Python reference manual shipped with Python (``pydoc_data.topics``,
   ~465k characters of technical prose and code, text the tokenizer was not trained on; lowercased, as
   the model lowercases); the other MLDR languages on Article 1 of the Universal Declaration of Human
   Rights in that language (one sentence each, embedded below: a small sample, ~10% noise). The
   fixture's vocabulary is English (trained on SciFact), so non-Latin scripts fall back to bytes
   (0.3-0.6 characters per token), as they would with Ettin's English-centric vocabulary; MLDR's card
   gives the average in tokens of BGE-M3's multilingual (XLM-R) tokenizer, printed beside for scale.
2. One document through transformers' ``sdpa`` and through the harness's blockwise attention, each in
   a fresh child (``--check-lengths``; ``sdpa`` only up to ``--sdpa-max``, 16,384 by default: 32,768
   needs ~17 GiB): seconds and peak RSS against the formula below; the blockwise rows also fit the time
   ``t(n) = a n + b n^2`` of one document (global attention is the n^2 term: 85% of the time at 32k,
   bench_long).
3. End to end. Per task, a synthetic corpus in BEIR layout: ``--docs-at-max`` documents at the longest
   length and ``--docs-at-avg`` at the average (SciFact abstracts joined and cut to an exact token
   count; text content does not change time or memory), ``--queries`` queries each judged relevant
   to one document. Every length is capped at ``--cap`` tokens (default 32,768, LongEmbed's longest,
   passed as ``--document-length``): the real longest documents run to 10^5-10^6 tokens and are cut
   there, as an evaluation at that ``--document-length`` cuts them (the model was trained on 7,999
   positions; its rotary positions extrapolate beyond, and the harness warns). Each corpus is evaluated
   by ``harness evaluate --model <17m-shaped> --tasks <folder> --data-dir ... --no-cache
   --document-length CAP --max-memory 2GiB --index exact`` (exact MaxSim, no index, the default
   blockwise attention) in a fresh child process: wall seconds, the documents' encode seconds and
   tokens/s (from the results file), peak RSS (VmHWM of the child, read by the child itself at exit).
   Tasks whose capped lengths coincide are one workload and are run once (the report says which).
4. The formula at each task's longest length, as read (the cap) and in full: this CPU (fp32, batch 1),
   the library's ``--max-memory`` budget, a GPU (bf16, batch 1 and 32), and t(n) on this CPU.
5. The real corpora: documents x t(average length, capped), the time an exact evaluation of each
   whole task would take here.

Memory formula (bytes; n tokens per text, B texts per batch, H heads, s bytes per float):

    blockwise: M = W + B * n * A                 default: M = W + B * n * A + B * H * n^2 * s [+ masks]

- ``A``: the linear activations per token, ``harness.encode.batching.activation_bytes_per_token`` of
  the blockwise path (hidden states, q/k/v/out, the GLU's widths, the Dense outputs, a mask row over
  one sliding-window chunk; 7,968 floats for this shape). The library counts 4 bytes per float in every
  dtype (its ``--max-memory`` budget); the GPU columns count 2 (bf16).
- ``H * n^2 * s``: one layer's attention scores (layers run one after another). The CPU peaks of the
  default path grow by this (section 2 compares the measured sdpa peak with the blockwise peak +
  ``H * n^2 * 4``; bench_long's 32k document: 16.55 GB measured, 1.00 + 16 GiB predicted).
- masks (GPU only): transformers (``masking_utils.sdpa_mask``) always builds the sliding-window layers'
  ``[B, 1, n, n]`` boolean mask, and the global layers' one too when texts are padded (B > 1): ``n^2``
  bytes at batch 1, ``2 B n^2`` above. A GPU sdpa that picks the memory-efficient kernel skips the
  scores term; the masks stay.
- ``W``: the weights (16.95M parameters x s). On the CPU the measured RSS after loading stands in for
  W plus the runtime.
- The library's own budget for the default attention (``activation_bytes_per_token(..., "sdpa", ...)``:
  a mask row and two rows of scores per head, i.e. the eager path's scores and softmax,
  ``n * (1 + 2H)`` floats per token) is printed too: it is what ``--max-memory`` must allow for one
  text under ``--attention sdpa``.

Sources of the lengths (characters, per subset; the corpus is the same for MLDR's dev and test):
- BRIGHT-long: mteb ``mteb/descriptive_stats/Retrieval/BrightLongRetrieval.json`` (commit 8533fc55, split
  ``long``, ``hf_subset_descriptive_stats``: ``average_document_length``, ``max_document_length``);
  the v1.1 per-domain files (``Bright<Domain>LongRetrieval.json``) agree (biology: 36,916 / 1,324,201).
- MLDR: mteb ``mteb/descriptive_stats/Retrieval/MultiLongDocRetrieval.json`` (commit 0012c86c, split
  ``test``, ``documents_text_statistics``: ``average_text_length``, ``max_text_length``); average
  tokens (XLM-R) from the ``Shitao/MLDR`` dataset card's table (README at d0764553).

Full run (defaults: 16 distinct workloads of 5 + 5 documents): about 45 minutes on 2 idle cores by
bench_long's figures (one 32k-token document in 24 s), ``--docs-at-max 20`` about 2.3 hours; ``--quick``
about 3 minutes.

    python benchmarks/bench_long_tasks.py          # full run: writes results/bench_long_tasks_<date>.txt
    python benchmarks/bench_long_tasks.py --quick  # tiny lengths (cap 512, lengths / 64), 2 documents a task
    python benchmarks/bench_long_tasks.py --tasks BRIGHT-long/stackoverflow MLDR/en --docs-at-max 20
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPE = {"hidden": 256, "intermediate": 384, "layers": 7, "heads": 4}
MODEL_NAME = "ettin-17m-shape"
GiB = 1024**3

# task -> (language, documents, average characters, longest characters): the module docstring's sources
BRIGHT_LONG = {
    "biology": (524, 36_917.74, 1_324_203),
    "earth_science": (601, 69_301.66, 2_627_263),
    "economics": (516, 38_600.78, 429_509),
    "psychology": (512, 39_883.38, 669_577),
    "robotics": (508, 35_763.51, 3_589_950),
    "stackoverflow": (1_858, 99_126.43, 9_182_740),
    "sustainable_living": (554, 38_053.58, 5_732_347),
    "pony": (577, 3_575.50, 108_909),
}
MLDR = {
    "ar": (7_607, 29_234.46, 276_627),
    "de": (10_000, 33_771.21, 186_335),
    "en": (200_000, 13_332.76, 382_998),
    "es": (9_551, 36_567.17, 471_024),
    "fr": (10_000, 36_009.48, 425_370),
    "hi": (3_806, 18_688.51, 227_264),
    "it": (10_000, 36_633.83, 312_623),
    "ja": (10_000, 14_479.43, 234_887),
    "ko": (6_176, 13_813.42, 171_299),
    "pt": (6_569, 32_125.54, 400_862),
    "ru": (10_000, 35_934.85, 303_226),
    "th": (10_000, 25_993.27, 183_497),
    "zh": (200_000, 6_039.05, 278_468),
}
# Shitao/MLDR card: "Avg. Length of Docs" (tokens of BGE-M3's XLM-R tokenizer)
MLDR_CARD_TOKENS = {
    "ar": 9_428, "de": 9_039, "en": 3_308, "es": 8_771, "fr": 9_659, "hi": 5_555, "it": 9_195,
    "ja": 9_297, "ko": 7_832, "pt": 7_922, "ru": 9_723, "th": 8_089, "zh": 4_249,
}  # fmt: skip
STATS = {
    **{f"BRIGHT-long/{d}": ("en", *v) for d, v in BRIGHT_LONG.items()},
    **{f"MLDR/{lang}": (lang, *v) for lang, v in MLDR.items()},
}
# Universal Declaration of Human Rights, Article 1 (chars-per-token samples of the non-English languages)
UDHR_1 = {
    "ar": "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا وعليهم أن يعامل "
    "بعضهم بعضًا بروح الإخاء.",
    "de": "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und "
    "Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen.",
    "es": "Todos los seres humanos nacen libres e iguales en dignidad y derechos y, dotados como están de "
    "razón y conciencia, deben comportarse fraternalmente los unos con los otros.",
    "fr": "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de "
    "raison et de conscience et doivent agir les uns envers les autres dans un esprit de fraternité.",
    "hi": "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है। उन्हें बुद्धि "
    "और अन्तरात्मा की देन प्राप्त है और परस्पर उन्हें भाईचारे के भाव से बर्ताव करना चाहिए।",
    "it": "Tutti gli esseri umani nascono liberi ed eguali in dignità e diritti. Essi sono dotati di "
    "ragione e di coscienza e devono agire gli uni verso gli altri in spirito di fratellanza.",
    "ja": "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。人間は、"
    "理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。",
    "ko": "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 인간은 천부적으로 이성과 "
    "양심을 부여받았으며 서로 형제애의 정신으로 행동하여야 한다.",
    "pt": "Todos os seres humanos nascem livres e iguais em dignidade e em direitos. Dotados de razão e "
    "de consciência, devem agir uns para com os outros em espírito de fraternidade.",
    "ru": "Все люди рождаются свободными и равными в своем достоинстве и правах. Они наделены разумом и "
    "совестью и должны поступать в отношении друг друга в духе братства.",
    "th": "มนุษย์ทั้งหลายเกิดมามีอิสระและเสมอภาคกันในเกียรติศักดิ์และสิทธิ ต่างมีเหตุผลและมโนธรรม "
    "และควรปฏิบัติต่อกันด้วยเจตนารมณ์แห่งภราดรภาพ",
    "zh": "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。",
}
# bench_long_2026-12-01.txt: one document, blockwise, ettin-17m-shape, 2-core Intel Xeon (tokens, seconds):
# t(n) when the check lengths are too short to fit it (--quick)
BENCH_LONG_POINTS = [(2048, 0.2), (8192, 1.8), (16384, 5.9), (32768, 23.7)]
SPECIALS = 3  # [CLS] [D] ... [SEP]: what a document adds to its text's tokens


# --------------------------------------------------------------------------- helpers


def vmhwm() -> int:
    """This process's peak RSS in bytes (VmHWM; ru_maxrss can carry the parent's across exec)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) * 1024


def fmt_bytes(n: float) -> str:
    for unit, size in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", GiB), ("MiB", 1024**2)):
        if n >= size or unit == "MiB":
            return f"{n / size:.2f} {unit}" if n / size < 100 else f"{n / size:,.0f} {unit}"
    raise AssertionError("unreachable")


def fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:,.0f} d"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def build_model(folder: Path) -> Path:
    from tests.model_fixtures import ETTIN_VOCAB_SIZE, build_ettin_like_checkpoint

    path = folder / MODEL_NAME
    if not (path / "modules.json").is_file():
        build_ettin_like_checkpoint(path, vocab_size=ETTIN_VOCAB_SIZE, **SHAPE)
    return path


@functools.lru_cache(maxsize=1)
def text_pool() -> list[str]:
    from tests.model_fixtures import scifact_texts

    return [t.lower() for t in scifact_texts(3000)]


def text_of(tokens: int, tokenizer: Any, pool: list[str], seed: int) -> str:
    """A text of exactly ``tokens`` tokens (without special tokens): SciFact abstracts in a seeded order,
    cut at the ``tokens``-th token's end."""
    order = np.random.default_rng(seed).permutation(len(pool))
    parts, chars, i, want = [], 0, 0, 6 * tokens + 2000  # ~5.5 chars per token on SciFact
    while True:
        while chars < want:
            parts.append(pool[order[i % len(order)]])
            chars += len(parts[-1]) + 1
            i += 1
        text = " ".join(parts)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) >= tokens:
            return text[: enc["offset_mapping"][tokens - 1][1]]
        want = int(want * 1.5)


# --------------------------------------------------------------------------- children


def child_one(model: Path, length: int, attention: str, out: Path) -> None:
    """Encode one document of ``length`` tokens (specials included) with ``attention``; JSON facts."""
    quiet_transformers()
    from harness.encode import load_encoder

    encoder = load_encoder(
        model,
        document_length=length,
        attn_implementation=None if attention == "blockwise" else attention,
        max_memory=1024**5,  # the check measures; the budget is not what is tested here
    )
    text = text_of(length - SPECIALS, encoder.tokenizer, text_pool(), seed=length)
    # two short texts first: one-time work (kernel set-up, the compiled rotary embedding's first shapes,
    # allocator) is not the long document's
    for warm in (32, 48):
        encoder.encode(
            [text_of(warm, encoder.tokenizer, text_pool(), seed=0)], is_query=False, show_progress=False
        )
    loaded = vmhwm()
    start = time.perf_counter()
    emb = encoder.encode([text], is_query=False, show_progress=False)
    seconds = time.perf_counter() - start
    facts = {
        "seconds": seconds,
        "peak": vmhwm(),
        "loaded": loaded,
        "tokens": int(emb.input_tokens or 0),
        "attention": encoder.attention,
    }
    out.write_text(json.dumps(facts))


def child_evaluate(spec_file: Path, out: Path) -> None:
    """``harness evaluate`` in this process (argv from the spec), then its wall time and VmHWM."""
    argv = json.loads(spec_file.read_text())
    from harness.cli import main as cli

    start = time.perf_counter()
    rc = cli(argv)
    out.write_text(json.dumps({"rc": rc, "inner_s": time.perf_counter() - start, "peak": vmhwm()}))


def run_child(args: list[str], out: Path) -> dict:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(),
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.is_file():
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"error": tail, "wall": wall}
    return {**json.loads(out.read_text()), "wall": wall}


# --------------------------------------------------------------------------- model facts and formula


@dataclass(frozen=True)
class Formula:
    heads: int
    floats_per_token: int  # blockwise linear activations per token (the library's count)
    sdpa_bytes_per_token_at: Callable[[int], int]  # n -> the library's sdpa budget per token at width n
    parameters: int

    def linear(self, n: float, batch: int, s: int) -> float:
        return batch * n * self.floats_per_token * s

    def scores(self, n: float, batch: int, s: int) -> float:
        return batch * self.heads * float(n) ** 2 * s

    def masks(self, n: float, batch: int) -> float:
        return float(n) ** 2 * (1 if batch == 1 else 2 * batch)

    def gpu(self, n: float, batch: int, attention: str, s: int = 2) -> float:
        need = self.parameters * s + self.linear(n, batch, s)
        if attention == "default":
            need += self.scores(n, batch, s) + self.masks(n, batch)
        return need

    def library_budget(self, n: int, attention: str) -> float:
        if attention == "blockwise":
            return n * self.floats_per_token * 4.0
        return n * float(self.sdpa_bytes_per_token_at(n))


def model_formula(model: Path) -> Formula:
    import torch
    from transformers import AutoConfig

    from harness import attention as harness_attention
    from harness.encode import batching

    config = AutoConfig.from_pretrained(model)
    dense = sum(json.loads(p.read_text())["out_features"] for p in sorted(model.glob("*_Dense/config.json")))
    block = batching.activation_bytes_per_token(config, harness_attention.NAME, dense, torch.float32, 0)

    def sdpa_at(n: int) -> int:
        return batching.activation_bytes_per_token(config, "sdpa", dense, torch.float32, n)

    from safetensors import safe_open

    params = 0
    for file in [model / "model.safetensors", *sorted(model.glob("*_Dense/model.safetensors"))]:
        with safe_open(str(file), "pt") as f:
            params += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118
    return Formula(int(config.num_attention_heads), block // 4, sdpa_at, params)


# --------------------------------------------------------------------------- lengths


def chars_per_token(tokenizer: Any, lowercase: bool) -> dict[str, float]:
    import pydoc_data.topics as topics

    def ratio(text: str) -> float:
        text = text.lower() if lowercase else text
        return len(text) / len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ratios = {"en": ratio(" ".join(topics.topics.values()))}
    ratios.update({lang: ratio(text) for lang, text in UDHR_1.items()})
    return ratios


@dataclass
class Plan:
    task: str
    lang: str
    n_docs: int
    avg_chars: float
    max_chars: int
    ratio: float
    avg_tokens: int
    max_tokens: int
    eval_max: int = 0  # tokens per document as evaluated (specials included), after cap and scale
    eval_avg: int = 0
    max_cut: bool = False
    avg_cut: bool = False

    @property
    def workload(self) -> tuple:
        return (self.eval_max, self.max_cut, self.eval_avg, self.avg_cut)


def plans(tasks: list[str], ratios: dict[str, float], cap: int, scale: float) -> list[Plan]:
    out = []
    for task in tasks:
        lang, n_docs, avg_chars, max_chars = STATS[task]
        r = ratios[lang]
        p = Plan(task, lang, n_docs, avg_chars, max_chars, r, round(avg_chars / r), round(max_chars / r))
        p.max_cut, p.avg_cut = p.max_tokens > cap, p.avg_tokens > cap
        p.eval_max = max(8, round(min(p.max_tokens, cap) * scale))
        p.eval_avg = max(8, round(min(p.avg_tokens, cap) * scale))
        out.append(p)
    return out


# --------------------------------------------------------------------------- end to end


def write_corpus(folder: Path, plan: Plan, tokenizer: Any, pool: list[str], args: argparse.Namespace) -> None:
    """BEIR layout: documents at the longest and average lengths (a cut document is written 64 tokens
    longer than the cap, so the encoder cuts it as it would the real one), queries from documents."""
    rows: list[dict[str, str]] = []
    for kind, count, length, cut in (
        ("max", args.docs_at_max, plan.eval_max, plan.max_cut),
        ("avg", args.docs_at_avg, plan.eval_avg, plan.avg_cut),
    ):
        tokens = length - SPECIALS + (64 if cut else 0)
        for i in range(count):
            rows.append({"_id": f"{kind}{i}", "text": text_of(tokens, tokenizer, pool, seed=len(rows) + 1)})
    queries, qrels = [], []
    for q in range(min(args.queries, len(rows))):
        words = rows[q]["text"].split()
        mid = len(words) // 2
        queries.append({"_id": f"q{q}", "text": " ".join(words[mid : mid + 12])})
        qrels.append(f"q{q}\t{rows[q]['_id']}\t1")
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), "utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")


def evaluate(
    model: Path, plan: Plan, cap: int, work: Path, tokenizer: Any, pool: list[str], args: argparse.Namespace
) -> dict:
    slug = "synth-" + plan.task.lower().replace("/", "-").replace("_", "-")
    data = work / "data"
    write_corpus(data / slug, plan, tokenizer, pool, args)
    out = work / "out" / slug
    argv = ["evaluate", "--model", str(model), "--tasks", slug, "--data-dir", str(data), "--no-cache"]
    argv += ["--output", str(out), "--document-length", str(cap), "--max-memory", args.max_memory]
    argv += ["--index", "exact", "--quiet"]
    spec = work / f"{slug}.argv.json"
    spec.write_text(json.dumps(argv))
    facts = run_child(["evaluate", str(spec)], work / f"{slug}.facts.json")
    if "error" in facts:
        return facts
    results = sorted(out.glob("*.json"))
    if facts["rc"] != 0 or not results:
        return {"error": f"harness evaluate exited {facts['rc']}"}
    result = json.loads(results[0].read_text())
    timings, tokens = result["timings"], result["tokens"]
    facts.update(
        encode_s=timings["encode_documents_s"],
        total_s=timings["total_s"],
        doc_tokens=tokens["documents"],
        truncated=tokens["documents_truncated"],
        docs=args.docs_at_max + args.docs_at_avg,
        attention=result["model"]["settings"].get("attention"),
        score=result.get("main_score"),
    )
    return facts


# --------------------------------------------------------------------------- report


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self("| " + " | ".join(header) + " |")
        self("|" + "---|" * len(header))
        for row in rows:
            self("| " + " | ".join(row) + " |")


def machine() -> str:
    import torch
    import transformers

    cpu = "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}{cpu_detail()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"Python {platform.python_version()}"
    )


def cpu_detail() -> str:
    """`` (family F model M; avx512f, avx512_bf16, amx_tile: ...)`` from /proc/cpuinfo: what tells
    the machines of this workplace apart when lscpu names only the vendor ("AMD EPYC")."""
    try:
        info = dict(
            line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:40] if ":" in line
        )
    except OSError:
        return ""
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("flags", "").split())
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags)
    return f" (family {info.get('cpu family', '?')} model {info.get('model', '?')}; {isa or 'no AVX2'})"


def peaks_line(when: str) -> str:
    """This run's matrix-product peaks (bench_gemm.matmul_peaks: the encoder's largest product), so the
    times above and below can be read against what this CPU delivered at that moment."""
    from bench_gemm import ENCODER_SHAPE, matmul_peaks  # this folder's

    peaks = matmul_peaks(threads=2)
    rows, inner, outer = ENCODER_SHAPE
    return (
        f"matrix-product peak {when} (2 threads, {rows}x{inner} @ {inner}x{outer}, best kernel): "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (torch CPU capability "
        f"{peaks['cpu']})"
    )


def fit_time(points: list[tuple[int, float]]) -> tuple[float, float]:
    """``t(n) = a n + b n^2`` by least squares (b >= 0)."""
    n = np.array([p[0] for p in points], dtype=float)
    t = np.array([p[1] for p in points], dtype=float)
    if len(points) == 1:
        return 0.0, float(t[0] / n[0] ** 2)
    (a, b), *_ = np.linalg.lstsq(np.stack([n, n**2], axis=1), t, rcond=None)
    return float(a), float(max(b, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["BRIGHT-long", "MLDR"], help="tasks or groups")
    parser.add_argument("--cap", type=int, default=32768, help="--document-length: longest tokens read")
    parser.add_argument("--docs-at-max", type=int, default=5)
    parser.add_argument("--docs-at-avg", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--max-memory", default="2GiB", help="harness evaluate --max-memory")
    parser.add_argument("--check-lengths", type=int, nargs="+", default=[2048, 8192, 16384, 32768])
    parser.add_argument("--sdpa-max", type=int, default=16384, help="longest sdpa check (memory)")
    parser.add_argument("--quick", action="store_true", help="tiny lengths, 2 documents per task, no file")
    parser.add_argument(
        "--models", type=Path, default=Path(tempfile.gettempdir()) / "harness-bench-long-tasks"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        if args.child[0] == "one":
            _, model, length, attention, out = args.child
            child_one(Path(model), int(length), attention, Path(out))
        else:
            child_evaluate(Path(args.child[1]), Path(args.child[2]))
        return

    real_cap, scale = args.cap, 1.0
    if args.quick:
        args.cap, scale = 512, 512 / real_cap
        args.docs_at_max = args.docs_at_avg = 1
        args.queries, args.check_lengths, args.sdpa_max = 2, [256, 512], 512
    wanted = [t for t in STATS if any(t == w or t.split("/")[0] == w for w in args.tasks)]
    if not wanted:
        parser.error(f"no task matches {args.tasks} (known: {', '.join(STATS)})")

    quiet_transformers()
    from transformers import AutoTokenizer

    report = Report()
    started = time.perf_counter()
    date = time.strftime("%Y-%m-%d")
    report(
        f"# {date} BRIGHT-long and MLDR at real lengths, {MODEL_NAME} ({'quick' if args.quick else 'full'})"
    )
    report(f"{machine()}")
    report(peaks_line("at the start"))
    args.models.mkdir(parents=True, exist_ok=True)
    model = build_model(args.models)
    tokenizer = AutoTokenizer.from_pretrained(model)
    lowercase = json.loads((model / "sentence_bert_config.json").read_text()).get("do_lower_case", False)
    ratios = chars_per_token(tokenizer, lowercase)
    formula = model_formula(model)
    todo = plans(wanted, ratios, real_cap, 1.0)
    runs = plans(wanted, ratios, real_cap, scale)
    for p in runs:  # the evaluated lengths: capped (at the quick cap too), then scaled
        p.eval_max, p.eval_avg = min(p.eval_max, args.cap), min(p.eval_avg, args.cap)

    # 1. lengths
    report("\n## 1. Document lengths (characters: mteb descriptive stats; tokens: this model's tokenizer)")
    ratio_text = ", ".join(f"{lang} {r:.2f}" for lang, r in ratios.items())
    report(
        "chars per token measured on the tokenizer (en: pydoc_data.topics; others: UDHR art. 1): "
        + ratio_text
    )
    rows = []
    for p in todo:
        card = MLDR_CARD_TOKENS.get(p.task.split("/")[1]) if p.task.startswith("MLDR") else None
        rows.append(
            [
                p.task,
                f"{p.n_docs:,}",
                f"{p.avg_chars:,.0f}",
                f"{p.max_chars:,}",
                f"{p.ratio:.2f}",
                f"{p.avg_tokens:,}",
                f"{card:,}" if card else "–",
                f"{p.max_tokens:,}",
                f"{min(p.max_tokens, real_cap):,}" + (" (cut)" if p.max_cut else ""),
            ]
        )
    report.table(
        ["task", "docs", "avg chars", "max chars", "chars/token", "avg tokens", "card avg (XLM-R)",
         "max tokens", f"read at --document-length {real_cap}"],
        rows,
    )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-long-tasks-") as tmp:
        work = Path(tmp)
        # 2. the checks first: they calibrate t(n), which the ETA of 3 uses
        report("\n## 2. One document, default (sdpa) vs blockwise attention, measured vs formula")
        report(
            "predicted peak: blockwise = RSS after loading + n*A (A = "
            f"{formula.floats_per_token:,} floats x 4 B, the library's count); sdpa = the blockwise row's "
            f"measured peak + H*n^2*4 B (H = {formula.heads}: one layer's fp32 scores)"
        )
        rows, block_points, block_peaks, loaded_rss = [], [], {}, []
        for n in args.check_lengths:
            for attention in ("blockwise", "sdpa"):
                if attention == "sdpa" and n > args.sdpa_max:
                    rows.append([str(n), attention, "not run (--sdpa-max)", "–", "–", "–", "–"])
                    continue
                f = run_child(["one", str(model), str(n), attention], work / "one.json")
                if "error" in f:
                    rows.append([str(n), attention, f["error"][:80], "–", "–", "–", "–"])
                    continue
                loaded_rss.append(f["loaded"])
                if attention == "blockwise":
                    block_points.append((f["tokens"], f["seconds"]))
                    block_peaks[n] = f["peak"]
                    predicted = f["loaded"] + formula.linear(f["tokens"], 1, 4)
                else:
                    base = block_peaks.get(n, f["loaded"] + formula.linear(f["tokens"], 1, 4))
                    predicted = base + formula.scores(f["tokens"], 1, 4)
                rows.append(
                    [
                        str(f["tokens"]),
                        f"{attention} ({f['attention']})",
                        f"{f['seconds']:.2f}",
                        fmt_bytes(f["loaded"]),
                        fmt_bytes(f["peak"]),
                        fmt_bytes(predicted),
                        f"{f['peak'] / predicted:.2f}",
                    ]
                )
        report.table(
            [
                "tokens",
                "attention",
                "seconds",
                "RSS loaded",
                "peak RSS",
                "predicted peak",
                "measured / predicted",
            ],
            rows,
        )
        if block_points and max(n for n, _ in block_points) >= 8192:
            a, b = fit_time(block_points)
            source = f"the {len(block_points)} blockwise rows above"
        else:
            a, b = fit_time(BENCH_LONG_POINTS)
            source = "bench_long_2026-12-01's blockwise figures (the check lengths are too short to fit)"
        report(f"blockwise time: t(n) = {a:.3g} n + {b:.3g} n^2 seconds, fitted on {source}")

        # 3b. end to end
        workloads: dict[tuple, list[Plan]] = {}
        for p in runs:
            workloads.setdefault(p.workload, []).append(p)

        def t(n: float) -> float:
            return a * n + b * n * n

        eta = sum(
            10 + args.docs_at_max * t(w[0].eval_max) + args.docs_at_avg * t(w[0].eval_avg)
            for w in workloads.values()
        )
        report(
            f"\n## 3. End to end: harness evaluate, exact MaxSim, --max-memory {args.max_memory}, "
            f"--document-length {args.cap}"
            + (f" (quick: lengths x {scale:.4g}, capped at {args.cap})" if args.quick else "")
        )
        report(
            f"{len(runs)} tasks, {len(workloads)} distinct workloads; {args.docs_at_max} documents at the "
            f"longest length + {args.docs_at_avg} at the average, {args.queries} queries each; predicted "
            f"{fmt_seconds(eta)} from t(n) + 10 s per process"
        )
        measured: dict[tuple, dict] = {}
        rows = []
        for p in runs:
            first = workloads[p.workload][0]
            if p.workload not in measured:
                measured[p.workload] = evaluate(model, p, args.cap, work, tokenizer, text_pool(), args)
            f = measured[p.workload]
            same = "" if first is p else f" (= {first.task}'s run)"
            lengths = (
                f"{args.docs_at_max} x {p.eval_max:,}{'*' if p.max_cut else ''} + "
                f"{args.docs_at_avg} x {p.eval_avg:,}{'*' if p.avg_cut else ''}"
            )
            if "error" in f:
                rows.append([p.task + same, lengths, f["error"][:80], "–", "–", "–", "–", "–"])
                continue
            rows.append(
                [
                    p.task + same,
                    lengths,
                    f"{f['wall']:.1f}",
                    f"{f['encode_s']:.1f}",
                    f"{f['doc_tokens']:,} ({f['truncated']} cut)",
                    f"{f['doc_tokens'] / max(f['encode_s'], 1e-9):,.0f}",
                    fmt_bytes(f["peak"]),
                    fmt_bytes(formula.library_budget(p.eval_max, "blockwise")),
                ]
            )
            print(
                f"  [{fmt_seconds(time.perf_counter() - started)}] {p.task} done", file=sys.stderr, flush=True
            )
        report.table(
            ["task", "documents x tokens (* = cut at the cap)", "wall s", "encode docs s", "document tokens",
             "tokens/s", "peak RSS (VmHWM)", "blockwise budget, longest doc"],
            rows,
        )  # fmt: skip

        # 4. the default attention's needs
        report(
            "\n## 4. Memory one longest document needs: blockwise vs the default attention "
            "(formula of the docstring)"
        )
        report(
            "CPU fp32 batch 1: RSS after loading + n*A [+ H*n^2*4]; library budget: what --max-memory "
            "must allow for one text (blockwise / --attention sdpa); GPU bf16: W + B*n*A/2 [+ B*H*n^2*2 + "
            "masks n^2 (B = 1) or 2*B*n^2]; time: t(n) blockwise on this CPU"
        )
        base = min(loaded_rss, default=0)

        def needs(n: int) -> list[str]:
            return [
                fmt_bytes(formula.library_budget(n, "blockwise")),
                fmt_bytes(formula.library_budget(n, "sdpa")),
                fmt_bytes(base + formula.linear(n, 1, 4)),
                fmt_bytes(base + formula.linear(n, 1, 4) + formula.scores(n, 1, 4)),
                fmt_bytes(formula.gpu(n, 1, "blockwise")),
                fmt_bytes(formula.gpu(n, 32, "blockwise")),
                fmt_bytes(formula.gpu(n, 1, "default")),
                fmt_bytes(formula.gpu(n, 32, "default")),
                fmt_seconds(t(n)),
            ]

        rows = [[f"every task, as read (--document-length {real_cap})", f"{real_cap:,}", *needs(real_cap)]]
        rows += [
            [f"{p.task}, full length", f"{p.max_tokens:,}", *needs(p.max_tokens)] for p in todo if p.max_cut
        ]
        rows += [
            [f"{p.task}, full length", f"{p.max_tokens:,}", *needs(p.max_tokens)]
            for p in todo
            if not p.max_cut
        ]
        report.table(
            ["longest document", "tokens", "budget blockwise", "budget sdpa (library)", "CPU blockwise",
             "CPU sdpa", "GPU blockwise B=1", "GPU blockwise B=32", "GPU default B=1", "GPU default B=32",
             "CPU time, blockwise"],
            rows,
        )  # fmt: skip
        report(
            f"(CPU columns: the check runs' RSS after loading, {fmt_bytes(base)} (weights, runtime), plus "
            f"the formula; GPU W = {formula.parameters:,} parameters x 2 B. Budgets: the library's "
            "--max-memory arithmetic, 4 B per float.)"
        )
        for family in ("BRIGHT-long", "MLDR"):
            longest = max(
                (p for p in todo if p.task.startswith(family)), key=lambda p: p.max_tokens, default=None
            )
            if longest is None:
                continue
            n = longest.max_tokens
            report(
                f"- {family}'s longest document ({longest.task}, {n:,} tokens) would need "
                f"{fmt_bytes(base + formula.linear(n, 1, 4) + formula.scores(n, 1, 4))} on this CPU under "
                f"sdpa ({fmt_bytes(formula.gpu(n, 1, 'default'))} on a bf16 GPU at batch 1), "
                f"{fmt_bytes(base + formula.linear(n, 1, 4))} with the harness's attention "
                f"({fmt_seconds(t(n))} here); read at {real_cap:,} tokens: "
                f"{fmt_bytes(base + formula.linear(real_cap, 1, 4) + formula.scores(real_cap, 1, 4))} vs "
                f"{fmt_bytes(base + formula.linear(real_cap, 1, 4))}."
            )

        # 5. whole corpora
        report(
            "\n## 5. The real corpora, exact, on this CPU "
            f"(estimate: documents x t(average tokens, cut at {real_cap:,}))"
        )
        rows = []
        for p in todo:
            n = min(p.avg_tokens, real_cap)
            card = MLDR_CARD_TOKENS.get(p.task.split("/")[1]) if p.task.startswith("MLDR") else None
            at_card = f"{fmt_seconds(p.n_docs * t(min(card, real_cap)))}" if card else "–"
            rows.append([p.task, f"{p.n_docs:,}", f"{n:,}", fmt_seconds(p.n_docs * t(n)), at_card])
        report.table(
            ["task", "documents", "average tokens read", "documents' encoding, blockwise",
             "same at the card's XLM-R average"],
            rows,
        )  # fmt: skip
        report(
            "(the average stands in for each document: a corpus with a long tail costs more, since t(n) "
            "grows as n^2; queries and MaxSim take seconds. This vocabulary is English: it reads MLDR's "
            "non-Latin scripts about byte by byte, 3-8x the tokens of a multilingual tokenizer, last column.)"
        )
        report(peaks_line("at the end"))
        report(f"\nbenchmark wall time: {fmt_seconds(time.perf_counter() - started)}")

    if not args.quick:
        out = ROOT / "benchmarks" / "results" / f"bench_long_tasks_{date}.txt"
        out.write_text("\n".join(report.lines) + "\n", "utf-8")
        print(f"written: {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Model loading guards (issue 27, items 1, 8, 10, 13): a prompt that crowds out the text is refused
at load and texts cut at the length limit are counted; a checkpoint that ships its own code needs
``--trust-remote-code``; torch's and the Hub's advice is replaced by the harness's; transformers'
load report stays off the terminal."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.checkpoints.files import resolve_checkpoint
from harness.checkpoints.modules import require_trusted_code
from harness.cli import main
from harness.encode import MIN_TEXT_TOKENS, load_encoder
from harness.encode.tokenize import token_ids
from harness.errors import HarnessError, InputError
from harness.hub import hub_failure
from harness.retrieve import Embedder, ExactRetriever
from harness.types import Texts
from tests.helpers import write_beir

LONG_PROMPT = "word " * 2000  # "word" is one WordPiece token of the test models' vocabulary


@pytest.fixture
def bert_copy(bert_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy of the tiny BERT ColBERT (query_length 24, document_length 64) to modify."""
    return Path(shutil.copytree(bert_checkpoint, tmp_path / "bert"))


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    """``--data-dir`` holding one small BEIR task, ``tiny``."""
    write_beir(tmp_path / "data" / "tiny")
    return tmp_path / "data"


def _evaluate(model: Path, beir: Path, out: Path, *extra: str) -> int:
    args = ["evaluate", "--model", str(model), "--tasks", "tiny", "--data-dir", str(beir)]
    return main([*args, "--output", str(out), "--no-cache", "--quiet", *extra])


# --------------------------------------------------------------------------- 1: prompts and truncation


@pytest.mark.parametrize("side", ["query", "document"])
@pytest.mark.parametrize("model", ["colbert", "dense"])
def test_prompt_filling_the_limit_is_refused_at_load(side, model, bert_checkpoint, minilm_dense_model):
    """A 2000-word prompt fills the token limit (before: every text the same, nDCG@10 0 and exit 0):
    an InputError naming the flag, raised by ``load_encoder`` before any text is encoded."""
    path = bert_checkpoint if model == "colbert" else minilm_dense_model
    with pytest.raises(InputError) as err:
        load_encoder(path, **{f"{side}_prompt": LONG_PROMPT})
    assert err.value.field == f"--{side}-prompt"
    assert "leaving 0 for the" in str(err.value) and "shorten the prompt" in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "room"),
    [
        ({}, MIN_TEXT_TOKENS),  # query_length 24: 23 tokens before the [Q] token, at least 8 kept
        ({"query_length": 10}, 4),  # 9 tokens: half of them (4) is less than 8
    ],
)
def test_prompt_must_leave_the_floor(overrides, room, bert_checkpoint):
    """The rule at its edge: a prompt leaving exactly ``min(8, limit // 2)`` tokens loads, one token
    more is refused."""
    limit = overrides.get("query_length", 24) - 1
    words = limit - room - 2  # [CLS] and [SEP] are the prompt's too
    load_encoder(bert_checkpoint, query_prompt="word " * words, **overrides)
    with pytest.raises(InputError, match=f"leaving {room - 1} for the query's own text"):
        load_encoder(bert_checkpoint, query_prompt="word " * (words + 1), **overrides)


def test_long_prompt_cli_exits_2_and_writes_nothing(bert_checkpoint, beir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _evaluate(bert_checkpoint, beir, out, "--query-prompt", LONG_PROMPT) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: --query-prompt: ")
    assert len(err) < 400  # the prompt is quoted by its first words only
    assert not out.exists() or not list(out.rglob("*.json"))


@pytest.mark.parametrize("model", ["colbert", "dense"])
def test_truncated_texts_are_counted(model, bert_checkpoint, minilm_dense_model):
    """``encode`` says how many texts were cut at the limit; a text exactly at it was not."""
    encoder = load_encoder(bert_checkpoint if model == "colbert" else minilm_dense_model)
    limit = 63 if model == "colbert" else 256  # document_length 64 less the [D] token; max_seq_length
    fits, over = "word " * (limit - 2), "word " * (limit - 1)
    docs = encoder.encode(["short", fits, over, LONG_PROMPT], is_query=False, show_progress=False)
    assert docs.truncated == 2
    queries = encoder.encode(["short", "word " * 300], is_query=True, show_progress=False)
    assert queries.truncated == 1


def test_truncation_count_without_a_fast_tokenizer(bert_checkpoint):
    """A tokenizer that keeps no overflow (no ``encodings``): texts at the limit are checked again."""
    tokenizer = load_encoder(bert_checkpoint).tokenizer

    def slow(texts, **options):
        return dict(tokenizer(texts, **options))  # the ids only, like a Python tokenizer's output

    texts = ["short", "word " * 8, "word " * 9, "word " * 50]  # 10 and 11 tokens with [CLS]/[SEP]
    fast = token_ids(tokenizer, texts, "", 10, lowercase=True)
    plain = token_ids(slow, texts, "", 10, lowercase=True)
    assert fast.truncated == plain.truncated == 2
    assert [ids.tolist() for ids in fast] == [ids.tolist() for ids in plain]


def test_search_stats_carry_the_truncated_counts(bert_checkpoint):
    """What the runner records: the retriever's stats say how many queries and documents were cut."""
    encoder = load_encoder(bert_checkpoint)
    docs = Texts(["d1", "d2", "d3"], ["short", "word " * 200, "word " * 300])
    queries = Texts(["q1", "q2"], ["word " * 40, "short"])
    retriever = ExactRetriever(Embedder(encoder, cache_dir=None, show_progress=False))
    _, stats = retriever.search(queries, docs, 2)
    assert (stats.query_truncated, stats.document_truncated) == (1, 2)


# --------------------------------------------------------------------------- 8: custom code


def _edit_json(path: Path, **values) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, **values}), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "auto_map"),
    [
        ("config.json", {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}),
        ("tokenizer_config.json", {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}),
    ],
)
def test_custom_code_needs_trust_remote_code(file, auto_map, bert_copy, beir, tmp_path, capsys):
    """A checkpoint whose ``auto_map`` names its own code (before: loaded silently as the built-in
    class): an InputError naming ``--trust-remote-code`` and the file; the CLI exits 2, one line."""
    _edit_json(bert_copy / file, auto_map=auto_map)
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file == str(bert_copy / file) and err.value.field == "auto_map"
    assert "--trust-remote-code" in str(err.value)
    require_trusted_code(bert_copy, trust_remote_code=True)  # the flag lets it through
    assert _evaluate(bert_copy, beir, tmp_path / "out") == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and "--trust-remote-code" in stderr and file in stderr


def test_unknown_model_type_is_named(bert_copy):
    """A model type transformers does not know and no code for it (before: transformers' cut text)."""
    _edit_json(bert_copy / "config.json", model_type="mystery_bert")
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    assert err.value.file == str(bert_copy / "config.json") and err.value.field == "model_type"
    assert "'mystery_bert'" in str(err.value) and "--trust-remote-code cannot help" in str(err.value)


# --------------------------------------------------------------------------- 10: advice


@pytest.mark.parametrize("where", ["backbone", "dense"])
def test_pickled_checkpoint_gets_the_harness_advice(where, bert_copy):
    """A ``.bin`` that is a training checkpoint (tensors plus a pickled object): convert it to
    safetensors, not torch's "re-run with weights_only=False" (which runs the pickle's code)."""
    folder = bert_copy if where == "backbone" else bert_copy / "1_Dense"
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({**state, "args": argparse.Namespace(lr=1e-4)}, folder / "pytorch_model.bin")
    with pytest.raises(InputError) as err:
        load_encoder(bert_copy)
    message = str(err.value)
    assert err.value.file == str(folder / "pytorch_model.bin")
    assert "convert the checkpoint to safetensors" in message and "argparse.Namespace" in message
    assert "weights_only" not in message and "safe_globals" not in message and "\x1b" not in message


def test_offline_hub_gets_the_harness_advice(hub_offline):
    """A Hub id not in the local cache, offline: what to do in the harness, not HF_HUB_OFFLINE=0."""
    with pytest.raises(HarnessError) as err:
        resolve_checkpoint("org/not-cached-model")
    message = str(err.value)
    assert "HF_HUB_OFFLINE" not in message and "(offline mode is on)" in message
    assert "Put the model in a local checkpoint folder and pass its path" in message


def test_hub_failure_drops_the_library_advice():
    err = OSError(
        "Cannot find an appropriate cached snapshot folder. To enable repo look-ups and downloads "
        "online, set 'HF_HUB_OFFLINE=0' as environment variable."
    )
    assert hub_failure(err) == "OSError: Cannot find an appropriate cached snapshot folder"


# --------------------------------------------------------------------------- 13: load report


def test_quiet_stanford_run_prints_no_load_report(stanford_checkpoint, beir, tmp_path, capfd):
    """A Stanford checkpoint's projection is a weight BertModel does not expect: transformers' styled
    LOAD REPORT went to stderr even with ``--quiet``; now nothing of it reaches the terminal."""
    assert _evaluate(stanford_checkpoint, beir, tmp_path / "out") == 0
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "\x1b[" not in out + err and "UNEXPECTED" not in out + err
    assert "results: " in out


def test_load_report_goes_to_the_debug_log(stanford_checkpoint, caplog):
    """The report is kept, plain, at debug on the harness's logger; nothing at warning."""
    caplog.set_level(logging.DEBUG, logger="harness.checkpoints.modules")
    load_encoder(stanford_checkpoint)
    [report] = [r for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    assert report.levelno == logging.DEBUG and report.name == "harness.checkpoints.modules"
    assert "linear.weight" in report.getMessage() and "\x1b[" not in report.getMessage()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_missing_backbone_weight_is_one_plain_warning(bert_copy, beir, tmp_path, capfd):
    """A backbone weight the checkpoint lacks (randomly initialised on load) is one warning line,
    shown under ``--quiet``, with no table."""
    weights = bert_copy / "model.safetensors"
    state = load_file(str(weights))
    del state["encoder.layer.0.output.dense.weight"]
    save_file(state, str(weights))
    assert _evaluate(bert_copy, beir, tmp_path / "out") == 0
    out, err = capfd.readouterr()
    [line] = [line for line in (out + err).splitlines() if "randomly initialised" in line]
    assert "1 backbone weight(s)" in line and "encoder.layer.0.output.dense.weight" in line
    assert "LOAD REPORT" not in out + err and "\x1b[" not in out + err

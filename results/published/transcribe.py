"""Transcribe the mxbai-edge-colbert-v0-17m model card into harness results files.

    python results/published/transcribe.py [--card PATH] [--out results/published]

Writes, in the harness results format (``model.kind = "published"``, ``retrieval.method =
"published"``, empty per-query scores, ``n_queries = 0`` = not stated by the source):

* the 13 NanoBEIR per-dataset card metrics of the model (the ``model-index`` YAML),
  values exactly as written in the card;
* the card's BEIR nDCG@10 table: one ``BEIR/<dataset>`` result per row and column, plus the
  row's AVG as an average-only ``BEIR`` result (see ``harness.report``: one subset ``AVG``,
  metric ``avg``) — the card's AVG is not the mean of the seven columns it shows;
* the LongEmbed table (AVG only): an average-only ``LongEmbed`` result per row; the 4k/32k
  variants are separate model ids such as ``mxbai-edge-colbert-v0-17m (32k)``.

Size groups are the card's group labels; ``model.parameters`` is set only where the card
or the model name states it (``-17m`` -> 17,000,000). The card's YAML header is flattened onto
one line, so it is tokenised into ``key: value`` items and read with a small state machine.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from harness.metrics import CARD_METRICS
from harness.report import AVERAGE_METRIC, AVERAGE_SUBSET, beir_card_columns, nanobeir_datasets
from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord, save_result

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CARD = ROOT.parent / "shared" / "seeds" / "mxbai-edge-colbert-v0-17m-model-card.txt"
MODEL = "mxbai-edge-colbert-v0-17m"
SOURCE = "https://huggingface.co/mixedbread-ai/mxbai-edge-colbert-v0-17m (model card README.md)"
CREATED = "2026-11-25T00:00:00+00:00"  # transcription date, fixed so a rerun is byte-identical
BEIR_SPLITS = {"BEIR/msmarco": "dev"}


# --------------------------------------------------------------------------- front matter


def front_matter(text: str) -> str:
    """The text between the opening ``---`` and the closing ``---`` of the card."""
    match = re.match(r"\s*---\s(.*?)\s---(?:\s|$)", text, re.S)
    if not match:
        raise ValueError("card has no '---' delimited front matter")
    return match.group(1)


def tokenize(header: str) -> list[tuple[bool, str, str]]:
    """Split flattened YAML into ``(is_list_item, key, value)``; value '' for a nested block.

    A token starts where ``[- ]key:`` is followed by whitespace or the end; scalar lists
    (``tags: - a - b``) stay in the value of their key.
    """
    pieces = re.split(r"(?<!-)\s+(?=(?:- )?[\w@.-]+:(?:\s|$))", header.strip())
    tokens = []
    for piece in pieces:
        match = re.fullmatch(r"(- )?([\w@.-]+):(?:\s+(.*))?", piece, re.S)
        if not match:
            raise ValueError(f"cannot tokenise {piece[:60]!r}")
        tokens.append((match.group(1) is not None, match.group(2), (match.group(3) or "").strip()))
    return tokens


class _Cursor:
    def __init__(self, tokens: list[tuple[bool, str, str]]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> tuple[bool, str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, key: str, item: bool = False) -> str:
        token = self.peek()
        if token is None or token[:2] != (item, key):
            raise ValueError(f"token {self.i}: expected {'- ' if item else ''}{key}:, got {token}")
        self.i += 1
        return token[2]


def parse_model_index(card_text: str) -> tuple[str, list[dict]]:
    """(model name, [{task_type, task_name, dataset_name, dataset_type, metrics: [(type, value, name)]}])."""
    tokens = tokenize(front_matter(card_text))
    cursor = _Cursor(tokens)
    while (token := cursor.peek()) is not None and token[1] != "model-index":
        cursor.i += 1
    cursor.take("model-index")
    name = cursor.take("name", item=True)
    cursor.take("results")
    entries = []
    while (token := cursor.peek()) is not None and token[:2] == (True, "task"):
        cursor.take("task", item=True)
        entry = {"task_type": cursor.take("type"), "task_name": cursor.take("name")}
        cursor.take("dataset")
        entry.update(dataset_name=cursor.take("name"), dataset_type=cursor.take("type"))
        cursor.take("metrics")
        metrics = []
        while (token := cursor.peek()) is not None and token[:2] == (True, "type"):
            metric_type = cursor.take("type", item=True)
            value = float(cursor.take("value"))
            metrics.append((metric_type, value, cursor.take("name")))
        entry["metrics"] = metrics
        entries.append(entry)
    return name, entries


# --------------------------------------------------------------------------- markdown tables


def parse_markdown_table(card_text: str, heading: str) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Header and ``(size group, model cell, value cells)`` rows of the table under ``heading``.

    Rows are flattened onto one line (``| a | b | | c | d |``): the cells are chunked by the
    column count that the alignment row (``:---``) reveals, with one blank cell between rows.
    """
    start = card_text.index(heading) + len(heading)
    end = card_text.find("###", start)
    region = card_text[start : end if end >= 0 else len(card_text)]
    region = region[region.index("|") : region.rindex("|") + 1]
    cells = [c.strip() for c in region.split("|")[1:-1]]
    ncols = next(i for i, c in enumerate(cells) if re.fullmatch(r":?-{3,}:?", c)) - 1
    stride = ncols + 1
    if len(cells) % stride != ncols or any(cells[i] for i in range(ncols, len(cells), stride)):
        raise ValueError(f"table under {heading!r} is not a grid of {ncols} columns")
    grid = [cells[i : i + ncols] for i in range(0, len(cells), stride)]
    header, rows, group = grid[0], [], None
    for row in grid[2:]:
        if not any(row[1:]):
            group = row[0].strip("*").strip()
            continue
        if group is None:
            raise ValueError(f"row {row[0]!r} comes before any size group")
        rows.append((group, row[0], row[1:]))
    return header, rows


def _plain(cell: str) -> str:
    return cell.replace("**", "").strip()


def parameters_from_name(model_id: str) -> int | None:
    """``...-17m`` -> 17_000_000; None when the name states no size."""
    match = re.search(r"(?<![A-Za-z0-9])(\d+(?:\.\d+)?)[mM](?![A-Za-z0-9])", model_id)
    return round(float(match.group(1)) * 1_000_000) if match else None


# --------------------------------------------------------------------------- results


def _result(
    model_id: str,
    group: str,
    task: str,
    convention: str,
    split: str,
    subset: str,
    table: dict[str, float],
    note: str,
    source_task: str = "",
) -> Result:
    """A published result: one subset holding ``table`` in ``convention``, no per-query scores."""
    return Result(
        model=ModelRecord(
            model_id, kind="published", parameters=parameters_from_name(model_id), size_group=group
        ),
        task=TaskRecord(
            name=task,
            convention=convention,  # type: ignore[arg-type]
            main_metric="ndcg@10" if subset != AVERAGE_SUBSET else AVERAGE_METRIC,
            split=split,
            source=source_task,
        ),
        retrieval=RetrievalRecord("published"),
        subsets=[
            SubsetScores(
                name=subset,
                n_queries=0,
                card=table if convention == "card" else None,
                trec=table if convention == "trec" else None,
            )
        ],
        timings={
            k: None for k in ("encode_queries_s", "encode_documents_s", "index_s", "retrieve_s", "total_s")
        },
        tokens={"queries": None, "documents": None},
        published={"source": SOURCE, "note": note},
        environment={},
        created=CREATED,
    )


def transcribe(card_text: str) -> list[Result]:
    """All published results of the card, in a fixed order."""
    beir_header, beir_rows = parse_markdown_table(card_text, "### **Results on BEIR**")
    _, long_rows = parse_markdown_table(card_text, "### **Results on LongEmbed**")
    own_group = next(g for g, name, _ in beir_rows if _plain(name) == MODEL)
    name, entries = parse_model_index(card_text)
    if name != MODEL:
        raise ValueError(f"card is for {name!r}, expected {MODEL!r}")
    out = []
    per_dataset = [e for e in entries if e["task_type"] == "py-late-information-retrieval"]
    if [e["dataset_name"] for e in per_dataset] != list(nanobeir_datasets()):
        raise ValueError("card's NanoBEIR datasets differ from harness.report.nanobeir_datasets()")
    for entry in per_dataset:
        table = {}
        for metric_type, value, _ in entry["metrics"]:
            table[metric_type.removeprefix("MaxSim_")] = value
        if list(table) != list(CARD_METRICS):
            raise ValueError(f"{entry['dataset_name']}: metrics {list(table)} differ from CARD_METRICS")
        dataset = entry["dataset_name"]
        note = "model-index of the card (PyLate NanoBEIREvaluator, MaxSim metrics)"
        out.append(
            _result(
                MODEL, own_group, dataset, "card", "train", dataset, table, note, f"zeta-alpha-ai/{dataset}"
            )
        )
    labels = dict(beir_card_columns())
    if beir_header[2:] != list(labels) or beir_header[1] != "AVG":
        raise ValueError(f"BEIR table columns {beir_header} differ from harness.report.beir_card_columns()")
    for group, model_cell, values in beir_rows:
        model_id = _plain(model_cell)
        note = "card table 'Results on BEIR' (nDCG@10, 3 decimals)"
        for label, cell in zip(beir_header[2:], values[1:], strict=True):
            task = labels[label]
            dataset = task.split("/", 1)[1]
            table = {"ndcg@10": float(_plain(cell))}
            split = BEIR_SPLITS.get(task, "test")
            out.append(_result(model_id, group, task, "trec", split, dataset, table, note, f"BeIR/{dataset}"))
        avg_note = note + "; AVG column as reported (not the mean of the seven columns shown)"
        avg = {AVERAGE_METRIC: float(_plain(values[0]))}
        out.append(_result(model_id, group, "BEIR", "trec", "test", AVERAGE_SUBSET, avg, avg_note))
    for group, model_cell, values in long_rows:
        note = "card table 'Results on LongEmbed' (AVG only: mean of the 6 LongEmbed task scores)"
        avg = {AVERAGE_METRIC: float(_plain(values[0]))}
        out.append(
            _result(
                _plain(model_cell),
                group,
                "LongEmbed",
                "trec",
                "test",
                AVERAGE_SUBSET,
                avg,
                note,
                "dwzhu/LongEmbed",
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    results = transcribe(args.card.read_text(encoding="utf-8"))
    for result in results:
        save_result(result, args.out)
    print(f"wrote {len(results)} results files to {args.out}")


if __name__ == "__main__":
    main()

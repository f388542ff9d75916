"""The typed records of a results file (harness.records): the schema is code, files keep their bytes
through a load and a save, bad fields are named, records cannot be changed in place."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.records import ModelRecord, RetrievalRecord, SubsetScores, TaskRecord
from harness.results import Result, load_result, result_from_dict, save_result

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "results" / "published").glob("*.json"))


@pytest.mark.parametrize("path", PUBLISHED[:: max(1, len(PUBLISHED) // 12)], ids=lambda p: p.name)
def test_a_file_read_and_written_again_keeps_its_bytes(path, tmp_path):
    result = load_result(path)
    written = save_result(result, tmp_path)
    assert written.name == path.name and written.read_bytes() == path.read_bytes()


def test_a_run_record_round_trips_with_its_optional_parts():
    """Keys a run writes in their order: the model's kernels last, the method's params between
    ``k`` and ``index``; a transcribed row has neither ``k`` nor ``ignore_identical_ids``."""
    model = ModelRecord("m", "f" * 64, None, "colbert", 17, None, {"dim": 48}, {"mode": "auto"})
    task = TaskRecord("T", "card", "ndcg@10", "test", False, "folder", {"T": "a" * 64})
    retrieval = RetrievalRecord(
        "plaid", 100, {"nbits": 2, "search": {"n_probe": 8}}, {"T": {"disk_bytes": 9}}
    )
    result = Result(model, task, retrieval, [SubsetScores("T", 1, {"ndcg@10": 0.5}, None, {"q": 0.5})])
    data = json.loads(json.dumps(result.to_dict()))
    assert list(data["model"]) == [
        "id", "fingerprint", "revision", "kind", "parameters", "size_group", "settings", "kernels"
    ]  # fmt: skip
    assert list(data["retrieval"]) == ["method", "k", "nbits", "search", "index"]
    assert list(data["task"])[4] == "ignore_identical_ids"
    back = result_from_dict(data)
    assert (back.model, back.task, back.retrieval, back.subsets) == (model, task, retrieval, result.subsets)
    transcribed = RetrievalRecord.from_dict({"method": "published"})
    assert transcribed == RetrievalRecord("published") and transcribed.to_dict() == {"method": "published"}
    assert "ignore_identical_ids" not in TaskRecord("T", "trec", "ndcg@10", "test").to_dict()


@pytest.mark.parametrize(
    ("section", "change", "field"),
    [
        ("model", {"id": 3}, "model.id"),
        ("model", {"parameters": "17m"}, "model.parameters"),
        ("model", {"kernels": "auto"}, "model.kernels"),
        ("task", {"convention": "beir"}, "task.convention"),
        ("task", {"ignore_identical_ids": "yes"}, "task.ignore_identical_ids"),
        ("retrieval", {"k": True}, "retrieval.k"),
        ("retrieval", {"index": []}, "retrieval.index"),
    ],
)
def test_a_bad_field_is_named(section, change, field):
    data = Result(
        ModelRecord("m"),
        TaskRecord("T", "trec", "ndcg@10", "test"),
        RetrievalRecord("exact", 10),
        [SubsetScores("T", 1, None, {"ndcg@10": 1.0}, {"q": 1.0})],
    ).to_dict()
    data[section] |= change
    with pytest.raises(InputError) as error:
        result_from_dict(data, "r.json")
    assert (error.value.file, error.value.field) == ("r.json", field)


def test_records_are_frozen():
    record = ModelRecord("m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.id = "other"  # type: ignore[misc]
    result = Result(
        record, TaskRecord("T", "trec", "ndcg@10", "test"), RetrievalRecord("exact"),
        [SubsetScores("T", 1, None, {"ndcg@10": 1.0})],
    )  # fmt: skip
    assert isinstance(result.subsets, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.subsets = ()  # type: ignore[misc]
    assert repr(result) == "Result('m' on 'T': ndcg@10 1.0000)"

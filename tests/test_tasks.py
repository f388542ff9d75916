"""Task registry, groups, name resolution with --data-dir, plugins via entry points.

Expected task lists are the published ones (the NanoBEIR, BEIR and LongEmbed datasets, the model
card's BEIR table).
"""

from __future__ import annotations

import shutil
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import harness.tasks as tasks_mod
from harness.data import load_beir_folder
from harness.mteb import mteb_tasks
from harness.report.catalogue import families, family
from harness.tasks import (
    MtebTask,
    Task,
    TaskGroup,
    folder_task,
    get_task,
    list_groups,
    report_groups,
    resolve_tasks,
)
from harness.types import HarnessError, InputError
from tests.helpers import SCIFACT, needs_scifact, write_beir, write_longembed_snapshot, write_nano_snapshot

NANO_CARD_ORDER = [
    "ClimateFEVER",
    "DBPedia",
    "FEVER",
    "FiQA2018",
    "HotpotQA",
    "MSMARCO",
    "NFCorpus",
    "NQ",
    "QuoraRetrieval",
    "SCIDOCS",
    "ArguAna",
    "SciFact",
    "Touche2020",
]
BEIR_PUBLIC = {
    "msmarco",
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "cqadupstack",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
}
BEIR_CARD = ["msmarco", "scifact", "webis-touche2020", "fiqa", "trec-covid", "nq", "dbpedia-entity"]
LONGEMBED = {
    "narrativeqa": "ndcg@10",
    "summ_screen_fd": "ndcg@10",
    "qmsum": "ndcg@10",
    "2wikimqa": "ndcg@10",
    "passkey": "ndcg@1",
    "needle": "ndcg@1",
}


# the report families the built-in plugins register, in their report order
REPORT_FAMILIES = ("NanoBEIR", "BEIR", "LongEmbed", "BRIGHT", "BRIGHT-long", "LoTTE", "MLDR")
REPORT_FAMILIES += ("NanoBEIR-multilingual",)


@pytest.fixture(autouse=True)
def fresh_registry():
    tasks_mod.reload_registry()
    yield
    tasks_mod.reload_registry()


def test_groups_match_published_lists() -> None:
    nano = resolve_tasks(["NanoBEIR"])
    assert [t.name for t in nano] == [f"Nano{n}" for n in NANO_CARD_ORDER]
    assert {(t.convention, t.main_metric, t.eval_split) for t in nano} == {("card", "ndcg@10", "train")}

    beir = resolve_tasks(["BEIR"])
    assert {t.name for t in beir} == {f"BEIR/{n}" for n in BEIR_PUBLIC} and len(beir) == 15
    assert all(t.convention == "trec" and t.main_metric == "ndcg@10" and t.ignore_identical_ids for t in beir)
    assert {t.name: t.eval_split for t in beir if t.eval_split != "test"} == {"BEIR/msmarco": "dev"}
    assert [t.name for t in resolve_tasks(["BEIR-card"])] == [f"BEIR/{n}" for n in BEIR_CARD]

    long = resolve_tasks(["LongEmbed"])
    assert {t.name: t.main_metric for t in long} == {f"LongEmbed/{c}": m for c, m in LONGEMBED.items()}
    assert set(list_groups()) == {
        "NanoBEIR",
        "BEIR",
        "BEIR-card",
        "LongEmbed",
        "LoTTE-pooled",
        "BRIGHT",
        "BRIGHT-long",
        "LoTTE",
        "MLDR",
        "NanoBEIR-multilingual",
    }


def test_report_families_and_mteb_names_come_from_the_plugins() -> None:
    families = report_groups()
    assert [g.name for g in families] == list(REPORT_FAMILIES)
    assert [g.card_table for g in families] == ["metrics", "columns", "average"] + [
        None
    ] * 5  # the card's three
    nano, beir, long = families[:3]
    assert nano.report_columns == nano.members and long.report_columns == long.members
    assert beir.report_columns == list_groups()["BEIR-card"]  # the card's BEIR table
    assert get_task("BEIR/msmarco").mteb == (MtebTask("MSMARCO", (("dev", "msmarco"),)),)
    assert get_task("NanoClimateFEVER").mteb[0].name == "NanoClimateFeverRetrieval"
    assert len(get_task("BEIR/cqadupstack").mteb) == 12
    passkey = get_task("LongEmbed/passkey").mteb[0].splits
    assert passkey[0] == ("test_256", "passkey_256") and len(passkey) == 8


def test_lookup_is_case_insensitive_and_dedupes() -> None:
    assert get_task("nanoscifact").name == "NanoSciFact"
    assert get_task("beir/SciFact").name == "BEIR/scifact"
    names = [t.name for t in resolve_tasks(["BEIR/scifact,nanobeir", "NanoSciFact", "beir-card"])]
    assert names[0] == "BEIR/scifact" and len(names) == len(set(names)) == 1 + 13 + 6


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("NanoSciFakt", "NanoSciFact"), ("scifact", "BEIR/scifact"), ("LongEmbed/paskey", "LongEmbed/passkey")],
)
def test_unknown_name_lists_close_matches(tmp_path: Path, typo: str, suggestion: str) -> None:
    with pytest.raises(InputError, match="unknown task or group") as info:
        resolve_tasks([typo], data_dir=tmp_path)
    assert suggestion in str(info.value) and str(tmp_path / typo) in str(info.value)


def test_unregistered_folder_becomes_adhoc_task(tmp_path: Path) -> None:
    write_beir(tmp_path / "mybench")
    (task,) = resolve_tasks(["mybench"], data_dir=tmp_path)
    settings = (task.name, task.convention, task.main_metric, task.eval_split)
    assert settings == ("mybench", "trec", "ndcg@10", "test")
    (ds,) = task.load()
    assert ds.fingerprint() == load_beir_folder(tmp_path / "mybench").fingerprint()


@needs_scifact
def test_a_folder_named_as_a_registered_dataset_is_that_task(tmp_path: Path, caplog) -> None:
    """``--tasks scifact --data-dir DIR`` is BEIR/scifact read from DIR/scifact (same table, same
    results file) when it holds the published sizes, and says so; a smaller folder of that name is an
    ad-hoc task (tests/test_task_guards.py)."""
    (tmp_path / "scifact").symlink_to(SCIFACT)
    with caplog.at_level("INFO", logger="harness.tasks"):
        (task,) = resolve_tasks(["scifact"], data_dir=tmp_path)
    assert task.name == "BEIR/scifact"
    assert "scifact: the registered task BEIR/scifact" in caplog.text
    write_beir(tmp_path / "small" / "scifact")
    (adhoc,) = resolve_tasks(["scifact"], data_dir=tmp_path / "small")
    assert adhoc.name == "scifact"


def test_adhoc_folder_of_folders(tmp_path: Path) -> None:
    for sub in ("b", "a"):
        write_beir(tmp_path / "multi" / sub)
    (tmp_path / "multi" / "notes").mkdir()
    assert [d.name for d in folder_task(tmp_path / "multi").load()] == ["multi_a", "multi_b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a BEIR folder"):
        folder_task(tmp_path / "empty").load()


@needs_scifact
def test_registered_beir_task_reads_data_dir_first() -> None:
    (task,) = resolve_tasks(["BEIR/scifact"], data_dir=SCIFACT.parent)
    (ds,) = task.load(data_dir=SCIFACT.parent)
    assert (ds.name, len(ds.corpus), len(ds.queries)) == ("scifact", 5183, 300)
    (train,) = task.load(split="train", data_dir=SCIFACT.parent)
    assert len(train.queries) == 809


def test_beir_local_hf_snapshot_with_sibling_qrels(tmp_path: Path) -> None:
    """``DIR/<name>`` as a Hub snapshot (corpus/queries jsonl.gz at the root) + ``DIR/<name>-qrels``."""
    import gzip

    src = write_beir(tmp_path / "src")
    snap = tmp_path / "data" / "scifact"
    snap.mkdir(parents=True)
    for stem in ("corpus", "queries"):
        (snap / f"{stem}.jsonl.gz").write_bytes(gzip.compress((src / f"{stem}.jsonl").read_bytes()))
    (tmp_path / "data" / "scifact-qrels").mkdir()
    shutil.copy(src / "qrels" / "test.tsv", tmp_path / "data" / "scifact-qrels" / "test.tsv")
    (ds,) = get_task("BEIR/scifact").load(data_dir=tmp_path / "data")
    ref = load_beir_folder(src)
    assert (ds.corpus, ds.queries, ds.qrels) == (ref.corpus, ref.queries, ref.qrels)


def test_cqadupstack_local_has_12_subsets(tmp_path: Path) -> None:
    from tasks.beir import CQADUPSTACK_FORUMS

    for forum in CQADUPSTACK_FORUMS:
        write_beir(tmp_path / "cqadupstack" / forum)
    subsets = get_task("BEIR/cqadupstack").load(data_dir=tmp_path)
    assert len(subsets) == 12
    assert [d.name for d in subsets] == [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS]
    shutil.rmtree(tmp_path / "cqadupstack" / "gis")
    with pytest.raises(InputError, match="not found") as info:
        get_task("BEIR/cqadupstack").load(data_dir=tmp_path)
    assert "gis" in info.value.file


@pytest.mark.parametrize("layout", ["hf-snapshot", "beir-folder"])
def test_nanobeir_task_local_layouts(tmp_path: Path, layout: str) -> None:
    if layout == "hf-snapshot":
        write_nano_snapshot(tmp_path / "NanoSciFact", readme=True)
    else:
        write_beir(tmp_path / "NanoSciFact", split="train")
    (ds,) = get_task("NanoSciFact").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert ds.name == "NanoSciFact"
    # NanoBEIR rules on both layouts: empty texts dropped, queries without qrels skipped.
    assert list(ds.queries) == ["q1", "q2"] and "d3" not in ds.corpus


def test_longembed_task_local(tmp_path: Path) -> None:
    lengths = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    write_longembed_snapshot(tmp_path / "LongEmbed", lengths)
    subsets = get_task("LongEmbed/needle").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert [d.name for d in subsets] == [f"needle_{n}" for n in lengths]
    (qmsum,) = get_task("LongEmbed/qmsum").load(data_dir=tmp_path, cache_dir=tmp_path / "hf")
    assert qmsum.qrels == {"x": {"b": 1}}


@pytest.mark.parametrize("name", ["NanoSciFact", "BEIR/scifact", "BEIR/cqadupstack", "LongEmbed/passkey"])
def test_registered_task_offline_without_data_dir(tmp_path: Path, hub_offline: None, name: str) -> None:
    with pytest.raises(HarnessError) as info:
        get_task(name).load(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "--data-dir DIR" in message and get_task(name).folder_name in message


# --------------------------------------------------------------------------- plugins


def plugin_register() -> list[Task | TaskGroup]:
    """A third-party plugin as the harness.tasks docs describe it: tasks, MTEB names, a report family."""

    def loader(split, local, cache_dir):
        return [load_beir_folder(local, split)]

    mteb = (MtebTask("ToyRetrieval", (("test", "mini"),)),)
    task = Task("Toy/mini", "mini", "trec", "ndcg@10", "test", False, loader, "toy", mteb=mteb)
    return [task, TaskGroup("Toys", ("Toy/mini", "BEIR/scifact"), report_order=9)]


def clash_register() -> list[Task]:
    return [Task("NanoSciFact", "x", "card", "ndcg@10", "train", False, lambda *a: [])]


def broken_register() -> list[Task]:
    raise RuntimeError("boom")


def bad_group_register() -> list[TaskGroup]:
    return [TaskGroup("Bad", ("NoSuchTask",))]


def bad_columns_register() -> list[TaskGroup]:
    return [TaskGroup("Bad", ("BEIR/scifact",), report_order=3, columns=("NoSuchTask",))]


def _with_plugin(monkeypatch: pytest.MonkeyPatch, func: str) -> None:
    real = tasks_mod.entry_points(group=tasks_mod.ENTRY_POINT_GROUP)
    extra = EntryPoint("third", f"tests.test_tasks:{func}", tasks_mod.ENTRY_POINT_GROUP)
    monkeypatch.setattr(tasks_mod, "entry_points", lambda group: [*real, extra])
    tasks_mod.reload_registry()


def test_entry_point_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _with_plugin(monkeypatch, "plugin_register")
    write_beir(tmp_path / "mini")
    assert [t.name for t in resolve_tasks(["toys"])] == ["Toy/mini", "BEIR/scifact"]
    (ds,) = get_task("toy/MINI").load(data_dir=tmp_path)
    assert ds.name == "mini" and len(ds.queries) == 3
    assert len(resolve_tasks(["NanoBEIR"])) == 13  # built-ins still there
    # one plugin file is the whole benchmark: its report table and MTEB names follow
    assert families() == (*REPORT_FAMILIES, "Toys", "Other")
    assert family("Toy/mini") == "Toys"
    assert mteb_tasks()["ToyRetrieval", "default"].harness_task == "Toy/mini"


@pytest.mark.parametrize(
    ("func", "message"),
    [
        ("clash_register", "registered by both"),
        ("broken_register", "'third'.*failed to load: boom"),
        ("bad_group_register", "unregistered tasks"),
        ("bad_columns_register", "unregistered tasks"),
    ],
)
def test_bad_plugins_fail_loudly(monkeypatch: pytest.MonkeyPatch, func: str, message: str) -> None:
    _with_plugin(monkeypatch, func)
    with pytest.raises(HarnessError, match=message):
        resolve_tasks(["NanoBEIR"])


def test_builtin_plugins_registered_by_pyproject() -> None:
    names = {ep.name: ep.value for ep in tasks_mod.entry_points(group=tasks_mod.ENTRY_POINT_GROUP)}
    assert names == {
        "nanobeir": "tasks.nanobeir:register",
        "beir": "tasks.beir:register",
        "longembed": "tasks.longembed:register",
        "bright": "tasks.bright:register",
        "lotte": "tasks.lotte:register",
        "mldr": "tasks.mldr:register",
        "nanobeir_multilingual": "tasks.nanobeir_multilingual:register",
    }

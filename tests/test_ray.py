"""The Ray executor (harness.executor): same embeddings and metrics as a local run, a worker killed
mid-shard replaced with nothing written twice or half, and a killed driver resumed from the cache.

Every test starts real Ray processes on this machine (a local cluster, 2 CPUs); fp32 on CPU, so
"the same" means bit for bit: each worker runs the driver's pickled encoder on the same kernels.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from harness.cache import cache_key, encode_entry, pack, write_shard
from harness.encode import load_encoder
from harness.errors import InputError
from harness.executor import LocalExecutor, RayExecutor
from harness.run import evaluate
from tests.helpers import REPO_ROOT, needs_scifact, small_beir, wait_until
from tests.model_fixtures import scifact_texts

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, needs_scifact]


class SlowEncoder:
    """An encoder that drops a marker file (``<pid>-<n>``) and sleeps before each encode, so a test
    can kill the worker process inside a shard."""

    def __init__(self, inner, markers: Path, seconds: float) -> None:
        self.inner, self.markers, self.seconds = inner, markers, seconds

    def __getattr__(self, name):
        if name == "inner":  # while unpickling
            raise AttributeError(name)
        return getattr(self.inner, name)

    def encode(self, texts, **kwargs):
        (self.markers / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        time.sleep(self.seconds)
        return self.inner.encode(texts, **kwargs)


def _entry_files(cache: Path) -> dict[str, tuple[int, int]]:
    """Every shard sidecar of the cache: name -> (inode, mtime_ns)."""
    return {
        str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in cache.glob("*/shard-*.json")
    }


def _live_processes(group: int) -> list[int]:
    """Processes of process group ``group`` that have not exited (zombies left out)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # exited while read
        if int(pgrp) == group and state not in "ZX":
            live.append(int(stat.parent.name))
    return live


def _scores(folder: Path) -> dict:
    (path,) = folder.glob("*.json")
    result = json.loads(path.read_text())
    return {s["name"]: (s["card"], s["trec"]) for s in result["subsets"]}


# -------------------------------------------------------------- a killed driver (its own cluster)


def test_a_killed_driver_resumes_from_the_cached_shards(ettin_like_checkpoint, tmp_path):
    data = small_beir(tmp_path / "data" / "scismall", 200, 12)
    cache, out = tmp_path / "cache", tmp_path / "out"
    command = [
        *(sys.executable, "-m", "harness.cli", "evaluate", "--model", str(ettin_like_checkpoint)),
        *("--tasks", "scismall", "--data-dir", str(data.parent), "--cache-dir", str(cache)),
        *("--output", str(out), "--executor", "ray", "--workers", "2", "--shard-size", "8", "--quiet"),
    ]
    driver = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True, stderr=subprocess.PIPE)
    wait_until(
        lambda: len(_entry_files(cache)) >= 4 or driver.poll() is not None,
        240,
        "the driver wrote fewer than 4 document shards",
    )
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    driver.kill()  # SIGKILL, the driver: its raylet and workers die with it
    driver.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)  # and Ray's agents, which outlive their raylet
    wait_until(
        lambda: not _live_processes(driver.pid),
        60,
        "the killed driver's Ray processes still run after SIGKILL",
    )
    before = _entry_files(cache)  # nothing of the first run writes any more
    assert not list(out.glob("*.json")), "killed before its results file"

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    [path] = out.glob("*.json")
    assert rerun.stderr == "" and rerun.stdout.splitlines()[-1] == f"results: {path}"  # --quiet: summary
    after = _entry_files(cache)
    documents = next(
        m.parent.name for m in cache.glob("*/manifest.json") if not json.loads(m.read_text())["is_query"]
    )
    n_shards = json.loads((cache / documents / "manifest.json").read_text())["n_shards"]
    done_before = [name for name in before if name.startswith(documents)]
    encoded_now = [name for name in after if name.startswith(documents) and before.get(name) != after[name]]
    assert all(after.get(name) == stamp for name, stamp in before.items())  # finished shards untouched
    assert len(done_before) >= 4 and len(encoded_now) == n_shards - len(done_before)
    assert not list(cache.glob("*/*.tmp"))
    local = tmp_path / "local"
    evaluate(str(ettin_like_checkpoint), ["scismall"], data_dir=data.parent, output_dir=local, cache_dir=None)
    assert _scores(out) == _scores(local)


# ------------------------------------------------------------------ one cluster for the others


@pytest.fixture(scope="module")
def ray_cluster():
    """A local cluster whose workers can import this repository (``tests`` included)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
    )
    yield
    ray.shutdown()


def test_ray_workers_give_the_local_embeddings_and_metrics(ray_cluster, ettin_like_checkpoint, tmp_path):
    encoder = load_encoder(ettin_like_checkpoint)
    texts = scifact_texts(96)
    local, _ = encode_entry(encoder, texts, is_query=False, cache_dir=tmp_path / "local", shard_size=16)
    executor = RayExecutor(workers=2)
    try:
        remote, use = encode_entry(
            encoder, texts, is_query=False, cache_dir=tmp_path / "ray", shard_size=16, executor=executor
        )
        assert (use.encoded, use.cached) == (6, 0)
        a, b = pack(remote), pack(local)
        assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.vectors, b.vectors)  # bit for bit
        assert a.input_tokens == b.input_tokens
    finally:
        executor.close()
    assert ray.is_initialized()  # an executor leaves alone a cluster it did not start

    data = small_beir(tmp_path / "data" / "scismall", 120, 10)
    common = {"data_dir": data.parent, "show_progress": False, "shard_size": 32, "output_dir": None}
    here = evaluate(str(ettin_like_checkpoint), ["scismall"], cache_dir=tmp_path / "c2", **common)
    on_ray = evaluate(
        str(ettin_like_checkpoint),
        ["scismall"],
        executor="ray",
        workers=2,
        cache_dir=tmp_path / "c1",
        **common,
    )
    assert on_ray[0].subsets == here[0].subsets
    assert on_ray[0].settings["executor"] == "ray" and here[0].settings["executor"] == "local"


def test_a_worker_killed_mid_shard_is_replaced(ray_cluster, ettin_like_checkpoint, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    encoder = SlowEncoder(load_encoder(ettin_like_checkpoint), markers, seconds=1.5)
    texts = scifact_texts(96)
    local, _ = encode_entry(encoder.inner, texts, is_query=False, cache_dir=tmp_path / "local", shard_size=16)
    entry = tmp_path / "cache" / cache_key(encoder, texts, is_query=False)
    entry.mkdir(parents=True)
    leftover = entry / "shard-00003.vectors.npy.4242-deadbeef.tmp"  # an earlier writer killed mid-write
    leftover.write_bytes(b"\x93NUMPY half")
    executor = RayExecutor(workers=2)
    executor.start(encoder)
    victim = executor.worker_pids()[0]

    def kill_inside_a_shard() -> None:
        wait_until(lambda: any(markers.glob(f"{victim}-*")), 120, f"worker {victim} never began a shard")
        os.kill(victim, signal.SIGKILL)  # asleep inside encode: mid-shard

    killer = ThreadPoolExecutor(1)
    killed = killer.submit(kill_inside_a_shard)
    try:
        shards, use = encode_entry(
            encoder, texts, is_query=False, cache_dir=tmp_path / "cache", shard_size=16, executor=executor
        )
    finally:
        killer.shutdown()
        executor.close()
    killed.result()  # the killer's own failure, if it timed out
    assert executor.replaced == 1
    assert use.encoded == 6
    assert not list(entry.glob("*.tmp"))  # the planted half-written file too
    assert len(list(entry.glob("shard-*.json"))) == 6
    _, reuse = encode_entry(encoder.inner, texts, is_query=False, cache_dir=tmp_path / "cache", shard_size=16)
    assert (reuse.encoded, reuse.cached) == (0, 6)  # every shard verifies
    same = [np.array_equal(a.vectors, b.vectors) for a, b in zip(shards, local, strict=True)]
    assert all(same), same  # same shards, same batches: bit for bit


def test_a_shard_that_verifies_is_not_written_again(bert_checkpoint, tmp_path):
    """A worker lost after writing its shard: the retry keeps the files (``write_shard``)."""
    from harness.cache import Job

    encoder = load_encoder(bert_checkpoint)
    texts = scifact_texts(10)
    encode_entry(encoder, texts, is_query=False, cache_dir=tmp_path, shard_size=4, executor=LocalExecutor())
    key = cache_key(encoder, texts, is_query=False)
    job = Job(encoder, texts, False, key, "", tmp_path / key, 4, None)
    before = _entry_files(tmp_path)
    seconds, tokens = write_shard(encoder, job.task(1, 32, False))
    sidecar = json.loads((tmp_path / key / "shard-00001.json").read_text())
    assert seconds is None and tokens == sidecar["input_tokens"]
    assert _entry_files(tmp_path) == before


class RefusingEncoder:
    """An encoder whose every encode raises the harness's own error (a bad text, say)."""

    name, multi_vector, revision, fingerprint = "refusing", True, None, "r" * 64

    def settings(self) -> dict:
        return {"dim": 8}

    def parameter_count(self) -> int:
        return 0

    def encode(self, texts, **kwargs):
        raise InputError("cannot encode this", field="text")


def test_an_error_of_the_work_is_the_runs_error_not_a_lost_worker(ray_cluster, tmp_path):
    executor = RayExecutor(workers=1)
    try:
        with pytest.raises(InputError, match="^text: cannot encode this$"):
            encode_entry(RefusingEncoder(), ["a", "b"], is_query=False, cache_dir=tmp_path, executor=executor)
    finally:
        executor.close()
    assert executor.replaced == 0


def test_more_workers_than_cpus_all_get_scheduled(ray_cluster, bert_checkpoint, tmp_path):
    """3 workers on a 2-CPU cluster take fractional shares (whole ones would leave one unscheduled
    and its shard waiting forever)."""
    encoder = load_encoder(bert_checkpoint)
    texts = scifact_texts(24)
    executor = RayExecutor(workers=3)
    try:
        shards, use = encode_entry(
            encoder, texts, is_query=False, cache_dir=tmp_path, shard_size=4, executor=executor
        )
        assert len(executor.worker_pids()) == 3
    finally:
        executor.close()
    assert use.encoded == 6
    local = encoder.encode(texts[:4], is_query=False, show_progress=False)
    assert np.array_equal(shards[0].vectors, local.vectors)

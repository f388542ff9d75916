"""Where the encode stage runs: in this process, or on Ray actors that each hold the model once.

An executor maps ``work(encoder, item)`` over items and yields ``(item, result)`` as each one
finishes (any order). The embedding cache hands it one item per shard to write
(``harness.cache.write_shard``), so whatever runs the work, finished shards land in the cache
folder exactly as a local run writes them, and resume, verification and PLAID's streaming build
do not change. Results are small (seconds and token counts); embeddings never travel back to the
driver.

- :class:`LocalExecutor`: a plain loop (the default).
- :class:`RayExecutor`: a pool of Ray actors, one per GPU when the run's device is CUDA, else
  ``workers`` CPU actors sharing the cluster's CPUs. The encoder is pickled once into the object
  store; each actor unpickles it, so the weights every worker uses are the driver's. A worker that
  dies mid-item (killed, out of memory, node lost) is replaced and its item is given to the next
  free worker, up to ``max_attempts`` times; an exception raised by the work itself is the run's
  error, not retried. The cache folder must be reachable by every worker (one machine, or a shared
  file system on a cluster).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from harness.errors import HarnessError, InputError, positive_int
from harness.types import Encoder

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'colbert-eval-harness[ray]'"


class Executor(Protocol):
    """Runs ``work(encoder, item)`` for every item; ``in_process`` says whether a progress bar the
    work draws reaches this terminal."""

    @property
    def name(self) -> str: ...

    @property
    def in_process(self) -> bool: ...

    def map(
        self, encoder: Encoder, work: Callable[[Encoder, T], R], items: Sequence[T]
    ) -> Iterator[tuple[T, R]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LocalExecutor:
    """Runs every item in this process, in order."""

    name: str = field(default="local", init=False)
    in_process: bool = field(default=True, init=False)

    def map(
        self, encoder: Encoder, work: Callable[[Encoder, T], R], items: Sequence[T]
    ) -> Iterator[tuple[T, R]]:
        for item in items:
            yield item, work(encoder, item)

    def close(self) -> None:
        pass


def require_ray(flag: str = "--executor") -> None:
    """InputError naming ``flag`` when Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError(f"ray is not installed: {RAY_INSTALL}", field=flag)


class _Worker:
    """A Ray actor's state: the encoder, unpickled once, on this worker's device."""

    def __init__(self, payload: bytes, device: str | None, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoder = pickle.loads(payload)  # our own driver's bytes, never a file
        if device is not None and hasattr(self.encoder, "to"):
            self.encoder.to(device)

    def run(self, work: Callable[[Any, Any], Any], item: Any) -> Any:
        return work(self.encoder, item)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """A pool of Ray actors holding one encoder (see the module docstring).

    ``address``: None starts a local cluster (stopped again by :meth:`close`), ``"auto"`` joins
    the running one, else a cluster address. ``workers``: CPU actors (default: one per CPU of the
    cluster: one-thread workers measured 1.11x a local run's wall time on 2 cores, one two-thread
    worker 1.30x, benchmarks/bench_ray.py), or on CUDA the number of GPUs to use (default: all).
    Each CPU actor takes an equal share of the cluster's CPUs and runs that many torch threads.
    """

    name = "ray"
    in_process = False

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        device: str = "cpu",
        max_attempts: int = 3,
    ) -> None:
        require_ray()
        if workers is not None:
            positive_int(workers, "--workers")
        positive_int(max_attempts, "max_attempts")
        self.address, self.workers, self.device, self.max_attempts = address, workers, device, max_attempts
        self._started_ray = False
        self._pool: list[Any] = []
        self._pool_key: tuple[int, str, str] | None = None
        self._payload: Any = None
        self._actor_options: dict[str, Any] = {}
        self._worker_args: tuple[str | None, int] = (None, 1)
        self.replaced = 0  # workers lost and replaced so far (a test and the log read it)

    # -------------------------------------------------------------------------------- the pool

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self.address,
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=True,
                logging_level=logging.WARNING,
            )
            self._started_ray = self.address is None
        return ray

    def start(self, encoder: Encoder) -> None:
        """Workers holding ``encoder`` as it is now, unless they run already (``map`` calls it): an
        encoder changed since (settings, weights) gets a new pool, never a stale copy."""
        key = (id(encoder), encoder.fingerprint, json.dumps(encoder.settings(), sort_keys=True, default=str))
        if self._pool_key != key:
            self._start_pool(encoder)
            self._pool_key = key

    def _start_pool(self, encoder: Encoder) -> None:
        """Actors for ``encoder`` (an earlier pool is stopped first: its actors hold the CPUs)."""
        cuda = self.device.startswith("cuda")
        if encoder.settings().get("device", "cpu") != ("cuda" if cuda else "cpu"):
            # the cache key follows the encoder's settings: they must say where the workers encode
            raise InputError(f"the encoder was not loaded for {self.device}", field="--device")
        ray = self._ray()
        self._stop_pool()
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if cuda:
            if gpus == 0:
                raise InputError("the Ray cluster has no GPU", field="--device")
            n = min(self.workers or gpus, gpus)
            self._actor_options = {"num_cpus": 1, "num_gpus": 1}
            self._worker_args = ("cuda", max(1, int(cpus) // n))  # Ray makes each actor's GPU "cuda"
        else:
            n = self.workers or max(1, int(cpus))
            # a fractional share when there are more workers than CPUs: every actor gets scheduled
            self._actor_options = {"num_cpus": cpus / n}
            self._worker_args = (None, max(1, int(cpus) // n))
        self._payload = ray.put(pickle.dumps(encoder, protocol=pickle.HIGHEST_PROTOCOL))
        self._pool = [self._new_actor() for _ in range(n)]
        log.info("ray: %d workers (%s each) for %s", n, self._actor_options, encoder.name)

    def _new_actor(self) -> Any:
        ray = self._ray()
        actor_class = ray.remote(max_restarts=0)(_Worker)
        return actor_class.options(**self._actor_options).remote(self._payload, *self._worker_args)

    def _stop_pool(self) -> None:
        if self._pool:
            import ray

            for actor in self._pool:
                ray.kill(actor)
        self._pool, self._pool_key, self._payload = [], None, None

    def worker_pids(self) -> list[int]:
        """The process ids of the pool's live workers."""
        import ray

        return ray.get([actor.pid.remote() for actor in self._pool])

    # -------------------------------------------------------------------------------- the work

    def map(
        self, encoder: Encoder, work: Callable[[Encoder, T], R], items: Sequence[T]
    ) -> Iterator[tuple[T, R]]:
        if not items:
            return
        self.start(encoder)
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        lost = (RayActorError, ActorDiedError, ActorUnavailableError)
        queue = collections.deque(enumerate(items))
        attempts = collections.Counter[int]()
        idle = list(self._pool)
        running: dict[Any, tuple[Any, int, T]] = {}
        try:
            while queue or running:
                while queue and idle:
                    actor = idle.pop()
                    position, item = queue.popleft()
                    running[actor.run.remote(work, item)] = (actor, position, item)
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor, position, item = running.pop(ref)
                try:
                    result = ray.get(ref)
                except lost as exc:
                    if getattr(exc, "actor_init_failed", False):  # cannot load the model: no retry helps
                        raise RuntimeError(f"a Ray worker could not start: {exc}") from exc
                    attempts[position] += 1
                    if attempts[position] >= self.max_attempts:
                        raise RuntimeError(
                            f"item {position} lost its worker {attempts[position]} times; giving up: {exc}"
                        ) from exc
                    log.warning("ray: a worker died on item %d (%s); retrying it on another", position, exc)
                    ray.kill(actor)  # unreachable is not surely dead: it must not write on, nor hold a GPU
                    replacement = self._new_actor()
                    self._pool[self._pool.index(actor)] = replacement
                    self.replaced += 1
                    idle.append(replacement)
                    queue.appendleft((position, item))
                    continue
                except ray.exceptions.RayTaskError as exc:  # the work raised: the run's own error
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, HarnessError):  # bad input: its own message, as a local run says
                        raise cause from None
                    raise exc.as_instanceof_cause() from None  # a bug: with the worker's traceback
                idle.append(actor)
                yield item, result
        finally:
            if running:  # stopped early (an error, or the consumer left): no worker may write on
                self._stop_pool()

    def close(self) -> None:
        """Stop the workers, and the local cluster when this executor started it."""
        if self._pool or self._started_ray:
            import ray

            self._stop_pool()
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False


def make_executor(
    name: str, *, address: str | None = None, workers: int | None = None, device: str = "cpu"
) -> Executor:
    """The executor ``--executor name`` asks for (checked: ``EXECUTORS``; Ray must be installed)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, workers, device)
    raise InputError(f"must be one of {', '.join(EXECUTORS)}; got {name!r}", field="--executor")

"""Run the per-series pipeline over many series: in-process, in a process pool, or on Dask.

Series are shipped in chunks (tens of series per task), so the cost of pickling and scheduling is
paid per chunk, not per series; each series inside a chunk is a few milliseconds of numpy work.

- ``serial``: this process (tests, tiny inputs, debugging).
- ``process`` (default): a local :class:`~concurrent.futures.ProcessPoolExecutor`, one worker per
  core. Small inputs (fewer series than two chunks) stay in-process, where a pool would cost more
  to start than it saves.
- ``dask``: a Dask ``distributed`` cluster; pass ``address="tcp://scheduler:8786"`` to use an
  existing scheduler, or a ``distributed.Client`` as ``client``. Workers need cloudbalance
  installed.

For Spark, see ``docs/forecasting.md``: a ``groupBy("unique_id").applyInPandas`` over
:func:`cloudbalance.forecast.forecast` with ``executor="serial"`` inside each group.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal, TypeVar

from cloudbalance.exceptions import ForecastError

__all__ = ["Executor", "run_chunks"]

Executor = Literal["serial", "process", "dask"]

T = TypeVar("T")
R = TypeVar("R")

#: Series per task.
CHUNK = 25


def _chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _apply_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    """Run ``fn`` over a chunk with BLAS on one thread.

    The per-series matrices are tiny (hundreds of rows, tens of columns); a multi-threaded BLAS
    spends far longer waking its threads than computing (measured 13 ms vs 0.25 ms for one Gram
    matrix), and with one worker per core the threads would only fight each other anyway.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1, user_api="blas"):
        return [fn(item) for item in chunk]


def _workers(n_jobs: int | None) -> int:
    if n_jobs is not None and n_jobs > 0:
        return n_jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_chunks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    executor: Executor = "process",
    n_jobs: int | None = None,
    chunk_size: int | None = None,
    address: str | None = None,
    client: Any = None,
) -> list[R]:
    """Apply ``fn`` (a picklable, module-level function) to every item, keeping their order.

    Raises:
        ForecastError: Unknown executor, or Dask requested but not installed / unreachable.
    """
    if client is not None or address is not None:
        executor = "dask"
    if executor not in ("serial", "process", "dask"):
        raise ForecastError(f"executor must be serial, process or dask, got {executor!r}")
    workers = _workers(n_jobs)
    size = chunk_size or max(1, min(CHUNK, -(-len(items) // (workers * 4))))
    chunks = _chunks(items, size)
    if executor == "serial" or (executor == "process" and (workers == 1 or len(chunks) < 2)):
        return _apply_chunk(fn, list(items))
    if executor == "process":
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["cloudbalance.forecast.core"])
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx) as pool:
            parts = list(pool.map(_apply_chunk, [fn] * len(chunks), chunks))
        return [r for part in parts for r in part]
    return _run_dask(fn, chunks, address=address, client=client)


def _run_dask(
    fn: Callable[[T], R], chunks: list[list[T]], *, address: str | None, client: Any
) -> list[R]:
    try:
        from distributed import Client
    except ImportError as err:
        raise ForecastError(
            "the dask executor needs dask[distributed]: pip install 'cloudbalance[distributed]'"
        ) from err
    own = client is None
    if own:
        try:
            client = (
                Client(address, timeout=10)  # type: ignore[no-untyped-call]
                if address
                else Client(processes=True)  # type: ignore[no-untyped-call]
            )
        except OSError as err:
            raise ForecastError(f"cannot reach the Dask scheduler at {address!r}: {err}") from err
    try:
        futures = client.map(_apply_chunk, [fn] * len(chunks), chunks, pure=False)
        parts = client.gather(futures)
    finally:
        if own:
            client.close()
    return [r for part in parts for r in part]

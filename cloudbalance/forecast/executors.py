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

import atexit
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
        pool = _pool(workers)
        try:
            parts = list(pool.map(_apply_chunk, [fn] * len(chunks), chunks))
        except BrokenProcessPool as err:
            _shutdown()
            raise ForecastError(f"a forecasting worker process died: {err}") from err
        return [r for part in parts for r in part]
    return _run_dask(fn, chunks, address=address, client=client)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per worker count, kept for the life of the process.

    Starting workers (a fork server that imports numpy, scipy and pandas once) is the largest
    fixed cost of a forecast; a daily job or a notebook that forecasts several times pays it
    once. See :func:`_start_method` for how workers start.
    """
    pool = _POOLS.get(workers)
    if pool is None:
        ctx = multiprocessing.get_context(_start_method())
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["cloudbalance.forecast.core"])
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        _POOLS[workers] = pool
        if len(_POOLS) == 1:
            atexit.register(_shutdown)
    return pool


def _start_method() -> str:
    """``fork`` where it is safe and the default, else ``forkserver``.

    ``fork`` starts a worker in milliseconds with everything already imported; ``forkserver``
    pays one import of numpy, scipy and pandas (seconds on a busy machine). ``fork`` is used on
    Python 3.11 on Linux when this process runs no other Python thread; from 3.12 CPython warns
    about forking a multi-threaded process (BLAS pools count), and 3.14 stopped defaulting to it,
    so there ``forkserver`` is used. ``CLOUDBALANCE_MP_START`` overrides the choice.
    """
    forced = os.environ.get("CLOUDBALANCE_MP_START")
    if forced:
        return forced
    methods = multiprocessing.get_all_start_methods()
    if (
        sys.version_info < (3, 12)
        and "fork" in methods
        and sys.platform.startswith("linux")
        and threading.active_count() == 1
    ):
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _shutdown() -> None:
    """Stop the cached pools (at exit, or after a worker died)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


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

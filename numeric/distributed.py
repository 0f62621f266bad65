"""Independent work items on Dask's ``distributed`` scheduler (an optional extra).

``cluster(workers=N)`` starts a ``LocalCluster`` of ``N`` single-threaded worker processes bound
to 127.0.0.1 (no dashboard); ``cluster(scheduler=ADDRESS)`` connects to an existing scheduler
(``tcp://host:8786``), failing within ``timeout`` seconds with an ``InputError`` that names the
address; with neither, it yields ``None`` and callers run in-process, as without Dask.

Determinism is the callers' contract, not the scheduler's: every item carries its own seed
(derived from the item, never from the order or the worker), each worker runs with the same
torch thread count as a serial run, and results are keyed by item, so a distributed run gives
bitwise the numbers of the serial run whatever the number of workers and the order of
completion.  Fault tolerance is Dask's: a task whose worker dies is rescheduled on another
worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by default).
"""
from __future__ import annotations

import contextlib

from .errors import InputError

INSTALL = "python3 -m pip install -e '.[dask]'"


def available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _need():
    try:
        import distributed
    except ImportError:
        raise InputError(f"--workers/--scheduler need Dask's distributed scheduler: {INSTALL}") from None
    return distributed


def check_request(workers, scheduler) -> None:
    """Refuse bad flags before any work (exit 2)."""
    if workers is None and scheduler is None:
        return
    if workers is not None and scheduler is not None:
        raise InputError("give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if workers is not None and not (isinstance(workers, int) and 1 <= workers <= 256):
        raise InputError(f"--workers must be an integer in [1, 256], got {workers!r}")
    if scheduler is not None and not str(scheduler).strip():
        raise InputError("--scheduler: an empty address")
    _need()


@contextlib.contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0):
    """A connected ``distributed.Client`` (or ``None`` for in-process work)."""
    check_request(workers, scheduler)
    if workers is None and scheduler is None:
        yield None
        return
    import logging

    distributed = _need()
    for name in ("distributed", "distributed.worker", "distributed.nanny", "distributed.scheduler",
                 "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there within "
                             f"{timeout:g} s ({type(exc).__name__}: {exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    lc = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR)
    client = distributed.Client(lc, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        lc.close()


def as_completed(client, futures):
    """Futures as they finish (in completion order)."""
    from distributed import as_completed as _ac

    return _ac(futures, loop=client.loop)


def describe(client) -> str:
    if client is None:
        return "in-process"
    info = client.scheduler_info()
    return f"dask {info.get('address', '?')} ({len(info.get('workers', {}))} workers)"

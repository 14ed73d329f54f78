"""The Dask side of `core.batch`: run pairs on a local or an existing dask.distributed cluster.

Imported only when a batch uses Dask, so the base install does not need it. Tasks run
`core.batch.run_pair` on the workers; each gets the ITK thread count for its machine
(cores // tasks that machine runs at once), so workers never oversubscribe the cores.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from regviewer.core.registration.batch import DASK_MISSING, BatchSettings, BatchSetupError, PairResult, PairSpec, run_pair

SCHEDULER_TIMEOUT_S = 10.0


def run_on_dask(todo: list[PairSpec], out_root: Path, settings: BatchSettings, workers: int | None,
                scheduler: str | None, record: Callable[[PairResult], None]) -> None:
    """Submit every pair, `record` each result as it arrives; a lost worker fails only its
    pair. `scheduler` None starts (and stops) a LocalCluster of `workers` processes."""
    try:
        import logging

        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise BatchSetupError(DASK_MISSING) from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise BatchSetupError(f"Cannot reach the Dask scheduler at '{scheduler}': {exc}") from None
        else:
            n = workers or os.cpu_count() or 1
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        with client:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise BatchSetupError(f"The Dask scheduler at '{scheduler}' has no workers (waited 60 s)") from None
            threads = _itk_threads_per_worker(client)
            futures = [client.submit(run_pair, spec, str(out_root), settings, threads, key=f"regviewer-pair-{spec.name}-"
                                     f"{time.monotonic_ns()}", pure=False, retries=0) for spec in todo]
            by_future = dict(zip(futures, todo))
            try:
                for fut in as_completed(futures):
                    spec = by_future[fut]
                    try:
                        r = fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a worker died: record, go on
                        r = PairResult(pair=spec.name, status="failed", folder=str(out_root / spec.name),
                                       error=f"the Dask worker failed: {type(exc).__name__}: {exc}")
                    record(r)
            except BaseException:
                client.cancel(futures)
                raise
    finally:
        if cluster is not None:
            cluster.close()


def _itk_threads_per_worker(client) -> dict[str, int]:
    """{worker address: ITK threads} so each machine's tasks share its cores without oversubscribing."""
    info = client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers(client) else client.scheduler_info()["workers"]
    cores = client.run(os.cpu_count)
    per_host: dict[str, int] = {}
    for addr, w in info.items():
        per_host[w.get("host", addr)] = per_host.get(w.get("host", addr), 0) + int(w.get("nthreads", 1))
    return {addr: max(1, int(cores.get(addr) or 1) // max(1, per_host[w.get("host", addr)])) for addr, w in info.items()}


def _accepts_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False

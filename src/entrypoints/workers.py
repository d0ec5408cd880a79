"""Background workers: the inbox retrier, the reconciler and the idempotency-key purge.

Each job is a loop of small steps. A step that did work is followed by the next one at once; an idle or
failed step waits for the job's interval. ``stop()`` makes every loop stop *taking* work at once, lets
the step in hand finish within the timeout, and only then cancels what is left. Several instances may
run workers at the same time: every step leases its work in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("payments.workers")


StopCheck = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Job:
    """``step(should_stop)`` does a small batch of work and returns how much it did; it checks
    ``should_stop()`` between items so that shutdown never waits for more than the item in hand."""

    name: str
    interval_s: float
    step: Callable[[StopCheck], Awaitable[int]]


class WorkerPool:
    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = jobs
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.steps_done: dict[str, int] = {job.name: 0 for job in jobs}

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        for job in self._jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"worker:{job.name}"))
        log.info("workers started: %s", ", ".join(j.name for j in self._jobs) or "none")

    async def _loop(self, job: Job) -> None:
        while not self._stopping.is_set():
            try:
                done = await job.step(self._stopping.is_set)
            except Exception:  # a failing step must not kill the worker
                log.exception("worker %s: step failed", job.name)
                done = 0
            self.steps_done[job.name] += 1
            if done == 0 and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=job.interval_s)

    async def stop(self, timeout_s: float) -> bool:
        """Stop taking work; wait for the steps in hand. True when everything finished in time."""
        self._stopping.set()
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning(
                "workers cancelled after %.1fs: %s", timeout_s, ", ".join(t.get_name() for t in pending)
            )
        return not pending

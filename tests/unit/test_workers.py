"""Background workers: stop taking work at once on shutdown, finish the item in hand."""

from __future__ import annotations

import asyncio

from entrypoints.workers import Job, WorkerPool


async def test_stop_lets_the_item_in_hand_finish_and_takes_no_new_work() -> None:
    started: list[int] = []
    finished: list[int] = []
    gate = asyncio.Event()

    async def step(should_stop: object) -> int:
        n = len(started)
        started.append(n)
        await gate.wait()
        await asyncio.sleep(0.05)
        finished.append(n)
        return 1  # "there is more work": without stop it would loop at once

    pool = WorkerPool([Job("busy", 10.0, step)])
    pool.start()
    await asyncio.sleep(0.01)
    assert started == [0]
    stopping = asyncio.create_task(pool.stop(timeout_s=5))
    await asyncio.sleep(0.01)
    gate.set()
    assert await stopping is True
    assert finished == [0] and started == [0]
    assert not pool.running


async def test_stop_cancels_a_step_that_overruns_the_timeout() -> None:
    async def stuck(should_stop: object) -> int:
        await asyncio.sleep(60)
        return 0

    pool = WorkerPool([Job("stuck", 1.0, stuck)])
    pool.start()
    await asyncio.sleep(0.01)
    assert await pool.stop(timeout_s=0.1) is False
    assert not pool.running


async def test_a_failing_step_does_not_kill_the_worker() -> None:
    calls = 0

    async def flaky(should_stop: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database blip")
        return 0

    pool = WorkerPool([Job("flaky", 0.01, flaky)])
    pool.start()
    await asyncio.sleep(0.1)
    await pool.stop(timeout_s=1)
    assert calls >= 2


async def test_an_idle_worker_waits_for_its_interval_but_stops_at_once() -> None:
    calls = 0

    async def idle(should_stop: object) -> int:
        nonlocal calls
        calls += 1
        return 0

    pool = WorkerPool([Job("idle", 30.0, idle)])
    pool.start()
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await pool.stop(timeout_s=5) is True
    assert calls == 1 and loop.time() - t0 < 1.0

"""Carries out a session's load profile: sends each rate command of the plan at its time and
marks each stage in the workflow's history (a memo change, visible in the Temporal Web UI).
Deterministic: workflow timers only; the sending is the caller's activity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sipflow.load_profile import RateCommand

MEMO_STAGE = "sipflow_load_stage"


async def follow(
    commands: list[RateCommand], send: Callable[[float], Awaitable[None]], stages: int
) -> None:
    """From now (the callers just started at commands[0]'s rate) to the plan's end."""
    began = workflow.now()
    rate: float | None = None
    for cmd in commands:
        elapsed = (workflow.now() - began).total_seconds()
        if cmd.at_s > elapsed:
            await workflow.sleep(cmd.at_s - elapsed)
        rate = cmd.rate if cmd.rate is not None else rate
        if cmd.stage is not None:
            mark = {"stage": cmd.stage + 1, "of": stages, "at_s": cmd.at_s, "rate": rate}
            workflow.upsert_memo({MEMO_STAGE: mark})
        if cmd.rate is not None and cmd.at_s > 0:  # at 0: the rate the callers started with
            await send(cmd.rate)

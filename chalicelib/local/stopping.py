"""Stopping the local stack within a bound, on a loaded machine too.

Measured at a load of 15-25 on 2 cores (CI runs two stacks beside other test processes): an idle
stack took 18-48 s from SIGTERM to exit, of which about two thirds were not waiting at all but
CPU-starved work nobody needed: the interpreter's own teardown (freeing the modules of boto3,
pandas, moto...) after everything had stopped, 6-23 s in the stack and 5 s in the moto child,
and the components stopped one after another though none waits for another.

- :func:`stop_parts` stops independent parts at once, each in a thread of its own, and waits for
  them all up to one bound; a part still stopping then is named in the log, and the stack goes on.
- :func:`timed` writes how long a step of the stop took when it took long (the trace for the
  next slow stop).
- :func:`exit_now` ends a process whose parts have all stopped and whose state is saved, without
  the interpreter's teardown.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Callable, Optional, Sequence

#: A step that took at least this long is logged with its duration.
SLOW_STEP_SECONDS = 1.0

Report = Callable[[str], None]


def say(line: str) -> None:
    """A line of the stack's own on stderr (its log)."""
    print(f"kilele: {line}", file=sys.stderr, flush=True)


def timed(step: str, stop: Callable[[], None], report: Report = say,
          clock: Callable[[], float] = time.monotonic) -> float:
    """Run ``stop``; report ``step``'s duration if it took :data:`SLOW_STEP_SECONDS` or more.
    Returns the duration. What ``stop`` raises propagates (after the report)."""
    started = clock()
    try:
        stop()
    finally:
        took = clock() - started
        if took >= SLOW_STEP_SECONDS:
            report(f"stopping {step} took {took:.1f} s")
    return took


def stop_parts(parts: Sequence[tuple[str, Callable[[], None]]], timeout_seconds: float,
               report: Report = say) -> list[str]:
    """Run every ``(name, stop)`` at once and wait for all of them, at most ``timeout_seconds``
    in all. Returns the names of the parts still stopping then (they go on in daemon threads,
    which do not hold the process). A part whose stop raises is reported and counts as stopped."""
    threads: list[tuple[str, threading.Thread]] = []
    for name, stop in parts:
        thread = threading.Thread(target=_run_part, args=(name, stop, report), name=f"kilele-stop-{name}",
                                  daemon=True)
        thread.start()
        threads.append((name, thread))
    deadline = time.monotonic() + timeout_seconds
    for _, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [name for name, thread in threads if thread.is_alive()]
    if late:
        report(f"{', '.join(late)} still stopping after {timeout_seconds:g} s; stopping the rest")
    return late


def _run_part(name: str, stop: Callable[[], None], report: Report) -> None:
    try:
        timed(name, stop, report)
    except Exception as e:  # noqa: BLE001 - one part's failure must not keep the others running
        report(f"stopping {name} failed: {type(e).__name__}: {e}")


def exit_now(code: int, exit: Optional[Callable[[int], None]] = None) -> None:
    """Flush the log and the standard streams, then end the process with ``code`` at once,
    without the interpreter's teardown (``exit``: os._exit; tests pass their own). Only for a
    process that has stopped everything it started and saved its state: no atexit hook runs."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or its reader is gone: nothing more to say there
            pass
    (exit or os._exit)(code)


__all__ = ["stop_parts", "timed", "exit_now", "say", "SLOW_STEP_SECONDS"]

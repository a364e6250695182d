"""Writes one benchmark's section into bench/README.md, replacing it on a rerun."""
from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).parent / "README.md"
INTRO = "# Benchmarks\n\nBenchmarks of Kilele and their latest results. Each section says how to reproduce it.\n"


def write_section(heading: str, section: str, path: Path = README) -> None:
    """Replace the section starting with ``heading`` (up to the next ``## ``), or append it."""
    text = path.read_text() if path.exists() else INTRO
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"`nproc` = {cores}{', ' + model if model else ''}"

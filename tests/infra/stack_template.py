"""The whole stack's template, synthesised once per test process and stage: the infra test files
read the same template (asset bundling skipped, so synth never runs pip), and each synthesis
takes about 30 s of CPU, which CI's budget cannot pay once per file."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "infra")) if p not in sys.path]

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from kilele_infra import KileleStack  # noqa: E402


@functools.lru_cache(maxsize=None)
def whole_stack(stage: str) -> Template:
    """``kilele-<stage>`` as ``cdk deploy -c stage=<stage>`` would make it (read-only: shared)."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    return Template.from_stack(KileleStack(app, f"kilele-{stage}", stage=stage))

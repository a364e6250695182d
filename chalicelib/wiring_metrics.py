"""The composition root's section for continuous tests' CloudWatch metrics (kept apart so
wiring.py stays short): which sink ``ct_metrics_uri`` names, made from the settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from chalicelib.settings import Settings
from chalicelib.wiring_runtimes import default_work_dir, scheme_of


def ct_metrics_sink(settings: Settings) -> Optional[Any]:
    """EMF log lines CloudWatch reads (``cloudwatch://``), the local metrics log (``local://<dir>``),
    or None (no metrics): unset, ``cloudwatch://`` where ``cloudwatch_metrics`` is on (infra's
    functions), None elsewhere."""
    uri = settings.ct_metrics_uri or ("cloudwatch://" if settings.cloudwatch_metrics else "")
    if not uri:
        return None
    scheme, rest = scheme_of(uri, "KILELE_CT_METRICS_URI", ("cloudwatch", "local"))
    if scheme == "local":
        from chalicelib.adapters.ct_metrics.local import LocalCTMetricsLog

        return LocalCTMetricsLog(Path(rest) if rest else default_work_dir("metrics"), settings.stage)
    from chalicelib.adapters.ct_metrics.emf import EmfCTMetrics

    return EmfCTMetrics(settings.stage)


__all__ = ["ct_metrics_sink"]

"""RIME's SDK names on Kilele (seed 002), so RIME code runs with only its import line changed::

    from kilele.rime import RIMEClient, RIMEStressTestJob, RIMEProject, RIMECTInstance

    rime_client = RIMEClient("127.0.0.1:8000", "api-key")     # the local stack
    project = rime_client.create_project(name="foo", description="bar")
    job = rime_client.start_stress_test_job(test_run_config=config, project_id=project.project_id)
    job.get_status(verbose=True, wait_until_finish=True)
    df = job.get_test_cases_result()

``RIMEClient`` is a :class:`kilele.Client` that takes RIME's ``domain``; ``RIMEStressTestJob``,
``RIMEProject``, ``RIMEImageBuilder``, ``RIMECTInstance`` and ``CustomImage`` are
:class:`kilele.stress.StressTestJob`, :class:`kilele.stress.Project`,
:class:`kilele.images.ImageBuilder`, :class:`kilele.continuous.CTInstance` and
:class:`kilele.stress.CustomImage`. Managed images are built and listed (``create_managed_image``,
``list_managed_images``); continuous tests run from a reference
(``start_continuous_test_from_reference``) and on new data (``RIMECTInstance.start_incremental_continuous_test``).
"""
from __future__ import annotations

import ipaddress
from typing import Any, Optional
from urllib.parse import urlsplit

from kilele.client import Client
from kilele.continuous import CTInstance
from kilele.images import ImageBuilder
from kilele.stress import CustomImage, Project, StressTestJob

#: RIME's names for Kilele's classes.
RIMEStressTestJob = StressTestJob
RIMEProject = Project
RIMEImageBuilder = ImageBuilder
RIMECTInstance = CTInstance



def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_for_domain(domain: str, disable_tls: bool = False) -> str:
    """The API root for RIME's ``domain``: a URL is taken as it is; ``host[:port][/path]`` gets
    ``http://`` on loopback (``localhost``, ``127.0.0.1``, ``::1``) or with ``disable_tls``,
    ``https://`` otherwise."""
    domain = str(domain).strip()
    if not domain:
        raise ValueError("domain must name the Kilele API, e.g. '127.0.0.1:8000' or 'https://api.example.com/api'")
    if "://" in domain:
        return domain.rstrip("/")
    host = urlsplit(f"//{domain}").hostname or ""
    scheme = "http" if disable_tls or _is_loopback(host) else "https"
    return f"{scheme}://{domain}".rstrip("/")


class RIMEClient(Client):
    """RIME's client (seed 002) on a Kilele API: projects, stress tests, their jobs.

    :param domain: where the API is: ``host:port`` of a local stack (``"127.0.0.1:8000"``, over
        http), a host (over https), or a full URL (``"https://abc.execute-api…/api"``)
    :param api_key: a Kilele API key (sent as ``x-api-key``)
    :param channel_timeout: seconds to wait for each answer (RIME's name)
    :param disable_tls: use http even for a host that is not loopback
    """

    def __init__(self, domain: str, api_key: str = "", channel_timeout: float = 60.0,
                 disable_tls: bool = False, **kwargs: Any):
        super().__init__(base_url=base_url_for_domain(domain, disable_tls), api_key=api_key or None,
                         timeout=channel_timeout, **kwargs)


__all__ = ["RIMEClient", "RIMEStressTestJob", "RIMEProject", "RIMEImageBuilder", "RIMECTInstance", "CustomImage",
           "base_url_for_domain"]

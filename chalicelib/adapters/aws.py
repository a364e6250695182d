"""boto3 clients for every adapter, from one session built from the settings.

boto3 clients are thread-safe and expensive to create (~50 ms of loading service models, a new
TLS connection): each service's client is made once and shared. The endpoint URL and
credentials are explicit (the local stack points them at moto), never read from the
environment behind the settings' back.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import boto3
from botocore.config import Config


class AwsClients:
    """One boto3 session; :meth:`client` returns the shared client of a service."""

    def __init__(self, region: str, endpoint_url: Optional[str] = None,
                 access_key_id: Optional[str] = None, secret_access_key: Optional[str] = None,
                 service_endpoints: Optional[dict[str, str]] = None):
        self.region = region
        self.endpoint_url = endpoint_url or None
        # A service with an endpoint of its own (DynamoDB on a moto server beside LocalStack).
        self.service_endpoints = dict(service_endpoints or {})
        self._session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
        )
        self._clients: dict[tuple[str, Optional[str]], Any] = {}
        self._lock = threading.Lock()  # botocore's client creation is not thread-safe

    def client(self, service: str, config: Optional[Config] = None, variant: Optional[str] = None) -> Any:
        """The shared client of ``service``; ``variant`` names a differently configured one
        (e.g. a read timeout), kept apart from the default."""
        key = (service, variant)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                endpoint_url = self.service_endpoints.get(service) or self.endpoint_url
                client = self._session.client(service, endpoint_url=endpoint_url, config=config)
                self._clients[key] = client
            return client

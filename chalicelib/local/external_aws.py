"""An emulated AWS the local stack did not start (LocalStack, from scripts/test-localstack), in
place of its moto child: ``kilele local up --aws-endpoint-url URL``.

It offers what the stack asks of :class:`~chalicelib.local.moto_server.MotoServer` (url, pid,
start, stop, health, alive, iam_credentials), minus what only the moto child has, each said
here and in docs/localstack.md:

- no snapshots: the emulator keeps its own state (or none); the stack's data dir holds no
  ``moto/state.snapshot``, so a restart restores nothing of AWS;
- no restart: the stack does not own the process; one that stops answering for
  :data:`UNANSWERED_GRACE_SECONDS` fails the stack (the watcher never "restarts" it, which would
  end the running trials as if their AWS had been lost);
- no IAM credentials for SigV4 checks (moto's IAM_CREDENTIALS_PATH): the gateway knows no access
  key, so IAM-signed API calls are refused (401) and API keys and sessions are the way in.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import requests

#: How long the emulator may leave its health check unanswered before the stack counts it as
#: gone: on a loaded machine (CI's two cores running LocalStack, the stack and its workers) one
#: check can take longer than its 2 s timeout without anything being wrong.
UNANSWERED_GRACE_SECONDS = 30.0


class ExternalAws:
    """The endpoint of an AWS emulator that runs on its own."""

    #: The watcher never restarts it: the stack fails instead (chalicelib/local/watch.py).
    restartable = False

    def __init__(self, url: str, health_path: str = "/_localstack/health",
                 grace_seconds: float = UNANSWERED_GRACE_SECONDS):
        self.url = url.rstrip("/")
        self.health_path = health_path
        self._grace = grace_seconds
        self._answered_at: Optional[float] = None  # monotonic time of the last answered check

    @property
    def pid(self) -> Optional[int]:
        return None  # not the stack's process: never stopped or restarted by it

    def start(self, timeout_seconds: float = 60.0) -> None:
        """Check that the emulator answers; the stack fails to start if it does not."""
        health = self.health()
        if not health["ok"]:
            raise RuntimeError(f"the AWS endpoint {self.url} does not answer: {health['detail']}")

    def stop(self) -> None:
        """Nothing: the emulator belongs to whoever started it."""

    def health(self) -> dict[str, Any]:
        """``{"ok", "detail"}`` from the emulator's health path."""
        try:
            response = requests.get(self.url + self.health_path, timeout=2)
        except requests.RequestException as e:
            return {"ok": False, "detail": f"{self.url} does not answer: {type(e).__name__}"}
        if response.status_code != 200:
            return {"ok": False, "detail": f"{self.url}{self.health_path} answered {response.status_code}"}
        self._answered_at = time.monotonic()
        return {"ok": True, "detail": f"external emulator at {self.url}"}

    def alive(self) -> bool:
        """False once the emulator has not answered for the grace period (at once if it never has)."""
        if self.health()["ok"]:
            return True
        return self._answered_at is not None and time.monotonic() - self._answered_at < self._grace

    def iam_credentials(self, access_key_id: str) -> Any:
        """None: only the moto child can tell the secret of a key it issued (see the module)."""
        return None

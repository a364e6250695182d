"""Password guessing as an attacker does it (issue 9, finding 4): one account guessed from a
wordlist, and one common password sprayed over many accounts from one address.

The API runs as the local stack serves it (waitress + the local gateway, on loopback; moto in
process), so the client's address is the connection's, as API Gateway gives it. The attacker is
patient: it honours ``Retry-After`` while the wait is short and gives up on a long one. Each test
prints and asserts the defence that stopped the attack.
"""
from __future__ import annotations

import functools
import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import pytest

from chalicelib.entities import UserType
from settings_support import make_settings

VICTIM, VICTIM_PASSWORD = "victim@example.com", "iris-tree-sunrise-42"
# Common passwords first, as wordlists order them; the right one far enough in that only an
# undefended API lets the attacker reach it.
WORDLIST = ["123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111", "1234567",
            "dragon", "123123", "baseball", "abc123", "football", "monkey", "letmein", "696969", "shadow",
            "master", "666666", "qwertyuiop", "123321", "mustang", "1234567890", "michael", "654321",
            "superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx", "123qwe", "killer", "trustno1",
            "jordan", "jennifer", "zxcvbnm", "asdfgh", "hunter", "buster", "soccer", "harley", "batman",
            "andrew", "tigger", "sunshine", "iloveyou", "2000", "charlie", VICTIM_PASSWORD]
PATIENCE_SECONDS = 5  # the attacker waits out a Retry-After up to this long, and gives up past it


@dataclass
class Attack:
    """What the attacker saw: every answer's status, and the answer that made it give up."""

    statuses: list[int] = field(default_factory=list)
    checked: int = 0  # guesses the API actually judged (401 or 200)
    broke_in: bool = False
    stopped_by: Optional[dict[str, Any]] = None  # the error of the answer it gave up on
    retry_after: Optional[int] = None


class Target:
    """The API on loopback; each request from ``source`` (any 127.0.0.0/8 address is this host's)."""

    def __init__(self, port: int):
        self.port = port

    def login(self, email: str, password: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(source, 0))
        try:
            body = json.dumps({"email": email, "password": password})
            connection.request("POST", "/tokens", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
        finally:
            connection.close()


def guess(target: Target, attack: Attack, email: str, password: str, source: str = "127.0.0.1") -> bool:
    """One guess, waiting out short waits; False once the attacker gives up."""
    while True:
        status, headers, body = target.login(email, password, source)
        attack.statuses.append(status)
        if status != 429:
            attack.checked += 1
            attack.broke_in = attack.broke_in or status == 200
            return True
        retry_after = int(headers["Retry-After"])
        if retry_after > PATIENCE_SECONDS:
            attack.stopped_by, attack.retry_after = body["error"], retry_after
            return False
        time.sleep(retry_after)


@pytest.fixture
def target() -> Iterator[Any]:
    """The API with the default thresholds except shorter delays (so the patient attacker's run
    takes seconds): 3 free failures per account, then waits from 0.2 s doubling to 1 s, a 15 min
    lockout at 10; per address 20 free failures and a lockout at 30."""
    import botocore.loaders
    import botocore.session
    from moto import mock_aws

    from app import app
    from chalicelib import wiring
    from chalicelib.local.api_server import ApiServer
    from chalicelib.local.gateway import ChaliceWsgiApp
    from chalicelib.local.provision import provision

    patch = pytest.MonkeyPatch()
    patch.setattr(botocore.session, "create_loader", functools.lru_cache(maxsize=None)(botocore.loaders.create_loader))
    settings = make_settings(login_delay_seconds=0.2, login_max_delay_seconds=1.0, login_client_lockout_failures=30)
    with mock_aws():
        provision(settings)
        services = wiring.build(settings)
        previous = wiring.install(services)
        admin = services.users.ensure_superadmin("root@example.com", "not-through-the-api")
        services.users.create_user(admin, VICTIM, VICTIM_PASSWORD, UserType.MODEL_DEVELOPER)
        server = ApiServer(ChaliceWsgiApp(app), port=0, threads=4)
        server.start()
        try:
            yield Target(server.port), services
        finally:
            server.stop()
            services.close()
            wiring.install(previous)
            patch.undo()


def test_guessing_one_accounts_password_is_stopped_by_the_account_lockout(target):
    api, services = target
    attack = Attack()
    for password in WORDLIST:
        if not guess(api, attack, VICTIM, password, source="127.0.0.2"):
            break
    print(f"\nbrute force on one account: {attack.checked} of {len(WORDLIST)} guesses judged, "
          f"{attack.statuses.count(429)} answers 429; stopped by: {attack.stopped_by and attack.stopped_by['message']}")
    assert not attack.broke_in
    assert attack.checked == 10, "the account lockout (login_lockout_failures=10) stops the guessing"
    assert attack.stopped_by["code"] == "too_many_requests" and "locked" in attack.stopped_by["message"]
    assert attack.retry_after == 900
    assert attack.statuses[:4] == [401] * 4 and 429 in attack.statuses  # progressive delays before the lockout
    # Even the right password is refused now, and the answer does not say it was right.
    wrong = api.login(VICTIM, "not-it", source="127.0.0.2")
    right = api.login(VICTIM, VICTIM_PASSWORD, source="127.0.0.2")
    assert right[0] == wrong[0] == 429 and right[2] == wrong[2]
    # The admins see it in the audit log, with the attacker's address.
    log = services.audit.list_events(services.users.ensure_superadmin("root@example.com", "-"), limit=500)["events"]
    assert [e["source_ip"] for e in log if e["event"] == "login.locked_out"] == ["127.0.0.2"]


def test_spraying_one_password_over_many_accounts_is_stopped_by_the_address_throttle(target):
    api, _ = target
    attack = Attack()
    for number in range(100):
        if not guess(api, attack, f"user{number}@example.com", "Summer2026!", source="127.0.0.3"):
            break
    print(f"\npassword spraying from one address: {attack.checked} accounts tried, "
          f"{attack.statuses.count(429)} answers 429; stopped by: {attack.stopped_by and attack.stopped_by['message']}")
    assert attack.checked == 30, "the address lockout (login_client_lockout_failures=30) stops the spraying"
    assert "your address" in attack.stopped_by["message"] and "locked" in attack.stopped_by["message"]
    # The account owner, from elsewhere, is not locked out by the attacker's address.
    assert api.login(VICTIM, VICTIM_PASSWORD, source="127.0.0.4")[0] == 200

"""Passwords: hashing with argon2id (argon2-cffi: slow, salted, self-describing) and the strength
policy for new ones (zxcvbn: Dropbox's estimator of how many guesses a password takes)."""
from __future__ import annotations

from typing import Iterable, Optional

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from chalicelib.ports_logins import PasswordRefusal


class PasswordHasher:
    def __init__(self, time_cost: int = 3, memory_kib: int = 65536):
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib)

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


# zxcvbn refuses longer input (its run time grows with the length): a longer password is judged
# by its start, which a longer password can only make stronger.
_JUDGED_CHARACTERS = 72


class ZxcvbnPasswordPolicy:
    """A password is acceptable when at least ``min_length`` characters long and of a zxcvbn
    strength score of at least ``min_score`` (0: too guessable ... 4: very unguessable), judged
    with the user's own words (email, its parts) as guesses an attacker would try first."""

    def __init__(self, min_length: int = 8, min_score: int = 3):
        self._min_length = min_length
        self._min_score = min_score

    def check(self, password: str, user_inputs: Iterable[str] = ()) -> Optional[PasswordRefusal]:
        if len(password) < self._min_length:
            return PasswordRefusal(f"it has {len(password)} characters; use at least {self._min_length}.")
        result = zxcvbn(password[:_JUDGED_CHARACTERS], user_inputs=[w for w in user_inputs if w][:20])
        if result["score"] >= self._min_score:
            return None
        feedback = result.get("feedback") or {}
        warning = (feedback.get("warning") or "").strip() or "it is too easy to guess."
        return PasswordRefusal(
            f"{_sentence(warning)} (strength {result['score']} of 4; at least {self._min_score} is needed)",
            tuple(_sentence(s) for s in feedback.get("suggestions") or ()),
        )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."

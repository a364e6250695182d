"""The zxcvbn password policy: what it refuses, what it accepts, and that it says why."""
from __future__ import annotations

import pytest

from chalicelib.adapters.passwords import ZxcvbnPasswordPolicy

POLICY = ZxcvbnPasswordPolicy(min_length=8, min_score=3)


@pytest.mark.parametrize("password, reason", [
    ("123456", "it has 6 characters; use at least 8."),
    ("      ", "it has 6 characters; use at least 8."),
    ("password1", "This is a very common password."),
    ("12345678", "This is a top-10 common password."),
    ("aaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess.'),
    ("qwertyuiop", "common password"),
])
def test_weak_passwords_are_refused_with_the_reason(password, reason):
    refusal = POLICY.check(password)
    assert refusal is not None
    assert reason.lower() in refusal.message().lower()


def test_the_refusal_carries_the_score_and_suggestions():
    refusal = POLICY.check("password1")
    assert "strength 0 of 4; at least 3 is needed" in refusal.reason
    assert refusal.suggestions and all(s.endswith(".") for s in refusal.suggestions)


def test_the_users_own_words_make_a_password_weak():
    password = "wanjirukamau"
    assert POLICY.check(password) is None
    assert POLICY.check(password, ["wanjiru.kamau@example.com", "wanjiru", "kamau"]) is not None


@pytest.mark.parametrize("password", ["Tr4in-the-Model!", "correct horse battery staple", "iris-tree-sunrise-42"])
def test_strong_passwords_pass(password):
    assert POLICY.check(password, ["dev@example.com", "dev", "example"]) is None


def test_long_passwords_are_judged_by_their_start_without_failing():
    assert POLICY.check("Tr4in-the-Model!" * 16) is None  # 256 characters: past zxcvbn's own limit
    assert POLICY.check("a" * 256) is not None


def test_the_thresholds_are_settings():
    assert ZxcvbnPasswordPolicy(min_length=4, min_score=0).check("1234") is None
    assert ZxcvbnPasswordPolicy(min_length=20, min_score=0).check("Tr4in-the-Model!") is not None
    assert ZxcvbnPasswordPolicy(min_length=8, min_score=4).check("a-strong-one") is not None

"""Pip requirements: validated and normalised, so one set has one content key."""
from __future__ import annotations

import pytest

from chalicelib.entities.images import ImageBase, PipRequirement, content_key, normalise, parse_freeze
from chalicelib.errors import InvalidInput


def key(*reqs: tuple, base: ImageBase = ImageBase.WORKER) -> str:
    return content_key(base, normalise([PipRequirement.parse(*r) for r in reqs]))


def test_the_same_set_written_differently_has_one_key():
    assert key(("XGBoost", ">=1.0, <2"), ("six",)) == key(("six", None), ("xgboost", "<2,>=1.0"), ("Six",))
    assert key(("six",)) != key(("six",), base=ImageBase.INFERENCE)
    assert key(("six", "==1.16")) != key(("six", "==1.17"))


@pytest.mark.parametrize("name, spec, where", [
    ("-e", None, "name"), ("--index-url=http://x", None, "name"), ("six @ http://x", None, "name"),
    ("six[extra]", None, "name"), ("", None, "name"), ("six", "latest", "version_specifier"),
    ("six", "==1; rm -rf /", "version_specifier"), ("six", 3, "version_specifier"),
])
def test_what_pip_would_read_as_more_than_a_requirement_is_refused(name, spec, where):
    with pytest.raises(InvalidInput, match=f"requirements.{where}"):
        PipRequirement.parse(name, spec)


def test_one_library_with_two_specifiers_is_refused():
    with pytest.raises(InvalidInput, match="'six' is given twice"):
        normalise([PipRequirement.parse("six", "==1"), PipRequirement.parse("SIX", "==2")])


def test_freeze_lines_become_canonical_names_and_versions():
    assert parse_freeze(["Scikit_Learn==1.9.1", "", "# comment", "pkg @ file:///tmp/pkg"]) == {
        "scikit-learn": "1.9.1", "pkg": "file:///tmp/pkg"}

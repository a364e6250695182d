"""Path parameters: one rule per parameter name, used by the endpoint decorator to check them
and by the OpenAPI document to describe them, so the two cannot disagree."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter

from chalicelib.schemas import WS, AppName

# An id in a path: no control characters, no white space at either end, not empty (a blank id
# reached DynamoDB as an empty key and came back a 500).
_PATH_ID = rf"^[^{WS}\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^{WS}\x00-\x1f\x7f])?$"
_VERSION = r"^(?:-1|[1-9][0-9]{0,8})$"


@dataclass(frozen=True)
class PathParameter:
    """How one path parameter is checked (``adapter``) and described (OpenAPI, error messages)."""

    adapter: TypeAdapter
    description: str

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema()


_STRICT_PYTHON_RE = ConfigDict(regex_engine="python-re")
_PATH_PARAMETERS = {
    "app": PathParameter(TypeAdapter(AppName, config=_STRICT_PYTHON_RE),
                         "an app name (letters, digits, '_', '.', '-'; at most 64)"),
    "name": PathParameter(TypeAdapter(AppName, config=_STRICT_PYTHON_RE),
                          "a queue name, which is an app name (letters, digits, '_', '.', '-'; at most 64)"),
    "version": PathParameter(
        TypeAdapter(Annotated[str, Field(pattern=_VERSION)], config=_STRICT_PYTHON_RE),
        "a whole number >= 1, or -1 for the latest"),
}
_DEFAULT_PATH_PARAMETER = PathParameter(
    TypeAdapter(Annotated[str, Field(min_length=1, max_length=256, pattern=_PATH_ID)], config=_STRICT_PYTHON_RE),
    "1 to 256 characters, with no control characters and no white space at either end")


def register_path_parameter(name: str, annotated: Any, description: str) -> None:
    """Give the path parameter ``name`` its own rule (a module that owns the type calls this)."""
    _PATH_PARAMETERS[name] = PathParameter(TypeAdapter(annotated, config=_STRICT_PYTHON_RE), description)


def path_parameter(name: str) -> PathParameter:
    """The rule of the path parameter ``name`` (ids share one; apps and versions have theirs)."""
    return _PATH_PARAMETERS.get(name, _DEFAULT_PATH_PARAMETER)

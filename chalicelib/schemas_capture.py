"""Request schemas of traffic capture's ground truth (``POST /apps/{app}/labels``)."""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import AfterValidator, Field

from chalicelib.schemas import Schema, bounded_json, whole

#: Most labels in one request.
MAX_LABELS = 1000

# A query id as the predict answer gave it (a 52-bit number), or as text: its decimal digits, or
# a SageMaker endpoint's inferenceId / eventId (at most 64 characters, its own limit; "#<row>"
# names a row of a multi-row request, as capture_reader.py does).
# whole(): JSON Schema's integer includes 4466.0, so the route takes it too (schemathesis sent it).
QueryId = Union[
    whole(0, 2 ** 53 - 1),
    Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:#-]+$")],
]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("is null; send the ground truth (any JSON value but null)")
    return value


class LabelItem(Schema):
    query_id: QueryId
    # Any JSON value but null: the document says so too (schemathesis sent null as allowed).
    label: Annotated[bounded_json(Any), AfterValidator(_not_null), Field(json_schema_extra={"not": {"type": "null"}})]


class LabelsRequest(Schema):
    """A batch of ground-truth labels of answered queries, by query id."""

    labels: list[LabelItem] = Field(min_length=1, max_length=MAX_LABELS)

    def pairs(self) -> list[tuple[str, Any]]:
        return [(str(item.query_id), item.label) for item in self.labels]

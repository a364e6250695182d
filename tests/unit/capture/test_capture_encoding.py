"""The capture record's fast encoding: byte for byte what orjson writes for the record's dict
(SageMaker Data Capture's layout), event ids that are random version-4 UUIDs (unique across
threads and a fork), inference times and hours as inference_time and the epoch hour say, and
the predict path's add_answers writing what add writes."""
from __future__ import annotations

import json
import os
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from chalicelib.capture_format import (
    CapturedQuery,
    InferenceTimes,
    capture_record,
    encode_record,
    inference_time,
    new_event_id,
)
from chalicelib.services.capture import CaptureBuffer, captured

T0 = datetime(2026, 12, 2, 9, 59, 58, 123456, tzinfo=timezone.utc)


def reference_record(query: CapturedQuery, event_id: str, time_text: str) -> bytes:
    """The record as the nested dict orjson encodes (how capture files were written before the
    fixed parts were joined by hand): the layout the fast encoder must keep byte for byte."""
    def text(value: Any) -> str:
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return json.dumps(value)

    metadata: dict[str, Any] = {"eventId": event_id, "inferenceId": query.query_id, "inferenceTime": time_text}
    if query.default:
        metadata["kileleDefault"] = True
    return orjson.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "data": text(query.query),
                              "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": text(query.output), "encoding": "JSON"},
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    })


VALUES = [
    [5.1, 3.5, 1.4, 0.2],
    {"age": 30, "city": "Nairobi", "note": 'say "hi"\\ \n\t\x01 é 日本 \u2028'},
    "plain text",
    None,
    True,
    0,
    -1.5e300,
    2 ** 70,  # beyond 64 bits: the json module's encoding
    [[1, [2, {"deep": [3]}]], {}],
    {"0": 0.0, "1": 1.0, "2": 0.0},
]


@pytest.mark.parametrize("default", [False, True])
@pytest.mark.parametrize("query_id", ["4503599627370495", "q \"1\"", 17])
def test_the_fast_encoding_is_byte_for_byte_the_dict_encoding(default, query_id):
    event_id = str(uuid.uuid4())
    for query in VALUES:
        for output in VALUES[::-1]:
            record = CapturedQuery(query_id, query, output, T0, default)
            expected = reference_record(record, event_id, inference_time(T0))
            assert capture_record(record, event_id=event_id) == expected
            assert encode_record(query_id, query, output, inference_time(T0), default, event_id) == expected


def test_a_record_without_a_given_event_id_gets_a_fresh_one():
    one, two = (json.loads(capture_record(CapturedQuery("1", [1], 2, T0))) for _ in range(2))
    assert one["eventMetadata"]["eventId"] != two["eventMetadata"]["eventId"]


def test_event_ids_are_version_4_uuids_as_uuid4_writes_them():
    ids = [new_event_id() for _ in range(1000)]  # several pools of 64
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == len(ids)
    # Every random hex digit takes several values over 1000 ids (a digit stuck at one value would
    # mean the formatting drops randomness); the version digit is always 4.
    digits = list(zip(*(event_id.replace("-", "") for event_id in ids)))
    assert set(digits[12]) == {"4"} and set(digits[16]) == set("89ab")
    assert all(len(set(column)) > 8 for i, column in enumerate(digits) if i not in (12, 16))


def test_event_ids_are_unique_across_threads():
    ids: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def draw(mine: list[str]) -> None:
        start.wait()
        mine.extend(new_event_id() for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(mine,)) for mine in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [event_id for mine in ids for event_id in mine]
    assert len(set(everything)) == len(everything) == 16000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_reuse_its_parents_event_ids():
    new_event_id()  # the pool now holds this thread's next ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, new_event_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f-]{36}", child)
    assert child != new_event_id()


def test_inference_times_and_hours_are_those_of_inference_time_and_the_epoch_hour():
    times = InferenceTimes()
    moments = [T0, T0.replace(microsecond=0), T0.replace(microsecond=999_999), T0.replace(microsecond=999),
               T0 + timedelta(seconds=2), T0 + timedelta(seconds=1, microseconds=876_544),  # into the next hour
               datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
               datetime(2027, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
               datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc),
               T0.astimezone(timezone(timedelta(hours=3))), T0.astimezone(timezone(timedelta(hours=-9, minutes=-30)))]
    moments += [T0 + timedelta(microseconds=7_919 * i) for i in range(2000)]  # many in one second, then the next
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for at in moments + moments[::-1]:  # the cached second replaced back and forth
        # The exact hour (integer arithmetic; at.timestamp() // 3600, a float, puts 9999-12-31
        # 23:59:59.999999 in the next hour).
        assert times(at) == (inference_time(at), (at - epoch) // timedelta(hours=1)), at


class Blobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data


def _without_event_ids(blobs: Blobs) -> dict[str, list[dict]]:
    out = {}
    for key, data in blobs.objects.items():
        records = [json.loads(line) for line in data.splitlines()]
        for record in records:
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                                record["eventMetadata"].pop("eventId"))
        out[key.rsplit("/", 1)[0]] = records  # the file name is the write time and a random part
    return out


@pytest.mark.parametrize("default", [False, True])
def test_add_answers_writes_what_add_writes(default):
    ids, queries, outputs = ["1", "2", "3"], [[1.5, 2], {"a": "é"}, None], ["x", {"p": 0.25}, [1]]
    written = []
    for add in ("add", "add_answers"):
        blobs = Blobs()
        buffer = CaptureBuffer(blobs, timer=False, clock=lambda: T0)
        if add == "add":
            buffer.add("u", "iris", "ep-1", captured(ids, queries, outputs, T0, default))
        else:
            buffer.add_answers("u", "iris", "ep-1", ids, queries, outputs, T0, default)
        assert buffer.pending() == 3
        buffer.flush()
        assert buffer.written == 3 and buffer.pending() == 0
        written.append(_without_event_ids(blobs))
    assert written[0] == written[1]
    assert list(written[1]) == ["capture/u/iris/ep-1/AllTraffic/2026/12/02/09"]


def test_add_answers_counts_bytes_as_add_does():
    """The size thresholds see the same bytes either way (a newline per record)."""
    sizes = []
    for add in ("add", "add_answers"):
        blobs = Blobs()
        buffer = CaptureBuffer(blobs, timer=False, max_bytes=10 ** 9, max_records=10 ** 9)
        for i in range(50):
            if add == "add":
                buffer.add("u", "iris", None, captured([str(i)], [[i]], [i], T0, False))
            else:
                buffer.add_answers("u", "iris", None, [str(i)], [[i]], [i], T0)
        sizes.append(buffer._bytes)
        buffer.flush()
        assert sizes[-1] == sum(len(data) for data in blobs.objects.values())
    assert sizes[0] == sizes[1]

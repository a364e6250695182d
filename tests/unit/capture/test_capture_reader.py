"""The capture reader: Kilele's capture files round trip into a DataFrame with a timestamp
column; files in SageMaker's own layout (written by hand from its documentation) read too;
labels join by query id."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from chalicelib.capture_format import ground_truth_record
from chalicelib.capture_reader import CaptureFormatError, capture_frame, ground_truth_frame, join_labels, traffic_frame
from chalicelib.services.capture import CaptureBuffer, captured
from unit.capture.test_capture_writer import FakeBlobStore, Ticker

T0 = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)


def test_round_trip_of_kilele_capture_files():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker())
    buffer.add("u", "a", "ep", captured(["11", "12"], [{"age": 30, "city": "Nairobi"}, {"age": 41, "city": "Mombasa"}],
                                        [0.25, 0.75], T0, default=False))
    buffer.add("u", "a", None, captured(["13"], [{"age": 5, "city": "Kisumu"}], [0.5], T0 + timedelta(hours=1),
                                        default=True))
    buffer.flush()
    frame = capture_frame(blobs.objects.values())
    assert list(frame["query_id"]) == ["11", "12", "13"]
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype) and str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[2] == pd.Timestamp(T0 + timedelta(hours=1))
    assert list(frame["age"]) == [30, 41, 5] and list(frame["city"]) == ["Nairobi", "Mombasa", "Kisumu"]
    assert list(frame["prediction"]) == [0.25, 0.75, 0.5]
    assert list(frame["endpoint_default"]) == [False, False, True]
    assert frame["input"].iloc[0] == {"age": 30, "city": "Nairobi"}


# Written by hand from SageMaker's documentation ("View collected data" / "Ingest Ground Truth
# labels"): one request per record, CSV in and out, no inferenceId (so eventId is the id).
SAGEMAKER_CSV = "\n".join(json.dumps(r) for r in [
    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "69,0,153.7,109", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                        "data": "0.0254181120544672", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "aaaa-bbbb-cccc", "inferenceTime": "2019-11-22T08:24:40Z"}, "eventVersion": "0"},
    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "12,1,2.5,7\n13,0,3.5,8", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                        "data": "0.9\n0.1", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "dddd-eeee", "inferenceId": "req-7", "inferenceTime": "2019-11-22T09:01:00Z"},
     "eventVersion": "0"},
]) + "\n"

SAGEMAKER_JSON_BASE64 = json.dumps({
    "captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "BASE64",
                          "data": base64.b64encode(b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}').decode()},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                           "data": '{"predictions": [1, 0]}'}},
    "eventMetadata": {"eventId": "ffff-0000", "inferenceTime": "2019-11-22T10:00:00Z"}, "eventVersion": "0"})


def test_sagemaker_endpoint_files_read_too():
    frame = capture_frame([SAGEMAKER_CSV.encode(), SAGEMAKER_JSON_BASE64])
    assert list(frame["query_id"]) == ["aaaa-bbbb-cccc", "req-7#0", "req-7#1", "ffff-0000#0", "ffff-0000#1"]
    assert list(frame["x0"]) == [69, 12, 13, 1.0, 3.0] and list(frame["x2"][:3]) == [153.7, 2.5, 3.5]
    assert list(frame["prediction"]) == [0.0254181120544672, 0.9, 0.1, 1, 0]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2019-11-22T08:24:40Z")
    labels = ground_truth_frame([json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"},
                                             "eventMetadata": {"eventId": "aaaa-bbbb-cccc"}, "eventVersion": "0"})])
    joined = join_labels(frame, labels)
    assert joined["label"].iloc[0] == 1 and joined["label"].iloc[1:].isna().all()


def test_labels_join_by_query_id_last_label_wins():
    blobs = FakeBlobStore()
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker())
    buffer.add("u", "a", "ep", captured(["1", "2", "3"], [[1], [2], [3]], ["x", "y", "x"], T0, default=False))
    buffer.flush()
    older = b"\n".join([ground_truth_record("1", "y"), ground_truth_record("2", "y")])
    newer = ground_truth_record("1", "x") + b"\n" + ground_truth_record("99", "z")  # 99 was never captured
    joined = join_labels(capture_frame(blobs.objects.values()), ground_truth_frame([older, newer]))
    assert list(joined["query_id"]) == ["1", "2", "3"]
    assert list(joined["label"].fillna("-")) == ["x", "y", "-"]


def test_empty_and_bad_files():
    empty = capture_frame([])
    assert len(empty) == 0 and "timestamp" in empty.columns
    with pytest.raises(CaptureFormatError, match="file 0, line 2"):
        capture_frame(['{"captureData": {}, "eventMetadata": {"inferenceTime": "2019-11-22T10:00:00Z"}}\n{"x": 1}'])
    with pytest.raises(CaptureFormatError, match="ground-truth"):
        ground_truth_frame(["not json"])


def test_partition_hour_of_kilele_sagemaker_and_ground_truth_keys():
    from chalicelib.capture_format import capture_key, ground_truth_key, partition_hour

    hour = datetime(2026, 12, 2, 9, tzinfo=timezone.utc)
    assert partition_hour(capture_key("u", "a", "ep", "AllTraffic", hour, T0)) == hour
    assert partition_hour(ground_truth_key("u", "a", hour)) == hour
    assert partition_hour("monitor/capture/my-endpoint/AllTraffic/2019/11/22/08/24-40-123-abc.jsonl") == datetime(
        2019, 11, 22, 8, tzinfo=timezone.utc)
    assert partition_hour("capture/u/a/ep/AllTraffic/2019/13/22/08/x.jsonl") is None
    assert partition_hour("capture/u/a/notes.txt") is None


def test_traffic_frame_reads_the_windows_hours_and_every_later_label():
    blobs = FakeBlobStore()
    clock_at = {"now": T0}
    buffer = CaptureBuffer(blobs, timer=False, ticker=Ticker(), clock=lambda: clock_at["now"])
    for hours, qid in ((0, "a"), (1, "b"), (2, "c")):
        buffer.add("u", "app", "ep", captured([qid], [[hours]], [hours], T0 + timedelta(hours=hours), default=False))
    buffer.flush()
    from chalicelib.capture_format import ground_truth_key

    blobs.put_bytes(ground_truth_key("u", "app", T0 + timedelta(hours=3)), ground_truth_record("b", "late") + b"\n")
    blobs.put_bytes(ground_truth_key("u", "app", T0 - timedelta(hours=5)), ground_truth_record("b", "old") + b"\n")
    read_keys: list[str] = []

    def read(key: str) -> bytes:
        read_keys.append(key)
        return blobs.objects[key]

    # [10:00, 11:00): the 10 o'clock partition only; labels received from 10:00 on
    frame = traffic_frame(list(blobs.objects), read, since=T0 + timedelta(minutes=30),
                          until=T0 + timedelta(minutes=90))
    assert list(frame["query_id"]) == ["b"] and list(frame["label"]) == ["late"]
    assert sorted(k.split("/")[-2] for k in read_keys if k.startswith("capture/")) == ["10"]
    assert sorted(k.split("/")[-2] for k in read_keys if k.startswith("ground-truth/")) == ["12"]
    whole = traffic_frame(list(blobs.objects), lambda key: blobs.objects[key])  # no window: everything
    assert list(whole["query_id"]) == ["a", "b", "c"] and list(whole["label"].fillna("-")) == ["-", "late", "-"]

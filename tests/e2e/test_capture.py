"""Traffic capture on the real local stack: an app capturing 100 % of its predict traffic, N
predictions, labels sent for some by query id, a clean stop (the capture buffer, written every
60 s by default, is flushed by the stop), and after a restart on the same data directory every
record is in moto's S3 in SageMaker Data Capture's layout, in the hour partition of its time,
and the labels join by query id."""
from __future__ import annotations

import re
from datetime import datetime

import boto3
import pytest

from chalicelib.capture_reader import capture_frame, ground_truth_frame, join_labels

from .test_local_state import DATA, MODELS, _user, stacks  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

KEY = re.compile(r"^capture/[^/]+/irises/(?P<endpoint>[^/]+)/AllTraffic/(?P<hour>\d{4}/\d\d/\d\d/\d\d)/"
                 r"\d\d-\d\d-\d{3}-[0-9a-f]{32}\.jsonl$")
REQUESTS = 12


def _s3(stack):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        aws_access_key_id="kilele-local", aws_secret_access_key="kilele-local")


def _objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_captured_traffic_survives_a_clean_stop_in_hourly_partitions_and_labels_join(stacks, tmp_path):
    data_dir = tmp_path / "data"
    first = stacks(data_dir)
    app_dev = first.client(_user(first.admin(), "APP_DEVELOPER"))
    model_dev = first.client(_user(first.admin(), "MODEL_DEVELOPER"))
    train = app_dev.create_dataset(name="iris_train", task="TABULAR_CLASSIFICATION",
                                   dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset(name="iris_val", task="TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_val.csv"))
    tree = model_dev.create_model(name="tree-capture", task="TABULAR_CLASSIFICATION",
                                  model_file_path=str(MODELS / "sk_decision_tree.py"), model_class="SkDecisionTree",
                                  dependencies={"scikit-learn": "1.9.1"}, access_right="PUBLIC")
    app_dev.create_train_job(app="irises", task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[tree["id"]])
    assert app_dev.wait_for_train_job("irises", timeout=240)["status"] == "STOPPED"
    app_dev.register_application("irises", "floats", "unknown", 10_000_000)
    assert app_dev.set_capture("irises", 100)["capture_percent"] == 100
    app_dev.create_inference_job("irises")

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    answered: dict[str, object] = {}
    started = datetime.now().astimezone()
    for i in range(REQUESTS):
        if i % 3 == 0:  # a batch of three
            answer = app_dev.predict_with_ids("irises", queries=rows)
            answered.update({str(q): p for q, p in zip(answer["query_ids"], answer["predictions"])})
        else:
            answer = app_dev.predict_with_ids("irises", query=rows[i % 3])
            answered[str(answer["query_id"])] = answer["prediction"]
    clipper = app_dev.query("irises", input=rows[0])
    answered[str(clipper["query_id"])] = clipper["output"]
    labelled = dict(list(answered.items())[:5])
    assert app_dev.send_labels("irises", {int(q): f"class-{q[-1]}" for q in labelled})["received"] == 5
    location = app_dev.get_capture("irises")
    assert app_dev.stop_inference_job("irises")["status"] == "STOPPED"  # the restart need not start it again
    assert first.stop() == 0  # SIGTERM: the stack flushes the capture buffer before moto stops

    second = stacks(data_dir)
    s3 = _s3(second)
    bucket = location["capture_uri"].split("/")[2]
    captured = _objects(s3, bucket, "capture/")
    assert captured and all(KEY.match(key) for key in captured), sorted(captured)
    frame = capture_frame(captured.values())
    assert len(frame) == len(answered) == REQUESTS + 2 * (REQUESTS // 3) + 1
    assert sorted(frame["query_id"]) == sorted(answered)
    for key, content in captured.items():  # each file in the partition of its records' hour
        hours = {t.strftime("%Y/%m/%d/%H") for t in capture_frame([content])["timestamp"]}
        assert hours == {KEY.match(key)["hour"]}
    assert frame["timestamp"].min() >= started.replace(microsecond=0)
    by_id = frame.set_index("query_id")
    for query_id, prediction in answered.items():
        assert by_id.loc[query_id, "prediction"] == prediction
    assert not frame["endpoint_default"].any()
    labels = ground_truth_frame(_objects(s3, bucket, "ground-truth/").values())
    joined = join_labels(frame, labels).set_index("query_id")["label"]
    assert {q: joined[q] for q in labelled} == {q: f"class-{q[-1]}" for q in labelled}
    assert joined.drop(index=list(labelled)).isna().all()

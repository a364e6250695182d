"""The CLI's pure renderers (kilele.cli.render), alone: API JSON in, text out; no server, no click."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from kilele.cli.render import (
    format_duration,
    format_knobs,
    parse_time,
    render_json,
    render_watch,
    table,
    truncate,
    watch_key,
)

NOW = datetime(2026, 11, 23, 10, 5, 0, tzinfo=timezone.utc)
START = "2026-11-23T10:00:00+00:00"


def job(**changes):
    base = {"app": "iris_app", "app_version": 2, "task": "TABULAR_CLASSIFICATION", "status": "RUNNING",
            "budget": {"MODEL_TRIAL_COUNT": 3}, "model_ids": ["m-1", "m-2"], "datetime_started": START,
            "datetime_stopped": None, "error": None, "workers": []}
    return {**base, **changes}


def trial(no, status="COMPLETED", score=0.5, **changes):
    base = {"id": f"t-{no}", "no": no, "model_name": "logreg", "status": status, "score": score,
            "screening": False, "knobs": {"c": 1.0}, "datetime_started": START,
            "datetime_stopped": "2026-11-23T10:00:42+00:00"}
    return {**base, **changes}


def test_render_json_is_indented_and_shows_dates_as_text():
    text = render_json({"a": [1, 2], "when": date(2026, 1, 2)})
    assert text == '{\n  "a": [\n    1,\n    2\n  ],\n  "when": "2026-01-02"\n}'
    assert render_json(None) == "null"


@pytest.mark.parametrize("value, expected", [
    ("2026-11-23T10:00:00+00:00", datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),
    ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),
    ("2026-11-23T10:00:00", datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),  # no zone: UTC
    ("2026-11-23T12:00:00+02:00", datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),
    ("not a time", None),
    ("", None),
    (None, None),
])
def test_parse_time(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("seconds, expected", [(0, "0s"), (42, "42s"), (59.4, "59s"), (60, "1m00s"),
                                               (187, "3m07s"), (3599, "59m59s"), (3600, "1h00m"),
                                               (7500, "2h05m")])
def test_format_duration_steps(seconds, expected):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert format_duration(start.isoformat(), (start + timedelta(seconds=seconds)).isoformat(), NOW) == expected


def test_format_duration_runs_to_now_and_never_goes_negative():
    assert format_duration(START, None, NOW) == "5m00s"
    assert format_duration(START, "2026-11-23T09:00:00+00:00", NOW) == "0s"
    assert format_duration(None, None, NOW) == "-"


def test_truncate():
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abc..."
    assert truncate("abcdefg", 2) == "..."


def test_format_knobs():
    assert format_knobs({"c": 0.123456, "kernel": "rbf", "layers": [8, 4], "iters": 10, "on": True}) == \
        'c=0.1235, kernel=rbf, layers=[8, 4], iters=10, on=true'
    assert format_knobs({}) == ""
    assert format_knobs(None) == ""
    assert format_knobs("c=1") == ""


def test_table_aligns_columns_and_strips_trailing_space():
    assert table(["no", "model"], [["1", "logistic"], ["10", "svm"]]) == [
        "no  model",
        "--  --------",
        "1   logistic",
        "10  svm",
    ]
    assert table(["a", "bb"], []) == ["a  bb", "-  --"]


def test_render_watch_snapshot():
    workers = [{"service_id": "m-1-0", "model_name": "logreg", "status": "RUNNING", "error": None}]
    trials = [trial(1, score=0.91234), trial(2, "ERRORED", None, error="boom"),
              trial(3, "RUNNING", None, datetime_stopped=None, screening=True, knobs={"c": 0.5, "name": "x"})]
    text = render_watch(job(workers=workers), trials, now=NOW)
    assert text.splitlines() == [
        "train job iris_app v2  RUNNING  (TABULAR_CLASSIFICATION, elapsed 5m00s)",
        "",
        "worker  model   status   error",
        "------  ------  -------  -----",
        "m-1-0   logreg  RUNNING",
        "",
        "no  model   status            score   duration  knobs",
        "--  ------  ----------------  ------  --------  -------------",
        "1   logreg  COMPLETED         0.9123  42s       c=1",
        "2   logreg  ERRORED           -       42s       c=1",
        "3   logreg  RUNNING (screen)  -       5m00s     c=0.5, name=x",
        "",
        "progress: 2/6 trials done (1 completed, 1 errored, 1 running), best score 0.9123",
    ]


def test_render_watch_before_any_trial_and_with_a_job_error():
    text = render_watch(job(status="ERRORED", error="no model fits", budget={}, datetime_started=None), [], now=NOW)
    assert text.splitlines() == [
        "train job iris_app v2  ERRORED  (TABULAR_CLASSIFICATION, elapsed -)",
        "error: no model fits",
        "",
        "no trials yet",
        "",
        "progress: 0 (no trial limit) trials done (0 completed, 0 errored, 0 running), best score -",
    ]


def test_watch_key_ignores_the_clock_but_not_what_changes():
    trials = [trial(1, "RUNNING", None, datetime_stopped=None)]
    key = watch_key(job(), trials)
    assert watch_key(job(datetime_started="2026-11-23T10:00:01+00:00"), trials) == key
    assert watch_key(job(status="STOPPED"), trials) != key
    assert watch_key(job(), [trial(1, "COMPLETED", 0.8)]) != key
    assert watch_key(job(workers=[{"service_id": "w", "status": "ERRORED", "error": "x"}]), trials) != key
    json.dumps(key)  # plain values only (tuples of strings and numbers)


def test_render_watch_marks_a_failed_model_check_with_where_its_logs_are():
    from kilele._progress import trial_progress

    check = trial(0, "ERRORED", None, id="describe-1", knobs={}, model_check=True, error="ImportError: torch")
    text = render_watch(job(status="ERRORED", error="no trial completed"), [check], now=NOW)
    row = text.splitlines()[-3]
    assert "ERRORED (model check)" in row and "logs: kilele trials logs describe-1" in row
    assert "progress: 0/6 trials done" in text  # a model check is no trial of the budget
    assert trial_progress(job(), [check])["errored"] == 0

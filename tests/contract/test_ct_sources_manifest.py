"""A scheduled firing's sources manifest, both sides: what the platform lists for a firing
(chalicelib/services/ct_sources.py, in a Lambda without pandas) parses in the worker
(kilele_worker.ct_sources, which downloads and reads the files), with the folders the job's
message names -- which the worker's message parser accepts too."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib.capture_format import capture_key, ground_truth_key
from chalicelib.services import ct_sources as platform
from kilele_worker import ct_sources as worker
from kilele_worker.message import StressTestSpec

from unit.services.fakes import T0


class Listing:
    def __init__(self, keys):
        self.keys = keys

    def list_keys(self, prefix):
        return [k for k in self.keys if k.startswith(prefix)]


def traffic() -> platform.NewData:
    keys = [capture_key("u1", "fraud", "ep", "AllTraffic", T0, T0, unique="a"),
            ground_truth_key("u1", "fraud", T0 + timedelta(minutes=5), unique="l")]
    return platform.traffic(Listing(keys), "u1", "fraud", T0 - timedelta(hours=1), T0 + timedelta(hours=1), "ts", "y")


def files() -> platform.NewData:
    return platform.files(Listing(["stress-inputs/u1/landing/a.csv", "stress-inputs/u1/landing/b.parquet"]),
                          "stress-inputs/u1/landing/", [], "ts")


@pytest.mark.parametrize("made", [traffic, files])
def test_the_platforms_manifest_and_folders_parse_in_the_worker(made):
    new = made()
    assert platform.KIND == worker.KIND and platform.MAX_FILES == worker.MAX_FILES
    parsed = worker.parse(json.dumps(new.manifest).encode(), new.prefixes)  # through JSON, as stored
    assert parsed["source"] == new.manifest["source"] and parsed["timestamp_col"] == "ts"
    assert sum(len(parsed[k]) for k in ("captures", "files")) == new.num_files > 0
    fields = {"id": "st-1", "bucket": "b", "ref_key": "stress-inputs/u1/r/ref.csv",
              "eval_key": "stress-inputs/u1/x/ct-1.sources.json", "results_prefix": "stress/st-1/",
              "logs_key": "stress/st-1/logs.txt", "error_key": "stress/st-1/error.json",
              "claim_key": "stress/st-1/claim.json",
              "config": {"data_info": {"ref_path": "ref.csv", "eval_path": "eval.json"},
                         "continuous_info": {"timestamp_col": "ts", "bin_size": "hour"}},
              "continuous": {"mode": "incremental", "ct_instance_id": "c", "history_key": None,
                             "source_prefixes": new.prefixes}}
    assert StressTestSpec.from_dict(fields).continuous["source_prefixes"] == new.prefixes


def test_a_manifest_naming_a_file_outside_its_folders_is_refused():
    new = files()
    new.manifest["files"].append("stress-inputs/u2/landing/theirs.csv")
    with pytest.raises(worker.SourcesError, match="theirs.csv"):
        worker.parse(json.dumps(new.manifest).encode(), new.prefixes)

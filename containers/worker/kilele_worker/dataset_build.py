"""A dataset built by its check job before the check (issue 12 item 6 on AWS): the retrain loop's
``labelled_captured_traffic``.

The platform decides the dataset is needed where it cannot read data (a workflow Lambda ships no
pandas), so it only lists the app's capture and ground-truth files: a *sources manifest* (the
layout of a scheduled continuous test's, :mod:`kilele_worker.ct_sources`, source ``traffic``;
``label_col`` is the dataset's target column), written by chalicelib/services/dataset_builds.py.
The check's message then has ``build: {"manifest_key", "source_prefixes", "target_column"}``;
this module downloads the files it names -- every one under ``source_prefixes``, the app's two
folders, as the run's S3 session allows (kilele_worker.aws.session_policy) -- joins each captured
query with its last label by query id, keeps the labelled ones, and writes their features and
the label as ``target_column`` to the dataset's file (the message's ``source_key``), a CSV the
check then reads like any upload.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

from kilele_worker.ct_sources import SourcesError, parse


class BuildError(ValueError):
    """The dataset cannot be built: a manifest that is not the platform's, a file outside the
    run's folders, a line that is no capture record, or no labelled query; says which."""


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build(spec: Any, s3: Any, say: Callable[[str], None]) -> int:
    """Build ``spec``'s dataset file from its manifest and upload it to ``spec.source_key``;
    returns its number of rows. :class:`BuildError` with why (S3's own errors pass through)."""
    from kilele_stress.capture import CaptureFormatError, NoLabelledTraffic, labelled_dataset

    manifest_key, prefixes = spec.build["manifest_key"], list(spec.build["source_prefixes"])
    target = spec.build.get("target_column") or spec.target_column
    try:
        manifest = parse(s3.get_object(Bucket=spec.bucket, Key=manifest_key)["Body"].read(), prefixes)
    except SourcesError as e:
        raise BuildError(str(e)) from e
    if manifest["source"] != "traffic" or not target:
        raise BuildError("the sources manifest is not one of captured traffic with a target column")
    with tempfile.TemporaryDirectory() as folder:
        paths: dict[str, list[str]] = {"captures": [], "labels": []}
        for name in paths:
            for index, key in enumerate(manifest[name]):
                path = os.path.join(folder, f"{name}-{index:05d}.jsonl")
                s3.download_file(spec.bucket, key, path)
                paths[name].append(path)
        say(f"building dataset {spec.id} from {len(paths['captures'])} capture file(s) and "
            f"{len(paths['labels'])} ground-truth file(s)")
        try:
            frame = labelled_dataset((_read(p) for p in paths["captures"]), (_read(p) for p in paths["labels"]),
                                     target)
        except CaptureFormatError as e:  # "file N, line M": N counts the captures, then the labels
            raise BuildError(f"the captured traffic could not be read: {e}") from e
        except NoLabelledTraffic as e:
            raise BuildError(str(e)) from e
        out = os.path.join(folder, "data.csv")
        frame.to_csv(out, index=False)
        s3.upload_file(out, spec.bucket, spec.source_key, ExtraArgs={"ContentType": "text/csv"})
    say(f"dataset {spec.id}: {len(frame)} labelled row(s) written")
    return len(frame)


__all__ = ["BuildError", "build"]

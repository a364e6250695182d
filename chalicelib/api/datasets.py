"""Datasets: direct upload, download from a URL, or presigned upload then completion."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.errors import PayloadTooLarge
from chalicelib.schemas import CreateDatasetRequest, StartDatasetUploadRequest, TaskQuery
from chalicelib.schemas_responses import DatasetOut, DatasetUploadOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/datasets", "POST", "Create a dataset from base64 content or a URL", body=CreateDatasetRequest, status=201,
          response=DatasetOut)
def create_dataset(call: Call) -> dict:
    req = call.body
    if req.dataset_url is not None:
        return services().datasets.create_from_url(call.user, req.name, req.task, req.dataset_url, req.target_column)
    return services().datasets.create_from_bytes(call.user, req.name, req.task, req.content(), req.target_column)


@endpoint(bp, "/datasets/uploads", "POST", "Reserve a dataset and get a presigned S3 upload for a large file",
          body=StartDatasetUploadRequest, status=201, response=DatasetUploadOut)
def start_upload(call: Call) -> dict:
    req = call.body
    return services().datasets.start_upload(call.user, req.name, req.task, req.size_bytes, req.target_column,
                                            iam_principal=call.iam_principal)


@endpoint(bp, "/datasets/{dataset_id}/complete", "POST", "Check a presigned upload: the dataset becomes READY, or PENDING (a "
          "large file, checked by a job: poll GET /datasets/{dataset_id} for READY or INVALID with its error)",
          response=DatasetOut, errors=(PayloadTooLarge,))
def complete_upload(call: Call, dataset_id: str) -> dict:
    return services().datasets.complete_upload(call.user, dataset_id)


@endpoint(bp, "/datasets", "GET", "Your datasets (admins: all), optionally of one task", query=TaskQuery,
          response=list[DatasetOut])
def list_datasets(call: Call) -> list:
    return services().datasets.list(call.user, call.query.task)


@endpoint(bp, "/datasets/{dataset_id}", "GET", "One dataset", response=DatasetOut)
def get_dataset(call: Call, dataset_id: str) -> dict:
    return services().datasets.get(call.user, dataset_id)

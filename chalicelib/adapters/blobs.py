"""S3 object storage for datasets, model files and (later) parameters and results."""
from __future__ import annotations

from typing import IO, Any

from botocore.exceptions import ClientError

from chalicelib.errors import NotFound

_MISSING = {"NoSuchKey", "404", "NotFound"}


class BlobStore:
    """One S3 bucket, addressed by object key."""

    def __init__(self, bucket: str, client: Any):
        self.bucket = bucket
        self._s3 = client

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_file(self, key: str, fileobj: IO[bytes]) -> None:
        self._s3.upload_fileobj(fileobj, self.bucket, key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in _MISSING:
                raise NotFound(f"object {key!r} does not exist") from e
            raise

    def download_to(self, key: str, fileobj: IO[bytes]) -> None:
        try:
            self._s3.download_fileobj(self.bucket, key, fileobj)
        except ClientError as e:
            if e.response["Error"]["Code"] in _MISSING:
                raise NotFound(f"nothing was uploaded for {key!r}") from e
            raise

    def size(self, key: str) -> int:
        """Size in bytes; :class:`NotFound` when no object is there."""
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as e:
            if e.response["Error"]["Code"] in _MISSING:
                raise NotFound(f"nothing was uploaded for {key!r}") from e
            raise

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def copy(self, source_key: str, key: str) -> None:
        """S3's managed copy (multipart above 8 MiB, so past CopyObject's 5 GB), server side."""
        try:
            self._s3.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, key)
        except ClientError as e:
            if e.response["Error"]["Code"] in _MISSING:
                raise NotFound(f"object {source_key!r} does not exist") from e
            raise

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, in key order (``ports_loop.KeyLister``: schedules' data sources)."""
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)

    def presigned_get(self, key: str, expires_seconds: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds
        )

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int) -> dict[str, Any]:
        """A browser/HTTP form upload (``url`` + ``fields``) limited to ``max_bytes``."""
        return self._s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_seconds,
        )

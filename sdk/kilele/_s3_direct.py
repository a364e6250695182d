"""Large files straight to S3 with boto3's managed transfers, for clients that sign with AWS
credentials (``Client(aws_session=...)``).

The API's upload handshake (``POST /datasets/uploads``) answers a request signed by an IAM
user with ``direct: {bucket, key, endpoint_url}``: a key under ``direct/<IAM user name>/``
that infra's transfer policy (``kilele-<stage>-direct-transfers``) lets that user, and no other,
put. boto3's ``upload_file`` then sends it as a multipart upload (parts in parallel, retried one
by one) above :attr:`TransferSettings.multipart_threshold` bytes. ``endpoint_url`` is set only
by the local stack, whose S3 is moto. Unsigned clients, and roles (which have no per-principal
name a session cannot choose), keep the presigned POST of :mod:`kilele._transfer`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from kilele.errors import ConnectionFailedError, UploadFailedError


@dataclass
class TransferSettings:
    """boto3's ``TransferConfig`` knobs the SDK exposes (their defaults are boto3's)."""

    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    max_concurrency: int = 10
    progress: Optional[bool] = None  # None: a bar only on a terminal (tqdm's disable=None)


def _progress(total: int, description: str, enabled: Optional[bool]) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                dynamic_ncols=True, disable=None if enabled is None else not enabled)


def upload_direct(session: Any, direct: Mapping[str, Any], path: str, settings: TransferSettings,
                  for_what: str, consequence: str) -> None:
    """Put the file at ``path`` at ``direct``'s bucket and key with the session's credentials
    (multipart above the threshold, with a progress bar in bytes). ``UploadFailedError`` when S3
    refuses it, ``ConnectionFailedError`` when S3 cannot be reached."""
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = session.client("s3", endpoint_url=direct.get("endpoint_url") or None)
    config = TransferConfig(multipart_threshold=settings.multipart_threshold,
                            multipart_chunksize=settings.multipart_chunksize,
                            max_concurrency=settings.max_concurrency)
    where = f"s3://{direct['bucket']}/{direct['key']}"
    with _progress(os.path.getsize(path), os.path.basename(path), settings.progress) as bar:
        try:
            s3.upload_file(path, direct["bucket"], direct["key"], Config=config, Callback=bar.update)
        except (S3UploadFailedError, ClientError) as e:
            # upload_file raises S3UploadFailedError while handling S3's ClientError (implicit
            # chaining): the code is on that context.
            cause = e if isinstance(e, ClientError) else (e.__cause__ or e.__context__)
            code = cause.response["Error"].get("Code", "upload_failed") if isinstance(cause, ClientError) \
                else "upload_failed"
            raise UploadFailedError(f"S3 refused the upload of {path} to {where} for {for_what} ({e}); "
                                    f"{consequence}", code=code) from e
        except BotoCoreError as e:
            raise ConnectionFailedError(f"the upload of {path} to {where} for {for_what} could not reach S3 "
                                        f"({type(e).__name__}: {e}); {consequence}") from e

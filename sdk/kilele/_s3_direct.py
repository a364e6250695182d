"""Large files straight to S3 with boto3's managed transfers, for clients that sign with AWS
credentials (``Client(aws_session=...)``).

The API's upload handshake (``POST /datasets/uploads``) answers a request signed by an IAM
user with ``direct: {bucket, key, endpoint_url}``: a key under ``direct/<IAM user name>/``
that infra's transfer policy (``kilele-<stage>-direct-transfers``) lets that user, and no other,
put. boto3's ``upload_file`` then sends it as a multipart upload (parts in parallel, retried one
by one) above :attr:`TransferSettings.multipart_threshold` bytes. ``endpoint_url`` is set only
by the local stack, whose S3 is moto. Unsigned clients, and roles (which have no per-principal
name a session cannot choose), keep the presigned POST of :mod:`kilele._transfer`.

Downloads go the same way back: what the API exports for a request signed by an IAM user (an
app version's bundle) is written under that user's prefix, and the answer's ``direct`` names
it beside the presigned ``url``. :func:`download_direct` reads it with boto3's managed
``download_file`` (parallel ranged GETs above the threshold, a byte bar). When S3 refuses our
credentials (the transfer policy not attached to this IAM user) it says so with
:class:`DirectAccessDenied`, and the caller falls back to the presigned URL.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from kilele.errors import ConnectionFailedError, DownloadFailedError, UploadFailedError

#: S3's refusals of our credentials (HEAD answers carry no body, so only the status as the code).
_DENIED_CODES = ("AccessDenied", "403", "Forbidden")


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


class DirectAccessDenied(DownloadFailedError):
    """S3 refused our own credentials the direct read (the caller may still use the presigned URL)."""

    default_code = "AccessDenied"


def _transfer_config(settings: TransferSettings) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=settings.multipart_threshold,
                          multipart_chunksize=settings.multipart_chunksize,
                          max_concurrency=settings.max_concurrency)


def download_direct(session: Any, direct: Mapping[str, Any], path: str, settings: TransferSettings,
                    what: str) -> None:
    """Read ``direct``'s bucket and key into ``path`` with the session's credentials (ranged GETs
    in parallel above the threshold, a progress bar in bytes); ``path`` is replaced only once the
    whole file has arrived. :class:`DirectAccessDenied` when S3 refuses our credentials,
    ``DownloadFailedError`` for its other refusals, ``ConnectionFailedError`` when S3 cannot be
    reached."""
    import tempfile

    from botocore.exceptions import BotoCoreError, ClientError

    s3 = session.client("s3", endpoint_url=direct.get("endpoint_url") or None)
    where = f"s3://{direct['bucket']}/{direct['key']}"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".kilele-download-", suffix=".part")
    os.close(fd)
    try:
        try:
            size = s3.head_object(Bucket=direct["bucket"], Key=direct["key"])["ContentLength"]
            with _progress(size, os.path.basename(path), settings.progress) as bar:
                s3.download_file(direct["bucket"], direct["key"], tmp, Config=_transfer_config(settings),
                                 Callback=bar.update)
        except ClientError as e:
            error = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.get("Code") or status or "")
            kind = DirectAccessDenied if code in _DENIED_CODES else DownloadFailedError
            raise kind(f"S3 refused the download of {what} from {where} with our AWS credentials ({code}: "
                       f"{error.get('Message') or e})", status_code=status, code=code or "download_failed") from e
        except BotoCoreError as e:
            raise ConnectionFailedError(f"the download of {what} from {where} could not reach S3 "
                                        f"({type(e).__name__}: {e})") from e
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

"""Moving files to and from object storage: presigned POST uploads streamed from disk,
presigned GET downloads (to a file, or into memory), and S3's error documents.

Presigned URLs carry their own authorization, so these requests never send our credentials.

``requests`` builds ``files=`` bodies in memory; datasets may be gigabytes, so
:class:`MultipartFileBody` reads the file in blocks while it is sent. S3 needs a
Content-Length (no chunked encoding), which ``requests`` takes from ``len()``. S3 also needs
the file to be the last field.
"""
from __future__ import annotations

import io
import os
import tempfile
import uuid
import warnings
import xml.etree.ElementTree as ET
from typing import IO, Any, Iterator, Mapping, Optional

import requests

from kilele._http import HttpClient, MiB
from kilele.errors import ConnectionFailedError, DownloadFailedError, UploadFailedError

BLOCK_BYTES = 1024 * 1024


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartFileBody:
    """A ``multipart/form-data`` body streamed from disk, for S3 presigned POST uploads: the
    form ``fields`` (in order), then the open binary file as the field ``file_field``."""

    def __init__(self, fields: Mapping[str, str], fileobj: IO[bytes], filename: str, file_field: str = "file"):
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            + str(value).encode()
            + b"\r\n"
            for name, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
            f'filename="{_quote(filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        file_size = os.fstat(fileobj.fileno()).st_size - fileobj.tell()
        self._length = len(head) + file_size + len(tail)
        self._sources: list[IO[bytes]] = [io.BytesIO(head), fileobj, io.BytesIO(tail)]
        self._index = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """File-like read: ``http.client`` sends the body block by block."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(BLOCK_BYTES), b""))
        out = bytearray()
        while len(out) < size and self._index < len(self._sources):
            data = self._sources[self._index].read(size - len(out))
            if data:
                out += data
            else:
                self._index += 1
        return bytes(out)

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(BLOCK_BYTES), b"")


def _s3_error(response: requests.Response, default: str = "upload_failed") -> tuple[str, str]:
    """(code, message) from S3's XML error document, or from the raw text."""
    text = response.text or ""
    try:
        root = ET.fromstring(text)
        code = root.findtext("Code") or ""
        message = root.findtext("Message") or ""
        if code or message:
            return code or default, message or text[:300]
    except ET.ParseError:
        pass
    return default, text.strip()[:300] or (response.reason or "no reason given")


def _download_refused(response: requests.Response, what: str) -> DownloadFailedError:
    code, reason = _s3_error(response, default="download_failed")
    return DownloadFailedError(
        f"the storage service refused the download of {what} (HTTP {response.status_code} {code}: "
        f"{reason}); ask again for a fresh URL if it expired",
        status_code=response.status_code,
        code=code,
    )


class TransferMixin(HttpClient):
    """Presigned uploads and downloads, for the resource mixins that move files."""

    def _upload_presigned(self, upload: Mapping[str, Any], path: str, dataset_id: str) -> None:
        """POST a dataset's file to the presigned S3 form (never with our credentials)."""
        self._post_presigned(upload, path, f"dataset {dataset_id}", "the dataset stays UPLOADING and unusable")

    def _post_presigned(self, upload: Mapping[str, Any], path: str, for_what: str, consequence: str) -> None:
        """POST the file at ``path`` to a presigned S3 form ``{"url", "fields"}`` without our
        credentials. ``for_what`` and ``consequence`` complete the error messages."""
        url = upload["url"]
        with open(path, "rb") as f:
            body = MultipartFileBody(upload.get("fields") or {}, f, os.path.basename(path))
            try:
                response = requests.post(
                    url, data=body, headers={"Content-Type": body.content_type}, timeout=self.timeout
                )
            except requests.exceptions.RequestException as e:
                raise ConnectionFailedError(
                    f"the upload of {path} for {for_what} could not reach the storage URL {url} "
                    f"({type(e).__name__}: {e})"
                ) from e
        if response.status_code >= 300:
            code, reason = _s3_error(response)
            raise UploadFailedError(
                f"the storage service refused the upload of {path} for {for_what} "
                f"(HTTP {response.status_code} {code}: {reason}); {consequence}",
                status_code=response.status_code,
                code=code or "upload_failed",
            )

    def _download_bytes(self, url: str, what: str, refused_what: Optional[str] = None) -> bytes:
        """GET a presigned URL (without our credentials) into memory. ``what`` names the file in
        error messages (``refused_what`` when the storage service answers an error)."""
        try:
            response = requests.get(url, timeout=self.timeout)  # presigned: no auth headers
        except requests.exceptions.RequestException as e:
            raise ConnectionFailedError(
                f"{what} could not be downloaded from {url} ({type(e).__name__}: {e})"
            ) from e
        if response.status_code >= 300:
            raise _download_refused(response, refused_what or what)
        return response.content

    def _download_to(self, url: str, path: str, what: str) -> None:
        """GET a presigned URL (without our credentials) into ``path``, replaced only once the
        whole body has arrived."""
        directory = os.path.dirname(os.path.abspath(path))
        try:
            response = requests.get(url, timeout=self.timeout, stream=True)
        except requests.exceptions.RequestException as e:
            raise ConnectionFailedError(
                f"{what} could not be downloaded from {url} ({type(e).__name__}: {e})"
            ) from e
        with response:
            if response.status_code >= 300:
                raise _download_refused(response, what)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kilele-download-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in response.iter_content(chunk_size=MiB):
                        f.write(chunk)
                os.replace(tmp, path)
            except requests.exceptions.RequestException as e:
                os.unlink(tmp)
                raise ConnectionFailedError(
                    f"the download of {what} from {url} broke off ({type(e).__name__}: {e})"
                ) from e
            except BaseException:
                os.unlink(tmp)
                raise

    def _download_file(self, answer: dict[str, Any], path: str, what: str) -> None:
        """Save a download the API answered (``{"url", "direct"?}``) to ``path``: straight from S3
        with our own credentials when the API named a ``direct`` key for us (signed as an IAM
        user), else, or when S3 refuses those credentials, through the presigned URL."""
        direct = answer.get("direct")
        if direct and self.aws_session is not None and self._signer is not None:
            from kilele._s3_direct import DirectAccessDenied, download_direct

            try:
                download_direct(self.aws_session, direct, path, self.transfer, what)
                return
            except DirectAccessDenied as e:
                # The IAM user lacks the transfer policy (kilele-<stage>-direct-transfers): the
                # presigned URL needs none of ours, so the download still works, only slower.
                warnings.warn(f"{e}; downloading through the presigned URL instead", stacklevel=3)
        self._download_to(answer["url"], path, what)

    def _download_answer_bytes(self, answer: dict[str, Any], what: str, refused_what: Optional[str] = None) -> bytes:
        """The file of a download answer (``{"url", "direct"?}``) in memory, fetched as
        :meth:`_download_file` fetches it."""
        if not (answer.get("direct") and self.aws_session is not None and self._signer is not None):
            return self._download_bytes(answer["url"], what, refused_what)
        with tempfile.TemporaryDirectory(prefix="kilele-download-") as tmp:
            path = os.path.join(tmp, "file")
            self._download_file(answer, path, what)
            with open(path, "rb") as f:
                return f.read()

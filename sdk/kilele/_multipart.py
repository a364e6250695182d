"""A ``multipart/form-data`` body streamed from disk, for S3 presigned POST uploads.

``requests`` builds ``files=`` bodies in memory; datasets may be gigabytes, so this body reads
the file in blocks while it is sent. S3 needs a Content-Length (no chunked encoding), which
``requests`` takes from ``len()``. S3 also needs the file to be the last field.
"""
from __future__ import annotations

import io
import os
import uuid
from typing import IO, Iterator, Mapping

BLOCK_BYTES = 1024 * 1024


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartFileBody:
    """The form ``fields`` (in order), then the open binary file as the field ``file_field``."""

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

"""Safe unpacking of bundle archives on every Python 3.11 (``extractall(filter=...)`` arrived
in 3.11.4): no absolute paths, no ``..``, no links or devices.

Public: the CLI (``kilele bundle serve``) and the platform's local endpoint runner use it.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path


class UnsafeArchiveError(tarfile.TarError):
    """The archive holds an entry that would land outside the target folder, or a link/device."""


def safe_extract(archive: tarfile.TarFile, directory: "str | os.PathLike[str]") -> None:
    """Unpack ``archive`` into ``directory``; raise (:class:`UnsafeArchiveError` or, on Pythons
    with extraction filters, ``tarfile.FilterError``) on any entry that could escape it."""
    target = Path(directory).resolve()
    if hasattr(tarfile, "data_filter"):
        archive.extractall(target, filter="data")
        return
    for member in archive.getmembers():
        destination = (target / member.name).resolve()
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{member.name!r} is not a regular file or folder")
        if destination != target and target not in destination.parents:
            raise UnsafeArchiveError(f"{member.name!r} would be written outside {target}")
    archive.extractall(target)

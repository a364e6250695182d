"""Bundle unpacking is safe with and without tarfile's extraction filters (Python < 3.11.4)."""
from __future__ import annotations

import io
import tarfile

import pytest

from kilele.archive import UnsafeArchiveError, safe_extract


def archive_with(*entries: tuple[str, bytes]) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer, mode="r:gz")


@pytest.fixture(params=["with filters", "without filters"])
def python(request, monkeypatch):
    if request.param == "without filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_a_good_archive_is_unpacked(python, tmp_path):
    safe_extract(archive_with(("kilele-bundle.json", b"{}"), ("members/a/model.py", b"x = 1\n")), tmp_path)
    assert (tmp_path / "members" / "a" / "model.py").read_text() == "x = 1\n"


@pytest.mark.parametrize("name", ["../escape.txt", "members/../../escape.txt"])
def test_entries_that_escape_are_refused(python, tmp_path, name):
    with pytest.raises(tarfile.TarError):
        safe_extract(archive_with((name, b"boom")), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_absolute_entries_never_land_outside(python, tmp_path):
    name = f"{tmp_path}/outside.txt"
    try:  # refused (no filters) or re-rooted inside the target (the "data" filter strips the "/")
        safe_extract(archive_with((name, b"boom")), tmp_path / "out")
    except tarfile.TarError:
        pass
    assert not (tmp_path / "outside.txt").exists()


def test_links_are_refused_without_filters(monkeypatch, tmp_path):
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    buffer.seek(0)
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        safe_extract(tarfile.open(fileobj=buffer, mode="r:gz"), tmp_path)

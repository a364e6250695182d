"""``kilele local up --reset`` starts empty: moto's state, the event log and the schedules go;
built images (a cache of requirement sets) stay."""
from __future__ import annotations

from pathlib import Path

from chalicelib.local.data_dir import DataDir


def test_reset_removes_the_state_and_keeps_the_image_cache(tmp_path: Path) -> None:
    for name in ("moto/state.snapshot", "events/events.jsonl", "schedules/schedules.json", "images/abc/ready"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    data = DataDir(tmp_path)
    data.acquire()
    try:
        data.reset()
    finally:
        data.release()
    assert not (tmp_path / "moto").exists()
    assert not (tmp_path / "events").exists() and not (tmp_path / "schedules").exists()
    assert (tmp_path / "images/abc/ready").read_text() == "x"

"""The session file: ``kilele login`` keeps one session token per API URL in
``~/.config/kilele/session.json`` (mode 0600)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import click


def session_path() -> Path:
    return Path.home() / ".config" / "kilele" / "session.json"


def _normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def _load_sessions() -> dict[str, Any]:
    path = session_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        click.echo(f"warning: ignoring unreadable {path}: {e}", err=True)
        return {}
    sessions = data.get("sessions") if isinstance(data, dict) else None
    return sessions if isinstance(sessions, dict) else {}


def _save_sessions(sessions: dict[str, Any]) -> None:
    """Write the session file atomically, readable by its owner only."""
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session.", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"sessions": sessions}, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def saved_session(url: str) -> Optional[dict[str, Any]]:
    return _load_sessions().get(_normalize_url(url))


def save_session(url: str, session: dict[str, Any]) -> None:
    sessions = _load_sessions()
    sessions[_normalize_url(url)] = session
    _save_sessions(sessions)


def forget_session(url: str) -> bool:
    sessions = _load_sessions()
    if sessions.pop(_normalize_url(url), None) is None:
        return False
    _save_sessions(sessions)
    return True

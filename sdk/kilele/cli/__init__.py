"""The ``kilele`` command: the SDK from a shell.

Every command prints its result as JSON on stdout (but ``train-jobs watch``, a live view, and
``bundle serve``, which runs the inference server). Errors print one line on stderr and exit 1.
``kilele login`` keeps the session token in ``~/.config/kilele/session.json`` (mode 0600), one
per API URL; later commands use it unless an API key is given (``--api-key`` / KILELE_API_KEY),
which then wins.

One module per command group (:mod:`.auth`, :mod:`.users`, :mod:`.datasets`, :mod:`.models`,
:mod:`.train_jobs`, :mod:`.inference`, :mod:`.apps`, :mod:`.bundles`, :mod:`.stress_tests`, :mod:`.images`) on the root group of
:mod:`.core`; the text renderers are in :mod:`.render`. Other packages add command groups
through the ``kilele.cli`` entry-point group (the platform adds ``kilele local``).
"""
from __future__ import annotations

from typing import Optional

from kilele.cli import (  # noqa: F401 (commands)
    app_loop,
    apps,
    auth,
    bundles,
    continuous_tests,
    ct_schedules,
    datasets,
    events,
    images,
    inference,
    models,
    platform_images,
    stress_tests,
    train_jobs,
    users,
)
from kilele.cli.core import (
    DEFAULT_URL,
    LOCAL_STACK_HINT,
    PLUGIN_GROUP,
    Context,
    KileleGroup,
    cli,
    fail,
    output,
    pass_ctx,
)
from kilele.cli.render import render_watch
from kilele.cli.sessions import forget_session, save_session, saved_session, session_path


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="kilele")


__all__ = ["cli", "main", "render_watch", "Context", "KileleGroup", "output", "fail", "pass_ctx", "DEFAULT_URL",
           "LOCAL_STACK_HINT", "PLUGIN_GROUP", "session_path", "saved_session", "save_session", "forget_session"]

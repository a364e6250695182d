"""What the stack reads from the Chalice app (the repo root's app.py) at synth time: its routes
(one API Gateway method each) and its event sources (the non-HTTP Lambdas), checked so a route or
handler the stack cannot deploy fails synth instead of deploying a broken function."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
API_HANDLER = "app.app"
# Chalice event handlers (EventSourceHandler objects) are (event, context) callables in app.py.
DISPATCH_TRIALS_HANDLER = "app.dispatch_trials"
BATCH_JOB_FAILED_HANDLER = "app.batch_job_failed"
SERVE_QUEUE_ITEMS_HANDLER = "app.serve_queue_items"
IMAGE_BUILD_CHANGED_HANDLER = "app.image_build_changed"


def chalice_app_module() -> ModuleType:
    """The repo root's app.py (the module the Lambda handler ``app.app`` names).

    Imported by name, as Lambda does; the repo root must come first on sys.path (infra/app.py and
    tests/infra put it there), or ``app`` could be infra/app.py itself.
    """
    module = importlib.import_module("app")
    if Path(module.__file__ or "").resolve() != REPO_ROOT / "app.py":
        raise RuntimeError(
            f"`import app` gave {module.__file__}, not {REPO_ROOT / 'app.py'}: "
            "put the repo root first on sys.path"
        )
    return module


def chalice_routes() -> dict[str, list[str]]:
    """Route path -> HTTP methods of the Chalice app, e.g. '/models/{model_id}' -> ['DELETE', 'GET']."""
    routes: dict[str, list[str]] = {}
    for path, entries in sorted(chalice_app_module().app.routes.items()):
        for method, entry in entries.items():
            # Both are configured on API Gateway by `chalice deploy` (a preflight OPTIONS method,
            # an authorizer); this stack does neither, so refuse rather than deploy them silently off.
            if entry.cors or entry.authorizer:
                raise NotImplementedError(f"{method} {path}: CORS and authorizers are not deployed by infra")
        routes[path] = sorted(entries)
    return routes


def chalice_event_source(handler: str, config_type: type) -> object:
    """The Chalice event source whose Lambda handler string is ``handler`` (e.g.
    'app.dispatch_trials'), checked to be of ``config_type``, so a renamed or re-typed handler in
    app.py fails synth instead of deploying a Lambda that cannot import its handler."""
    sources = {source.handler_string: source for source in chalice_app_module().app.event_sources}
    source = sources.get(handler)
    if not isinstance(source, config_type):
        raise RuntimeError(f"app.py registers no {config_type.__name__} handler {handler!r} (has {sorted(sources)})")
    return source

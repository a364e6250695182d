"""The ``kilele`` command: the SDK from a shell.

Every command prints its result as JSON on stdout (but ``train-jobs watch``, a live view, and
``bundle serve``, which runs the inference server). Errors print one line on stderr and exit 1.
``kilele login`` keeps the session token in ``~/.config/kilele/session.json`` (mode 0600), one
per API URL; later commands use it unless an API key is given (``--api-key`` / KILELE_API_KEY),
which then wins.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import click

from kilele._tar import safe_extract
from kilele.client import FINAL_TRAIN_JOB_STATUSES, Client, trial_progress
from kilele.constants import BudgetOption, InferenceBudgetOption, InputType, ModelAccessRight, UserType
from kilele.errors import KileleError

DEFAULT_URL = "http://127.0.0.1:8000"
LOCAL_STACK_HINT = "the local stack needs the platform installed: pip install -r requirements-local.txt"


# ---------------------------------------------------------------------- session file


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


# ---------------------------------------------------------------------- plumbing


class Context:
    def __init__(self, url: str, api_key: Optional[str]):
        self.url = _normalize_url(url)
        self.api_key = api_key or None

    def client(self, use_session: bool = True) -> Client:
        token = None
        if use_session and not self.api_key:
            session = saved_session(self.url)
            token = session.get("token") if session else None
        return Client(base_url=self.url, api_key=self.api_key, token=token)


def output(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


class KileleGroup(click.Group):
    """Turns SDK errors into one line on stderr and exit code 1 (no tracebacks)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KileleError as e:
            hint = ""
            if e.status_code == 401 and not (ctx.obj and ctx.obj.api_key):
                hint = " (log in with `kilele login EMAIL` or pass --api-key)"
            fail(f"{e}{hint}")
        except (ValueError, OSError) as e:
            fail(str(e))


pass_ctx = click.make_pass_decorator(Context)


@click.group(name="kilele", cls=KileleGroup)
@click.option("--url", envvar="KILELE_URL", default=DEFAULT_URL, show_default=True,
              help="API root URL (env KILELE_URL).")
@click.option("--api-key", envvar="KILELE_API_KEY", default=None,
              help="API key (env KILELE_API_KEY); wins over a saved login.")
@click.version_option(package_name="kilele")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: Optional[str]) -> None:
    """Kilele: serverless ML platform client."""
    ctx.obj = Context(url, api_key)


# ---------------------------------------------------------------------- sessions


@cli.command()
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, envvar="KILELE_PASSWORD", help="Prompted when omitted.")
@pass_ctx
def login(obj: Context, email: str, password: str) -> None:
    """Log in and save the session token for this URL."""
    client = Client(base_url=obj.url)
    user = client.login(email, password)
    save_session(obj.url, {"token": client.token, "expires_at": client.token_expires_at, "email": user.get("email")})
    output(user)


@cli.command()
@pass_ctx
def logout(obj: Context) -> None:
    """Revoke the saved session token of this URL and forget it."""
    session = saved_session(obj.url)
    if not session or not session.get("token"):
        output({"logged_out": False, "reason": f"no saved login for {obj.url}"})
        return
    client = Client(base_url=obj.url, token=session["token"])
    try:
        result = client.logout()
    finally:
        forget_session(obj.url)
    output(result)


@cli.command()
@pass_ctx
def whoami(obj: Context) -> None:
    """The current user (from the saved login or the API key)."""
    user = obj.client().get_current_user()
    if user is None:
        fail(f"not logged in to {obj.url}: run `kilele login EMAIL` or pass --api-key")
    output(user)


# ---------------------------------------------------------------------- users


@cli.group()
def users() -> None:
    """Manage users (admins)."""


@users.command("list")
@pass_ctx
def users_list(obj: Context) -> None:
    """List all users."""
    output(obj.client().get_users())


@users.command("create")
@click.argument("email")
@click.argument("user_type", type=click.Choice([t.value for t in UserType if t is not UserType.SUPERADMIN],
                                               case_sensitive=False))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted when omitted.")
@pass_ctx
def users_create(obj: Context, email: str, user_type: str, password: str) -> None:
    """Create a user of USER_TYPE."""
    output(obj.client().create_user(email, password, user_type))


@users.command("ban")
@click.argument("email")
@pass_ctx
def users_ban(obj: Context, email: str) -> None:
    """Ban a user (irreversible)."""
    output(obj.client().ban_user(email))


# ---------------------------------------------------------------------- API keys


@cli.group("api-keys")
def api_keys() -> None:
    """Manage your API keys."""


@api_keys.command("create")
@click.option("--name", default="default", show_default=True)
@pass_ctx
def api_keys_create(obj: Context, name: str) -> None:
    """Create an API key (the key is shown only once)."""
    output(obj.client().create_api_key(name))


@api_keys.command("list")
@pass_ctx
def api_keys_list(obj: Context) -> None:
    """List your API keys."""
    output(obj.client().get_api_keys())


@api_keys.command("revoke")
@click.argument("key_id")
@pass_ctx
def api_keys_revoke(obj: Context, key_id: str) -> None:
    """Revoke an API key by id."""
    output(obj.client().revoke_api_key(key_id))


# ---------------------------------------------------------------------- datasets


@cli.group()
def datasets() -> None:
    """Manage datasets."""


@datasets.command("create")
@click.argument("name")
@click.argument("task")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False), help="Local dataset file.")
@click.option("--url", "dataset_url", help="URL the platform downloads the dataset from.")
@click.option("--target-column", help="Column to predict (tabular tasks).")
@pass_ctx
def datasets_create(obj: Context, name: str, task: str, file_path: Optional[str], dataset_url: Optional[str],
                    target_column: Optional[str]) -> None:
    """Create dataset NAME for TASK from --file or --url."""
    if (file_path is None) == (dataset_url is None):
        raise click.UsageError("give exactly one of --file and --url")
    output(obj.client().create_dataset(name, task, dataset_path=file_path, dataset_url=dataset_url,
                                       target_column=target_column))


@datasets.command("list")
@click.option("--task", help="Only datasets of this task.")
@pass_ctx
def datasets_list(obj: Context, task: Optional[str]) -> None:
    """List your datasets."""
    output(obj.client().get_datasets(task))


@datasets.command("get")
@click.argument("dataset_id")
@pass_ctx
def datasets_get(obj: Context, dataset_id: str) -> None:
    """Show one dataset."""
    output(obj.client().get_dataset(dataset_id))


# ---------------------------------------------------------------------- models


@cli.group()
def models() -> None:
    """Manage models."""


@models.command("create")
@click.argument("name")
@click.argument("task")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("model_class")
@click.option("--dependency", "dependencies", multiple=True, metavar="NAME==VERSION",
              help="A PyPI dependency; repeat for several.")
@click.option("--public", is_flag=True, help="Make the model available to every user.")
@click.option("--docker-image", help="Custom worker image.")
@pass_ctx
def models_create(obj: Context, name: str, task: str, file: str, model_class: str, dependencies: tuple[str, ...],
                  public: bool, docker_image: Optional[str]) -> None:
    """Upload model NAME for TASK from the Python FILE defining MODEL_CLASS."""
    access = ModelAccessRight.PUBLIC if public else ModelAccessRight.PRIVATE
    output(obj.client().create_model(name, task, file, model_class, dependencies=list(dependencies),
                                     access_right=access, docker_image=docker_image))


@models.command("list")
@click.option("--task", help="Only models of this task.")
@pass_ctx
def models_list(obj: Context, task: Optional[str]) -> None:
    """List the models available to you."""
    output(obj.client().get_available_models(task))


@models.command("get")
@click.argument("model_id")
@pass_ctx
def models_get(obj: Context, model_id: str) -> None:
    """Show one model."""
    output(obj.client().get_model(model_id))


@models.command("download")
@click.argument("model_id")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def models_download(obj: Context, model_id: str, out: str) -> None:
    """Save a model's Python file to OUT."""
    output(obj.client().download_model_file(model_id, out))


@models.command("delete")
@click.argument("model_id")
@pass_ctx
def models_delete(obj: Context, model_id: str) -> None:
    """Delete a model no train job uses."""
    output(obj.client().delete_model(model_id))


# ---------------------------------------------------------------------- train jobs


def _train_arg(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("epochs=3", "name=abc")`` -> ``{"epochs": 3, "name": "abc"}`` (values parsed as JSON when they are)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} should look like key=value", param_hint="--train-arg")
        try:
            args[key.strip()] = json.loads(value)
        except ValueError:
            args[key.strip()] = value
    return args


version_option = click.option("--version", "app_version", type=int, default=-1, show_default=True,
                              help="App version (-1: the latest).")


@cli.group("train-jobs")
def train_jobs() -> None:
    """Manage train jobs (hyperparameter searches)."""


@train_jobs.command("create")
@click.argument("app")
@click.argument("task")
@click.option("--train-dataset", "train_dataset_id", required=True, help="Id of the train dataset.")
@click.option("--val-dataset", "val_dataset_id", required=True, help="Id of the validation dataset.")
@click.option("--model", "model_ids", multiple=True, metavar="ID",
              help="A model to train; repeat for several (default: every model available for TASK).")
@click.option("--trials", type=int, help="Trials per model (MODEL_TRIAL_COUNT; -1: unlimited).")
@click.option("--hours", type=float, help="Time budget in hours (TIME_HOURS).")
@click.option("--gpus", type=int, help="GPUs across all models (GPU_COUNT).")
@click.option("--train-arg", "train_args", multiple=True, metavar="KEY=VALUE",
              help="An argument for the models' train(); repeat for several. JSON values are parsed.")
@pass_ctx
def train_jobs_create(obj: Context, app: str, task: str, train_dataset_id: str, val_dataset_id: str,
                      model_ids: tuple[str, ...], trials: Optional[int], hours: Optional[float],
                      gpus: Optional[int], train_args: tuple[str, ...]) -> None:
    """Create and start a train job of APP for TASK."""
    budget: dict[BudgetOption, Any] = {}
    if trials is not None:
        budget[BudgetOption.MODEL_TRIAL_COUNT] = trials
    if hours is not None:
        budget[BudgetOption.TIME_HOURS] = hours
    if gpus is not None:
        budget[BudgetOption.GPU_COUNT] = gpus
    output(obj.client().create_train_job(app, task, train_dataset_id, val_dataset_id, budget,
                                         models=list(model_ids) or None, train_args=_train_arg(train_args)))


@train_jobs.command("list")
@click.option("--app", help="Only the train jobs of this app.")
@pass_ctx
def train_jobs_list(obj: Context, app: Optional[str]) -> None:
    """List your train jobs."""
    client = obj.client()
    output(client.get_train_jobs_of_app(app) if app else client.get_train_jobs_by_user(None))


@train_jobs.command("get")
@click.argument("app")
@version_option
@pass_ctx
def train_jobs_get(obj: Context, app: str, app_version: int) -> None:
    """Show a train job of APP with its workers."""
    output(obj.client().get_train_job(app, app_version))


@train_jobs.command("stop")
@click.argument("app")
@version_option
@pass_ctx
def train_jobs_stop(obj: Context, app: str, app_version: int) -> None:
    """Stop a train job of APP."""
    output(obj.client().stop_train_job(app, app_version))


def _parse_time(value: Any) -> Optional[datetime]:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _duration(started: Any, stopped: Any, now: datetime) -> str:
    start = _parse_time(started)
    if start is None:
        return "-"
    seconds = max(0.0, ((_parse_time(stopped) or now) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def _knobs(knobs: Any) -> str:
    if not isinstance(knobs, dict):
        return ""
    parts = []
    for name, value in knobs.items():
        if isinstance(value, float):
            shown = f"{value:.4g}"
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{name}={shown}")
    return ", ".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_watch(job: dict[str, Any], trials: list[dict[str, Any]], now: Optional[datetime] = None,
                 knob_width: int = 40) -> str:
    """The text of one ``train-jobs watch`` snapshot."""
    now = now or datetime.now(timezone.utc)
    lines = [
        f"train job {job.get('app')} v{job.get('app_version')}  {job.get('status')}  "
        f"({job.get('task')}, elapsed {_duration(job.get('datetime_started'), job.get('datetime_stopped'), now)})",
    ]
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    workers = job.get("workers") or []
    if workers:
        lines += ["", *_table(
            ["worker", "model", "status", "error"],
            [[str(w.get("service_id", "")), str(w.get("model_name") or w.get("model_id") or ""),
              str(w.get("status", "")), _truncate(str(w.get("error") or ""), 40)] for w in workers],
        )]
    lines.append("")
    if trials:
        lines += _table(
            ["no", "model", "status", "score", "duration", "knobs"],
            [[str(t.get("no", "")), str(t.get("model_name") or t.get("model_id") or ""),
              str(t.get("status", "")) + (" (screen)" if t.get("screening") else ""),
              "-" if t.get("score") is None else f"{t['score']:.4g}",
              _duration(t.get("datetime_started"), t.get("datetime_stopped"), now),
              _truncate(_knobs(t.get("knobs")), knob_width)] for t in trials],
        )
    else:
        lines.append("no trials yet")
    p = trial_progress(job, trials)
    of = f"/{p['total']}" if p["total"] is not None else " (no trial limit)"
    best = "-" if p["best_score"] is None else f"{p['best_score']:.4g}"
    lines += ["", f"progress: {p['done']}{of} trials done ({p['completed']} completed, {p['errored']} errored, "
                  f"{p['running']} running), best score {best}"]
    return "\n".join(lines)


def _watch_key(job: dict[str, Any], trials: list[dict[str, Any]]) -> Any:
    """What a snapshot shows apart from the clock: a change of it prints a new snapshot."""
    return (
        job.get("status"), job.get("error"),
        tuple((w.get("service_id"), w.get("status"), w.get("error")) for w in job.get("workers") or []),
        tuple((t.get("id"), t.get("status"), t.get("score")) for t in trials),
    )


def _stdout_is_tty() -> bool:
    try:
        return click.get_text_stream("stdout").isatty()
    except (AttributeError, ValueError):
        return False


@train_jobs.command("watch")
@click.argument("app")
@version_option
@click.option("--interval", type=click.FloatRange(min=0.0), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@pass_ctx
def train_jobs_watch(obj: Context, app: str, app_version: int, interval: float) -> None:
    """Follow a train job of APP live until it is STOPPED or ERRORED (or Ctrl-C).

    On a terminal the view is redrawn in place; otherwise each snapshot is printed once, when
    something changes. Exits 1 when the job ends ERRORED.
    """
    client = obj.client()
    tty = _stdout_is_tty()
    last_key: Any = None
    try:
        while True:
            job = client.get_train_job(app, app_version)
            app_version = int(job.get("app_version") or app_version)  # stay on this version
            trials = client.get_trials_of_train_job(app, app_version)
            key = _watch_key(job, trials)
            if tty:
                click.clear()
                click.echo(render_watch(job, trials))
            elif key != last_key:
                if last_key is not None:
                    click.echo("")
                click.echo(render_watch(job, trials))
            last_key = key
            if job.get("status") in FINAL_TRAIN_JOB_STATUSES:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("\nstopped watching; the train job goes on", err=True)
        return
    if job.get("status") == "ERRORED":
        raise SystemExit(1)


# ---------------------------------------------------------------------- trials


@cli.group()
def trials() -> None:
    """Inspect the trials of train jobs."""


@trials.command("list")
@click.argument("app")
@version_option
@click.option("--best", type=click.IntRange(min=1), metavar="N", help="Only the N best COMPLETED trials, best first.")
@pass_ctx
def trials_list(obj: Context, app: str, app_version: int, best: Optional[int]) -> None:
    """List the trials of a train job of APP (oldest first)."""
    client = obj.client()
    if best is not None:
        output(client.get_best_trials_of_train_job(app, app_version, max_count=best))
    else:
        output(client.get_trials_of_train_job(app, app_version))


@trials.command("get")
@click.argument("trial_id")
@pass_ctx
def trials_get(obj: Context, trial_id: str) -> None:
    """Show one trial."""
    output(obj.client().get_trial(trial_id))


@trials.command("logs")
@click.argument("trial_id")
@pass_ctx
def trials_logs(obj: Context, trial_id: str) -> None:
    """Show a trial's logs."""
    output(obj.client().get_trial_logs(trial_id))


@trials.command("params")
@click.argument("trial_id")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def trials_params(obj: Context, trial_id: str, out: str) -> None:
    """Save a COMPLETED trial's parameters to OUT (a numpy .npz archive)."""
    output(obj.client().download_trial_parameters(trial_id, out))


# ---------------------------------------------------------------------- inference jobs


@cli.group("inference-jobs")
def inference_jobs() -> None:
    """Manage inference jobs (the best trials of a train job, served as one ensemble)."""


@inference_jobs.command("create")
@click.argument("app")
@version_option
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs for the endpoint (GPU_COUNT; default 0).")
@pass_ctx
def inference_jobs_create(obj: Context, app: str, app_version: int, gpus: Optional[int]) -> None:
    """Serve the best trials of the STOPPED train job of APP."""
    budget = {InferenceBudgetOption.GPU_COUNT: gpus} if gpus is not None else None
    output(obj.client().create_inference_job(app, app_version, budget))


@inference_jobs.command("list")
@click.option("--app", help="Only the inference jobs of this app.")
@pass_ctx
def inference_jobs_list(obj: Context, app: Optional[str]) -> None:
    """List your inference jobs."""
    client = obj.client()
    output(client.get_inference_jobs_of_app(app) if app else client.get_inference_jobs_by_user(None))


@inference_jobs.command("get")
@click.argument("app")
@version_option
@pass_ctx
def inference_jobs_get(obj: Context, app: str, app_version: int) -> None:
    """Show the running inference job of APP with its workers."""
    output(obj.client().get_running_inference_job(app, app_version))


@inference_jobs.command("stop")
@click.argument("app")
@version_option
@pass_ctx
def inference_jobs_stop(obj: Context, app: str, app_version: int) -> None:
    """Stop the running inference job of APP."""
    output(obj.client().stop_inference_job(app, app_version))


# ---------------------------------------------------------------------- applications


def _json_or_text(value: str) -> Any:
    """A JSON value, or the text itself when it is not JSON (``default_pred`` -> ``"default_pred"``)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_value(value: Optional[str], option: str) -> Any:
    try:
        return json.loads(value)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(f"not JSON ({e}); quote strings, e.g. '\"text\"'", param_hint=option) from None


input_type_choice = click.Choice([t.value for t in InputType], case_sensitive=False)


@cli.group()
def apps() -> None:
    """Manage applications: input type, latency SLO, default output, served version."""


@apps.command("register")
@click.argument("name")
@click.option("--input-type", required=True, type=input_type_choice, help="Type of the queries.")
@click.option("--default-output", required=True, metavar="JSON",
              help="Answer when the model misses the SLO (JSON; other text is taken as a string).")
@click.option("--slo-micros", required=True, type=click.IntRange(min=1), help="Latency SLO in microseconds.")
@click.option("--top-n", type=click.IntRange(min=1), help="Keep only the N most probable classes.")
@pass_ctx
def apps_register(obj: Context, name: str, input_type: str, default_output: str, slo_micros: int,
                  top_n: Optional[int]) -> None:
    """Register application NAME."""
    output(obj.client().register_application(name, input_type, _json_or_text(default_output), slo_micros,
                                             top_n=top_n))


@apps.command("update")
@click.argument("name")
@click.option("--input-type", type=input_type_choice, help="Type of the queries.")
@click.option("--default-output", metavar="JSON", help="Answer when the model misses the SLO.")
@click.option("--slo-micros", type=click.IntRange(min=1), help="Latency SLO in microseconds.")
@click.option("--top-n", type=click.IntRange(min=1), help="Keep only the N most probable classes.")
@pass_ctx
def apps_update(obj: Context, name: str, input_type: Optional[str], default_output: Optional[str],
                slo_micros: Optional[int], top_n: Optional[int]) -> None:
    """Change settings of application NAME (the others stay)."""
    default = _json_or_text(default_output) if default_output is not None else None
    if input_type is None and default is None and slo_micros is None and top_n is None:
        raise click.UsageError("nothing to update: give --input-type, --default-output, --slo-micros or --top-n")
    output(obj.client().update_application(name, input_type, default, slo_micros, top_n))


@apps.command("list")
@pass_ctx
def apps_list(obj: Context) -> None:
    """List your applications."""
    output(obj.client().get_applications())


@apps.command("get")
@click.argument("name")
@pass_ctx
def apps_get(obj: Context, name: str) -> None:
    """Show application NAME and the version it serves."""
    output(obj.client().get_application(name))


@apps.command("delete")
@click.argument("name")
@pass_ctx
def apps_delete(obj: Context, name: str) -> None:
    """Unregister application NAME (its inference jobs keep running)."""
    output(obj.client().delete_application(name))


@apps.command("set-version")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@pass_ctx
def apps_set_version(obj: Context, name: str, version: int) -> None:
    """Make application NAME serve VERSION."""
    output(obj.client().set_model_version(name, version))


@apps.command("rollback")
@click.argument("name")
@pass_ctx
def apps_rollback(obj: Context, name: str) -> None:
    """Serve the version application NAME served before the last switch."""
    output(obj.client().rollback_application(name))


@apps.command("metrics")
@click.argument("name")
@click.option("--minutes", type=click.IntRange(min=1), default=60, show_default=True, help="Window to summarize.")
@pass_ctx
def apps_metrics(obj: Context, name: str, minutes: int) -> None:
    """Requests, errors, defaults and latency of application NAME."""
    output(obj.client().get_app_metrics(name, minutes))


# ---------------------------------------------------------------------- predict


@cli.command()
@click.argument("app")
@click.option("--query", metavar="JSON", help="One query (Rafiki style); prints its prediction.")
@click.option("--queries", metavar="JSON", help="A list of queries (Rafiki style); prints the predictions.")
@click.option("--input", "input_", metavar="JSON", help="One input (Clipper style); prints the answer.")
@click.option("--input-batch", metavar="JSON", help="A list of inputs (Clipper style); prints the answers.")
@click.option("--instances", metavar="JSON", help="A list of instances (Cluster Serving style).")
@pass_ctx
def predict(obj: Context, app: str, query: Optional[str], queries: Optional[str], input_: Optional[str],
            input_batch: Optional[str], instances: Optional[str]) -> None:
    """Ask APP for predictions; give exactly one of the payload options."""
    given = {name: value for name, value in (("--query", query), ("--queries", queries), ("--input", input_),
                                             ("--input-batch", input_batch), ("--instances", instances))
             if value is not None}
    if len(given) != 1:
        raise click.UsageError("give exactly one of --query, --queries, --input, --input-batch and --instances")
    (option, text), = given.items()
    value = _json_value(text, option)
    if option in ("--queries", "--input-batch", "--instances") and not isinstance(value, list):
        raise click.BadParameter("must be a JSON list", param_hint=option)
    client = obj.client()
    if option == "--query":
        output(client.predict(app, query=value))
    elif option == "--queries":
        output(client.predict(app, queries=value))
    elif option == "--input":
        output(client.query(app, input=value))
    elif option == "--input-batch":
        output(client.query(app, input_batch=value))
    else:
        output(client.predict_instances(app, value))


# ---------------------------------------------------------------------- bundles

BUNDLE_MANIFEST = "kilele-bundle.json"
SERVE_HINT = ("kilele-serve is not installed. As the bundle's README.md says, install the inference server with "
              "the bundle's requirements: pip install -r requirements.txt kilele-inference "
              "(requirements.txt is in the bundle: tar -xzf {path} requirements.txt)")


@cli.group()
def bundle() -> None:
    """Export model bundles and serve them on this machine."""


@bundle.command("export")
@click.argument("app")
@version_option
@click.option("--trial", "trial_id", help="Export only this COMPLETED trial (default: the best trial of each model).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True),
              help="Where to save the tar.gz (default: ./APP-vVERSION.tar.gz).")
@pass_ctx
def bundle_export(obj: Context, app: str, app_version: int, trial_id: Optional[str], out_path: Optional[str]) -> None:
    """Download a self-contained bundle of APP."""
    output(obj.client().export_bundle(app, app_version, trial_id=trial_id, out_path=out_path))


def _find_server() -> Optional[str]:
    """The ``kilele-serve`` executable: on PATH, or next to this Python (an unactivated venv)."""
    found = shutil.which("kilele-serve")
    if found:
        return found
    beside = Path(sys.executable).parent / "kilele-serve"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _run_server(argv: list[str]) -> int:
    """Run the inference server until it exits (Ctrl-C reaches it too); its exit code."""
    process = subprocess.Popen(argv)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def _check_bundle(path: str) -> None:
    try:
        with tarfile.open(path, "r:gz") as archive:
            names = {name.removeprefix("./") for name in archive.getnames()}
    except (tarfile.TarError, OSError, EOFError) as e:
        fail(f"{path} is not a bundle tar.gz ({e})")
    if BUNDLE_MANIFEST not in names:
        fail(f"{path} is not a Kilele bundle: it has no {BUNDLE_MANIFEST}")


@bundle.command("serve")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
def bundle_serve(path: str, port: int, host: str) -> None:
    """Serve the bundle tar.gz at PATH with kilele-serve (POST /invocations, GET /ping)."""
    _check_bundle(path)
    server = _find_server()
    if server is None:
        fail(SERVE_HINT.format(path=path))
    directory = tempfile.mkdtemp(prefix="kilele-bundle-")
    try:
        try:
            with tarfile.open(path, "r:gz") as archive:
                safe_extract(archive, directory)  # no absolute paths, no escapes, no devices
        except (tarfile.TarError, OSError, EOFError) as e:
            fail(f"could not unpack {path}: {e}")
        click.echo(f"serving {path} (unpacked in {directory}) on http://{host}:{port}", err=True)
        code = _run_server([server, "--bundle", directory, "--host", host, "--port", str(port)])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raise SystemExit(code)


# ---------------------------------------------------------------------- local stack


@cli.group()
def local() -> None:
    """The platform on this machine (no AWS account needed)."""


@local.command("up")
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
@click.option("--moto-port", default=0, show_default=True, help="Port of the emulated AWS (0: any free one).")
def local_up(port: int, moto_port: int) -> None:
    """Start the local stack (emulated AWS + API) and serve until interrupted."""
    try:
        from chalicelib.local import stack
    except ImportError as e:
        click.echo(LOCAL_STACK_HINT, err=True)
        click.echo(f"({e})", err=True)
        raise SystemExit(1)
    code = stack.main(port=port, moto_port=moto_port)
    raise SystemExit(code if isinstance(code, int) else 0)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="kilele")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

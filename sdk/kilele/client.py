"""The Kilele client: Rafiki's ``Client`` (seed 001) over Kilele's HTTPS API.

::

    from kilele import Client
    client = Client()                       # http://127.0.0.1:8000, the local stack
    client.login(email="superadmin@kilele", password="kilele")
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path="iris.csv",
                          target_column="species")

Every call returns the API's JSON as plain dicts and lists, and raises a
:class:`~kilele.errors.KileleError` subclass when the API answers an error.
"""
from __future__ import annotations

import base64
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, TypeVar, Union
from urllib.parse import quote

import requests

from kilele._multipart import MultipartFileBody
from kilele.constants import ModelAccessRight
from kilele.errors import (
    ConnectionFailedError,
    DownloadFailedError,
    KileleError,
    PayloadTooLargeError,
    UnauthorizedError,
    UploadFailedError,
    error_from_response,
)

if TYPE_CHECKING:  # pragma: no cover
    from kilele.model import BaseModel

JSON = Any
StrOrEnum = Union[str, Enum]
ModelT = TypeVar("ModelT", bound="BaseModel")

MiB = 1024 * 1024

#: Train job statuses after which nothing changes any more.
FINAL_TRAIN_JOB_STATUSES = ("STOPPED", "ERRORED")


def _enum_value(value: StrOrEnum) -> str:
    """``Task.X`` or ``"x"`` -> ``"X"`` (the API's enums are upper case)."""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).strip().upper()


def _segment(value: str) -> str:
    """One path segment, escaped (ids never contain ``/``, but a typo must not change the route)."""
    return quote(str(value), safe="")


def _version(app_version: Union[int, str]) -> str:
    """An app version path segment: a whole number >= 1, or -1 for the latest."""
    message = f"app_version must be a whole number >= 1, or -1 for the latest; got {app_version!r}"
    try:
        version = int(app_version)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if version == 0 or version < -1 or isinstance(app_version, bool):
        raise ValueError(message)
    return str(version)


def _budget(budget: Optional[Mapping[StrOrEnum, Any]]) -> dict[str, Any]:
    """``{BudgetOption.MODEL_TRIAL_COUNT: 5, "time_hours": 0.5}`` -> ``{"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5}``."""
    if budget is None:
        return {}
    if not isinstance(budget, Mapping):
        raise TypeError(f"budget must be a dict of {{BudgetOption: amount}}, got {type(budget).__name__}")
    return {_enum_value(option): amount for option, amount in budget.items()}


def _trial_budget(job: Mapping[str, Any]) -> Optional[int]:
    """Trials the job aims at (MODEL_TRIAL_COUNT × models), or None when unlimited."""
    per_model = (job.get("budget") or {}).get("MODEL_TRIAL_COUNT", -1)
    try:
        per_model = int(per_model)
    except (TypeError, ValueError):
        return None
    if per_model < 1:
        return None
    return per_model * max(1, len(job.get("model_ids") or []))


def trial_progress(job: Mapping[str, Any], trials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A summary of a train job's trials: ``done`` (COMPLETED + ERRORED), ``total`` (the trial
    budget, None when unlimited), ``running``, ``completed``, ``errored`` and ``best_score``
    (the best score of a COMPLETED trial, None before the first one)."""
    counts: dict[str, int] = {}
    best: Optional[float] = None
    for trial in trials:
        status = str(trial.get("status") or "")
        counts[status] = counts.get(status, 0) + 1
        score = trial.get("score")
        if status == "COMPLETED" and isinstance(score, (int, float)) and (best is None or score > best):
            best = float(score)
    completed, errored = counts.get("COMPLETED", 0), counts.get("ERRORED", 0)
    return {
        "done": completed + errored,
        "total": _trial_budget(job),
        "completed": completed,
        "errored": errored,
        "running": counts.get("RUNNING", 0) + counts.get("PENDING", 0),
        "best_score": best,
    }


def _dependencies(dependencies: Union[Mapping[str, str], Iterable[str], None]) -> dict[str, str]:
    """``{"numpy": "1.26.4"}`` as is; ``["numpy==1.26.4", "scipy"]`` parsed into that shape."""
    if dependencies is None:
        return {}
    if isinstance(dependencies, Mapping):
        return {str(k): str(v) for k, v in dependencies.items()}
    if isinstance(dependencies, str):
        dependencies = [dependencies]
    parsed: dict[str, str] = {}
    for item in dependencies:
        name, _, version = str(item).partition("==")
        if not name.strip():
            raise ValueError(f"dependency {item!r} should look like name==version")
        parsed[name.strip()] = version.strip()
    return parsed


class Client:
    """A connection to a Kilele API.

    :param admin_host: host of the API (Rafiki's name for it); ignored when ``base_url`` is given
    :param admin_port: port of the API
    :param base_url: full API root, e.g. ``https://abc123.execute-api.eu-west-1.amazonaws.com/api``
    :param api_key: an API key, sent as ``x-api-key`` (a login session token takes precedence)
    :param token: a session token from an earlier :meth:`login`
    :param timeout: seconds to wait for each answer
    """

    #: Files up to this size go through the API in the request body; larger ones are uploaded
    #: straight to object storage with a presigned POST (the API's KILELE_MAX_DIRECT_UPLOAD_BYTES).
    MAX_DIRECT_UPLOAD_BYTES = 4 * MiB

    def __init__(
        self,
        admin_host: str = "127.0.0.1",
        admin_port: int = 8000,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 60,
    ):
        self.base_url = (base_url or f"http://{admin_host}:{admin_port}").rstrip("/")
        self.api_key = api_key
        self.token = token
        self.token_expires_at: Optional[str] = None
        self.timeout = timeout
        self.max_direct_upload_bytes = self.MAX_DIRECT_UPLOAD_BYTES
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "kilele-sdk"})

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._session.close()

    # ------------------------------------------------------------------ HTTP plumbing

    def _auth_headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.api_key:
            return {"x-api-key": self.api_key}
        return {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Optional[Mapping[str, Any]] = None,
        auth: bool = True,
        raw: bool = False,
    ) -> Any:
        """Call the API and return its decoded JSON (the :class:`requests.Response` if ``raw``).

        Every public method goes through here: authentication headers, ``None`` query
        parameters dropped, unreachable servers and error answers turned into
        :class:`KileleError` subclasses.
        """
        url = f"{self.base_url}{path}"
        headers = self._auth_headers() if auth else {}
        query = {k: _enum_value(v) if isinstance(v, Enum) else v for k, v in (params or {}).items() if v is not None}
        response = self._send(method, url, headers=headers, json=json, params=query or None)
        if response.status_code >= 400:
            raise self._error(response)
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise KileleError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                status_code=response.status_code,
                code="bad_response",
            ) from e

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.Timeout as e:
            raise ConnectionFailedError(f"{url} did not answer within {self.timeout} s ({e})") from e
        except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as e:
            raise ConnectionFailedError(
                f"could not reach the Kilele API at {self.base_url} ({type(e).__name__} for {method} {url}); "
                "is the server running and the URL right?"
            ) from e

    @staticmethod
    def _error(response: requests.Response) -> KileleError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return error_from_response(response.status_code, payload, response.text, response.reason or "")

    # ------------------------------------------------------------------ service

    def service_info(self) -> dict[str, Any]:
        """Service name, version and status (``GET /``; needs no login)."""
        return self._request("GET", "/", auth=False)

    # ------------------------------------------------------------------ sessions and API keys

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; later calls use the session token (valid one hour). Returns the user."""
        answer = self._request("POST", "/tokens", json={"email": email, "password": password}, auth=False)
        self.token = answer["token"]
        self.token_expires_at = answer.get("expires_at")
        return answer["user"]

    def logout(self) -> Optional[dict[str, Any]]:
        """End the login session (revokes the token on the server, then forgets it)."""
        if not self.token:
            return None
        try:
            return self._request("DELETE", "/tokens/current")
        except UnauthorizedError:  # already expired or revoked: logged out either way
            return {"logged_out": True}
        finally:
            self.token = None
            self.token_expires_at = None

    def get_current_user(self) -> Optional[dict[str, Any]]:
        """The logged-in user (or the owner of the API key); None without a login or a key."""
        if not self.token and not self.api_key:
            return None
        return self._request("GET", "/users/me")

    def create_api_key(self, name: str = "default") -> dict[str, Any]:
        """Create an API key for yourself; the answer's ``key`` is shown only this once."""
        return self._request("POST", "/api-keys", json={"name": name})

    def get_api_keys(self) -> list[dict[str, Any]]:
        """Your API keys (ids and names, never the keys)."""
        return self._request("GET", "/api-keys")

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke one of your API keys by its id."""
        return self._request("DELETE", f"/api-keys/{_segment(key_id)}")

    # ------------------------------------------------------------------ users

    def create_user(self, email: str, password: str, user_type: StrOrEnum) -> dict[str, Any]:
        """Create a user (admins; only a superadmin creates admins). Returns the user."""
        body = {"email": email, "password": password, "user_type": _enum_value(user_type)}
        return self._request("POST", "/users", json=body)

    def get_users(self) -> list[dict[str, Any]]:
        """List all users (admins only)."""
        return self._request("GET", "/users")

    def ban_user(self, email: str) -> dict[str, Any]:
        """Ban a user: logins, sessions and API keys stop working. Irreversible."""
        return self._request("POST", "/users/ban", json={"email": email})

    # ------------------------------------------------------------------ datasets

    def create_dataset(
        self,
        name: str,
        task: StrOrEnum,
        dataset_path: Optional[str] = None,
        dataset_url: Optional[str] = None,
        target_column: Optional[str] = None,
    ) -> dict[str, Any]:
        """Create a dataset from a local file (``dataset_path``) or a URL the platform downloads
        (``dataset_url``); give exactly one. Files above :attr:`max_direct_upload_bytes` are
        uploaded straight to object storage. Returns the READY dataset."""
        if (dataset_path is None) == (dataset_url is None):
            raise ValueError("give exactly one of dataset_path and dataset_url")
        base: dict[str, Any] = {"name": name, "task": _enum_value(task)}
        if target_column is not None:
            base["target_column"] = target_column
        if dataset_url is not None:
            return self._request("POST", "/datasets", json={**base, "dataset_url": dataset_url})

        path = os.fspath(dataset_path)  # type: ignore[arg-type]
        size = os.path.getsize(path)  # FileNotFoundError before any call
        if size > self.max_direct_upload_bytes:
            return self._create_dataset_presigned(base, path, size)
        with open(path, "rb") as f:
            content = base64.b64encode(f.read()).decode("ascii")
        try:
            return self._request("POST", "/datasets", json={**base, "content_base64": content})
        except PayloadTooLargeError:
            if size == 0:
                raise
            # The server's direct-upload limit is lower than ours: take the presigned path.
            return self._create_dataset_presigned(base, path, size)

    def _create_dataset_presigned(self, base: dict[str, Any], path: str, size: int) -> dict[str, Any]:
        started = self._request("POST", "/datasets/uploads", json={**base, "size_bytes": size})
        dataset_id = started["dataset"]["id"]
        self._upload_presigned(started["upload"], path, dataset_id)
        return self._request("POST", f"/datasets/{_segment(dataset_id)}/complete")

    def _upload_presigned(self, upload: Mapping[str, Any], path: str, dataset_id: str) -> None:
        """POST the file to the presigned S3 form (never with our credentials)."""
        url = upload["url"]
        with open(path, "rb") as f:
            body = MultipartFileBody(upload.get("fields") or {}, f, os.path.basename(path))
            try:
                response = requests.post(
                    url, data=body, headers={"Content-Type": body.content_type}, timeout=self.timeout
                )
            except requests.exceptions.RequestException as e:
                raise ConnectionFailedError(
                    f"the upload of {path} for dataset {dataset_id} could not reach the storage URL {url} "
                    f"({type(e).__name__}: {e})"
                ) from e
        if response.status_code >= 300:
            code, reason = _s3_error(response)
            raise UploadFailedError(
                f"the storage service refused the upload of {path} for dataset {dataset_id} "
                f"(HTTP {response.status_code} {code}: {reason}); the dataset stays UPLOADING and unusable",
                status_code=response.status_code,
                code=code or "upload_failed",
            )

    def get_datasets(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Your datasets (admins: all), optionally of one task."""
        return self._request("GET", "/datasets", params={"task": _enum_value(task) if task else None})

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset by id."""
        return self._request("GET", f"/datasets/{_segment(dataset_id)}")

    # ------------------------------------------------------------------ models

    def create_model(
        self,
        name: str,
        task: StrOrEnum,
        model_file_path: str,
        model_class: str,
        dependencies: Union[Mapping[str, str], Iterable[str], None] = None,
        access_right: StrOrEnum = ModelAccessRight.PRIVATE,
        docker_image: Optional[str] = None,
    ) -> dict[str, Any]:
        """Upload a model: one Python file whose ``model_class`` subclasses
        ``kilele.model.BaseModel``. ``dependencies`` is ``{pypi_name: version}``. Returns the model."""
        with open(model_file_path, "rb") as f:
            source = f.read()
        body: dict[str, Any] = {
            "name": name,
            "task": _enum_value(task),
            "model_class": model_class,
            "model_file_base64": base64.b64encode(source).decode("ascii"),
            "dependencies": _dependencies(dependencies),
            "access_right": _enum_value(access_right),
        }
        if docker_image is not None:
            body["docker_image"] = docker_image
        return self._request("POST", "/models", json=body)

    def get_model(self, model_id: str) -> dict[str, Any]:
        """One model by id."""
        return self._request("GET", f"/models/{_segment(model_id)}")

    def download_model_file(self, model_id: str, out_model_file_path: str) -> dict[str, Any]:
        """Save the model's Python file to ``out_model_file_path``. Returns the model."""
        model = self.get_model(model_id)
        response = self._request("GET", f"/models/{_segment(model_id)}/file", raw=True)
        with open(out_model_file_path, "wb") as f:
            f.write(response.content)
        return model

    def get_available_models(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Models you can use (yours and PUBLIC ones), optionally of one task."""
        return self._request("GET", "/models", params={"task": _enum_value(task) if task else None})

    def delete_model(self, model_id: str) -> dict[str, Any]:
        """Delete a model that no train job uses. Returns the deleted model."""
        return self._request("DELETE", f"/models/{_segment(model_id)}")

    # ------------------------------------------------------------------ train jobs

    def create_train_job(
        self,
        app: str,
        task: StrOrEnum,
        train_dataset_id: str,
        val_dataset_id: str,
        budget: Optional[Mapping[StrOrEnum, Any]],
        models: Union[list[str], str, None] = None,
        train_args: Optional[Mapping[str, Any]] = None,
    ) -> dict[str, Any]:
        """Create and start a train job: a hyperparameter search over ``models`` (ids; default:
        every model available to you for ``task``) trained on one dataset and scored on the other.

        ``budget`` is ``{BudgetOption: amount}`` (or the option names as strings):
        ``TIME_HOURS`` (default 0.1), ``GPU_COUNT`` (default 0) and ``MODEL_TRIAL_COUNT`` (trials
        per model, -1 for unlimited; the default). ``train_args`` reach every model's ``train()``.
        Returns ``{"id", "app", "app_version"}``.
        """
        if isinstance(models, str):
            models = [models]
        body: dict[str, Any] = {
            "app": app,
            "task": _enum_value(task),
            "train_dataset_id": train_dataset_id,
            "val_dataset_id": val_dataset_id,
            "budget": _budget(budget),
            "models": list(models) if models is not None else None,
            "train_args": dict(train_args or {}),
        }
        return self._request("POST", "/train-jobs", json=body)

    def stop_all_jobs(self) -> dict[str, Any]:
        """Stop every running train and inference job on the platform (superadmin only).
        Returns ``{"train_jobs_stopped": n, "inference_jobs_stopped": m}``."""
        return self._request("POST", "/jobs/stop-all")

    def get_train_jobs_by_user(self, user_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Train jobs of a user (None: yours; other users' need an admin)."""
        return self._request("GET", "/train-jobs", params={"user_id": user_id})

    def get_train_jobs_of_app(self, app: str) -> list[dict[str, Any]]:
        """Your train jobs of an app, one per app version."""
        return self._request("GET", f"/train-jobs/{_segment(app)}")

    def get_train_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Your train job of ``app`` at ``app_version`` (-1: the latest), with its ``workers``."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}")

    def stop_train_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Stop the train job now (running trials end as TERMINATED). Returns the STOPPED job."""
        return self._request("POST", f"/train-jobs/{_segment(app)}/{_version(app_version)}/stop")

    def get_trials_of_train_job(self, app: str, app_version: int = -1) -> list[dict[str, Any]]:
        """Every trial of the train job, oldest first."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}/trials")

    def get_best_trials_of_train_job(self, app: str, app_version: int = -1, max_count: int = 2) -> list[dict[str, Any]]:
        """The best COMPLETED trials of the train job, best score first (at most ``max_count``)."""
        return self._request("GET", f"/train-jobs/{_segment(app)}/{_version(app_version)}/best-trials",
                             params={"max_count": int(max_count)})

    def wait_for_train_job(
        self,
        app: str,
        app_version: int = -1,
        timeout: Optional[float] = None,
        poll_rate_sec: float = 2,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Poll the train job until it is STOPPED or ERRORED and return it (with its workers).

        :param timeout: seconds to wait at most (None: no limit); then :class:`TimeoutError`
        :param poll_rate_sec: seconds between two polls
        :param progress: show a progress bar (tqdm, on stderr) of finished trials (COMPLETED
            and ERRORED) against the trial budget (MODEL_TRIAL_COUNT × models; an open counter
            when unlimited), with the best score so far
        """
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        bar = None
        try:
            while True:
                job = self.get_train_job(app, app_version)
                # Stay on the version found first, even if a newer one starts meanwhile.
                app_version = int(job.get("app_version") or app_version)
                finished = job.get("status") in FINAL_TRAIN_JOB_STATUSES
                if progress:
                    summary = trial_progress(job, self.get_trials_of_train_job(app, app_version))
                    if bar is None:
                        bar = _progress_bar(f"{app} v{app_version}", summary["total"])
                    _update_bar(bar, job, summary)
                if finished:
                    return job
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"train job {app} v{app_version} is still {job.get('status')} after {timeout} s"
                        )
                    time.sleep(min(float(poll_rate_sec), left))
                else:
                    time.sleep(float(poll_rate_sec))
        finally:
            if bar is not None:
                bar.close()

    # ------------------------------------------------------------------ trials

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        """One trial: its model, knobs, status, score, times and errors."""
        return self._request("GET", f"/trials/{_segment(trial_id)}")

    def get_trial_logs(self, trial_id: str) -> dict[str, Any]:
        """A trial's logs: ``{"trial_id", "status", "logs"}`` (``logs`` is the text)."""
        return self._request("GET", f"/trials/{_segment(trial_id)}/logs")

    def get_trial_parameters(self, trial_id: str) -> dict[str, Any]:
        """The trained parameters of a COMPLETED trial: a dict of numpy arrays, str, int, float,
        bool and bytes (what the model's ``dump_parameters()`` returned)."""
        from kilele.model import deserialize_params

        return deserialize_params(self._trial_parameters_bytes(trial_id))

    def download_trial_parameters(self, trial_id: str, out_params_file_path: str) -> dict[str, Any]:
        """Save a COMPLETED trial's parameters, as stored (a numpy ``.npz`` archive without
        pickles; read it with ``kilele.model.deserialize_params``), to ``out_params_file_path``."""
        data = self._trial_parameters_bytes(trial_id)
        with open(out_params_file_path, "wb") as f:
            f.write(data)
        return {"trial_id": trial_id, "format": "npz", "path": os.fspath(out_params_file_path),
                "size_bytes": len(data)}

    def load_trial_model(self, trial_id: str, ModelClass: type[ModelT]) -> ModelT:  # noqa: N803 (seed's name)
        """A trained instance of ``ModelClass`` (the trial's model class, imported locally, its
        dependencies installed): built with the trial's knobs, loaded with its parameters."""
        trial = self.get_trial(trial_id)
        model = ModelClass(**(trial.get("knobs") or {}))
        model.load_parameters(self.get_trial_parameters(trial_id))
        return model

    def _trial_parameters_bytes(self, trial_id: str) -> bytes:
        """Ask the API for the download URL, then GET it from storage without our credentials."""
        answer = self._request("GET", f"/trials/{_segment(trial_id)}/parameters")
        fmt = answer.get("format", "npz")
        if fmt != "npz":
            raise KileleError(f"trial {trial_id} parameters come as {fmt!r}; this SDK reads 'npz' only",
                              code="bad_response")
        url = answer["url"]
        try:
            response = requests.get(url, timeout=self.timeout)  # presigned: no auth headers
        except requests.exceptions.RequestException as e:
            raise ConnectionFailedError(
                f"the parameters of trial {trial_id} could not be downloaded from {url} ({type(e).__name__}: {e})"
            ) from e
        if response.status_code >= 300:
            code, reason = _s3_error(response, default="download_failed")
            raise DownloadFailedError(
                f"the storage service refused the download of trial {trial_id}'s parameters "
                f"(HTTP {response.status_code} {code}: {reason}); ask again for a fresh URL if it expired",
                status_code=response.status_code,
                code=code,
            )
        return response.content


    # ------------------------------------------------------------------ inference jobs (Rafiki)

    def create_inference_job(
        self, app: str, app_version: int = -1, budget: Optional[Mapping[StrOrEnum, Any]] = None
    ) -> dict[str, Any]:
        """Serve the best trial of each model of the STOPPED train job ``app`` v``app_version``
        (-1: the latest) as one ensemble. ``budget`` is ``{InferenceBudgetOption.GPU_COUNT: n}``.
        Returns ``{"id", "app", "app_version", "train_job_id", "predictor_url", "status", "error"}``."""
        body = {"app": app, "app_version": int(_version(app_version)), "budget": _budget(budget)}
        return self._request("POST", "/inference-jobs", json=body)

    def get_inference_jobs_by_user(self, user_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Inference jobs of a user (None: yours; other users' need an admin)."""
        return self._request("GET", "/inference-jobs", params={"user_id": user_id})

    def get_inference_jobs_of_app(self, app: str) -> list[dict[str, Any]]:
        """Your inference jobs of an app, oldest first."""
        return self._request("GET", f"/inference-jobs/{_segment(app)}")

    def get_running_inference_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """The running inference job of ``app`` at ``app_version`` (-1: the newest running one),
        with its ``workers`` (the trials of the ensemble)."""
        return self._request("GET", f"/inference-jobs/{_segment(app)}/{_version(app_version)}")

    def stop_inference_job(self, app: str, app_version: int = -1) -> dict[str, Any]:
        """Stop the running inference job (its endpoint is deleted). Returns the STOPPED job."""
        return self._request("POST", f"/inference-jobs/{_segment(app)}/{_version(app_version)}/stop")

    # ------------------------------------------------------------------ predictions

    def _predict(self, app: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/apps/{_segment(app)}/predict", json=body)

    def predict(self, app: str, query: Any = None, queries: Optional[list[Any]] = None) -> Any:
        """Rafiki style: the prediction of one ``query``, or the list of predictions of ``queries``
        (give exactly one), from the version the app serves."""
        if (query is None) == (queries is None):
            raise ValueError("give exactly one of query and queries")
        if queries is not None:
            return self._predict(app, {"queries": _list(queries, "queries")})["predictions"]
        return self._predict(app, {"query": _plain(query)})["prediction"]

    def query(self, app: str, input: Any = None,  # noqa: A002 (Clipper's name)
              input_batch: Optional[list[Any]] = None) -> Any:
        """Clipper style: ``{"query_id", "output", "default"[, "default_explanation"]}`` for one
        ``input``, a list of those for ``input_batch`` (give exactly one). ``default`` is true
        when the app's default output answered (the latency SLO passed or no model was up)."""
        if (input is None) == (input_batch is None):
            raise ValueError("give exactly one of input and input_batch")
        if input_batch is not None:
            return self._predict(app, {"input_batch": _list(input_batch, "input_batch")})["batch_predictions"]
        return self._predict(app, {"input": _plain(input)})

    def predict_instances(self, app: str, instances: list[Any]) -> list[Any]:
        """Cluster Serving style: one prediction per instance (an instance may be a one-key
        object such as ``{"t": [1.0, 2.0]}``)."""
        return self._predict(app, {"instances": _list(instances, "instances")})["predictions"]

    def get_app_metrics(self, app: str, minutes: int = 60) -> list[dict[str, Any]]:
        """Requests, queries, errors, defaults, batch sizes and latency percentiles of the app
        over the last ``minutes`` (Cluster Serving's metrics shape)."""
        return self._request("GET", f"/apps/{_segment(app)}/metrics", params={"minutes": int(minutes)})

    # ------------------------------------------------------------------ applications (Clipper)

    def register_application(
        self,
        name: str,
        input_type: StrOrEnum,
        default_output: Any,
        slo_micros: int,
        top_n: Optional[int] = None,
    ) -> dict[str, Any]:
        """Register an application: its ``input_type`` (ints, floats, doubles, strings, bytes),
        the ``default_output`` answered when the model misses the ``slo_micros`` latency SLO,
        and optionally a top-N filter of class probabilities. Returns the application."""
        body: dict[str, Any] = {"name": name, "input_type": _input_type(input_type),
                                "default_output": default_output, "slo_micros": int(slo_micros)}
        if top_n is not None:
            body["top_n"] = int(top_n)
        return self._request("POST", "/apps", json=body)

    def get_application(self, name: str) -> dict[str, Any]:
        """An application, with the version it serves now (``serving_version``)."""
        return self._request("GET", f"/apps/{_segment(name)}")

    def get_applications(self) -> list[dict[str, Any]]:
        """Your applications."""
        return self._request("GET", "/apps")

    def update_application(
        self,
        name: str,
        input_type: Optional[StrOrEnum] = None,
        default_output: Any = None,
        slo_micros: Optional[int] = None,
        top_n: Optional[int] = None,
    ) -> dict[str, Any]:
        """Change an application's settings; the ones left None stay as they are."""
        body: dict[str, Any] = {}
        if input_type is not None:
            body["input_type"] = _input_type(input_type)
        if default_output is not None:
            body["default_output"] = default_output
        if slo_micros is not None:
            body["slo_micros"] = int(slo_micros)
        if top_n is not None:
            body["top_n"] = int(top_n)
        if not body:
            raise ValueError("nothing to update: give input_type, default_output, slo_micros or top_n")
        return self._request("PATCH", f"/apps/{_segment(name)}", json=body)

    def delete_application(self, name: str) -> dict[str, Any]:
        """Unregister an application (its inference jobs keep running). Returns it."""
        return self._request("DELETE", f"/apps/{_segment(name)}")

    def set_model_version(self, name: str, version: int) -> dict[str, Any]:
        """Serve ``version`` of the app (it needs a running inference job); the version served
        until now is kept for :meth:`rollback_application`. Returns the application."""
        return self._request("POST", f"/apps/{_segment(name)}/version", json={"version": _fixed_version(version)})

    def rollback_application(self, name: str) -> dict[str, Any]:
        """Serve the version served before the last switch again. Returns the application."""
        return self._request("POST", f"/apps/{_segment(name)}/rollback")

    def link_model_to_app(self, app_name: str, version: int = -1) -> dict[str, Any]:
        """Clipper's call: make the app serve ``version`` (-1: the version of the newest running
        inference job of the app). Returns the application."""
        if int(_version(version)) == -1:
            version = int(self.get_running_inference_job(app_name, -1)["app_version"])
        return self.set_model_version(app_name, version)

    def get_query_addr(self) -> str:
        """The API root that answers ``POST /apps/{app}/predict``."""
        return self.base_url

    # ------------------------------------------------------------------ bundles

    def export_bundle(
        self,
        app: str,
        app_version: int = -1,
        trial_id: Optional[str] = None,
        out_path: Optional[str] = None,
    ) -> dict[str, Any]:
        """Export a self-contained bundle (model files, parameters, ONNX graphs, requirements,
        manifest, README) of one COMPLETED trial (``trial_id``) or of the ensemble an inference
        job of ``app`` v``app_version`` would serve, and save the tar.gz to ``out_path``
        (default ``./<app>-v<version>.tar.gz``). Serve it with ``kilele bundle serve PATH``.
        Returns ``{"path", "manifest"}``."""
        body: dict[str, Any] = {"app": app, "app_version": int(_version(app_version))}
        if trial_id is not None:
            body["trial_id"] = trial_id
        answer = self._request("POST", "/bundles", json=body)
        manifest = answer.get("manifest") or {}
        if out_path is None:
            out_path = f"{manifest.get('app') or app}-v{manifest.get('app_version', app_version)}.tar.gz"
        path = os.fspath(out_path)
        self._download_to(answer["url"], path, f"the bundle of {app}")
        return {"path": path, "manifest": manifest}

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
                code, reason = _s3_error(response, default="download_failed")
                raise DownloadFailedError(
                    f"the storage service refused the download of {what} (HTTP {response.status_code} {code}: "
                    f"{reason}); ask again for a fresh URL if it expired",
                    status_code=response.status_code,
                    code=code,
                )
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


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as plain lists and numbers (anything else as it is)."""
    return value.tolist() if hasattr(value, "tolist") else value


def _list(value: Any, name: str) -> list[Any]:
    value = _plain(value)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    return [_plain(item) for item in value]


def _input_type(value: StrOrEnum) -> str:
    """``InputType.FLOATS`` or ``"Floats"`` -> ``"floats"`` (Clipper's input types are lower case)."""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).strip().lower()


def _fixed_version(version: Union[int, str]) -> int:
    """An app version that names one version: a whole number >= 1."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(version, bool):
        raise ValueError(f"version must be a whole number >= 1; got {version!r}")
    return number


def _progress_bar(description: str, total: Optional[int]) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="trial", dynamic_ncols=True)


def _update_bar(bar: Any, job: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    total = summary["total"]
    if total is not None and summary["done"] > total:  # the trial count is a soft target
        total = summary["done"]
    if bar.total != total:
        bar.total = total
    if summary["done"] != bar.n:
        bar.update(summary["done"] - bar.n)
    best = summary["best_score"]
    bar.set_postfix(status=job.get("status"), running=summary["running"],
                    best="-" if best is None else f"{best:.4g}", refresh=False)
    bar.refresh()


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


__all__ = ["Client"]

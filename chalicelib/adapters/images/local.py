"""The local image builder: a virtual environment layered on the worker runtime.

Why a venv with a ``.pth`` rather than ``python -m venv --system-site-packages``: the worker
runtime locally is the project's own virtual environment, and ``--system-site-packages`` over a
venv's interpreter exposes the *base* interpreter's site-packages, not the project venv's. A
``.pth`` file adding the runtime's site-packages as site directories (``site.addsitedir``) puts
them on ``sys.path`` after the image's own site-packages, so what the image installs wins over
the runtime's copy (a pinned older six or scikit-learn really is the one imported; see the tests)
and everything else comes from the runtime. A site directory, not a bare path line: the
runtime's own ``.pth`` files run too, so what it installed in editable mode (the platform's
packages locally: ``kilele_worker``, ``kilele_inference``) imports in the image as well. pip
itself comes from the runtime too (``--without-pip``: the venv is made in ~0.2 s).

Layout under ``root`` (the local stack's data dir): ``builds/<id>.json`` and ``.log`` (each build's
state and pip output), ``envs/<key>-<id>/`` (a venv), ``images/<key>.json`` (the published image:
its venv and ``pip freeze``), ``locks/<key>.lock``. A venv is built in place under ``envs/`` and
published by an atomic ``os.replace`` of its ``images/<key>.json``; readers trust only published
images, a failed build's venv is removed, and a crashed build's leftovers are removed by the next
build of the same key (under its lock). The venv is not renamed because console scripts that pip
writes carry its absolute path.
"""
from __future__ import annotations

import fcntl
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sysconfig
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from aws_lambda_powertools import Logger
from packaging.utils import canonicalize_name

from chalicelib.entities.images import BuildState, ImageBase, ImageBuild, PipRequirement, content_key
from chalicelib.errors import NotFound

logger = Logger(service="kilele-images", child=True)

_BUILD_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LOG_CHARS = 64 * 1024
IMAGE_REF_SCHEME = "venv://"
# The layout of a published image; images published with another one are built again (layout 1
# listed the runtime as bare paths, so the runtime's editable installs did not import in it).
LAYOUT = 2
# Builds running in this process (any builder instance): a build this process owns that is not
# here was cut short (the process's builder was closed without waiting).
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def runtime_site_packages() -> list[str]:
    """This interpreter's site-packages (purelib and platlib): the runtime trials run in locally."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def base_pth(paths: list[str]) -> str:
    """The ``.pth`` file layering an image on ``paths``: each added as a site directory (its own
    ``.pth`` files run), after the image's site-packages."""
    return "".join(f"import site; site.addsitedir({path!r})\n" for path in paths)


def installed_versions(paths: list[str]) -> dict[str, str]:
    """{canonical name: version} of the distributions under ``paths`` (the first of a name wins,
    as imports do)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(paths)):
        name = canonicalize_name((dist.metadata["Name"] or "").strip())
        if name and name not in found:
            found[name] = dist.version
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


class LocalImageBuilder:
    """Builds in background threads of this process (the local stack), never in the request.

    ``python`` is the base interpreter of the runtime (the one its venv was made from);
    ``base_paths`` the site-packages each base layers on (both bases are this runtime locally:
    trials and the inference server run with the same interpreter). ``environment`` is what pip
    runs with (the machine's pip configuration names the package index)."""

    def __init__(self, root: Path, python: str, base_paths: Optional[dict[ImageBase, list[str]]] = None,
                 environment: Optional[dict[str, str]] = None, timeout_seconds: float = 1800.0,
                 max_parallel: int = 2, wheels_only: bool = True):
        self.root = Path(root)
        for sub in ("builds", "envs", "images", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._python = python
        runtime = runtime_site_packages()
        self._base_paths = base_paths or {base: runtime for base in ImageBase}
        self._environment = environment
        self._timeout = timeout_seconds
        self._wheels_only = wheels_only
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="image-build")
        self._futures: dict[str, Any] = {}

    # -- the port ---------------------------------------------------------------------------

    def start(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        build_id = uuid.uuid4().hex
        key = content_key(base, requirements)
        with _RUNNING_LOCK:  # before its state exists: a poll never finds it unowned
            _RUNNING.add(build_id)
        self._save(build_id, BuildState.PENDING, key=key, base=base.value,
                   requirements=[r.pip_argument() for r in requirements])
        self._futures[build_id] = self._pool.submit(self._run, build_id, key, base, requirements)
        return build_id

    def poll(self, build_id: str) -> ImageBuild:
        state = self._load(build_id)
        status = BuildState(state["state"])
        if not status.final and not self._alive(build_id, state):
            status, state["reason"] = BuildState.FAILED, "the local stack stopped while the image was being built"
            self._save(build_id, status, **{k: v for k, v in state.items() if k != "state"})
        return ImageBuild(build_id=build_id, state=status, log=self._log_text(build_id),
                          reason=state.get("reason", ""), pip_freeze=tuple(state.get("pip_freeze", ())),
                          image_ref=state.get("image_ref", ""))

    def satisfied_by_base(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> bool:
        """Whether the runtime ``base`` layers on already has every requirement, at a version its
        specifier allows (an image of them would add nothing)."""
        installed = installed_versions(self._base_paths[base])
        return all(r.name in installed and r.allows(installed[r.name]) for r in requirements)

    def record_event(self, event: dict[str, Any]) -> Optional[str]:
        """No events locally: a local build records its own state as it ends."""
        return None

    def close(self, wait: bool = False) -> None:
        """Stop taking builds; ``wait``: let those started finish (else queued ones are dropped;
        a pip step already running finishes in its thread)."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with _RUNNING_LOCK:  # builds that never began: a poll now says the stack stopped
            _RUNNING.difference_update(i for i, f in self._futures.items() if f.cancelled())

    # -- one build --------------------------------------------------------------------------

    def _run(self, build_id: str, key: str, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> None:
        try:
            self._build(build_id, key, base, requirements)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the build says so and why
            logger.exception("image build failed", extra={"build_id": build_id})
            self._append_log(build_id, f"\nbuild error: {type(e).__name__}: {e}\n")
            self._finish(build_id, BuildState.FAILED, reason=f"the build broke: {type(e).__name__}: {e}")
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(build_id)

    def _build(self, build_id: str, key: str, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> None:
        state = self._load(build_id)
        with self._key_lock(key):  # concurrent builds of one set: the first builds, the others reuse
            published = self._published(key)
            if published is not None:
                self._append_log(build_id, f"reused image {key}, built before\n")
                self._finish(build_id, BuildState.READY, pip_freeze=published["pip_freeze"],
                             image_ref=published["image_ref"])
                return
            self._save(build_id, BuildState.BUILDING, **{k: v for k, v in state.items() if k != "state"})
            self._remove_leftovers(key)
            env = self.root / "envs" / f"{key}-{build_id}"
            try:
                freeze = self._make_env(build_id, env, base, requirements)
            except _BuildFailed as e:
                shutil.rmtree(env, ignore_errors=True)
                self._finish(build_id, BuildState.FAILED, reason=str(e))
                return
            except BaseException:
                shutil.rmtree(env, ignore_errors=True)
                raise
            image_ref = f"{IMAGE_REF_SCHEME}{env}"
            _write_json(self.root / "images" / f"{key}.json",
                        {"image_ref": image_ref, "env": str(env), "pip_freeze": freeze, "base": base.value,
                         "layout": LAYOUT})
            self._finish(build_id, BuildState.READY, pip_freeze=freeze, image_ref=image_ref)

    def _make_env(self, build_id: str, env: Path, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> list[str]:
        self._step(build_id, [self._python, "-m", "venv", "--without-pip", str(env)], "making the virtual environment")
        site = next((env / "lib").glob("python*/site-packages"), None)
        if site is None:
            raise _BuildFailed(f"the virtual environment at {env} has no site-packages")
        # After the image's own site-packages on sys.path: what the image installs wins.
        (site / "_kilele_base.pth").write_text(base_pth(self._base_paths[base]))
        python = str(env / "bin" / "python")
        if requirements:
            # Wheels only: installing a wheel runs none of its code, building an sdist runs its
            # setup code here, unconfined, as the stack's user (the sandbox holds model code only).
            binary = ["--only-binary=:all:"] if self._wheels_only else []
            self._step(build_id, [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                                  *binary, *(r.pip_argument() for r in requirements)], "pip install")
        # What is installed, read from the packages' metadata by an interpreter without site
        # (-I -S): a .pth file an installed package brought is not run here, as `pip freeze` would.
        paths = [str(site), *self._base_paths[base]]
        out = self._step(build_id, [python, "-I", "-S", "-c", _FREEZE, json.dumps(paths)], "reading what is installed",
                         log_output=False)
        freeze = [line for line in out.splitlines() if line.strip()]
        self._append_log(build_id, f"installed: {len(freeze)} packages (what pip freeze lists)\n")
        return freeze

    def _step(self, build_id: str, argv: list[str], what: str, log_output: bool = True) -> str:
        shown = what if "-c" in argv else " ".join(argv[2:] if argv[1:2] == ["-m"] else argv)
        self._append_log(build_id, f"$ {shown}\n")
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=self._environment, timeout=self._timeout)
        except subprocess.TimeoutExpired as e:
            self._append_log(build_id, _text(e.output))
            raise _BuildFailed(f"{what} took longer than {self._timeout:g} s") from e
        if log_output:
            self._append_log(build_id, done.stdout)
        if done.returncode != 0:
            if not log_output:
                self._append_log(build_id, done.stdout)
            raise _BuildFailed(f"{what} failed (exit status {done.returncode}); the build log has its output")
        return done.stdout

    # -- files ------------------------------------------------------------------------------

    def _published(self, key: str) -> Optional[dict[str, Any]]:
        path = self.root / "images" / f"{key}.json"
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return value if value.get("layout") == LAYOUT and Path(value["env"]).is_dir() else None

    def _remove_leftovers(self, key: str) -> None:
        for leftover in (self.root / "envs").glob(f"{key}-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        # A lock file, so builders in other processes sharing this root build a set once too.
        with open(self.root / "locks" / f"{key}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _state_path(self, build_id: str) -> Path:
        if not _BUILD_ID.match(build_id or ""):
            raise NotFound(f"no image build {build_id!r}")
        return self.root / "builds" / f"{build_id}.json"

    def _load(self, build_id: str) -> dict[str, Any]:
        try:
            return json.loads(self._state_path(build_id).read_text())
        except FileNotFoundError:
            raise NotFound(f"no image build {build_id!r}") from None

    def _save(self, build_id: str, status: BuildState, **fields: Any) -> None:
        fields.update(state=status.value, pid=os.getpid())
        _write_json(self._state_path(build_id), fields)

    def _finish(self, build_id: str, status: BuildState, **fields: Any) -> None:
        state = self._load(build_id)
        state.update(fields)
        state.pop("state", None)
        self._save(build_id, status, **state)

    def _alive(self, build_id: str, state: dict[str, Any]) -> bool:
        if state.get("pid") == os.getpid():
            with _RUNNING_LOCK:
                return build_id in _RUNNING
        return _pid_alive(int(state.get("pid", 0)))

    def _append_log(self, build_id: str, text: str) -> None:
        with open(self.root / "builds" / f"{build_id}.log", "a") as log:
            log.write(text)

    def _log_text(self, build_id: str) -> str:
        path = self.root / "builds" / f"{build_id}.log"
        try:
            size = path.stat().st_size
            with open(path, "rb") as log:
                log.seek(max(0, size - MAX_LOG_CHARS))
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


# `pip freeze`'s answer (name==version, the first of a name on the path wins, as imports do),
# from importlib.metadata over the paths given, in an interpreter that runs no .pth file.
_FREEZE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from importlib.metadata import distributions
seen = {}
for dist in distributions():
    name = (dist.metadata["Name"] or "").strip()
    key = name.lower().replace("_", "-").replace(".", "-")
    if name and key not in seen and key not in ("pip", "setuptools", "wheel", "distribute"):
        seen[key] = f"{name}=={dist.version}"
print("\\n".join(sorted(seen.values(), key=str.lower)))
"""


class _BuildFailed(Exception):
    """A step of the build failed: the image is FAILED with this reason."""


def _text(output: Any) -> str:
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else str(output)


__all__ = ["LocalImageBuilder", "runtime_site_packages", "installed_versions", "IMAGE_REF_SCHEME"]

"""The platform images' Dockerfiles (issue 13): every base image pinned by digest, a non-root user,
and every Python distribution pinned (a lock installed --no-deps, checked by ``pip check``; the
worker's boto3 the Lambda package's). Docker cannot run here: these read the files; building
them is CodeBuild's (infra/README.md says what only a deploy shows)."""
from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT / "infra"), str(REPO_ROOT / "containers")]

from kilele_infra.image_contexts import PLATFORM_IMAGES, content_tag, context_files  # noqa: E402

DOCKERFILES = sorted(p for p in (REPO_ROOT / "containers").glob("*/Dockerfile*") if not p.name.endswith(".dockerignore"))
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PIN = re.compile(r"^[a-z0-9][a-z0-9._-]*==[0-9][^\s=;,]*$")
# The worker's supervisor starts as root on purpose and gives each model process a user of its own
# (kilele.sandbox); its images must say so and create the unprivileged user the model runs as.
ROOT_BY_DESIGN = {"containers/worker/Dockerfile", "containers/worker/Dockerfile.gpu"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, found = "", []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        joined += line.rstrip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        if joined.strip():
            keyword, _, rest = joined.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
        joined = ""
    return found


def _args(path: Path) -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in _instructions(path) if keyword == "ARG" and "=" in rest)


def test_there_are_four_dockerfiles_and_each_is_a_platform_image() -> None:
    assert {p.relative_to(REPO_ROOT).as_posix() for p in DOCKERFILES} == {i.dockerfile for i in PLATFORM_IMAGES}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_base_image_is_pinned_by_digest(path: Path) -> None:
    args = _args(path)
    bases = [rest.split()[0] for keyword, rest in _instructions(path) if keyword == "FROM"]
    assert bases
    for base in bases:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert DIGEST.search(resolved), f"{path.name}: FROM {resolved} is not pinned by digest"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_the_image_runs_as_a_non_root_user(path: Path) -> None:
    relative = path.relative_to(REPO_ROOT).as_posix()
    users = [rest for keyword, rest in _instructions(path) if keyword == "USER"]
    creates_model_user = any(keyword == "RUN" and "useradd" in rest and "kilele-model" in rest
                             for keyword, rest in _instructions(path))
    assert creates_model_user, f"{relative}: no unprivileged kilele-model user"
    if relative in ROOT_BY_DESIGN:
        assert not users and "starts as root on purpose" in path.read_text()
    else:
        assert users and users[-1] not in ("root", "0", "0:0"), f"{relative}: runs as {users[-1:] or 'root'}"


def _pip_installs(path: Path) -> list[list[str]]:
    commands = []
    for keyword, rest in _instructions(path):
        if keyword == "RUN":
            tokens, command = shlex.split(rest), []
            for token in [*tokens, "&&"]:  # commands joined by &&, each one's words
                if token != "&&":
                    command.append(token)
                    continue
                words, command = command, []
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words = words[1:]  # VAR=value prefixes
                if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
                    commands.append(words)
    return commands


def _lock_of(path: Path) -> Path:
    [source] = [rest.split()[0] for keyword, rest in _instructions(path)
                if keyword == "COPY" and rest.split()[0].endswith(".lock")]
    return REPO_ROOT / source


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_python_distribution_is_pinned(path: Path) -> None:
    installs = _pip_installs(path)
    assert installs
    for words in installs:
        assert "--no-deps" in words, f"{path.name}: {' '.join(words)} may bring in unpinned dependencies"
        operands = [w for w in words[2:] if not w.startswith("-")]
        assert all(w == "/opt/kilele/requirements.lock" or w.startswith("/opt/kilele/") for w in operands), operands
    # The lock: every line a pin; the image's own packages are built with it as constraints.
    pins = [line for line in _lock_of(path).read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all(PIN.match(line) for line in pins), [line for line in pins if not PIN.match(line)]
    assert "PIP_CONSTRAINT=/opt/kilele/requirements.lock" in path.read_text()
    assert any(keyword == "RUN" and "pip check" in rest for keyword, rest in _instructions(path))


def _pins(path: Path) -> dict[str, str]:
    return dict(line.split("==", 1) for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))


def test_the_images_boto3_is_the_lambda_packages() -> None:
    lambda_boto3 = _pins(REPO_ROOT / "requirements.txt")["boto3"]
    for path in DOCKERFILES:
        assert _pins(_lock_of(path))["boto3"] == lambda_boto3, path


def test_each_lock_holds_what_its_image_asks_for() -> None:
    from packaging.requirements import Requirement

    import lock_images

    for name, lock in lock_images.LOCKS.items():
        pins = _pins(lock)
        for wanted in lock_images.top_level(name):
            requirement = Requirement(wanted)
            assert requirement.name.lower() in pins, (lock.name, wanted)
            assert requirement.specifier.contains(pins[requirement.name.lower()], prereleases=True), (lock.name, wanted)


def test_a_build_context_is_what_its_dockerignore_lets_through() -> None:
    worker = context_files(PLATFORM_IMAGES[0])
    assert "containers/worker/requirements.lock" in worker and "sdk/kilele/constants.py" in worker
    assert any(f.startswith("stress/kilele_stress/") for f in worker)
    assert not [f for f in worker if "__pycache__" in f or ".egg-info" in f or "/build/" in f
                or f.startswith(("tests/", "containers/inference/"))]
    # Of the platform's code, the dataset format check and what it imports only (see below).
    assert {f for f in worker if f.startswith("chalicelib/") and not f.startswith("chalicelib/entities/")} == {
        "chalicelib/__init__.py", "chalicelib/dataset_formats.py", "chalicelib/errors.py", "chalicelib/image_archives.py"}
    inference = context_files(PLATFORM_IMAGES[2])
    assert not [f for f in inference if f.startswith(("stress/", "containers/worker/", "chalicelib/"))]


@pytest.mark.parametrize("image", [i for i in PLATFORM_IMAGES if i.repository == "worker"], ids=lambda i: i.name)
def test_the_worker_images_hold_all_the_dataset_check_imports(image, tmp_path: Path) -> None:
    """A large dataset's check job (kilele_worker.dataset_check, issue 13 finding 3) imports the
    platform's format check in the worker image: the chalicelib files its context holds must be
    all that import needs (a new import in dataset_formats.py fails here, not in a Batch job)."""
    import subprocess

    for relative in context_files(image):
        if relative.startswith(("chalicelib/", "containers/worker/kilele_worker/")):
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, tmp_path / relative)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/containers/worker'];"
        "import chalicelib.dataset_formats, kilele_worker.dataset_check;"
        "outside = [n for n, m in sys.modules.items() if n.startswith('chalicelib')"
        " and not (getattr(m, '__file__', '') or '').startswith(sys.argv[1])];"
        "assert not outside, outside"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    dockerfile = (REPO_ROOT / image.dockerfile).read_text()
    assert "COPY chalicelib /opt/kilele/platform/chalicelib" in dockerfile


def test_a_content_tag_changes_with_any_byte_of_the_context(tmp_path: Path) -> None:
    # A copy of the inference image's sources under tmp_path, hashed as a repository of its own.
    for part in ("containers/inference", "sdk"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    image = PLATFORM_IMAGES[2]
    before = content_tag(image, tmp_path)
    assert content_tag(image, tmp_path) == before == content_tag(image)  # the copy is the context
    constants = tmp_path / "sdk" / "kilele" / "constants.py"
    constants.write_text(constants.read_text() + "\n")
    changed = content_tag(image, tmp_path)
    assert changed != before
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "x.py").write_text("outside the context")
    (tmp_path / "sdk" / "kilele" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "sdk" / "kilele" / "__pycache__" / "x.pyc").write_bytes(b"ignored by the dockerignore")
    assert content_tag(image, tmp_path) == changed

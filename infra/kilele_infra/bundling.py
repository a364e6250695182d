"""The Lambdas' code asset (the repo's sources plus requirements.txt) and the advisor's layer
(requirements-advisor.txt: optuna, numpy, ..., for the propose Lambda only), bundled locally.

There is no Docker on the build machines, so both are bundled by :class:`PipLocalBundling`
with the host's pip, asking for Linux x86_64 wheels for the Lambda runtime's CPython whatever the
host is; then everything is compiled to bytecode by the host's Python, which must therefore be
the runtime's version (a cold start imports .pyc files instead of compiling: 2.7 s -> 0.8 s).
"""
from __future__ import annotations

import compileall
import hashlib
import py_compile
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

# What the function imports at run time; everything else in the repo stays out of the zip.
LAMBDA_SOURCES = ("app.py", "chalicelib")

# Only these paths are fingerprinted for the asset hash (and would be mounted for Docker).
ASSET_EXCLUDES = [
    ".venv", ".git", "tests", "infra", "bench", "examples", "sdk", "containers",
    "**/__pycache__", "cdk.out", "*.egg-info", ".pytest_cache",
]

# Not python3.11: it runs on Amazon Linux 2, whose end of support made Lambda deprecate it on
# 2026-06-30 and block creating functions with it from 2026-07-31 (cfn-lint E2533).
RUNTIME = lambda_.Runtime.PYTHON_3_12

# python3.12 runs on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels load too (pillow 13
# ships no manylinux2014 wheel). pip does not widen one --platform to older tags: list both.
PIP_PLATFORM_ARGS = [
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
    "--implementation", "cp", "--python-version", RUNTIME.name.removeprefix("python"),
    "--only-binary=:all:",
]


ADVISOR_REQUIREMENTS = "requirements-advisor.txt"
# A layer's Python packages go under python/ (on the Lambda's sys.path as /opt/python).
LAYER_PYTHON_DIR = "python"


def runtime_version() -> tuple[int, int]:
    """The Lambda runtime's (major, minor), e.g. (3, 12)."""
    major, minor = RUNTIME.name.removeprefix("python").split(".")
    return int(major), int(minor)


def compile_bytecode(out: Path) -> None:
    """Compile every .py under ``out`` for the Lambda's Python (unchecked hashes: the zip's file
    times do not matter). Refused on another Python: its .pyc files would be ignored."""
    if sys.version_info[:2] != runtime_version():
        raise RuntimeError(
            f"bundling compiles bytecode for the Lambda runtime {RUNTIME.name}; this is Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: run cdk from a {RUNTIME.name} venv "
            "(scripts/_venv.sh makes one)")
    # One process: a process pool per CPU died on a loaded build machine (BrokenProcessPool).
    if not compileall.compile_dir(str(out), quiet=1, workers=1,
                                  invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
        raise RuntimeError(f"some files under {out} do not compile")


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Bundles on the host. ``part`` "api": pip-installs requirements.txt without the advisor's
    requirements, then copies the sources; "advisor": pip-installs requirements-advisor.txt under
    python/ (a layer). Both are compiled to bytecode."""

    def __init__(self, source_dir: Path, part: str = "api") -> None:
        self.source_dir = source_dir
        self.part = part

    def try_bundle(self, output_dir: str, *_options, **_kwargs) -> bool:
        out = Path(output_dir)
        if self.part == "advisor":
            self._pip_install(self.source_dir / ADVISOR_REQUIREMENTS, out / LAYER_PYTHON_DIR)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                self._pip_install(self._without_advisor(Path(tmp)), out)
            for name in LAMBDA_SOURCES:
                self._copy(self.source_dir / name, out / name)
            self._vendor_chalice_runtime(out)
        compile_bytecode(out)
        # Returning True tells CDK not to fall back to Docker.
        return True

    def _without_advisor(self, tmp: Path) -> Path:
        """requirements.txt without its ``-r requirements-advisor.txt`` line (the layer has those)."""
        lines = (self.source_dir / "requirements.txt").read_text().splitlines()
        kept = [line for line in lines if line.split("#")[0].split() != ["-r", ADVISOR_REQUIREMENTS]]
        path = tmp / "requirements.txt"
        path.write_text("\n".join(kept) + "\n")
        return path

    @staticmethod
    def _pip_install(requirements: Path, out: Path) -> None:
        # --no-warn-conflicts: pip's conflict check looks at the host's venv, not at the zip.
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-warn-conflicts",
            "-r", str(requirements), "-t", str(out), *PIP_PLATFORM_ARGS,
        ]
        subprocess.run(cmd, check=True)

    @staticmethod
    def _copy(src: Path, dst: Path) -> None:
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)

    @staticmethod
    def _vendor_chalice_runtime(out: Path) -> None:
        # `chalice deploy` ships only chalice/__init__.py and chalice/app.py (the pure-Python
        # runtime) and requirements.txt deliberately leaves chalice out; do the same here.
        try:
            import chalice
        except ImportError as exc:  # pragma: no cover - depends on the deploying venv
            raise RuntimeError(
                "bundling the API needs chalice installed (pip install -r requirements-local.txt)"
            ) from exc
        runtime = Path(chalice.__file__).parent
        (out / "chalice").mkdir(exist_ok=True)
        for name in ("__init__.py", "app.py"):
            shutil.copy2(runtime / name, out / "chalice" / name)


def advisor_layer_code(source_dir: Path) -> lambda_.Code:
    """The advisor's layer (requirements-advisor.txt under python/), hashed by that file and the
    runtime: it is rebuilt only when they change, not with every source change."""
    digest = hashlib.sha256(((source_dir / ADVISOR_REQUIREMENTS).read_bytes() + RUNTIME.name.encode())).hexdigest()
    return lambda_.Code.from_asset(
        str(source_dir),
        exclude=ASSET_EXCLUDES,
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=digest,
        bundling=BundlingOptions(
            local=PipLocalBundling(source_dir, part="advisor"),
            image=RUNTIME.bundling_image,
            command=["sh", "-c", "echo 'kilele: only local bundling is supported' >&2; exit 1"],
        ),
    )


def api_code(source_dir: Path) -> lambda_.Code:
    """The API function's code asset, bundled from ``source_dir`` (the repo root)."""
    return lambda_.Code.from_asset(
        str(source_dir),
        exclude=ASSET_EXCLUDES,
        bundling=BundlingOptions(
            local=PipLocalBundling(source_dir),
            # Never reached (local bundling always runs or raises), but BundlingOptions needs an
            # image; fail loudly rather than build a zip without the Chalice runtime.
            image=RUNTIME.bundling_image,
            command=["sh", "-c", "echo 'kilele: only local bundling is supported' >&2; exit 1"],
        ),
    )

"""The API Lambda's code asset: the repo's sources plus requirements.txt, bundled locally.

There is no Docker on the build machines, so the asset is bundled by :class:`PipLocalBundling`
with the host's pip, asking for Linux x86_64 wheels for the Lambda runtime's CPython whatever the
host is.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, ILocalBundling
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


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Bundles the API code on the host: pip-installs requirements.txt, then copies the sources."""

    def __init__(self, source_dir: Path) -> None:
        self.source_dir = source_dir

    def try_bundle(self, output_dir: str, *_options, **_kwargs) -> bool:
        out = Path(output_dir)
        self._pip_install(out)
        for name in LAMBDA_SOURCES:
            self._copy(self.source_dir / name, out / name)
        self._vendor_chalice_runtime(out)
        # Returning True tells CDK not to fall back to Docker.
        return True

    def _pip_install(self, out: Path) -> None:
        # --no-warn-conflicts: pip's conflict check looks at the host's venv, not at the zip.
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-warn-conflicts",
            "-r", str(self.source_dir / "requirements.txt"), "-t", str(out), *PIP_PLATFORM_ARGS,
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

"""Write each platform image's requirements lock (issue 13): every Python distribution the image
installs from the package index, ``name==version``, resolved by pip for the images' platform
(CPython 3.11, manylinux x86_64), whatever the host is.

    .venv/bin/python containers/lock_images.py          # rewrite the four locks
    .venv/bin/python containers/lock_images.py --check  # exit 1 if a lock is not what pip resolves now

The Dockerfiles install a lock with ``pip install --no-deps -r``, the image's own packages with
``--no-deps`` too (their build backend, setuptools, from the lock through ``PIP_CONSTRAINT``),
and then run ``pip check``: nothing unpinned can come in, and a lock missing a
dependency fails the build instead of being filled in silently. The worker's boto3 is the Lambda
package's (requirements.txt), so the trial worker and the API speak the same botocore.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"
PLATFORM_ARGS = ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                 "--platform", "manylinux_2_28_x86_64", "--implementation", "cp",
                 "--python-version", PYTHON_VERSION, "--only-binary=:all:"]


def lambda_pin(name: str) -> str:
    """``name==version`` as requirements.txt (the Lambda package) pins it."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if re.match(rf"^{re.escape(name)}==", line.strip()):
            return line.strip()
    raise SystemExit(f"requirements.txt pins no {name}")


def _dependencies(pyproject: Path) -> list[str]:
    """The ``[project] dependencies`` of a pyproject.toml, without the platform's own packages."""
    import tomllib

    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if not d.startswith(("kilele>", "kilele-stress>", "onnxruntime>"))]


# The build backend of the images' own packages (their pyproject's build-system): pinned too, and
# given to pip's isolated builds through PIP_CONSTRAINT in the Dockerfiles.
SETUPTOOLS = "setuptools==84.0.0"


def top_level(lock: str) -> list[str]:
    """What each image asks for; pip resolves the rest."""
    return [SETUPTOOLS, *_runtime(lock)]


def _runtime(lock: str) -> list[str]:
    sdk = _dependencies(ROOT / "sdk" / "pyproject.toml")
    onnxruntime = "onnxruntime-gpu==1.31.1" if lock.endswith("-gpu") else "onnxruntime==1.31.1"
    if lock.startswith("worker"):
        stress = _dependencies(ROOT / "stress" / "pyproject.toml")
        return ["numpy==2.4.6", "scikit-learn==1.9.1", "onnx==1.23.2", onnxruntime, "skl2onnx==1.20.0",
                lambda_pin("boto3"), *sdk, *stress]
    inference = _dependencies(ROOT / "containers" / "inference" / "pyproject.toml")
    return ["numpy==2.4.6", "scikit-learn==1.9.1", onnxruntime, "uvicorn==0.54.0", "uvloop==0.23.0",
            "httptools==0.9.0", "orjson==3.13.0", lambda_pin("boto3"), *sdk, *inference]


LOCKS = {
    "worker": ROOT / "containers" / "worker" / "requirements.lock",
    "worker-gpu": ROOT / "containers" / "worker" / "requirements-gpu.lock",
    "inference": ROOT / "containers" / "inference" / "requirements.lock",
    "inference-gpu": ROOT / "containers" / "inference" / "requirements-gpu.lock",
}


def resolve(requirements: list[str]) -> list[str]:
    """pip's resolution of ``requirements`` for the images' platform, as sorted pins."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "--target", str(Path(tmp) / "t"), *PLATFORM_ARGS, *requirements],
                       check=True)
        installed = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name'].lower().replace('_', '-')}=={i['metadata']['version']}" for i in installed)


def render(lock: str, pins: list[str]) -> str:
    return (f"# The {lock} image's Python distributions, all of them (containers/lock_images.py writes this;\n"
            f"# CPython {PYTHON_VERSION}, manylinux x86_64). Installed with pip install --no-deps -r.\n"
            + "".join(f"{pin}\n" for pin in pins))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for lock, path in LOCKS.items():
        text = render(lock, resolve(top_level(lock)))
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("not what pip resolves now: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

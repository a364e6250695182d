# Sourced by scripts/run-local and scripts/test: make .venv at the repo root and install $1 into it.
# The venv runs the Lambda runtime's Python (infra/kilele_infra/bundling.py RUNTIME, python3.12), so
# the tests run on what AWS runs and the bundler compiles bytecode Lambda loads (issue 13, finding 6).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LAMBDA_PYTHON="3.12"
find_python() {
  local candidate
  for candidate in "${PYTHON:-}" "python$LAMBDA_PYTHON" \
      "$(command -v pyenv >/dev/null 2>&1 && ls -d "$(pyenv root)"/versions/"$LAMBDA_PYTHON".*/bin/python"$LAMBDA_PYTHON" 2>/dev/null | tail -1)"; do
    if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$LAMBDA_PYTHON'.split('.'))))" 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "no Python $LAMBDA_PYTHON found (the Lambda runtime's): install it, or set PYTHON to one" >&2
  return 1
}
if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
elif ! .venv/bin/python -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$LAMBDA_PYTHON'.split('.'))))"; then
  echo "warning: .venv runs Python $(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'), not the Lambda's $LAMBDA_PYTHON:" \
       "tests/infra/test_python_version.py fails; remove .venv to have it made again" >&2
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"

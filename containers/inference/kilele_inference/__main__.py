"""``python -m kilele_inference ARGS``: the same as ``kilele-serve ARGS`` (see :mod:`kilele_inference.cli`).

Nothing imports this module back: the app and the server live in their own modules, so the
package's imports form a DAG whichever way the process was started.
"""
import sys

# Re-exported: console scripts installed before the entry point moved to kilele_inference.cli
# still call kilele_inference.__main__:main.
from kilele_inference.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

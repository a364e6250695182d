"""``python -m kilele.cli``: the ``kilele`` command."""
from kilele.cli import main

main()

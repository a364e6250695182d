"""CDK is Kilele's one deploy path (issue 13, finding 6): Chalice stays the runtime, but what
``chalice deploy`` and ``chalice package`` would make is not what the stack deploys (another
Lambda runtime, a layer without the compiled dependencies, event sources on the local queue
names, no state machines, Batch or SageMaker grants). Both are refused, pointing to infra/."""
from __future__ import annotations

import os
from typing import Sequence

REFUSED_COMMANDS = frozenset({"deploy", "package"})
MESSAGE = ("Kilele is deployed with CDK, not `chalice {command}`: what Chalice would build is not what runs "
           "(see infra/README.md, 'Deploy': `cd infra && cdk deploy -c stage=<stage>`).")


def refused_chalice_command(argv: Sequence[str]) -> str:
    """The refusal for a ``chalice deploy``/``chalice package`` command line; '' for anything
    else (``chalice local``, CDK's synth, Lambda, tests)."""
    if not argv or os.path.basename(argv[0]) not in ("chalice", "chalice.exe"):
        return ""
    args = iter(argv[1:])
    for arg in args:  # the first word after chalice's own options (--project-dir DIR, --debug)
        if arg == "--project-dir":
            next(args, None)
        elif not arg.startswith("-"):
            return MESSAGE.format(command=arg) if arg in REFUSED_COMMANDS else ""
    return ""


def refuse_chalice_deploy(argv: Sequence[str]) -> None:
    """Exit with :func:`refused_chalice_command`'s message if ``argv`` is one of those commands."""
    message = refused_chalice_command(argv)
    if message:
        raise SystemExit(message)

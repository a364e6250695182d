"""A pre-started model process: the sandboxed process of the *next* trial, started before the
trial is known, so the trial pays neither an interpreter start nor the imports.

Only a worker forked from the local stack's zygote (:mod:`kilele_worker.zygote`) has one: the
zygote has imported the platform and the usual libraries (numpy, pandas, scikit-learn) and holds
no secret; the worker it forks starts its spare (:meth:`ModelSpare.start`) *before* it is given
its message and its AWS credentials, so the spare's copy of its memory holds none of them. The
spare confines itself at once (:func:`kilele.sandbox.fork_confined`: a user of its own, its
namespaces, no network, its work directory) and then waits on a pipe, having run no model code.

When the trial arrives, :meth:`ModelSpare.hand` sends it the path of its ``spec.json`` and the
limits that depend on the trial: the address-space limit (the trial's ``memory_limit_mb``) and
the CPU-time limit (its timeout), which the spare sets on itself with ``setrlimit`` before it
reads the spec, hence before any model code runs; everything it starts inherits them. The
inputs and the spec are given to the spare's own group as :func:`kilele.sandbox.spawn` would
give them (root:its group, 0640). A spare serves one trial; a spare that gets no trial (the
worker was stopped, or the trial is a kind it does not take) is discarded.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from typing import Any, Optional

from kilele import sandbox as kilele_sandbox
from kilele import sandbox_entry

from kilele_worker import sandbox
from kilele_worker.message import TrialSpec
from kilele_worker.settings import WorkerSettings

#: The kinds a spare takes. A stress test imports its own engine and may run under a CPU limit,
#: whose thread counts (OMP_NUM_THREADS...) must be in the environment before numpy loads: it
#: gets a process started for it, as on AWS.
SPARE_KINDS = ("trial", "describe")
#: Environment of the model process beyond the scrubbed one (names only its own directories).
USER_NAME = "kilele-model"


@dataclass
class ModelSpare:
    """One pre-started, confined model process and the work directory made for it."""

    workdir: str
    confined: kilele_sandbox.Confinement
    process: kilele_sandbox.Forked
    _handover: Optional[int]

    @classmethod
    def start(cls, settings: WorkerSettings, workdir_root: Optional[str]) -> "ModelSpare":
        """Makes a work directory (``input/``, ``output/``, ``scratch/``) and forks the spare
        into it. The caller must hold no secret yet (see the module's docstring)."""
        workdir = tempfile.mkdtemp(prefix="kilele-trial-", dir=workdir_root)
        for name in ("input", "output", "scratch"):
            os.mkdir(os.path.join(workdir, name), 0o700)
        scratch = os.path.join(workdir, "scratch")
        env = sandbox.child_environment(settings.environ, extra={
            "TMPDIR": scratch, "HOME": scratch, "USER": USER_NAME, "LOGNAME": USER_NAME})
        # No CPU-time limit yet: it follows from the trial's timeout (set at hand-over).
        confined = replace(sandbox.confinement(workdir, inputs=[], memory_limit_mb=None, timeout_seconds=0,
                                               settings=settings), cpu_seconds=None)
        read_end, write_end = os.pipe()
        try:
            process = kilele_sandbox.fork_confined(confined, lambda: serve(read_end), env=env, keep_fds=[read_end])
        except BaseException:
            os.close(write_end)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            os.close(read_end)
        return cls(workdir, confined, process, write_end)

    @property
    def uid(self) -> Optional[int]:
        """The spare's own user (None: it kept the worker's)."""
        return kilele_sandbox.run_uid(self.process.pid, self.confined)

    @staticmethod
    def suits(trial: TrialSpec) -> bool:
        """Whether this kind of run may use a spare (see :data:`SPARE_KINDS`)."""
        return trial.kind in SPARE_KINDS and not getattr(trial, "cpu_limit_millicores", None)

    def hand(self, spec_path: str, inputs: list[str], *, memory_bytes: Optional[int], cpu_seconds: int) -> None:
        """Gives the spare its trial: ``inputs`` and ``spec_path`` become readable by its group
        only, then the spec's path and the trial's limits go down its pipe. Raises OSError if the
        spare is gone (the caller starts a model process the usual way)."""
        if self._handover is None:
            raise OSError("this spare was handed a trial already, or discarded")
        uid = self.uid
        if uid is not None:
            sandbox_entry.chown_paths({"shared": [*inputs, spec_path]}, uid, uid)
        limits = {"memory_bytes": memory_bytes, "cpu_seconds": cpu_seconds,
                  "max_processes": self.confined.max_processes, "file_bytes": self.confined.file_bytes}
        data = json.dumps({"spec_path": spec_path, "limits": limits}).encode()
        fd, self._handover = self._handover, None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    @property
    def handed(self) -> bool:
        """Whether it was given a trial (or discarded): it takes no other."""
        return self._handover is None

    def discard(self, remove_workdir: bool = True) -> None:
        """Ends a spare that got no trial (closing its pipe makes it exit; its group is killed
        anyway) and removes its work directory (``remove_workdir=False``: the caller runs the
        trial there with a process of its own)."""
        if self._handover is not None:
            os.close(self._handover)
            self._handover = None
        sandbox.kill_group(self.process.pid)
        try:
            os.waitpid(self.process.pid, 0)
        except ChildProcessError:  # reaped already
            pass
        self.process.stdout.close()
        if remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def serve(handover_fd: int) -> int:
    """The spare's side (confined, no model code run yet): wait for the trial, set its limits,
    make the process look as a fresh one would, run :mod:`kilele_worker.child`."""
    chunks = []
    while True:
        chunk = os.read(handover_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(handover_fd)
    if not chunks:
        return 0  # discarded: no trial for this spare
    handover: dict[str, Any] = json.loads(b"".join(chunks))
    # The trial's limits, before any of its code: what it starts inherits them.
    sandbox_entry.limits(handover["limits"])
    _as_a_fresh_process(handover["spec_path"])
    from kilele_worker import child

    return child.main([handover["spec_path"]])


def _as_a_fresh_process(spec_path: str) -> None:
    """What a fork shares with its zygote and a new interpreter would not."""
    import tempfile as tempfile_module

    tempfile_module.tempdir = None  # re-read TMPDIR (its own scratch directory), not a cached /tmp
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # numpy's global generator from fresh entropy (random reseeds itself at fork)
    from kilele_worker import child

    # As `python -m kilele_worker.child SPEC` in its cwd would have them.
    sys.argv = [child.__file__, spec_path]
    if sys.path:
        sys.path[0] = os.getcwd()


__all__ = ["ModelSpare", "SPARE_KINDS", "serve"]

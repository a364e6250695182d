"""The sandbox's entry: ``python -I .../sandbox_entry.py CONFIG_JSON -- COMMAND...``.

Started (as root where the platform can) by :func:`kilele.sandbox.spawn`, it confines itself and
then ``exec``\\s COMMAND, the process that runs model code. Standard library only, run by file
path (``-I``: no environment, no user site, no import of the SDK), so nothing the model controls
runs before the confinement is in place.

In order, each step only where the kernel and the identity allow (what could not be done is
printed on stderr in one line starting ``kilele-sandbox: missing``):

1. ``PR_SET_PDEATHSIG`` (SIGKILL), then a check that the parent that started us is still there;
2. ``unshare`` of the network, mount and PID namespaces; in a new PID namespace this process
   stays outside as a small *reaper* that forks the namespace's init, which forks the model
   (PID 2: PID 1 would ignore signals it does not handle) and exits when the model does, as the
   reaper then does, with the model's status: when the init dies the kernel kills every process
   in the namespace, so nothing the model started (daemons, double forks) outlives it;
3. as root: a per-run user and group (``uid_base + pid of this process``, no passwd entry, so
   no two sandboxes share an identity); ``own`` paths are chowned to it (mode 0700), ``shared``
   paths to root:its group (0750 directories, 0640 files: readable by this run only);
4. in the mount namespace: ``/`` private, a fresh ``/proc`` (only the namespace's processes),
   world-writable directories (``/tmp``, ``/var/tmp``, ``/run/lock``) read-only, a small private
   tmpfs on ``/dev/shm``, the ``own`` paths writable again; loopback up in the new network
   namespace (it is not the host's: nothing listens there);
5. resource limits (address space, CPU seconds, processes, file size, no core dumps);
6. drop to the run's user (``setgroups([])``, ``setgid``, ``setuid``), ``PR_SET_NO_NEW_PRIVS``,
   and ``PR_SET_PDEATHSIG`` again last (a change of credentials clears it), then a last check
   that the parent is alive (a pipe from the reaper, or ``getppid``).

:func:`confine` does all of this and returns in the confined process; :func:`main` then execs
COMMAND. A pre-started spare (:func:`kilele.sandbox.fork_confined`) calls :func:`confine` in a
fork of a process that has imported the libraries but never run model code, instead of exec.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
from typing import Optional

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
#: World-writable places a model could leave files in, made read-only in its mount namespace.
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/run/lock")
SHM = "/dev/shm"
EXIT_PARENT_GONE = 125

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source, target: str, fstype, flags: int, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def loopback_up() -> None:
    """Brings ``lo`` up in this (new) network namespace: a model may use localhost for itself."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def die_with_parent(parent: int) -> None:
    """SIGKILL when the parent (thread) exits; exits now if it already has."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(EXIT_PARENT_GONE)


def chown_paths(config: dict, uid: int, gid: int) -> None:
    """``own`` paths to the run's user (0700), ``shared`` ones to root and its group (0750
    directories, 0640 files: readable by this run only)."""
    for path in config.get("own", ()):
        os.chown(path, uid, gid, follow_symlinks=False)
        os.chmod(path, 0o700)
    for path in config.get("shared", ()):
        os.chown(path, 0, gid, follow_symlinks=False)
        os.chmod(path, 0o750 if os.path.isdir(path) else 0o640)


def _confine_mounts(config: dict, uid: int, gid: int) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if config.get("pid_namespace"):
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in WORLD_WRITABLE:
        if os.path.isdir(path) and not os.path.islink(path):
            mount(path, path, None, MS_BIND | MS_REC)
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    if os.path.isdir(SHM):  # POSIX semaphores (multiprocessing) need it: private, small, gone with the namespace
        mount("tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(config.get('shm_bytes') or 64 << 20)},mode=1777")
    if config.get("expose") and uid >= 0:
        _expose(config["expose"], uid, gid)
    for path in config.get("own", ()):  # the run's own directories stay writable under a read-only /tmp
        mount(path, path, None, MS_BIND)
        mount(None, path, None, MS_REMOUNT | MS_BIND)


def _traversable(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & 0o100)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def _blocked(path: str, uid: int = -1, gid: int = -1) -> Optional[tuple[str, str]]:
    """(the first ancestor of ``path`` that ``uid``/``gid`` cannot traverse, its child on the
    way), or None."""
    parts = os.path.realpath(path).strip("/").split("/")
    current = "/"
    for name in parts:
        if not _traversable(os.stat(current), uid, gid):
            return current, os.path.join(current, name)
        current = os.path.join(current, name)
    return None


def reachable(path: str, uid: int = -1, gid: int = -1) -> bool:
    """Can ``uid``/``gid`` (default: any other user) reach ``path``?"""
    try:
        return _blocked(path, uid, gid) is None
    except OSError:
        return False


def _expose(paths: list[str], uid: int, gid: int) -> None:
    """Makes ``paths`` (the interpreter, its libraries) reachable by the run's user when an
    ancestor is closed to other users (a Python under ``/root``): a small tmpfs masks the closed
    directory and only the needed child is bound back into it, so the rest stays hidden."""
    for _ in range(16):  # one closed level per round (/root, then /root/.pyenv ...)
        closed: dict[str, set[str]] = {}
        for path in paths:
            found = _blocked(path, uid, gid) if os.path.exists(path) else None
            if found:
                closed.setdefault(found[0], set()).add(found[1])
        if not closed:
            return
        for directory, children in closed.items():
            fds = {child: os.open(child, os.O_PATH | os.O_NOFOLLOW) for child in children}
            mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
            for child, fd in fds.items():
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    os.mkdir(child, 0o755)
                else:
                    open(child, "wb").close()
                mount(f"/proc/self/fd/{fd}", child, None, MS_BIND | MS_REC)
                os.close(fd)


def limits(config: dict) -> None:
    """The resource limits of ``config`` (a process may always lower its own)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.get("memory_bytes"):
        resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"],) * 2)
    if config.get("cpu_seconds"):
        # SIGXCPU at the soft limit, SIGKILL a few seconds later.
        resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_seconds"], config["cpu_seconds"] + 5))
    if config.get("max_processes"):
        resource.setrlimit(resource.RLIMIT_NPROC, (config["max_processes"],) * 2)
    if config.get("file_bytes"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (config["file_bytes"],) * 2)


def _reap(init: int, status_fd: int) -> None:
    """The reaper (outside the PID namespace): forwards SIGTERM/SIGINT/SIGHUP to the namespace's
    init, then exits as the model did (its wait status comes through ``status_fd``)."""
    _forward_signals(init)
    _, status = os.waitpid(init, 0)
    reported = os.read(status_fd, 32)
    if reported.strip().isdigit():
        status = int(reported)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status))


def _init(model: int, status_fd: int) -> None:
    """PID 1 of the namespace (so the model is not: PID 1 ignores the signals it does not
    handle). Reaps orphans, forwards termination signals, reports the model's wait status and
    exits when the model does: the kernel then kills what is left in the namespace."""
    _forward_signals(model)
    while True:
        pid, status = os.wait()
        if pid == model:
            os.write(status_fd, str(status).encode())
            os._exit(0)


def _forward_signals(target: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: _forward(target, signum))


def _forward(child: int, signum: int) -> None:
    try:
        os.kill(child, signum)
    except ProcessLookupError:
        pass


def confine(config: dict, *, exec_follows: bool = True) -> None:
    """Confines this process as ``config`` says (the steps above) and returns in the process that
    is to run the model (with a PID namespace, below its reaper and init: those never return).
    ``exec_follows=False``: no exec comes after (a forked spare), so what exec would do is done
    here: the process is made dumpable again (the change of user cleared it; exec would restore
    it), else its own /proc entries stay root's."""
    die_with_parent(config["parent"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    missing: list[str] = []
    root = os.geteuid() == 0
    uid = gid = None
    if config.get("uid_base") is not None:
        if root:
            uid = gid = int(config["uid_base"]) + os.getpid()
        else:
            missing.append("a user of its own (the platform is not root)")
    flags = 0
    if config.get("network"):
        flags |= CLONE_NEWNET
    if config.get("pid_namespace"):
        flags |= CLONE_NEWPID | CLONE_NEWNS
    elif config.get("private_tmp"):
        flags |= CLONE_NEWNS
    if flags:
        try:
            unshare(flags)
        except OSError as e:
            missing.append(f"namespaces (network, mounts, processes: {e.strerror or e})")
            flags = 0
    if uid is not None:
        chown_paths(config, uid, gid)
    if uid is not None and not flags & CLONE_NEWNS and not all(reachable(p, uid, gid) for p in config.get("expose", ())):
        # No mount namespace to open a way to the interpreter (a Python under /root): keep the user.
        missing.append("a user of its own (not reachable by other users: "
                       + ", ".join(p for p in config["expose"] if not reachable(p, uid, gid)) + ")")
        uid = gid = None
    alive_fd = status_fd = None
    if flags & CLONE_NEWPID:
        alive_fd, keep = os.pipe()
        status_read, status_fd = os.pipe()
        init = os.fork()
        if init:
            os.close(alive_fd)
            os.close(status_fd)
            _reap(init, status_read)  # never returns
        os.close(keep)  # EOF on alive_fd when the reaper is gone
        os.close(status_read)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if flags & CLONE_NEWNS:
        _confine_mounts(config, -1 if uid is None else uid, -1 if gid is None else gid)
    if flags & CLONE_NEWNET:
        loopback_up()
    limits(config)
    if uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # last: setuid cleared it
    if alive_fd is not None:
        if select.select([alive_fd], [], [], 0)[0]:  # the reaper died before PDEATHSIG was set
            os._exit(EXIT_PARENT_GONE)
        os.close(alive_fd)
    elif os.getppid() != config["parent"]:
        os._exit(EXIT_PARENT_GONE)
    if status_fd is not None:
        model = os.fork()
        if model:
            _init(model, status_fd)  # never returns
        os.close(status_fd)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # not inherited through fork: the model dies with init
    if uid is not None and not exec_follows:
        prctl(PR_SET_DUMPABLE, 1)  # only this run's own user may then trace it, as after exec
    if missing:
        print(f"kilele-sandbox: missing: {'; '.join(missing)}", file=sys.stderr, flush=True)
    if config.get("cwd"):
        os.chdir(config["cwd"])


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    command = argv[3:] if len(argv) > 2 and argv[2] == "--" else argv[2:]
    confine(config)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"kilele-sandbox: cannot run {command[0]}: {e}", file=sys.stderr, flush=True)
        os._exit(127 if e.errno == errno.ENOENT else 126)


if __name__ == "__main__":
    main(sys.argv)

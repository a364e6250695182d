"""A model that tries every escape (tests/security): uploaded as a model file, run by the real
worker supervisor and by a local inference endpoint. Each attempt is reported, never raised:
``train()`` prints one ``kilele-probe {json}`` line into the trial log, ``predict()`` answers the
same report as its prediction. The tests fill in ``TARGETS`` (the placeholder below)."""
import json
import mmap
import os
import signal
import socket
import sys
import time

from kilele.model import BaseModel, FixedKnob

TARGETS = json.loads('__TARGETS__')
TAG = TARGETS["tag"]
_REPORT = {}


def _succeeds(action) -> bool:
    try:
        action()
        return True
    except Exception:  # noqa: BLE001 - an attempt that failed is the answer
        return False


def _write(path: str) -> None:
    with open(path, "w") as f:
        f.write(TAG)


def _connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        return "connected"
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def _other_environs() -> tuple[int, list[int]]:
    """(how many other processes' environments could be read, the pids that hold AWS_/KILELE_)."""
    readable, leaks = 0, []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        readable += 1
        if b"AWS_" in data or b"KILELE_" in data:
            leaks.append(int(name))
    return readable, leaks


def _in_own_memory(needles: list) -> list:
    """Which ``[head, tail]`` needles (hex) occur in this process's memory as head+tail (kept in
    two parts, so the search itself never puts a whole needle in memory); their heads."""
    found = set()
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r") or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            chunk = 8 << 20  # read in pieces (the model runs under a memory limit), overlapping
            for offset in range(start, end, chunk):
                try:
                    mem.seek(offset)
                    region = mem.read(min(chunk + 4096, end - offset))
                except (OSError, OverflowError, ValueError):
                    break
                for head, tail in needles:
                    head_b, tail_b = bytes.fromhex(head), bytes.fromhex(tail)
                    at = region.find(head_b)
                    while at >= 0:
                        if region.startswith(tail_b, at + len(head_b)):
                            found.add(head)
                            break
                        at = region.find(head_b, at + 1)
    return sorted(found)


def _fork_bomb(count: int) -> int:
    """Forks up to ``count`` sleepers (not exponential: the machine is shared); how many it got."""
    pids = []
    try:
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            pids.append(pid)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    return len(pids)


def _leave_a_daemon() -> None:
    """A double-forked process in a session of its own, tagged in its command line."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", TAG])
        os._exit(0)
    os.waitpid(pid, 0)


def probe() -> dict:
    if _REPORT:
        return _REPORT
    readable, leaks = _other_environs()
    _REPORT.update({
        "env": sorted(k for k in os.environ if k.upper().startswith(("AWS_", "KILELE_", "MOTO_"))
                      or any(w in k.upper() for w in ("SECRET", "TOKEN", "PASSWORD"))),
        "environ_readable": readable, "environ_leaks": leaks,
        "shadow": _succeeds(lambda: open("/etc/shadow").read(1)),
        "writes": [p for p in TARGETS["outside"] if _succeeds(lambda p=p: _write(p))],
        "connects": {f"{h}:{p}": _connect(h, p) for h, p in TARGETS["addresses"]},
        "forks": _fork_bomb(TARGETS["forks"]),
        "memory": _succeeds(lambda: mmap.mmap(-1, TARGETS["memory_bytes"])),
        "uid": os.getuid(),
        "in_memory": _in_own_memory(TARGETS.get("needles", [])),
    })
    return _REPORT


if TARGETS.get("daemon_on_import"):  # an inference server imports the model file when it loads
    _leave_a_daemon()


class HostileModel(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"k": FixedKnob(1)}

    def __init__(self, **knobs):
        super().__init__(**knobs)

    def train(self, dataset_path, **train_args):
        if TARGETS.get("spin"):
            while True:
                pass
        if TARGETS.get("linger"):
            _leave_a_daemon()
            print("kilele-probe-daemon-started", flush=True)
            time.sleep(600)
        print("kilele-probe " + json.dumps(probe()), flush=True)

    def evaluate(self, dataset_path):
        return 0.5

    def predict(self, queries):
        return [json.dumps(probe()) for _ in queries]

    def dump_parameters(self):
        return {"w": 1.0}

    def load_parameters(self, params):
        pass

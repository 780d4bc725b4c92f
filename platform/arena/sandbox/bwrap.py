"""Run one program in a bubblewrap sandbox with hard limits, and collect its result stream and the tail of its log.

Why bubblewrap: it is a small setuid-free tool from Debian (`apt-get install bubblewrap`) that builds the sandbox out
of kernel namespaces, the same mechanism Flatpak uses; it needs no daemon and no root on a machine with
unprivileged user namespaces, and nothing of the host is visible inside unless it is bound in.

What the sandbox gets (`command`):
- new network, pid, ipc and uts namespaces: no network at all (loopback only, nothing listens on it), no view of
  the host's processes; `--die-with-parent`: when the runner dies, so does everything inside;
- read-only: /usr (the system's Python and libraries), the Python environment (`sys.prefix`), our in-sandbox code,
  the model folder, the input folder and the test images (`Mount`s); nothing else of the host's files: no instance
  folder, no database, no labels, no other submission;
- writable: /tmp, a tmpfs of `scratch_bytes`; an empty environment but for PATH, HOME and thread counts;
- limits: wall time (killed), CPU seconds (RLIMIT_CPU), address space per process (RLIMIT_AS; not on a GPU, whose
  driver maps more than it uses), processes (RLIMIT_NPROC: as root the program runs as `uid`, since root is exempt),
  size of any file written (RLIMIT_FSIZE), result bytes and log bytes (read through pipes and capped here).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_BYTES = 8000


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot build a sandbox on this machine: an operator's problem, never the team's."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 1800
    cpu_seconds: int = 3600
    memory_bytes: int | None = 8 * 2**30  # address space per process; None on a GPU worker
    processes: int = 64
    result_bytes: int = 256 * 2**20
    scratch_bytes: int = 512 * 2**20
    threads: int = 2

    @classmethod
    def from_config(cls, config) -> Limits:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k[len("SANDBOX_") :].lower(): v for k, v in config.items() if k.startswith("SANDBOX_")}
        return cls(**{k: v for k, v in values.items() if k in fields})


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str


@dataclass(frozen=True)
class Outcome:
    """How the program ended: `status` is ok | exited | timeout | cpu | output | killed."""

    status: str
    returncode: int | None
    result: bytes
    log_tail: str
    seconds: float


def bwrap_path() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed on this worker: apt-get install -y bubblewrap")
    return found


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def command(
    program: list[str], mounts: list[Mount], limits: Limits, *, uid: int, gpu: bool = False, pythonpath: str = ""
) -> list[str]:
    """The bwrap command line that runs program (its argv inside the sandbox)."""
    root = os.geteuid() == 0
    # as root, no user namespace (it would map only uid 0); the program drops to `uid` through setpriv instead
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if not root:
        namespaces.insert(0, "--unshare-user")
    args = [bwrap_path(), *namespaces, "--die-with-parent", "--new-session", *_system_binds()]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.scratch_bytes)]
    args += ["--tmpfs", "/tmp"]
    if gpu:
        for device in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(device), str(device)]
    binds = [Mount(p, str(p)) for p in sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()})]
    made: set[str] = set()
    for mount in [m for m in binds if not str(m.source).startswith("/usr")] + list(mounts):
        for parent in reversed(Path(mount.target).parents[:-1]):  # traversable by the sandbox's user
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(mount.source), mount.target]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(limits.threads),
        "MKL_NUM_THREADS": str(limits.threads),
    }
    args += ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", "/tmp"]
    if root:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        args += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        args += ["--inh-caps=-all", "--bounding-set=-all"]
    else:
        args += ["--"]
    return args + program


def _limit(limits: Limits):
    def apply():
        # SIGXCPU at the soft limit (its own exit status), SIGKILL two seconds later if it is caught
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 2))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.result_bytes, limits.result_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))

    return apply


def run(argv: list[str], limits: Limits) -> Outcome:
    """Run argv (a `command`) with the limits; the program writes its result to the file descriptor whose number is
    passed to it (the caller puts `{fd}` in argv: it is replaced here). Never raises for the program's behaviour."""
    read_end, write_end = os.pipe()
    argv = [arg.replace("{fd}", str(write_end)) for arg in argv]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            preexec_fn=_limit(limits),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise SandboxUnavailable(f"bwrap could not start: {exc}") from exc
    os.close(write_end)
    status, result, log = _collect(proc, read_end, limits, started)
    returncode = proc.wait()
    if status == "ok" and returncode != 0:
        status = "cpu" if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU) else "exited"
    tail = log[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
    return Outcome(status, returncode, bytes(result), tail, time.monotonic() - started)


def _collect(proc: subprocess.Popen, result_fd: int, limits: Limits, started: float) -> tuple[str, bytearray, bytes]:
    """Read the log and the result until both close, the wall time passes or the result passes its cap."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, "log")
    selector.register(result_fd, selectors.EVENT_READ, "result")
    result, log, status = bytearray(), bytearray(), "ok"
    open_streams = 2
    try:
        while open_streams:
            left = limits.wall_seconds - (time.monotonic() - started)
            if left <= 0:
                status = "timeout"
                break
            for key, _ in selector.select(timeout=min(left, 1.0)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                elif key.data == "log":
                    log += chunk
                    del log[: max(0, len(log) - 4 * LOG_TAIL_BYTES)]  # keep the tail only
                else:
                    result += chunk
                    if len(result) > limits.result_bytes:
                        status = "output"
                        break
            if status != "ok":
                break
        if status == "ok":
            try:
                proc.wait(timeout=max(1.0, limits.wall_seconds - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                status = "timeout"
    finally:
        if status != "ok" or proc.poll() is None:
            _kill(proc)
        selector.close()
        os.close(result_fd)
        proc.stdout.close()
    return status, result, bytes(log)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's session: the pid namespace dies with its first process, taking every child along."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()

"""The servers under test as child processes: start, read CPU and RSS from /proc, stop."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from securechat.errors import SecureChatError

LISTENING = re.compile(r"listening on \[?([^\]\s]+?)\]?:(\d+)\s*$")
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 60.0


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _process_cpu_clock(pid: int) -> int:
    """The clock id of ``pid``'s CPU time, as Linux's clock_getcpuclockid(3) makes it
    (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)): nanosecond run time of all its threads."""
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process (all its threads, ended ones included) to the nanosecond.

    Not /proc/PID/stat: its 10 ms ticks read a short, light step (the reference server's few
    milliseconds in the tiny test run) as 0 seconds, and a ratio over it as "not measured".
    Raises OSError once the process has ended."""
    return time.clock_gettime(_process_cpu_clock(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent not idle (/proc/stat), every process counted."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (scanning /proc: no CONFIG_PROC_CHILDREN needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its direct children (a supervisor and its workers)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError, ValueError):  # exited between the scan and the read
            total += cpu_seconds(child)
    return total


def rss_kb(pid: int) -> int:
    """Resident set size in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SecureChatError(f"no VmRSS for process {pid}")


@dataclass
class ServerProcess:
    """A running server child: its pid, bound port and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        """CPU seconds of the server, including its worker processes when it has any."""
        return tree_cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def _start(
    name: str, argv: list[str], env: dict[str, str], log_path: Path, listeners: int = 1
) -> ServerProcess:
    """Start ``argv``; return once ``listeners`` "listening on" lines (one per worker) arrived."""
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,  # never a TTY: no server console
        stdout=subprocess.PIPE,
        stderr=log_file,
        env=env,
        preexec_fn=raise_nofile_limit,
    )
    log_file.close()
    assert popen.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = 0
    while time.monotonic() < deadline:
        line = popen.stdout.readline().decode(errors="replace")
        if not line:
            break
        match = LISTENING.search(line.strip())
        if match:
            seen += 1
            if seen >= listeners:
                return ServerProcess(name, popen, int(match.group(2)), log_path)
    popen.kill()
    popen.wait()
    tail = log_path.read_text(errors="replace")[-2000:]
    raise SecureChatError(f"{name} did not start; its log ends with:\n{tail}")


def securechat_env(bcrypt_cost: int | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for securechat-server: limits raised so the bench, not a limiter, sets load."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURECHAT_")}
    env.update(
        {
            "SECURECHAT_CHAT_SEND_RATE_PER_S": "1000000",
            "SECURECHAT_CHAT_SEND_BURST": "1000000",
            "SECURECHAT_AUTH_REGISTRATIONS_PER_PEER_PER_HOUR": "1000000",
            "SECURECHAT_AUTH_REGISTRATIONS_PER_HOUR": "1000000",
            # the connections scenario registers and logs in thousands from one address, the
            # soak logs the same users in again and again
            "SECURECHAT_AUTH_HASH_QUEUE": "1000000",
            "SECURECHAT_AUTH_HASH_QUEUE_PER_SOURCE": "1000000",
            "SECURECHAT_AUTH_LOGINS_PER_ACCOUNT_PER_HOUR": "1000000",
            "SECURECHAT_AUTH_LOGIN_BURST": "1000000",
            "SECURECHAT_CHAT_MAX_RECIPIENTS": "1000",
        }
    )
    if bcrypt_cost is not None:
        env["SECURECHAT_AUTH_BCRYPT_COST"] = str(bcrypt_cost)
    env.update(extra or {})
    return env


def start_securechat(
    workdir: Path,
    certs_dir: Path,
    env: dict[str, str],
    tag: str = "securechat",
    port: int = 0,
    extra_args: Sequence[str] = (),
    listeners: int = 1,
    program: Sequence[str] | None = None,
) -> ServerProcess:
    """`securechat-server --port PORT` with its own data dir under ``workdir``; ``listeners``
    is how many workers must announce themselves before it counts as started; ``program``
    replaces the `securechat-server` command (the soak's traced server)."""
    data = workdir / f"{tag}-data"
    data.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("securechat-server")
    argv = [
        *(program or [str(exe)]),
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--certs-dir",
        str(certs_dir),
        "--status-port",
        "0",
        *extra_args,
    ]
    return _start(tag, argv, env, workdir / f"{tag}.log", listeners)


def start_reference(
    workdir: Path,
    certs_dir: Path,
    extra_args: Sequence[str] = (),
    program: Sequence[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """The bare grpc.aio fan-out reference (securechat.bench.reference) on a free port;
    ``program`` replaces `python -m securechat.bench.reference` (scripts/heap_server.py)."""
    argv = [*(program or [sys.executable, "-m", "securechat.bench.reference"])]
    argv += ["--certs-dir", str(certs_dir), *extra_args]
    env = {**os.environ, **(extra_env or {})}
    return _start("reference", argv, env, workdir / "reference.log")

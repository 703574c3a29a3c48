"""Start, probe and stop a real gunicorn server (shared by the benchmarks and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(store, port: int, extra_env: dict | None = None, args: tuple = (),
                   app: str = "wsgi:app", output=None) -> subprocess.Popen:
    """The production command (`gunicorn -c gunicorn.conf.py wsgi:app`) on PORT=port.

    Output goes to a temp file (proc.log_path) unless `output` is given: an undrained pipe fills up
    after a few hundred access-log lines and then blocks every request thread on its log write.
    """
    env = {**os.environ, "MODEL_STORE": str(store), "PORT": str(port), "MODEL_POLL_SECONDS": "0",
           **(extra_env or {})}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    log_path = None
    if output is None:
        fd, log_path = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
        output = os.fdopen(fd, "w")
    proc = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py", app, *args], cwd=ROOT, env=env,
                            stdout=output, stderr=subprocess.STDOUT, text=True)
    proc.log_path = log_path
    return proc


def server_output(proc: subprocess.Popen) -> str:
    """What the server printed so far (its log file or pipe)."""
    if getattr(proc, "log_path", None):
        return Path(proc.log_path).read_text(errors="replace")
    return proc.stdout.read() if proc.stdout else ""


def worker_crashes(proc: subprocess.Popen) -> list[str]:
    """Lines saying a worker died of a signal or a C++ abort: the master still exits 0 after those."""
    return [line for line in server_output(proc).splitlines()
            if "was sent SIG" in line or "terminate called" in line]


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120.0, path: str = "/readyz") -> float:
    """Poll path until 200; returns seconds waited. Raises with the server's output if it dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {server_output(proc)}")
        try:
            if requests.get(f"{base}{path}", timeout=1).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:  # refused, or queued while the worker still loads
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready in time")


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM and wait; returns the exit code (SIGKILL after timeout)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def children(pid: int) -> list[int]:
    """Direct child PIDs (the gunicorn workers of a master)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_rss_mb(master_pid: int) -> float:
    """Largest worker RSS under a gunicorn master."""
    return max((rss_mb(p) for p in children(master_pid)), default=0.0)

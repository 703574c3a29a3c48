"""Where the CPU goes during a load level: model threads vs request threads vs the load generator."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PY_SPY = Path(sys.executable).parent / "py-spy"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each thread of a process."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def python_threads(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name (via `py-spy dump`); {} when py-spy cannot attach."""
    try:
        text = subprocess.run([str(PY_SPY), "dump", "-p", str(pid)], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]+)"', text)}


def _group(name: str | None) -> str:
    if name is None:
        return "model"  # native threads: TensorFlow's intra/inter-op pools, OpenVINO's TBB workers
    if name.startswith("ThreadPoolExecutor"):
        return "requests"  # gunicorn gthread request threads
    if name == "inference":
        return "batcher"  # stacks batches; OpenVINO runs its first inference stream in this thread
    return "other"  # gunicorn main loop, pollers


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and all its descendants that are still running."""
    from bench.drive.server import children

    todo, total = [pid], 0.0
    while todo:
        p = todo.pop()
        total += sum(thread_cpu(p).values()) if Path(f"/proc/{p}").exists() else 0.0
        todo += children(p)
    return total


class CpuMeter:
    """Measure one gunicorn worker (by thread group), or a whole process tree (tree=True: servers such as
    BentoML that run their work in several processes), and this process, between start() and stop(n)."""

    def __init__(self, worker_pid: int, tree: bool = False):
        self.pid, self.tree = worker_pid, tree

    def start(self) -> None:
        """Snapshot CPU counters."""
        self._tree = tree_cpu(self.pid) if self.tree else 0.0
        self._threads = thread_cpu(self.pid)
        self._self = _own_cpu()
        self._wall = time.perf_counter()

    def stop(self, images: int, load_generator_cpu_s: float = 0.0) -> dict:
        """CPU ms per image for model / request / other threads and the load generator, and idle %.

        load_generator_cpu_s: CPU of an external load generator (wrk), added to this process's own."""
        wall = time.perf_counter() - self._wall
        after, own = thread_cpu(self.pid), _own_cpu() - self._self + load_generator_cpu_s
        names = {} if self.tree else python_threads(self.pid)
        groups = {"model": 0.0, "batcher": 0.0, "requests": 0.0, "other": 0.0}
        if not names:  # a process tree, or py-spy unavailable: report the server as one number
            groups = {"worker": tree_cpu(self.pid) - self._tree if self.tree else 0.0}
        for tid, seconds in after.items() if not self.tree else ():
            key = _group(names.get(tid)) if names else "worker"
            groups[key] += seconds - self._threads.get(tid, 0.0)
        busy = sum(groups.values()) + own
        per_image = {k: 1000 * v / max(images, 1) for k, v in groups.items()}
        per_image["load_generator"] = 1000 * own / max(images, 1)
        return {"cpu_ms_per_image": per_image, "idle_pct": 100 * (1 - busy / (wall * (os.cpu_count() or 1)))}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

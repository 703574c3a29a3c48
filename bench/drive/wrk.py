"""Load from wrk (C, epoll): a load generator that costs the server's cores little even at 300+ img/s."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).with_name("multipart.lua")


def available() -> bool:
    """True when the wrk binary is on PATH (Debian: apt-get install wrk)."""
    return shutil.which("wrk") is not None


class WrkLoad:
    """Write the multipart bodies once; run closed-loop levels (one connection per client) against a server."""

    def __init__(self, bodies: list[bytes]):
        self._dir = tempfile.TemporaryDirectory(prefix="wrk-bodies-")
        paths = []
        for i, body in enumerate(bodies):
            path = Path(self._dir.name) / f"{i}.body"
            path.write_bytes(body)
            paths.append(str(path))
        self.index = Path(self._dir.name) / "bodies.txt"
        self.index.write_text("\n".join(paths) + "\n")

    def run_level(self, base: str, clients: int, seconds: float) -> dict:
        """One level: img/s, latency percentiles, errors, and wrk's own CPU seconds."""
        before = _children_cpu()
        proc = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "60s",
                               "-s", str(SCRIPT), f"{base}/predict", "--", str(self.index)],
                              capture_output=True, text=True, check=True)
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        ok = stats["requests"] - stats["non_2xx"]
        wall = stats["duration_us"] / 1e6
        return {"clients": clients, "requests": stats["requests"], "ok": ok,
                "errors": stats["non_2xx"] + stats["socket_errors"], "error_kinds": [], "seconds": wall,
                "img_per_s": ok / wall, "p50_ms": stats["p50_us"] / 1000, "p95_ms": stats["p95_us"] / 1000,
                "p99_ms": stats["p99_us"] / 1000, "mean_ms": stats["mean_us"] / 1000,
                "load_generator_cpu_s": _children_cpu() - before}

    def close(self) -> None:
        """Remove the body files."""
        self._dir.cleanup()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

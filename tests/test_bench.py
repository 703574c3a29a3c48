"""The benchmark's CPU accounting and report (the benchmark itself runs with `make bench`)."""

import os
import threading
import time

from bench import cpu, report


def test_thread_cpu_sees_a_busy_thread():
    done, release = threading.Event(), threading.Event()
    ids = []

    def spin():
        ids.append(threading.get_native_id())
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        done.set()
        release.wait(10)  # stay alive until measured: /proc forgets finished threads

    before = cpu.thread_cpu(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    done.wait(10)
    after = cpu.thread_cpu(os.getpid())
    release.set()
    worker.join()
    assert after[ids[0]] - before.get(ids[0], 0.0) >= 0.2


def test_report_cpu_table_and_bound():
    level = {"clients": 32, "img_per_s": 80.0, "p50_ms": 400.0, "p95_ms": 450.0, "p99_ms": 480.0, "errors": 0,
             "cpu_ms_per_image": {"model": 20.0, "requests": 4.0, "other": 0.5, "load_generator": 0.5},
             "idle_pct": 5.0}
    result = {"machine": "test", "cores": 2, "requests_per_level": 10, "command": "python -m bench",
              "raw": {"model_version": 1, "by_batch": {"1": {"img_per_s": 50.0, "ms_per_call": 20.0}}},
              "ours": {"levels": [level], "rss_mb": 1000.0, "ready_s": 4.0}, "naive": {"levels": []},
              "checks": []}
    text = report.markdown(result)
    row = next(line for line in text.splitlines() if line.startswith("| ours | 32 | 20.00"))
    # 2 cores x 1000 ms / 25 ms per image = 80 img/s if no core ever idled
    assert row.endswith("| 25.00 | 5.0 | 80.0 |")

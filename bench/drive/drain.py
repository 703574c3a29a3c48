"""Graceful drain under load: SIGTERM with uploads in flight, and how each of them ended."""

from __future__ import annotations

import collections
import http.client
import signal
import threading
import time

from bench.drive import load


def drain_under_load(port: int, proc, bodies: list[bytes], clients: int = 32) -> collections.Counter:
    """SIGTERM while `clients` photo uploads (multipart bodies) are in flight: each must end in 200 or 503,
    or be refused before it was accepted; none may be reset."""
    mp = {"Content-Type": f"multipart/form-data; boundary={load.BOUNDARY}"}
    outcomes: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("POST", "/predict", body=bodies[i % len(bodies)], headers=mp)
            outcome = str(conn.getresponse().status)
        except ConnectionRefusedError:
            outcome = "refused"  # arrived after the listener closed: never accepted, the client can retry
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"reset:{type(exc).__name__}"
        finally:
            conn.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the uploads are being served
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    return outcomes

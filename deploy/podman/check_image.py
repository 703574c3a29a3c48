"""make test-image: run the built image for real and check it (readiness, prediction, errors, stop, no model).

Runs with the project venv from the repository root: python deploy/podman/check_image.py --image ... --store ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import model_store  # noqa: E402
import runtimes  # noqa: E402

_DOCKER = shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
ENGINE = "docker" if _DOCKER else "podman"
# The same private podman configuration as the build (runc, lower ulimits): see engine.sh.
os.environ.setdefault("CONTAINERS_CONF", str(Path(__file__).resolve().with_name("containers.conf")))
GRACEFUL = 20  # GUNICORN_GRACEFUL_TIMEOUT default


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(image: str, port: int, mount: str | None) -> str:
    # uid 10001 is the image's USER; read-only root, /tmp a tmpfs (the gs:// cache and temp files go there).
    cmd = [ENGINE, "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--no-healthcheck",
           "--user", "10001:10001", "-e", f"PORT={port}", "-e", "MODEL_POLL_SECONDS=0"]
    if mount:
        cmd += ["-v", f"{mount}:/srv/models:ro"]
    return subprocess.run([*cmd, image], check=True, capture_output=True, text=True).stdout.strip()


def _logs(cid: str) -> str:
    out = subprocess.run([ENGINE, "logs", cid], capture_output=True, text=True)
    return out.stdout + out.stderr


def check_serving(image: str, photo: Path, store: Path, mount: str | None, label: str,
                  ref_version: int | None = None) -> None:
    """One container: ready, same prediction as in-process, 4xx for junk, clean SIGTERM exit."""
    port, started = _port(), time.monotonic()
    cid = _run(image, port, mount)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - started > 120:
                raise SystemExit(f"{label}: not ready in 120 s\n{_logs(cid)}")
            time.sleep(0.2)
        ready = time.monotonic() - started
        runtime = requests.get(f"{base}/v2/models/alexnet", timeout=5).json()["parameters"]["runtime"]
        served = requests.post(f"{base}/predict", files={"image": (photo.name, photo.read_bytes())}, timeout=30)
        assert served.status_code == 200, served.text
        version = ref_version or int(served.json()["model_version"])  # a baked version is always "1"
        meta = model_store.read_metadata(store, version)
        model = runtimes.load(model_store.version_dir(store, version), meta, runtime)
        expected = model.predict(model_store.preprocess_image(photo.read_bytes(), np.uint8)[None])[0]
        got = [served.json()["probabilities"][c] for c in meta["class_names"]]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        bad = requests.post(f"{base}/predict", files={"image": ("notes.txt", b"not an image")}, timeout=30)
        assert bad.status_code == 400 and "error" in bad.json(), bad.text
        uid = subprocess.run([ENGINE, "exec", cid, "id", "-u"], capture_output=True, text=True).stdout.strip()
        assert uid == "10001", uid
    finally:
        stop_started = time.monotonic()
        subprocess.run([ENGINE, "stop", "-t", str(GRACEFUL + 10), cid], capture_output=True, check=True)
        stopped = time.monotonic() - stop_started
        code = subprocess.run([ENGINE, "inspect", cid, "--format", "{{.State.ExitCode}}"], capture_output=True,
                              text=True).stdout.strip()
        errors = [line for line in _logs(cid).splitlines() if "Traceback" in line or "[ERROR]" in line]
        subprocess.run([ENGINE, "rm", "-f", cid], capture_output=True)
    assert code == "0" and stopped < GRACEFUL, f"{label}: stop took {stopped:.1f} s, exit {code}"
    assert not errors, f"{label}: errors in the container log: {errors}"
    print(f"{label}: ready {ready:.1f} s after run; runtime {runtime}; /predict equals in-process "
          f"(max diff {np.abs(np.asarray(got) - expected).max():.1e}); junk upload 400; uid 10001, read-only root; "
          f"SIGTERM -> exit 0 in {stopped:.1f} s", flush=True)


def check_config(image: str) -> None:
    """The built image's own configuration: non-root user, port 8080, the gunicorn CMD, a /healthz health
    check, unbuffered output, and no training stack or build tools in the serving image."""
    info = json.loads(subprocess.run([ENGINE, "image", "inspect", image], capture_output=True, text=True,
                                     check=True).stdout)[0]
    config = info["Config"]
    health = config.get("Healthcheck") or info.get("Healthcheck") or {}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"].split(":")[0] not in ("", "root", "0"), config["User"]
    assert "8080/tcp" in config["ExposedPorts"] and env["PORT"] == "8080", (config["ExposedPorts"], env)
    assert config["Cmd"] == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], config["Cmd"]
    assert any("/healthz" in part for part in health.get("Test", [])), health
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"].startswith("/opt/venv/bin"), env
    probe = ("import importlib.util as u, shutil; "
             "print([m for m in ('tensorflow', 'keras', 'nncf', 'matplotlib') if u.find_spec(m)], "
             "[t for t in ('gcc', 'cc', 'make') if shutil.which(t)])")
    found = subprocess.run([ENGINE, "run", "--rm", "--network", "none", image, "python", "-c", probe],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[] []", f"the serving image holds {found}"
    print(f"config: user {config['User']}, port 8080, gunicorn CMD, /healthz check, no training stack, "
          "no build tools", flush=True)


def check_no_model(image: str) -> None:
    """An empty store: exit status 4 and one line saying what to do."""
    empty = tempfile.mkdtemp(prefix="empty-store-")
    os.chmod(empty, 0o755)
    cid = _run(image, _port(), empty)
    try:
        code = subprocess.run([ENGINE, "wait", cid], capture_output=True, text=True, timeout=120).stdout.strip()
        lines = [line for line in _logs(cid).splitlines() if "cannot start" in line]
    finally:
        subprocess.run([ENGINE, "rm", "-f", cid], capture_output=True)
        shutil.rmtree(empty, ignore_errors=True)
    assert code == "4" and len(lines) == 1 and "no model" in lines[0], (code, lines)
    print(f"no model: exit 4 with one line: {lines[0].strip()}", flush=True)


def main() -> int:
    """Check the mounted-store image, the baked image (when given) and the no-model exit."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--baked-image", help="the same image built after `make bake`")
    parser.add_argument("--store", required=True, help="local model store (mounted read-only)")
    parser.add_argument("--photo", required=True)
    args = parser.parse_args()
    store, photo = Path(args.store).resolve(), Path(args.photo)
    size = subprocess.run([ENGINE, "image", "inspect", args.image, "--format", "{{.Size}}"], capture_output=True,
                          text=True, check=True).stdout.strip()
    print(f"{ENGINE}: image {args.image} {int(size) / 1e6:.0f} MB", flush=True)
    check_config(args.image)
    check_serving(args.image, photo, store, str(store), "store mounted read-only")
    if args.baked_image:
        # The baked image holds the store's newest version as version 1.
        check_serving(args.baked_image, photo, store, None, "model baked in", model_store.latest_version(store))
    check_no_model(args.image)
    print("test-image: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Docker image's sources, checked without a container engine: hadolint, requirements, what the image
copies, and its exact CMD run locally. The built image itself (user, port, CMD, health check, contents,
serving, stop) is checked by `make test-image` (deploy/podman/check_image.py)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests import images
from tests.conftest import ROOT, free_port, stop, wait_ready

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE.split("\nFROM ")[-1]


def _env() -> dict[str, str]:
    text = re.search(r"^ENV (.+?)(?=^\S)", _final_stage(), re.M | re.S).group(1)
    return dict(re.findall(r"(\w+)=(\S+)", text.replace("\\\n", " ")))


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.train", "Dockerfile.score"])
def test_hadolint_clean(dockerfile):
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(ROOT / dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_serving_requirements_have_no_training_stack():
    serve = (ROOT / "requirements-serve.txt").read_text().lower()
    for heavy in ("tensorflow", "keras", "h5py", "nncf", "matplotlib", "tqdm"):
        assert not re.search(rf"^{heavy}\b", serve, re.M), heavy
    assert re.search(r"^openvino==", serve, re.M)


def test_dockerignore_keeps_artifacts_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "data/", "model_store/alexnet/", "*.h5", ".git"):
        assert entry in ignored


def test_image_cmd_serves_a_prediction(trained_store, tmp_path):
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", _final_stage(), re.M).group(1))
    assert cmd == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    env = {**_env(), "MODEL_STORE": str(trained_store), "MODEL_CACHE_DIR": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    port = free_port()
    env["PORT"] = str(port)
    # The image's PATH puts its venv first; here the project venv plays that part.
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    assert shutil.which(cmd[0], path=env["PATH"])
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        resp = requests.post(f"{base}/predict", files={"image": ("x.jpg", images.encode(images.gradient(), "JPEG"))},
                             timeout=30)
        assert resp.status_code == 200 and resp.json()["model_version"] == "1"
    finally:
        assert stop(proc) == 0
        log.close()


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.train", "Dockerfile.score"])
def test_image_copies_every_package_its_code_imports(dockerfile):
    """Every first-party package that the copied code imports is copied too (explain/ once was not)."""
    text = (ROOT / dockerfile).read_text()
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", text, re.M))
    files = re.findall(r"^COPY ([\w.]+\.py)\b", text, re.M)
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    sources = [path for name in copied for path in (ROOT / name).rglob("*.py")]
    sources += [ROOT / name for line in files for name in line.split() if name.endswith(".py")]
    imported = set()
    for path in sources:
        imported |= set(re.findall(r"^\s*(?:from|import) (\w+)", path.read_text(), re.M)) & packages
    assert {"model_store", "runtimes"} <= copied and "explain" in imported
    assert imported <= copied, imported - copied


@pytest.mark.parametrize("path", ["deploy/service.yaml", "deploy/README.md", "deploy/kubernetes.yaml",
                                  "deploy/vertex-multiworker.yaml", "deploy/tfjob.yaml"])
def test_deploy_files_exist(path):
    assert (ROOT / path).is_file()


LOCKS = {"requirements-serve.lock": ["requirements-serve.txt"],
         "requirements-serve-tensorflow.lock": ["requirements-serve.txt", "requirements-tensorflow.txt"],
         "requirements-train.lock": ["requirements.txt"], "requirements-beam.lock": ["requirements-beam.txt"],
         "requirements-dev.lock": ["requirements-dev.txt"]}


def _pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line, following -r includes."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            out |= _pins(path.parent / line[3:].strip())
        elif "==" in line:
            name, version = line.rstrip(" \\").split("==")
            out[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return out


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_files_pin_what_the_requirements_name_with_hashes(lock):
    """Every direct requirement is in its lock at the same version (a changed requirements*.txt needs
    `make lock`), and every locked package carries its hashes (pip --require-hashes)."""
    locked = _pins(ROOT / lock)
    for source in LOCKS[lock]:
        wanted = _pins(ROOT / source)
        assert {k: locked.get(k) for k in wanted} == wanted, source
    blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / lock).read_text().split("\n", 2)[2].strip())
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    if lock == "requirements-serve.lock":
        assert not {"tensorflow", "keras", "nncf", "matplotlib", "opencv-python-headless"} & set(locked)


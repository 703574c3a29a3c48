"""Every curl example in README.md and deploy/README.md, run against the live gunicorn server."""

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.images import valid_images

DOCS = ("README.md", "deploy/README.md")
HOSTS = re.compile(r"localhost:8000|\$URL")


def curl_examples() -> list[tuple[str, str]]:
    """(doc, command) for each fenced line that runs curl, with backslash continuations joined."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for block in re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith("curl ") and HOSTS.search(line):
                    found.append((doc, line))
    return found


EXAMPLES = curl_examples()


def test_the_docs_have_curl_examples():
    assert len(EXAMPLES) >= 12, EXAMPLES  # the README's API block and the deploy check


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("doc,command", EXAMPLES, ids=[f"{d}:{c[:60]}" for d, c in EXAMPLES])
def test_curl_example_works(live_server, tmp_path, sample_jpeg, doc, command):
    (tmp_path / "dog.jpg").write_bytes(sample_jpeg)
    (tmp_path / "a.jpg").write_bytes(sample_jpeg)
    (tmp_path / "b.png").write_bytes(valid_images()["png"])
    # Every curl fails on a 4xx/5xx (the doc must show working calls); one command line may hold several.
    script = "set -e\ncurl() { command curl -sS --fail-with-body \"$@\"; echo; }\n" + HOSTS.sub(live_server, command)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{doc}: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    for out in filter(None, proc.stdout.splitlines()):
        if out.startswith("{"):
            body = json.loads(out)
            assert "error" not in body, out
            if "/predict" in command or "infer" in command:
                assert {"label", "predictions", "outputs"} & set(body), out

"""The dataset downloader against a small archive served by a local HTTP server."""

import functools
import http.server
import threading
import zipfile

import pytest

from tests import images
from training.__main__ import main


@pytest.fixture
def archive_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    jpeg = images.encode(images.gradient(), "JPEG")
    with zipfile.ZipFile(served / "kagglecatsanddogs_5340.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"PetImages/Cat/{i}.jpg", jpeg)
            zf.writestr(f"PetImages/Dog/{i}.jpg", jpeg)
        zf.writestr("PetImages/Cat/666.jpg", b"")  # the real archive has empty/corrupt files
        zf.writestr("PetImages/Dog/Thumbs.db", b"\x00" * 32)
        zf.writestr("PetImages/Dog/../../../escape.jpg", jpeg)  # must not escape dest
        zf.writestr("readme[1].txt", b"licence text")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_unpacks_folder_per_class(archive_server, tmp_path, capsys):
    dest = tmp_path / "data"
    assert main(["download", "--dest", str(dest), "--url", f"{archive_server}/kagglecatsanddogs_5340.zip"]) == 0
    assert sorted(p.name for p in (dest / "cats").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "666.jpg"]
    assert sorted(p.name for p in (dest / "dogs").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "Thumbs.db"]
    assert not list(tmp_path.rglob("escape.jpg"))  # a ../ member is never extracted
    assert not list(dest.glob("*.zip*"))  # archive removed, no partial file left
    # The training loader then skips the empty file and ignores Thumbs.db.
    from training.inputs import data

    image_set = data.load_folder(dest)
    assert image_set.counts() == {"cats": 3, "dogs": 3}
    assert len(image_set.skipped) == 1


def test_download_http_error_leaves_nothing(archive_server, tmp_path):
    import requests

    dest = tmp_path / "data"
    with pytest.raises(requests.HTTPError):
        main(["download", "--dest", str(dest), "--url", f"{archive_server}/missing.zip"])
    assert not (dest / "kagglecatsanddogs.zip").exists()

"""The upload page in real headless Chromium (Debian's chromium, driven by Playwright)."""

import contextlib
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# `SCREENSHOT=docs/upload-page.png make test` refreshes the README's screenshot.
SCREENSHOT = os.environ.get("SCREENSHOT")


@contextlib.contextmanager
def uploaded(base: str, files: list):
    """Headless Chromium on the upload page at base, the files chosen and classified: yields (page, page
    errors); the caller asserts on both."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = b.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.set_input_files("#image", [str(f) for f in files])
        page.wait_for_selector(f"text=Done: {len(files)} image(s).", timeout=30_000)
        yield page, errors
        b.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_upload_shows_label_bars_and_why(browser, live_server, tiny_data, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The 400 for notes.jpg is logged by the browser as a failed load; anything else is a bug.
    page.on("console", lambda msg: msg.type == "error" and "status of 400" not in msg.text
            and errors.append(msg.text))
    page.goto(live_server + "/")
    # One flow: choosing photos classifies them; no button left that would then complain about an empty input.
    assert not page.locator("button[type=submit]").is_visible()
    dog = sorted((tiny_data["val"] / "dogs").iterdir())[0]
    cat = sorted((tiny_data["val"] / "cats").iterdir())[0]
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"definitely not a picture")
    page.set_input_files("#image", [str(dog), str(cat), str(bad)])
    page.wait_for_selector("text=Done: 3 image(s).", timeout=30_000)
    cards = page.locator(".results .card")
    assert cards.count() == 3
    labels = [t.strip() for t in page.locator(".card .label").all_inner_texts()]
    # Display names ("cat", "dog"), not the folder names.
    assert len(labels) == 2 and all(t.split()[0] in ("cat", "dog") and t.endswith("%") for t in labels)
    assert page.locator(".card progress").count() == 4  # two bars per classified image
    assert "not a recognised image" in page.locator(".card.failed .error").inner_text()
    # "Why?" fetches /explain and shows the overlay beside the photo.
    page.locator(".card .why-button").first.click()
    page.wait_for_selector(".card .pics img.overlay", timeout=60_000)
    assert _loaded(page, ".card .pics img.overlay")
    assert "moved the answer" in page.locator(".card p.why").first.inner_text()
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert errors == []  # no CSP violations or script errors
    page.close()


def test_form_works_without_javascript(browser, live_server, tiny_data):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + "/")
    page.set_input_files("#image", str(sorted((tiny_data["val"] / "cats").iterdir())[0]))
    page.check("input[name=explain]")
    page.click("button[type=submit]")
    page.wait_for_selector(".card .label", timeout=60_000)
    assert page.locator(".card .label").inner_text().split()[0] in ("cat", "dog")
    assert page.locator(".card progress").count() == 2
    assert _loaded(page, ".card .pics img.overlay")  # the heatmap, inline, allowed by the CSP's img-src data:
    context.close()

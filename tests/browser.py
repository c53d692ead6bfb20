"""What every browser test shares: the portal served from a thread, Debian's chromium, and page checks.

Drives Debian's chromium through Playwright; no browser is downloaded. Without
/usr/bin/chromium the browser tests skip (`.ci/run` installs it).
"""

import contextlib
import os
import threading

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from tests.conftest import PASSWORD, config_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="needs Debian's chromium at /usr/bin/chromium: run `apt-get install chromium` to enable this test",
)


def browser_app(folder, database="browser.db"):
    """The portal as production runs it (CSRF on), over a fresh SQLite file in `folder`, tables created."""
    app = create_app(
        config_for(f"sqlite:///{folder / database}", WTF_CSRF_ENABLED=True), instance_path=str(folder / "instance")
    )
    with app.app_context():
        db.create_all()
    return app


@contextlib.contextmanager
def served(app):
    """Serves `app` on a free local port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            db.engine.dispose()


@contextlib.contextmanager
def browser_page(scripts=False, viewport=DESKTOP):
    """A fresh chromium page; scripts off by default, since every step must work with plain links and forms."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport, java_script_enabled=scripts)
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.scripts_enabled = scripts
            yield page
        finally:
            browser.close()


def sign_in(page, base, email, password=PASSWORD):
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def serious_accessibility_violations(page):
    """Runs axe-core (pinned through axe-playwright-python) on the page; returns serious and critical findings.

    axe needs scripts: on a page opened with scripts off this opens the same URL, with the
    same cookies, in a scripted page of the same browser.
    """
    from axe_playwright_python.sync_playwright import Axe

    target = page
    scratch = None
    if not getattr(page, "scripts_enabled", True):
        scratch = page.context.browser.new_context(
            viewport=page.viewport_size, java_script_enabled=True, storage_state=page.context.storage_state()
        )
        target = scratch.new_page()
        target.goto(page.url)
    try:
        results = Axe().run(target)
    finally:
        if scratch is not None:
            scratch.close()
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(" ".join(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def sideways_overflow(page):
    """How many CSS pixels the page is wider than the window (0 when it fits)."""
    width, window = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return max(0, width - window)

"""`make screenshots`: the README's pictures, taken from a fresh demo in Debian's chromium.

Starts `python -m tools.demo` in a scratch instance folder on free ports, signs in as the
demo's support account and saves, at 1280 px wide, the Bookings timeline (one day) and
the status page of the "Meeting rooms" integration as PNG files in docs/screenshots/.
Then stops the demo as Ctrl-C would.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
READY = "i-Reserve demo is running"
START_SECONDS = 120
#: The day the day view shows: the demo's second day from today holds a booking and a clash.
SHOWN_DAY = (date.today() + timedelta(days=2)).isoformat()
#: Each picture: file name, the link texts that lead to the page from the signed-in home, and the query.
PICTURES = [
    ("timeline.png", ["Bookings"], f"date={SHOWN_DAY}"),
    ("status.png", ["Integrations", "Meeting rooms"], ""),
]


def main():
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, _demo(Path(scratch)) as (base, email, password):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/login")
            page.get_by_label("E-mail").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state()
            organisation = _organisation_url(page, base)
            for name, links, query in PICTURES:
                page.goto(organisation)
                for text in links:
                    page.get_by_role("link", name=text, exact=True).first.click()
                    page.wait_for_load_state()
                if query:
                    page.goto(f"{page.url.split('?')[0]}?{query}")
                page.screenshot(path=str(OUT / name), full_page=True)
                print(f"wrote {(OUT / name).relative_to(ROOT)}")
            browser.close()


def _organisation_url(page, base):
    page.goto(f"{base}/orgs")
    page.get_by_role("link", name="Fabrikam", exact=True).first.click()
    page.wait_for_load_state()
    return page.url


class _demo:
    """The demo as a context: yields (portal URL, support e-mail, password); stops it on exit."""

    def __init__(self, instance):
        self.instance = instance

    def __enter__(self):
        portal_port, graph_port = _free_port(), _free_port()
        environment = {
            **os.environ,
            "INSTANCE_PATH": str(self.instance),
            "BIND": f"127.0.0.1:{portal_port}",
            "DEMO_GRAPH_PORT": str(graph_port),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.demo"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        printed = ""
        deadline = time.monotonic() + START_SECONDS
        while READY not in printed or "sign in as" not in printed:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise SystemExit(f"The demo did not start:\n{printed}")
            printed += line
        credentials = re.search(r"sign in as (\S+) / (\S+)", printed)
        return f"http://127.0.0.1:{portal_port}", credentials[1], credentials[2]

    def __exit__(self, *exc):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        return False


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()

"""`make screenshots`: the README's pictures, taken from a fresh demo in Debian's chromium.

Starts `python -m tools.demo` in a scratch instance folder on free ports, signs in as the
demo's support account and saves, at 1280 px wide, the Bookings timeline (one day) and
the status page of the "Meeting rooms" integration as PNG files in docs/screenshots/.
Then stops the demo as Ctrl-C would.
"""

import tempfile
from datetime import date, timedelta
from pathlib import Path

from tools.demo_process import running_demo

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
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
    with tempfile.TemporaryDirectory() as scratch, running_demo(Path(scratch)) as demo:
        base = demo.portal
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/login")
            page.get_by_label("E-mail").fill(demo.email)
            page.get_by_label("Password").fill(demo.password)
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


if __name__ == "__main__":
    main()

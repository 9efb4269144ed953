"""The real console in Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium): one shared
browser for the whole walk. Screenshots of each page go to $ESCALATOR_SCREENSHOTS (default
.screenshots/console/, named in the README)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.console.conftest import PASSWORDS, Console, make_console
from tests.support.marks import ONE_AT_A_TIME

CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = Path(
    os.environ.get("ESCALATOR_SCREENSHOTS", Path(__file__).resolve().parents[2] / ".screenshots" / "console")
)

pytestmark = [
    pytest.mark.skipif(
        CHROMEDRIVER is None, reason="chromedriver not installed (apt-get install chromium chromium-driver)"
    ),
    ONE_AT_A_TIME,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Console, str]]:
    made = make_console(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'escalator.db'}")
    made.failed_event()
    server = make_server("localhost", 0, made.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield made, f"http://localhost:{server.server_port}"
    server.shutdown()
    thread.join(5)
    made.rt.close()


@pytest.fixture(scope="module")
def browser(served) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(2)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str, height: int = 900) -> None:
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(height, min(full + 120, 3000)))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1280, 900)


def wait_for(driver, url_part: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: url_part in d.current_url)


def log_in(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/console/decisions")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "login").click()
    wait_for(driver, "/console/decisions")


def test_a_viewer_walks_the_console(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    console, base = served
    driver = browser
    driver.get(f"{base}/console/sla")
    assert "/console/login" in driver.current_url  # no page without a session
    shot(driver, "login")
    log_in(driver, base, "vera")
    assert driver.find_element(By.CSS_SELECTOR, ".who").text == "vera · viewer"
    shot(driver, "decisions")

    # Filter: only Zendesk's decisions.
    Select(driver.find_element(By.ID, "f-platform")).select_by_visible_text("zendesk")
    driver.find_element(By.ID, "apply-filters").click()
    wait_for(driver, "platform=zendesk")
    platforms = [
        td.text for td in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr td:nth-child(3)")
    ]
    assert platforms == ["zendesk", "zendesk"]
    assert "platform=zendesk" in driver.current_url

    # Open a decision in full.
    driver.find_element(By.CSS_SELECTOR, "#decisions a.seq").click()
    wait_for(driver, "/console/decisions/7")
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Decision 7")
    assert "Position" in driver.find_element(By.ID, "chain").text
    shot(driver, "decision")

    # Find a ticket by key from the search box on every page.
    box = driver.find_element(By.ID, "ticket-search")
    box.send_keys("SUP-2", Keys.ENTER)
    wait_for(driver, "/console/tickets/jira/10002")
    assert driver.find_element(By.ID, "ticket-title").text == "jira SUP-2"
    clocks = driver.find_element(By.ID, "clocks").text
    assert "2026-11-05 18:00 CET" in clocks and "breached" in clocks
    assert (
        driver.find_element(By.ID, "platform-link").get_attribute("href")
        == f"{console.rt.config.platforms.jira.url}/browse/SUP-2"
    )
    shot(driver, "ticket")

    # The SLA board, which refreshes itself.
    driver.find_element(By.LINK_TEXT, "SLA board").click()
    wait_for(driver, "/console/sla")
    rows = driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["SUP-2", "502", "SUP-4"]
    refresh = driver.find_element(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]').get_attribute("content")
    assert refresh == "30"
    shot(driver, "sla-board")

    # Reports: the charts draw.
    driver.find_element(By.LINK_TEXT, "Reports").click()
    wait_for(driver, "/console/reports")
    chart = driver.find_element(By.CSS_SELECTOR, "#report-escalations svg.chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    assert len(driver.find_elements(By.CSS_SELECTOR, "section.report")) == 6
    shot(driver, "reports")

    driver.find_element(By.LINK_TEXT, "Integrity").click()
    wait_for(driver, "/console/integrity")
    assert "audit chain" in driver.find_element(By.TAG_NAME, "main").text.lower()
    assert driver.find_element(By.ID, "checkpoints").is_displayed()  # the signed checkpoints' list
    assert "Records since" in driver.find_element(By.ID, "checkpoint-status").text
    shot(driver, "integrity")

    # Failed events with the platform's message, and the inbox backlog.
    driver.find_element(By.LINK_TEXT, "Operations").click()
    wait_for(driver, "/console/operations")
    assert "Field 'priority' cannot be set" in driver.find_element(By.ID, "events").text
    assert "failed 1" in driver.find_element(By.ID, "health").text
    assert driver.find_elements(By.CSS_SELECTOR, "button.retry") == []  # a viewer cannot retry
    shot(driver, "operations")

    driver.find_element(By.ID, "logout").click()
    wait_for(driver, "/console/login")
    driver.get(f"{base}/console/decisions")
    assert "/console/login" in driver.current_url  # the session is gone


def test_an_operator_retries_a_failed_event(served, browser):
    from selenium.webdriver.common.by import By

    console, base = served
    log_in(browser, base, "otto")
    browser.find_element(By.LINK_TEXT, "Operations").click()
    wait_for(browser, "/console/operations")
    shot(browser, "operations-operator")
    browser.find_element(By.CSS_SELECTOR, "button.retry").click()
    wait_for(browser, "/console/operations")
    assert "is queued again" in browser.find_element(By.CSS_SELECTOR, ".flash.ok").text
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "/console/login")

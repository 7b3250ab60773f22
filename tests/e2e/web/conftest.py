"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the web's browser tests.

Skips with the reason when Selenium, /usr/bin/chromium or /usr/bin/chromedriver is missing
(``bash scripts/setup-browser.sh`` installs the browser). Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RECSYS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RECSYS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web"
DESKTOP = (1280, 900)
PHONE = (390, 844)


class Browser:
    """A thin wrapper over the Selenium driver: waits, keys, full-page screenshots."""

    def __init__(self, driver: Any) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, 15)

    def size(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def visible(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def wait_url(self, fragment: str) -> None:
        """Wait for the URL and for the new document to finish loading."""
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.url_contains(fragment))
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def wait_text(self, selector: str, text: str) -> None:
        """Wait until ``selector``'s text contains ``text`` (re-finding it if the page is replaced)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text))

    def no_horizontal_scroll(self) -> bool:
        return bool(
            self.driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;"
            )
        )

    def screenshot(self, name: str) -> Path:
        """A full-page PNG at the current window width, saved as test-artifacts/web/<name>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return window.innerHeight;")
        full = self.driver.execute_script("return document.documentElement.scrollHeight;")
        size = self.driver.get_window_size()
        self.driver.set_window_size(
            size["width"], min(max(int(full), int(height)), 4000) + size["height"] - height
        )
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(size["width"], size["height"])
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e 'web[test]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} not found: run scripts/setup-browser.sh (Debian chromium, chromium-driver)")
    profile = tempfile.mkdtemp(prefix="recsys-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager's downloads do not work here.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

"""Real headless Chromium for the dashboard tests, driven by Selenium 4 through Debian's chromium-driver.

Selenium's calls block, and the dashboard under test runs on the test's own event loop: every
call goes to a worker thread (``await browser.run(fn)``) so the server keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

__all__ = ["Browser", "chromedriver", "open_browser"]

T = TypeVar("T")
WAIT_S = 10.0  # a busy test machine; a healthy page answers in milliseconds


def chromedriver() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (chromium, driver) if chromium and driver else None


class Browser:
    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.to_thread(call)

    async def get(self, url: str) -> None:
        await self.run(lambda: self.driver.get(url))

    async def wait_for(self, script: str, *args: Any, timeout_s: float = WAIT_S) -> Any:
        """Poll ``script`` (JavaScript returning a value) until it returns something truthy."""
        from selenium.webdriver.support.wait import WebDriverWait

        def until() -> Any:
            return WebDriverWait(self.driver, timeout_s, poll_frequency=0.02).until(
                lambda driver: driver.execute_script(script, *args)
            )

        return await self.run(until)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(lambda: self.driver.execute_script(script, *args))

    async def type_into(self, css: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        await self.run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).send_keys(text))

    async def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        await self.run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).click())

    async def press(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        await self.run(lambda: ActionChains(self.driver).send_keys(keys).perform())

    async def screenshot(self, path: Path) -> None:
        await self.run(lambda: self.driver.save_screenshot(str(path)))

    async def log_in(self, base: str, token: str) -> None:
        await self.get(f"{base}/dashboard")
        await self.wait_for("return !document.getElementById('login').hidden")
        await self.type_into("#token", token)
        await self.click("#login button")
        await self.wait_for("return document.getElementById('connection').textContent === 'live'")


@asynccontextmanager
async def open_browser(width: int = 1280, height: int = 800) -> AsyncIterator[Browser]:
    found = chromedriver()
    if found is None:
        pytest.skip("chromium and chromium-driver are not installed (make setup installs them as root)")
    chromium, driver_path = found
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        f"--window-size={width},{height}",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox
        options.add_argument("--no-sandbox")
    driver = await asyncio.to_thread(lambda: webdriver.Chrome(options=options, service=Service(driver_path)))
    try:
        yield Browser(driver)
    finally:
        await asyncio.to_thread(driver.quit)

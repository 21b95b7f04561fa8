"""The explorer driven in real headless Chromium (selenium + Debian's chromium-driver): a query typed
and submitted, a sample opened, a selection exported and fed to build_shards.

Chromium reaches only the explorer on 127.0.0.1: every other address goes to a proxy on a closed
loopback port, host names resolve to nothing, and background networking is off.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.build.uid_lists import read_uid_list
from pipeline.explore.server import ExplorerServer
from tests.build.conftest import read_final
from tests.stages import build, build_options

CHROMIUM = os.environ.get("CORPUSFORGE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CORPUSFORGE_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = (
    "the explorer's browser tests need Debian's chromium and chromium-driver: `make test` installs "
    "them, or `sudo apt-get install -y chromium chromium-driver`"
)


def _closed_port() -> int:
    """A loopback port nothing listens on (the black-hole proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def explorer_server(explorer) -> Iterator[ExplorerServer]:
    with ExplorerServer(explorer) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(INSTALL_HINT)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        f"--proxy-server=http://127.0.0.1:{_closed_port()}",
        "--proxy-bypass-list=127.0.0.1",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    # Selenium Manager must not look for drivers on the internet: the driver is given.
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def _text_once(browser: Any, by: str, value: str, ready: Callable[[str], bool], timeout: float = 60) -> str:
    """The text of element ``value`` once ``ready(text)`` holds, across page loads (an element of
    the page being replaced goes stale; it is looked up again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def text(driver: Any) -> str | None:
        found = driver.find_element(by, value).text
        return found if ready(found) else None

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, timeout, ignored_exceptions=ignored).until(text)


def _wait_for_file(folder: Path, name: str, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    path = folder / name
    while time.monotonic() < deadline:
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.2)
    raise AssertionError(f"{name} was not downloaded into {folder}: {list(folder.iterdir())}")


@pytest.mark.slow
def test_search_open_a_sample_and_export_a_selection_for_build_shards(
    spark, explorer_server: ExplorerServer, browser, explored: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(explorer_server.url + "/")
    box = browser.find_element(By.ID, "q")
    box.send_keys("two red circles")
    Select(browser.find_element(By.ID, "status")).select_by_value("kept")
    browser.find_element(By.ID, "go").click()
    # The search loads a new page: wait for its summary (the old page's element goes stale).
    summary = _text_once(browser, By.ID, "summary", lambda text: "Nearest images to" in text)
    assert "Nearest images to “two red circles”" in summary
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#results .card .caption")]
    assert len(captions) == 10  # the page size
    assert sum("red" in c for c in captions[:5]) >= 3, captions
    browser.save_screenshot(str(tmp_path / "search.png"))

    first = browser.find_element(By.CSS_SELECTOR, "#results .card")
    uid, caption = first.get_attribute("data-uid"), captions[0]
    first.find_element(By.CSS_SELECTOR, "a.open").click()
    assert _text_once(browser, By.ID, "caption", lambda text: text == caption) == caption
    assert browser.find_element(By.ID, "fate").text == "kept"
    assert browser.execute_script("return document.querySelector('img.full').naturalWidth") > 0
    browser.back()

    _text_once(browser, By.ID, "total", lambda text: text.isdigit())
    browser.find_element(By.ID, "export-txt").click()
    exported = _wait_for_file(browser.downloads, "selection.txt")
    uids = read_uid_list(str(exported))
    total = int(browser.find_element(By.ID, "total").text)
    assert uid in uids and len(uids) == total

    dataset = tmp_path / "dataset"
    shutil.copytree(explored, dataset)
    shutil.rmtree(dataset / "final")
    build(
        spark,
        build_options(["--dataset", str(dataset), "--include-uids", str(exported), "--min-shards", "0"]),
    )
    built = {key for shard in read_final(dataset) for key, _ in shard}
    assert built == set(uids)

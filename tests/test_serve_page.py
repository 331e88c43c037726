"""The web page in a real headless browser (Debian's chromium, driven by selenium)."""

import os
import shutil

import pytest

pytest.importorskip("fastapi")
from serve_process import build_served_index, call, running_server

REQUEST = "upbeat tropical music with steel drums"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _browser():
    missing = [
        name for name, path in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not path
    ]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        reason = f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI installs them: their absence there is a broken set-up
        pytest.skip(reason)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=900,900",
    ):
        options.add_argument(flag)
    # explicit driver path: selenium never tries to download one
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def test_search_shows_the_apis_top_result(browser, tmp_path, tiny_model_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    index_dir = build_served_index(tmp_path, tiny_model_dir)
    with running_server(index_dir) as url:
        status, api = call(f"{url}/recommend", {"request": REQUEST, "k": 10})
        assert status == 200
        browser.get(url + "/")
        box = browser.find_element(By.ID, "request")
        box.send_keys(REQUEST)
        box.submit()
        WebDriverWait(browser, 60).until(
            ready.presence_of_element_located((By.CSS_SELECTOR, "#results li.result"))
        )
        items = browser.find_elements(By.CSS_SELECTOR, "#results li.result")
        shown = [item.get_attribute("data-id") for item in items]
        assert shown == [r["id"] for r in api["results"]]

        top, expected = items[0], api["results"][0]
        assert top.find_element(By.CSS_SELECTOR, ".score").text == f"{expected['score']:.3f}"
        tags = top.find_elements(By.CSS_SELECTOR, ".descriptor")
        assert [t.text for t in tags] == expected["descriptors"]
        highlighted = {t.text for t in top.find_elements(By.CSS_SELECTOR, ".descriptor.match")}
        assert highlighted == {m["descriptor"] for m in expected["matching"]}
        link = top.find_element(By.CSS_SELECTOR, "a.link").get_attribute("href")
        assert link == expected["link"]

        shot = tmp_path / "serve-page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000

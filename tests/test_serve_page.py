"""The web page at / in a real headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium): upload an image, wait for the overlay and the table, check them, screenshot."""
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("fastapi_offline", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("selenium", reason="needs selenium (test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("needs Chromium and ChromeDriver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

import cv2  # noqa: E402
import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import yolact  # noqa: E402
from yolact.data.synth import make_image  # noqa: E402
from yolact.serve.app import ServeSettings, create_app  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve_page.png"


@pytest.fixture(scope="module")
def server():
    model = yolact.load(yolact.demo_weights_path())
    app = create_app(model, ServeSettings(), {"precision": "fp32", "backend": "torch"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", model
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def test_page_uploads_and_shows_overlay_and_table(server, browser, tmp_path):
    url, model = server
    img, _ = make_image(np.random.default_rng(11), 256, 256, style="simple", max_objects=4)
    path = tmp_path / "shapes.png"
    cv2.imwrite(str(path), img)
    want = model.predict(img, score_threshold=0.3)

    browser.get(url + "/")
    WebDriverWait(browser, 20).until(lambda d: "yolact_resnet18_slim" in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")

    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    assert len(rows) == len(want) > 0  # the slider starts at 0.30: the same detections as the API
    classes = [r.find_elements(By.TAG_NAME, "td")[2].text.strip() for r in rows]
    assert classes == want.names
    size = browser.execute_script("const c = document.getElementById('canvas'); return [c.width, c.height];")
    assert size == [256, 256]
    # The overlay is drawn: the canvas differs from the plain image where the best mask lies.
    m = want.masks[0]
    ys, xs = np.nonzero(m)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    px = browser.execute_script(
        f"return Array.from(document.getElementById('canvas').getContext('2d').getImageData({x}, {y}, 1, 1).data);")
    b, g, r = (int(v) for v in img[y, x])
    assert abs(px[0] - r) + abs(px[1] - g) + abs(px[2] - b) > 30, (px, (r, g, b))

    # Toggling an instance off removes its colour; the slider hides low scores client-side.
    rows[0].find_element(By.TAG_NAME, "input").click()
    px_off = browser.execute_script(
        f"return Array.from(document.getElementById('canvas').getContext('2d').getImageData({x}, {y}, 1, 1).data);")
    assert abs(px_off[0] - r) + abs(px_off[1] - g) + abs(px_off[2] - b) < abs(px[0] - r) + abs(px[1] - g) + abs(px[2] - b)
    rows[0].find_element(By.TAG_NAME, "input").click()
    top = float(want.scores.max())
    browser.execute_script(f"const s = document.getElementById('score'); s.value = {min(top + 0.005, 1.0)};"
                           "s.dispatchEvent(new Event('input'));")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == 0
    browser.execute_script("const s = document.getElementById('score'); s.value = 0.3; s.dispatchEvent(new Event('input'));")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == len(want)
    assert "detections shown" in browser.find_element(By.ID, "status").text

    # The README's picture is refreshed only when asked (YOLACT_UPDATE_DOCS=1): a test run
    # leaves the checkout as it found it.
    shot = SCREENSHOT if os.environ.get("YOLACT_UPDATE_DOCS") == "1" else tmp_path / "serve_page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

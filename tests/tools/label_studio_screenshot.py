"""Screenshot of Label Studio showing YOLACT's pre-labels (docs/label_studio_prelabels.png, #31).

Needs a running Label Studio (tests/tools/label_studio_env.sh makes one; start it with
USE_DEFAULT_BANNED_SUBNETS=false and --enable-legacy-api-token), Debian's chromium and
chromedriver, and the test venv (label-studio-sdk, selenium). It starts
``yolact serve --label-studio`` with the built-in demo model, makes a project with a
PolygonLabels config for the demo's shape classes, uploads a synthetic picture, retrieves the
predictions and photographs the labelling page.

    .venv/bin/python tests/tools/label_studio_screenshot.py --url http://127.0.0.1:8080 \\
        --token TOKEN --email test@example.com --password test-pass-123 --out docs/label_studio_prelabels.png
"""
import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--out", default="docs/label_studio_prelabels.png")
    ap.add_argument("--brush", action="store_true", help="BrushLabels instead of PolygonLabels")
    args = ap.parse_args()

    from label_studio_sdk import LabelStudio
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    from yolact.data.synth import SHAPE_CLASSES, make_image

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LABEL_STUDIO_URL=args.url, LABEL_STUDIO_API_KEY=args.token)
    backend = subprocess.Popen([sys.executable, "-m", "yolact", "serve", "--label-studio", "--port", str(port)], env=env)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except Exception:
                time.sleep(1)
        tag = "BrushLabels" if args.brush else "PolygonLabels"
        labels = "".join(f'<Label value="{c}"/>' for c in SHAPE_CLASSES)
        config = f'<View><Image name="image" value="$image"/><{tag} name="label" toName="image">{labels}</{tag}></View>'
        ls = LabelStudio(base_url=args.url, api_key=args.token)
        project = ls.projects.create(title=f"YOLACT pre-labels ({tag})", label_config=config)
        img, _ = make_image(np.random.default_rng(3), 360, 480, max_objects=4, style="simple")
        ok, png = cv2.imencode(".png", img)
        req = urllib.request.Request(
            f"{args.url}/api/projects/{project.id}/import", method="POST",
            headers={"Authorization": f"Token {args.token}", "Content-Type": "multipart/form-data; boundary=b0undary"},
            data=b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shapes.png\"\r\n"
                 b"Content-Type: image/png\r\n\r\n" + png.tobytes() + b"\r\n--b0undary--\r\n")
        urllib.request.urlopen(req, timeout=60)
        [task] = list(ls.tasks.list(project=project.id))
        ls.ml.create(url=f"http://127.0.0.1:{port}", project=project.id, title="YOLACT")
        ls.actions.create(id="retrieve_tasks_predictions", project=project.id,
                          selected_items={"all": True, "excluded": []})
        preds = list(ls.predictions.list(task=task.id))
        print(f"project {project.id}, task {task.id}: {len(preds[0].result) if preds else 0} predicted regions")
    finally:
        backend.terminate()
        backend.wait(30)

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(f"{args.url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys(args.email)
        driver.find_element(By.NAME, "password").send_keys(args.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        time.sleep(3)
        driver.get(f"{args.url}/projects/{project.id}/data?tab=0&task={task.id}")
        time.sleep(15)  # the labelling page loads its bundle and draws the regions
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

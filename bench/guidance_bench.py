"""Live framing guidance: a face detector in the browser against a preview endpoint, measured (issue 16 item 1).

(a) face-api 1.7.15's tiny face detector (vendored under auth-web's static/vendor) in headless Chromium on the fake
    camera, under auth-web's own Content-Security-Policy, on tfjs's WASM, CPU and (software) WebGL backends: model
    load, time per detection at input sizes 128/160/224, and the browser's CPU seconds per detection (all of
    Chromium's processes, from /proc).
(b) a preview endpoint: what the server would spend per preview frame — decode a small JPEG and run the liveness
    service's detector (dlib HOG, as faces.py does) — the CPU a server pays for every guidance update of every user.

    .venv/bin/python -m bench.guidance_bench            # writes bench/results/guidance.json and .md
Needs Chromium + chromedriver and tests/data's video; the numbers depend on the machine (say when it is shared).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "auth-web"))
sys.path.insert(0, str(REPO_ROOT))

from auth_web.app import CONTENT_SECURITY_POLICY  # noqa: E402
from tests.e2e.media import Clip  # noqa: E402

VENDOR_ROOT = REPO_ROOT / "auth-web" / "auth_web" / "static" / "vendor"
VENDOR = VENDOR_ROOT / "face-api@1.7.15"
VENDOR_WASM = VENDOR_ROOT / "tfjs-backend-wasm@4.22.0"
PAGE = Path(__file__).resolve().parent / "guidance_page"
RESULTS = REPO_ROOT / "bench" / "results"
TEST_DATA = REPO_ROOT / "tests" / "data"
CLIP = Clip("guidance_bench", "video/liveportrait/d9.mp4", 355, 395)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _cpu_seconds_of_tree(root_pid: int) -> float:
    """utime + stime of root_pid and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += ticks.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def browser_detector(camera: Path, root: Path, port: int, input_size: int, count: int, backend: str) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="guidance-bench-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    service = Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(f"http://127.0.0.1:{port}/index.html?input={input_size}&n={count}&backend={backend}")
        before = _cpu_seconds_of_tree(service.process.pid)
        wall = time.monotonic()
        deadline = wall + 300
        result = None
        while time.monotonic() < deadline:
            result = driver.execute_script("return window.__guidanceBench || null;")
            if result:
                break
            time.sleep(0.1)
        cpu = _cpu_seconds_of_tree(service.process.pid) - before
        if not result or "error" in result:
            raise RuntimeError(f"the bench page failed: {result}")
        times = result.pop("times_ms")
        result.update(
            detections=len(times),
            median_ms=round(statistics.median(times), 1),
            p90_ms=round(sorted(times)[int(len(times) * 0.9) - 1], 1),
            updates_per_second=round(1000 / statistics.median(times), 1),
            # Includes the page's load and the camera; an upper bound of what one detection costs.
            browser_cpu_s_per_detection=round(cpu / max(1, len(times) + 1), 4),
            load_ms=round(result["load_ms"]),
            first_ms=round(result["first_ms"]),
            wall_s=round(time.monotonic() - wall, 1),
        )
        return result
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def server_preview(frames: list[np.ndarray], side: int, quality: int = 70) -> dict:
    """Per preview frame: the JPEG the page would send (longest side ``side``), then decode + HOG detection."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    previews = []
    for frame in frames:
        scale = side / max(frame.shape[:2])
        small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        previews.append(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    cpu_times, found = [], 0
    for jpeg in previews * 3:
        started = time.process_time()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        faces = detector(image, 0)
        cpu_times.append(time.process_time() - started)
        found += bool(len(faces))
    per = statistics.median(cpu_times)
    return {
        "side_px": side,
        "jpeg_bytes_median": int(statistics.median(len(p) for p in previews)),
        "detections": len(cpu_times),
        "found": found,
        "server_cpu_ms_per_preview": round(per * 1000, 2),
        # At the 5 updates/s the guidance needs, per user placing their face.
        "server_cpu_s_per_user_second_at_5_hz": round(per * 5, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=60)
    parser.add_argument("--inputs", default="128,160,224")
    parser.add_argument("--backends", default="wasm,cpu,webgl", help="tfjs backends (software webgl when headless)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="guidance-bench-"))
    try:
        camera = CLIP.write_y4m(TEST_DATA, work)
        root = work / "site"
        shutil.copytree(PAGE, root)
        shutil.copytree(VENDOR, root / "vendor" / VENDOR.name)
        shutil.copytree(VENDOR_WASM, root / "vendor" / VENDOR_WASM.name)
        handler = functools.partial(_Handler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        browser = [
            browser_detector(camera, root, server.server_address[1], int(size), args.detections, backend)
            for backend in args.backends.split(",")
            for size in args.inputs.split(",")
        ]
        server.shutdown()
        frames, _ = CLIP.frames(TEST_DATA)
        preview = [server_preview(frames, side) for side in (160, 320)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "browser": browser, "preview": preview}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "guidance_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

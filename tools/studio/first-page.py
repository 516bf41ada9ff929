#!/usr/bin/env python3
"""Times Dugong Studio's first page in headless Chromium, through chromedriver (WebDriver).

    tools/studio/first-page.py http://127.0.0.1:PORT/ [runs]

Each run opens the page in a fresh tab state and prints, from the page's own Performance API:
time to first byte (navigation start to the first byte of the page), first contentful paint,
and "first page" (the `studio-first-page` mark: the store's overview and the first page of
streams are on screen). Needs Debian's chromium and chromium-driver.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def call(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["value"]

def main():
    url = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    port = free_port()
    profile = tempfile.mkdtemp(prefix="dugong-chromium-")
    # Chromium's own temporary files go inside the profile's directory, removed at the end.
    os.makedirs(f"{profile}/tmp")
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": f"{profile}/tmp"})
    try:
        for _ in range(100):
            try:
                call(port, "GET", "/status"); break
            except OSError:
                time.sleep(0.1)
        session = call(port, "POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                     f"--user-data-dir={profile}/data", "--disable-cache"]}}}})["sessionId"]
        figures = []
        for run in range(runs):
            call(port, "POST", f"/session/{session}/url", {"url": "about:blank"})
            call(port, "POST", f"/session/{session}/url", {"url": url})
            for _ in range(600):
                result = call(port, "POST", f"/session/{session}/execute/sync", {"script": """
                    const mark = performance.getEntriesByName('studio-first-page')[0];
                    if (!mark) return null;
                    const nav = performance.getEntriesByType('navigation')[0];
                    const paint = performance.getEntriesByName('first-contentful-paint')[0];
                    return [nav.responseStart - nav.startTime, paint ? paint.startTime : null, mark.startTime];""", "args": []})
                if result: break
                time.sleep(0.05)
            figures.append(result)
            shown = ["n/a" if value is None else f"{value:.0f} ms" for value in result]
            print(f"run {run + 1}: first byte {shown[0]}, first contentful paint {shown[1]}, first page {shown[2]}")
        for index, name in enumerate(["first byte", "first contentful paint", "first page"]):
            values = [f[index] for f in figures if f[index] is not None]
            if values:
                print(f"{name}: median {statistics.median(values):.0f} ms, max {max(values):.0f} ms ({len(values)} runs)")
        call(port, "DELETE", f"/session/{session}")
    finally:
        driver.kill()
        subprocess.run(["rm", "-rf", profile])

main()

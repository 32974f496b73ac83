#!/usr/bin/env python3
"""The session page (`GET /v1/sessions/{id}?format=html`) in a real headless Chromium (Debian's
`chromium`) against a real node on 127.0.0.1 (bounded; stopped by PID):

- a session of 1,000 events (components, errors, time gaps, long values, a value holding
  `<script>` and one holding `"><img onerror>`) renders all 1,000 rows, the state card and the
  links to the user's other sessions;
- the server-side filters (key, component, from/to) and the quick filter (#q=...) show only
  their rows;
- nothing injected runs: the title stays, no injected element exists, the text is shown escaped;
- a screenshot goes to --screenshot (docs/session-page.png).

    apt-get install -y chromium
    python3 ops/browser/check.py --bin .build/debug/starling [--screenshot docs/session-page.png]
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

PORT = 18701
T0 = 1_765_000_000_000

def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=10).status

def chromium(args, url, seconds=60):
    base = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--virtual-time-budget=3000"]
    r = subprocess.run(base + args + [url], capture_output=True, text=True, timeout=seconds)
    return r.stdout

def rows(dom, visible_only=False):
    trs = re.findall(r'<tr class="ev[^"]*"([^>]*)>', dom)
    if visible_only: trs = [t for t in trs if "display: none" not in t]
    return len(trs)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/debug/starling")
    ap.add_argument("--screenshot", default="")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="starling-page-")
    node = subprocess.Popen([os.path.abspath(a.bin), "node", "--id", "p", "--data", f"{work}/data", "--http", f"127.0.0.1:{PORT}",
                             "--peer", f"127.0.0.1:{PORT + 100}", "--rf", "1", "--log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []
    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok: failures.append(what)
    try:
        end = time.time() + 20
        while time.time() < end:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2).status == 200: break
            except OSError:
                time.sleep(0.2)
        components = ["web", "api", "payments", "search"]
        events, ts = [], T0
        for i in range(1000):
            ts += 900_000 if i % 100 == 99 else 1_000          # a 15-minute gap every 100 events
            e = {"session_id": "page", "key": "checkout" if i % 10 == 0 else "page_view", "value": {"n": i, "path": f"/p/{i}"},
                 "ts": ts, "component": components[i % 4], "event_id": f"e{i}"}
            if i % 50 == 7: e.update(key="api_error", attrs={"level": "error", "status": 500, "trace": "x" * 120})
            if i == 3: e["value"] = "<script>document.title='pwned'</script>"
            if i == 4: e["value"] = '"><img src=x onerror="document.title=\'pwned\'">'
            if i == 5: e["attrs"] = {"note": "</pre><script>document.title='pwned'</script>"}
            events.append(e)
        for k in range(0, 1000, 500):
            assert post("/v1/events", events[k:k + 500]) == 202
        post("/v1/identify", {"session_id": "page", "user_id": "u-page"})
        post("/v1/identify", {"session_id": "earlier", "user_id": "u-page"})
        post("/v1/events", {"session_id": "earlier", "key": "page_view", "value": 1})

        url = f"http://127.0.0.1:{PORT}/v1/sessions/page?format=html"
        dom = chromium(["--dump-dom"], url)
        check(rows(dom) == 1000, f"1,000 events rendered ({rows(dom)} rows)")
        check('id="state"' in dom and "u-page" in dom, "the state card is at the top")
        check('href="/v1/sessions/earlier?format=html"' in dom, "a link to the user's other session")
        gaps = len(re.findall(r'<tr class="gap"', dom))
        check(gaps == 10, f"10 time gaps shown ({gaps})")
        check(len(re.findall(r'<tr class="ev err"', dom)) == 20, "20 errors highlighted")
        check(dom.count("<details>") >= 20, "long values and attrs are expandable")
        check("pwned" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1), "no injected script ran (title unchanged)")
        check('<img src="x"' not in dom and "<img src=x" not in dom, "no injected element exists")
        check("&lt;script&gt;document.title" in dom, "injected text is shown, escaped")
        n = rows(chromium(["--dump-dom"], url + "&component=api"))
        check(n == 250, f"filter component=api: {n} rows (250)")
        n = rows(chromium(["--dump-dom"], url + "&key=checkout"))
        check(n == 100, f"filter key=checkout: {n} rows (100)")
        n = rows(chromium(["--dump-dom"], url + f"&from={T0 + 1000}&to={T0 + 10_000}"))
        check(n == 10, f"filter from/to: {n} rows (10)")
        quick = chromium(["--dump-dom"], url + "#q=payments")
        check(rows(quick, visible_only=True) == 250 and 'data-visible="250"' in quick,
              f"quick filter #q=payments: {rows(quick, visible_only=True)} rows visible (250)")
        if a.screenshot:
            shot = os.path.abspath(a.screenshot)
            chromium([f"--screenshot={shot}", "--window-size=1400,1000", "--hide-scrollbars"], url + "&limit=40")
            check(os.path.exists(shot) and os.path.getsize(shot) > 10_000, f"screenshot written to {a.screenshot}")
    finally:
        node.send_signal(signal.SIGTERM)
        try: node.wait(20)
        except subprocess.TimeoutExpired: node.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("session page check " + ("FAILED: " + "; ".join(failures) if failures else "passed"))
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())

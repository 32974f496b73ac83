#!/usr/bin/env python3
"""The real tracker SDKs from PyPI against real Starling processes on 127.0.0.1 (bounded; the
nodes are stopped by PID at the end). Two parts:

1. Delivery: `starling dev` (3 nodes, rf=2). Each SDK (Segment, RudderStack, PostHog, Snowplow
   POST and GET) sends through ops/sdk/send.py to node 1, unchanged but for the host; node 3
   must return every event of the session exactly once, with the mapped keys and ids.
2. Retry (Segment, RudderStack, PostHog, Snowplow POST): 2 nodes, rf=2, node 2 killed with -9
   before the SDK sends, so node 1 answers 503
   (after appending locally). Node 2 restarts with its data; the SDK's own retry then succeeds,
   and both nodes must hold each event exactly once.

    pip install segment-analytics-python==2.4.0 rudder-sdk-python==2.1.9 posthog==7.91.1 snowplow-tracker==1.1.0
    python3 ops/sdk/check.py --bin .build/debug/starling [--report FILE]
"""
import argparse, collections, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request, uuid
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checklib import wait  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SDKS = ["segment", "rudderstack", "posthog", "snowplow-post", "snowplow-get"]

def get(port, path, timeout=5):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout).read())


def ready(port):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
        return True
    except OSError:
        return False

def send(sdk, port, session, timeout=120):
    out = subprocess.run([sys.executable, os.path.join(HERE, "send.py"), "--sdk", sdk, "--target", f"http://127.0.0.1:{port}",
                          "--session", session], capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"FAIL {sdk}: send.py printed no summary (exit {out.returncode}): {out.stderr[-2000:]}")

def compare(sdk, sent, events):
    """Problems with what came back for what was sent (empty: every event once)."""
    problems = []
    ids = [e.get("event_id") for e in events]
    repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
    if repeated: problems.append(f"event ids stored more than once: {repeated}")
    if len(events) != len(sent["sent"]):
        problems.append(f"sent {len(sent['sent'])} events, got {len(events)} back")
    want = sorted(s["key"] for s in sent["sent"])
    got = sorted(e.get("key") for e in events)
    if want != got: problems.append(f"keys sent {want}, got {got}")
    known = {s["event_id"] for s in sent["sent"] if s["event_id"]}
    if known and known != set(ids): problems.append(f"event ids sent {sorted(known)}, got {sorted(i for i in ids if i)}")
    if sent["errors"]: problems.append(f"the SDK reported errors: {sent['errors']}")
    return problems

def delivery(binary, work, report):
    data = os.path.join(work, "dev")
    dev = subprocess.Popen([binary, "dev", "--nodes", "3", "--data", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    failed = False
    try:
        if not wait(lambda: all(ready(8080 + k) for k in (1, 2, 3)), 60):
            raise SystemExit("FAIL: starling dev did not become ready on 8081..8083")
        for sdk in SDKS:
            session = f"sdk-{sdk}-{uuid.uuid4().hex[:8]}"
            sent = send(sdk, 8081, session)
            got = []
            def complete():
                nonlocal got
                got = get(8083, f"/v1/sessions/{session}")["events"]
                return len(got) >= len(sent["sent"])
            wait(complete, 10)
            problems = compare(sdk, sent, got)
            if sdk == "rudderstack":
                # Its SDK gzips by default: the body must have been inflated on node 1.
                inflated = sum(float(l.split()[-1]) for l in urllib.request.urlopen("http://127.0.0.1:8081/metrics", timeout=5)
                               .read().decode().splitlines() if l.startswith("starling_http_inflated_bodies_total"))
                if inflated < 1: problems.append("no gzip body was inflated (RudderStack's SDK gzips by default)")
            failed |= bool(problems)
            report.append({"part": "delivery", "sdk": sdk, "session": session, "sent": [s["key"] for s in sent["sent"]],
                           "back": [{"key": e.get("key"), "event_id": e.get("event_id"), "user_id": e.get("user_id"),
                                     "terminal_id": e.get("terminal_id"), "node": e.get("node")} for e in got],
                           "problems": problems})
            print(f"{'FAIL' if problems else 'ok  '} delivery {sdk}: sent {len(sent['sent'])}, node 3 returned {len(got)}"
                  + (f": {problems}" if problems else ""))
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try: dev.wait(30)
        except subprocess.TimeoutExpired: os.killpg(dev.pid, signal.SIGKILL)
    return failed

def retry(binary, work, report, base=18400):
    def node(k, join):
        args = [binary, "node", "--id", f"r{k}", "--data", f"{work}/r{k}", "--http", f"127.0.0.1:{base + k}",
                "--peer", f"127.0.0.1:{base + 100 + k}", "--rf", "2", "--log-level", "error"]
        if join: args += ["--join", f"127.0.0.1:{base + 101}"]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a = node(1, False)
    b = node(2, True)
    failed = False
    try:
        if not wait(lambda: ready(base + 1) and ready(base + 2), 30):
            raise SystemExit("FAIL: the retry cluster did not become ready")
        for sdk in ["segment", "rudderstack", "posthog", "snowplow-post"]:
            rejected = lambda: sum(float(l.split()[-1]) for l in urllib.request.urlopen(f"http://127.0.0.1:{base + 1}/metrics", timeout=5)
                                   .read().decode().splitlines() if l.startswith("starling_events_rejected_total{"))
            before = rejected()
            b.kill(); b.wait()
            session = f"retry-{sdk}-{uuid.uuid4().hex[:8]}"
            out = {}
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "send.py"), "--sdk", sdk, "--target",
                                     f"http://127.0.0.1:{base + 1}", "--session", session], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            # Node 1 refuses while node 2 is away (every event must have 2 copies); bring it back.
            refused = wait(lambda: rejected() > before, 20)
            b = node(2, True)
            stdout, _ = proc.communicate(timeout=150)
            out = json.loads(stdout.strip().splitlines()[-1])
            wait(lambda: ready(base + 2), 30)
            problems = [] if refused else ["node 1 never refused, so no retry was exercised"]
            for port in (base + 1, base + 2):
                got = []
                def complete():
                    nonlocal got
                    got = get(port, f"/v1/sessions/{session}")["events"]
                    return len(got) >= len(out["sent"])
                wait(complete, 20)
                problems += [f"node {port - base}: {p}" for p in compare(sdk, out, got)]
            failed |= bool(problems)
            report.append({"part": "retry", "sdk": sdk, "session": session, "refused_first": refused, "problems": problems})
            print(f"{'FAIL' if problems else 'ok  '} retry {sdk}: refused while node 2 was down: {refused}; "
                  f"{len(out['sent'])} sent, each once on both nodes" + (f"; {problems}" if problems else ""))
    finally:
        for p in (a, b):
            p.send_signal(signal.SIGTERM)
        for p in (a, b):
            try: p.wait(20)
            except subprocess.TimeoutExpired: p.kill()
    return failed

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/debug/starling")
    ap.add_argument("--report", default="")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="starling-sdk-")
    report = []
    try:
        failed = delivery(binary, work, report)
        failed |= retry(binary, work, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.report:
        with open(a.report, "w") as f: json.dump(report, f, indent=1)
    print("SDK check " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tracing end to end over OTLP/HTTP: an OTLP receiver (JSON encoding, POST /v1/traces) runs here
on 127.0.0.1; three nodes (rf=2) export to it with --otlp-endpoint. One traced POST to node 1 of a
session that node 2 owns and node 3 follows must come back as spans from all three nodes, in one
trace, each node's span the child of the one before. A query fan-out with a traceparent too.

    python3 ops/tracing/check.py --bin .build/debug/starling
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checklib import wait  # noqa: E402

received, lock = [], threading.Lock()

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.path == "/v1/traces" and self.headers.get("Content-Type", "").startswith("application/json")
        try:
            doc = json.loads(body)
        except ValueError:
            ok = False
        if ok:
            for rs in doc.get("resourceSpans", []):
                node = next((a["value"]["stringValue"] for a in rs["resource"]["attributes"] if a["key"] == "service.instance.id"), "?")
                for ss in rs.get("scopeSpans", []):
                    with lock: received.extend((node, s) for s in ss.get("spans", []))
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass

def get(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/debug/starling")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    base = 18600
    server = ThreadingHTTPServer(("127.0.0.1", base), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="starling-trace-")
    nodes, failed = [], False
    try:
        for k in (1, 2, 3):
            args = [binary, "node", "--id", f"n{k}", "--data", f"{work}/n{k}", "--http", f"127.0.0.1:{base + k}",
                    "--peer", f"127.0.0.1:{base + 100 + k}", "--rf", "2", "--log-level", "error",
                    "--otlp-endpoint", f"http://127.0.0.1:{base}/v1/traces"]
            if k > 1: args += ["--join", f"127.0.0.1:{base + 101}"]
            nodes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        def settled():
            views = [json.loads(get(f"http://127.0.0.1:{base + k}/v1/cluster")) for k in (1, 2, 3)]
            return all(len(v["ring"]) == 3 and not v["catching_up"] for v in views)
        if not wait(settled, 30): raise SystemExit("FAIL: the cluster did not settle")
        trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        sessions = [f"trace-check-{i}" for i in range(30)]
        batch = json.dumps([{"session_id": s, "key": "page_view", "value": 1} for s in sessions]).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{base + 1}/v1/events", data=batch, method="POST",
                                     headers={"traceparent": f"00-{trace}-{client_span}-01", "Content-Type": "application/json"})
        status = urllib.request.urlopen(req, timeout=10).status
        def spans_of(node):
            with lock: return [s for n, s in received if n == node and s["traceId"] == trace]
        ok = wait(lambda: all(spans_of(f"n{k}") for k in (1, 2, 3)) and any(s["name"] == "peer replicate" for k in (2, 3) for s in spans_of(f"n{k}")), 15)
        ingest = [s for s in spans_of("n1") if s["name"] == "POST /v1/events"]
        forwards = [s for k in (2, 3) for s in spans_of(f"n{k}") if s["name"] == "peer forwardRecords"]
        replicas = [s for k in (1, 2, 3) for s in spans_of(f"n{k}") if s["name"] == "peer replicate"]
        ids = {s["spanId"] for s in ingest + forwards}
        chained = (len(ingest) == 1 and ingest[0].get("parentSpanId") == client_span
                   and forwards and all(f.get("parentSpanId") == ingest[0]["spanId"] for f in forwards)
                   and replicas and all(r.get("parentSpanId") in ids for r in replicas))
        good = status == 202 and ok and chained
        failed |= not good
        print(("ok   " if good else "FAIL ") + f"ingest: 202={status == 202}; spans by node: "
              + ", ".join(f"n{k} {len(spans_of(f'n{k}'))}" for k in (1, 2, 3))
              + f"; {len(forwards)} forward and {len(replicas)} replicate spans, parents chained: {bool(chained)}")

        qtrace = "5bf92f3577b34da6a3ce929d0e0e4737"
        req = urllib.request.Request(f"http://127.0.0.1:{base + 1}/v1/sessions/{sessions[0]}",
                                     headers={"traceparent": f"00-{qtrace}-{client_span}-01"})
        qstatus = urllib.request.urlopen(req, timeout=10).status
        def qspans(node):
            with lock: return [s for n, s in received if n == node and s["traceId"] == qtrace]
        ok = wait(lambda: all(qspans(f"n{k}") for k in (1, 2, 3)), 15)
        root = [s for s in qspans("n1") if s["name"] == "GET /v1/sessions/{id}"]
        peers = [s for k in (2, 3) for s in qspans(f"n{k}") if s["name"] == "peer query"]
        good = qstatus == 200 and ok and len(root) == 1 and len(peers) >= 2 and all(p.get("parentSpanId") == root[0]["spanId"] for p in peers)
        failed |= not good
        print(("ok   " if good else "FAIL ") + f"query fan-out: spans by node: " + ", ".join(f"n{k} {len(qspans(f'n{k}'))}" for k in (1, 2, 3)))
        exported = [float(l.split()[-1]) for k in (1, 2, 3) for l in get(f"http://127.0.0.1:{base + k}/metrics").splitlines()
                    if l.startswith("starling_trace_spans_exported_total")]
        print(f"     spans exported per node (starling_trace_spans_exported_total): {exported}; the receiver holds {len(received)}")
    finally:
        for p in nodes: p.send_signal(signal.SIGTERM)
        for p in nodes:
            try: p.wait(20)
            except subprocess.TimeoutExpired: p.kill()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print("tracing check " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())

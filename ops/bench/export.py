#!/usr/bin/env python3
"""The export row: how fast a node writes a sealed day (`starling export`), by format.

One node (rf=1, release build) runs with its clock a day behind (STARLING_CLOCK_OFFSET_MS), takes
--events events in 100-event batches from `starling bench`, and is restarted on the real clock,
so that day is sealed. Then `POST /v1/admin/export` per format; the node's wall time and CPU per
export are reported, with events/s and bytes. Loopback only, bounded; figures to --out (JSON lines).

    python3 ops/bench/export.py --bin .build/release/starling --events 1000000 --out docs/export.jsonl
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request
sys.path.insert(0, os.path.dirname(__file__))
from run import wait_http, cpu_seconds  # noqa: E402

def node(binary, data, port, offset_ms):
    env = dict(os.environ)
    if offset_ms: env["STARLING_CLOCK_OFFSET_MS"] = str(offset_ms)
    return subprocess.Popen([binary, "node", "--id", "x", "--data", data, "--http", f"127.0.0.1:{port}", "--peer", f"127.0.0.1:{port + 100}",
                             "--rf", "1", "--log-level", "error"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release/starling")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=18600)
    ap.add_argument("--out", default="export.jsonl")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="starling-export-bench-")
    data = os.path.join(work, "data")
    rows = []
    try:
        p = node(binary, data, a.port, -86_400_000)
        wait_http(a.port, "/readyz", 30)
        subprocess.run([binary, "bench", "--target", f"127.0.0.1:{a.port}", "--mode", "batch", "--batch", "100", "--connections", "8",
                        "--requests", str(a.events // 100), "--duration", "600", "--sessions", "100000", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))
        p.send_signal(signal.SIGTERM); p.wait(60)
        p = node(binary, data, a.port, 0)
        wait_http(a.port, "/readyz", 60)
        for fmt, comp in [("ndjson", "none"), ("tsv", "none"), ("tsv", "gzip"), ("csv", "lz4"), ("ndjson", "zstd")]:
            body = json.dumps({"day": day, "format": fmt, "compress": comp, "out": os.path.join(work, "out")}).encode()
            before, t0 = cpu_seconds([p.pid]), time.time()
            req = urllib.request.Request(f"http://127.0.0.1:{a.port}/v1/admin/export", data=body, method="POST")
            manifest = json.loads(urllib.request.urlopen(req, timeout=3600).read())
            wall, cpu = time.time() - t0, cpu_seconds([p.pid]) - before
            row = {"format": fmt, "compress": comp, "events": manifest["events"], "bytes": manifest["bytes"],
                   "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "events_per_second": round(manifest["events"] / wall)}
            rows.append(row)
            print(json.dumps(row))
        p.send_signal(signal.SIGTERM); p.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(a.out, "a") as f:
        for r in rows:
            f.write(json.dumps({"date": time.strftime("%Y-%m-%d"), **r}) + "\n")

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A/B of two starling binaries on this machine (loopback only, bounded): the same loads, run
alternately (A, B, A, B, ...) so drift on a shared machine hits both, with `starling bench`
(the B binary's) as the load tool. Loads: 1 node rf=1 with 100-event batches and with single
events, and 3 nodes rf=2 with 100-event batches to node 1. Writes a markdown table of the
medians to --out (and prints it). Speed is measured here, never asserted in tests.

    python3 ops/bench/ab.py --a OLD/starling --b .build/release/starling --rounds 3 --out /tmp/ab.md
    python3 ops/bench/ab.py --a BIN --b BIN --a-args="--fsync interval" --b-args="--fsync always"
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from run import start_nodes, stop, wait_members  # noqa: E402

LOADS = [
    ("1 node rf=1, 100-event batches", 1, 1, ["--mode", "batch", "--batch", "100", "--connections", "8"]),
    ("1 node rf=1, single events", 1, 1, ["--mode", "http", "--connections", "32"]),
    ("3 nodes rf=2, 100-event batches to node 1", 3, 2, ["--mode", "batch", "--batch", "100", "--connections", "8"]),
    # Open loop: latency at a fixed 20,000 events/s, where throughput cannot hide it.
    ("3 nodes rf=2, open loop 200 batches/s (20k events/s)", 3, 2,
     ["--mode", "batch", "--batch", "100", "--connections", "8", "--rate", "200"]),
]

def cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def one(binary, node_args, tool, n, rf, args, seconds, base):
    work = tempfile.mkdtemp(prefix="starling-ab-")
    procs = start_nodes(binary, work, n, rf, base=base, extra=node_args)
    try:
        if n > 1 and not wait_members([base + k for k in range(1, n + 1)], n, 30):
            sys.exit("error: the cluster did not form")
        out = os.path.join(work, "bench.json")
        before = sum(cpu_seconds(p.pid) for p in procs)
        subprocess.run([tool, "bench", "--target", f"127.0.0.1:{base + 1}", "--duration", str(seconds), "--warmup", "1",
                        "--json", out] + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - before
        s = json.load(open(out))
        events = s.get("eventsPerSecond", 0) * s.get("seconds", 0)
        return {"events_per_second": s.get("eventsPerSecond", 0),
                "p50_ms": (s.get("latencyMicros") or {}).get("p50", 0) / 1000,
                "p99_ms": (s.get("latencyMicros") or {}).get("p99", 0) / 1000,
                "cpu_us_per_event": cpu * 1e6 / events if events else 0}
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="baseline binary")
    ap.add_argument("--b", required=True, help="candidate binary (also the load tool)")
    ap.add_argument("--a-args", default="", help="extra node flags for A (one string)")
    ap.add_argument("--b-args", default="", help="extra node flags for B")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--out", default="ab.md")
    ap.add_argument("--only", default="", help="run only the loads whose label contains this text")
    a = ap.parse_args()
    results = {}
    for r in range(a.rounds):
        for label, n, rf, args in LOADS:
            if a.only not in label:
                continue
            for name, binary, extra in (("A", a.a, a.a_args.split()), ("B", a.b, a.b_args.split())):
                s = one(binary, extra, a.b, n, rf, args, a.seconds, base=18100 + 10 * r)
                results.setdefault((label, name), []).append(s)
                print(f"round {r + 1} {name} {label}: {s['events_per_second']:,.0f} events/s, p99 {s['p99_ms']:.2f} ms, "
                      f"{s['cpu_us_per_event']:.1f} CPU-µs/event", file=sys.stderr)
    lines = [f"A = {a.a} {a.a_args}, B = {a.b} {a.b_args}; medians of {a.rounds} alternating rounds of {a.seconds} s", "",
             "| load | A events/s | B events/s | B/A | A p50/p99 ms | B p50/p99 ms | A CPU-µs/event | B CPU-µs/event |",
             "|---|---|---|---|---|---|---|---|"]
    for label, _, _, _ in LOADS:
        if a.only not in label:
            continue
        med = lambda field, k: statistics.median(x[field] for x in results[(label, k)])
        ev = {k: med("events_per_second", k) for k in "AB"}
        ratio = ev["B"] / ev["A"] if ev["A"] else 0
        lines.append(f"| {label} | {ev['A']:,.0f} | {ev['B']:,.0f} | {ratio:.2f} | {med('p50_ms', 'A'):.2f}/{med('p99_ms', 'A'):.2f}"
                     f" | {med('p50_ms', 'B'):.2f}/{med('p99_ms', 'B'):.2f}"
                     f" | {med('cpu_us_per_event', 'A'):.1f} | {med('cpu_us_per_event', 'B'):.1f} |")
    text = "\n".join(lines) + "\n"
    open(a.out, "w").write(text)
    print(text)

if __name__ == "__main__":
    main()

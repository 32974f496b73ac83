#!/usr/bin/env python3
"""Scale row (issue: hold the seed's volume on one node). One release node, rf=1, on loopback:
ingest --events events in 100-event batches (`starling bench --mode batch`), then report resident
memory per event, disk bytes per event, restart time to /readyz after kill -9, and p50/p99 of
session queries over sealed segments, first cold (page cache dropped when the machine lets us,
block cache empty after the restart), then warm. Extrapolates to the seed's 225 M events.
Writes docs/scale-LABEL.json and the "Scale (LABEL)" section of docs/benchmarks.md (between its markers).
Every step is bounded in time; the node is stopped by its PID.

What grows with the log is measured as the growth of anonymous memory between two restarts
(after N/2 and N events, new sessions in each half). The fixed parts (the open segment's refs,
up to one segment; the dedupe window, bounded by log time) change with the moment of the kill
and would drown that growth, so this run makes them small: --segment-mb 8 and --dedupe-window
1ms by default (the run compresses days into minutes, so a 1 h window would hold every event of
it, where at the seed's 15 M a day it holds 625 k). Their size at the defaults is reported from
the node's gauges and documented separately.

  ops/bench/scale [--events 20000000] [--sessions 200000] [--queries 300] [--bin .build/release/starling]
"""
import argparse, http.client, json, os, random, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, bench, wait_http  # noqa: E402

PORT = 18201
SEED_EVENTS = 225_000_000
MARK = "<!-- scale:{}:{} -->"   # a section per --label


def status(pid):
    """VmRSS, RssAnon, RssFile of a process, bytes."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out


def metrics():
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(starling_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:   # labelled series are summed
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
    return out


def disk(path):
    sizes = {"seg": 0, "idx": 0, "checkpoint": 0, "other": 0}
    for d, _, fs in os.walk(path):
        for f in fs:
            n = os.path.getsize(os.path.join(d, f))
            kind = "seg" if f.endswith(".seg") else "idx" if f.endswith(".idx") else "checkpoint" if f == "checkpoint" else "other"
            sizes[kind] += n
    return sizes


def start(binary, data, a):
    args = [binary, "node", "--id", "n1", "--data", data, "--http", f"127.0.0.1:{PORT}", "--peer", f"127.0.0.1:{PORT + 100}",
            "--rf", "1", "--log-level", "error", "--segment-mb", str(a.segment_mb), "--dedupe-window", a.dedupe_window]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(seconds):
    """Polls /readyz every 10 ms (wait_http's 0.2 s steps would round the restart time)."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def width(sessions):
    w, limit = 1, 10
    while sessions > limit and w < 18:
        w, limit = w + 1, limit * 10
    return w


def drop_caches():
    try:
        subprocess.run(["sync"], timeout=120)
        open("/proc/sys/vm/drop_caches", "w").write("3\n")
        return True
    except OSError:
        return False


def query_pass(ids):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    times, events, partial = [], 0, 0
    for sid in ids:
        t = time.perf_counter()
        c.request("GET", f"/v1/sessions/{sid}?limit=100000")
        body = json.loads(c.getresponse().read())
        times.append((time.perf_counter() - t) * 1000)
        events += len(body.get("events", []))
        partial += 1 if body.get("partial") else 0
    times.sort()
    pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 2)
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(times[-1], 2), "queries": len(ids),
            "events_per_query": round(events / max(1, len(ids)), 1), "partial": partial}


def load_phase(binary, data, node, a, name, events):
    """Loads `events` events into new sessions, waits for the last seal, then kill -9 and a timed restart."""
    t = time.time()
    load = bench(binary, ["--mode", "batch", "--batch", "100", "--target", f"127.0.0.1:{PORT}", "--connections", "8",
                          "--sessions", str(a.sessions // 2), "--session-prefix", f"scale-{name}-", "--requests", str(events // 100)],
                 seconds=int(max(60, events / 40_000)))
    phase = {"name": name, "load_seconds": round(time.time() - t, 1),
             "events_per_second": round(load["eventsPerSecond"]) if load else None}
    # The last seal's index file and checkpoint are written off the writer: wait for them.
    segs = lambda: sum(1 for d, _, fs in os.walk(data) for f in fs if f.endswith(".seg"))
    end = time.time() + 120
    while time.time() < end and metrics().get("starling_index_files_count", 0) < segs() - 1:
        time.sleep(0.5)
    time.sleep(2)
    m = metrics()
    phase["metrics"] = {k: m[k] for k in m if k.startswith(("starling_sessions", "starling_dedupe", "starling_index", "starling_events_ingested",
                                                             "starling_checkpoint", "starling_log_bytes"))}
    phase["rss_loaded"] = status(node.pid)
    node.send_signal(signal.SIGKILL)
    node.wait(30)
    t = time.time()
    node = start(binary, data, a)
    ready = wait_ready(120)
    phase["restart_seconds"] = round(time.time() - t, 2) if ready else None
    phase["rss_restarted"] = status(node.pid)
    return node, phase


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--sessions", type=int, default=200_000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--segment-mb", type=int, default=8, help="the node's --segment-mb (see above)")
    p.add_argument("--dedupe-window", default="1ms", help="the node's --dedupe-window (see above)")
    p.add_argument("--bin", default=os.path.join(ROOT, ".build/release/starling"))
    p.add_argument("--label", default="isolated", help="the docs section this run replaces (e.g. isolated, defaults)")
    p.add_argument("--no-docs", action="store_true", help="print the result only")
    a = p.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="starling-scale-")
    data = os.path.join(work, "n1")
    node = start(binary, data, a)
    result = {"events": a.events, "sessions": a.sessions, "segment_mb": a.segment_mb, "dedupe_window": a.dedupe_window}
    try:
        if not wait_http(PORT, "/readyz", 30):
            sys.exit("error: the node did not become ready")
        result["rss_empty"] = status(node.pid)
        half = a.events // 2
        result["phases"] = []
        for name in ("a", "b"):
            # Each half writes new sessions, so sessions grow with events as in the seed; the
            # node is killed and restarted after each, and the growth of its memory between the
            # two restarts is what each event costs once sealed (the rest is fixed: one open
            # segment's refs, the dedupe window).
            node, phase = load_phase(binary, data, node, a, name, half)
            result["phases"].append(phase)
        # The counter starts at 0 in each process: one process per phase.
        result["stored_events"] = sum(int(p["metrics"].get("starling_events_ingested_total", 0)) for p in result["phases"]) or a.events
        result["disk"] = disk(data)
        result["restart_seconds"] = result["phases"][-1]["restart_seconds"]
        rng = random.Random(7)
        w = width(a.sessions // 2)
        ids = [f"scale-{rng.choice('ab')}-{str(n).zfill(w)}" for n in rng.sample(range(a.sessions // 2), min(a.queries, a.sessions // 2))]
        result["page_cache_dropped"] = drop_caches()
        result["query_cold"] = query_pass(ids)
        result["query_warm"] = query_pass(ids)
        result["rss_after_queries"] = status(node.pid)
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
        shutil.rmtree(work, ignore_errors=True)
    report(result, a)
    return 0


def report(r, a):
    n = r["stored_events"]
    pa, pb = r["phases"]
    half = n / 2
    slope = (pb["rss_restarted"]["RssAnon"] - pa["rss_restarted"]["RssAnon"]) / half
    fixed = pb["rss_restarted"]["RssAnon"] - r["rss_empty"]["RssAnon"] - slope * n
    peak = pb["rss_loaded"]["VmRSS"]
    d = r["disk"]
    total_disk = sum(d.values())
    r["per_event"] = {"anon_slope_bytes": round(slope, 2), "fixed_anon_mb": round(fixed / 1e6, 1), "peak_rss_mb": round(peak / 1e6, 1),
                      "disk_bytes": round(total_disk / n, 1), "log_bytes": round(d["seg"] / n, 1), "index_bytes": round(d["idx"] / n, 1)}
    r["extrapolated_225M"] = {"anon_gb": round((fixed + slope * SEED_EVENTS) / 1e9, 2), "disk_gb": round(total_disk / n * SEED_EVENTS / 1e9, 1)}
    r["load_seconds"] = round(pa["load_seconds"] + pb["load_seconds"], 1)
    ml = pb["metrics"]
    pe, ex, cold, warm = r["per_event"], r["extrapolated_225M"], r["query_cold"], r["query_warm"]
    cmd = (f"ops/bench/scale --events {a.events} --sessions {a.sessions} --queries {a.queries} --segment-mb {a.segment_mb}"
           f" --dedupe-window {a.dedupe_window}")
    begin, end = MARK.format("begin", a.label), MARK.format("end", a.label)
    lines = [begin, f"### Scale ({a.label}): one node holding the seed's volume", "",
             f"`{cmd}` (release, rf=1, 100-event batches over {a.sessions:,} sessions, {a.segment_mb} MiB segments; {time.strftime('%Y-%m-%d')}).", "",
             "| measured | value | target |", "|---|---|---|",
             f"| events stored | {n:,} in {r['load_seconds']} s ({pa['events_per_second']:,} and {pb['events_per_second']:,} events/s) | |",
             f"| resident memory per event of sealed data (growth of anonymous memory between the restarts at {half / 1e6:g} M and {n / 1e6:g} M events) | {pe['anon_slope_bytes']} B | ≤ 8 B |",
             f"| fixed part of it (open segment's refs, dedupe window, runtime) / peak VmRSS while loading | {pe['fixed_anon_mb']} MB / {pe['peak_rss_mb']} MB | |",
             f"| disk per event (log + index + checkpoint) | {pe['disk_bytes']} B ({pe['log_bytes']} log, {pe['index_bytes']} index) | |",
             f"| checkpoint | {d['checkpoint'] / 1e6:.1f} MB | |",
             f"| held in memory after the load: sessions / dedupe ids / open refs | {int(ml.get('starling_sessions_count', 0)):,} / "
             f"{int(ml.get('starling_dedupe_window_entries', 0)):,} / {int(ml.get('starling_index_open_refs', 0)):,} | |",
             f"| restart after kill -9 to /readyz, at {half / 1e6:g} M / {n / 1e6:g} M events | {pa['restart_seconds']} / {pb['restart_seconds']} s | ≤ 5 s |",
             f"| session query, cold ({'page cache dropped' if r['page_cache_dropped'] else 'page cache NOT dropped: process-cold only'}), p50 / p99 | {cold['p50_ms']} / {cold['p99_ms']} ms ({cold['events_per_query']} events each) | p99 ≤ 10 ms |",
             f"| session query, warm, p50 / p99 | {warm['p50_ms']} / {warm['p99_ms']} ms | |",
             "",
             f"Extrapolated to the seed's 225 M events (fixed part + growth per event × 225 M): about {ex['anon_gb']} GB of "
             f"anonymous memory and {ex['disk_gb']} GB on disk. Restart time follows the open segment and the checkpoint "
             f"(sessions and the dedupe window), not the log: compare the two restarts above.", end]
    print("\n".join(lines))
    if a.no_docs:
        print(json.dumps(r, indent=2))
        return
    json.dump(r, open(os.path.join(ROOT, f"docs/scale-{a.label}.json"), "w"), indent=2)
    path = os.path.join(ROOT, "docs/benchmarks.md")
    text = open(path).read() if os.path.exists(path) else ""
    section = "\n".join(lines)
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)


if __name__ == "__main__":
    sys.exit(main())

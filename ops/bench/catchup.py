#!/usr/bin/env python3
"""Join row (issue: catch-up and handoff from the index, not a walk of the sessions). Release
nodes, rf=1, on loopback: n1 alone ingests --events events in 100-event batches over --sessions
sessions, then n2 joins and pulls by handoff the keys the new ring gives it. Reports how long the
join took (n2 started → its catch-up finished), how many records it pulled, and the CPU seconds
n1 (the responder) and n2 spent meanwhile. A second pass (--anti-entropy) measures the periodic
anti-entropy reads, which ask for two minutes back, from n1's CPU over a quiet minute.

Appends one JSON line per run to docs/catchup.jsonl (with --label and the repository's commit,
which is the binary's only when --bin was built from it), so two builds can be compared; every step is bounded in time and the nodes are stopped by their PIDs.

  ops/bench/catchup.py [--events 2000000] [--sessions 200000] [--bin .build/release/starling]
"""
import argparse, http.client, json, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, bench, wait_http  # noqa: E402

HTTP = (18301, 18302)
PEER = (18401, 18402)


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    out = {}
    for line in c.getresponse().read().decode().splitlines():
        m = re.match(r"^(starling_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
    return out


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def start(binary, i, data, join=None):
    args = [binary, "node", "--id", f"n{i + 1}", "--data", data, "--http", f"127.0.0.1:{HTTP[i]}",
            "--peer", f"127.0.0.1:{PEER[i]}", "--rf", "1", "--log-level", "info"]
    if join:
        args += ["--join", join]
    log = open(data + ".log", "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--sessions", type=int, default=200_000)
    p.add_argument("--bin", default=os.path.join(ROOT, ".build/release/starling"))
    p.add_argument("--label", default="")
    p.add_argument("--anti-entropy", action="store_true", help="also measure n1's CPU over a quiet minute of anti-entropy passes")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="starling-catchup-")
    nodes = []
    r = {"events": a.events, "sessions": a.sessions, "label": a.label,
         "repo_commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
    try:
        n1 = start(a.bin, 0, os.path.join(tmp, "n1"))
        nodes.append(n1)
        if not wait_http(HTTP[0], "/readyz", 30):
            raise SystemExit("n1 did not become ready")
        t = time.time()
        load = bench(a.bin, ["--mode", "batch", "--batch", "100", "--target", f"127.0.0.1:{HTTP[0]}", "--connections", "8",
                             "--sessions", str(a.sessions), "--requests", str(a.events // 100)],
                     seconds=int(max(60, a.events / 40_000)))
        r["load_seconds"] = round(time.time() - t, 1)
        r["ingested"] = metrics(HTTP[0]).get("starling_events_ingested_total")
        subprocess.run(["sync"], timeout=120)
        c1 = cpu_seconds(n1.pid)
        t = time.time()
        n2 = start(a.bin, 1, os.path.join(tmp, "n2"), join=f"127.0.0.1:{PEER[0]}")
        nodes.append(n2)
        seen_running, done, end = False, None, time.time() + 600
        while time.time() < end:
            time.sleep(0.1)
            try:
                c = http.client.HTTPConnection("127.0.0.1", HTTP[1], timeout=10)
                c.request("GET", "/v1/cluster")
                running = json.loads(c.getresponse().read()).get("catching_up", False)
                m = metrics(HTTP[1])
            except (OSError, ValueError):
                continue
            seen_running |= running
            if seen_running and not running and m.get("starling_catch_up_records_total", 0) > 0:
                done = time.time()
                break
        r["join_seconds"] = round(done - t, 2) if done else None
        m2 = metrics(HTTP[1])
        r["pulled_records"] = m2.get("starling_catch_up_records_total")
        r["n1_cpu_seconds"] = round(cpu_seconds(n1.pid) - c1, 2)
        r["n2_cpu_seconds"] = round(cpu_seconds(n2.pid), 2)
        r["n1_scan_errors"] = metrics(HTTP[0]).get("starling_catch_up_scan_errors_total")
        if a.anti_entropy:
            c1 = cpu_seconds(n1.pid)
            time.sleep(65)
            r["n1_cpu_quiet_minute"] = round(cpu_seconds(n1.pid) - c1, 2)
    finally:
        for n in nodes:
            n.send_signal(signal.SIGKILL)
            n.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(r), flush=True)
    with open(os.path.join(ROOT, "docs/catchup.jsonl"), "a") as f:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

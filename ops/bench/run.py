#!/usr/bin/env python3
"""Benchmark run on this machine (loopback only, every run bounded): the nginx ceiling, then
Starling 1 node rf=1, 3 nodes rf=2 directly and behind HAProxy. For each: events/s, latency
percentiles (wrk --latency, closed loop), server CPU-seconds per million events (from /proc),
bytes on disk per event, ratio to the ceiling. Writes docs/benchmarks.md and docs/benchmarks.json.

  ops/bench/run [--seconds 10] [--bin .build/release/starling]

Not yet here (see the open benchmark issue): open-loop fixed-rate runs, the cgroup-capped
scaling series and the plot.
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")

def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / TICK
        except OSError:
            pass
    return total

def wrk(url, seconds, script=None, conns=64, env=None):
    args = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", os.path.join(BENCH, script)]
    out = subprocess.run(args + [url], capture_output=True, text=True, env=env, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
            pct[f"p{p}_ms"] = round(v, 2)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct, int(non2xx.group(1)) if non2xx else 0

def wait_http(port, path="/healthz", seconds=20):
    import http.client
    end = time.time() + seconds
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1); c.request("GET", path)
            if c.getresponse().status == 200: return True
        except OSError:
            pass
        time.sleep(0.2)
    return False

def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f.endswith(".seg"))

def start_nodes(binary, work, n, rf, base=18100):
    procs = []
    for k in range(1, n + 1):
        args = [binary, "node", "--id", f"n{k}", "--data", f"{work}/n{k}", "--http", f"127.0.0.1:{base + k}",
                "--udp", f"127.0.0.1:{base + k}", "--peer", f"127.0.0.1:{base + 100 + k}", "--rf", str(rf), "--log-level", "error"]
        if k > 1: args += ["--join", f"127.0.0.1:{base + 101}"]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
    for k in range(1, n + 1):
        wait_http(base + k, "/readyz", 30)
    return procs

def stop(procs):
    for p in procs: p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/starling"))
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        print("error: build first: swift build -c release", file=sys.stderr); return 2
    for tool in ("wrk", "nginx", "haproxy"):
        if not shutil.which(tool):
            subprocess.run(["apt-get", "install", "-y", "-qq", {"wrk": "wrk", "nginx": "nginx-light", "haproxy": "haproxy"}[tool]], check=True)
    work = tempfile.mkdtemp(prefix="starling-bench-")
    rows = []
    # 1. The ceiling: nginx answering 204 with its access log on.
    conf = f"""worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log {work}/access.log; server {{ listen 127.0.0.1:18099; location / {{ return 204; }} }} }}"""
    open(f"{work}/nginx.conf", "w").write(conf)
    subprocess.run(["nginx", "-c", f"{work}/nginx.conf", "-p", work], check=True)
    time.sleep(0.5)
    rps, pct, _ = wrk("http://127.0.0.1:18099/v1/events", a.seconds, "single.lua")
    subprocess.run(["nginx", "-c", f"{work}/nginx.conf", "-p", work, "-s", "quit"])
    ceiling = rps
    rows.append({"setup": "nginx 204, access log on (ceiling)", "load": "single-event POST", "events_per_s": round(rps), **pct})

    def measure(name, procs, port, load, script, events_per_req, conns=64, env=None, data=None):
        pids = [p.pid for p in procs]
        c0 = cpu_seconds(pids); d0 = du(data) if data else 0
        rps, pct, errors = wrk(f"http://127.0.0.1:{port}/", a.seconds, script, conns, env)
        c1 = cpu_seconds(pids); d1 = du(data) if data else 0
        events = rps * a.seconds * events_per_req
        row = {"setup": name, "load": load, "events_per_s": round(rps * events_per_req), **pct,
               "cpu_s_per_million_events": round((c1 - c0) / max(events, 1) * 1e6, 1),
               "ratio_to_ceiling": round(rps / ceiling, 3), "non_2xx": errors}
        if data and events:
            row["disk_bytes_per_event"] = round((d1 - d0) / events, 1)
        rows.append(row)
        print(row, flush=True)

    # 2. One node, rf=1.
    procs = start_nodes(a.bin, f"{work}/one", 1, 1)
    measure("1 node rf=1", procs, 18101, "single-event POST", "single.lua", 1, data=f"{work}/one")
    measure("1 node rf=1", procs, 18101, "100-event batches", "batch.lua", 100, conns=16, env=dict(os.environ, BATCH="100"), data=f"{work}/one")
    out = subprocess.run([sys.executable, os.path.join(BENCH, "udp_blast.py"), "--port", "18101", "--count", "300000", "--prefix", "ub"],
                         capture_output=True, text=True).stdout
    time.sleep(2)
    import urllib.request
    m = urllib.request.urlopen("http://127.0.0.1:18101/metrics").read().decode()
    got = int(float(re.search(r'starling_events_ingested_total\{transport="udp"\} ([\d.]+)', m).group(1)))
    rows.append({"setup": "1 node rf=1", "load": "UDP datagrams (Python sender, one core)", "offered": out.strip(),
                 "stored_of_300000": got, "loss_pct": round(100 * (1 - got / 300000), 1)})
    stop(procs)
    # 3. Three nodes, rf=2, directly and behind HAProxy.
    procs = start_nodes(a.bin, f"{work}/three", 3, 2)
    measure("3 nodes rf=2 (to node 1)", procs, 18101, "single-event POST", "single.lua", 1, data=f"{work}/three")
    measure("3 nodes rf=2 (to node 1)", procs, 18101, "100-event batches", "batch.lua", 100, conns=16, env=dict(os.environ, BATCH="100"), data=f"{work}/three")
    env = dict(os.environ, STARLING_BASE_PORT="18100", STARLING_LB_DIR=f"{work}/lb", STARLING_LB_RATE="1000000")
    subprocess.run([os.path.join(ROOT, "ops/lb/start"), "haproxy", "3", "18180"], env=env, check=True, stdout=subprocess.DEVNULL)
    time.sleep(2)
    measure("3 nodes rf=2 behind HAProxy", procs, 18180, "single-event POST", "single.lua", 1, data=f"{work}/three")
    subprocess.run([os.path.join(ROOT, "ops/lb/stop")], env=env, stdout=subprocess.DEVNULL)
    stop(procs)
    shutil.rmtree(work, ignore_errors=True)

    cmd = "ops/bench/run --seconds %d" % a.seconds
    result = {"command": cmd, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{os.cpu_count()} cores, loopback, load tool on the same machine", "rows": rows}
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    json.dump(result, open(os.path.join(ROOT, "docs/benchmarks.json"), "w"), indent=2)
    lines = ["# Benchmarks", "", f"Produced by `{cmd}` on {result['date']} ({result['machine']}; wrk closed loop, "
             "so latencies include queueing at saturation). Figures move ±30% between runs on this shared machine.", "",
             "| setup | load | events/s | p50 ms | p99 ms | CPU s per 1M events | disk bytes/event | vs ceiling |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "events_per_s" in r:
            lines.append(f"| {r['setup']} | {r['load']} | {r['events_per_s']:,} | {r.get('p50_ms','')} | {r.get('p99_ms','')} | "
                         f"{r.get('cpu_s_per_million_events','')} | {r.get('disk_bytes_per_event','')} | {r.get('ratio_to_ceiling','')} |")
        else:
            lines.append(f"| {r['setup']} | {r['load']} | {r['stored_of_300000']:,} of 300,000 stored ({r['loss_pct']}% lost; {r['offered']}) | | | | | |")
    open(os.path.join(ROOT, "docs/benchmarks.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0

if __name__ == "__main__":
    sys.exit(main())

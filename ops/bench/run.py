#!/usr/bin/env python3
"""Benchmark run on this machine (loopback only, every run bounded): the nginx ceiling, then
Redis 7 XADD (AOF everysec) as the peer a user would pick instead, Starling 1 node rf=1, 3 nodes
rf=2 directly and behind HAProxy, and scaling series of 1, 2, 4 and 8 nodes (rf=1 and rf=2, load
spread as by a load balancer and sent by a ring-routing client), each node capped to the same CPU
share with a cgroup (v1 cpu.cfs_quota_us), so linear scaling is visible on a 2-core machine. For each: events/s, latency percentiles (wrk
--latency, closed loop), server CPU-seconds per million events (from /proc), bytes on disk per
event, ratio to the ceiling. Writes docs/benchmarks.md, docs/benchmarks.json and
docs/scaling.png (gnuplot).

  ops/bench/run [--seconds 10] [--bin .build/release/starling]
                [--only ceiling,one,three,scaling] [--scaling-nodes 1,2,4,8] [--node-cpu 0.15]
                [--scaling-rounds 3]
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

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

def bench(binary, args, seconds):
    """One `starling bench` run; returns its JSON summary (None when it failed)."""
    out = tempfile.mktemp(suffix=".json")
    r = subprocess.run([binary, "bench", "--quiet", "--duration", str(seconds), "--json", out] + args,
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0 or not os.path.exists(out):
        print("starling bench failed:", " ".join(args), r.stdout[-400:], r.stderr[-400:], flush=True)
        return None
    result = json.load(open(out))
    os.unlink(out)
    return result

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

CGROUP = "/sys/fs/cgroup/cpu/starling-bench"

def cgroup_cap(pid, name, cpus, period_us=100_000):
    """Caps process `pid` (all its threads) to `cpus` cores with a cgroup v1 CFS quota."""
    d = os.path.join(CGROUP, name)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "cpu.cfs_period_us"), "w").write(str(period_us))
    open(os.path.join(d, "cpu.cfs_quota_us"), "w").write(str(int(cpus * period_us)))
    open(os.path.join(d, "cgroup.procs"), "w").write(str(pid))

def cgroup_cleanup():
    if os.path.isdir(CGROUP):
        for name in os.listdir(CGROUP):
            if os.path.isdir(os.path.join(CGROUP, name)):
                try: os.rmdir(os.path.join(CGROUP, name))
                except OSError: pass
        try: os.rmdir(CGROUP)
        except OSError: pass

def cgroups_available():
    try:
        os.makedirs(CGROUP, exist_ok=True)
        open(os.path.join(CGROUP, "cpu.cfs_quota_us")).read()
        return True
    except OSError:
        return False

def wait_members(ports, n, seconds=30):
    """Until every node's /v1/cluster shows n members up (the ring has converged)."""
    import urllib.request
    end = time.time() + seconds
    while time.time() < end:
        try:
            ok = all(sum(1 for m in json.loads(urllib.request.urlopen(f"http://127.0.0.1:{p}/v1/cluster", timeout=2).read())["members"]
                         if m["status"] == "up") == n for p in ports)
            if ok: return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    return False

def start_nodes(binary, work, n, rf, base=18100, extra=()):
    procs = []
    for k in range(1, n + 1):
        args = [binary, "node", "--id", f"n{k}", "--data", f"{work}/n{k}", "--http", f"127.0.0.1:{base + k}",
                "--udp", f"127.0.0.1:{base + k}", "--peer", f"127.0.0.1:{base + 100 + k}", "--rf", str(rf), "--log-level", "error"]
        if k > 1: args += ["--join", f"127.0.0.1:{base + 101}"]
        args += list(extra)
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
    for k in range(1, n + 1):
        wait_http(base + k, "/readyz", 30)
    dead = [k for k, p in enumerate(procs, 1) if p.poll() is not None]
    if dead:
        stop(procs)
        sys.exit(f"error: node(s) {dead} exited at start (a port in {base + 1}..{base + 100 + n} in use?)")
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
    ap.add_argument("--only", default="ceiling,one,three,scaling", help="sections to run (comma-separated)")
    ap.add_argument("--scaling-nodes", default="1,2,4,8")
    ap.add_argument("--node-cpu", type=float, default=0.15, help="CPU cores each node may use in the scaling series")
    ap.add_argument("--scaling-rounds", type=int, default=3,
                    help="rounds of the whole scaling series; each point reports its median round (the machine drifts)")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if not os.access(a.bin, os.X_OK):
        print("error: build first: swift build -c release", file=sys.stderr); return 2
    for tool in ("wrk", "nginx", "haproxy", "redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            pkg = {"wrk": "wrk", "nginx": "nginx-light", "haproxy": "haproxy", "redis-server": "redis-server", "redis-benchmark": "redis-tools"}[tool]
            subprocess.run(["apt-get", "install", "-y", "-qq", pkg], check=True)
    work = tempfile.mkdtemp(prefix="starling-bench-")
    rows, series = [], []
    ceiling = None
    # 1. The ceiling: nginx answering 204 with its access log on.
    if "ceiling" in only:
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
        # The peer a user choosing a fast session-keyed append store would pick instead: Redis
        # streams, XADD to one stream per session, durable with AOF fsync every second.
        rows.extend(redis_rows(work, a.seconds))

    def measure(name, procs, port, load, script, events_per_req, conns=64, env=None, data=None):
        pids = [p.pid for p in procs]
        c0 = cpu_seconds(pids); d0 = du(data) if data else 0
        rps, pct, errors = wrk(f"http://127.0.0.1:{port}/", a.seconds, script, conns, env)
        c1 = cpu_seconds(pids); d1 = du(data) if data else 0
        events = rps * a.seconds * events_per_req
        row = {"setup": name, "load": load, "events_per_s": round(rps * events_per_req), **pct,
               "cpu_s_per_million_events": round((c1 - c0) / max(events, 1) * 1e6, 1), "non_2xx": errors}
        if ceiling and events_per_req == 1:
            row["ratio_to_ceiling"] = round(rps / ceiling, 3)
        if data and events:
            row["disk_bytes_per_event"] = round((d1 - d0) / events, 1)
        rows.append(row)
        print(row, flush=True)

    def fixed_rate(name, load, args, procs=None):
        """Open loop (starling bench --rate): latency from each request's due time, so queueing shows."""
        pids = [p.pid for p in procs or []]
        udp = "udp" in args
        k0 = metric(18101, "starling_udp_socket_drops") if udp else None
        c0 = cpu_seconds(pids)
        r = bench(a.bin, args, a.seconds)
        c1 = cpu_seconds(pids)
        k1 = metric(18101, "starling_udp_socket_drops") if udp else None
        if not r:
            rows.append({"setup": name, "load": load, "failed": True}); return
        lat = r.get("latencyMicros")     # none for UDP (fire and forget)
        ol = r.get("openLoop") or {}
        row = {"setup": name, "load": load, "events_per_s": round(r["eventsPerSecond"]), "loop": r["loop"],
               "errors": r["errorCount"], "late_sends": ol.get("late"), "never_sent": ol.get("missed")}
        if lat:
            row.update({"p50_ms": round(lat["p50"] / 1000, 2), "p99_ms": round(lat["p99"] / 1000, 2), "p999_ms": round(lat["p999"] / 1000, 2)})
        if pids and r["eventsAcked"]:
            row["cpu_s_per_million_events"] = round((c1 - c0) / r["eventsAcked"] * 1e6, 1)
        if r.get("verification"):
            v = r["verification"]
            row["stored"], row["expected"] = v["stored"], v["expected"]
            row["loss_pct"] = round(100 * (1 - v["stored"] / max(v["expected"], 1)), 3)
        if k0 is not None and k1 is not None:
            row["kernel_drops"] = int(k1 - k0)   # dropped in the node's full socket queue
        rows.append(row)
        print(row, flush=True)

    batch_env = dict(os.environ, BATCH="100")
    # 2. One node, rf=1.
    if "one" in only:
        procs = start_nodes(a.bin, f"{work}/one", 1, 1)
        measure("1 node rf=1", procs, 18101, "single-event POST", "single.lua", 1, data=f"{work}/one")
        measure("1 node rf=1", procs, 18101, "100-event batches", "batch.lua", 100, conns=16, env=batch_env, data=f"{work}/one")
        fixed_rate("1 node rf=1", "single events, open loop 5,000/s", ["--mode", "http", "--target", "127.0.0.1:18101", "--rate", "5000",
                   "--connections", "32", "--warmup", "1"], procs)
        fixed_rate("1 node rf=1", "100-event batches, open loop 20,000 events/s", ["--mode", "batch", "--target", "127.0.0.1:18101",
                   "--rate", "200", "--warmup", "1"], procs)
        fixed_rate("1 node rf=1", "100-event frames on the peer port (binary protocol), closed loop",
                   ["--mode", "peer", "--peer", "127.0.0.1:18201", "--connections", "4", "--warmup", "1"], procs)
        for rate in (100_000, 300_000):
            fixed_rate("1 node rf=1", f"UDP datagrams, open loop {rate:,}/s", ["--mode", "udp", "--udp", "127.0.0.1:18101", "--rate", str(rate),
                       "--verify-url", "127.0.0.1:18101"], procs)
        stop(procs)
    # 3. Three nodes, rf=2, directly and behind HAProxy.
    if "three" in only:
        procs = start_nodes(a.bin, f"{work}/three", 3, 2)
        wait_members([18101, 18102, 18103], 3)
        measure("3 nodes rf=2 (to node 1)", procs, 18101, "single-event POST", "single.lua", 1, data=f"{work}/three")
        measure("3 nodes rf=2 (to node 1)", procs, 18101, "100-event batches", "batch.lua", 100, conns=16, env=batch_env, data=f"{work}/three")
        fixed_rate("3 nodes rf=2", "single events, open loop 2,000/s over the 3 nodes", ["--mode", "http", "--target", "127.0.0.1:18101",
                   "--rate", "2000", "--connections", "32", "--warmup", "1"], procs)
        fixed_rate("3 nodes rf=2", "100-event batches, open loop 20,000 events/s", ["--mode", "batch", "--target", "127.0.0.1:18101",
                   "--rate", "200", "--warmup", "1"], procs)
        env = dict(os.environ, STARLING_BASE_PORT="18100", STARLING_LB_DIR=f"{work}/lb", STARLING_LB_RATE="1000000")
        subprocess.run([os.path.join(ROOT, "ops/lb/start"), "haproxy", "3", "18180"], env=env, check=True, stdout=subprocess.DEVNULL)
        time.sleep(2)
        measure("3 nodes rf=2 behind HAProxy", procs, 18180, "single-event POST", "single.lua", 1, data=f"{work}/three")
        subprocess.run([os.path.join(ROOT, "ops/lb/stop")], env=env, stdout=subprocess.DEVNULL)
        stop(procs)
    # 4. The scaling series: N nodes, each capped to the same CPU share, rf=1 and rf=2, loaded as
    # behind a load balancer (every node takes a share, most events hop to their owner) and by a
    # ring-routing client (each session straight to its owner).
    scaling_note = None
    if "scaling" in only:
        if not cgroups_available():
            scaling_note = "skipped: cgroup v1 cpu controller not writable here (needs root)"
        else:
            # Whole rounds of the series, one after another, so drift over the run hits every
            # point alike; each point is then its median round (its spread is reported with it).
            rounds = {}
            for _ in range(max(1, a.scaling_rounds)):
                for rf in (1, 2):
                    for route in ("lb", "ring"):
                        for n in [int(x) for x in a.scaling_nodes.split(",")]:
                            if n >= rf:
                                rounds.setdefault((rf, route, n), []).append(scaling_point(a, work, n, rf, route))
            for pts in rounds.values():
                ranked = sorted(pts, key=lambda p: p["events_per_s"])
                median = dict(ranked[(len(ranked) - 1) // 2])
                median["rounds_events_per_s"] = [p["events_per_s"] for p in pts]
                series.append(median)
            cgroup_cleanup()
    shutil.rmtree(work, ignore_errors=True)

    cmd = "ops/bench/run --seconds %d" % a.seconds + ("" if a.only == "ceiling,one,three,scaling" else f" --only {a.only}")
    result = {"command": cmd, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores, loopback, load tool on the same machine", "rows": rows,
              "scaling": {"node_cpu": a.node_cpu, "rounds": a.scaling_rounds, "points": series, "note": scaling_note}}
    write_report(result)
    return 0

def metric(http_port, name):
    """One unlabelled sample from a node's /metrics, None when absent or unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None

def scaling_point(a, work, n, rf=1, route="lb"):
    """One point of the series: n nodes, each capped to a.node_cpu cores, 100-event batches
    (closed loop). route "lb": one wrk per node (8 connections each), so the load spreads like a
    load balancer's and most events hop to their owner. route "ring": one `starling bench --route
    ring` (8 connections per node) that sends each session straight to its owner."""
    base = 18200
    data = f"{work}/scale{n}-rf{rf}-{route}"
    os.sync()   # the last point's dirty pages must not be written back during this one
    procs = start_nodes(a.bin, data, n, rf, base=base)
    for k, p in enumerate(procs, 1):
        cgroup_cap(p.pid, f"n{k}", a.node_cpu)
    ports = [base + k for k in range(1, n + 1)]
    converged = wait_members(ports, n)
    time.sleep(1)
    pids = [p.pid for p in procs]
    c0 = [cpu_seconds([pid]) for pid in pids]
    errors = 0
    if route == "lb":
        env = dict(os.environ, BATCH="100")
        runs = [subprocess.Popen(["wrk", "-t1", "-c8", f"-d{a.seconds}s", "--latency", "-s", os.path.join(BENCH, "batch.lua"),
                                  f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True, env=env) for port in ports]
        outs = [r.communicate(timeout=a.seconds + 30)[0] for r in runs]
        events = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs) * 100
        errors = sum(int(m.group(1)) for o in outs for m in [re.search(r"Non-2xx or 3xx responses: (\d+)", o)] if m)
    else:
        r = bench(a.bin, ["--mode", "batch", "--batch", "100", "--route", "ring", "--target", f"127.0.0.1:{ports[0]}",
                          "--connections", str(8 * n), "--sessions", "20000", "--event-bytes", "220"], a.seconds)
        events = r["eventsPerSecond"] if r else 0
        errors = r["errorCount"] if r else -1
    c1 = [cpu_seconds([pid]) for pid in pids]
    # The mean forward frame: events forwarded to owners over the frames that carried them.
    forwarded = sum(metric(port, "starling_events_forwarded_total") or 0 for port in ports)
    frames = sum(metric(port, "starling_forward_batches_total") or 0 for port in ports)
    # The mean replication frame: records shipped to followers over the frames that carried them.
    shipped = sum(metric(port, "starling_replica_records_shipped_total") or 0 for port in ports)
    replica_frames = sum(metric(port, "starling_replica_batches_total") or 0 for port in ports)
    stop(procs)
    shutil.rmtree(data, ignore_errors=True)
    cpu = [round(c1[i] - c0[i], 2) for i in range(n)]
    point = {"nodes": n, "rf": rf, "route": route, "events_per_s": round(events), "per_node_events_per_s": round(events / n),
             "cpu_s_per_node": cpu, "cpu_us_per_event": round(sum(cpu) / max(events * a.seconds, 1) * 1e6, 1),
             "mean_forward_frame": round(forwarded / frames, 1) if frames else None,
             "mean_replica_frame": round(shipped / replica_frames, 1) if replica_frames else None,
             "non_2xx": errors, "ring_converged": converged}
    print(point, flush=True)
    return point

def redis_rows(work, seconds):
    """Redis 7 XADD, one stream per session (5,000 sessions), ~200-byte entries, AOF with fsync
    every second: pipelined x64 and unpipelined, with redis-benchmark (its own C client)."""
    rows = []
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
        return [{"setup": "Redis XADD", "load": "not installed", "failed": True}]
    os.makedirs(f"{work}/redis", exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", "18379", "--bind", "127.0.0.1", "--dir", f"{work}/redis", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        value = "v" * 180
        for pipeline, total in ((64, 3_000_000), (1, 400_000)):
            c0 = cpu_seconds([p.pid])
            t0 = time.time()
            out = subprocess.run(["timeout", str(seconds * 6), "redis-benchmark", "-p", "18379", "-c", "16", "-P", str(pipeline),
                                  "-n", str(total), "-r", "5000", "--csv", "XADD", "session:__rand_int__", "*", "key", "page_view",
                                  "value", value], capture_output=True, text=True).stdout
            elapsed = time.time() - t0
            c1 = cpu_seconds([p.pid])
            lines = [l for l in out.strip().splitlines() if l.startswith('"XADD')]
            if not lines:
                rows.append({"setup": "Redis 7 XADD, AOF everysec", "load": f"pipeline {pipeline}", "failed": True}); continue
            f = [x.strip('"') for x in lines[-1].split(",")]
            rps = float(f[1])
            rows.append({"setup": "Redis 7 XADD, AOF everysec", "load": f"one entry per command, pipeline x{pipeline}, 16 connections",
                         "events_per_s": round(rps), "p50_ms": float(f[4]), "p99_ms": float(f[6]),
                         "cpu_s_per_million_events": round((c1 - c0) / max(rps * elapsed, 1) * 1e6, 1)})
            print(rows[-1], flush=True)
    finally:
        p.terminate()
        p.wait(10)
    return rows

def write_report(result):
    rows = result["rows"]
    lines = ["# Benchmarks", "", f"Produced by `{result['command']}` on {result['date']} ({result['machine']}). "
             "Figures move ±30% between runs on this shared machine.",
             "Closed-loop rows (wrk, or `starling bench` without a rate) measure throughput; open-loop rows (`starling bench --rate`) "
             "measure latency at a fixed rate from each request's due time (no coordinated omission).", "",
             "| setup | load | events/s | p50 ms | p99 ms | p99.9 ms | CPU s per 1M events | disk bytes/event | vs ceiling | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("failed"):
            lines.append(f"| {r['setup']} | {r['load']} | failed | | | | | | | |")
            continue
        notes = []
        if r.get("non_2xx"): notes.append(f"{r['non_2xx']} non-2xx")
        if r.get("errors"): notes.append(f"{r['errors']} errors")
        if r.get("late_sends"): notes.append(f"{r['late_sends']} late sends")
        if r.get("never_sent"): notes.append(f"{r['never_sent']} never sent")
        if "loss_pct" in r: notes.append(f"stored {r['stored']:,} of {r['expected']:,} ({r['loss_pct']}% lost)")
        if "kernel_drops" in r: notes.append(f"{r['kernel_drops']:,} dropped by the kernel at the node's full socket queue")
        lines.append(f"| {r['setup']} | {r['load']} | {r['events_per_s']:,} | {r.get('p50_ms','')} | {r.get('p99_ms','')} | {r.get('p999_ms','')} | "
                     f"{r.get('cpu_s_per_million_events','')} | {r.get('disk_bytes_per_event','')} | {r.get('ratio_to_ceiling','')} | {'; '.join(notes)} |")
    sc = result["scaling"]
    if sc["points"]:
        lines += ["", "## Scaling", "",
                  f"Each node capped to {sc['node_cpu']} CPU cores (cgroup v1 `cpu.cfs_quota_us`), 100-event batches, closed loop. "
                  "**lb**: one wrk per node (8 connections each) posting batches of random sessions, as behind a load balancer, so "
                  "(N-1)/N of the events hop to their owner. **ring**: one `starling bench --route ring` (8 connections per node) "
                  "that reads the ring from `/v1/cluster` and sends each session straight to its owner. Linear is N times the 1-node "
                  "point for rf=1, and N/2 times the 2-node point for rf=2 (every event is appended on two nodes). "
                  "CPU-µs per event is all nodes' CPU over all events: the figure that has to stay flat. "
                  "Mean forward frame: events forwarded to their owners over the frames that carried them "
                  "(`starling_events_forwarded_total` / `starling_forward_batches_total`, all nodes; – when nothing hopped). "
                  "Mean replication frame: records shipped to followers over the frames that carried them "
                  "(`starling_replica_records_shipped_total` / `starling_replica_batches_total`; – at rf=1). "
                  f"The whole series ran {sc.get('rounds', 1)} time(s), one round after another; each point is its median round "
                  "(the other columns are from that round), and the events/s of every round are listed.", "",
                  "| rf | route | nodes | events/s | per node | vs linear | CPU-µs per event (all nodes) | mean forward frame | mean replication frame | node CPU-s (each) | errors | rounds (events/s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for key in sorted({(p.get("rf", 1), p.get("route", "lb")) for p in sc["points"]}):
            pts = [p for p in sc["points"] if (p.get("rf", 1), p.get("route", "lb")) == key]
            base = min(pts, key=lambda p: p["nodes"])
            for p in pts:
                lin = p["events_per_s"] / (base["events_per_s"] * p["nodes"] / base["nodes"]) if base["events_per_s"] else 0
                lines.append(f"| {key[0]} | {key[1]} | {p['nodes']} | {p['events_per_s']:,} | {p['per_node_events_per_s']:,} | {lin:.2f} | "
                             f"{p.get('cpu_us_per_event', '')} | {p.get('mean_forward_frame') or '–'} | {p.get('mean_replica_frame') or '–'} | "
                             f"{', '.join(map(str, p['cpu_s_per_node']))} | {p.get('non_2xx', '')} | "
                             f"{' / '.join(f'{x:,}' for x in p.get('rounds_events_per_s', [p['events_per_s']]))} |")
        if plot(sc["points"], os.path.join(ROOT, "docs/scaling.png")):
            lines += ["", "![throughput vs nodes](scaling.png)"]
    elif sc.get("note"):
        lines += ["", "## Scaling", "", sc["note"]]
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    json.dump(result, open(os.path.join(ROOT, "docs/benchmarks.json"), "w"), indent=2)
    md = os.path.join(ROOT, "docs/benchmarks.md")
    old = open(md).read() if os.path.exists(md) else ""
    scale = ""   # the scale rows (ops/bench/scale) are their own runs: keep their sections
    for m in re.finditer(r"<!-- scale:begin:(\w+) -->.*?<!-- scale:end:\1 -->", old, re.S):
        scale += "\n" + m.group(0) + "\n"
    open(md, "w").write("\n".join(lines) + "\n" + scale)
    print("\n".join(lines))

def plot(points, path):
    """Throughput vs nodes per (rf, route) series, with the linear line of each (gnuplot, PNG)."""
    if not shutil.which("gnuplot"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "gnuplot-nox"], stdout=subprocess.DEVNULL)
    if not shutil.which("gnuplot"):
        return False
    blocks, plots = [], []
    for idx, key in enumerate(sorted({(p.get("rf", 1), p.get("route", "lb")) for p in points})):
        pts = sorted((p for p in points if (p.get("rf", 1), p.get("route", "lb")) == key), key=lambda p: p["nodes"])
        base = pts[0]
        per = base["events_per_s"] / base["nodes"]
        data = "\n".join(f"{p['nodes']} {p['events_per_s']} {per * p['nodes']}" for p in pts)
        blocks.append(f"$d{idx} << EOD\n{data}\nEOD")
        plots.append(f"$d{idx} using 1:2 with linespoints pt 7 lw 2 lc {idx + 1} title 'rf={key[0]} {key[1]}'")
        plots.append(f"$d{idx} using 1:3 with lines dashtype 2 lw 1 lc {idx + 1} notitle")
    nodes = sorted({p["nodes"] for p in points})
    script = f"""set terminal pngcairo size 760,460
set output '{path}'
set title 'Starling: events/s vs nodes, each node capped to one CPU share (dashed: linear)' font ',10'
set xlabel 'nodes'; set ylabel 'events/s'; set key left top; set grid
set xtics ({', '.join(map(str, nodes))})
set yrange [0:*]
""" + "\n".join(blocks) + "\nplot " + ", ".join(plots) + "\n"
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    return r.returncode == 0 and os.path.exists(path)

if __name__ == "__main__":
    sys.exit(main())

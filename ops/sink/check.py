#!/usr/bin/env python3
"""The PostgreSQL sink against a real PostgreSQL (Debian's, started here with initdb + postgres in
a temp dir on 127.0.0.1, stopped by PID) and real nodes (2 nodes, rf=2, both sinking):

1. Events stream into node 2 while node 1 is killed with -9 and restarted with its data; then
   every acknowledged event must be in the table exactly once (by event id), once both sinks
   have caught up (starling_sink_lag_bytes 0).
2. With --bench SECONDS: `starling bench` batches into node 1 while the sink's lag is sampled each
   second; reports the largest lag and how long the sinks took to drain after the load.

    apt-get install -y postgresql
    python3 ops/sink/check.py --bin .build/debug/starling [--bench 10] [--report FILE]
"""
import argparse, glob, json, os, pwd, shutil, signal, subprocess, sys, tempfile, threading, time, urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from checklib import wait  # noqa: E402

def get(url, timeout=5):
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


def metric(port, name):
    for line in get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None

class Postgres:
    def __init__(self, work, port):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins: raise SystemExit("FAIL: PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bin, self.port = bins[-1], port
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        self.user = None
        if os.getuid() == 0:   # initdb and postgres refuse to run as root
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(work, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run([f"{self.bin}/initdb", "-D", self.dir, "-A", "trust", "-U", "starling", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, user=self.user)
        self.proc = subprocess.Popen([f"{self.bin}/postgres", "-D", self.dir, "-p", str(port), "-k", self.dir,
                                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "pg.log"), "w"), user=self.user)
        if not wait(lambda: subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                                           stdout=subprocess.DEVNULL).returncode == 0, 30):
            raise SystemExit("FAIL: PostgreSQL did not start")
        self.conninfo = f"host=127.0.0.1 port={port} dbname=postgres user=starling"

    def query(self, sql):
        r = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "starling", "-d", "postgres", "-Atc", sql],
                           capture_output=True, text=True)
        if r.returncode != 0: raise RuntimeError(r.stderr)
        return r.stdout

    def stop(self):
        self.proc.send_signal(signal.SIGINT)   # fast shutdown
        try: self.proc.wait(30)
        except subprocess.TimeoutExpired: self.proc.kill()

def node(binary, work, k, base, conninfo, join):
    args = [binary, "node", "--id", f"s{k}", "--data", f"{work}/s{k}", "--http", f"127.0.0.1:{base + k}",
            "--peer", f"127.0.0.1:{base + 100 + k}", "--rf", "2", "--log-level", "error", "--sink-postgres", conninfo]
    if join: args += ["--join", f"127.0.0.1:{base + 101}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def ready(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
    except OSError:
        return False

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/debug/starling")
    ap.add_argument("--bench", type=int, default=0)
    ap.add_argument("--report", default="")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    base, pg_port = 18500, 18499
    work = tempfile.mkdtemp(prefix="starling-sink-")
    os.chmod(work, 0o755)
    pg = Postgres(work, pg_port)
    nodes = {}
    report = {}
    failed = False
    try:
        nodes[1] = node(binary, work, 1, base, pg.conninfo, False)
        nodes[2] = node(binary, work, 2, base, pg.conninfo, True)
        if not wait(lambda: ready(base + 1) and ready(base + 2), 30): raise SystemExit("FAIL: the nodes did not become ready")

        acked, stop = [], threading.Event()
        def stream():
            i = 0
            while not stop.is_set() and i < 100_000:
                batch = [{"session_id": f"sink-{(i + j) % 97}", "key": "k", "value": i + j, "event_id": f"ev-{i + j}"} for j in range(10)]
                req = urllib.request.Request(f"http://127.0.0.1:{base + 2}/v1/events", data=json.dumps(batch).encode(), method="POST")
                try:
                    if urllib.request.urlopen(req, timeout=10).status == 202: acked.extend(b["event_id"] for b in batch)
                except OSError:
                    time.sleep(0.05)
                i += 10
        t = threading.Thread(target=stream)
        t.start()
        time.sleep(3)
        nodes[1].kill(); nodes[1].wait()          # kill -9 mid-stream, sink included
        time.sleep(1)
        nodes[1] = node(binary, work, 1, base, pg.conninfo, True)
        wait(lambda: ready(base + 1), 30)
        time.sleep(2)
        stop.set(); t.join()
        drained = wait(lambda: all(metric(base + k, "starling_sink_lag_bytes") == 0 for k in (1, 2)), 60)
        # The lag gauge is set by the sink's loop, so it can read 0 for up to one idle pause
        # (200 ms) after the last append: the table, not the gauge, decides.
        rows, missing = [], set(acked)
        end = time.time() + 60
        while missing and time.time() < end:
            rows = pg.query("SELECT event_id FROM starling_events").split()
            missing = set(acked) - set(rows)
            if missing: time.sleep(0.5)
        report["kill"] = report.get("kill", {}) | {"acknowledged": len(acked), "rows": len(rows), "distinct_rows": len(set(rows)), "missing": len(missing),
                          "sinks_caught_up": drained,
                          "sink_events": [metric(base + k, "starling_sink_events_total") for k in (1, 2)]}
        if missing:
            # Which side lost them: the cluster (a storage loss) or only the sink?
            held = {1: set(), 2: set()}
            for k in (1, 2):
                for sid in {f"sink-{int(e[3:]) % 97}" for e in missing}:
                    try:
                        body = json.loads(get(f"http://127.0.0.1:{base + k}/v1/sessions/{sid}?limit=100000", timeout=10))
                        held[k] |= {e.get("event_id") for e in body.get("events", [])}
                    except (OSError, ValueError):
                        pass
            report["kill"] |= {"missing_sample": sorted(missing)[:20],
                              "missing_held_by_cluster": {k: len(missing & held[k]) for k in (1, 2)}}
            print(f"     missing events the cluster still answers: node 1 {len(missing & held[1])}, node 2 {len(missing & held[2])}; "
                  f"sample {sorted(missing)[:10]}")
        ok = drained and not missing and len(rows) == len(set(rows)) and len(acked) > 0
        failed |= not ok
        print(("ok   " if ok else "FAIL ") + f"kill -9 mid-stream: {len(acked)} acknowledged, {len(rows)} rows "
              f"({len(set(rows))} distinct), {len(missing)} missing, sinks caught up: {drained}")

        if a.bench:
            lags, stop_at = [], time.time() + a.bench
            bench = subprocess.Popen([binary, "bench", "--target", f"127.0.0.1:{base + 1}", "--mode", "batch", "--batch", "100",
                                      "--connections", "8", "--duration", str(a.bench), "--quiet", "--json", f"{work}/bench.json"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while bench.poll() is None:
                lags.append(max(metric(base + k, "starling_sink_lag_bytes") or 0 for k in (1, 2)))
                time.sleep(1)
            ended = time.time()
            drained = wait(lambda: all(metric(base + k, "starling_sink_lag_bytes") == 0 for k in (1, 2)), 300)
            s = json.load(open(f"{work}/bench.json"))
            report["bench"] = {"seconds": a.bench, "events_per_second": s.get("eventsPerSecond"), "max_lag_bytes": max(lags or [0]),
                               "lag_bytes_each_second": lags, "drain_seconds_after_load": round(time.time() - ended, 1) if drained else None}
            print(f"bench: {s.get('eventsPerSecond', 0):,.0f} events/s for {a.bench} s; largest sink lag {max(lags or [0]) / 1e6:.1f} MB; "
                  f"drained {report['bench']['drain_seconds_after_load']} s after the load")
    finally:
        for p in nodes.values():
            p.send_signal(signal.SIGTERM)
        for p in nodes.values():
            try: p.wait(20)
            except subprocess.TimeoutExpired: p.kill()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    if a.report:
        with open(a.report, "w") as f: json.dump(report, f, indent=1)
    print("sink check " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())

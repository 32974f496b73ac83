#!/usr/bin/env python3
"""Starling chaos run: a local cluster under load, faults from a seeded schedule, then a check
that every event answered 202 is returned exactly once by every node.

  ops/chaos/run [--nodes 3] [--rf 2] [--seed 1] [--cycles 4] [--duration 120] [--bin PATH]
                [--report chaos-report.json] [--base-port 19000]

Loopback only. Every load loop and every fault step is bounded in time; the run stops by itself.
Faults: kill -9 + restart (same data), SIGSTOP/SIGCONT (a paused node), a fourth node joining,
a graceful leave (SIGTERM). Exit code 0 when nothing acknowledged was lost or duplicated and the
cluster healed; 1 otherwise.
"""
import argparse, http.client, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time

def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)

class Node:
    def __init__(self, binary, node_id, data, http_port, peer_port, rf, join):
        self.id, self.data, self.http_port, self.peer_port = node_id, data, http_port, peer_port
        self.binary, self.rf, self.join = binary, rf, join
        self.proc, self.exits, self.log_path = None, [], os.path.join(data + ".log")

    def start(self):
        args = [self.binary, "node", "--id", self.id, "--data", self.data, "--http", f"127.0.0.1:{self.http_port}",
                "--peer", f"127.0.0.1:{self.peer_port}", "--rf", str(self.rf), "--log-level", "warning"]
        if self.join:
            args += ["--join", self.join]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf)
        self.expected_stop = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.expected_stop = True
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill(); self.proc.wait()
        self.exits.append(self.proc.returncode)
        return self.proc.returncode

    def request(self, method, path, body=None, headers=None, timeout=5):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            c.request(method, path, body, headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def get_json(self, path):
        status, body = self.request("GET", path)
        return status, json.loads(body) if body else {}

    def last_log_lines(self, n=8):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []

class Load:
    """Clients posting small batches and pixels for many sessions; records every acknowledged id."""
    def __init__(self, nodes, seed, clients=4, sessions=200, lb=None):
        self.nodes, self.rng, self.lb = nodes, random.Random(seed), lb
        self.acked, self.lock = {}, threading.Lock()
        self.sent = self.ok = self.refused = self.errors = 0
        self.stop_flag = threading.Event()
        self.clients, self.sessions = clients, sessions
        self.threads = []

    def targets(self):
        if self.lb:
            return [self.lb]
        return [n for n in self.nodes if n.alive() and not getattr(n, "paused", False) and not getattr(n, "leaving", False)]

    def client(self, cid, deadline):
        rng = random.Random(self.rng.random())
        i = 0
        while not self.stop_flag.is_set() and time.time() < deadline:
            i += 1
            targets = self.targets()
            if not targets:
                time.sleep(0.05); continue
            node = rng.choice(targets)
            sid = f"c{cid}-s{rng.randrange(self.sessions)}"
            try:
                if rng.random() < 0.2:
                    eid = f"c{cid}-px{i}"
                    status, _ = node.request("GET", f"/t.gif?sid={sid}&k=view&v=%2Fp{i}&eid={eid}", timeout=5)
                    ids = [eid]
                else:
                    ids = [f"c{cid}-e{i}-{b}" for b in range(rng.randint(1, 5))]
                    body = json.dumps([{"session_id": sid, "key": "k", "value": i, "event_id": e} for e in ids])
                    status, _ = node.request("POST", "/v1/events", body, {"Content-Type": "application/json"}, timeout=5)
            except Exception:
                status = -1
            with self.lock:
                self.sent += 1
                if status in (200, 202):
                    self.ok += 1
                    self.acked.setdefault(sid, []).extend(ids)
                elif status in (429, 503):
                    self.refused += 1
                else:
                    self.errors += 1
            time.sleep(0.002)

    def start(self, max_seconds):
        deadline = time.time() + max_seconds
        for c in range(self.clients):
            t = threading.Thread(target=self.client, args=(c, deadline), daemon=True)
            t.start(); self.threads.append(t)

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)

def wait_for(cond, seconds, step=0.2):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if cond():
                return True
        except Exception:
            pass
        time.sleep(step)
    return False

def up_ids(node):
    status, c = node.get_json("/v1/cluster")
    return {m["id"] for m in c.get("members", []) if m.get("status") == "up"}

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rf", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cycles", type=int, default=4, help="fault cycles")
    p.add_argument("--duration", type=float, default=120, help="hard bound on the whole run, seconds")
    p.add_argument("--bin", default=None)
    p.add_argument("--base-port", type=int, default=19000)
    p.add_argument("--report", default="chaos-report.json")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    p.add_argument("--lb", choices=["nginx", "haproxy"], help="send the load through this load balancer (ops/lb)")
    a = p.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    binary = a.bin or next((b for b in [os.path.join(root, ".build/release/starling"), os.path.join(root, ".build/debug/starling")]
                            if os.access(b, os.X_OK)), None)
    if not binary:
        print("error: no starling binary; run `swift build -c release` first", file=sys.stderr); return 2
    rng = random.Random(a.seed)
    started = time.time()
    hard_end = started + a.duration
    work = tempfile.mkdtemp(prefix="starling-chaos-")
    nodes = []
    def make(k, join):
        return Node(binary, f"n{k}", os.path.join(work, f"n{k}"), a.base_port + k, a.base_port + 100 + k, a.rf, join)
    seed_peer = f"127.0.0.1:{a.base_port + 101}"
    for k in range(1, a.nodes + 1):
        n = make(k, None if k == 1 else seed_peer)
        n.start(); nodes.append(n)
        time.sleep(0.3)
    report = {"seed": a.seed, "nodes": a.nodes, "rf": a.rf, "binary": os.path.relpath(binary, root), "faults": []}
    ok = wait_for(lambda: all(up_ids(n) == {x.id for x in nodes} for n in nodes), 20)
    log(f"cluster of {a.nodes} up: {ok} (rf={a.rf}, seed={a.seed})")
    lb_port = a.base_port + 80
    lb = None
    if a.lb:
        # The balancer knows node ports up to nodes+2 (joins); it health-checks them itself.
        env = dict(os.environ, STARLING_BASE_PORT=str(a.base_port), STARLING_LB_DIR=os.path.join(work, "lb"),
                   STARLING_LB_RATE="100000")   # one client IP here: the balancer must not rate-limit it
        subprocess.run([os.path.join(root, "ops/lb/start"), a.lb, str(a.nodes + 2), str(lb_port)], env=env, check=True)
        lb = Node(binary, "lb", os.path.join(work, "lb-client"), lb_port, 0, a.rf, None)
        report["lb"] = a.lb
    load = Load(nodes, a.seed, lb=lb)
    load.start(max(10, a.duration - 40))
    time.sleep(2)
    joined = a.nodes
    for cycle in range(a.cycles):
        if time.time() > hard_end - 40:
            break
        kinds = ["kill", "pause", "kill", "pause", "join", "leave"]
        kind = rng.choice(kinds)
        live = [n for n in nodes if n.alive() and not getattr(n, "leaving", False)]
        if kind == "leave" and len(live) <= a.rf:
            kind = "kill"
        if kind == "join" and joined >= a.nodes + 2:
            kind = "pause"
        victim = rng.choice(live)
        step = {"cycle": cycle, "kind": kind, "at": round(time.time() - started, 1)}
        log(f"fault {cycle}: {kind} {victim.id if kind != 'join' else ''}")
        if kind == "kill":
            step["node"] = victim.id
            victim.expected_stop = True
            victim.proc.kill(); victim.proc.wait(); victim.exits.append(victim.proc.returncode)
            wait_for(lambda: victim.id not in up_ids(next(n for n in nodes if n.alive())), 10)
            time.sleep(rng.uniform(0.5, 2.0))
            victim.start()
            step["rejoined"] = wait_for(lambda: victim.id in up_ids(next(n for n in nodes if n.alive() and n is not victim)), 15)
        elif kind == "pause":
            step["node"] = victim.id
            victim.paused = True
            victim.send(signal.SIGSTOP)
            time.sleep(rng.uniform(1.0, 4.0))
            victim.send(signal.SIGCONT)
            victim.paused = False
            step["recovered"] = wait_for(lambda: victim.id in up_ids(next(n for n in nodes if n.alive() and n is not victim)), 15)
        elif kind == "join":
            joined += 1
            n = make(joined, seed_peer if nodes[0].alive() else f"127.0.0.1:{live[0].peer_port}")
            n.start(); nodes.append(n)
            step["node"] = n.id
            step["joined"] = wait_for(lambda: n.id in up_ids(live[0]), 15)
        elif kind == "leave":
            step["node"] = victim.id
            victim.leaving = True
            step["exit_code"] = victim.stop(signal.SIGTERM)
        report["faults"].append(step)
        time.sleep(rng.uniform(1.0, 3.0))
    time.sleep(1)
    load.finish()
    live = [n for n in nodes if n.alive()]
    expected = {n.id for n in live}
    healed = wait_for(lambda: all(up_ids(n) == expected for n in live), 20)
    # Check: every acknowledged id exactly once from every live node, no partial answers.
    lost, dup, partial, checked = {}, {}, 0, 0
    def check():
        nonlocal partial, checked
        lost.clear(); dup.clear(); partial = 0; checked = 0
        for sid, ids in load.acked.items():
            for n in live:
                status, q = n.get_json(f"/v1/sessions/{sid}?limit=100000")
                if q.get("partial"):
                    partial += 1
                counts = {}
                for e in q.get("events", []):
                    counts[e.get("event_id")] = counts.get(e.get("event_id"), 0) + 1
                for i in ids:
                    checked += 1
                    c = counts.get(i, 0)
                    if c == 0: lost.setdefault(n.id, []).append(i)
                    if c > 1: dup.setdefault(n.id, []).append(i)
        return not lost and not dup and partial == 0
    settled = wait_for(check, 30, step=2)
    unexpected = [{"node": n.id, "exit": n.proc.returncode, "log": n.last_log_lines()} for n in nodes
                  if not n.alive() and not n.expected_stop]
    left = [n for n in nodes if n.alive()]
    stop_codes = {n.id: n.stop(signal.SIGTERM) for n in left}
    report.update({
        "seconds": round(time.time() - started, 1),
        "requests": load.sent, "acknowledged_requests": load.ok, "refused_503_429": load.refused, "errors": load.errors,
        "acknowledged_events": sum(len(v) for v in load.acked.values()), "sessions": len(load.acked),
        "checked_answers": checked, "lost": sum(len(v) for v in lost.values()), "duplicated": sum(len(v) for v in dup.values()),
        "lost_ids": {k: v[:50] for k, v in lost.items()}, "duplicated_ids": {k: v[:50] for k, v in dup.items()},
        "partial_answers": partial, "healed": healed, "settled": settled,
        "unexpected_exits": unexpected, "final_stop_exit_codes": stop_codes,
    })
    passed = (healed and settled and report["lost"] == 0 and report["duplicated"] == 0 and not unexpected
              and all(c == 0 for c in stop_codes.values()) and report["acknowledged_events"] > 0)
    report["passed"] = passed
    with open(a.report, "w") as f:
        json.dump(report, f, indent=2)
    print()
    print(f"chaos seed {a.seed}: {'PASS' if passed else 'FAIL'} in {report['seconds']} s")
    print(f"  faults: " + ", ".join(f"{s['kind']}({s.get('node','')})" for s in report["faults"]))
    print(f"  requests {load.sent}: 202 {load.ok}, 503/429 {load.refused}, other {load.errors}")
    print(f"  acknowledged events {report['acknowledged_events']} in {report['sessions']} sessions, checked {checked} answers on {len(live)} nodes")
    print(f"  lost {report['lost']}, duplicated {report['duplicated']}, partial answers {partial}, healed {healed}")
    print(f"  unexpected exits {len(unexpected)}, final SIGTERM exit codes {stop_codes}")
    print(f"  report: {a.report}")
    if a.lb:
        subprocess.run([os.path.join(root, "ops/lb/stop")], env=dict(os.environ, STARLING_LB_DIR=os.path.join(work, "lb")))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  data kept in {work}")
    return 0 if passed else 1

if __name__ == "__main__":
    sys.exit(main())

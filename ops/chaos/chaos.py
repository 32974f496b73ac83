#!/usr/bin/env python3
"""Starling chaos run: a local cluster under load, faults from a seeded schedule, then a check
that every event answered 202 is returned exactly once by every node.

  ops/chaos/run [--nodes 3] [--rf 2] [--seed 1] [--cycles 4] [--duration 120] [--bin PATH]
                [--report chaos-report.json] [--base-port 19000] [--lb nginx|haproxy]
                [--net loopback|netns] [--faults kill,pause,join,leave,partition]
                [--partition-hold 2:8] [--tls] [--segment-mb N]

Every load loop and every fault step is bounded in time; the run stops by itself. Members
always prove a shared cluster secret; --tls also makes a cluster CA and runs mTLS between them.
Faults: kill -9 + restart (same data), SIGSTOP/SIGCONT (a paused node), a new node joining,
a graceful leave (SIGTERM), and with --net netns a network partition of one node.

Networks:
  loopback (default)  every node on 127.0.0.1 (HTTP on base+k, peer on base+100+k). No partition.
  netns               each node runs in its own network namespace (`ip netns exec`), created by this
                      run and removed at exit (also after a failure or Ctrl-C; leftovers of a crashed
                      run are removed at the next start). Two private /24s from 10.213.0.0/16, each
                      on its own bridge: the client net (the root namespace has .1 on it; the load
                      and the final check talk to the nodes there) and the peer net (node to node
                      only, nothing of the root namespace on it). Needs root and iproute2 only (no
                      iptables/nft). A partition cuts the node's host-side link(s) for --partition-hold
                      seconds: scope `peer` (peer link only: clients still reach the isolated node,
                      which must not acknowledge anything with rf >= 2) or `full` (client link too);
                      how `down` (link down: the node sees carrier loss) or `detach` (link taken off
                      the bridge: silent loss, carrier stays). Then the link is restored and the
                      node must rejoin. Where namespaces cannot be made (not root, no `ip`, no
                      connectivity), the run falls back to loopback and partition steps are
                      recorded as skipped, with the reason, in the report. Names start with
                      stlc (`ip netns list`, `ip link`); concurrent netns runs do not collide.

The schedule: each cycle draws a fault kind from --faults (default: kill, pause, kill, pause, join,
leave; with --net netns also partition twice), so a seed gives the same schedule on every machine.
--lb needs loopback (ops/lb points at 127.0.0.1).

Exit code 0 when nothing acknowledged was lost or duplicated, no isolated node acknowledged a write
(rf >= 2) and the cluster healed; 1 otherwise; 2 on a usage error.
"""
import argparse, http.client, ipaddress, json, os, random, re, select, shutil, signal, subprocess, sys, tempfile, threading, time

FAULT_KINDS = ("kill", "pause", "join", "leave", "partition")
# Loopback keeps the original list: a seed gives the same schedule as before the partition fault.
DEFAULT_FAULTS = {"loopback": ["kill", "pause", "kill", "pause", "join", "leave"],
                  "netns": ["kill", "pause", "partition", "kill", "pause", "partition", "join", "leave"]}
# A kind that cannot run now (a leave would leave fewer than rf nodes, no more joins) becomes the
# first possible of these that is in the schedule.
# Flags every node is started with (set from the command line in main).
EXTRA_NODE_ARGS = []
TLS_DIR = None   # --tls: certificates of a cluster CA (`starling cert`), mTLS between nodes
SUBSTITUTES = {"leave": ["kill", "pause", "partition"], "join": ["pause", "kill", "partition"]}

def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)

class NetUnavailable(Exception):
    pass

class NetnsNet:
    """Network namespaces, veth pairs and two bridges for one run, all named with "stlc" and this
    process id so that a later run can tell leftovers of a dead run from a live concurrent one:
    namespaces stlc-<pid>-n<k>; links stlc<pid>cb / stlc<pid>pb (bridges), stlc<pid>c<k> / stlc<pid>p<k>
    (host ends of each node's client and peer veth pair; inside the namespace they are cnet and pnet)."""
    NS_RE = re.compile(r"^stlc-(\d+)-n\d+$")
    LINK_RE = re.compile(r"^stlc(\d+)(?:pb|cb|p\d+|c\d+)$")

    def __init__(self):
        self.tag = str(os.getpid())
        self.ns = {}           # k -> namespace
        self.cut_links = {}    # k -> (links, how)
        self.client_net = self.peer_net = None
        self.cbr, self.pbr = f"stlc{self.tag}cb", f"stlc{self.tag}pb"

    @staticmethod
    def ip(*args, check=True, timeout=15):
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise NetUnavailable(f"`ip {' '.join(args)}` failed: {r.stderr.strip() or r.returncode}")
        return r.stdout

    @staticmethod
    def unavailable_reason():
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return "needs root (network namespaces)"
        if not shutil.which("ip"):
            return "no `ip` command (iproute2)"
        return None

    @classmethod
    def _names(cls):
        try:
            ns = [l.split()[0] for l in cls.ip("netns", "list", check=False).splitlines() if l.strip()]
            links = [l.split(":")[1].strip().split("@")[0] for l in cls.ip("-o", "link", "show", check=False).splitlines()
                     if l.count(":") >= 2]
        except (OSError, subprocess.SubprocessError):
            return [], []
        return [n for n in ns if cls.NS_RE.match(n)], [l for l in links if cls.LINK_RE.match(l)]

    @classmethod
    def _remove(cls, owner):
        """Removes every namespace and link of run `owner` (a pid string); kills what still runs inside
        (nodes that run started). Returns the names removed."""
        gone = []
        for n in cls._names()[0]:
            if cls.NS_RE.match(n).group(1) != owner:
                continue
            for pid in cls.ip("netns", "pids", n, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            cls.ip("netns", "del", n, check=False)
            gone.append(n)
        for l in cls._names()[1]:   # host ends of veth pairs went with their namespaces; bridges stay until deleted
            if cls.LINK_RE.match(l).group(1) == owner:
                cls.ip("link", "del", l, check=False)
                gone.append(l)
        return gone

    @classmethod
    def clean_stale(cls):
        """Leftovers of runs whose process is gone (or is not a chaos run any more)."""
        ns, links = cls._names()
        owners = {cls.NS_RE.match(n).group(1) for n in ns} | {cls.LINK_RE.match(l).group(1) for l in links}
        removed = []
        for owner in sorted(owners):
            alive = False
            if owner != str(os.getpid()):
                try:
                    with open(f"/proc/{owner}/cmdline", "rb") as f:
                        alive = b"chaos.py" in f.read()
                except OSError:
                    alive = False
            if not alive:
                removed += cls._remove(owner)
        return removed

    @classmethod
    def _pick_subnets(cls, count=2):
        used = []
        text = cls.ip("-4", "-o", "addr", "show") + cls.ip("-4", "route", "show", "table", "all", check=False)
        for tok in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", text):
            try:
                used.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
        picks, start = [], os.getpid() % 256
        for i in range(256):
            cand = ipaddress.ip_network(f"10.213.{(start + i) % 256}.0/24")
            if not any(cand.overlaps(u) for u in used):
                picks.append(cand)
                if len(picks) == count:
                    return picks
        raise NetUnavailable("no free /24 in 10.213.0.0/16")

    def setup(self, nodes):
        if nodes < 2:
            raise NetUnavailable("a partition needs at least 2 nodes")
        self.client_net, self.peer_net = self._pick_subnets()
        self.ip("link", "add", self.cbr, "type", "bridge")
        self.ip("link", "set", self.cbr, "up")
        self.ip("addr", "add", f"{self.client_net[1]}/24", "dev", self.cbr)
        self.ip("link", "add", self.pbr, "type", "bridge")
        self.ip("link", "set", self.pbr, "up")
        for k in range(1, nodes + 1):
            self.add_node(k)
        self.probe()

    def host_link(self, kind, k):
        return f"stlc{self.tag}{kind}{k}"

    def client_addr(self, k):
        return str(self.client_net[10 + k])

    def peer_addr(self, k):
        return str(self.peer_net[10 + k])

    def exec_prefix(self, k):
        return ["ip", "netns", "exec", self.ns[k]]

    def add_node(self, k):
        if k in self.ns:
            return
        if not 1 <= k <= 240:
            raise NetUnavailable(f"node number {k} outside 1..240")
        ns = f"stlc-{self.tag}-n{k}"
        self.ip("netns", "add", ns)
        self.ns[k] = ns
        self.ip("-n", ns, "link", "set", "lo", "up")
        for kind, bridge, addr, inner in (("c", self.cbr, self.client_addr(k), "cnet"), ("p", self.pbr, self.peer_addr(k), "pnet")):
            host = self.host_link(kind, k)
            self.ip("link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
            self.ip("link", "set", host, "master", bridge, "up")
            self.ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
            self.ip("-n", ns, "link", "set", inner, "up")

    def probe(self):
        """Node 1 listens on both of its addresses; node 2 must reach the peer one, this (root)
        namespace the client one. Catches bridges that a host firewall filters (br_netfilter)."""
        listener = ("import socket,sys,time\n"
                    "ss=[socket.create_server((a,7)) for a in sys.argv[1:]]\n"
                    "print('ready',flush=True)\n"
                    "for s in ss:\n"
                    "  s.settimeout(8)\n"
                    "  c,_=s.accept(); c.close()\n")
        connect = "import socket,sys; socket.create_connection((sys.argv[1],7),timeout=3).close()"
        p = subprocess.Popen(self.exec_prefix(1) + [sys.executable, "-c", listener, self.peer_addr(1), self.client_addr(1)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([p.stdout], [], [], 15)
            if not ready or "ready" not in p.stdout.readline():
                raise NetUnavailable(f"probe listener did not start: {p.stderr.read(300) if p.poll() is not None else 'timeout'}")
            r = subprocess.run(self.exec_prefix(2) + [sys.executable, "-c", connect, self.peer_addr(1)],
                               capture_output=True, text=True, timeout=15)
            if r.returncode != 0:
                raise NetUnavailable(f"node 2 cannot reach node 1 over the peer bridge ({r.stderr.strip().splitlines()[-1:]})")
            try:
                import socket
                socket.create_connection((self.client_addr(1), 7), timeout=3).close()
            except OSError as e:
                raise NetUnavailable(f"this namespace cannot reach node 1 over the client bridge ({e})")
            p.wait(10)
        except subprocess.TimeoutExpired:
            raise NetUnavailable("connectivity probe timed out")
        finally:
            if p.poll() is None:
                p.kill(); p.wait()

    def cut(self, k, scope, how):
        links = [(self.host_link("p", k), self.pbr)]
        if scope == "full":
            links.append((self.host_link("c", k), self.cbr))
        self.cut_links[k] = (links, how)
        for link, _ in links:
            if how == "down":
                self.ip("link", "set", link, "down")
            else:
                self.ip("link", "set", link, "nomaster")

    def heal(self, k):
        links, how = self.cut_links.pop(k, ([], None))
        for link, bridge in links:
            if how == "down":
                self.ip("link", "set", link, "up")
            else:
                self.ip("link", "set", link, "master", bridge, "up")

    def teardown(self):
        return self._remove(self.tag)

class Node:
    def __init__(self, binary, node_id, data, http_port, peer_port, rf, join, host="127.0.0.1", peer_host="127.0.0.1", prefix=()):
        self.id, self.data, self.http_port, self.peer_port = node_id, data, http_port, peer_port
        self.host, self.peer_host, self.prefix = host, peer_host, list(prefix)
        self.binary, self.rf, self.join = binary, rf, join
        self.proc, self.exits, self.log_path = None, [], os.path.join(data + ".log")
        self.expected_stop = False

    @property
    def peer_addr(self):
        return f"{self.peer_host}:{self.peer_port}"

    def start(self):
        args = self.prefix + [self.binary, "node", "--id", self.id, "--data", self.data, "--http", f"{self.host}:{self.http_port}",
                              "--peer", self.peer_addr, "--rf", str(self.rf), "--log-level", "warning"] + list(EXTRA_NODE_ARGS)
        if self.join:
            args += ["--join", self.join]
        if TLS_DIR:
            args += ["--peer-tls-cert", f"{TLS_DIR}/{self.id}.pem", "--peer-tls-key", f"{TLS_DIR}/{self.id}.key",
                     "--peer-tls-ca", f"{TLS_DIR}/ca.pem"]
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
        c = http.client.HTTPConnection(self.host, self.http_port, timeout=timeout)
        try:
            c.request(method, path, body, headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def get_json(self, path, timeout=5):
        status, body = self.request("GET", path, timeout=timeout)
        return status, json.loads(body) if body else {}

    def last_log_lines(self, n=8):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []

class Load:
    """Clients posting small batches and pixels for many sessions; records every acknowledged id
    and, per request, the node, start, end and status (to judge answers given during a partition)."""
    def __init__(self, nodes, seed, clients=4, sessions=200, lb=None):
        self.nodes, self.rng, self.lb = nodes, random.Random(seed), lb
        self.acked, self.lock = {}, threading.Lock()
        self.sent = self.ok = self.refused = self.errors = 0
        self.calls = []
        self.stop_flag = threading.Event()
        self.clients, self.sessions = clients, sessions
        self.threads = []

    def targets(self):
        if self.lb:
            return [self.lb]
        return [n for n in self.nodes if n.alive() and not getattr(n, "paused", False) and not getattr(n, "leaving", False)
                and not getattr(n, "unreachable", False)]

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
            t0 = time.time()
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
                self.calls.append((node.id, t0, time.time(), status))
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

def statuses(node, timeout=5):
    status, c = node.get_json("/v1/cluster", timeout=timeout)
    return {m["id"]: m.get("status") for m in c.get("members", [])}

def up_ids(node, timeout=5):
    return {i for i, s in statuses(node, timeout).items() if s == "up"}

def parse_hold(text):
    try:
        lo, _, hi = text.partition(":")
        lo, hi = float(lo), float(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError("expected MIN:MAX seconds, e.g. 2:8")
    if not 0 < lo <= hi <= 120:
        raise argparse.ArgumentTypeError("expected 0 < MIN <= MAX <= 120")
    return lo, hi

def parse_faults(text):
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"fault kinds are {', '.join(FAULT_KINDS)} (comma-separated; repeat one to weight it)")
    return kinds

def partition(step, victim, nodes, net, scope, how, hold, heal_wait, started):
    """Cuts the victim's link(s) for `hold` seconds, watching both sides, then restores them and
    waits (bounded) until every side sees every other up again."""
    others = [n for n in nodes if n is not victim and n.alive() and not getattr(n, "leaving", False)]
    k = int(victim.id[1:])
    if scope == "full":
        victim.unreachable = True     # clients cannot reach it: the load skips it, as a paused node
    try:
        net.cut(k, scope, how)
        cut_at = time.time()
        step["cut_at"] = round(cut_at - started, 1)
        seen = {}
        while time.time() < cut_at + hold:
            t = round(time.time() - cut_at, 1)
            try:
                s = statuses(others[0], timeout=1).get(victim.id) if others else None
                if s and s != "up":
                    seen.setdefault(f"majority_saw_{s}_after_s", t)
            except Exception:
                pass
            if scope == "peer":
                try:
                    view = statuses(victim, timeout=1)
                    if others and all(view.get(o.id) not in ("up", None) for o in others):
                        seen.setdefault("isolated_saw_all_suspect_or_down_after_s", t)
                    if others and all(view.get(o.id) == "down" for o in others):
                        seen.setdefault("isolated_saw_all_down_after_s", t)
                except Exception:
                    pass
            time.sleep(0.25)
        step.update(seen)
        healed_at = time.time()
        try:
            if others:
                step["majority_view_at_heal"] = statuses(others[0], timeout=2).get(victim.id)
            if scope == "peer":
                step["isolated_view_at_heal"] = {i: s for i, s in statuses(victim, timeout=2).items() if i != victim.id}
        except Exception:
            pass
    finally:
        net.heal(k)
        victim.unreachable = False
    step["held_s"] = round(healed_at - cut_at, 1)
    def mutual():
        ids = {o.id for o in others if o.alive()}
        return victim.alive() and ids <= up_ids(victim, 2) and all(victim.id in up_ids(o, 2) for o in others if o.alive())
    step["rejoined"] = wait_for(mutual, heal_wait, step=0.25)
    step["rejoin_s"] = round(time.time() - healed_at, 1)
    return cut_at, healed_at

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rf", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cycles", type=int, default=4, help="fault cycles")
    p.add_argument("--duration", type=float, default=120, help="bound on the whole run, seconds (the load stops 40 s before it; no new fault starts after that)")
    p.add_argument("--bin", default=None)
    p.add_argument("--base-port", type=int, default=19000)
    p.add_argument("--report", default="chaos-report.json")
    p.add_argument("--keep", action="store_true", help="keep the data directory (node logs are DIR/nK.log)")
    p.add_argument("--lb", choices=["nginx", "haproxy"], help="send the load through this load balancer (ops/lb; loopback only)")
    p.add_argument("--net", choices=["loopback", "netns"], default="loopback",
                   help="loopback (default), or one network namespace per node, which allows the partition fault (falls back to loopback where the machine does not allow it)")
    p.add_argument("--faults", type=parse_faults, default=None,
                   help=f"comma-separated kinds drawn by the schedule, repeat one to weight it (of {', '.join(FAULT_KINDS)}); default per --net, see above")
    p.add_argument("--partition-hold", type=parse_hold, default=(2.0, 8.0), metavar="MIN:MAX",
                   help="seconds a partition lasts, drawn per fault (default 2:8)")
    p.add_argument("--tls", action="store_true",
                   help="mTLS between the nodes: a cluster CA and a certificate per node (`starling cert`, openssl)")
    p.add_argument("--segment-mb", type=int, default=None,
                   help="log segment size of every node, MiB (small: segments seal, index files and checkpoints are written under the faults)")
    p.add_argument("--heal-wait", type=float, default=30, help="bound on the wait for a healed node to rejoin, seconds (default 30)")
    a = p.parse_args()
    if a.lb and a.net == "netns":
        print("error: --lb needs --net loopback (ops/lb balances 127.0.0.1 ports)", file=sys.stderr); return 2
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    binary = a.bin or next((b for b in [os.path.join(root, ".build/release/starling"), os.path.join(root, ".build/debug/starling")]
                            if os.access(b, os.X_OK)), None)
    if not binary:
        print("error: no starling binary; run `swift build -c release` first", file=sys.stderr); return 2
    binary = os.path.abspath(binary)
    kinds = a.faults or DEFAULT_FAULTS[a.net]
    if a.segment_mb:
        EXTRA_NODE_ARGS.extend(["--segment-mb", str(a.segment_mb)])

    # Ctrl-C raises KeyboardInterrupt; SIGTERM/SIGHUP do the same, so the cleanup below always runs.
    def interrupted(signum, frame):
        raise KeyboardInterrupt(signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    net, net_reason = None, None
    nodes = []
    try:
        if a.net == "netns":
            net_reason = NetnsNet.unavailable_reason()
            if net_reason is None:
                stale = NetnsNet.clean_stale()
                if stale:
                    log(f"removed leftovers of an earlier run: {' '.join(stale)}")
                net = NetnsNet()
                try:
                    net.setup(a.nodes)
                except (NetUnavailable, OSError, subprocess.SubprocessError) as e:
                    net_reason = str(e)
                    net.teardown()
                    net = None
            if net is None:
                log(f"network namespaces unavailable ({net_reason}): running on loopback, partition faults are skipped")
            else:
                log(f"network namespaces: client net {net.client_net} (this side {net.client_net[1]}), peer net {net.peer_net}")
        elif "partition" in kinds:
            net_reason = "--net loopback (a partition needs --net netns)"
        return run(a, root, binary, kinds, net, net_reason, nodes)
    except KeyboardInterrupt as e:
        signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
        log(f"interrupted by {signal.Signals(signum).name}; cleaning up")
        return 128 + signum
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for n in nodes:
            if n.alive():
                n.expected_stop = True
                n.proc.kill(); n.proc.wait()
        if net is not None:
            net.teardown()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

def run(a, root, binary, kinds, net, net_reason, nodes):
    rng = random.Random(a.seed)
    started = time.time()
    hard_end = started + a.duration
    work = tempfile.mkdtemp(prefix="starling-chaos-")
    # Members prove a shared cluster secret in their hellos (`--cluster-secret-file`), as a
    # cluster exposed beyond one host should.
    secret = os.path.join(work, "cluster-secret")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(secret, 0o600)
    EXTRA_NODE_ARGS.extend(["--cluster-secret-file", secret])
    if a.tls:
        global TLS_DIR
        TLS_DIR = os.path.join(work, "tls")
        subprocess.run([binary, "cert", TLS_DIR] + [f"n{k}" for k in range(1, 10)], check=True, stdout=subprocess.DEVNULL)
    lb = load = None
    try:
        def make(k, join):
            if net is None:
                return Node(binary, f"n{k}", os.path.join(work, f"n{k}"), a.base_port + k, a.base_port + 100 + k, a.rf, join)
            net.add_node(k)
            return Node(binary, f"n{k}", os.path.join(work, f"n{k}"), a.base_port + k, a.base_port + 100 + k, a.rf, join,
                        host=net.client_addr(k), peer_host=net.peer_addr(k), prefix=net.exec_prefix(k))
        seed_peer = None
        for k in range(1, a.nodes + 1):
            n = make(k, seed_peer)
            seed_peer = seed_peer or n.peer_addr
            n.start(); nodes.append(n)
            time.sleep(0.3)
        report = {"seed": a.seed, "nodes": a.nodes, "rf": a.rf, "binary": os.path.relpath(binary, root), "faults": []}
        report["network"] = {"requested": a.net, "mode": "netns" if net else "loopback",
                             "partition": "available" if net else f"skipped: {net_reason}" if net_reason else "not scheduled",
                             "schedule": kinds}
        if net:
            report["network"].update(client_net=str(net.client_net), peer_net=str(net.peer_net))
        ok = wait_for(lambda: all(up_ids(n) == {x.id for x in nodes} for n in nodes), 20)
        log(f"cluster of {a.nodes} up: {ok} (rf={a.rf}, seed={a.seed}, network {report['network']['mode']})")
        lb_port = a.base_port + 80
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
        windows = []    # (node id, cut done, heal started, scope, step) of every partition
        for cycle in range(a.cycles):
            if time.time() > hard_end - 40:
                break
            kind = rng.choice(kinds)
            live = [n for n in nodes if n.alive() and not getattr(n, "leaving", False)]
            def possible(k):
                return not ((k == "leave" and len(live) <= a.rf) or (k == "join" and joined >= a.nodes + 2))
            if not possible(kind):
                kind = next((s for s in SUBSTITUTES[kind] if s in kinds and possible(s)), None) or kind
            victim = rng.choice(live)
            step = {"cycle": cycle, "kind": kind, "at": round(time.time() - started, 1)}
            log(f"fault {cycle}: {kind} {victim.id if kind != 'join' else ''}")
            if not possible(kind):
                step["skipped"] = "not possible now and no substitute in the schedule"
            elif kind == "kill":
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
                try:
                    n = make(joined, seed_peer if nodes[0].alive() else live[0].peer_addr)
                except NetUnavailable as e:
                    step["error"] = str(e)
                else:
                    n.start(); nodes.append(n)
                    step["node"] = n.id
                    step["joined"] = wait_for(lambda: n.id in up_ids(live[0]), 15)
            elif kind == "leave":
                step["node"] = victim.id
                victim.leaving = True
                step["exit_code"] = victim.stop(signal.SIGTERM)
            elif kind == "partition":
                # Drawn before looking at the machine: a seed draws the same numbers everywhere.
                hold = rng.uniform(*a.partition_hold)
                scope = rng.choice(["peer", "peer", "full"])
                how = rng.choice(["down", "detach"])
                step.update(node=victim.id, scope=scope, how=how, hold_s=round(hold, 1))
                if net is None:
                    step["skipped"] = net_reason
                else:
                    try:
                        cut_at, healed_at = partition(step, victim, nodes, net, scope, how, hold, a.heal_wait, started)
                        windows.append((victim.id, cut_at, healed_at, scope, step))
                    except NetUnavailable as e:
                        step["error"] = str(e)
                    log(f"  {victim.id} cut ({scope}, {how}) for {step.get('held_s')} s; rejoined {step.get('rejoined')} "
                        f"{step.get('rejoin_s')} s after the heal")
            report["faults"].append(step)
            time.sleep(rng.uniform(1.0, 3.0))
        time.sleep(1)
        load.finish()
        # Answers of an isolated node to requests made and answered entirely inside its partition.
        # With rf >= 2 it has nobody to copy to: a 202 there broke "202 = rf copies".
        acked_isolated = 0
        for vid, cut_at, healed_at, scope, step in windows:
            counts = {}
            for nid, t0, t1, status in load.calls:
                if nid == vid and t0 >= cut_at and t1 <= healed_at:
                    key = str(status) if status > 0 else "no answer"
                    counts[key] = counts.get(key, 0) + 1
            step["answers_by_isolated_node"] = counts
            acked_isolated += counts.get("202", 0) + counts.get("200", 0)
        # Answers per second of the run (by request start): [second, 202, 503/429, other].
        timeline = {}
        for nid, t0, t1, status in load.calls:
            row = timeline.setdefault(int(t0 - started), [int(t0 - started), 0, 0, 0])
            row[1 if status in (200, 202) else 2 if status in (429, 503) else 3] += 1
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
            "acknowledged_by_isolated_node": acked_isolated,
            "unexpected_exits": unexpected, "final_stop_exit_codes": stop_codes,
            "timeline": [timeline[t] for t in sorted(timeline)],
        })
        passed = (healed and settled and report["lost"] == 0 and report["duplicated"] == 0 and not unexpected
                  and all(c == 0 for c in stop_codes.values()) and report["acknowledged_events"] > 0
                  and (acked_isolated == 0 or a.rf < 2))
        report["passed"] = passed
        with open(a.report, "w") as f:
            json.dump(report, f, indent=2)
        def describe(s):
            if s["kind"] == "partition":
                if "skipped" in s:
                    return "partition(skipped)"
                return f"partition({s.get('node')},{s.get('scope')},{s.get('how')},{s.get('held_s')}s)"
            return f"{s['kind']}({s.get('node','')})"
        print()
        print(f"chaos seed {a.seed}: {'PASS' if passed else 'FAIL'} in {report['seconds']} s")
        print(f"  network: {report['network']['mode']}" + (f" (client {net.client_net}, peer {net.peer_net})" if net else "")
              + ("" if report["network"]["partition"] in ("available", "not scheduled") else f"; partition {report['network']['partition']}"))
        print(f"  faults: " + ", ".join(describe(s) for s in report["faults"]))
        print(f"  requests {load.sent}: 202 {load.ok}, 503/429 {load.refused}, other {load.errors}")
        print(f"  acknowledged events {report['acknowledged_events']} in {report['sessions']} sessions, checked {checked} answers on {len(live)} nodes")
        print(f"  lost {report['lost']}, duplicated {report['duplicated']}, partial answers {partial}, healed {healed}")
        if windows:
            print(f"  partitions: " + "; ".join(f"{w[0]} rejoined {w[4].get('rejoined')} {w[4].get('rejoin_s')} s after heal, "
                                                 f"its answers meanwhile {w[4].get('answers_by_isolated_node')}" for w in windows))
        print(f"  unexpected exits {len(unexpected)}, final SIGTERM exit codes {stop_codes}")
        print(f"  report: {a.report}")
        return 0 if passed else 1
    finally:
        if load:
            load.finish()
        if a.lb:
            subprocess.run([os.path.join(root, "ops/lb/stop")], env=dict(os.environ, STARLING_LB_DIR=os.path.join(work, "lb")))
        for n in nodes:     # before the data directory goes (and before the namespaces do)
            if n.alive():
                n.expected_stop = True
                n.proc.kill(); n.proc.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  data kept in {work}")

if __name__ == "__main__":
    sys.exit(main())

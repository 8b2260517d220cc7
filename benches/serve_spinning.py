"""`serve --spinning WHEN` measured: round-trip p50/p99 over the Unix socket while idle and while a
retrain runs under a steady stream of requests (one client, back to back), the retrain's wall
time, and the CPU seconds the service uses in 10 s without requests. Prints one JSON line.

Usage (from the repository root, after `cargo build --release` and a demo run):
  python3 benches/serve_spinning.py target/release/edgetune RUN_DIR {false,in-run,true}
The run folder is copied first (a retrain writes into it). Results: docs/serve.md."""
import json, os, socket, subprocess, sys, threading, time, shutil, tempfile, statistics
bin_, run_src, spinning = sys.argv[1], sys.argv[2], sys.argv[3]
tmp = tempfile.mkdtemp()
run = os.path.join(tmp, "run"); shutil.copytree(run_src, run)
sock = os.path.join(tmp, "s.sock")
p = subprocess.Popen([bin_, "--threads", "2", "serve", "--run", run, "--socket", sock, "--no-stdin",
                      "--spinning", spinning, "--retrain-epochs", "20"],
                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "w"))
for _ in range(600):
    if os.path.exists(sock): break
    time.sleep(0.1)
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sock); return s, s.makefile("rwb")
S = ["turn on the light in the kitchen", "play some jazz in the living room",
     "set the bedroom lamp to 40 percent", "what is the weather tomorrow"]
def ask(f, obj):
    f.write((json.dumps(obj) + "\n").encode()); f.flush(); return json.loads(f.readline())
s, f = conn()
def run_requests(n=None, stop=None):
    lat = []; i = 0
    while (n is not None and i < n) or (stop is not None and not stop.is_set()):
        t = time.perf_counter(); r = ask(f, {"text": S[i % 4]}); lat.append((time.perf_counter() - t) * 1e3)
        assert "error" not in r, r; i += 1
    return lat
def q(l, x): l = sorted(l); return l[min(len(l) - 1, int(x * len(l)))]
run_requests(200)
idle = run_requests(2000)
# CPU while no request arrives
def cpu():
    st = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split(); return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu(); time.sleep(10); quiet_cpu = cpu() - c0
s2, f2 = conn()
ask(f2, {"correct": {"text": "turn on the light in the kitchen", "intent": "turn_on"}})
stop = threading.Event(); out = {}
th = threading.Thread(target=lambda: out.setdefault("lat", run_requests(stop=stop))); th.start()
t = time.perf_counter(); r = ask(f2, {"cmd": "retrain", "wait": True}); rt = time.perf_counter() - t
stop.set(); th.join()
busy = out["lat"]
print(json.dumps({"spinning": spinning, "idle_p50": round(q(idle, .5), 2), "idle_p99": round(q(idle, .99), 2),
  "retrain_p50": round(q(busy, .5), 2), "retrain_p99": round(q(busy, .99), 2), "requests_during_retrain": len(busy),
  "retrain_s": round(rt, 1), "retrain_ok": r.get("ok"), "swapped": r.get("swapped", r.get("retrain", {}) if isinstance(r.get("retrain"), dict) else None),
  "cpu_s_in_10s_without_requests": round(quiet_cpu, 2)}))
p.terminate(); p.wait()

"""A local fleet on 127.0.0.1: a Flower 1.18 SuperLink (REST Fleet API), the edgetune ServerApp and
N `edgetune fleet join` processes, each with a non-IID shard of a dataset's train split; then the
federated heads, a centralized run on the union and each device's local-only run scored on the
test split. Called by fleet/simulate.sh (which picks the Python of the fleet's virtual environment).

Shards: the examples of each label of TASK are spread over the devices in Dirichlet(alpha)
proportions (flwr-datasets' DirichletPartitioner's scheme), so each device sees mostly a few labels.
The seed run (round 0's heads, the fleet's task spec) is trained on a label cover of the train
split: one example per label of every task, as a vendor ships a starter model.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse():
    p = argparse.ArgumentParser(prog="fleet/simulate.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (JSON lines or JointBERT)")
    p.add_argument("--split-by", required=True, metavar="TASK", help="sentence task whose labels skew the shards")
    p.add_argument("--sampled", type=int, help="devices per round (default: all)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="print one JSON line of results")
    p.add_argument("--strategy", default="fedavg", choices=["fedavg", "trimmed-mean", "krum", "median"])
    p.add_argument("--trim-beta", type=float, default=0.2,
                   help="trimmed-mean: fraction cut at each end (int(beta x replies) updates each)")
    p.add_argument("--krum-malicious", type=int, default=1, help="krum: hostile devices assumed")
    p.add_argument("--dp-noise", type=float, default=0.0, help="server-side DP noise multiplier (0 = off)")
    p.add_argument("--dp-clip", type=float, default=1.0, help="server-side DP clipping norm")
    p.add_argument("--local-epochs", type=int, default=3, help="local epochs per round (also the local-only runs: rounds x this)")
    p.add_argument("--local-lr", type=float, default=0.003)
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the shards")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--round-timeout", type=float, default=0.0)
    p.add_argument("--hostile", action="append", default=[], metavar="I:MODE",
                   help="device I sends hostile updates: I:nan or I:scale:K (test hook)")
    p.add_argument("--kill", metavar="I:R", help="kill device I (SIGKILL) once round R has started")
    p.add_argument("--min-available", type=int, help="devices connected before a round starts (default: all)")
    p.add_argument("--run-timeout", type=float, default=7200.0, help="seconds the federated run may take")
    p.add_argument("--no-baselines", action="store_true", help="skip the centralized and local-only runs")
    p.add_argument("--bin", type=Path, required=True, help="the edgetune binary")
    p.add_argument("--threads", type=int, default=1, help="threads per device process")
    p.add_argument("--ping-interval", type=float, default=10.0,
                   help="seconds a device promises to ping within (a killed one is dropped after twice that)")
    p.add_argument("--port", type=int, default=0, help="first of three ports (default: free ones)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    return p.parse_args()


# ---------------------------------------------------------------------------------------------- data

def read_split(data: Path, split: str):
    """Examples of a split as dicts: `words` plus a key per task (JSON lines or JointBERT)."""
    jl = data / f"{split}.jsonl"
    if jl.is_file():
        out = []
        for line in jl.read_text().splitlines():
            if line.strip():
                ex = json.loads(line)
                if "words" not in ex:
                    ex["words"] = ex.pop("text").split()
                out.append(ex)
        return out
    folder = data / split
    if (folder / "seq.in").is_file():
        words = [l.split() for l in (folder / "seq.in").read_text().splitlines()]
        tags = [l.split() for l in (folder / "seq.out").read_text().splitlines()]
        labels = (folder / "label").read_text().splitlines()
        return [{"words": w, "intent": l, "tags": t} for w, t, l in zip(words, tags, labels)]
    return None


def write_jsonl(path: Path, examples):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for ex in examples:
            f.write(json.dumps(ex) + "\n")


def dirichlet_shards(examples, task, devices, alpha, rng):
    """Per device: its examples, each label of `task` spread over devices by Dirichlet(alpha)."""
    by_label = {}
    for ex in examples:
        by_label.setdefault(ex[task], []).append(ex)
    shards = [[] for _ in range(devices)]
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        weights = [rng.gammavariate(alpha, 1.0) for _ in range(devices)]
        total = sum(weights)
        cuts, acc = [], 0.0
        for w in weights[:-1]:
            acc += w / total
            cuts.append(round(acc * len(items)))
        bounds = [0] + cuts + [len(items)]
        for d in range(devices):
            shards[d].extend(items[bounds[d]:bounds[d + 1]])
    # Every device needs a few examples to train and hold out: top up the smallest from the largest.
    for d in range(devices):
        while len(shards[d]) < 20:
            big = max(range(devices), key=lambda i: len(shards[i]))
            shards[d].append(shards[big].pop())
    for s in shards:
        rng.shuffle(s)
    return shards


def label_cover(examples):
    """One example per label of every task (sentence and token)."""
    chosen, seen = [], set()
    for ex in examples:
        new = False
        for k, v in ex.items():
            if k == "words":
                continue
            for label in (v if isinstance(v, list) else [v]):
                if (k, label) not in seen:
                    seen.add((k, label))
                    new = True
        if new:
            chosen.append(ex)
    return chosen


# ----------------------------------------------------------------------------------------- processes

def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_port(port, proc, seconds=60):
    until = time.time() + seconds
    while time.time() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"a process ended early (exit {proc.returncode}); see its log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


class Memory(threading.Thread):
    """Samples the summed RSS of the given processes and their descendants; keeps the peak."""

    def __init__(self):
        super().__init__(daemon=True)
        self.roots, self.peak, self.stop = set(), 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, self.total())
            time.sleep(0.5)

    def total(self):
        parents = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = open(f"/proc/{d}/stat").read()
                    parents[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
                except (OSError, ValueError):
                    pass
        tree, frontier = set(), set(self.roots)
        while frontier:
            tree |= frontier
            frontier = {p for p, pp in parents.items() if pp in frontier and p not in tree}
        rss = 0
        for pid in tree:
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            except OSError:
                pass
        return rss


def run_quiet(cmd, log: Path, env=None, timeout=None, cwd=None):
    with open(log, "w") as f:
        try:
            r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout,
                               cwd=cwd)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(map(str, cmd))} did not end in {timeout} s; see {log}")
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed (exit {r.returncode}); see {log}")


def eval_json(args, run, env, log):
    cmd = [args.bin, "--threads", str(args.threads), "eval", "--run", run, "--data", args.data, "--split", "test", "--json"]
    with open(log, "w") as f:
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=f, env=env, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"eval of {run} failed; see {log}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def headline(m):
    """The figures the JSON line reports for a metrics object of `eval --json`."""
    keys = ("intent_accuracy", "slot_f1", "sentence_accuracy", "all_tasks_accuracy")
    out = {k: m[k] for k in keys if m.get(k) is not None}
    out["tasks"] = {name: {k: v for k, v in t.items() if k in ("accuracy", "span_f1", "token_accuracy")}
                    for name, t in m.get("tasks", {}).items()}
    return out


def mean_of(ms):
    def avg(vals):
        if all(isinstance(v, dict) for v in vals):
            keys = set.intersection(*(set(v) for v in vals))
            return {k: avg([v[k] for v in vals]) for k in sorted(keys)}
        nums = [v for v in vals if isinstance(v, (int, float))]
        return sum(nums) / len(nums) if nums else None
    return avg(ms)


# -------------------------------------------------------------------------------------------- phases

def prepare(args, env):
    rng = random.Random(args.seed)
    train = read_split(args.data, "train")
    if train is None or read_split(args.data, "test") is None:
        raise SystemExit(f"{args.data}: needs train and test splits as .jsonl files or JointBERT folders")
    if any(args.split_by not in ex for ex in train):
        raise SystemExit(f"--split-by {args.split_by}: not a sentence task of every example in {args.data}")
    shards = dirichlet_shards(train, args.split_by, args.devices, args.alpha, rng)
    cover = label_cover(train)
    seed_data = args.out / "seed-data"
    write_jsonl(seed_data / "train.jsonl", cover)
    write_jsonl(seed_data / "valid.jsonl", cover)
    run_quiet([args.bin, "--threads", "2", "train", "--data", seed_data, "--out", args.out / "seed"],
              args.out / "logs" / "seed.log", env)
    hist = []
    for i, shard in enumerate(shards):
        d = args.out / "devices" / f"d{i:03d}"
        write_jsonl(d / "data" / "train.jsonl", shard)
        shutil.copytree(args.out / "seed", d / "run", ignore=shutil.ignore_patterns("plots", "report.html"))
        counts = {}
        for ex in shard:
            counts[ex[args.split_by]] = counts.get(ex[args.split_by], 0) + 1
        hist.append(counts)
    (args.out / "shards.json").write_text(json.dumps(hist, indent=1))
    return shards, len(cover)


def federated(args, env, mem):
    fleet_port, appio_port, exec_port = (
        (args.port, args.port + 1, args.port + 2) if args.port else free_ports(3))
    venv_bin = Path(sys.executable).parent
    logs = args.out / "logs"
    fenv = dict(env, FLWR_HOME=str(args.out / "flwr-home"))
    link = subprocess.Popen(
        [venv_bin / "flower-superlink", "--insecure", "--fleet-api-type", "rest",
         "--fleet-api-address", f"127.0.0.1:{fleet_port}",
         "--serverappio-api-address", f"127.0.0.1:{appio_port}",
         "--exec-api-address", f"127.0.0.1:{exec_port}"],
        stdout=open(logs / "superlink.log", "w"), stderr=subprocess.STDOUT, env=fenv, start_new_session=True)
    mem.roots.add(link.pid)
    devices = []
    try:
        wait_port(fleet_port, link)
        wait_port(exec_port, link)
        hostile = {int(h.split(":", 1)[0]): h.split(":", 1)[1] for h in args.hostile}
        for i in range(args.devices):
            d = args.out / "devices" / f"d{i:03d}"
            denv = dict(env)
            if i in hostile:
                denv["EDGETUNE_FLEET_HOSTILE"] = hostile[i]
            p = subprocess.Popen(
                [str(args.bin), "--threads", str(args.threads), "fleet", "join",
                 "--superlink", f"127.0.0.1:{fleet_port}", "--run", str(d / "run"),
                 "--data", str(d / "data"), "--report", str(d / "session.json"), "--poll-ms", "500",
                 "--ping-interval", str(args.ping_interval)],
                stdout=open(logs / f"device-{i:03d}.log", "w"), stderr=subprocess.STDOUT, env=denv)
            devices.append(p)
            mem.roots.add(p.pid)
        sampled = args.sampled or args.devices
        overrides = " ".join([
            f"seed-run='{args.out / 'seed'}'", f"out='{args.out / 'server'}'", f"num-rounds={args.rounds}",
            f"strategy='{args.strategy}'", f"trim-beta={args.trim_beta}",
            f"krum-malicious={args.krum_malicious}", f"sampled={sampled}", f"min-available={args.min_available or args.devices}",
            f"round-timeout={args.round_timeout}", f"dp-noise={args.dp_noise}", f"dp-clip={args.dp_clip}",
            f"local-epochs={args.local_epochs}", f"local-lr={args.local_lr}",
        ])
        app = args.out / "app"
        shutil.copytree(ROOT / "fleet" / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
        t0 = time.time()
        killer = None
        if args.kill:
            i, r = (int(x) for x in args.kill.split(":"))
            killer = threading.Thread(target=kill_at_round, args=(args.out, devices[i], r), daemon=True)
            killer.start()
        run_quiet([venv_bin / "flwr", "run", app, "local", "--stream", "--run-config", overrides,
                   "--federation-config", f"address='127.0.0.1:{exec_port}'"], logs / "flwr-run.log", fenv,
                  timeout=args.run_timeout, cwd=args.out)  # `flwr run` writes its .fab in the working folder:
        # one per simulation, so simulations running side by side (the tests) never share it.
        wall = time.time() - t0
    finally:
        for p in devices:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in devices:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        os.killpg(link.pid, signal.SIGTERM)
        link.wait(timeout=30)
    return wall


def kill_at_round(out, proc, r):
    """SIGKILLs `proc` once the device has logged the start of round `r` (mid-round)."""
    log = out / "server" / "rounds.jsonl"
    while proc.poll() is None:
        done = len(log.read_text().splitlines()) if log.is_file() else 0
        if done >= r - 1:
            time.sleep(1.0)
            proc.kill()
            return
        time.sleep(0.2)


def summarize_traffic(args):
    per_round_sent, per_round_recv, totals = [], [], []
    for i in range(args.devices):
        f = args.out / "devices" / f"d{i:03d}" / "session.json"
        if not f.is_file():
            continue
        s = json.loads(f.read_text())
        train = [r for r in s["rounds"] if r["message_type"] == "train"]
        per_round_sent += [r["bytes_sent"] for r in train]
        per_round_recv += [r["bytes_received"] for r in train]
        totals.append(s["bytes_sent"])
    med = lambda v: statistics.median(v) if v else None
    return {"bytes_sent_per_device_round": med(per_round_sent),
            "bytes_received_per_device_round": med(per_round_recv),
            "bytes_sent_per_device_total_median": med(totals)}


def main():
    args = parse()
    if args.out.exists():
        if not args.force:
            raise SystemExit(f"--out {args.out}: exists; pass --force to replace it")
        shutil.rmtree(args.out)
    (args.out / "logs").mkdir(parents=True)
    args.out = args.out.resolve()
    args.data = args.data.resolve()
    args.bin = args.bin.resolve()
    env = dict(os.environ)
    env.setdefault("EDGETUNE_CACHE", str(args.out / "cache"))
    t_all = time.time()
    shards, cover = prepare(args, env)
    mem = Memory()
    mem.start()
    wall = federated(args, env, mem)
    mem.stop = True
    rounds = [json.loads(l) for l in (args.out / "server" / "rounds.jsonl").read_text().splitlines()]
    fit_rounds = [r for r in rounds if not r.get("evaluate")]
    result = {
        "devices": args.devices, "sampled": args.sampled or args.devices, "rounds": args.rounds,
        "split_by": args.split_by, "strategy": args.strategy, "alpha": args.alpha,
        "dp": {"noise_multiplier": args.dp_noise, "clipping_norm": args.dp_clip} if args.dp_noise > 0 else None,
        "local_epochs": args.local_epochs, "seed_examples": cover,
        "shard_examples_median": statistics.median(len(s) for s in shards),
        "federated": headline(eval_json(args, args.out / "server" / "global", env, args.out / "logs" / "eval-fed.log")),
        "seed": headline(eval_json(args, args.out / "seed", env, args.out / "logs" / "eval-seed.log")),
    }
    if not args.no_baselines:
        run_quiet([args.bin, "--threads", "2", "train", "--data", args.data, "--out", args.out / "centralized"],
                  args.out / "logs" / "centralized.log", env)
        result["centralized"] = headline(eval_json(args, args.out / "centralized", env, args.out / "logs" / "eval-central.log"))
        local = []
        for i in range(args.devices):
            d = args.out / "devices" / f"d{i:03d}"
            # The same local work as in the federation: rounds x local epochs over its own shard.
            run_quiet([args.bin, "--threads", "2", "train", "--data", d / "data", "--out", d / "local",
                       "--epochs", str(args.rounds * args.local_epochs)], args.out / "logs" / f"local-{i:03d}.log", env)
            local.append(headline(eval_json(args, d / "local", env, args.out / "logs" / f"eval-local-{i:03d}.log")))
        result["local_only"] = mean_of(local)
    result.update(summarize_traffic(args))
    result["round_seconds"] = [round(r["seconds"], 2) for r in fit_rounds]
    result["round_seconds_median"] = statistics.median(result["round_seconds"]) if fit_rounds else None
    result["rounds_completed"] = len(fit_rounds)
    result["replies_per_round"] = [r["replies"] for r in fit_rounds]
    result["dropped_non_finite"] = sum(r["dropped_non_finite"] for r in fit_rounds)
    ratios = [max(r["update_norms"]) / max(statistics.median(r["update_norms"]), 1e-12)
              for r in fit_rounds if r["update_norms"]]
    result["max_update_norm_ratio"] = round(max(ratios), 1) if ratios else None
    steps = [r["global_step_norm"] for r in fit_rounds if "global_step_norm" in r]
    result["max_global_step_norm"] = round(max(steps), 3) if steps else None
    result["federation_wall_seconds"] = round(wall, 1)
    result["peak_rss_mib"] = round(mem.peak / 2**20, 1)
    result["total_seconds"] = round(time.time() - t_all, 1)
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

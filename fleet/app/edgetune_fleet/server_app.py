"""The ServerApp of an edgetune fleet: Flower's own strategies (FedAvg, FedTrimmedAvg, Krum,
FedMedian; optionally wrapped in Flower's server-side differential privacy) over the head tensors of
an edgetune run. The seed run fixes the task spec, sent with every instruction, and round 0's heads.

Run config (pyproject.toml [tool.flwr.app.config], overridable with `flwr run --run-config`):
seed-run, out, num-rounds, strategy, trim-beta, krum-malicious, sampled, min-available,
round-timeout, dp-noise, dp-clip, local-epochs, local-lr, local-batch-size, evaluate-fraction.
"""

import json
import math
import time
from pathlib import Path

import numpy as np
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    Strategy,
)

from .spec import load_seed, write_run

STRATEGIES = ("fedavg", "trimmed-mean", "krum", "median")


def _weighted(metrics):
    """Weighted means (by examples) of the devices' numeric metrics; sums of counts."""
    total = sum(n for n, _ in metrics) or 1
    out = {}
    for key in sorted({k for _, m in metrics for k in m}):
        vals = [(n, m[key]) for n, m in metrics if isinstance(m.get(key), (int, float))]
        if key in ("adopted", "broken_corrections"):
            out[key] = sum(v for _, v in vals)
        elif vals:
            out[key] = sum(n * v for n, v in vals) / total
    return out


class Guarded(Strategy):
    """Around a strategy: drops updates holding NaN or infinity (whatever the strategy), records
    each round (time, devices, update norms, aggregated metrics) in rounds.jsonl and writes the
    global heads as an edgetune run folder after every round."""

    def __init__(self, inner, names, seed_config, initial, out: Path | None):
        self.inner = inner
        self.names = names
        self.seed_config = seed_config
        self.current = [np.asarray(a, dtype=np.float64) for a in initial]
        self.out = out
        self.started = {}
        if out:
            out.mkdir(parents=True, exist_ok=True)

    def _log(self, record):
        if self.out:
            with open(self.out / "rounds.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def initialize_parameters(self, client_manager):
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(self, server_round, parameters, client_manager):
        self.started[server_round] = time.time()
        return self.inner.configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        kept, dropped, norms = [], 0, []
        for proxy, res in results:
            arrays = parameters_to_ndarrays(res.parameters)
            if not all(np.all(np.isfinite(a)) for a in arrays):
                dropped += 1
                continue
            norms.append(math.sqrt(sum(float(np.sum((np.asarray(a, np.float64) - c) ** 2)) for a, c in zip(arrays, self.current))))
            kept.append((proxy, res))
        params, metrics = (None, {})
        if kept:
            params, metrics = self.inner.aggregate_fit(server_round, kept, failures)
        record = {
            "round": server_round,
            "seconds": time.time() - self.started.get(server_round, time.time()),
            "replies": len(results),
            "failures": len(failures),
            "dropped_non_finite": dropped,
            "update_norms": norms,
            "metrics": _weighted([(r.num_examples, r.metrics) for _, r in kept]),
        }
        if params is not None:
            arrays = parameters_to_ndarrays(params)
            record["global_step_norm"] = math.sqrt(sum(float(np.sum((np.asarray(a, np.float64) - c) ** 2)) for a, c in zip(arrays, self.current)))
            self.current = [np.asarray(a, dtype=np.float64) for a in arrays]
            if self.out:
                write_run(self.out / "global", self.seed_config, self.names, arrays, {"round": server_round})
        self._log(record)
        return params, metrics

    def configure_evaluate(self, server_round, parameters, client_manager):
        return self.inner.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round, results, failures):
        loss, metrics = self.inner.aggregate_evaluate(server_round, results, failures)
        self._log({
            "round": server_round,
            "evaluate": True,
            "replies": len(results),
            "loss": loss,
            "metrics": _weighted([(r.num_examples, r.metrics) for _, r in results]),
        })
        return loss, metrics

    def evaluate(self, server_round, parameters):
        return self.inner.evaluate(server_round, parameters)


def make_strategy(cfg, spec, initial):
    """The configured Flower strategy (with DP when dp-noise > 0)."""
    name = str(cfg.get("strategy", "fedavg"))
    if name not in STRATEGIES:
        raise ValueError(f"strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    sampled = int(cfg["sampled"])
    available = max(int(cfg["min-available"]), sampled)
    spec_json = json.dumps(spec, separators=(",", ":"))

    def fit_config(server_round):
        return {
            "edgetune.spec": spec_json,
            "server_round": server_round,
            "edgetune.epochs": int(cfg["local-epochs"]),
            "edgetune.lr": float(cfg["local-lr"]),
            "edgetune.batch_size": int(cfg["local-batch-size"]),
        }

    evaluate_fraction = float(cfg.get("evaluate-fraction", 0.0))
    common = dict(
        fraction_fit=sampled / available,
        min_fit_clients=sampled,
        min_available_clients=available,
        fraction_evaluate=evaluate_fraction,
        min_evaluate_clients=max(1, int(round(evaluate_fraction * available))) if evaluate_fraction > 0 else 0,
        on_fit_config_fn=fit_config,
        on_evaluate_config_fn=fit_config,
        initial_parameters=ndarrays_to_parameters(initial),
        fit_metrics_aggregation_fn=_weighted,
        evaluate_metrics_aggregation_fn=_weighted,
        accept_failures=True,
    )
    if name == "fedavg":
        strategy = FedAvg(**common)
    elif name == "trimmed-mean":
        strategy = FedTrimmedAvg(beta=float(cfg["trim-beta"]), **common)
    elif name == "krum":
        strategy = Krum(num_malicious_clients=int(cfg["krum-malicious"]), num_clients_to_keep=0, **common)
    else:
        strategy = FedMedian(**common)
    noise = float(cfg.get("dp-noise", 0.0))
    if noise > 0:
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=noise, clipping_norm=float(cfg["dp-clip"]), num_sampled_clients=sampled
        )
    return strategy


def server_fn(context: Context) -> ServerAppComponents:
    cfg = context.run_config
    seed = Path(str(cfg["seed-run"]))
    spec, config, names, initial = load_seed(seed)
    out = Path(str(cfg["out"])) if str(cfg.get("out", "")) else None
    strategy = Guarded(make_strategy(cfg, spec, initial), names, config, initial, out)
    timeout = float(cfg.get("round-timeout", 0.0))
    return ServerAppComponents(
        strategy=strategy,
        config=ServerConfig(num_rounds=int(cfg["num-rounds"]), round_timeout=timeout if timeout > 0 else None),
    )


app = ServerApp(server_fn=server_fn)

"""Requests per second and latency of `mlflow models serve` for a registered 28×28 generator.

A DCGAN generator (`networks.build_pair("dcgan", …)` at 28×28×1, `--base-filters` wide, untrained: the
weights do not change the cost) is registered into a temporary SQLite store the way the register stage does
it (synthetic gate evidence), then served by a real `mlflow models serve --env-manager local -w WORKERS` on a
free localhost port. `--clients` threads send `--requests` requests in all, each `{"n": N, "seed": i}` as JSON
`dataframe_records`, answered as JSON float arrays (or base64 PNGs with `--format png`); every answer is
checked for its image count. After a warm-up, the run is repeated `--repeats` times; each repeat gives
requests/s (wall clock) and the p50/p99 latency of its requests. The last line holds the medians over repeats.

    python benchmarks/serving_throughput.py [--clients 4] [--requests 200] [--n 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers: registration with synthetic evidence, server processes


def save_generator(path: Path, latent_dim: int, base_filters: int) -> Path:
    import keras

    from ganops.models.networks import build_pair

    keras.utils.set_random_seed(0)
    generator, _ = build_pair("dcgan", latent_dim, (28, 28, 1), base_filters)
    generator.save(path)
    return path


def post(url: str, body: bytes) -> tuple[float, int]:
    """(seconds, images in the answer)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - started, len(answer["predictions"])


def run_load(url: str, clients: int, requests: int, n: int, output: str) -> tuple[float, np.ndarray]:
    """(requests per second, latencies in seconds) for `requests` requests from `clients` threads."""
    bodies = [json.dumps({"dataframe_records": [{"n": n, "seed": i}], "params": {"format": output}}).encode()
              for i in range(requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda body: post(url, body), bodies))
    wall = time.perf_counter() - started
    if any(count != n for _, count in answers):
        raise RuntimeError(f"an answer did not hold {n} images")
    return requests / wall, np.array([seconds for seconds, _ in answers])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="requests per repeat, over all clients")
    parser.add_argument("--n", type=int, default=16, help="images per request")
    parser.add_argument("--format", choices=("array", "png"), default="array")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (`mlflow models serve -w`)")
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ganops.config import RegisterConfig
    from tests.helpers import VENV_BIN, clean_env, free_port, metrics, register_version, server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
        register_version(save_generator(root / "generator.keras", args.latent_dim, args.base_filters),
                         metrics(2.0), RegisterConfig(max_images_per_request=max(args.n, 1024)))
        port = free_port()
        command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/gan-generator@champion",
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(args.workers)]
        url = f"http://127.0.0.1:{port}/invocations"
        with server(command, f"http://127.0.0.1:{port}/ping", clean_env(MLFLOW_TRACKING_URI=uri),
                    root / "serve.log", timeout=180):
            run_load(url, args.clients, 4 * args.clients * args.workers, args.n, args.format)  # warm-up
            rates, p50s, p99s = [], [], []
            for repeat in range(args.repeats):
                rate, latencies = run_load(url, args.clients, args.requests, args.n, args.format)
                rates.append(rate)
                p50s.append(1000 * float(np.percentile(latencies, 50)))
                p99s.append(1000 * float(np.percentile(latencies, 99)))
                print(f"run {repeat + 1}: {rate:.1f} requests/s ({rate * args.n:.0f} images/s), "
                      f"p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms", flush=True)
    print(f"{args.requests} requests of n={args.n} ({args.format}) from {args.clients} clients, "
          f"{args.workers} worker(s), dcgan 28×28 base_filters={args.base_filters}; "
          f"load average {os.getloadavg()[0]:.2f}, cpus {os.cpu_count()}", flush=True)
    print(f"requests_per_s={statistics.median(rates):.1f} p50_ms={statistics.median(p50s):.1f} "
          f"p99_ms={statistics.median(p99s):.1f}", flush=True)


if __name__ == "__main__":
    main()

"""Seconds of each stage of a whole `dvc repro`, for several commits side by side: is a change slower end
to end? The default digits pipeline, or (`--mnist`) the README's MNIST t10k experiment (the idx source at
28×28, params otherwise as the commit has them).

Each run is a fresh clone of this repository at one commit, beside this checkout (so ../shared is where the
repository expects it), run with this checkout's .venv and the clone's own `src` first on PYTHONPATH; stages
run one at a time (`dvc repro --single-item`) so each is timed alone. Commits alternate within each repeat,
so a busy machine slows every commit alike; medians over `--repeats`. The train stage stops at its time
budget (`train.max_seconds`), so its steps are printed too: more steps in the same budget is faster training.
The last line is the headline: each commit's median end-to-end seconds and the ratio to the first.

    python benchmarks/pipeline_stages.py --commits c016ab3 HEAD [--mnist] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist-t10k"
STAGES = ("prepare", "validate", "featurize", "train", "evaluate", "register")


def mnist_data() -> dict:
    return {"source": "idx", "path": str(MNIST_DIR / "t10k-images-idx3-ubyte.gz"),
            "labels_path": str(MNIST_DIR / "t10k-labels-idx1-ubyte.gz"), "image_size": 28}


def clone(commit: str, into: Path, data: dict | None) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "-q", commit], check=True)
    assets = REPO / ".offline-assets"
    if assets.exists():
        (into / ".offline-assets").symlink_to(assets)
    if data is not None:
        params_path = into / "params.yaml"
        params = yaml.safe_load(params_path.read_text())
        params["data"] = {**params.get("data", {}), **data}
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    return into


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stages(checkout: Path) -> dict[str, float]:
    """Each stage's wall seconds and CPU seconds (user + system, the stage's processes and their children: what
    other tenants of a shared machine change least), and the train stage's steps."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    times: dict[str, float] = {}
    for stage in STAGES:
        started, cpu_before = time.perf_counter(), _children_cpu()
        done = subprocess.run(["dvc", "repro", "--single-item", stage], check=False, cwd=checkout,
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{checkout}: dvc repro {stage} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        times[stage] = time.perf_counter() - started
        times[f"{stage} cpu"] = _children_cpu() - cpu_before
    record = checkout / "models" / "gan" / "run.json"
    times["train steps"] = float(json.loads(record.read_text())["steps"]) if record.exists() else float("nan")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", nargs="+", default=["HEAD"], help="commits to compare; the first is the base")
    parser.add_argument("--mnist", action="store_true", help=f"the MNIST t10k experiment ({MNIST_DIR})")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.mnist and not MNIST_DIR.exists():
        print(f"skipped: {MNIST_DIR} is absent")
        return
    commits = [subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", c], check=True, capture_output=True,
                              text=True).stdout.strip() for c in args.commits]
    results: dict[str, list[dict[str, float]]] = {commit: [] for commit in commits}
    scratch = Path(tempfile.mkdtemp(prefix=".pipeline-stages-", dir=REPO.parent))
    try:
        for repeat in range(args.repeats):
            for commit in commits:
                checkout = clone(commit, scratch / f"{commit}-{repeat}", mnist_data() if args.mnist else None)
                results[commit].append(run_stages(checkout))
                shutil.rmtree(checkout)
                print(f"repeat {repeat + 1}, {commit}: {sum(results[commit][-1][s] for s in STAGES):.1f} s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {c: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for c, runs in results.items()}
    print(f"{'stage':16}" + "".join(f"{c + ' wall':>14}{c + ' cpu':>14}" for c in commits))
    for key in STAGES:
        print(f"{key:16}" + "".join(f"{medians[c][key]:14.1f}{medians[c][key + ' cpu']:14.1f}" for c in commits))
    print(f"{'train steps':16}" + "".join(f"{medians[c]['train steps']:14.0f}{'':14}" for c in commits))
    wall = {c: sum(medians[c][s] for s in STAGES) for c in commits}
    cpu = {c: sum(medians[c][s + " cpu"] for s in STAGES) for c in commits}
    print(f"{'mnist' if args.mnist else 'digits'} end to end, median of {args.repeats} (load "
          f"{os.getloadavg()[0]:.1f}): " + ", ".join(
              f"{c} {wall[c]:.1f} s wall ({wall[c] / wall[commits[0]]:.2f}×), {cpu[c]:.1f} s CPU "
              f"({cpu[c] / cpu[commits[0]]:.2f}×)" for c in commits))


if __name__ == "__main__":
    main()

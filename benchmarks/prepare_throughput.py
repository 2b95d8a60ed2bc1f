"""Throughput of the prepare stage per source, and of validation, on 70,000 28×28 images.

Writes the same images as IDX, NPZ, CSV and a folder of PNGs into a temporary folder, runs
`prepare.run` on each in a fresh child process (so each peak-memory figure is its own), and prints
images/s (a first, cold run as the stage sees it, and a second, warm run), the CPU seconds of the
cold run (user + system, all threads of that process, not the folder source's decode workers: what a
busy shared machine does not change much) and peak
resident memory per source; then times validation of the prepared IDX output. Medians over `--repeats` runs. "process s"
is the child's whole time up to the end of the cold run: interpreter start, imports and `prepare.run`,
which is what the stage costs apart from reading params.yaml. The last line is the headline: the
slowest source's cold images/s.

    python benchmarks/prepare_throughput.py [--count 70000] [--repeats 3] [--sources idx,npz,csv,folder]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from sample_files import write_idx

SIDE = 28


def make_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distinct digit-like uint8 images: scikit-learn digits upscaled to 28×28 plus noise."""
    from sklearn.datasets import load_digits

    from ganops.data.sources import resize_to

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.images), count)
    base = resize_to((digits.images / 16.0).astype(np.float32)[..., None], SIDE)[..., 0]
    noisy = base[pick] * 255.0 + rng.normal(0.0, 12.0, (count, SIDE, SIDE))
    return np.clip(noisy, 0, 255).astype(np.uint8), digits.target[pick].astype(np.int64)


def _write_pngs(job: tuple[str, np.ndarray, np.ndarray, int]) -> None:
    from PIL import Image

    root, images, labels, start = job
    for offset, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(Path(root) / str(label) / f"{start + offset:06d}.png")


def write_inputs(folder: Path, images: np.ndarray, labels: np.ndarray,
                 wanted: set[str]) -> tuple[dict[str, dict], dict]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    write_idx(folder / "images.gz", images)  # always: validation is timed on the prepared idx output
    write_idx(folder / "labels.gz", labels.astype(np.uint8))
    if "npz" in wanted:
        np.savez(folder / "images.npz", x=images, y=labels)
    if "csv" in wanted:
        flat = images.reshape(len(images), -1)
        columns = {"label": labels} | {f"p{i}": flat[:, i] for i in range(flat.shape[1])}
        pacsv.write_csv(pa.table(columns), folder / "images.csv")
    pngs = folder / "pngs"
    if "folder" in wanted:
        for label in np.unique(labels):
            (pngs / str(label)).mkdir(parents=True)
        step = 5000
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write_pngs, [(str(pngs), images[i:i + step], labels[i:i + step], i)
                                        for i in range(0, len(images), step)]))
    common = {"image_size": SIDE}
    return {
        "idx": {"source": "idx", "path": str(folder / "images.gz"), "labels_path": str(folder / "labels.gz")},
        "npz": {"source": "npz", "path": str(folder / "images.npz")},
        "csv": {"source": "csv", "path": str(folder / "images.csv")},
        "folder": {"source": "folder", "path": str(pngs)},
    }, common


def _peak_resident_mb() -> float:
    """This process's peak resident memory since exec (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across fork and exec, so a child of a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(data: dict, out: str) -> None:
    """One measured prepare run; prints seconds and peak memory (this process and its decode workers)."""
    from ganops.config import DataConfig
    from ganops.data import prepare

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    info = prepare.run(DataConfig(**data), out)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    # CPU time of the cold run, all threads: unlike wall time, barely changed by other work on the machine.
    cpu_seconds = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    cold_end = time.time()  # the parent subtracts its own clock reading from before this process started
    peak_mb = _peak_resident_mb()  # of the cold run alone: the stage's own peak
    # A second run in the same process: without the first call's lazy imports (parquet writer, …).
    start = time.perf_counter()
    prepare.run(DataConfig(**data), out)
    warm_seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "cold_end": cold_end,
        "warm_seconds": warm_seconds,
        "images": info.train_count + info.validation_count + info.test_count,
        "peak_mb": peak_mb,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def measure(data: dict, out: Path) -> dict:
    started = time.time()
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(data), str(out)],
                            capture_output=True, text=True, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return measured | {"process_seconds": measured["cold_end"] - started}


def validation_seconds(prepared: Path, out: Path) -> float | None:
    try:
        from ganops.config import ValidateConfig
        from ganops.data import validate
    except ImportError:
        return None
    from ganops.errors import GanopsError

    start = time.perf_counter()
    try:
        validate.run(prepared, ValidateConfig(), out)
    except GanopsError as exc:  # a failed gate took as long as a passed one; say so and keep the time
        print(f"validate: checks failed ({exc})")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=70_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sources", default="idx,npz,csv,folder",
                        help="comma-separated subset to measure (idx is always prepared: validation is timed on it)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child[0]), args.child[1])
        return

    with tempfile.TemporaryDirectory(prefix="ganops-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        images, labels = make_images(args.count)
        wanted = set(args.sources.split(",")) | {"idx"}
        sources, common = write_inputs(folder, images, labels, wanted)
        print(f"wrote {args.count:,} {SIDE}x{SIDE} images as {', '.join(sorted(wanted))} "
              f"in {time.perf_counter() - start:.1f} s", flush=True)

        rates = {}
        print(f"load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs", flush=True)
        print(f"{'source':<8} {'images/s':>10} {'seconds':>8} {'CPU s':>6} {'process s':>9} {'warm img/s':>11} "
              f"{'peak MB':>8}  "
              f"(median of {args.repeats} fresh processes; warm: a second run in the same process)")
        for name, data in sources.items():
            if name not in wanted:
                continue
            runs = [measure(data | common, folder / f"prepared-{name}") for _ in range(args.repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            process_seconds = statistics.median(r["process_seconds"] for r in runs)
            cpu_seconds = statistics.median(r["cpu_seconds"] for r in runs)
            peak = max(r["peak_mb"] for r in runs)
            worker_peak = max(r["worker_peak_mb"] for r in runs)
            rates[name] = runs[0]["images"] / seconds
            warm_rate = runs[0]["images"] / statistics.median(r["warm_seconds"] for r in runs)
            workers = f"  (decode workers {worker_peak:.0f} MB each)" if worker_peak > 0 else ""
            print(f"{name:<8} {rates[name]:>10,.0f} {seconds:>8.2f} {cpu_seconds:>6.2f} {process_seconds:>9.2f} "
                  f"{warm_rate:>11,.0f} "
                  f"{peak:>8.0f}{workers}", flush=True)

        timings = [validation_seconds(folder / "prepared-idx", folder / f"validation-{i}")
                   for i in range(args.repeats)]
        if timings[0] is None:
            print("validate: ganops.data.validate not available")
        else:
            print(f"validate {args.count:,} images: {statistics.median(timings):.2f} s (median of {args.repeats})")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        slowest = min(rates, key=rates.get)
        print(f"min_images_per_s={rates[slowest]:.0f} ({slowest})")


if __name__ == "__main__":
    main()

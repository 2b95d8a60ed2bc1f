"""Memory and speed of every stage on a large dataset: 300,000 synthetic 64×64×3 images by default.

Builds the images itself (seeded coloured shapes on gradients, ten classes by shape), a chunk at a time
straight into an uncompressed `.npz` (never two copies in memory), and a folder of `--png-count` PNGs; then
runs each stage's real entry point (`python pipeline/<stage>.py` with a params.yaml written here: the repo's
defaults, data at 64×64×3, `train.arch` dcgan, then any `--set` train settings) in its own fresh process. Per
stage: wall time of the process, images/s, "peak MB" (VmHWM: the stage process's own peak resident memory
since exec, the goal's measure), "anon MB" (the largest RssAnon polled every 0.2 s: its own allocations,
without the file pages it maps, which the kernel can drop) and "tree MB" (the largest sum of resident memory
over the process and its workers, polled alike; shared pages count in each, so it overstates). Rows:

- prepare (npz), prepare_png (the PNG folder): the prepare stage; images/s over the process's wall time.
- disk: the ceiling the disk puts on prepare: as many bytes as prepare's shards hold written to one file in
  50 MB pieces (as prepare writes them, no fsync), then deleted; images/s is the count over the writing time.
- validate, featurize (`--featurize-epochs` epochs: the stage's 15 would take hours on 2 cores, and memory
  does not grow with epochs), evaluate (`evaluate.num_samples` = `--eval-samples`): the stages.
- input: one full pass of `streams.training_batches` over the prepared train split at batch 64, every
  batch pulled and dropped: the images/s the input pipeline can deliver.
- trainer: the train stage's trainer (params.yaml's train settings, dcgan) over the same pipeline, timed over
  `--trainer-steps` steps after tracing and warm-up: the images/s the input must keep up with.
- train: the train stage itself for `--train-seconds` of training (quality monitor included); its images/s
  is steps × batch ÷ training seconds from `run.json`, tracing included.

Goals (issue 12, 2 cores): every stage ≤ 2 GB whatever the size; input ≥ 5× the trainer's images/s; prepare
≥ 50,000 images/s from npz, ≥ 3,000 from PNG folders. Medians over `--repeats` fresh processes; the last
line is the headline: the largest peak and the input/trainer ratio.

    python benchmarks/large_data.py [--count 300000] [--png-count 30000] [--repeats 1] [--stages all]
    python benchmarks/large_data.py --count 20000 --png-count 2000   # a smoke check, a few minutes
    python benchmarks/large_data.py --set base_filters=64 --set batch_size=64   # a 4× wider model
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIDE, CHANNELS, CLASSES = 64, 3, 10
CHUNK = 4096  # images made at a time: 50 MB of uint8, a few float32 masks of 16 MB
STAGES = ("prepare", "disk", "prepare_png", "validate", "featurize", "input", "trainer", "train", "evaluate")
GOAL_MB = 2048
BATCH = 64


SHAPES = (  # the classes: a mask from the offsets (dx, dy) to the shape's centre and its radius r
    lambda dx, dy, r: dx**2 + dy**2 < r**2,  # disc
    lambda dx, dy, r: np.maximum(abs(dx), abs(dy)) < r,  # square
    lambda dx, dy, r: abs(dx) + abs(dy) < r,  # diamond
    lambda dx, dy, r: abs(np.sqrt(dx**2 + dy**2) - r) < 0.05,  # ring
    lambda dx, dy, r: (abs(dy) < r / 3) & (abs(dx) < r),  # horizontal bar
    lambda dx, dy, r: (abs(dx) < r / 3) & (abs(dy) < r),  # vertical bar
    lambda dx, dy, r: ((abs(dx) < r / 4) | (abs(dy) < r / 4)) & (np.maximum(abs(dx), abs(dy)) < r),  # cross
    lambda dx, dy, r: (dy > -r) & (abs(dx) < (dy + r) / 2) & (dy < r),  # triangle
    lambda dx, dy, r: (dx / r) ** 2 + (2 * dy / r) ** 2 < 1,  # wide ellipse
    lambda dx, dy, r: (2 * dx / r) ** 2 + (dy / r) ** 2 < 1,  # tall ellipse
)


def make_chunk(start: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` images from position `start`: a two-colour gradient, then one shape (its class) of a random
    colour, size and place. A pure function of (seed, start): chunks can be made in any order."""
    rng = np.random.default_rng([seed, start])
    labels = rng.integers(0, CLASSES, count)  # the first draw: `chunk_labels` makes them without the images
    grid = (np.arange(SIDE, dtype=np.float32) + 0.5) / SIDE
    angle = rng.uniform(0, 2 * np.pi, (count, 1, 1))
    ramp = ((np.cos(angle) * grid[None, None, :] + np.sin(angle) * grid[None, :, None] + 1.5) / 3).astype(np.float32)
    low, high = rng.uniform(0, 255, (2, count, 1, 1, CHANNELS)).astype(np.float32)
    image = np.empty((count, SIDE, SIDE, CHANNELS), np.uint8)
    for channel in range(CHANNELS):  # in place, a channel at a time: in [0, 255] by construction, no clip
        shade = ramp * (high - low)[..., channel]
        shade += low[..., channel]
        image[..., channel] = shade
    centre = rng.uniform(0.3, 0.7, (2, count, 1, 1)).astype(np.float32)
    radius = rng.uniform(0.12, 0.28, (count, 1, 1)).astype(np.float32)
    colour = rng.integers(0, 256, (count, CHANNELS), dtype=np.uint8)
    for label, shape in enumerate(SHAPES):
        members = np.flatnonzero(labels == label)  # each shape's mask only over its own images
        r = radius[members]
        mask = shape(grid[None, None, :] - centre[0, members], grid[None, :, None] - centre[1, members], r)
        image[members] = np.where(mask[..., None], colour[members, None, None, :], image[members])
    return image, labels.astype(np.int64)


def chunk_labels(start: int, count: int, seed: int = 0) -> np.ndarray:
    """The labels of `make_chunk(start, count, seed)`, without making its images."""
    return np.random.default_rng([seed, start]).integers(0, CLASSES, count).astype(np.int64)


def _write_array(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: str, pieces) -> None:
    """One `.npy` member written piece by piece: the header, then each piece's bytes (stored, not deflated)."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                      "shape": shape})
        for piece in pieces:
            member.write(np.ascontiguousarray(piece).tobytes())


def write_npz(path: Path, count: int) -> None:
    """`x` (uint8 N×64×64×3) and `y` (int64 labels) in an uncompressed .npz, a chunk at a time."""
    starts = range(0, count, CHUNK)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        _write_array(archive, "x", (count, SIDE, SIDE, CHANNELS), "u1",
                     (make_chunk(s, min(CHUNK, count - s))[0] for s in starts))
        _write_array(archive, "y", (count,), "<i8", (chunk_labels(s, min(CHUNK, count - s)) for s in starts))


def _write_pngs(job: tuple[str, int, int]) -> None:
    from PIL import Image

    root, start, count = job
    images, labels = make_chunk(start, count)
    for offset, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(Path(root) / str(label) / f"{start + offset:07d}.png")


def write_pngs(folder: Path, count: int) -> None:
    for label in range(CLASSES):
        (folder / str(label)).mkdir(parents=True)
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_pngs, [(str(folder), s, min(CHUNK, count - s)) for s in range(0, count, CHUNK)]))


def write_params(path: Path, data: dict, args: argparse.Namespace) -> None:
    """The repo's params.yaml with this benchmark's data and short budgets."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] |= {"image_size": SIDE, "channels": CHANNELS} | data
    params["featurize"] |= {"epochs": args.featurize_epochs, "min_steps": 0}
    from quality_budget import parse_override  # beside this file

    overrides = dict(parse_override(text, "--set") for text in args.set)
    params["train"] |= {"arch": "dcgan", "max_seconds": args.train_seconds} | overrides
    params["evaluate"] |= {"num_samples": args.eval_samples}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _peak_resident_mb() -> float:
    """This process's peak resident memory since exec (VmHWM; ru_maxrss would carry the parent's over)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_child(result_path: str, script: str, argv: list[str]) -> None:
    """Run a stage script as `python script argv…` would, in this process; then write its peak memory."""
    sys.argv = [script, *argv]
    status = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    Path(result_path).write_text(json.dumps({"status": status, "peak_mb": _peak_resident_mb()}))
    sys.exit(status)


def input_pass(prepared: str, seed: int = 0) -> None:
    """One epoch of the training input pipeline alone, every batch pulled and dropped; prints images/s."""
    from ganops import startup

    startup.setup()
    from ganops import artifacts, streams

    split = artifacts.PreparedData(prepared).open_split("train")
    batches = streams.training_batches(split, BATCH, seed, epochs=1)
    start = time.perf_counter()
    images = sum(int(batch.shape[0]) for batch in batches)
    seconds = time.perf_counter() - start
    print(f"input pipeline: {images} images in {seconds:.2f} s, {images / seconds:,.0f} images/s", flush=True)
    print(json.dumps({"images": images, "seconds": seconds}))


def trainer_rate(prepared: str, params: str, steps: int, seed: int = 0) -> None:
    """The train stage's trainer (`train.build_gan`, `streams.training_batches` over the prepared shards,
    `GAN.train_steps`) with params.yaml's train settings, traced and warmed up, then timed over `steps` steps;
    prints images/s: what the input pipeline has to keep up with."""
    from ganops import startup

    startup.setup()
    from ganops import artifacts, streams
    from ganops.config import load_params
    from ganops.training import train

    split = artifacts.PreparedData(prepared).open_split("train")
    cfg = load_params(params).train.for_data(len(split), split.shape)
    gan = train.build_gan(cfg, split.shape)
    batches = iter(streams.training_batches(split, cfg.batch_size, seed, epochs=cfg.epochs))
    gan.train_steps(batches, 1)  # trace
    gan.train_steps(batches, 5)  # warm up
    start = time.perf_counter()
    gan.train_steps(batches, steps)
    int(gan.steps_done.numpy())  # wait for the last step
    seconds = time.perf_counter() - start
    print(f"trainer: {steps} steps of {cfg.batch_size} in {seconds:.2f} s", flush=True)
    print(json.dumps({"images": steps * cfg.batch_size, "seconds": seconds}))


def _anon_mb(pid: int) -> float:
    """A process's resident anonymous memory now (RssAnon: its own allocations, not file pages it maps)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:  # it has just ended
        pass
    return 0.0


def _tree_rss_mb(process) -> float:
    """Resident memory of a process and its descendants now (shared pages counted in each)."""
    import psutil

    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            total += member.memory_info().rss
    except psutil.Error:  # a worker ended between the listing and the reading
        pass
    return total / 2**20


def run_stage(work: Path, name: str, script_args: list[str]) -> dict:
    """`script_args` (a stage script and its arguments, or `--input-pass DIR`) in a fresh process."""
    result = work / f"{name}.result.json"
    log = work / f"{name}.log"
    if script_args[0].startswith("--"):  # one of this file's own measurements
        command = [sys.executable, __file__, "--stage-child", str(result), *script_args]
    else:
        command = [sys.executable, __file__, "--stage-child", str(result), str(REPO / script_args[0]),
                   *script_args[1:]]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {
        "DVC_ROOT": str(work), "GX_ANALYTICS_ENABLED": "false"}  # the MLflow store goes into `work`
    import psutil

    start = time.perf_counter()
    tree_peak = anon_peak = 0.0
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(child.pid)
        while child.poll() is None:  # the stage and any workers it starts (prepare's decoders)
            tree_peak = max(tree_peak, _tree_rss_mb(watched))
            anon_peak = max(anon_peak, _anon_mb(child.pid))
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"{name} failed (exit {child.returncode}); the end of {log}:\n{tail}")
    measured = json.loads(result.read_text())
    return measured | {"seconds": seconds, "tree_peak_mb": tree_peak, "anon_peak_mb": anon_peak,
                       "log": log.read_text()}


def disk_write(prepared: str) -> None:
    """Write as many bytes as the prepared shards hold, in 50 MB pieces, and print the time it took."""
    total = sum(path.stat().st_size for path in Path(prepared).rglob("*") if path.is_file())
    piece = np.random.default_rng(0).integers(0, 256, 50 * 2**20, dtype=np.uint8).tobytes()
    target = Path(prepared).parent / "disk-ceiling.bin"
    start = time.perf_counter()
    with target.open("wb") as out:
        for offset in range(0, total, len(piece)):
            out.write(piece[: total - offset])
    seconds = time.perf_counter() - start
    target.unlink()
    info = json.loads((Path(prepared) / "dataset.json").read_text())
    images = info["train_count"] + info["validation_count"] + info["test_count"]
    print(f"wrote {total / 2**20:,.0f} MB in {seconds:.2f} s ({total / 2**20 / seconds:,.0f} MB/s)")
    print(json.dumps({"images": images, "seconds": seconds}))


def own_child(result_path: str, what: str, rest: list[str]) -> None:
    """One of this file's measurements (`--input-pass PREPARED`, `--trainer PREPARED PARAMS STEPS`,
    `--disk-write PREPARED`)."""
    if what == "--input-pass":
        input_pass(rest[0])
    elif what == "--disk-write":
        disk_write(rest[0])
    else:
        trainer_rate(rest[0], rest[1], int(rest[2]))
    Path(result_path).write_text(json.dumps({"status": 0, "peak_mb": _peak_resident_mb()}))


def stage_commands(work: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    prepared, params = str(work / "prepared"), str(work / "params.yaml")
    verdict, featurizer = str(work / "validation.json"), str(work / "featurizer.keras")
    return {
        "prepare": ["pipeline/prepare.py", "--params", params, "--out", prepared],
        "prepare_png": ["pipeline/prepare.py", "--params", str(work / "params-png.yaml"),
                        "--out", str(work / "prepared-png")],
        "validate": ["pipeline/validate.py", "--params", params, "--prepared", prepared,
                     "--out", str(work / "validation"), "--verdict", verdict],
        "featurize": ["pipeline/featurize.py", "--params", params, "--prepared", prepared,
                      "--model", featurizer, "--metrics", str(work / "featurizer.json")],
        "disk": ["--disk-write", prepared],
        "input": ["--input-pass", prepared],
        "trainer": ["--trainer", prepared, params, str(args.trainer_steps)],
        "train": ["pipeline/train.py", "--params", params, "--prepared", prepared, "--out", str(work / "gan"),
                  "--featurizer", featurizer, "--validation", verdict],
        "evaluate": ["pipeline/evaluate.py", "--params", params, "--prepared", prepared,
                     "--models", str(work / "gan"), "--featurizer", featurizer,
                     "--metrics", str(work / "metrics.json"), "--paired", str(work / "paired.json"),
                     "--samples", str(work / "samples.png"), "--figures", str(work / "figures"),
                     "--report", str(work / "report.html"), "--validation", verdict],
    }


def stage_images(name: str, work: Path, args: argparse.Namespace, measured: dict) -> tuple[int, float]:
    """(images the stage handled, the seconds its images/s is over): the stage's own where it reports it."""
    if name == "prepare_png":
        return args.png_count, measured["seconds"]
    if name in ("input", "trainer", "disk"):
        figures = json.loads(measured["log"].strip().splitlines()[-1])
        return figures["images"], figures["seconds"]
    info = json.loads((work / "prepared" / "dataset.json").read_text())
    if name == "train":
        run = json.loads((work / "gan" / "run.json").read_text())
        return run["steps"] * BATCH, run["seconds"]
    if name == "featurize":
        return info["train_count"] * args.featurize_epochs, measured["seconds"]
    if name == "evaluate":
        return info["train_count"] + info["validation_count"] + info["test_count"], measured["seconds"]
    return args.count, measured["seconds"]


def measure_all(work: Path, args: argparse.Namespace, wanted: list[str]) -> dict[str, dict]:
    commands = stage_commands(work, args)
    rows: dict[str, dict] = {}
    print(f"{'stage':<12} {'images':>9} {'seconds':>8} {'images/s':>10} {'peak MB':>8} {'anon MB':>8} "
          f"{'tree MB':>8}  "
          f"(median of {args.repeats} fresh processes; peak: the largest)", flush=True)
    for name in wanted:
        runs = [run_stage(work, name, commands[name]) for _ in range(args.repeats)]
        figures = [stage_images(name, work, args, r) for r in runs]
        images, seconds = figures[0][0], statistics.median(f[1] for f in figures)
        process_seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        tree = max(r["tree_peak_mb"] for r in runs)
        anon = max(r["anon_peak_mb"] for r in runs)
        rows[name] = {"images": images, "seconds": seconds, "rate": images / seconds, "peak_mb": peak,
                      "process_seconds": process_seconds}
        flag = "" if peak <= GOAL_MB else "  over 2 GB"
        print(f"{name:<12} {images:>9,} {process_seconds:>8.1f} {images / seconds:>10,.0f} {peak:>8.0f} "
              f"{anon:>8.0f} {tree:>8.0f}{flag}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300_000, help="images in the npz")
    parser.add_argument("--png-count", type=int, default=30_000, help="images in the PNG folder (0: none)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--stages", default="all", help=f"comma-separated subset of {','.join(STAGES)} (prepare "
                        "always runs; train needs featurize and validate, evaluate needs train)")
    parser.add_argument("--featurize-epochs", type=int, default=1)
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--trainer-steps", type=int, default=30, help="timed trainer steps, after 6 untimed")
    parser.add_argument("--eval-samples", type=int, default=10_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a train setting over the defaults, e.g. --set base_filters=64 (repeatable)")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--stage-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage_child:
        result, script, *rest = args.stage_child
        if script.startswith("--"):
            own_child(result, script, rest)
        else:
            stage_child(result, script, rest)
        return

    wanted = list(STAGES) if args.stages == "all" else args.stages.split(",")
    wanted = ["prepare", *(name for name in wanted if name != "prepare")]  # every other stage reads its output
    if not args.png_count and "prepare_png" in wanted:
        wanted.remove("prepare_png")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ganops-large-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        write_npz(work / "images.npz", args.count)
        if "prepare_png" in wanted:
            write_pngs(work / "pngs", args.png_count)
        write_params(work / "params.yaml", {"source": "npz", "path": str(work / "images.npz")}, args)
        write_params(work / "params-png.yaml", {"source": "folder", "path": str(work / "pngs")}, args)
        print(f"wrote {args.count:,} {SIDE}x{SIDE}x{CHANNELS} images as npz "
              f"({(work / 'images.npz').stat().st_size / 2**30:.2f} GiB) and {args.png_count:,} as PNGs "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs", flush=True)
        rows = measure_all(work, args, wanted)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    worst = max(rows, key=lambda name: rows[name]["peak_mb"])
    ratio = (f" input/trainer={rows['input']['rate'] / rows['trainer']['rate']:.1f}x"
             if "input" in rows and "trainer" in rows else "")
    print(f"max_peak_mb={rows[worst]['peak_mb']:.0f} ({worst}){ratio}")


if __name__ == "__main__":
    main()

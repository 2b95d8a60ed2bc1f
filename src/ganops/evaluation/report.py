"""The evaluation report: one self-contained HTML file (inline CSS, images as base64 data URIs, no scripts,
fonts or links to fetch), so it opens from a laptop, a CI artifact or an air-gapped cluster alike.

It shows each metric with its interval beside the real floor, the known-bad baselines and the registry
champion's value, the sample grid,
the per-class grid and histogram, the nearest-training-neighbour pairs and the loss curves.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend
from PIL import Image

from ganops import artifacts, metric_specs

PICTURE_WIDTH = 420  # target on-screen width of sample grids, in CSS pixels


_SET_LABELS = {metric_specs.MODEL: "This model", metric_specs.REAL: "Real (floor)",
               "pixel_gaussian": "Pixel Gaussian", "noisy_train": "Noisy train"}


@dataclasses.dataclass(frozen=True)
class Context:
    run_id: str
    metrics: dict
    champion: dict | None  # registry.champion.summary
    samples: Path  # sample grid PNG
    class_grid: Path | None  # per-class grid PNG (labelled data)
    neighbours: Path | None  # nearest-training-neighbour pairs PNG
    class_table: pd.DataFrame | None
    neighbour_distances: np.ndarray
    history: Path  # the train stage's loss history CSV
    conditional: bool


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return _png_uri(buffer.getvalue())


def _img(uri: str, alt: str, pixelated: bool = True) -> str:
    style = ' class="pixels"' if pixelated else ""
    return f'<img{style} src="{uri}" alt="{html.escape(alt)}">'


def _picture(path: Path, alt: str) -> str:
    """A PNG of small pixel images, shown at least PICTURE_WIDTH pixels wide (enlarged without blurring)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        width = image.width
    return (f'<img class="pixels" width="{max(width, PICTURE_WIDTH)}" src="{_png_uri(data)}" '
            f'alt="{html.escape(alt)}">')


def _loss_curves(history_path: Path) -> str:
    if not history_path.exists():
        return f"<p class=note>No loss history at {html.escape(str(history_path))}.</p>"
    history = pd.read_csv(history_path)
    figure = Figure(figsize=(6.4, 3.0))
    axes = figure.subplots()
    for column, label in (("d_loss", "discriminator"), ("g_loss", "generator")):
        if column in history:
            axes.plot(history["epoch"], history[column], label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    return _img(_figure_uri(figure), "loss curves", pixelated=False)


def _class_charts(table: pd.DataFrame) -> str:
    figure = Figure(figsize=(6.4, 3.0))
    axes = figure.subplots()
    width = 0.27
    for offset, column in zip((-width, 0.0, width), ("generated", "real", "test"), strict=True):
        axes.bar(table["class"] + offset, table[column], width, label=column)
    axes.set_xticks(table["class"])
    axes.set_xlabel("class (classifier prediction)")
    axes.set_ylabel("share of samples")
    axes.legend()
    parts = [_img(_figure_uri(figure), "class histogram", pixelated=False)]
    if "accuracy" in table:
        figure = Figure(figsize=(6.4, 2.6))
        axes = figure.subplots()
        axes.bar(table["class"] - 0.2, table["accuracy"], 0.4, label="generated (conditioned on class)")
        axes.bar(table["class"] + 0.2, table["accuracy_real"], 0.4, label="test (true class)")
        axes.set_xticks(table["class"])
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("class")
        axes.set_ylabel("classifier accuracy")
        axes.legend(fontsize="small")
        parts.append(_img(_figure_uri(figure), "per-class accuracy", pixelated=False))
    return "".join(parts)


def _metrics_table(metrics: dict, champion: dict | None) -> str:
    """One row per registry metric: the model, the real floor, each baseline (value and 95% interval), the
    champion's value, which way is better and what it means."""
    omitted = metrics.get("omitted", {})
    champion_values = champion["metrics"] if champion else {}
    set_heads = "".join(f"<th>{html.escape(_SET_LABELS[name])}</th>" for name in metric_specs.SETS)
    head = (f"<tr><th>Metric</th>{set_heads}"
            + (f"<th>Champion v{html.escape(champion['version'])}</th>" if champion else "")
            + "<th>Better</th><th>Meaning</th></tr>")
    rows = [head]
    for spec in metric_specs.SPECS:
        champion_cell = f"<td class=num>{_number(champion_values.get(spec.name))}</td>" if champion else ""
        meaning = html.escape(spec.description)
        if spec.name in omitted:
            rows.append(f"<tr class=omitted><td>{spec.name}</td><td colspan={len(metric_specs.SETS)}>omitted: "
                        f"{html.escape(omitted[spec.name])}</td>{champion_cell}<td>{spec.direction}</td>"
                        f"<td>{meaning}</td></tr>")
            continue
        if spec.name not in metrics:
            continue
        cells = "".join(f"<td class=num>{_cell(_section(metrics, name), spec.name)}</td>"
                        for name in metric_specs.SETS)
        rows.append(f"<tr><td><code>{spec.name}</code></td>{cells}{champion_cell}<td>{spec.direction}</td>"
                    f"<td>{meaning}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _section(metrics: dict, name: str) -> dict:
    return metrics if name == metric_specs.MODEL else metrics.get(name, {})


def _cell(section: dict, key: str) -> str:
    if key not in section:
        return "—"
    low, high = metric_specs.interval_keys(key)
    interval = (f"<br><span class=interval>[{_number(section[low])}, {_number(section[high])}]</span>"
                if low in section else "")
    return _number(section[key]) + interval


def _champion_note(metrics: dict, champion: dict | None) -> str:
    if champion is None:
        return "<p class=note>No champion in the registry yet: nothing to compare with.</p>"
    text = (f"Champion: {html.escape(champion['name'])} v{html.escape(champion['version'])} "
            f"(alias <code>{html.escape(champion['alias'])}</code>, run {html.escape(str(champion['run_id']))}).")
    if champion.get("featurizer_hash") != metrics.get("featurizer_hash"):
        text += (f" <strong>Measured with featurizer {html.escape(str(champion.get('featurizer_hash')))}, "
                 f"not {html.escape(str(metrics.get('featurizer_hash')))}: its distances are on another scale "
                 "and not comparable.</strong>")
    return f"<p class=note>{text}</p>"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.35em 0.7em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.omitted td { color: #888; font-style: italic; }
code { font-size: 0.85em; color: #555; } .interval { color: #777; font-size: 0.85em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.3em 0.6em 0.3em 0; vertical-align: top; }
img.pixels { image-rendering: pixelated; }
.note { color: #555; font-size: 0.9em; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; } .row > div { flex: 1 1 20em; }
"""


def render(context: Context) -> str:
    metrics = context.metrics
    samples = _picture(context.samples, "generated samples")
    sections = [
        f"<h1>GAN evaluation</h1><p class=note>MLflow run {html.escape(context.run_id)} · "
        f"n = {metrics['num_samples']} images per set against {metrics['num_samples']} test images · "
        f"featurizer: {html.escape(str(metrics.get('featurizer', 'classifier')))} "
        f"<code>{html.escape(str(metrics['featurizer_hash']))}</code> · "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC</p>",
        "<h2>Metrics</h2>" + _metrics_table(metrics, context.champion) + _champion_note(metrics, context.champion)
        + "<p class=note>Every set is measured the same way, with the same sample count, against one "
          "reference sample of the test split. <em>Real (floor)</em>: a train sample, real images the reference "
          "has never met: what real data scores at this n (for copying, a validation sample; for conditional "
          "accuracy, the test images with their true labels). " + " ".join(
              f"<em>{html.escape(_SET_LABELS[name])}</em>: {html.escape(metric_specs.SET_DESCRIPTIONS[name])}."
              for name in metric_specs.BASELINES)
        + f" Brackets: {metrics.get('confidence', 0.95):.0%} intervals, "
          f"{html.escape(metric_specs.INTERVALS['bootstrap'])} ({metrics.get('bootstrap_replicates')} replicates); "
          f"for kid, {html.escape(metric_specs.INTERVALS['subsets'])}. Distances live in this featurizer's space: "
          "compare them only between runs with the same featurizer hash and the same n.</p>",
        "<h2>Samples</h2><div class=row><div>" + samples + "</div><div><h3>Loss curves</h3>"
        + _loss_curves(context.history) + "</div></div>",
    ]
    if context.class_table is not None:
        grid_path = context.class_grid
        caption = ("one row per requested class" if context.conditional
                   else "one row per class the classifier predicts; blank cells: fewer samples of that class")
        grid = _picture(grid_path, "per-class grid") if grid_path else ""
        sections.append(f"<h2>Classes</h2><div class=row><div><p class=note>{caption}</p>{grid}</div>"
                        f"<div>{_class_charts(context.class_table)}</div></div>")
    neighbours_path = context.neighbours
    if neighbours_path:
        distances = ", ".join(f"{d:.3g}" for d in context.neighbour_distances)
        sections.append("<h2>Nearest training neighbours</h2><p class=note>Top row: the generated samples "
                        "closest to the training set (in feature space); bottom row: the nearest training "
                        f"image of each. Feature distances: {distances}.</p>"
                        + _picture(neighbours_path, "nearest training neighbours"))
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>GAN evaluation</title>"
            f"<style>{STYLE}</style></head><body>" + "".join(sections) + "</body></html>\n")


def write(path: str | Path, context: Context) -> None:
    with artifacts.atomic_path(path) as tmp:
        tmp.write_text(render(context), encoding="utf-8")

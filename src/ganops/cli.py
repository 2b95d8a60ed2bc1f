"""The `ganops` console script (typer), thin like pipeline/: parse options, load params, call the library,
print one line. A GanopsError becomes one line on stderr and exit status 1 (`stage.entry_point`, as in the
pipeline's stage scripts); the user-facing help is HELP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Importing `stage` runs `startup.setup()` before anything imports TensorFlow, GX or MLflow: quiet logs, the
# Keras backend pinned.
from ganops.stage import entry_point

# Plain click formatting (rich_markup_mode=None): `\b` keeps the example block as written, in any terminal.
HELP = """Promote and sample the GAN generators that the ganops pipeline (`dvc repro`) registers in MLflow.

Commands use the tracking URI the pipeline uses: MLFLOW_TRACKING_URI, else ./mlflow.db. Model names and
aliases come from the register and promote sections of params.yaml (a command's --params).

\b
Examples:
  ganops promote --dry-run          what the gate would decide; changes nothing
  ganops promote                    make the candidate champion if it is better
  ganops promote --force            make the candidate champion regardless
  ganops generate -n 64 --out samples/
                                    64 PNGs + grid.png from the champion
  ganops generate --model models:/gan-generator/3 -n 16 --seed 7 --out s/
                                    16 PNGs from version 3, seed 7
  ganops generate --per-class 100 --out synthetic/
                                    a conditional champion's 100 images a class, in class folders
  TF_CONFIG=... ganops worker --prepared data/prepared
                                    a non-chief task of multi-worker training
  ganops COMMAND --help             a command's options
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  pretty_exceptions_enable=False)

DEFAULT_COUNT = 64  # images `ganops generate` writes without -n
ParamsOption = Annotated[Path, typer.Option("--params", metavar="FILE",
                                            help="params.yaml with the register and promote sections")]


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ganops")
    except PackageNotFoundError:  # imported from a source tree without `pip install -e .`
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"ganops {package_version()}", flush=True)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the ganops version and exit")] = False,
) -> None:
    pass


def _user_errors(command):
    """`ganops COMMAND: error: MESSAGE` and exit status 1 for a GanopsError (see `stage.entry_point`)."""
    return entry_point(command, name=command.__name__)


@app.command(short_help="Decide candidate vs champion on evidence; move the champion alias if better.")
@_user_errors
def promote(
    params: ParamsOption = Path("params.yaml"),
    force: Annotated[bool, typer.Option("--force", help="move the champion even if the gate says no")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the decision the gate would take; move no alias and set no tag")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="also write the decision as JSON here")] = None,
) -> None:
    """Compare the candidate with the champion on the gate metric; move the champion alias if it is better.

    Prints one line: the decision and its evidence. The decision is also recorded as version tags
    (promotion.decision, promotion.reason) unless --dry-run is given.
    """
    from ganops.config import load_params
    from ganops.registry import promotion

    loaded = load_params(params)
    decision = promotion.promote(loaded.registry, loaded.promote, force=force, dry_run=dry_run)
    if out is not None:
        promotion.write_decision(out, decision)
    print(decision.line(), flush=True)


@app.command(short_help="Write PNGs and a grid from a registered generator.")
@_user_errors
def generate(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="folder for the PNGs (0000.png, ...) and grid.png")],
    model: Annotated[str | None, typer.Option(
        "--model", metavar="URI",
        help="model URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a folder); "
             "default models:/<register.model_name>@<register.champion_alias> from --params")] = None,
    count: Annotated[int | None, typer.Option(
        "-n", "--count", min=1, metavar="N", help="number of images (default 64)")] = None,
    per_class: Annotated[int | None, typer.Option(
        "--per-class", min=1, metavar="N",
        help="conditional generators: N images of every class, in class sub-folders of --out (a labelled "
             "dataset for the folder source or any image classifier tool)")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", min=0, metavar="INT", help="seed of the latent draws: same seed, same images")] = 0,
    label: Annotated[int | None, typer.Option(
        "--label", min=0, metavar="CLASS",
        help="class to draw, for a conditional generator (default: drawn at random)")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write N images (-n) from a registered generator into --out as PNGs, plus grid.png; or, with --per-class,
    N images of every class into --out/<class>/."""
    from ganops.errors import GanopsError
    from ganops.registry import serving

    if per_class is not None and (count is not None or label is not None):
        raise GanopsError("--per-class writes every class: give it without -n/--count and --label")
    if model is None:
        from ganops.config import load_params

        cfg = load_params(params).registry
        model = f"models:/{cfg.model_name}@{cfg.champion_alias}"
    if per_class is not None:
        written = serving.generate_class_folders(model, per_class, seed, out)
        print(f"wrote {written} images ({per_class} a class) into class folders of {out} from {model}", flush=True)
        return
    written = serving.generate_pngs(model, count or DEFAULT_COUNT, seed, label, out)
    print(f"wrote {written} images and grid.png to {out} from {model}", flush=True)


@app.command(short_help="Run a non-chief task of multi-worker training (TF_CONFIG names the cluster).")
@_user_errors
def worker(
    prepared: Annotated[Path, typer.Option(
        "--prepared", metavar="DIR", help="the prepared data: the train stage's --prepared (dvc.yaml)")],
    params: Annotated[Path, typer.Option("--params", metavar="FILE",
                                         help="params.yaml with the chief's train section")] = Path("params.yaml"),
    scratch: Annotated[Path | None, typer.Option(
        "--scratch", metavar="DIR", help="write this worker's own checkpoints here (default: none)")] = None,
) -> None:
    """Train as one non-chief task of TF_CONFIG's cluster, beside the chief's train stage (`dvc repro`).

    Every task runs the same train steps on its own rows of each batch, from the chief's state; only the chief
    writes the model, checkpoints and MLflow record. Start one per task other than the chief, with the chief's
    params.yaml and the same prepared data.
    """
    from ganops.config import load_params
    from ganops.training import train

    result = train.work(load_params(params).train, prepared, scratch)
    print(f"worker: done at step {result.steps} ({result.seconds:.0f}s)", flush=True)


if __name__ == "__main__":
    app()

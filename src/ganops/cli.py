"""`ganops` user commands, thin like pipeline/: parse options, load params, call the library, print one line.

    ganops promote [--force]                       move the champion alias when the candidate is better
    ganops generate -n 64 --out samples/           PNGs and a grid from a registered generator

Both use the tracking URI that the pipeline uses (`MLFLOW_TRACKING_URI`, else the repository's mlflow.db).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from ganops import stage  # noqa: F401  (quiet TensorFlow and GX logs before they load)
from ganops.errors import GanopsError

app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)

ParamsOption = Annotated[Path, typer.Option("--params", help="params.yaml with the register and promote sections")]


def _user_errors(command):
    """A GanopsError becomes one line on stderr and exit status 1; anything else keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GanopsError as exc:
            print(f"ganops {command.__name__}: error: {exc}", file=sys.stderr, flush=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@_user_errors
def promote(
    params: ParamsOption = Path("params.yaml"),
    force: Annotated[bool, typer.Option("--force", help="move the champion even if the gate says no")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="also write the decision as JSON here")] = None,
) -> None:
    """Compare the candidate with the champion on the gate metric; move the champion alias if better."""
    from ganops import registry
    from ganops.config import load_params

    loaded = load_params(params)
    decision = registry.promote(loaded.registry, loaded.promote, force=force)
    if out is not None:
        registry.write_decision(out, decision)
    print(decision.line(), flush=True)


@app.command()
@_user_errors
def generate(
    out: Annotated[Path, typer.Option("--out", help="folder for the PNGs and grid.png")],
    model: Annotated[str | None, typer.Option(
        "--model", help="model URI; default models:/<register.model_name>@<register.champion_alias>")] = None,
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="number of images")] = 64,
    seed: Annotated[int, typer.Option("--seed", min=0, help="latent seed")] = 0,
    label: Annotated[int | None, typer.Option("--label", min=0, help="class, for a conditional generator")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write COUNT images from a registered generator as PNGs, plus grid.png."""
    from ganops import registry

    if model is None:
        from ganops.config import load_params

        cfg = load_params(params).registry
        model = f"models:/{cfg.model_name}@{cfg.champion_alias}"
    written = registry.generate_pngs(model, count, seed, label, out)
    print(f"wrote {written} images and grid.png to {out} from {model}", flush=True)


if __name__ == "__main__":
    app()

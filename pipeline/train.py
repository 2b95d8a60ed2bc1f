"""Stage train: fit the GAN (resuming from its last compatible checkpoint), save the EMA generator and loss
history, in this execution's MLflow record (or the run an interrupted execution started)."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--out", required=True, help="model folder (generator, history, run id)")
    parser.add_argument("--checkpoints", default=None,
                        help="persistent checkpoint folder to resume from and write to (none: no checkpoints)")
    parser.add_argument("--featurizer", default=None,
                        help="the featurize stage's network, for the quality monitor (train.monitor_every_epochs)")
    parser.add_argument("--validation", default=None, help="the validate stage's verdict, logged with the datasets")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.training import train

    result = train.run(load_params(args.params).train, args.prepared, args.out, args.checkpoints,
                       featurizer_path=args.featurizer, params_path=args.params, validation_path=args.validation)
    written = ", ".join(str(path) for path in (args.out, args.checkpoints) if path is not None)
    budget = ", time budget reached" if result.stopped_by_budget else ""
    history = result.history
    monitored = history["monitor_fd_ratio"].dropna() if "monitor_fd_ratio" in history else None
    quality = f", monitor fd_ratio {monitored.iloc[-1]:.3g}" if monitored is not None and len(monitored) else ""
    print(f"train: wrote {written} ({result.steps} steps in {result.total_seconds:.0f}s{budget}{quality})", flush=True)


if __name__ == "__main__":
    main()

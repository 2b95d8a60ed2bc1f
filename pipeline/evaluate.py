"""Stage evaluate: metrics of generated vs test images with intervals, beside the real floor and known-bad
baselines, the gate's paired evidence, pictures and a self-contained HTML report, all logged to this
execution's MLflow record."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--models", required=True, help="model folder written by train")
    parser.add_argument("--featurizer", required=True)
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--paired", required=True, help="the promotion gate's paired bootstrap evidence JSON to write")
    parser.add_argument("--samples", required=True, help="sample grid PNG to write")
    parser.add_argument("--figures", required=True, help="folder to write: class histogram CSV, class grid, "
                                                          "nearest-neighbour pairs")
    parser.add_argument("--report", required=True, help="self-contained HTML report to write")
    parser.add_argument("--validation", default=None, help="the validate stage's verdict, logged with the datasets")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.evaluation import evaluate
    from ganops.registry import champion

    params = load_params(args.params)
    results = evaluate.run(params.evaluate, args.prepared, args.models, args.featurizer, args.metrics, args.samples,
                           paired_path=args.paired, figures_dir=args.figures, report_path=args.report,
                           champion=champion.summary(params.registry), params_path=args.params,
                           validation_path=args.validation)
    written = ", ".join((args.metrics, args.paired, args.samples, args.figures, args.report))
    print(f"evaluate: wrote {written} (fd_ratio {results['fd_ratio']:.3g} at n={results['num_samples']})", flush=True)


if __name__ == "__main__":
    main()

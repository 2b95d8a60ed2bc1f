"""Stage featurize: train the frozen classifier whose feature space every distance is measured in."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--model", required=True, help="featurizer .keras file to write")
    parser.add_argument("--metrics", required=True, help="featurizer metrics JSON to write")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.evaluation import featurizer

    summary = featurizer.run(load_params(args.params).featurize, args.prepared, args.model, args.metrics)
    score = (f"holdout accuracy {summary['holdout_accuracy']:.4f}" if "holdout_accuracy" in summary
             else f"holdout reconstruction MSE {summary['holdout_reconstruction_mse']:.5f}")
    print(f"featurizer {summary['hash']} ({summary['kind']}): {score}", flush=True)


if __name__ == "__main__":
    main()

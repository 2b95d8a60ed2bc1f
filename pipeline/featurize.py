"""Stage featurize: build the frozen feature space every distance is measured in (a trained CNN classifier or
autoencoder, or InceptionV3 with local weights)."""

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
    from ganops.features import featurizer

    summary = featurizer.run(load_params(args.params).featurize, args.prepared, args.model, args.metrics)
    if "validation_accuracy" in summary:
        score = f"validation accuracy {summary['validation_accuracy']:.4f}"
    elif "validation_reconstruction_mse" in summary:
        score = f"validation reconstruction MSE {summary['validation_reconstruction_mse']:.5f}"
    else:  # inception: pretrained, not trained here
        score = f"weights {summary['inception_weights']}"
    print(f"featurize: wrote {args.model}, {args.metrics} ({summary['kind']} {summary['hash']}, {score})", flush=True)


if __name__ == "__main__":
    main()

"""Stage train: fit the GAN, save the EMA generator and loss history, start the pipeline's MLflow run."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--out", required=True, help="model folder (generator, history, run id)")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.training import train

    result = train.run(load_params(args.params).train, args.prepared, args.out)
    print(f"trained {result.steps} steps in {result.seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()

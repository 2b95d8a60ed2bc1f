"""Stage register: log the EMA generator as a pyfunc model in this execution's MLflow record, register it,
set the alias."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", required=True, help="model folder written by train")
    parser.add_argument("--metrics", required=True, help="metrics JSON written by evaluate")
    parser.add_argument("--paired", required=True, help="paired bootstrap evidence JSON written by evaluate")
    parser.add_argument("--out", required=True, help="registered-version JSON to write")
    parser.add_argument("--prepared", required=True,
                        help="prepared data, logged as datasets should the record start here")
    parser.add_argument("--validation", default=None, help="the validate stage's verdict, logged with the datasets")
    args = parser.parse_args()

    from pathlib import Path

    from ganops import lineage
    from ganops.config import load_params
    from ganops.registry import registration

    inputs = lineage.Inputs(prepared=Path(args.prepared), params=Path(args.params),
                            validation=Path(args.validation) if args.validation else None)
    registered = registration.run(load_params(args.params).registry, args.models, args.metrics, args.paired,
                                  args.out, inputs)
    print(f"register: wrote {args.out} ({registered['name']} version {registered['version']} "
          f"@{registered['alias']})", flush=True)


if __name__ == "__main__":
    main()

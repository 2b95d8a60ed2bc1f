"""Stage register: log the EMA generator as a pyfunc model, register it, set the alias."""

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
    args = parser.parse_args()

    from ganops import registry
    from ganops.config import load_params

    registered = registry.run(load_params(args.params).registry, args.models, args.metrics, args.paired, args.out)
    print(f"register: wrote {args.out} ({registered['name']} version {registered['version']} "
          f"@{registered['alias']})", flush=True)


if __name__ == "__main__":
    main()

"""Stage validate: the Great Expectations gate. Exits non-zero, naming the failed check, on bad data."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True, help="prepared data folder")
    parser.add_argument("--out", required=True, help="validation report folder (result, summary, Data Docs)")
    parser.add_argument("--verdict", default=None, help="slim verdict JSON to write (success, counts, failed checks)")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.data import validate

    report = validate.run(args.prepared, load_params(args.params).validation, args.out, args.verdict)
    print(f"validate: wrote {args.out} ({report.passed} of {report.evaluated} checks passed on {report.rows} images)",
          flush=True)


if __name__ == "__main__":
    main()

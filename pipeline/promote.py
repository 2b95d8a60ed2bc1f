"""Stage promote (opt-in): move the champion alias to the candidate when it passes the gate in params.yaml."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--registered", required=True,
                        help="registered-version JSON written by register (read so DVC orders the stages)")
    parser.add_argument("--out", required=True, help="decision JSON to write")
    parser.add_argument("--force", action="store_true", help="move the champion even if the gate says no")
    args = parser.parse_args()

    from ganops import artifacts
    from ganops.config import load_params
    from ganops.registry import promotion

    params = load_params(args.params)
    # The version this pipeline registered: on a shared server someone may have registered a newer one.
    registered = artifacts.read_record(args.registered, artifacts.RegisteredVersion).version
    decision = promotion.promote(params.registry, params.promote, force=args.force, expected_candidate=registered)
    promotion.write_decision(args.out, decision)
    print(f"promote: wrote {args.out} ({decision.line()})", flush=True)


if __name__ == "__main__":
    main()

"""Stage prepare: load the configured image source, split, scale to [-1, 1] and summarise each image."""

import argparse

from ganops.stage import entry_point


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="prepared data folder")
    parser.add_argument("--raw", default=None,
                        help="the DVC-tracked folder of raw images (a note if data.path is elsewhere)")
    args = parser.parse_args()

    from ganops.config import load_params
    from ganops.data import prepare

    info = prepare.run(load_params(args.params).data, args.out, args.raw)
    print(f"prepare: wrote {args.out} ({info.train_count} train + {info.validation_count} validation + "
          f"{info.test_count} test images {info.height}x{info.width}x{info.channels} from {info.source})", flush=True)


if __name__ == "__main__":
    main()

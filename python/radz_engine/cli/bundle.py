"""`radz bundle info [B]`: print a bundle's model card (docs/MODEL_CARD.md) and what it holds.

B is a bundle folder (default: the shipped one). --json prints the card as JSON (with the
content hash). Exit status 2 for a bundle that does not load (the reason names the file and field).
"""

from __future__ import annotations

import json
import sys
import warnings


def build_parser():
    return _parsers()[0]


def build_info_parser():
    """The parser of `radz bundle info` (the CLI tests walk it)."""
    return _parsers()[1]


def _parsers():
    from radz_engine.cli.options import HelpFormatter
    from radz_engine.cli.options import parser as make_parser

    parser = make_parser("radz bundle", __doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser(
        "info",
        help="print the model card of a bundle",
        description=__doc__.split("\n\n")[1],
        formatter_class=HelpFormatter,
    )
    info.add_argument("bundle", nargs="?", default=None, help="bundle folder (default: the shipped default bundle)")
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    info.add_argument("--no-verify", action="store_true", help="skip the SHA-256 and ONNX checks (faster)")
    return parser, info


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from radz_engine.bundle.card import BundleFormatWarning, format_card
    from radz_engine.bundle.loader import load_bundle
    from radz_engine.errors import BundleError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BundleFormatWarning)
            bundle = load_bundle(args.bundle, verify_hashes=not args.no_verify, check_onnx=not args.no_verify)
    except (BundleError, FileNotFoundError) as error:
        print(f"radz bundle info: {error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"radz bundle info: warning: {warning.message}", file=sys.stderr)
    card = bundle.card()
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    print(f"bundle: {bundle.path.resolve()} (format {bundle.manifest['format_version']})")
    print(format_card(card))
    files = bundle.manifest["files"]
    print(f"classes ({len(bundle.class_names)}): {', '.join(bundle.class_names)}")
    print(f"scoring mode: {bundle.scoring_mode}; input {bundle.input_spec['size']}; files: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

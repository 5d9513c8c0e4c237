"""Command line: ``python -m captum_latent demo --out DIR``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m captum_latent")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the HTML demo report")
    demo.add_argument("--out", default="demo-report", help="output directory")
    demo.add_argument("--sections", default=None,
                      help="comma-separated section names (default: all)")
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true",
                      help="the full workloads (every class, full searches: about 20 minutes on "
                      "2 CPU cores once the zoo is trained)")
    size.add_argument("--quick", action="store_true",
                      help="the quick workloads (the default; kept for scripts that pass it)")
    demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("sections", help="list the report sections")
    args = parser.parse_args(argv)

    from captum_latent.report import build_report, discover_sections, registered_sections

    if args.command == "sections":
        for err in discover_sections():
            print(f"warning: {err}", file=sys.stderr)
        for spec in registered_sections():
            print(f"{spec.name:20s} {spec.title}")
        return 0
    names = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else None
    def log(line: str) -> None:
        print(line, flush=True)

    workloads = "full" if args.full else "quick"
    hint = "" if args.full else "; --full runs the full workloads"
    log(f"captum-latent demo report ({workloads} workloads{hint}) -> {args.out}")
    try:
        result = build_report(args.out, sections=names, quick=not args.full, seed=args.seed,
                              log=log)
    except ValueError as e:
        parser.error(str(e))
    for name in result.sections:
        status = "FAILED" if name in result.failed else "ok"
        print(f"  {name:20s} {status:7s} {result.seconds[name]:7.1f} s")
    print(f"report written to {result.path.resolve()}")
    if not result.ok:
        print(f"{len(result.failed)} section(s) failed: {sorted(result.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench.soak [--cycles 300] [--server-cmd CMD] ...`: the chaos soak; prints the
counts and exits 1 if any is not what it must be (see `bench.soak.run.expected`)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from bench.soak.cluster import PgBinariesMissing
from bench.soak.processes import DEFAULT_SERVER_CMD, SERVING_PROFILE_CMD
from bench.soak.run import SoakConfig, expected, judge, run_soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--cycles", type=int, default=300, help="review cycles (threads)")
    parser.add_argument("--reviewers", type=int, default=8)
    parser.add_argument("--servers", type=int, default=2, help="server processes")
    parser.add_argument("--workers", type=int, default=2, help="task workers")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0),
                        metavar=("MIN", "MAX"), help="seconds between worker SIGKILLs")
    parser.add_argument("--server-every", type=float, default=20.0,
                        help="seconds between server restarts")
    parser.add_argument("--pg-at", type=float, default=0.4,
                        help="restart PostgreSQL once this share of the cycles is decided")
    parser.add_argument("--pg-every", type=float, default=None, metavar="SECONDS",
                        help="and again every SECONDS (about) after that (the judged count "
                        "postgres_restarted then exceeds 1; to hunt restart bugs)")
    parser.add_argument("--server-cmd", default=DEFAULT_SERVER_CMD,
                        help="command serving the app on 127.0.0.1:{port} ({python} and {port} "
                        "are filled in), e.g. 'env HTTP_PORT={port} bin/serve-web'")
    parser.add_argument("--serving-profile", action="store_true",
                        help="serve as bin/serve does: uvicorn (bin/serve-web), DEBUG off; "
                        "the same as --server-cmd with SERVING_PROFILE_CMD")
    parser.add_argument("--settle", type=float, default=180.0,
                        help="seconds to wait, after the chaos, for every run to finish")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' logs when the soak passes (kept on failure)")
    args = parser.parse_args(argv)
    if args.serving_profile:
        args.server_cmd = SERVING_PROFILE_CMD
    config = SoakConfig(cycles=args.cycles, reviewers=args.reviewers, servers=args.servers,
                        workers=args.workers, kill_every=tuple(args.kill_every),
                        server_every=args.server_every, server_cmd=args.server_cmd,
                        pg_at=args.pg_at, pg_every=args.pg_every,
                        settle_seconds=args.settle)
    try:
        counts = run_soak(config)
    except PgBinariesMissing as exc:
        print(f"soak not run: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(counts, indent=2))
    failures = judge(counts, config)
    print(f"\nexpected: {json.dumps(expected(config))}")
    if failures:
        print("SOAK FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"SOAK PASSED: {config.cycles} review cycles, every count as expected")
    if not args.keep_logs:
        shutil.rmtree(counts["logs"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

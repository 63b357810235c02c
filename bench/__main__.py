"""Every benchmark, one after the other, each in its own process (so one's memory and
threads do not weigh on the next): `python -m bench [--quick] [names...]`.

Each prints its table and writes its JSON into bench/results/, as when run alone.
`updates` runs the product on SQLite, PostgreSQL and MariaDB; `export` is PostgreSQL's,
`export_mysql` the same on MariaDB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

# name → the module and its arguments
RUNS = {
    "updates": ["bench.updates"],
    "webhook": ["bench.webhook"],
    "export": ["bench.export"],
    "export_mysql": ["bench.export", "--db", "mysql"],
    "admin_pages": ["bench.admin_pages"],
    "polling": ["bench.polling"],
}
ALL = tuple(RUNS)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(ALL)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke size")
    args = parser.parse_args()
    if unknown := set(args.names) - set(ALL):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in args.names or ALL:
        module, *extra = RUNS[name]
        command = [sys.executable, "-m", module, *extra, *(["--quick"] if args.quick else [])]
        print(f"\n=== {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

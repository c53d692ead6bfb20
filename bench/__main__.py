"""Run the benchmarks and print one table: ``python -m bench [--only NAME ...] [--databases KIND ...]``.

Each benchmark runs once per database (SQLite always; PostgreSQL when reachable, see
`harness.postgres_url`). The exit status is 1 when a target was missed, 2 when a
benchmark could not run.
"""

import argparse
import importlib
import logging
import sys
import time
import traceback

from bench import harness

BENCHMARKS = ("ingest", "fleet", "webhook", "propagation")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--databases", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    databases = list(options.databases)
    if "postgresql" in databases and harness.postgres_url() is None:
        print("PostgreSQL is not reachable (BENCH_DATABASE_URL / TEST_DATABASE_URL): measuring on SQLite only")
        databases.remove("postgresql")

    rows, broken = [], []
    for name in options.only:
        module = importlib.import_module(f"bench.{name}")
        for kind in databases:
            started = time.monotonic()
            print(f"-- {name} on {kind} ...", flush=True)
            try:
                measured = module.run(kind)
            except Exception:
                traceback.print_exc()
                broken.append(f"{name} on {kind}")
                continue
            rows.extend(measured)
            print(f"   done in {time.monotonic() - started:.0f} s", flush=True)

    print()
    print(format_table(rows))
    missed = [row for row in rows if row.met is False]
    if broken:
        print(f"\nCould not run: {', '.join(broken)}")
        return 2
    if missed:
        print(f"\n{len(missed)} target(s) missed")
        return 1
    print("\nEvery target met" if any(row.met for row in rows) else "")
    return 0


def format_table(rows):
    header = ("benchmark", "database", "measure", "value", "target", "")
    lines = [header] + [
        (
            row.benchmark,
            row.database,
            row.measure,
            _value(row.value, row.unit),
            row.target,
            {True: "met", False: "MISSED", None: ""}[row.met],
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = []
    for number, line in enumerate(lines):
        rendered.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if number == 0:
            rendered.append("  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def _value(value, unit):
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


if __name__ == "__main__":
    sys.exit(main())

"""CSV import: rows/s and peak memory of `leadbridge import` on a generated file (default a
million rows, with duplicates and bad rows), beside a baseline measured in the same run:
parsing the same file and inserting its emails with sqlite3's executemany, 1,000 a commit.

Usage: python benchmarks/import_csv.py [--rows 1000000]"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, clean_env, machine

BASELINE = """
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("PRAGMA journal_mode=wal")
db.execute("CREATE TABLE lead (id INTEGER PRIMARY KEY, email TEXT UNIQUE, first_name TEXT,"
           " company TEXT, country TEXT)")
with open(sys.argv[1], newline="") as f:
    rows = csv.reader(f)
    next(rows)
    batch = []
    for row in rows:
        if len(row) == 4:
            batch.append((row[0].strip().lower(), row[1], row[2], row[3]))
        if len(batch) == 1000:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO lead (email, first_name, company, country)"
                           " VALUES (?, ?, ?, ?)", batch)
            db.execute("COMMIT")
            batch = []
    db.executemany("INSERT OR IGNORE INTO lead (email, first_name, company, country)"
                   " VALUES (?, ?, ?, ?)", batch)
"""


def generate(path: Path, total: int) -> None:
    """Every 10th row repeats an earlier email, every 50th is a bad email, every 250th has a
    wrong column count (the same mix as the test suite)."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["E-mail", "First Name", "Company", "Country"])
        for i in range(total):
            if i % 250 == 249:
                writer.writerow(["short@example.com"])
            elif i % 50 == 49:
                writer.writerow([f"broken{i}@@example.com", "X", "Y", "Z"])
            elif i % 10 == 9:
                writer.writerow([f"PERSON{i - 5}@Example{(i - 5) % 500}.com ", "", "Later Co",
                                 "DE"])
            else:
                writer.writerow([f"person{i}@example{i % 500}.com", f"Name{i}",
                                 f"Company {i % 97}", "GB"])


def timed(command: list[str], env=None) -> tuple[float, float, str]:
    """Seconds, peak RSS in MiB of the child, its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        file = data / "leads.csv"
        generate(file, rows)
        size = file.stat().st_size / 2**20
        print(f"file: {rows:,} rows, {size:.0f} MiB")
        base_s, base_mem, _ = timed([sys.executable, "-c", BASELINE, str(file),
                                     str(data / "baseline.db")])
        env = clean_env(LEADBRIDGE_DATA_DIR=data / "var", LEADBRIDGE_LOGGING__LEVEL="WARNING")
        subprocess.run([sys.executable, "-m", "service.ops.cli", "init-db"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        ours_s, ours_mem, report = timed([sys.executable, "-m", "service.ops.cli", "import",
                                          str(file)], env)
    print(f"leadbridge import: {report}")
    print(f"{'':28} {'seconds':>8} {'rows/s':>9} {'peak MiB':>9}")
    print(f"{'baseline (sqlite3 only)':28} {base_s:8.1f} {rows / base_s:9.0f} {base_mem:9.0f}")
    print(f"{'leadbridge import':28} {ours_s:8.1f} {rows / ours_s:9.0f} {ours_mem:9.0f}")
    print(f"ratio to baseline: {base_s / ours_s:.2f} of its speed")


if __name__ == "__main__":
    main()

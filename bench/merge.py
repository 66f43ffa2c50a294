"""Benchmark: ``csv-merger merge`` against a naive pandas merge, side by side.

Generates FILES files x ROWS rows x 20 columns (five header conventions:
Title Case, snake_case, Apollo-style, camelCase, ALL CAPS; 10% of each
file's rows are people of the previous file again, with the e-mail's case
changed; one row in 1,000 holds two addresses in one cell), then runs, each
in its own child process:

- ``csv-merger merge`` (the real CLI), and
- the naive baseline: pandas ``read_csv(dtype=str, keep_default_na=False)``
  per file, e-mail column renamed to ``email``, ``concat``,
  ``drop_duplicates(subset="email")``, ``to_csv``.

Prints wall time (s), CPU time (user + system s of the run and its worker
processes: on a shared machine the fairer figure), rows/s (by wall time) and
peak RSS (MiB, summed over the run's processes) for both. Target (issue 2): 1,000,000 rows in <= 20 s,
peak RSS <= 2.5 GB. Usage: ``python bench/merge.py [--rows 200000] [--files 5]``
(use ``--rows 20000`` while iterating on a shared machine).
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADERS = [
    # first, last, email, phone, company, website, title, linkedin, city, country, industry, employees
    ["First Name", "Last Name", "Email", "Phone", "Company", "Website", "Job Title", "LinkedIn URL",
     "City", "Country", "Industry", "Employees"],
    ["first_name", "last_name", "email", "phone_number", "company_name", "website", "job_title",
     "linkedin_url", "city", "country", "industry", "employee_count"],
    ["First Name", "Last Name", "Email", "Corporate Phone", "Company", "Website", "Title",
     "Person Linkedin Url", "City", "Country", "Industry", "# Employees"],
    ["firstName", "lastName", "emailAddress", "phoneNumber", "companyName", "companyWebsite", "jobTitle",
     "linkedinUrl", "city", "country", "industry", "employeeCount"],
    ["FIRSTNAME", "LASTNAME", "EMAIL", "PHONE", "COMPANY", "WEBSITE", "JOBTITLE", "LINKEDIN",
     "CITY", "COUNTRY", "INDUSTRY", "EMPLOYEES"],
]
EXTRA = ["Lead Status", "Owner", "Created At", "Tags", "Score", "Zip", "Notes", "Campaign"]
FIRST = ["Ann", "Bob", "Carla", "Dev", "Erin", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Mo", "Nia"]
LAST = ["Lee", "McDonald", "Okafor", "Smith", "van Dijk", "Garcia", "Nakamura", "O'Brien", "Singh", "Kowalski"]
TITLES = ["CTO", "VP of Sales", "Head of Growth", "May 2021 Intern", "Account Executive", "Founder"]
INDUSTRIES = ["Software", "Retail", "Finance", "Health Care", "Logistics"]


def person(pid: int) -> list[str]:
    """The 20 cells of person ``pid`` (deterministic)."""
    first, last = FIRST[pid % len(FIRST)], LAST[(pid // 7) % len(LAST)]
    company = pid // 10  # ten colleagues with ten different first names: no false name+domain match
    slug = f"{first}.{last.replace(' ', '').replace(chr(39), '')}{pid}".lower()
    domain = "gmail.com" if pid % 9 == 0 else f"company{company}.com"
    email = f"{slug}@{domain}"  # the pid makes every person's address and LinkedIn unique
    if pid % 1000 == 1:
        email += f"; {slug}@outlook.com"
    return [first, last, email, f"+1-555-{pid % 1000:03d}-{pid % 10000:04d}", f"Company {company} Inc",
            f"https://www.company{company}.com/about", TITLES[pid % len(TITLES)],
            f"https://www.linkedin.com/in/{slug}-{pid}", "Springfield", "US", INDUSTRIES[pid % 5],
            str(10 + company % 990),
            ["New", "Contacted", "Won"][pid % 3], "Dana", "2024-05-01", "a, b", str(pid % 100),
            f"{pid % 100000:05d}", f"note {pid}", f"C{pid % 12}"]


def generate(folder: Path, files: int, rows: int) -> list[Path]:
    """Write the input files (reused when already there); return their paths."""
    paths = []
    for f in range(files):
        path = folder / f"leads_{f + 1}.csv"
        paths.append(path)
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(HEADERS[f % len(HEADERS)] + EXTRA)
            for i in range(rows):
                if f > 0 and i % 10 == 0:  # 10%: a person of the previous file, e-mail case changed
                    cells = person((f - 1) * rows + i + 1)
                    cells[2] = cells[2].upper()
                else:
                    cells = person(f * rows + i)
                writer.writerow(cells)
        tmp.rename(path)
    return paths


BASELINE = """
import sys, pandas as pd
paths, out = sys.argv[1:-1], sys.argv[-1]
frames = []
for p in paths:
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    email = [c for c in df.columns if "mail" in c.lower()][0]
    frames.append(df.rename(columns={email: "email"}))
merged = pd.concat(frames, ignore_index=True).drop_duplicates(subset="email")
merged.to_csv(out, index=False)
print(len(merged))
"""


def run(argv: list[str]) -> tuple[float, float, float, str]:
    """Run a child; return (wall s, CPU s, peak RSS MiB, stdout). Exits on failure.

    Peak RSS: the largest sum of RSS over the child and its own children
    (worker processes), sampled every 50 ms with psutil. CPU s: user + system
    time of the child and the children it waited for (``RUSAGE_CHILDREN`` delta).
    """
    import psutil

    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        except psutil.Error:
            pass  # a worker ended between listing and reading it
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {err.strip()[-2000:]}")
    return wall, _children_cpu() - cpu_before, peak / 2**20, out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per file")
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "csv-merger-bench")
    args = parser.parse_args()
    folder = args.dir / f"{args.files}x{args.rows}"
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    paths = generate(folder, args.files, args.rows)
    total = args.files * args.rows
    print(f"inputs: {args.files} files x {args.rows:,} rows x 20 columns in {folder} "
          f"({sum(p.stat().st_size for p in paths) / 2**20:.0f} MiB, ready in {time.perf_counter() - t:.1f} s)")

    cli = [sys.executable, "-m", "csv_merger", "merge", *map(str, paths), "-o", str(folder / "merged.csv"),
           "--report", str(folder / "report.json"), "--quiet"]
    ours = run(cli)
    ours_rows = count_rows(folder / "merged.csv")
    base = run([sys.executable, "-c", BASELINE, *map(str, paths), str(folder / "naive.csv")])

    print(f"{'':24}{'wall s':>9}{'CPU s':>8}{'rows/s':>11}{'peak RSS MiB':>14}{'rows out':>11}")
    for name, (wall, cpu, rss, out), rows_out in (("csv-merger merge", ours, ours_rows),
                                                  ("pandas concat+dedupe", base, int(base[3].strip() or 0))):
        print(f"{name:24}{wall:9.1f}{cpu:8.1f}{total / wall:11,.0f}{rss:14,.0f}{rows_out:11,}")
    print("expected records: about", f"{total - (args.files - 1) * args.rows // 10:,}",
          "(the naive run misses the case-changed duplicates and splits nothing)")


if __name__ == "__main__":
    main()

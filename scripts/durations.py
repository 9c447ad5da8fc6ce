#!/usr/bin/env python3
"""Per-test durations from nextest's JUnit report, slowest first.

    scripts/durations.py [JUNIT_XML] [--top N] [--summary]

Prints the N slowest tests (default 25) with their outcome, then the count,
the sum of all test times and the run's wall time as nextest recorded it.
Reads target/nextest/ci/junit.xml by default (`[profile.ci.junit]` in
.config/nextest.toml). Exits 0 even when tests failed: scripts/test.sh
decides the exit status; a missing or unreadable report is reported and
exits 1. --summary prints only the closing line, "tests: N passed,
N failed, N skipped", which scripts/test.sh puts last.
"""

import sys
import xml.etree.ElementTree as ET


def main(argv):
    path = "target/nextest/ci/junit.xml"
    top = 25
    summary = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--top" and args:
            top = int(args.pop(0))
        elif a == "--summary":
            summary = True
        else:
            path = a
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"durations: cannot read {path}: {e}", file=sys.stderr)
        return 1
    rows = []
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            try:
                secs = float(case.get("time") or 0)
            except ValueError:
                secs = 0.0
            if case.find("failure") is not None or case.find("error") is not None:
                outcome = "FAIL"
            elif case.find("skipped") is not None:
                outcome = "skip"
            else:
                outcome = "pass"
            # nextest: classname is the binary id (crate or crate::binary).
            rows.append((secs, outcome, f"{case.get('classname', suite.get('name', ''))} {case.get('name', '')}"))
    if summary:
        n = {o: sum(1 for r in rows if r[1] == o) for o in ("pass", "FAIL", "skip")}
        print(f"tests: {n['pass']} passed, {n['FAIL']} failed, {n['skip']} skipped")
        return 0
    rows.sort(key=lambda r: r[0], reverse=True)
    total = sum(r[0] for r in rows)
    failed = sum(1 for r in rows if r[1] == "FAIL")
    shown = rows[:top]
    print(f"\nPer-test durations ({len(shown)} slowest of {len(rows)}):")
    print(f"{'seconds':>9}  {'result':<6} test")
    for secs, outcome, name in shown:
        print(f"{secs:9.1f}  {outcome:<6} {name}")
    wall = root.get("time")
    wall_txt = f"; run wall time {float(wall):.1f} s" if wall else ""
    print(f"{total:9.1f}  total  {len(rows)} tests, {failed} failed (sum of test times{wall_txt})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

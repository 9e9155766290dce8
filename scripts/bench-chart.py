#!/usr/bin/env python3
"""Draws handshakes per second per configuration from BENCHMARKS.md's tables into a PNG.

Reads every table with a "handshakes/s" column (the in-process benchmark at 1 and 2 threads,
the Redis and nginx sections when present) and plots each row's median as one bar, grouped by
section. Usage: scripts/bench-chart.py BENCHMARKS.md OUT.png
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def tables(text):
    """Yields (section title, [(label, value)]) for each table with a handshakes/s column."""
    section = ""
    subtitle = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section, subtitle = line.lstrip("# ").strip(), ""
        elif re.match(r"^(TLS|\d+ thread|Two threads)", line) or "thread(s)" in line:
            m = re.search(r"(\d+) thread\(s\)", line)
            if m:
                subtitle = f"{m.group(1)} thread{'s' if m.group(1) != '1' else ''}"
        header = [c.strip() for c in line.strip("|").split("|")]
        per_row = line.startswith("|") and "handshakes/s" in line
        # nginx: one row per protocol, one column per server (ratio columns have a "/").
        per_column = line.startswith("|") and header[0] == "protocol" and "handshakes" in section
        if per_row or per_column:
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip("|").split("|")]
                if per_row:
                    col = next(k for k, c in enumerate(header) if "handshakes/s" in c)
                    picks = [(cells[0], cells[col])]
                else:
                    picks = [(f"{cells[0]} {h}", cells[k]) for k, h in enumerate(header)
                             if k > 0 and "/" not in h and k < len(cells)]
                for label, cell in picks:
                    num = re.match(r"[\d.]+", cell.replace(",", ""))
                    if num:
                        rows.append((label, float(num.group(0))))
                i += 1
            if rows:
                title = section.split(":")[0].replace(
                    "Resumed TLS 1.2 handshakes per second", "in process, TLS 1.2")
                yield (f"{title}, {subtitle}" if subtitle else title), rows
            continue
        i += 1


def main():
    src, out = sys.argv[1], sys.argv[2]
    groups = list(tables(open(src).read()))
    if not groups:
        sys.exit("bench-chart: no handshakes/s table in " + src)
    labels, values, colors = [], [], []
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, (title, rows) in enumerate(groups):
        for label, value in rows:
            labels.append(f"{title}: {label}")
            values.append(value)
            colors.append(palette[g % len(palette)])
    height = 0.32 * len(labels) + 1.2
    fig, ax = plt.subplots(figsize=(10, height))
    y = range(len(labels))[::-1]
    ax.barh(list(y), values, color=colors)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    for yy, v in zip(y, values):
        ax.text(v, yy, f" {v:,.0f}", va="center", fontsize=7)
    ax.set_xlabel("handshakes per second (median; higher is better)")
    ax.set_title("Handshakes per second per configuration (BENCHMARKS.md)")
    ax.margins(x=0.12)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"bench-chart: {len(labels)} bars from {len(groups)} tables -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

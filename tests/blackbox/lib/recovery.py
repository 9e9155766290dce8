"""Reads an alternate.py log and the fault window; prints `key=value` figures: total, failed,
before (resumed % before the fault), during (resumed % during it), recovered_ms (from the end
of the fault to the first connection from which the next second resumed at least 90% as
often as before the fault; -1 if never), after (resumed % in that second).
Usage: recovery.py LOG FAULT_START FAULT_END"""
import sys

log, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = []
for line in open(log):
    t, _, ok, how = line.split()
    rows.append((float(t), ok == "ok", how == "resumed"))
rows.sort()


def pct(rs):
    return round(100 * sum(r[2] for r in rs) / len(rs)) if rs else -1


# The first connections of each client are full handshakes: skip the first 0.3 s.
before = pct([r for r in rows if rows[0][0] + 0.3 < r[0] < start])
during = pct([r for r in rows if start + 0.3 <= r[0] < end])
recovered, after = -1, -1
for t, _, _ in (r for r in rows if r[0] >= end):
    second = [r for r in rows if t <= r[0] < t + 1]
    if len(second) >= 20 and second[-1][0] > t + 0.8 and pct(second) >= 0.9 * before:
        recovered, after = int(1000 * (t - end)), pct(second)
        break
# Resumed % per 500 ms from the end of the fault, to see the shape of the recovery.
shape = []
t = end
while t < rows[-1][0]:
    shape.append(str(pct([r for r in rows if t <= r[0] < t + 0.5])))
    t += 0.5
print(f"total={len(rows)} failed={sum(not r[1] for r in rows)} before={before} "
      f"during={during} recovered_ms={recovered} after={after} per_500ms_after=[{','.join(shape)}]")

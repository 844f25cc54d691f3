"""Markdown tables for each section, from the results' JSON values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Cell = str
Figure = dict[str, Any]


def spread(figure: Figure, digits: int = 3, scale: float = 1.0) -> Cell:
    """Return ``median [min–max]`` for a summarized figure."""
    median, low, high = (
        figure[key] * scale for key in ("median", "low", "high")
    )
    if low == high:
        return _number(median, digits)
    return (
        f"{_number(median, digits)} "
        f"[{_number(low, digits)}–{_number(high, digits)}]"
    )


def _number(value: float, digits: int) -> str:
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Return a Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def warm_read(section: dict[str, Any]) -> str:
    """Return section 1's table."""
    rows = [
        [
            row["candidate"],
            spread(row["ns_per_read"]),
            spread(row["versus_rotsafe"]),
        ]
        for row in section["rows"]
    ]
    return (
        f"Nanoseconds per warm read, {section['rounds']} rounds; "
        f"Secrets Manager calls while timing: "
        f"{section['api_calls_while_timing']}.\n\n"
        + table(["candidate", "ns per read", "× rotsafe"], rows)
    )


def connect(sections: list[dict[str, Any]]) -> str:
    """Return section 2's table, both databases in one."""
    rows = []
    for section in sections:
        for row in section["rows"]:
            rows.append(
                [
                    section["database"],
                    row["way"],
                    spread(row["ms_per_connection"]),
                    spread(row["versus_bare"]),
                    spread(row["versus_engine"])
                    if "versus_engine" in row
                    else "",
                ]
            )
    first = sections[0]
    own = " ".join(
        f"On {section['database']}, rotsafe.creator's own work, measured "
        f"with the driver's connect() stubbed out, takes "
        f"{spread(section['creator_own_us'])} µs per connection: "
        f"{section['creator_own_share']:.3%} of a bare connection."
        for section in sections
    )
    return (
        f"Milliseconds to open and close a new connection: per round the "
        f"median of {first['connections_per_round']} per way, the ways "
        f"taking turns; {first['rounds']} rounds.\n\n"
        + table(
            [
                "database",
                "way",
                "ms per connection",
                "× bare driver",
                "× same engine without rotsafe",
            ],
            rows,
        )
        + f"\n\n{own}"
    )


_RUN_HEADERS = [
    "operations",
    "failed",
    "slowest ms",
    "p99 ms",
    "API calls",
    "peak calls/s",
]


def _run_cells(row: dict[str, Any]) -> list[Cell]:
    return [
        spread(row["operations"]),
        spread(row["failed"]),
        spread(row["slowest_ms"]),
        spread(row["p99_ms"]),
        spread(row["api_calls"]),
        spread(row["peak_calls_per_second"]),
    ]


def rotation(section: dict[str, Any]) -> str:
    """Return section 3's table."""
    rows = [
        [
            f"{row['window_s']:g} s",
            row["strategy"],
            str(row["rotations"]),
            *_run_cells(row),
        ]
        for row in section["rows"]
    ]
    return (
        f"{section['database']}, {section['threads']} threads, a new "
        f"connection per operation, {section['pause_s'] * 1e3:g} ms "
        f"between operations; load from {section['lead_s']:g} s before "
        f"the rotation to {section['tail_s']:g} s after finishSecret. API "
        f"calls are those made while the load ran. The first row of each "
        f"window is the control: the same load for as long, through no "
        f"rotation, so its slowest operation and p99 are the machine's "
        f"own.\n\n"
        + table(["window", "strategy", "rotations", *_RUN_HEADERS], rows)
    )


def herd(section: dict[str, Any]) -> str:
    """Return section 4's table."""
    rows = [
        [
            row["strategy"],
            str(row["herds"]),
            spread(row["succeeded"]),
            spread(row["failed"]),
            spread(row["slowest_ms"]),
            spread(row["api_calls"]),
        ]
        for row in section["rows"]
    ]
    return (
        f"{section['database']}, {section['threads']} threads released by "
        f"a barrier into a held-open rotation window.\n\n"
        + table(
            [
                "strategy",
                "herds",
                "succeeded",
                "failed",
                "slowest ms",
                "API calls",
            ],
            rows,
        )
    )


def scaling(threads: dict[str, Any], fleet: dict[str, Any]) -> str:
    """Return section 5's two tables: threads, then fleets."""
    thread_rows = [
        [
            str(row["threads"]),
            row["strategy"],
            str(row["rotations"]),
            *_run_cells(row),
        ]
        for row in threads["rows"]
    ]
    fleet_rows = [
        [
            f"{row['processes']:,}",
            row["strategy"],
            _number(row["steady_calls_per_hour"], 3),
            _number(row["rotation_hour_calls"], 3),
            _number(row["peak_calls_per_second"], 3),
            f"{row['share_of_quota']:.2%}",
        ]
        for row in fleet["rows"]
    ]
    return (
        f"**Threads**, through a {threads['window_s']:g} s window:\n\n"
        + table(
            ["threads", "strategy", "rotations", *_RUN_HEADERS], thread_rows
        )
        + f"\n\n**Fleet**, at a TTL (refresh interval) of {fleet['ttl_s']} s, "
        f"from one process's measured calls: steady state simulated on a "
        f"manual clock, rotations from the {fleet['window_s']:g} s window "
        f"with {fleet['threads_per_process']} threads; "
        f"{fleet['assumption']}. Quota: {fleet['quota_per_second']:,} "
        f"GetSecretValue and DescribeSecret calls per second combined, per "
        f"account and Region ({fleet['quota_source']}).\n\n"
        + table(
            [
                "processes",
                "strategy",
                "calls/hour, steady",
                "calls in an hour with a rotation",
                "peak calls/s in the rotation",
                "peak / quota",
            ],
            fleet_rows,
        )
    )


def targets(rows: list[dict[str, Any]]) -> str:
    """Return the targets, what was measured, and whether each was met."""
    return table(
        ["target", "measured", "met"],
        [
            [row["target"], row["measured"], "yes" if row["met"] else "**no**"]
            for row in rows
        ],
    )


SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    ("warm_read", "1. Warm read", lambda r: warm_read(r["warm_read"])),
    ("connect", "2. Connect overhead", lambda r: connect(r["connect"])),
    ("rotation", "3. The rotation window", lambda r: rotation(r["rotation"])),
    ("herd", "4. Thundering herd", lambda r: herd(r["herd"])),
    (
        "scaling",
        "5. Scaling",
        lambda r: scaling(r["scaling"]["threads"], r["scaling"]["fleet"]),
    ),
]


def render(results: dict[str, Any]) -> str:
    """Return the whole report as Markdown."""
    meta = results["meta"]
    parts = [
        f"Made {meta['date']} by `{meta['command']}` in "
        f"{meta['wall_seconds']:.0f} s on {meta['machine']}; "
        f"{meta['python']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after. Figures are medians "
        f"[min–max] over repeated runs; every ratio was measured within "
        f"this run.",
        f"Versions: {meta['versions']}.",
    ]
    for key, title, render_section in SECTIONS:
        if key in results:
            parts.append(f"### {title}\n\n{render_section(results)}")
    parts.append(f"### Targets\n\n{targets(results['targets'])}")
    return "\n\n".join(parts) + "\n"

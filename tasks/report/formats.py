"""How figures are shown everywhere (CLI, artifacts, report.html): n/a where nothing was measured, never 0."""

from __future__ import annotations


def fmt_rate(value: float | None) -> str:
    """A 0-1 rate as a percentage, n/a when absent."""
    return "n/a" if value is None else f"{value * 100:.1f}%"


def fmt_num(value: float | None, digits: int = 3) -> str:
    """A number with fixed decimals, n/a when absent."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds as ms or seconds, n/a when absent."""
    if value is None:
        return "n/a"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def fmt_count(value: object) -> str:
    """A count, n/a when absent."""
    return "n/a" if value is None else str(value)


def fmt_delta(key: str, delta: float | None) -> str:
    """The change of a figure between two runs: ms for latencies, percentage points for rates, n/a when absent."""
    if delta is None:
        return "n/a"
    return f"{delta:+.0f} ms" if key.startswith("latency") else f"{delta * 100:+.1f} pt"

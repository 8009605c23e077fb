def summary_lines(summary: dict) -> list[str]:
    """A section's ``{"measured", "targets", "met"}`` summary as table lines."""
    lines = [f"  {key}: {value}" for key, value in summary["measured"].items()]
    for key, ok in summary["met"].items():
        lines.append(f"  target {key} {summary['targets'][key]}: {'met' if ok else 'NOT met'}")
    return lines

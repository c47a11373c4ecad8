"""What the quality benchmarks share: write the report as JSON and a markdown table, then print it.

Used by ``quality_digits.py`` and ``quality_cifar10.py`` (not a benchmark itself).
"""

from __future__ import annotations

from pathlib import Path

from podd.demo import format_table
from podd.io import write_json, write_text


def write_report(report: dict, out: Path, verdict: str, note: str = "") -> tuple[Path, Path]:
    """``out``.json (the whole report) and ``out``.md (table, verdict, command, commit, device,
    wall time and ``note``); prints the table and the verdict. Returns both paths."""
    out = Path(out)
    write_json(out.with_suffix(".json"), report)
    table = format_table(report)
    prov = report["provenance"]
    write_text(out.with_suffix(".md"), f"{table}\n\n{verdict}\n\n{note}Command: "
                                       f"`{prov['command']}`, commit `{prov['git_commit']}`, "
                                       f"device {prov['device']}, {prov['wall_time_s']} s.\n")
    print(table)
    print(verdict)
    return out.with_suffix(".json"), out.with_suffix(".md")

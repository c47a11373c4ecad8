"""What the quality benchmarks share: write the report as JSON and a markdown table, then print it.

Used by ``quality_digits.py`` and ``quality_cifar10.py`` (not a benchmark itself).
"""

from __future__ import annotations

from pathlib import Path

from podd.experiments import format_table
from podd.io import write_json, write_text

REPORT_EXTENSIONS = (".json", ".md")


def report_path(out, extension: str) -> Path:
    """``out`` with ``extension`` appended: ``--out`` names a report without its extension.

    Appended, not swapped in with ``Path.with_suffix``, which takes a dot in the name for an
    extension (``runs/podd-0.5`` would become ``runs/podd-0.json``); an ``out`` that already
    ends in one of :data:`REPORT_EXTENSIONS` has it replaced.
    """
    out = Path(out)
    if out.suffix in REPORT_EXTENSIONS:
        out = out.with_suffix("")
    return out.with_name(out.name + extension)


def write_report(report: dict, out: Path, verdict: str, note: str = "") -> tuple[Path, Path]:
    """``out``.json (the whole report) and ``out``.md (table, verdict, command, commit, device,
    wall time and ``note``); prints the table and the verdict. Returns both paths."""
    json_path, md_path = report_path(out, ".json"), report_path(out, ".md")
    write_json(json_path, report)
    table = format_table(report)
    prov = report["provenance"]
    write_text(
        md_path,
        f"{table}\n\n{verdict}\n\n{note}Command: `{prov['command']}`, commit "
        f"`{prov['git_commit']}`, device {prov['device']}, "
        f"{prov['wall_time_s']} s.\n",
    )
    print(table)
    print(verdict)
    return json_path, md_path

"""The README's result tables (and those of the CIFAR-10 subset log and of the benchmarks' log)
are the benchmarks' written tables, not numbers typed by hand.

Every table row of a committed results file (and every verdict line, where the README quotes
them) must appear, unchanged, between the README's markers for it; so rerunning a benchmark
without updating the README (or editing a number in the README) fails here.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# section marker -> (results file, whether the README quotes its verdict lines too)
SECTIONS = {
    "cifar10-subset": ("benchmarks/results/quality_cifar10.md", True),
    "cifar10-subset-width64": ("benchmarks/results/quality_cifar10_width64.md", True),
    "cifar10-subset-width64-steps300": ("benchmarks/results/quality_cifar10_width64_steps300.md", True),
    "cifar10-subset-width64-steps300-ipc05": ("benchmarks/results/quality_cifar10_width64_steps300_ipc05.md", True),
    "cifar10-subset-width64-steps300-ipc03": ("benchmarks/results/quality_cifar10_width64_steps300_ipc03.md", True),
    "cifar10-subset-width64-steps300-ipc05-learned": (
        "benchmarks/results/quality_cifar10_width64_steps300_ipc05_learned.md",
        True,
    ),
    "cifar10-subset-width64-steps600": ("benchmarks/results/quality_cifar10_width64_steps600.md", True),
    "cifar10-subset-width64-steps900": ("benchmarks/results/quality_cifar10_width64_steps900.md", True),
    "cifar10-subset-width64-steps900-eval": (
        "benchmarks/results/quality_cifar10_width64_steps900_eval_steps.md",
        False,
    ),
    "cifar10-subset-gpu-steps1500": ("benchmarks/results/cuda_h200/quality_cifar10_gpu_width64_steps1500.md", True),
    "digits-table": ("benchmarks/results/quality_digits.md", False),
    "cifar10-quick": ("benchmarks/results/quality_cifar10_quick.md", True),
}
# Sections that quote a second results file too (marker -> its results file, verdicts too?).
MORE = {"cifar10-subset-gpu-steps1500": ("benchmarks/results/cuda_h200/quality_cifar10_gpu_width64_steps500.md", True)}

# The log of earlier CIFAR-10 subset runs lives beside their results; the README quotes the rest.
LOG = "benchmarks/results/cifar10_subset_log.md"
# The log of speed and memory measurements (moved out of benchmarks/README.md, which now only
# lists the harnesses) holds the GPU session's and the engines' tables.
BENCH_LOG = "benchmarks/results/LOG.md"
QUOTED_IN = {
    **{name: LOG for name in [*SECTIONS, *MORE] if name.startswith("cifar10-subset")},
    "cuda-h200": BENCH_LOG,
    "bench-engine": BENCH_LOG,
}
# Every file that quotes results between markers; a marker must be in the one QUOTED_IN names.
QUOTING = ["README.md", "benchmarks/README.md", LOG, BENCH_LOG]


def readme_section(name: str, readme: str | None = None) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``readme``
    (default: the file that QUOTED_IN says holds it, else README.md)."""
    readme = readme or QUOTED_IN.get(name, "README.md")
    text = (ROOT / readme).read_text()
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"{readme} has no <!-- {name}:start/end --> markers"
    return match.group(1)


def test_each_marker_is_where_quoted_in_says():
    """A quoted block lives in one file, the one the tests read it from (no stale copy)."""
    where = {}
    for path in QUOTING:
        for name in re.findall(r"^<!-- ([\w-]+):start -->", (ROOT / path).read_text(), re.M):
            where.setdefault(name, []).append(path)
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
    assert {name: paths[0] for name, paths in where.items() if paths[0] != QUOTED_IN.get(name, "README.md")} == {}


def test_the_benchmarks_log_shows_the_gpu_tables():
    """The benchmarks' log quotes the GPU session's written tables unchanged."""
    lines = result_lines(ROOT / "benchmarks/results/cuda_h200/bench_cuda.md", verdicts=False)
    assert len(lines) >= 20
    shown = readme_section("cuda-h200").splitlines()
    assert [line for line in lines if line not in shown] == []


def test_the_engine_tables_are_the_benchmarks():
    """README.md and the benchmarks' log quote bench_engine.md's table rows unchanged."""
    lines = result_lines(ROOT / "benchmarks/results/bench_engine_cpu/bench_engine.md", verdicts=False)
    assert len(lines) >= 10
    shown = readme_section("bench-engine").splitlines()
    assert [line for line in lines if line not in shown] == []
    quick = [
        line
        for line in lines  # the quick step's rows: the ones with a speed-up
        if re.match(r"\| \d+ \| (eager|compiled)", line) and "×" in line
    ]
    assert quick and [line for line in quick if line not in readme_section("engine-cpu").splitlines()] == []


def test_the_benchmarks_readme_has_an_entry_for_every_harness():
    """benchmarks/README.md names every script in benchmarks/ as an entry (``**`name`**``)."""
    text = (ROOT / "benchmarks/README.md").read_text()
    scripts = sorted(p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh"))
    assert len(scripts) >= 10
    assert [name for name in scripts if f"**`{name}`**" not in text] == []


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["benchmarks/README.md", BENCH_LOG])
def test_the_benchmarks_pages_link_to_what_exists(page):
    """Every relative link of the benchmarks' pages reaches a file, and its #anchor a heading."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", (ROOT / page).read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ((ROOT / page).parent / path).resolve() if path else ROOT / page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#{1,6} (.+)$", file.read_text(), re.M)
            if anchor not in {github_anchor(h) for h in headings}:
                broken.append(target)
    assert broken == []


def result_lines(path: Path, verdicts: bool = True) -> list[str]:
    """The table rows (``| … |``) and, with ``verdicts``, the verdict lines (``- …``) of a
    results file."""
    return [
        line for line in path.read_text().splitlines() if line.startswith("| ") or (verdicts and line.startswith("- "))
    ]


@pytest.mark.parametrize(
    "section, source", [(name, SECTIONS) for name in sorted(SECTIONS)] + [(name, MORE) for name in sorted(MORE)]
)
def test_the_readme_shows_the_written_results(section, source):
    results, verdicts = source[section]
    lines = result_lines(ROOT / results, verdicts)
    assert len(lines) >= 4, f"{results} has no table"
    quoted_in = QUOTED_IN.get(section, "README.md")
    shown = readme_section(section).splitlines()
    missing = [line for line in lines if line not in shown]
    assert not missing, f"{quoted_in} ({section}) differs from {results}: {missing}"


def test_a_changed_number_is_caught(tmp_path):
    written = tmp_path / "r.md"
    written.write_text("| method | accuracy |\n|---|---|\n| PoDD | 30.2 ± 2.1 |\n- target: met\n")
    shown = "| method | accuracy |\n|---|---|\n| PoDD | 30.3 ± 2.1 |\n- target: met\n".splitlines()
    assert [line for line in result_lines(written) if line not in shown] == ["| PoDD | 30.2 ± 2.1 |"]

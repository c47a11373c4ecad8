"""The README's result tables (and those of the CIFAR-10 subset log) are the benchmarks' written
tables, not numbers typed by hand.

Every table row of a committed results file (and every verdict line, where the README quotes
them) must appear, unchanged, between the README's markers for it; so rerunning a benchmark
without updating the README (or editing a number in the README) fails here.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# section marker -> (results file, whether the README quotes its verdict lines too)
SECTIONS = {"cifar10-subset": ("benchmarks/results/quality_cifar10.md", True),
            "cifar10-subset-width64": ("benchmarks/results/quality_cifar10_width64.md", True),
            "cifar10-subset-width64-steps300": (
                "benchmarks/results/quality_cifar10_width64_steps300.md", True),
            "cifar10-subset-width64-steps300-ipc05": (
                "benchmarks/results/quality_cifar10_width64_steps300_ipc05.md", True),
            "cifar10-subset-width64-steps300-ipc03": (
                "benchmarks/results/quality_cifar10_width64_steps300_ipc03.md", True),
            "cifar10-subset-width64-steps300-ipc05-learned": (
                "benchmarks/results/quality_cifar10_width64_steps300_ipc05_learned.md", True),
            "cifar10-subset-width64-steps600": (
                "benchmarks/results/quality_cifar10_width64_steps600.md", True),
            "cifar10-subset-width64-steps900": (
                "benchmarks/results/quality_cifar10_width64_steps900.md", True),
            "cifar10-subset-width64-steps900-eval": (
                "benchmarks/results/quality_cifar10_width64_steps900_eval_steps.md", False),
            "cifar10-subset-gpu-steps1500": (
                "benchmarks/results/cuda_h200/quality_cifar10_gpu_width64_steps1500.md", True),
            "digits-table": ("benchmarks/results/quality_digits.md", False),
            "cifar10-quick": ("benchmarks/results/quality_cifar10_width64.md", True)}
# Sections that quote a second results file too (marker -> its results file, verdicts too?).
MORE = {"cifar10-subset-gpu-steps1500": (
    "benchmarks/results/cuda_h200/quality_cifar10_gpu_width64_steps500.md", True)}

# The log of earlier CIFAR-10 subset runs lives beside their results; the README quotes the rest.
LOG = "benchmarks/results/cifar10_subset_log.md"
QUOTED_IN = {name: LOG for name in [*SECTIONS, *MORE]
             if name.startswith("cifar10-subset")}


def readme_section(name: str, readme: str = "README.md") -> str:
    text = (ROOT / readme).read_text()
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"{readme} has no <!-- {name}:start/end --> markers"
    return match.group(1)


def test_the_benchmarks_readme_shows_the_gpu_tables():
    """benchmarks/README.md quotes the GPU session's written tables unchanged."""
    lines = result_lines(ROOT / "benchmarks/results/cuda_h200/bench_cuda.md", verdicts=False)
    assert len(lines) >= 20
    shown = readme_section("cuda-h200", "benchmarks/README.md").splitlines()
    assert [line for line in lines if line not in shown] == []


def test_the_engine_tables_are_the_benchmarks():
    """README.md and benchmarks/README.md quote bench_engine.md's table rows unchanged."""
    lines = result_lines(ROOT / "benchmarks/results/bench_engine_cpu/bench_engine.md", verdicts=False)
    assert len(lines) >= 10
    shown = readme_section("bench-engine", "benchmarks/README.md").splitlines()
    assert [line for line in lines if line not in shown] == []
    quick = [line for line in lines     # the quick step's rows: the ones with a speed-up
             if re.match(r"\| \d+ \| (eager|compiled)", line) and "×" in line]
    assert quick and [line for line in quick if line not in readme_section("engine-cpu")
                      .splitlines()] == []


def result_lines(path: Path, verdicts: bool = True) -> list[str]:
    """The table rows (``| … |``) and, with ``verdicts``, the verdict lines (``- …``) of a
    results file."""
    return [line for line in path.read_text().splitlines()
            if line.startswith("| ") or (verdicts and line.startswith("- "))]


@pytest.mark.parametrize("section, source", [(name, SECTIONS) for name in sorted(SECTIONS)] +
                         [(name, MORE) for name in sorted(MORE)])
def test_the_readme_shows_the_written_results(section, source):
    results, verdicts = source[section]
    lines = result_lines(ROOT / results, verdicts)
    assert len(lines) >= 4, f"{results} has no table"
    quoted_in = QUOTED_IN.get(section, "README.md")
    shown = readme_section(section, quoted_in).splitlines()
    missing = [line for line in lines if line not in shown]
    assert not missing, f"{quoted_in} ({section}) differs from {results}: {missing}"


def test_a_changed_number_is_caught(tmp_path):
    written = tmp_path / "r.md"
    written.write_text("| method | accuracy |\n|---|---|\n| PoDD | 30.2 ± 2.1 |\n- target: met\n")
    shown = "| method | accuracy |\n|---|---|\n| PoDD | 30.3 ± 2.1 |\n- target: met\n".splitlines()
    assert [line for line in result_lines(written) if line not in shown] == ["| PoDD | 30.2 ± 2.1 |"]

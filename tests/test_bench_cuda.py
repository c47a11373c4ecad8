"""benchmarks/bench_cuda.py: its checks can fail, and its written report is its JSON's.

The GPU is not here, so the script runs with --dry-run: the same code with the CPU standing in
for the GPU. CPU against CPU must then agree exactly, which is what makes a nonzero difference on
a GPU mean something.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_cuda():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its siblings bench_distill, bench_eval
    try:
        spec = importlib.util.spec_from_file_location("bench_cuda", BENCHMARKS / "bench_cuda.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_agreement_checks_measure_zero_for_one_device(bench_cuda, tmp_path):
    record = bench_cuda.main(["--dry-run", "--sections", "env", "agreement", "--out", str(tmp_path)])
    agreement = record["sections"]["agreement"]
    assert "error" not in agreement, agreement.get("traceback")
    assert agreement["one_step_tf32_off"]["poster_grad_relative_error"] == 0.0
    assert agreement["five_steps_tf32_off"]["poster_relative_error"] == 0.0
    # float32 is not exact (roundoff through the unrolled Adam's 1/sqrt(v) reaches the
    # meta-gradient), yet points the same way: the yardstick is measured, not zero
    yardstick = agreement["float32_vs_float64_cpu"]
    assert 0.0 < yardstick["poster_grad_relative_error"] < 0.1 and yardstick["poster_grad_cosine"] > 0.99
    # The savers are exact in float64 (test_metagradient). In float32 their window runs forward
    # without a graph, presumably through other kernels on some CPUs, so they may differ by
    # float32's own error (1.6e-2 measured on an AVX-512 Xeon where the yardstick was 0.9e-2;
    # below 1e-5 on an earlier CPU), never by more than a few times it: a broken saver is O(1).
    savers = agreement["savers_vs_plain_gpu_tf32_off"]
    assert savers["poster_grad_relative_error"] < max(1e-5, 3 * yardstick["poster_grad_relative_error"])
    assert savers["loss_relative_error"] < 1e-4
    assert agreement["evaluation_tf32_off"]["max_abs_difference_points_vs_cpu_batched"] == 0.0
    markdown = (tmp_path / "bench_cuda.md").read_text()
    assert "DRY RUN" in markdown and "| five outer steps, TF32 off: GPU vs CPU |  | poster 0.0e+00 |" in markdown


def test_relative_error_sees_a_difference(bench_cuda):
    import torch

    a = torch.tensor([1.0, 2.0, 2.0])
    assert bench_cuda.relative_error(a, a) == 0.0
    assert bench_cuda.relative_error(a * 1.1, a) == pytest.approx(0.1)
    assert bench_cuda.cosine(a, -a) == pytest.approx(-1.0)


def test_the_committed_report_is_written_from_its_json(bench_cuda, tmp_path):
    results = BENCHMARKS / "results" / "cuda_h200"
    bench_cuda.main(["--report", str(results / "bench_cuda.json"), "--out", str(tmp_path)])
    assert (tmp_path / "bench_cuda.md").read_text() == (results / "bench_cuda.md").read_text()

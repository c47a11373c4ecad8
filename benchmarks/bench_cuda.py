"""Benchmark: every CUDA path of podd, in one short session on a GPU (issue: the GPU).

A GPU is lent for minutes, so this script does all of its checks in one process, each section
time-boxed and written to ``--out`` as soon as it ends (a section that fails is recorded with
its error and the others still run):

* ``env``        — the GPU, the library versions, the precision flags, and the measured
                   ``torch.matmul`` throughput in float32 (IEEE), TF32 and bfloat16: the ceilings
                   the other sections are compared with.
* ``agreement``  — CPU and GPU give the same numbers on a small case: one outer step's loss and
                   meta-gradient (TF32 off, then PyTorch's default), five outer steps' poster,
                   the memory savers against the plain step on the GPU, and the evaluation
                   protocol (batched and one model after another) on both devices.
* ``quick``      — ms per outer step of the quick profile for CIFAR-10 at width 64, the setting of
                   the real-pixel benchmark (``quality_cifar10.py --set width=64``); the session
                   script sizes that run's outer steps from it.
* ``presets``    — ms per outer step, peak ``torch.cuda.max_memory_allocated`` and the achieved
                   fraction of the measured throughput for the four paper presets, with the
                   memory savers as the preset has them and switched the other way
                   (``bench_distill.py`` at the mean window start, synthetic data of the shape).
* ``speed``      — the CIFAR-10 paper step with one speed option at a time and all together:
                   ``cudnn.benchmark``, in-place ReLU, the truncated steps in bfloat16
                   (``truncated_dtype``), and TF32 switched off (what PyTorch's default TF32
                   convolutions bring); how far bfloat16 moves the meta-gradient; a
                   torch.profiler table of one step (which kernels, how busy the GPU is).
* ``eval``       — 8 evaluation models batched as one grouped network vs one after another
                   (``bench_eval.py``).

The real-pixel quick-profile run (``quality_cifar10.py``) is a separate command; the device
session script that was run is in the result's ``command`` and in ``benchmarks/results/LOG.md``.

    python benchmarks/bench_cuda.py --out DIR [--sections env agreement ...] [--budget-s 300]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_distill  # noqa: E402
import bench_eval  # noqa: E402

from podd.data import make_preprocessor, stand_in  # noqa: E402
from podd.distiller import Distiller  # noqa: E402
from podd.evaluate import train_and_test  # noqa: E402
from podd.io import write_json, write_text  # noqa: E402
from podd.presets import resolve_config  # noqa: E402
from podd.provenance import provenance  # noqa: E402
from podd.ratbptt import outer_loss_and_grads  # noqa: E402

SECTIONS = ("env", "agreement", "quick", "presets", "speed", "eval")
# --dry-run: the same code on the CPU at toy sizes, to check the script before a GPU is lent.
DEVICE = "cuda"
DRY_RUN = False
# A paper step shrunk for the dry run (window 2 of 4, real batch 16): seconds on a CPU.
DRY_SETS = ["window=2", "total_window=4", "real_batch=16", "real_chunk=8"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖, both taken to float64 on the CPU."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu().flatten(), b.detach().double().cpu().flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-30))


class precision_flags:
    """Set cuDNN/cuBLAS TF32 on or off inside a ``with`` block, restoring them after."""

    def __init__(self, tf32: bool):
        self.tf32 = tf32

    def __enter__(self):
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = self.tf32
        torch.backends.cuda.matmul.allow_tf32 = self.tf32

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def matmul_rate(dtype: torch.dtype, tf32: bool = False, n: int = 8192, repeats: int = 5) -> float:
    """Best-of-``repeats`` torch.matmul FLOP/s on n×n matrices of ``dtype`` on the GPU."""
    n = 512 if DRY_RUN else n
    a = torch.randn(n, n, device=DEVICE, dtype=dtype)
    b = torch.randn(n, n, device=DEVICE, dtype=dtype)
    with precision_flags(tf32):
        torch.matmul(a, b)
        _sync()
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            _sync()
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def section_env(out_dir: Path) -> dict:
    gpu = {}
    if DEVICE == "cuda":
        props = torch.cuda.get_device_properties(0)
        gpu = dict(
            gpu=torch.cuda.get_device_name(0),
            capability=list(torch.cuda.get_device_capability(0)),
            multiprocessors=props.multi_processor_count,
            memory_bytes=props.total_memory,
        )
    return dict(
        **gpu,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        defaults=dict(
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
        ),
        matmul_tflops=dict(
            float32_ieee=matmul_rate(torch.float32) / 1e12,
            tf32=matmul_rate(torch.float32, tf32=True) / 1e12,
            bfloat16=matmul_rate(torch.bfloat16) / 1e12,
        ),
        matmul_method="best of 5 torch.matmul of 8192x8192 matrices after one warm-up",
    )


def _small_case(**changes):
    """A CIFAR-shaped distillation small enough to run on the CPU in seconds."""
    data = stand_in("cifar10", 10, (3, 32, 32), 6, 2, seed=0)
    config = resolve_config(
        "cifar10",
        "quick",
        width=16,
        window=3,
        total_window=6,
        real_batch=24,
        start_schedule="fixed",
        fixed_start=2,
        class_order="identity",
        zca=False,
        eval_models=0,
        checkpoint_every=0,
        **changes,
    )
    return data, config


def _step_gradients(config, data, device: str):
    """(loss, poster gradient, distiller) of the first outer step of ``config`` on ``device``."""
    distiller = Distiller(config.replace(device=device), dataset=data, preprocessor=make_preprocessor(data, zca=False))
    loss, grads = distiller.outer_gradients(distiller.plan())
    return loss, grads[0], distiller


def _float64_step_gradients(config, data):
    """(loss, poster gradient) of the same first outer step in float64 on the CPU: the yardstick
    for the float32 rows. An unrolled inner Adam divides by sqrt(v), so float32 roundoff in the
    inner steps reaches the meta-gradient amplified (measured ~1-2 % on this case and on the
    quick width-64 step); a GPU-vs-CPU difference of that size is float32's, not the GPU's."""
    distiller = Distiller(config.replace(device="cpu"), dataset=data, preprocessor=make_preprocessor(data, zca=False))
    plan = distiller.plan()
    plan.params = {name: p.double() for name, p in plan.params.items()}
    poster = distiller.poster.detach().double().requires_grad_(True)
    labels = distiller.label_params
    labels = None if labels is None else labels.detach().double().requires_grad_(True)
    loss, grads = outer_loss_and_grads(
        copy.deepcopy(distiller.net).double(),
        poster,
        labels,
        plan,
        distiller.source,
        distiller.x_real.double(),
        distiller.y_real,
        config.inner_lr,
        config.augment,
    )
    return loss, grads[0]


def section_agreement(out_dir: Path) -> dict:
    data, config = _small_case()
    result: dict = {"case": dict(config=config.to_dict(), data="stand-in (synthetic, CIFAR shape)")}
    cpu_loss, cpu_grad, _ = _step_gradients(config, data, "cpu")
    exact_loss, exact_grad = _float64_step_gradients(config, data)
    result["float32_vs_float64_cpu"] = dict(
        loss_relative_error=abs(float(cpu_loss) - float(exact_loss)) / abs(float(exact_loss)),
        poster_grad_relative_error=relative_error(cpu_grad, exact_grad),
        poster_grad_cosine=cosine(cpu_grad, exact_grad),
    )
    for name, tf32 in (("tf32_off", False), ("pytorch_default", None)):
        flags = precision_flags(tf32) if tf32 is not None else contextlib.nullcontext()
        with flags:
            gpu_loss, gpu_grad, _ = _step_gradients(config, data, DEVICE)
        result[f"one_step_{name}"] = dict(
            loss_cpu=float(cpu_loss),
            loss_gpu=float(gpu_loss),
            loss_relative_error=abs(float(gpu_loss) - float(cpu_loss)) / abs(float(cpu_loss)),
            poster_grad_relative_error=relative_error(gpu_grad, cpu_grad),
            poster_grad_cosine=cosine(gpu_grad, cpu_grad),
        )

    with precision_flags(False):
        posters = {}
        for device in ("cpu", DEVICE):
            distiller = Distiller(
                config.replace(device=device), dataset=data, preprocessor=make_preprocessor(data, zca=False)
            )
            for _ in range(5):
                distiller.step()
            distiller.check_finite()
            posters[device] = distiller.poster.detach()
        result["five_steps_tf32_off"] = dict(poster_relative_error=relative_error(posters[DEVICE], posters["cpu"]))
        plain_loss, plain_grad, _ = _step_gradients(config, data, DEVICE)
        saver_loss, saver_grad, _ = _step_gradients(config.replace(recompute_window=True, real_chunk=7), data, DEVICE)
        result["savers_vs_plain_gpu_tf32_off"] = dict(
            loss_relative_error=abs(float(saver_loss) - float(plain_loss)) / abs(float(plain_loss)),
            poster_grad_relative_error=relative_error(saver_grad, plain_grad),
        )

    # Few steps on a harder split, so the accuracies are far from 100 % and can disagree.
    evaluation_data = stand_in("cifar10", 10, (3, 32, 32), 4, 20, seed=1)
    images, labels = evaluation_data.x_train.float() / 255, evaluation_data.y_train
    test_x, test_y = evaluation_data.x_test.float() / 255, evaluation_data.y_test
    evals = {}
    with precision_flags(False):
        for device in ("cpu", "cuda"):
            for sequential in (False, True):
                res = train_and_test(
                    images,
                    labels,
                    test_x,
                    test_y,
                    num_models=3,
                    steps=[2, 6],
                    width=16,
                    device=DEVICE if device == "cuda" else "cpu",
                    sequential=sequential,
                    seed=0,
                )
                evals[f"{device}_{'sequential' if sequential else 'batched'}"] = res.accuracy.flatten()
    result["evaluation_tf32_off"] = dict(
        accuracy_per_model={key: acc.tolist() for key, acc in evals.items()},
        settings="3 models, 2 and 6 Adam steps on 40 stand-in images, width 16, tested on 200 images",
        max_abs_difference_points_vs_cpu_batched=max(
            float((acc - evals["cpu_batched"]).abs().max()) for acc in evals.values()
        ),
    )
    return result


def section_quick(out_dir: Path) -> dict:
    steps, warmup = ("2", "1") if DRY_RUN else ("20", "3")
    record = bench_distill.main(
        [
            "--dataset",
            "cifar10",
            "--profile",
            "quick",
            "--set",
            "width=64",
            "--steps",
            steps,
            "--warmup",
            warmup,
            "--device",
            DEVICE,
            "--out",
            str(out_dir / "bench_distill_cifar10_quick_w64.json"),
        ]
    )
    timing = record["timing"]
    return dict(
        ms_per_outer_step=1e3 / timing["outer_steps_per_s"],
        start=timing["start"],
        window=timing["window"],
        peak_memory_gib=timing["peak_memory_bytes"] / 2**30,
    )


def section_presets(out_dir: Path) -> dict:
    rows = {}
    for dataset in bench_distill.PAPER_PRESETS:
        preset = resolve_config(dataset, "paper")
        has_savers = preset.recompute_window
        variants = (
            ("as_preset", []),
            (
                "savers_off" if has_savers else "savers_on",
                ["--set", "recompute_window=false", "real_chunk=null"]
                if has_savers
                else ["--set", "recompute_window=true", "real_chunk=250"],
            ),
        )
        for name, extra in variants:
            key = f"{dataset}_{name}"
            if DRY_RUN:
                extra = (extra or ["--set"]) + [s for s in DRY_SETS if "real_chunk" not in s or not extra]
            try:
                record = bench_distill.main(
                    [
                        "--dataset",
                        dataset,
                        "--profile",
                        "paper",
                        "--steps",
                        "3",
                        "--warmup",
                        "1",
                        "--device",
                        DEVICE,
                        "--out",
                        str(out_dir / f"bench_distill_{key}.json"),
                    ]
                    + extra
                )
                timing = record["timing"]
                rows[key] = dict(
                    ms_per_outer_step=1e3 / timing["outer_steps_per_s"],
                    peak_memory_gib=timing["peak_memory_bytes"] / 2**30,
                    tflop_per_outer_step=timing["flops_per_outer_step"] / 1e12,
                    achieved_tflops=timing["achieved_flops_per_s"] / 1e12,
                    fraction_of_fp32_matmul=timing["fraction_of_matmul"],
                    recompute_window=timing["config"]["recompute_window"],
                    real_chunk=timing["config"]["real_chunk"],
                )
            except Exception as error:  # one preset's failure (e.g. out of memory) is a result
                rows[key] = dict(error=f"{type(error).__name__}: {error}")
            _free()
            print(key, rows[key], flush=True)
    return rows


def _set_inplace_relu(distiller: Distiller, inplace: bool) -> None:
    for module in distiller.net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = inplace


def section_speed(out_dir: Path, steps: int = 3) -> dict:
    overrides = bench_distill.parse_set(DRY_SETS) if DRY_RUN else {}
    config = bench_distill.bench_config("cifar10", "paper", "podd", "mean", overrides, DEVICE)
    data = bench_distill._synthetic("cifar10", config.real_batch)
    variants = {
        "default": {},
        "tf32_off": dict(tf32=False),
        "cudnn_benchmark": dict(benchmark=True),
        "inplace_relu": dict(inplace=True),
        "truncated_bf16": dict(bf16=True),
        "all_three": dict(benchmark=True, inplace=True, bf16=True),
    }
    rows = {}
    for name, opts in variants.items():
        torch.backends.cudnn.benchmark = bool(opts.get("benchmark"))
        cfg = config.replace(truncated_dtype="bfloat16") if opts.get("bf16") else config
        distiller = bench_distill.make_distiller(cfg, data)
        _set_inplace_relu(distiller, bool(opts.get("inplace")))
        flags = precision_flags(False) if opts.get("tf32") is False else contextlib.nullcontext()
        with flags:
            timing = bench_distill.time_steps(distiller, steps, warmup=2 if opts.get("benchmark") else 1)
        rows[name] = dict(
            ms_per_outer_step=1e3 / timing["outer_steps_per_s"],
            peak_memory_gib=timing["peak_memory_bytes"] / 2**30,
            timed_steps=steps,
        )
        del distiller
        _free()
        print(name, rows[name], flush=True)
    torch.backends.cudnn.benchmark = False
    base = rows["default"]["ms_per_outer_step"]
    for row in rows.values():
        row["speedup_vs_default"] = base / row["ms_per_outer_step"]

    # How far bfloat16 truncated steps move the meta-gradient, against the run-to-run spread of
    # float32 on the GPU (non-deterministic cuDNN backward kernels), on one and the same plan.
    distiller = bench_distill.make_distiller(config, data)
    plan = distiller.plan()
    grads = {}
    for label, dtype, tf32 in (
        ("fp32_a", "float32", None),
        ("fp32_b", "float32", None),
        ("bf16", "bfloat16", None),
        ("ieee", "float32", False),
    ):
        distiller.config = config.replace(truncated_dtype=dtype)
        with precision_flags(tf32) if tf32 is not None else contextlib.nullcontext():
            grads[label] = distiller.outer_gradients(plan)[1][0]
    # "fp32" is PyTorch's default on the GPU (TF32 convolutions); "ieee" switches TF32 off.
    accuracy = dict(
        fp32_repeat_relative_error=relative_error(grads["fp32_b"], grads["fp32_a"]),
        tf32_vs_ieee_relative_error=relative_error(grads["fp32_a"], grads["ieee"]),
        tf32_vs_ieee_cosine=cosine(grads["fp32_a"], grads["ieee"]),
        bf16_vs_ieee_relative_error=relative_error(grads["bf16"], grads["ieee"]),
        bf16_relative_error=relative_error(grads["bf16"], grads["fp32_a"]),
        bf16_cosine=cosine(grads["bf16"], grads["fp32_a"]),
        plan=dict(start=plan.start, window=plan.window),
    )
    print("bf16 meta-gradient", accuracy, flush=True)
    distiller.config = config
    return dict(
        config=config.to_dict(),
        data="stand-in (synthetic, CIFAR-10 shape)",
        variants=rows,
        bf16_meta_gradient=accuracy,
        profile=_profile_step(distiller),
    )


def _profile_step(distiller: Distiller, rows: int = 15) -> dict:
    """torch.profiler over one outer step: the kernels that take the GPU's time, and how much of
    the step's wall time the GPU was busy at all (the rest is the host launching work)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    distiller.step()
    _sync()
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        distiller.step()
        _sync()
        wall = time.perf_counter() - start
    key = "self_device_time_total" if DEVICE == "cuda" else "self_cpu_time_total"
    table = prof.key_averages()
    # A kernel is listed under its own name AND (as self device time) under the operator that
    # launched it: count the kernels alone, the events that ran on the device.
    kernels = [e for e in table if e.device_type == DeviceType.CUDA] if DEVICE == "cuda" else list(table)
    top = sorted(table, key=lambda e: getattr(e, key), reverse=True)[:rows]
    print(table.table(sort_by=key, row_limit=rows), flush=True)
    return dict(
        wall_ms_under_profiler=wall * 1e3,
        kernel_ms=sum(getattr(e, key) for e in kernels) / 1e3,
        kernels=sum(e.count for e in kernels),
        top=[dict(op=e.key, self_ms=getattr(e, key) / 1e3, calls=e.count) for e in top],
    )


def section_eval(out_dir: Path) -> dict:
    steps, warmup = ("2", "1") if DRY_RUN else ("50", "5")
    record = bench_eval.main(
        [
            "--config",
            "cifar",
            "--device",
            DEVICE,
            "--num-models",
            "8",
            "--steps",
            steps,
            "--warmup",
            warmup,
            "--repeats",
            "2" if DRY_RUN else "3",
            "--no-step-bench",
            "--out",
            str(out_dir / "bench_eval_cuda.json"),
        ]
    )
    return {
        name: dict(
            speedup_min=row["train_and_test"]["speedup_min"],
            sequential_min_s=row["train_and_test"]["sequential"]["min_s"],
            batched_min_s=row["train_and_test"]["batched"]["min_s"],
        )
        for name, row in record["results"].items()
    }


def _free() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# the written report: markdown tables made from the JSON, never typed
# --------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def _env_lines(env: dict) -> list[str]:
    rates = env["matmul_tflops"]
    return [
        f"{env.get('gpu', 'CPU (dry run)')}, torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}; "
        f"PyTorch's defaults: cuDNN TF32 {env['defaults']['cudnn_allow_tf32']}, matmul TF32 "
        f"{env['defaults']['matmul_allow_tf32']}, cudnn.benchmark {env['defaults']['cudnn_benchmark']}.",
        "",
    ] + _table(
        ["torch.matmul 8192³", "float32 (IEEE)", "TF32", "bfloat16"],
        [["TFLOP/s (best of 5)", f"{rates['float32_ieee']:.1f}", f"{rates['tf32']:.1f}", f"{rates['bfloat16']:.1f}"]],
    )


def _agreement_lines(a: dict) -> list[str]:
    rows = []
    for name, label in (
        ("one_step_tf32_off", "one outer step, TF32 off"),
        ("one_step_pytorch_default", "one outer step, PyTorch's default (TF32)"),
    ):
        r = a[name]
        rows.append(
            [
                f"{label}: GPU vs CPU",
                f"loss {r['loss_relative_error']:.1e}",
                f"poster gradient {r['poster_grad_relative_error']:.1e} (cosine {r['poster_grad_cosine']:.5f})",
            ]
        )
    if "float32_vs_float64_cpu" in a:  # the first GPU session's JSON predates this row
        r = a["float32_vs_float64_cpu"]
        rows.append(
            [
                "one outer step, float32 vs float64 on the CPU (float32's own error: the yardstick for the GPU rows)",
                f"loss {r['loss_relative_error']:.1e}",
                f"poster gradient {r['poster_grad_relative_error']:.1e} (cosine {r['poster_grad_cosine']:.5f})",
            ]
        )
    rows.append(
        [
            "five outer steps, TF32 off: GPU vs CPU",
            "",
            f"poster {a['five_steps_tf32_off']['poster_relative_error']:.1e}",
        ]
    )
    r = a["savers_vs_plain_gpu_tf32_off"]
    rows.append(
        [
            "memory savers vs plain step, on the GPU",
            f"loss {r['loss_relative_error']:.1e}",
            f"poster gradient {r['poster_grad_relative_error']:.1e}",
        ]
    )
    e = a["evaluation_tf32_off"]
    rows.append(
        [
            "evaluation, CPU/GPU × batched/sequential (" + e["settings"] + ")",
            "",
            f"largest accuracy difference {e['max_abs_difference_points_vs_cpu_batched']:.1f} points",
        ]
    )
    return _table(["check (relative error ‖a−b‖/‖b‖)", "loss", "result"], rows)


def _presets_lines(presets: dict, env: dict) -> list[str]:
    tf32 = env["matmul_tflops"]["tf32"] if env else float("nan")
    rows = []
    for key, r in presets.items():
        if not isinstance(r, dict):
            continue
        if "error" in r:
            rows.append([key, "", "", r["error"], "", "", "", ""])
            continue
        savers = (
            f"window recomputed, real chunk {r['real_chunk']}"
            if r["recompute_window"]
            else ("real chunk " + str(r["real_chunk"]) if r["real_chunk"] else "none")
        )
        rows.append(
            [
                key.split("_")[0],
                savers,
                f"{r['ms_per_outer_step']:.0f}",
                f"{r['peak_memory_gib']:.2f}",
                f"{r['tflop_per_outer_step']:.2f}",
                f"{r['achieved_tflops']:.1f}",
                f"{100 * r['fraction_of_fp32_matmul']:.0f} %",
                f"{100 * r['achieved_tflops'] / tf32:.1f} %",
            ]
        )
    return _table(
        [
            "paper preset",
            "memory savers",
            "ms / outer step",
            "peak GiB",
            "TFLOP / step",
            "achieved TFLOP/s",
            "of float32 matmul",
            "of TF32 matmul",
        ],
        rows,
    )


def _speed_lines(speed: dict) -> list[str]:
    rows = [
        [name, f"{r['ms_per_outer_step']:.0f}", f"{r['speedup_vs_default']:.2f}×", f"{r['peak_memory_gib']:.2f}"]
        for name, r in speed["variants"].items()
    ]
    lines = _table(["CIFAR-10 paper step", "ms / outer step", "vs default", "peak GiB"], rows)
    acc = speed["bf16_meta_gradient"]
    lines += [
        "",
        f"Meta-gradient of one plan (start {acc['plan']['start']} + window {acc['plan']['window']}), "
        "relative difference:",
        "",
    ]
    lines += _table(
        ["compared", "relative difference"],
        [
            [
                "float32 (TF32 convolutions) run twice: the GPU's own run-to-run spread",
                f"{acc['fp32_repeat_relative_error']:.3f}",
            ],
            [
                "TF32 vs IEEE float32",
                f"{acc['tf32_vs_ieee_relative_error']:.3f} (cosine {acc['tf32_vs_ieee_cosine']:.4f})",
            ],
            [
                "bfloat16 truncated steps vs float32 (TF32)",
                f"{acc['bf16_relative_error']:.3f} (cosine {acc['bf16_cosine']:.4f})",
            ],
            ["bfloat16 truncated steps vs IEEE float32", f"{acc['bf16_vs_ieee_relative_error']:.3f}"],
        ],
    )
    prof = speed["profile"]
    if "kernel_ms" in prof:
        busy = f"{prof['kernels']} kernels, together {prof['kernel_ms']:.0f} ms on the GPU"
    else:  # the first GPU session summed operators and kernels: each kernel counted twice
        busy = (
            f"{prof['device_busy_ms']:.0f} ms of GPU time and {prof['kernel_launches']} launches summed over "
            f"the table's operators and kernels, which counts each kernel twice (under its own name and "
            f"under the operator that launched it): about half of each were kernels"
        )
    lines += [
        "",
        f"torch.profiler over one default step: {busy}; the step took "
        f"{prof['wall_ms_under_profiler']:.0f} ms of wall time under the profiler. "
        "Top entries by their own GPU time (operators and kernels):",
        "",
    ]
    lines += _table(
        ["operator", "GPU ms", "calls"], [[t["op"][:90], f"{t['self_ms']:.1f}", t["calls"]] for t in prof["top"][:10]]
    )
    return lines


def _eval_lines(evaluation: dict) -> list[str]:
    rows = [
        [name, f"{r['sequential_min_s']:.3f}", f"{r['batched_min_s']:.3f}", f"{r['speedup_min']:.2f}×"]
        for name, r in evaluation.items()
        if isinstance(r, dict)
    ]
    return _table(
        ["8 models, 50 training steps (CIFAR shape, width 128)", "one after another, s", "batched, s", "speed-up"], rows
    )


def write_markdown(record: dict) -> str:
    """The sections of a bench_cuda.json as markdown tables (what the README quotes)."""
    sections = record["sections"]
    env = sections.get("env", {})
    dry = " DRY RUN on the CPU: the numbers mean nothing." if record.get("dry_run") else ""
    parts = [
        f"GPU benchmark (`bench_cuda.py`), commit `{record['git_commit']}`, {record['device']}, "
        f"{record['created_utc']}.{dry}"
    ]
    writers = [
        ("Ceilings", "env", _env_lines),
        ("CPU and GPU agree", "agreement", _agreement_lines),
        (
            "Paper presets (synthetic data of the preset's shape, mean window start)",
            "presets",
            lambda v: _presets_lines(v, env),
        ),
        ("Speed options", "speed", _speed_lines),
        ("Evaluation models batched", "eval", _eval_lines),
    ]
    for title, key, writer in writers:
        section = sections.get(key)
        if section is None:
            continue
        body = (
            [f"Not measured: {section.get('error') or section.get('skipped')}"]
            if "error" in section or "skipped" in section
            else writer(section)
        )
        parts.append(f"### {title}\n\n" + "\n".join(body))
    if "quick" in sections and "error" not in sections["quick"]:
        q = sections["quick"]
        parts.append(
            f"Quick profile, CIFAR-10 at width 64 (start {q['start']} + window {q['window']}): "
            f"{q['ms_per_outer_step']:.0f} ms per outer step, peak {q['peak_memory_gib']:.2f} GiB."
        )
    return "\n\n".join(parts) + "\n"


RUNNERS = {
    "env": section_env,
    "agreement": section_agreement,
    "quick": section_quick,
    "presets": section_presets,
    "speed": section_speed,
    "eval": section_eval,
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for bench_cuda.json and the sections' JSON")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--budget-s", type=float, default=math.inf, help="start no new section after this many seconds")
    ap.add_argument(
        "--dry-run", action="store_true", help="check the script on the CPU at toy sizes (its numbers mean nothing)"
    )
    ap.add_argument(
        "--report",
        metavar="JSON",
        default=None,
        help="only write the markdown of an earlier bench_cuda.json (into --out)",
    )
    args = ap.parse_args(argv)
    if args.report:
        record = json.loads(Path(args.report).read_text())
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_text(Path(args.out) / "bench_cuda.md", write_markdown(record))
        print(f"wrote {Path(args.out) / 'bench_cuda.md'}")
        return record
    global DEVICE, DRY_RUN
    DEVICE, DRY_RUN = ("cpu", True) if args.dry_run else ("cuda", False)
    if not DRY_RUN and not torch.cuda.is_available():
        ap.error("no CUDA GPU visible to torch: this benchmark needs one (or --dry-run on the CPU)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record = provenance(
        device=DEVICE,
        benchmark="bench_cuda",
        dry_run=DRY_RUN,
        sections={},
        command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        cpu_count=os.cpu_count(),
    )
    for name in args.sections:
        if time.perf_counter() - started > args.budget_s:
            record["sections"][name] = dict(skipped=f"budget of {args.budget_s:.0f} s spent")
            continue
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            section = RUNNERS[name](out_dir)
        except Exception as error:
            section = dict(error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
            print(section["traceback"], flush=True)
        section["wall_time_s"] = time.perf_counter() - t0
        record["sections"][name] = section
        record["wall_time_s"] = time.perf_counter() - started
        write_json(out_dir / "bench_cuda.json", record)  # after every section: nothing lost
    write_text(out_dir / "bench_cuda.md", write_markdown(record))
    print(f"wrote {out_dir / 'bench_cuda.json'} and .md in {time.perf_counter() - started:.0f} s")
    return record


if __name__ == "__main__":
    main()

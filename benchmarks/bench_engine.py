"""Benchmark: the eager and the compiled engine (``engine=eager|compiled``) side by side, in one run.

Sections (``--sections``, all by default), each written to ``--out`` (JSON + markdown) as it
ends, with provenance:

* ``quick``   — one outer step of the quick profile, CIFAR-10 PoDD at 1 IPC, on the CPU at
                widths 32 and 64 (synthetic data of CIFAR-10's shape: a step's cost does not
                depend on the pixels): eager, compiled, and compiled with the truncated steps in
                bfloat16 (on a CPU with native bfloat16). The settings are stepped in turn, one
                step each, so a busy machine slows all of them alike; the median is reported.
                Also: the time of the first compiled steps (the compile), and each setting's
                meta-gradient distance to the same step in float64 (the yardstick).
* ``where``   — where the quick step's time goes: its FLOPs (convolutions and matmuls, counted
                on the eager step with FlopCounterMode), the CPU's measured float32 and bfloat16
                torch.matmul rates on the same threads, and the compiled step's four phases
                (truncated steps, window forward, real loss, window backward), timed by the
                engine (median of 3 steps), and torch.profiler's share of the step's self time
                in oneDNN's convolutions and in inductor's generated kernels.
* ``cache``   — the compile cache: the first compiled step of a fresh process with an empty
                cache directory, then of a second process with the cache the first one left.
* ``ops``     — operator calls in one outer step of the CIFAR-10 paper preset's structure
                (start 70 + window 60, 96 patches of 32×32, depth 3; width and real batch
                shrunk so that only the structure counts), counted with torch.profiler.
* ``digits``  — 50 outer steps on digits (quick profile) with each engine, 3 seeds, each poster
                evaluated with the same students: the engines must reach the same accuracy
                within noise.
* ``gpu``     — with a CUDA GPU: ms per outer step and peak memory of the four paper presets,
                both engines (at the mean window start). Without one: "not measured".

    python benchmarks/bench_engine.py --out benchmarks/results/bench_engine_cpu
    python benchmarks/bench_engine.py --sections quick --widths 32 --steps 3 --out /tmp/e
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_distill  # noqa: E402
from bench_cuda import relative_error  # noqa: E402

from podd.data import load_dataset, make_preprocessor, stand_in  # noqa: E402
from podd.distiller import Distiller  # noqa: E402
from podd.io import write_json, write_text  # noqa: E402
from podd.presets import resolve_config  # noqa: E402
from podd.provenance import git_commit, provenance  # noqa: E402
from podd.ratbptt import outer_loss_and_grads  # noqa: E402

SECTIONS = ("quick", "where", "cache", "ops", "digits", "gpu")
# (label, config changes) of the settings the quick section compares
SETTINGS = (
    ("eager", dict(engine="eager")),
    ("compiled", dict(engine="compiled")),
    ("compiled, bf16 truncated", dict(engine="compiled", truncated_dtype="bfloat16")),
)


def _cifar_quick(width: int, device: str = "cpu", **changes):
    """The quick CIFAR-10 PoDD 1-IPC config at ``width``, window start fixed at its mean."""
    base = resolve_config("cifar10", "quick", ipc=1.0, width=width, verbose=False)
    high = base.total_window - base.window
    return base.replace(
        start_schedule="fixed",
        fixed_start=high // 2,
        class_order="identity",
        zca=False,
        eval_every=0,
        eval_models=0,
        checkpoint_every=0,
        device=device,
        **changes,
    )


def _cifar_data(config):
    # 10 × real_batch images: every real batch of every epoch is a full one (a last, short
    # batch would make every other step cheaper)
    return stand_in("cifar10", 10, (3, 32, 32), config.real_batch, 1, seed=0)


def _distiller(config, data):
    return Distiller(config, dataset=data, preprocessor=make_preprocessor(data, zca=False))


def _float64_gradient(distiller: Distiller, plan) -> torch.Tensor:
    """The poster gradient of ``plan`` in float64 (eager, CPU): the yardstick."""
    plan = copy.copy(plan)
    plan.params = {name: p.double().cpu() for name, p in plan.params.items()}
    poster = distiller.poster.detach().double().cpu().requires_grad_(True)
    net = copy.deepcopy(distiller.net).double().cpu()
    source = distiller.source
    plan.batch_index, plan.real_index = plan.batch_index.cpu(), plan.real_index.cpu()
    return outer_loss_and_grads(
        net,
        poster,
        None,
        plan,
        source,
        distiller.x_real.double().cpu(),
        distiller.y_real.cpu(),
        distiller.config.inner_lr,
        distiller.config.augment,
    )[1][0]


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def section_quick(args) -> dict:
    torch.set_num_threads(args.threads)
    rows = []
    for width in args.widths:
        config = _cifar_quick(width)
        data = _cifar_data(config)
        distillers = {label: _distiller(config.replace(**changes), data) for label, changes in SETTINGS}
        # the meta-gradient of one and the same plan, against float64
        plan = distillers["eager"].plan()
        exact = _float64_gradient(distillers["eager"], plan)
        first, grads, warm_steps = {}, {}, {}
        for label, d in distillers.items():
            start = time.perf_counter()
            grads[label] = d.outer_gradients(plan)[1][0]
            first[label] = time.perf_counter() - start
        # more compiles happen as the other augmentation first comes up: warm each setting up
        # until it compiles nothing new (and at least --warmup steps)
        warm_s = {}
        for label, d in distillers.items():
            start = time.perf_counter()
            steps = _warm_up(d)
            for _ in range(max(0, args.warmup - steps)):
                d.step()
            warm_s[label] = time.perf_counter() - start
            warm_steps[label] = max(steps, args.warmup)
        times = {label: [] for label in distillers}
        for _ in range(args.steps):
            for label, d in distillers.items():
                start = time.perf_counter()
                d.step()
                d.check_finite()
                times[label].append(time.perf_counter() - start)
        eager_s = statistics.median(times["eager"])
        for label, d in distillers.items():
            median = statistics.median(times[label])
            rows.append(
                dict(
                    width=width,
                    setting=label,
                    engine=d.engine.name,
                    s_per_step=median,
                    s_per_step_all=times[label],
                    speedup_vs_eager=eager_s / median,
                    compile_s=(first[label] + warm_s[label] - (1 + warm_steps[label]) * median)
                    if label != "eager"
                    else 0.0,
                    grad_distance_to_float64=relative_error(grads[label], exact),
                    grad_distance_to_eager=relative_error(grads[label], grads["eager"]),
                )
            )
    return dict(
        rows=rows,
        threads=args.threads,
        timed_steps=args.steps,
        warmup_steps=args.warmup,
        config=_cifar_quick(args.widths[0]).to_dict(),
        data="stand-in (synthetic, CIFAR-10 shape)",
        cpu_has_bf16=_cpu_bf16(),
    )


def matmul_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` torch.matmul FLOP/s of n×n matrices of ``dtype`` on the CPU."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


PHASES = ("truncated_steps", "window_forward", "real_loss", "window_backward")


def section_where(args) -> dict:
    torch.set_num_threads(args.threads)
    rows = []
    for width in args.widths:
        config = _cifar_quick(width)
        data = _cifar_data(config)
        flops = bench_distill.count_flops(config.replace(engine="eager"), data)
        d = _distiller(config.replace(engine="compiled"), data)
        _warm_up(d)
        phases, seconds = {p: [] for p in PHASES}, []
        for _ in range(3):
            start = time.perf_counter()
            d.step()
            d.check_finite()
            seconds.append(time.perf_counter() - start)
            for p in PHASES:
                phases[p].append(d.engine.compiled.last_phases[p])
        # what the step's time is spent on: oneDNN's convolutions vs inductor's own kernels
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            d.step()
        averages = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in averages)
        share = {
            kind: sum(e.self_cpu_time_total for e in averages if match(e.key)) / total
            for kind, match in (
                ("convolutions (oneDNN)", lambda k: "convolution" in k),
                ("inductor's generated kernels", lambda k: k.startswith("## Call CompiledFxGraph")),
            )
        }
        rows.append(
            dict(
                width=width,
                flops_per_step=flops,
                compiled_s=statistics.median(seconds),
                self_time_share=share,
                phases_s={p: statistics.median(v) for p, v in phases.items()},
                start=config.fixed_start,
                window=config.window,
            )
        )
    return dict(
        rows=rows,
        threads=args.threads,
        matmul_gflops=dict(float32=matmul_rate(torch.float32) / 1e9, bfloat16=matmul_rate(torch.bfloat16) / 1e9),
        flops_note="FlopCounterMode on the eager step: convolutions and matmuls of the "
        "forward, backward and the window's double backward; the compiled "
        "engine also recomputes each window step once (its VJP), so it does "
        "more arithmetic than counted",
    )


def _cpu_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def section_cache(args) -> dict:
    """First compiled step in two fresh processes sharing one empty cache directory."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        runs = []
        for attempt in ("empty cache", "cache of the first run"):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, __file__, "--first-step", str(args.widths[0]), "--threads", str(args.threads)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - start
            first = float(result.stdout.strip().splitlines()[-1])
            runs.append(dict(cache=attempt, first_steps_s=first, process_wall_s=wall))
    return dict(
        width=args.widths[0],
        runs=runs,
        what="seconds until the quick CIFAR-10 PoDD 1-IPC step has compiled all it "
        "needs (both augmentations, in the truncated steps and in the window), in "
        "a new process",
    )


def first_step(width: int, threads: int) -> float:
    torch.set_num_threads(threads)
    config = _cifar_quick(width, engine="compiled")
    d = _distiller(config, _cifar_data(config))
    start = time.perf_counter()
    _warm_up(d)
    return time.perf_counter() - start


def _warm_up(d: Distiller) -> int:
    """Step until nothing is left to compile: both augmentations seen (each is its own graph,
    and the window's VJP of one is only compiled when it first falls in the window) and a step
    that compiled no new graph. Returns the steps taken."""
    from torch._dynamo.utils import counters

    steps = 0
    while True:
        graphs = counters["stats"]["unique_graphs"]
        d.step()
        steps += 1
        if d.engine.name != "compiled" or (
            {"flip", "rotate"} <= _ops_seen(d) and counters["stats"]["unique_graphs"] == graphs
        ):
            return steps


def _ops_seen(d: Distiller) -> set[str]:
    compiled = getattr(d.engine, "compiled", None)
    return set(getattr(compiled, "ops_seen", ()))


def section_ops(args) -> dict:
    """Operator calls of one outer step of the CIFAR-10 paper preset's structure."""
    torch.set_num_threads(args.threads)
    base = resolve_config("cifar10", "paper", verbose=False)
    config = base.replace(
        width=8,
        real_batch=100,
        start_schedule="fixed",
        fixed_start=70,
        class_order="identity",
        zca=False,
        eval_every=0,
        eval_models=0,
        checkpoint_every=0,
        device="cpu",
        recompute_window=False,
        real_chunk=None,
    )
    data = _cifar_data(config)
    out = dict(
        structure=dict(
            start=70,
            window=config.window,
            distill_batch=config.distill_batch,
            image="3x32x32",
            depth=config.depth,
            width=config.width,
            real_batch=config.real_batch,
        ),
        engines={},
    )
    for engine in ("eager", "compiled"):
        d = _distiller(config.replace(engine=engine), data)
        _warm_up(d)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            d.step()
            d.check_finite()
            seconds = time.perf_counter() - start
        names = Counter(event.name for event in prof.events())
        out["engines"][engine] = dict(
            operator_calls=sum(names.values()),
            per_inner_step=sum(names.values()) / (70 + config.window),
            step_s_under_profiler=seconds,
            top=names.most_common(12),
            engine_ran=d.engine.name,
        )
    calls = {e: v["operator_calls"] for e, v in out["engines"].items()}
    out["ratio_compiled_to_eager"] = calls["compiled"] / calls["eager"]
    return out


def section_digits(args) -> dict:
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="podd-digits-"))
    data = load_dataset("digits", root=root, download=False)
    pre = make_preprocessor(data, zca=False)
    rows = []
    for seed in args.seeds:
        for engine in ("eager", "compiled"):
            config = resolve_config(
                "digits",
                "quick",
                steps=50,
                seed=seed,
                engine=engine,
                eval_models=4,
                device="cpu",
                checkpoint_every=0,
                verbose=False,
            )
            d = Distiller(config, data, pre)
            start = time.perf_counter()
            for _ in range(config.steps):
                d.step()
            d.check_finite()
            seconds = time.perf_counter() - start
            accuracy = d.evaluate()
            rows.append(
                dict(
                    seed=seed,
                    engine=d.engine.name,
                    steps=config.steps,
                    accuracy_mean=float(accuracy.mean()),
                    accuracy_std=float(accuracy.std()),
                    models=config.eval_models,
                    distill_s=seconds,
                )
            )
    means = {e: statistics.mean(r["accuracy_mean"] for r in rows if r["engine"] == e) for e in ("eager", "compiled")}
    return dict(
        rows=rows,
        mean_accuracy=means,
        data="sklearn digits (full 1797 images)",
        note="evaluation accuracy of 4 students x 300 steps on the digits test split",
    )


def section_gpu(args) -> dict:
    if not torch.cuda.is_available():
        return dict(measured=False, note="not measured: no CUDA GPU in this run")
    torch.backends.cudnn.allow_tf32 = True  # TF32 convolutions (PyTorch's default)
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    result = dict(measured=True, rows=rows, gpu=torch.cuda.get_device_name(0))
    for dataset in args.presets:
        for engine in ("eager", "compiled"):
            config = bench_distill.bench_config(dataset, "paper", "podd", "mean", dict(engine=engine), "cuda")
            data = bench_distill._synthetic(dataset, config.real_batch)
            d = bench_distill.make_distiller(config, data)
            start = time.perf_counter()
            for _ in range(3):
                d.step()
            torch.cuda.synchronize()
            warm_s = time.perf_counter() - start
            with torch.cuda.device(0):
                torch.cuda.set_sync_debug_mode("warn" if engine == "compiled" else 0)
                timed = bench_distill.time_steps(d, args.gpu_steps, 0)
                torch.cuda.set_sync_debug_mode(0)
            rows.append(
                dict(
                    dataset=dataset,
                    engine=d.engine.name,
                    ms_per_step=1000 / timed["outer_steps_per_s"],
                    peak_memory_gb=timed["peak_memory_bytes"] / 2**30,
                    first_three_steps_s=warm_s,
                    savers=dict(recompute_window=config.recompute_window, real_chunk=config.real_chunk),
                )
            )
            _save_partial("gpu", result)  # a session cut short keeps the rows it has
    return result


_PARTIAL = {}


def _save_partial(name: str, section: dict) -> None:
    if "save" in _PARTIAL:
        _PARTIAL["save"](name, section)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    lines = [
        "# Eager vs compiled engine",
        "",
        f"Written by `{results['command']}` — commit `{results['provenance']['git_commit']}`, "
        f"device {results['provenance']['device']}.",
        "",
    ]
    quick = results["sections"].get("quick")
    if quick and "rows" in quick:
        lines += [
            "## Quick-profile outer step (CIFAR-10 PoDD 1 IPC, CPU)",
            "",
            f"{quick['data']}; {quick['threads']} thread(s); median of "
            f"{quick['timed_steps']} steps after warm-up (at least {quick['warmup_steps']} "
            "steps, until nothing new compiles), the settings stepped in turn; window start "
            "fixed at its mean. Compile: the first steps' time beyond the median, with the "
            "compile cache as this run found it (an empty cache: see Compile cache). "
            f"Commit {_commit(quick)}.",
            "",
            "| width | setting | s / outer step | speed-up vs eager | compile (s) | "
            "grad distance to float64 | to eager |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in quick["rows"]:
            lines.append(
                f"| {r['width']} | {r['setting']} | {r['s_per_step']:.2f} | "
                f"{r['speedup_vs_eager']:.2f}× | {r['compile_s']:.0f} | "
                f"{r['grad_distance_to_float64']:.2%} | "
                f"{r['grad_distance_to_eager']:.2%} |"
            )
        lines.append("")
    where = results["sections"].get("where")
    if where and "rows" in where:
        rate = where["matmul_gflops"]
        seconds = {(r["width"], r["setting"]): r["s_per_step"] for r in (quick or {}).get("rows", [])}
        lines += [
            "## Where the time goes (quick step, CPU)",
            "",
            f"torch.matmul on this CPU, {where['threads']} thread(s): float32 "
            f"{rate['float32']:.0f} GFLOP/s, bfloat16 {rate['bfloat16']:.0f} GFLOP/s. "
            f"FLOPs: {where['flops_note']}. Commit {_commit(where)}.",
            "",
            "| width | GFLOP / step | eager GFLOP/s | compiled GFLOP/s | compiled step: "
            "truncated / window fwd / real loss / window bwd (s) | self time: convolutions"
            " / generated kernels |",
            "|---|---|---|---|---|---|",
        ]
        for r in where["rows"]:
            gflop = r["flops_per_step"] / 1e9
            rates = [
                f"{gflop / seconds[(r['width'], k)]:.0f}" if (r["width"], k) in seconds else "–"
                for k in ("eager", "compiled")
            ]
            phases = " / ".join(f"{r['phases_s'].get(p, 0):.2f}" for p in PHASES)
            shares = " / ".join(f"{v:.0%}" for v in r.get("self_time_share", {}).values()) or "–"
            lines.append(
                f"| {r['width']} | {gflop:.0f} | {rates[0]} | {rates[1]} | {phases} "
                f"(start {r['start']}, window {r['window']}) | {shares} |"
            )
        lines.append("")
    cache = results["sections"].get("cache")
    if cache and "runs" in cache:
        lines += [
            "## Compile cache",
            "",
            cache["what"] + f" (width {cache['width']}, commit {_commit(cache)}):",
            "",
            "| cache | first steps (s) | process wall (s) |",
            "|---|---|---|",
        ]
        lines += [f"| {r['cache']} | {r['first_steps_s']:.1f} | {r['process_wall_s']:.1f} |" for r in cache["runs"]]
        lines.append("")
    ops = results["sections"].get("ops")
    if ops and "engines" in ops:
        s = ops["structure"]
        lines += [
            "## Operator calls per outer step (CIFAR-10 paper structure, CPU)",
            "",
            f"start {s['start']} + window {s['window']}, {s['distill_batch']} patches of "
            f"{s['image']}, depth {s['depth']}, width {s['width']}, real batch "
            f"{s['real_batch']}; torch.profiler events of one step after warm-up; commit "
            f"{_commit(ops)}.",
            "",
            "| engine | operator calls | per inner step | most frequent |",
            "|---|---|---|---|",
        ]
        for engine, v in ops["engines"].items():
            top = ", ".join(f"`{n}` {c}" for n, c in v["top"][:5])
            lines.append(f"| {engine} | {v['operator_calls']} | {v['per_inner_step']:.0f} | {top} |")
        lines += ["", f"Compiled / eager: {ops['ratio_compiled_to_eager']:.3f}.", ""]
    digits = results["sections"].get("digits")
    if digits and "rows" in digits:
        lines += [
            "## Same accuracy: 50 outer steps on digits",
            "",
            digits["note"] + f"; commit {_commit(digits)}.",
            "",
            "| seed | engine | accuracy (%) | distill (s) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['seed']} | {r['engine']} | {r['accuracy_mean']:.1f} ± "
            f"{r['accuracy_std']:.1f} | {r['distill_s']:.1f} |"
            for r in digits["rows"]
        ]
        by_seed = {}
        for r in digits["rows"]:
            by_seed.setdefault(r["seed"], {})[r["engine"]] = r["accuracy_mean"]
        gaps = [v["compiled"] - v["eager"] for v in by_seed.values() if len(v) == 2]
        spread = f" ± {statistics.stdev(gaps):.1f} (sd over seeds)" if len(gaps) > 1 else ""
        lines += [
            "",
            "Mean over seeds: "
            + ", ".join(f"{e} {v:.1f}" for e, v in digits["mean_accuracy"].items())
            + f"; compiled − eager per seed: {', '.join(f'{g:+.1f}' for g in gaps)}, mean "
            f"{statistics.mean(gaps):+.1f}{spread}. One seed's two runs part after the first "
            "steps (float rounding differs), so they are two draws of the same process.",
            "",
        ]
    gpu = results["sections"].get("gpu")
    if gpu is not None:
        lines += ["## Paper presets on a GPU", ""]
        if not gpu.get("measured"):
            lines += [gpu.get("note", "not measured"), ""]
        else:
            lines += [f"{gpu['gpu']}, TF32 on.", "", "| preset | engine | ms / step | peak GiB |", "|---|---|---|---|"]
            lines += [
                f"| {r['dataset']} | {r['engine']} | {r['ms_per_step']:.0f} | {r['peak_memory_gb']:.1f} |"
                for r in gpu["rows"]
            ]
            lines.append("")
    for name, section in results["sections"].items():
        if "error" in section:
            lines += [f"## {name}: failed", "", "```", section["error"][-2000:], "```", ""]
    return "\n".join(lines)


def _commit(section: dict) -> str:
    return f"`{section.get('git_commit', 'unknown')[:7]}`"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=False)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--widths", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--steps", type=int, default=5, help="timed outer steps per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--gpu-steps", type=int, default=5)
    parser.add_argument(
        "--presets",
        nargs="+",
        choices=bench_distill.PAPER_PRESETS,
        default=list(bench_distill.PAPER_PRESETS),
        help="for the gpu section",
    )
    parser.add_argument("--first-step", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--merge", action="store_true", help="keep the other sections of an earlier bench_engine.json in --out"
    )
    parser.add_argument("--report", type=Path, default=None, help="rewrite the markdown of an earlier JSON and exit")
    args = parser.parse_args(argv)
    if args.first_step is not None:  # the cache section's child process
        print(first_step(args.first_step, args.threads))
        return
    if args.report is not None:
        import json

        results = json.loads(args.report.read_text())
        write_text(args.report.with_suffix(".md"), markdown(results))
        return
    if args.out is None:
        parser.error("--out DIR is required")
    command = "python benchmarks/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    results = dict(command=command, sections={})
    earlier = args.out / "bench_engine.json"
    if args.merge and earlier.exists():
        import json

        results = json.loads(earlier.read_text())
        results["command"] = results["command"] + " ; then " + command

    def save(name=None, section=None):
        if name is not None:
            results["sections"][name] = section
        device = "cuda" if "gpu" in args.sections and torch.cuda.is_available() else "cpu"
        results["provenance"] = provenance(
            device=device, data_source="stand-in (synthetic) and sklearn digits", wall_time_s=time.perf_counter() - t0
        )
        write_json(args.out / "bench_engine.json", results)
        write_text(args.out / "bench_engine.md", markdown(results))

    _PARTIAL["save"] = save
    for name in args.sections:
        start = time.perf_counter()
        try:
            results["sections"][name] = globals()[f"section_{name}"](args)
        except Exception:
            results["sections"][name] = dict(error=traceback.format_exc())
        results["sections"][name]["wall_s"] = time.perf_counter() - start
        results["sections"][name]["git_commit"] = git_commit()  # sections may come from two runs
        print(f"[bench_engine] {name}: {results['sections'][name]['wall_s']:.0f} s", flush=True)
        save()


if __name__ == "__main__":
    main()

"""The one way podd runs experiments: ``make demo``, the notebooks (through
:mod:`podd.notebooks`) and the benchmarks all distil and evaluate through this package.

* :mod:`.data` — the data an experiment uses under each profile (real, or a labelled stand-in),
  and the :class:`DataRequest` a job on another machine loads it by;
* :mod:`.run` — one config distilled and evaluated as a table row (:class:`RunOutcome`), the
  random-real reference evaluated the same way, a finished run read back; :data:`METHOD_NAMES`,
  the one table of the methods' names;
* :mod:`.sweep` — runs as jobs (this process, local worker processes, Slurm through submitit),
  each in its own run directory that a later session collects or continues;
* :mod:`.compare` — methods × seeds compared on one dataset through a sweep (``make demo``, the
  quality benchmarks), and the comparison's markdown table;
* :mod:`.cache` — the per-session caches (explicit objects, so tests can reset them).
"""

from podd.experiments import data, run
from podd.experiments.compare import (
    DIGITS_LABEL,
    DIGITS_METHODS,
    compare_methods,
    compare_on_digits,
    default_workers,
    format_table,
    job_config,
    random_real_accuracy,
    run_name,
)
from podd.experiments.data import DataRequest, load_data, request_for
from podd.experiments.run import (
    METHOD_NAMES,
    RunOutcome,
    Stopwatch,
    config_dict,
    distill_and_evaluate,
    method_label,
    method_name,
    outcome_of_run,
    preprocessor_for,
    real_reference,
    runs_sidecar,
)
from podd.experiments.sweep import Sweep

__all__ = [
    "DIGITS_LABEL",
    "DIGITS_METHODS",
    "compare_methods",
    "compare_on_digits",
    "default_workers",
    "format_table",
    "job_config",
    "random_real_accuracy",
    "run_name",
    "DataRequest",
    "load_data",
    "request_for",
    "METHOD_NAMES",
    "RunOutcome",
    "Stopwatch",
    "config_dict",
    "distill_and_evaluate",
    "method_label",
    "method_name",
    "outcome_of_run",
    "preprocessor_for",
    "real_reference",
    "runs_sidecar",
    "Sweep",
    "reset_caches",
]


def reset_caches() -> None:
    """Forget every fitted preprocessor and loaded dataset this session holds (tests use it; a
    long session can free memory with it)."""
    for cache in (run.PREPROCESSORS, data.LOADED, data.REQUESTS):
        cache.clear()

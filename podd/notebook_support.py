"""What the notebooks share, in one name: ``from podd import notebook_support as nbs``.

The notebooks teach and call ``podd``; the few steps they all repeat live in :mod:`podd.notebooks`
(one module per concern) so that no notebook holds algorithm code and every notebook behaves the
same way under each profile. This module only gathers them under one short name, so the
notebooks' text can say ``nbs.run_config`` without naming where each helper lives:

* ``smoke`` — CI and a first look: offline, CPU, seconds. Digits when asked for digits, otherwise a
  synthetic stand-in (:func:`podd.data.stand_in`) with the requested dataset's image shape and
  class count. Numbers measured on a stand-in are NOT results on that dataset; every notebook prints
  so, and the "measured on" column of every table repeats it.
* ``quick`` — the real dataset, scaled-down settings (minutes).
* ``paper`` — the real dataset, the authors' settings (hours of GPU for CIFAR and beyond).

Where each name lives: profiles (:mod:`podd.notebooks.profiles`), dataset names
(:mod:`~podd.notebooks.names`), data per profile (:mod:`~podd.notebooks.data_choice`), class
embeddings (:mod:`~podd.notebooks.embeddings`), run settings (:mod:`~podd.notebooks.configs`),
result tables (:mod:`~podd.notebooks.tables`), the experiment notebooks' shared setup cell
(:func:`setup`, :mod:`~podd.notebooks.setup_cell`); run-and-evaluate, sweeps and the data request are
:mod:`podd.experiments`, as for the demo and the benchmarks. :func:`reset_caches` empties the
session caches.
"""

from __future__ import annotations

# DATASET_SHAPES: the paper's datasets (and digits), class count and image shape (c, h, w) — what
# a smoke stand-in must imitate. SMOKE_ZCA_MAX_DIM: see podd.presets.resolve_config; note_once: podd.notes.
from podd.data import DATASET_SHAPES
from podd.experiments import (
    DataRequest,
    RunOutcome,
    Stopwatch,
    Sweep,
    config_dict,
    distill_and_evaluate,
    preprocessor_for,
    real_reference,
    reset_caches,
    runs_sidecar,
)
from podd.notebooks.configs import class_order_override, patch_counts_for_strides, run_config
from podd.notebooks.data_choice import class_names_for, data_note, load_for_profile, measured_on
from podd.notebooks.embeddings import class_embeddings
from podd.notebooks.names import PRETTY_NAMES, pretty, slug
from podd.notebooks.parameters import list_parameter, settings_parameter
from podd.notebooks.profiles import PROFILE_ENV, profile_default, resolve_profile
from podd.notebooks.setup_cell import Setup, setup
from podd.notebooks.tables import PAPER_DATASETS, majority_share_table, measured_and_reported, poster_budget_table
from podd.notes import note_once
from podd.presets import PROFILES, SMOKE_ZCA_MAX_DIM

__all__ = [
    "DATASET_SHAPES",
    "class_order_override",
    "patch_counts_for_strides",
    "run_config",
    "DataRequest",
    "class_names_for",
    "data_note",
    "load_for_profile",
    "measured_on",
    "class_embeddings",
    "RunOutcome",
    "Stopwatch",
    "config_dict",
    "distill_and_evaluate",
    "preprocessor_for",
    "real_reference",
    "runs_sidecar",
    "PRETTY_NAMES",
    "pretty",
    "slug",
    "PROFILE_ENV",
    "profile_default",
    "resolve_profile",
    "Sweep",
    "PAPER_DATASETS",
    "majority_share_table",
    "measured_and_reported",
    "poster_budget_table",
    "PROFILES",
    "SMOKE_ZCA_MAX_DIM",
    "note_once",
    "reset_caches",
    "list_parameter",
    "settings_parameter",
    "Setup",
    "setup",
]

"""What the notebooks share, in one name: ``from podd import notebooks as nbs``.

The notebooks (the ``notebooks/`` folder) teach and call ``podd``; the few steps they all repeat
live here, one concern per module, so that no notebook holds algorithm code and every notebook
behaves the same way under each profile. This package gathers them under one short name, so the
notebooks' text can say ``nbs.run_config`` without naming where each helper lives:

* :mod:`.profiles` — which profile a notebook runs under:

  * ``smoke`` — CI and a first look: offline, CPU, seconds. Digits when asked for digits, otherwise
    a synthetic stand-in (:func:`podd.data.stand_in`) with the requested dataset's image shape and
    class count. Numbers measured on a stand-in are NOT results on that dataset; every notebook
    prints so, and the "measured on" column of every table repeats it.
  * ``quick`` — the real dataset, scaled-down settings (minutes).
  * ``paper`` — the real dataset, the authors' settings (hours of GPU for CIFAR and beyond).

* :mod:`.names` — display names and file-name parts for datasets;
* :mod:`.data_choice` — the data a profile uses (real, or a labelled stand-in) and how to say so;
* :mod:`.embeddings` — class embeddings for PoCO per profile;
* :mod:`.configs` — the run settings a notebook asks for;
* :mod:`.parameters` — papermill parameters given as text (lists, settings);
* :mod:`.tables` — result tables: the paper's reported numbers beside ours, labelled;
* :mod:`.setup_cell` — :func:`setup`, the setup cell Tables 1, 2 and the ablations share.

Running a config and evaluating it, sweeps of runs as jobs and the data request are
:mod:`podd.experiments`'s, the one way the demo, the notebooks and the benchmarks run experiments;
the names the notebooks use are re-exported here. :func:`reset_caches` empties the session caches.
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

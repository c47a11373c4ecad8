"""What the notebooks share, one concern per module (the notebooks import it all through the
facade :mod:`podd.notebook_support`, as ``nbs``):

* :mod:`.profiles` — which profile (smoke / quick / paper) a notebook runs under;
* :mod:`.names` — display names and file-name parts for datasets;
* :mod:`.data_choice` — the data a profile uses (real, or a labelled stand-in) and how to say so;
* :mod:`.embeddings` — class embeddings for PoCO per profile;
* :mod:`.configs` — the run settings a notebook asks for;
* :mod:`.tables` — result tables: the paper's reported numbers beside ours, labelled;
* :mod:`.setup_cell` — the setup cell Tables 1, 2 and the ablations share (profile, style, data).

Running a config and evaluating it, sweeps of runs as jobs and the data request are
:mod:`podd.experiments`'s, the one way the demo, the notebooks and the benchmarks run experiments.
"""

# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablation · Does the class order matter? (§5.3)
#
# **What the paper claims.** On a poster, neighbouring classes share pixels, so which classes are
# neighbours should matter. The paper distils CIFAR-10 with several *random* class orders, scores
# each order by `1 / Σ distance(neighbouring classes)` (CLIP text-embedding distances, as in
# PoCO), and finds a positive correlation between the score and the accuracy of the distilled
# poster — the motivation for PoCO's search for a high-scoring order.
#
# **What you will see.** `num_orderings` random class orders for `dataset`, each scored and
# distilled with the same settings, once per seed in `seeds`; a scatter of score against accuracy
# (mean over the seeds) with the Pearson correlation; PoCO's own order and the dataset's order
# marked for comparison; and PoCO's class grid beside the poster it gave.
#
# **Profiles.** `smoke`: synthetic embeddings (CLIP is not downloaded) and a few steps on a
# stand-in — the correlation printed there is noise and says nothing about the claim. `quick` /
# `paper`: CLIP ViT-B/32 text embeddings and real data. `embeddings="data"` (any profile): the
# distances measured on the training images, and "PoCO" is then `class_order="data"`'s order.

# %% tags=["parameters"]
import os

dataset = "cifar10"      # the paper uses CIFAR-10
profile = os.environ.get("PODD_PROFILE", "paper")   # smoke | quick | paper
num_orderings = None     # random orders to try (default per profile: smoke 4, quick 8, paper 10)
ipc = None               # pixel budget (default: the preset's)
steps = None             # outer steps per distillation (default: the preset's)
seed = 0                 # seeds the data split and the random orders
seeds = None             # distillation seeds, e.g. [0, 1, 2]: every order is distilled once per
                         # seed and its accuracy is the mean over them (default: [seed])
settings = None          # more DistillConfig settings for every run, like `podd distill --set`,
                         # e.g. {"width": 32} (papermill: -p settings '{"width": 32}')
embeddings = None        # optional class-embeddings file (offline use of real CLIP embeddings), or
                         # "data": measured on the training images (what class_order "data" uses)
n_val = None             # hold out this many training images as the test set (data without one)
like = None              # for local data (npz:PATH): the paper dataset it holds, e.g. "cifar10":
                         # use that dataset's settings
executor = "local"       # local (this kernel) | slurm (one job per run, via submitit; settings
                         # from PODD_SLURM_PARTITION, _TIME_MIN, _GPUS ...) | submitit-local

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from podd import figures, ordering
from podd import notebooks as nbs
from podd.display import poster_image

num_orderings = num_orderings or nbs.profile_default(profile, smoke=4, quick=8, paper=10)
seeds = nbs.list_parameter(seeds, "seeds", kind=int) if seeds is not None else [seed]
settings = nbs.settings_parameter(settings)
# the profile resolved, figures styled, this profile's data loaded (its note says what it is);
# outputs are named after paper_name = like or dataset (an npz of CIFAR-10 → cifar10)
profile, data, paper_name = nbs.setup(
    dataset, profile, seed=seed, n_val=n_val, like=like,
    about=f"{num_orderings} random orderings, distillation seeds {seeds}"
          + (f", settings {settings}" if settings else ""))
vectors, embedding_source = nbs.class_embeddings(data.class_names, profile, embeddings=embeddings,
                                                 seed=seed, data=data)
distances = ordering.distance_matrix(vectors)

# %% [markdown]
# ## Orders and their scores
#
# Random order `i` is `random:{seed + i}` — the same spec `podd distill --class-order` accepts —
# and PoCO's order is computed from the same distances, so every score below is exactly the
# order that gets distilled. The dataset's own order (`identity`) is distilled too: it is the
# order every run without PoCO uses.

# %%
base = nbs.run_config(data, profile, mode="podd", ipc=ipc, seed=seeds[0], class_order="identity",
                      like=like, **({"steps": steps} if steps else {}), **settings)
rows, cols = base.grid
orders = {f"random:{seed + i}": ordering.resolve_class_order(f"random:{seed + i}",
                                                            data.class_names, rows, cols)
          for i in range(num_orderings)}
orders["identity"] = ordering.resolve_class_order("identity", data.class_names, rows, cols)
orders["PoCO"] = ordering.poco(distances, rows, cols)
for name, order in orders.items():
    print(f"{name:>10}: score {ordering.ordering_score(order, distances):.4f}")

# %% [markdown]
# ## Distil each order, once per seed

# %%
sweep = nbs.Sweep(data, executor,          # executor = "slurm": one cluster job per run
                  name=f"class-order-{nbs.slug(dataset)}-{profile}")
cells = [(name, run_seed) for name in orders for run_seed in seeds]
for name, run_seed in cells:
    config = base.replace(class_order=orders[name].tolist(), seed=run_seed)   # an explicit class grid
    sweep.distill(config, cell=name if len(seeds) == 1 else f"{name}-seed{run_seed}", ordering=name,
                  score=ordering.ordering_score(orders[name], distances))
outcomes = sweep.gather()
for (name, run_seed), outcome in zip(cells, outcomes):
    print(f"{name:>10} seed {run_seed}: {outcome.row['accuracy']:.1f} ± {outcome.row['std']:.1f} %  "
          f"({outcome.wall_time_s:.1f} s)")

# %% [markdown]
# One row per order: `accuracy` is the mean over the seeds of each run's mean test accuracy,
# `std` the spread of those per-seed means (with one seed: the spread over its evaluation models).

# %%
runs = pd.DataFrame([{**o.row, "seed": run_seed} for (_, run_seed), o in zip(cells, outcomes)])
per_order = runs.groupby("ordering", sort=False)
results = per_order[["score", "ipc", "patches", "labels", "eval"]].first()
results["accuracy"] = per_order["accuracy"].mean()
results["std"] = per_order["accuracy"].std(ddof=0) if len(seeds) > 1 else per_order["std"].first()
results["seeds"] = per_order["seed"].apply(lambda s: " ".join(str(v) for v in s))
results = results.reset_index()[["ordering", "score", "accuracy", "std", "seeds", "ipc", "patches",
                                 "labels", "eval"]]
results["embeddings"] = embedding_source
random_rows = results[results["ordering"].str.startswith("random:")]
pearson_r = random_rows["score"].corr(random_rows["accuracy"])   # NaN if accuracy is constant
print(f"Pearson correlation of score and accuracy over {len(random_rows)} random orders: "
      + ("undefined (the accuracies are all equal)" if pd.isna(pearson_r) else f"{pearson_r:.2f}"))
sidecar = nbs.runs_sidecar(data, profile, outcomes, requested=dataset,
                           embeddings=embedding_source,
                           pearson_r=None if pd.isna(pearson_r) else round(float(pearson_r), 4))
figures.save_table(results.round(4), f"ablation_class_order_{nbs.slug(paper_name)}", sidecar,
                   caption=f"Class-order ablation ({nbs.pretty(paper_name)}): ordering score vs "
                           f"accuracy, seeds {seeds}. Measured on: "
                           f"{nbs.measured_on(data, profile, paper_name)}. Embeddings: {embedding_source}.")
results

# %%
order_row = results.set_index("ordering")
embeddings_kind = ("synthetic embeddings" if embedding_source.startswith("SYNTHETIC")
                   else "data-derived embeddings" if embeddings == "data" else "CLIP")
poco_name = "data order (PoCO on data distances)" if embeddings == "data" else "PoCO order"
fig, ax = plt.subplots(figsize=(7.5, 4.5))
figures.plot_score_vs_accuracy(ax, random_rows["score"], random_rows["accuracy"],
                               random_rows["std"],
                               r=None if pd.isna(pearson_r) else float(pearson_r),
                               highlight=(order_row.loc["PoCO", "score"], order_row.loc["PoCO", "accuracy"],
                                          poco_name),
                               also=[(order_row.loc["identity", "score"], order_row.loc["identity", "accuracy"],
                                      "dataset order (identity)")])
ax.set_title(f"{nbs.pretty(paper_name)}: class order score vs accuracy, seeds {seeds}\nmeasured on: "
             f"{nbs.measured_on(data, profile, paper_name)}; "
             f"{embeddings_kind}",
             fontsize=10)
fig.tight_layout()
figures.save_figure(fig, f"fig_ablation_class_order_{nbs.slug(paper_name)}", sidecar)
plt.show()

# %% [markdown]
# ## Where PoCO put the classes
#
# The paper's intuition for CLIP's order on CIFAR-10 is that vehicles end up beside vehicles and
# animals beside animals. Left: PoCO's class grid from this notebook's distances (for CIFAR-10
# each cell coloured by that coarse group, otherwise by how close its neighbours are); right:
# the poster distilled with it (first seed), each class's area named.

# %%
COARSE_GROUPS = {"cifar10": {"airplane": 0, "automobile": 0, "ship": 0, "truck": 0}}   # 0 vehicle, 1 animal
groups = COARSE_GROUPS.get(nbs.slug(paper_name))
poco_outcome = outcomes[cells.index(("PoCO", seeds[0]))]
artifact = poco_outcome.artifact
H, W = artifact.geometry.size
fig, axes = plt.subplots(1, 2, figsize=(13, max(3.5, 6.5 * H / W) + 1.0))
if groups is not None:
    clusters = [groups.get(name, 1) for name in data.class_names]
    figures.plot_class_tiling(axes[0], orders["PoCO"], data.class_names, clusters=clusters, cmap="Set2")
    crossing = torch.tensor(clusters)[:, None] != torch.tensor(clusters)[None, :]
    cross_pairs = round(1 / ordering.ordering_score(orders["PoCO"], crossing.float()))
    neighbour_pairs = round(1 / ordering.ordering_score(orders["PoCO"], 1 - torch.eye(len(clusters))))
    grid_title = (f"{poco_name}: green vehicles, orange animals\n"
                  f"{cross_pairs} of {neighbour_pairs} neighbouring pairs mix a vehicle and an animal")
else:
    figures.plot_class_tiling(axes[0], orders["PoCO"], data.class_names, distances=distances)
    grid_title = f"{poco_name}\ncell colour: mean distance to neighbours (light = close)"
axes[0].set_title(grid_title, fontsize=10)
figures.show_image(axes[1], poster_image(artifact.poster, nbs.preprocessor_for(data, poco_outcome.config.zca)),
                   f"its poster (seed {seeds[0]}): {poco_outcome.row['accuracy']:.1f} %")
figures.annotate_class_areas(axes[1], artifact.class_order, artifact.geometry.size, artifact.class_names)
fig.suptitle(f"{nbs.pretty(paper_name)} — measured on: {nbs.measured_on(data, profile, paper_name)}; "
             f"{embeddings_kind}", fontsize=10)
fig.tight_layout()
figures.save_figure(fig, f"fig_class_order_layout_{nbs.slug(paper_name)}", sidecar)
plt.show()

# %% [markdown]
# **Reading it.** The paper's claim is a *positive* correlation: better-scored orders (more similar
# neighbours) give better posters. With few orders and seeds the estimate is noisy; run more
# `num_orderings` and `seeds` (or the `paper` profile) to tighten it.

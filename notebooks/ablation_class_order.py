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
# distilled with the same settings and seed; a scatter of score against accuracy with the
# Pearson correlation; PoCO's own order marked for comparison.
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
seed = 0
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

from podd import figures, ordering
from podd import notebook_support as nbs

profile = nbs.resolve_profile(profile)
paper_name = like or dataset   # outputs are named and titled after it (an npz of CIFAR-10 → cifar10)
figures.use_style()
pd.set_option("display.width", 160)
num_orderings = num_orderings or nbs.profile_default(profile, smoke=4, quick=8, paper=10)
print(f"profile: {profile}, dataset: {dataset}, {num_orderings} random orderings, seed {seed}")
data = nbs.load_for_profile(dataset, profile, seed=seed, n_val=n_val)
vectors, embedding_source = nbs.class_embeddings(data.class_names, profile, embeddings=embeddings,
                                                 seed=seed, data=data)
distances = ordering.distance_matrix(vectors)

# %% [markdown]
# ## Orders and their scores
#
# Random order `i` is `random:{seed + i}` — the same spec `podd distill --class-order` accepts —
# and PoCO's order is computed from the same distances, so every score below is exactly the
# order that gets distilled.

# %%
base = nbs.run_config(data, profile, mode="podd", ipc=ipc, seed=seed, class_order="identity",
                      like=like, **({"steps": steps} if steps else {}))
rows, cols = base.grid
orders = {f"random:{seed + i}": ordering.resolve_class_order(f"random:{seed + i}",
                                                            data.class_names, rows, cols)
          for i in range(num_orderings)}
orders["PoCO"] = ordering.poco(distances, rows, cols)
for name, order in orders.items():
    print(f"{name:>10}: score {ordering.ordering_score(order, distances):.4f}")

# %% [markdown]
# ## Distil each order

# %%
sweep = nbs.Sweep(data, executor,          # executor = "slurm": one cluster job per order
                  name=f"class-order-{nbs.slug(dataset)}-{profile}")
for name, order in orders.items():
    config = base.replace(class_order=order.tolist())   # an explicit (rows, cols) class grid
    sweep.distill(config, cell=name, ordering=name, score=ordering.ordering_score(order, distances))
outcomes = sweep.gather()
for name, outcome in zip(orders, outcomes):
    print(f"{name:>10}: {outcome.row['accuracy']:.1f} ± {outcome.row['std']:.1f} %  "
          f"({outcome.wall_time_s:.1f} s)")

# %%
results = pd.DataFrame([o.row for o in outcomes])[
    ["ordering", "score", "accuracy", "std", "ipc", "patches", "labels", "eval"]]
results["embeddings"] = embedding_source
random_rows = results[results["ordering"] != "PoCO"]
pearson_r = random_rows["score"].corr(random_rows["accuracy"])   # NaN if accuracy is constant
print(f"Pearson correlation of score and accuracy over {len(random_rows)} random orders: "
      + ("undefined (the accuracies are all equal)" if pd.isna(pearson_r) else f"{pearson_r:.2f}"))
sidecar = nbs.runs_sidecar(data, profile, outcomes, requested=dataset,
                           embeddings=embedding_source,
                           pearson_r=None if pd.isna(pearson_r) else round(float(pearson_r), 4))
figures.save_table(results.round(4), f"ablation_class_order_{nbs.slug(paper_name)}", sidecar,
                   caption=f"Class-order ablation ({nbs.pretty(paper_name)}): ordering score vs "
                           f"accuracy. Measured on: {nbs.measured_on(data, profile, paper_name)}. "
                           f"Embeddings: {embedding_source}.")
results

# %%
poco_row = results[results["ordering"] == "PoCO"].iloc[0]
embeddings_kind = ("synthetic embeddings" if embedding_source.startswith("SYNTHETIC")
                   else "data-derived embeddings" if embeddings == "data" else "CLIP")
fig, ax = plt.subplots(figsize=(7.5, 4.5))
figures.plot_score_vs_accuracy(ax, random_rows["score"], random_rows["accuracy"],
                               random_rows["std"],
                               r=None if pd.isna(pearson_r) else float(pearson_r),
                               highlight=(poco_row["score"], poco_row["accuracy"], "PoCO order"))
ax.set_title(f"{nbs.pretty(paper_name)}: class order score vs accuracy\nmeasured on: "
             f"{nbs.measured_on(data, profile, paper_name)}; "
             f"{embeddings_kind}",
             fontsize=10)
fig.tight_layout()
figures.save_figure(fig, f"fig_ablation_class_order_{nbs.slug(paper_name)}", sidecar)
plt.show()

# %% [markdown]
# **Reading it.** The paper's claim is a *positive* correlation: better-scored orders (more similar
# neighbours) give better posters. With few orders the estimate is noisy; run the `paper`
# profile with more `num_orderings` to tighten it.

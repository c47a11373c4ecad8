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
# # 02 · PoCO: which classes should be neighbours? (§4.2, figs 4 and 7)
#
# **What the paper claims.** On a poster, neighbouring classes share pixels, so the class layout
# matters: sharing should happen between *related* classes (man, woman, boy) rather than
# unrelated ones (plate, tree, bus). PoCO (Poster Class Ordering) embeds every class name with
# the CLIP text encoder, measures distances `1 − cosine similarity`, then walks the class grid in
# **zigzag** order and greedily gives each cell the unplaced class with the smallest summed
# distance to its already-placed neighbours.
#
# **What you will see.**
# 1. The zigzag traversal (fig 4).
# 2. PoCO on a small example with fixed, hand-made embeddings — every step checkable by eye.
# 3. The PoCO tiling of a real class list (fig 7 for CIFAR-100), with its ordering score
#    compared to the dataset order and to random orders.
#
# CLIP's weights must be downloaded once. Under the `smoke` profile nothing is downloaded: the
# tiling in part 3 then uses **synthetic** embeddings and says so — it checks the code path, it
# does not show CLIP's semantics. Pass `embeddings=PATH` (a `.pt`/`.npy` file, one row per
# class, e.g. a cache file written by `podd.clip_text.text_embeddings` elsewhere) to use real ones
# offline.

# %% tags=["parameters"]
import os

dataset = "cifar100"     # digits | cifar10 | cifar100 | cub200 | tinyimagenet
profile = os.environ.get("PODD_PROFILE", "paper")   # smoke | quick | paper
embeddings = None        # optional path to precomputed class embeddings (.pt / .npy)
num_random = 200         # random orderings to compare PoCO's score with
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from podd import figures, layout, ordering
from podd import notebooks as nbs
from podd.layout import default_class_grid

profile = nbs.resolve_profile(profile)
figures.use_style()
pd.set_option("display.width", 140)
print(f"profile: {profile}, dataset: {dataset}")

# %% [markdown]
# ## 1. The zigzag traversal (fig 4)
#
# The walk goes over the anti-diagonals of the grid, alternating direction like JPEG's
# coefficient scan, so every visited cell after the first already has a placed neighbour above
# or to its left. Each number is the step at which the cell is visited:

# %%
# NBVAL_CHECK_OUTPUT
for rows, cols in [(2, 5), (4, 4)]:
    steps = torch.empty(rows, cols, dtype=torch.long)
    cells = ordering.zigzag(rows, cols)
    steps[cells[:, 0], cells[:, 1]] = torch.arange(rows * cols)
    print(f"{rows}×{cols} grid, visiting step of each cell:\n{steps.numpy()}\n")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
figures.plot_traversal(axes[0], 4, 5, alternate=True)
axes[0].set_title("zigzag (the paper, fig 4)")
figures.plot_traversal(axes[1], 4, 5, alternate=False)
axes[1].set_title("one-direction anti-diagonals (authors' code)")
fig.tight_layout()
figures.save_figure(fig, "fig4_zigzag_traversal",
                    figures.make_sidecar(dataset="none (grid only)", data_source="none",
                                         profile=profile, hyperparameters={"grid": [4, 5]}))
plt.show()

# %% [markdown]
# ## 2. PoCO step by step, on fixed embeddings
#
# Six classes in an unhelpful dataset order — animals and vehicles interleaved — with made-up
# 3-D "embeddings": animals point one way, vehicles another (these numbers are a teaching
# example, not CLIP). In dataset order on a 2×3 grid, every animal sits next to a vehicle.
# PoCO starts from the first class and then fills the zigzag with the closest remaining class.

# %%
# NBVAL_CHECK_OUTPUT
toy_names = ["cat", "car", "dog", "truck", "lion", "bus"]
toy_embeddings = torch.nn.functional.normalize(torch.tensor([
    [1.0, 0.1, 0.0],   # cat
    [0.0, 1.0, 0.1],   # car
    [1.0, 0.0, 0.2],   # dog
    [0.1, 1.0, 0.3],   # truck
    [0.9, 0.2, 0.3],   # lion
    [0.0, 0.9, 0.4],   # bus
]), dim=1)
toy_distances = ordering.distance_matrix(toy_embeddings)
print("distances (1 − cosine):")
print(pd.DataFrame(toy_distances.numpy(), index=toy_names, columns=toy_names).round(2))

identity = layout.identity_order(6, 2, 3)
placed = ordering.poco(toy_distances, 2, 3)
for title, order in [("dataset order", identity), ("PoCO", placed)]:
    grid = [[toy_names[k] for k in row] for row in order.tolist()]
    print(f"\n{title}: score {ordering.ordering_score(order, toy_distances):.3f}")
    print("\n".join("  " + " | ".join(f"{n:>5}" for n in row) for row in grid))

# %% [markdown]
# In dataset order every animal touches only vehicles. PoCO's greedy walk keeps cat, dog and lion
# together (cat–dog, cat–lion) and bus, car and truck together (bus–car, car–truck); only a few
# animal–vehicle borders remain where the grid forces them. Its *ordering score* — one over the
# summed distance of all neighbouring pairs, the score of the paper's class-order ablation
# (§5.3) — is more than twice the dataset order's.
#
# ## 3. A real class list: the PoCO tiling (fig 7)
#
# Now the classes of `dataset` on the paper's class grid (10×10 for CIFAR-100). First the
# embeddings — where they come from is printed, and it matters:

# %%
class_names = nbs.class_names_for(dataset, profile)
rows, cols = default_class_grid(len(class_names))
class_vectors, embedding_source = nbs.class_embeddings(class_names, profile, embeddings=embeddings,
                                                       seed=seed)
distances = ordering.distance_matrix(class_vectors)
poco_order = ordering.poco(distances, rows, cols)
print(f"{len(class_names)} classes on a {rows}×{cols} grid; embeddings {tuple(class_vectors.shape)}")

# %% [markdown]
# How good is the PoCO layout? Compare its ordering score with the dataset's own order and with
# `num_random` random orders (higher is better: neighbours are closer).

# %%
random_orders = ordering.random_orderings(len(class_names), rows, cols, num_random, seed)
random_scores = pd.Series([ordering.ordering_score(o, distances) for o in random_orders])
scores = pd.DataFrame([
    {"ordering": "PoCO (zigzag)", "score": ordering.ordering_score(poco_order, distances)},
    {"ordering": "PoCO (one-direction walk)", "score": ordering.ordering_score(
        ordering.poco(distances, rows, cols, ordering.zigzag(rows, cols, alternate=False)),
        distances)},
    {"ordering": "dataset order", "score": ordering.ordering_score(
        layout.identity_order(len(class_names), rows, cols), distances)},
    {"ordering": f"random (best of {num_random})", "score": random_scores.max()},
    {"ordering": f"random (mean of {num_random})", "score": random_scores.mean()},
])
scores["score ÷ random mean"] = scores["score"] / random_scores.mean()
scores["embeddings"] = embedding_source
figures.save_table(scores, f"poco_scores_{dataset}",
                   figures.make_sidecar(dataset=dataset, data_source="none", profile=profile,
                                        hyperparameters={"grid": [rows, cols],
                                                         "embeddings": embedding_source,
                                                         "num_random": num_random},
                                        seeds=[seed]))
print(scores.drop(columns="embeddings").round(5).to_string(index=False))

# %%
size = max(6.0, cols * 1.1)
fig, ax = plt.subplots(figsize=(size, size * rows / cols + 0.8))
figures.plot_class_tiling(ax, poco_order, class_names, distances=distances)
synthetic = embedding_source.startswith("SYNTHETIC")
ax.set_title(f"PoCO class tiling, {nbs.pretty(dataset)} ({rows}×{cols})"
             + ("\nSYNTHETIC embeddings (smoke profile): NOT CLIP — layout is not semantic"
                if synthetic else "\n" + embedding_source)
             + "\ncell colour: mean distance to neighbours (light = close)", fontsize=10)
figures.save_figure(fig, f"fig7_poco_tiling_{dataset}",
                    figures.make_sidecar(dataset=dataset, data_source="none", profile=profile,
                                         hyperparameters={"grid": [rows, cols],
                                                          "embeddings": embedding_source},
                                         seeds=[seed]))
plt.show()

# %% [markdown]
# **Reading the figure.** With CLIP embeddings (profiles `quick`/`paper`, or `embeddings=PATH`)
# the paper observes semantically coherent regions — trees together, people together,
# vehicles together — and also PoCO's limits: it is greedy, so a class placed early (the paper
# mentions the leopard) can end up far from its best neighbours. With synthetic embeddings the
# layout only shows that the code runs. The class order found here is what `podd distill` uses
# with `class_order="poco"`; `ablation_class_order` tests whether the score predicts accuracy.

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
# # Ablation · How many patches? (§5.3, fig 6)
#
# **What the paper claims.** Fix the poster (CIFAR-10 at 1 IPC) and vary only how many patches
# are cut from it. With as many patches as classes — no overlap — PoDD *is* the RaT-BPTT
# baseline and scores lowest. As the number of patches grows (more overlap, more shared pixels),
# accuracy improves, drastically beyond a threshold. More patches also cost more distillation
# and training time, which is why the paper uses fewer patches on the larger datasets.
#
# **What you will see.** One distillation per patch count, from `K` non-overlapping patches
# (stride = one image) upward (stride = ½, ¼, … of an image), and accuracy against the number of
# patches — the paper's fig 6.
#
# **Profiles.** `smoke` runs a few steps on a stand-in (a pipeline check, not a result);
# `quick` / `paper` use real data.

# %% tags=["parameters"]
import os

dataset = "cifar10"      # the paper uses CIFAR-10
profile = os.environ.get("PODD_PROFILE", "paper")   # smoke | quick | paper
ipc = 1.0
stride_fractions = None  # patch stride as a fraction of the image side (default per profile)
steps = None             # outer steps per distillation (default: the preset's)
seed = 0
embeddings = None        # optional class-embeddings file for PoCO (offline use)
class_order = "poco"     # "data" (classes ordered by their images) or "identity" (dataset order):
                         # PoDD without CLIP weights, e.g. offline
n_val = None             # hold out this many training images as the test set (data without one)
like = None              # for local data (npz:PATH): the paper dataset it holds, e.g. "cifar10":
                         # use that dataset's settings
executor = "local"       # local (this kernel) | slurm (one job per run, via submitit; settings
                         # from PODD_SLURM_PARTITION, _TIME_MIN, _GPUS ...) | submitit-local

# %%
import matplotlib.pyplot as plt
import pandas as pd

from podd import figures
from podd import notebooks as nbs

stride_fractions = stride_fractions or nbs.profile_default(
    profile, smoke=[1.0, 0.5, 0.25], quick=[1.0, 0.5, 1 / 3, 0.25, 1 / 6, 0.125],
    paper=[1.0, 0.5, 1 / 3, 0.25, 1 / 6, 0.125])
# the profile resolved, figures styled, this profile's data loaded (its note says what it is);
# outputs are named after paper_name = like or dataset (an npz of CIFAR-10 → cifar10).
# about=None: no header yet, the one printed below names the patch grids, which need the data.
profile, data, paper_name = nbs.setup(dataset, profile, seed=seed, n_val=n_val, like=like, about=None)
patch_counts = nbs.patch_counts_for_strides(data, ipc, stride_fractions)
print(f"profile: {profile}, dataset: {dataset}, IPC {ipc}; patch grids (ny, nx): {patch_counts}")

# %% [markdown]
# ## Distil one poster per patch count
#
# Everything but the patch count stays fixed: same poster size, class order, labels, steps, seed.
# The distilled batch is capped at the number of patches.

# %%
sweep = nbs.Sweep(data, executor,          # executor = "slurm": one cluster job per count
                  name=f"patch-number-{nbs.slug(dataset)}-{profile}")
for counts in patch_counts:
    config = nbs.run_config(data, profile, like=like, mode="podd", ipc=ipc, patches=counts,
                            embeddings=embeddings, **nbs.class_order_override(class_order),
                            seed=seed, **({"steps": steps} if steps else {}))
    sweep.distill(config, cell=f"patches-{counts[0]}x{counts[1]}", **{"patches (ny×nx)": f"{counts[0]}×{counts[1]}"})
outcomes = sweep.gather()
for counts, outcome in zip(patch_counts, outcomes):
    print(f"{counts[0] * counts[1]:>5} patches ({counts[0]}×{counts[1]}): "
          f"{outcome.row['accuracy']:.1f} ± {outcome.row['std']:.1f} %  ({outcome.wall_time_s:.1f} s)")

# %%
results = pd.DataFrame([o.row for o in outcomes])[
    ["patches", "patches (ny×nx)", "ipc", "poster H×W", "labels", "accuracy", "std", "eval"]]
results["overlap"] = ["none (= RaT-BPTT baseline)" if n == data.num_classes else "overlapping"
                      for n in results["patches"]]
sidecar = nbs.runs_sidecar(data, profile, outcomes, requested=dataset)
figures.save_table(results.round(3), f"ablation_patch_number_{nbs.slug(paper_name)}", sidecar,
                   caption=f"Patch-number ablation ({nbs.pretty(paper_name)}, IPC {ipc}). Measured "
                           f"on: {nbs.measured_on(data, profile, paper_name)}.")
results

# %%
fig, ax = plt.subplots(figsize=(7, 4.2))
figures.plot_accuracy_vs(ax, results, "patches", label="PoDD (measured)",
                         color=figures.COLORS["podd"])
no_overlap = results[results["patches"] == data.num_classes]
if len(no_overlap):
    ax.scatter(no_overlap["patches"], no_overlap["accuracy"], s=140, facecolors="none",
               edgecolors=figures.COLORS["baseline"], linewidths=2,
               label=f"K = {data.num_classes} patches, no overlap (= RaT-BPTT)", zorder=5)
ax.set_xscale("log")
ax.set_xticks(results["patches"].tolist(), [str(n) for n in results["patches"]])
ax.minorticks_off()
ax.set_xlabel("number of patches cut from the poster (log scale)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"{nbs.pretty(paper_name)} at {ipc} IPC: accuracy vs number of patches (fig 6)\n"
             f"measured on: {nbs.measured_on(data, profile, paper_name)}", fontsize=10)
ax.legend(loc="best")
fig.tight_layout()
figures.save_figure(fig, f"fig6_patch_number_{nbs.slug(paper_name)}", sidecar)
plt.show()

# %% [markdown]
# **Reading it.** The left-most point is the baseline (each patch is one class's image). The
# paper's finding is the jump once patches overlap enough; under `smoke` the curve is flat noise.

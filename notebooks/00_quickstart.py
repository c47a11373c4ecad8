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
# # 00 · Quickstart: distil a dataset into one poster
#
# **The idea in one paragraph.** Dataset distillation compresses a training set into a few
# synthetic images on which a fresh network trains almost as well as on the full data. PoDD
# ("Distilling Datasets Into Less Than One Image") distils the whole dataset into **one poster**:
# a single image whose overlapping patches are the training images, each with a soft label read
# off the poster's class layout. Because patches share pixels, the poster can have *fewer pixels
# than one image per class*.
#
# **What you will do.** Distil scikit-learn's 8×8 digits (bundled, no download) into a poster,
# look at it and at its patches, evaluate it the way the paper does (fresh networks trained only
# on the patches, tested on held-out digits), compare with random real images, and save / reload
# the poster. Under `smoke` everything takes seconds and the numbers are a pipeline check (a few
# steps of a tiny network: expect near-chance accuracy); the `quick` profile (several minutes on a
# CPU) gives a real result.

# %% tags=["parameters"]
import os

dataset = "digits"       # any podd dataset; digits runs offline in seconds
profile = os.environ.get("PODD_PROFILE", "paper")   # smoke | quick | paper
seed = 0

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from podd import artifacts, figures
from podd import notebooks as nbs
from podd.display import poster_image
from podd.distiller import patches_and_labels

profile = nbs.resolve_profile(profile)
figures.use_style()
print(f"profile: {profile}, dataset: {dataset}, seed {seed}")

# %% [markdown]
# ## 1. Data
#
# `podd.data` returns uint8 NCHW tensors and class names for every dataset; the printed line says
# exactly what the numbers below are measured on.

# %%
data = nbs.load_for_profile(dataset, profile, seed=seed)

# %% [markdown]
# ## 2. Distil
#
# `podd.presets.resolve_config(dataset, profile)` holds the settings (here wrapped by
# `run_config`, which adapts them for offline use); `podd.run_loop.distill` runs RaT-BPTT on the
# poster and evaluates the result. All randomness comes from `seed`.

# %%
config = nbs.run_config(data, profile, mode="podd", seed=seed)
print(f"IPC {config.ipc}, class grid {config.grid}, patches {config.patches}, labels "
      f"{config.labels}, {config.steps} outer steps, ConvNet width {config.width}")
run = nbs.distill_and_evaluate(config, data)
artifact = run.artifact
print(f"distilled in {run.wall_time_s:.1f} s: poster {artifact.geometry.size}, "
      f"{artifact.geometry.num_patches} patches")

# %% [markdown]
# ## 3. Look at the poster and its patches

# %%
preprocess = nbs.preprocessor_for(data, config.zca)
image = poster_image(artifact.poster, preprocess)
fig, ax = plt.subplots(figsize=(8, 3.6))
figures.plot_patch_grid(ax, image, artifact.geometry, highlight=[0])
figures.annotate_class_areas(ax, artifact.class_order, artifact.geometry.size,
                             artifact.class_names, fontsize=7)
figures.save_figure(fig, f"quickstart_poster_{nbs.slug(dataset)}",
                    nbs.runs_sidecar(data, profile, [run], requested=dataset))
plt.show()

# %%
images, soft_labels = patches_and_labels(artifact)        # what a student network trains on
shown = min(20, len(images))
top = soft_labels[:shown].max(1)
titles = [f"{artifact.class_names[int(k)]} {float(p):.2f}" for p, k in zip(top.values, top.indices)]
pictures = (preprocess.inverse(images[:shown]).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1)
fig = figures.patch_gallery(pictures.numpy(), titles, ncols=10,
                            suptitle="patches with their strongest label and its probability")
plt.show()

# %% [markdown]
# ## 4. Evaluate
#
# The paper's protocol (§5.1): train fresh ConvNets only on the patches and their soft labels,
# test on held-out images, report mean ± std over the networks. As a floor, the same networks
# trained on one random real image per class:

# %%
real = nbs.real_reference(data, config, images_per_class=1, subset_seed=seed)
for outcome in (run, real):
    print(f"{outcome.row['method']:<38} {outcome.row['patches']:>4} images: "
          f"{outcome.row['accuracy']:.1f} ± {outcome.row['std']:.1f} % "
          f"({outcome.row['eval']})")

# %% [markdown]
# ## 5. Save and reload
#
# A poster is saved as one file with everything needed to reuse it — geometry, class order,
# labels, preprocessing and the full config (`podd show` and `podd evaluate` read it too).

# %%
with tempfile.TemporaryDirectory() as folder:
    path = artifacts.save_artifact(Path(folder) / "poster.pt", artifact)
    again = artifacts.load_artifact(path)
    print(f"reloaded: mode {again.mode}, labels {again.label_mode}, geometry {again.geometry}")

# %% [markdown]
# **Next.** `01_poster` (the poster and its patches), `02_poco` (class order), `03_poddl`
# (labels), then the experiments: `table1`, `table2`, `ablation_class_order`,
# `ablation_patch_number`, `discussion`.

# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Discussion · What does a poster look like? (§6, figs 8 and 9)
#
# **What the paper claims.** A distilled poster carries semantics at two scales: *local* (each
# class area looks like its class) and, to a lesser degree, *global* (structure across class
# borders) — hard to see by eye; the paper sketches over a poster to point them out (fig 8). To
# probe this it distils CIFAR-10 with **one poster per class** (every patch of poster `k` is
# labelled `k`): those posters keep local semantics, show several modes of each class, and some
# show global structure — airplanes with sky on top and grass below (fig 9).
#
# **What you will see.** (1) A distilled poster as an image, with each class's area named (the
# sketching of fig 8 is left to the reader's eye); (2) per-class posters, one per class;
# (3) beyond the paper: the poster of (1) training ResNet-18, VGG-11 and AlexNet students.
#
# **Profiles.** Under `smoke` the posters are distilled for a few steps from noise on a
# synthetic stand-in: they show the layout and the display path, not semantics. Semantics need
# the `paper` profile (hours on a GPU) or at least `quick`.

# %% tags=["parameters"]
import os

dataset = "cifar10"      # the paper shows CIFAR-10
profile = os.environ.get("PODD_PROFILE", "paper")   # smoke | quick | paper
ipc = None               # poster budget for fig 8 (default: the preset's)
per_class_ipc = 4.0      # pixels of each class poster, in images (fig 9)
per_class_patches = (3, 3)   # patches cut from each class poster
seed = 0
embeddings = None        # optional class-embeddings file for PoCO (offline use)
class_order = "poco"     # "data" (classes ordered by their images) or "identity" (dataset order):
                         # PoDD without CLIP weights, e.g. offline
n_val = None             # hold out this many training images as the test set (data without one)
like = None              # for local data (npz:PATH): the paper dataset it holds, e.g. "cifar10":
                         # use that dataset's settings
eval_archs = None        # students for section 3 (default: all four; quick: convnet and alexnet,
                         # since ResNet-18 and VGG-11 students take hours on a CPU)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from podd import figures
from podd import notebooks as nbs
from podd.choices import EVAL_ARCHS
from podd.display import poster_image
from podd.distiller import patches_and_labels
from podd.evaluate import EvalProtocol, across_architectures

# the profile resolved, figures styled, this profile's data loaded (its note says what it is);
# outputs are named after paper_name = like or dataset (an npz of CIFAR-10 → cifar10)
profile, data, paper_name = nbs.setup(dataset, profile, seed=seed, n_val=n_val, like=like,
                                      about=f"seed {seed}")
per_class_patches = nbs.list_parameter(per_class_patches, "per_class_patches", int, length=2)
eval_archs = eval_archs or nbs.profile_default(profile, smoke=list(EVAL_ARCHS), quick=["convnet", "alexnet"],
                                               paper=list(EVAL_ARCHS))

# %% [markdown]
# ## 1. The poster as an image (fig 8)
#
# The poster lives in the network's input space (ZCA-whitened for the paper's datasets); to show
# it, `podd.display.poster_image` undoes the ZCA on the whole poster at once (the inverse ZCA's
# centre row as a convolution; ZCA of natural images is nearly translation invariant) and
# stretches the result to [0, 1] once, so the overlapping patches meet without seams.

# %%
config = nbs.run_config(data, profile, mode="podd", ipc=ipc, embeddings=embeddings, seed=seed,
                        **nbs.class_order_override(class_order),
                        like=like)
shared = nbs.distill_and_evaluate(config, data)
artifact = shared.artifact
preprocess = nbs.preprocessor_for(data, config.zca)
image = poster_image(artifact.poster, preprocess)
print(f"poster {artifact.geometry.size[0]}×{artifact.geometry.size[1]} "
      f"(IPC {artifact.geometry.ipc:.2f}, {artifact.geometry.num_patches} patches), "
      f"test accuracy {shared.row['accuracy']:.1f} ± {shared.row['std']:.1f} %")

# %%
H, W = artifact.geometry.size
fig, axes = plt.subplots(1, 2, figsize=(14, 14 * H / W / 2 + 1.2))
figures.show_image(axes[0], image, "distilled poster")
figures.show_image(axes[1], image, "… with each class's area named")
figures.annotate_class_areas(axes[1], artifact.class_order, artifact.geometry.size,
                             artifact.class_names)
fig.suptitle(f"{nbs.pretty(paper_name)} poster (fig 8) — measured on: "
             f"{nbs.measured_on(data, profile, paper_name)}", fontsize=10)
fig.tight_layout()
sidecar = nbs.runs_sidecar(data, profile, [shared], requested=dataset)
figures.save_figure(fig, f"fig8_poster_semantics_{nbs.slug(paper_name)}", sidecar)
plt.show()

# %% [markdown]
# ## 2. One poster per class (fig 9)
#
# In `per-class` mode each class gets its own poster of `per_class_ipc` images' worth of pixels,
# cut into overlapping patches that all carry that class's label. Overlap is now always *within*
# a class, so the posters can only share pixels between views of the same class.

# %%
per_class_config = nbs.run_config(data, profile, like=like, mode="per-class", ipc=per_class_ipc,
                                  patches=tuple(per_class_patches), seed=seed)
per_class = nbs.distill_and_evaluate(per_class_config, data)
posters = per_class.artifact.poster                       # (K, c, H, W)
images = [poster_image(p, preprocess)
          for p in posters]
print(f"{len(images)} class posters of {tuple(posters.shape[-2:])} pixels, "
      f"{per_class.row['patches']} patches each; test accuracy "
      f"{per_class.row['accuracy']:.1f} ± {per_class.row['std']:.1f} %")

# %%
shown = min(len(images), 20)
fig = figures.patch_gallery(images[:shown], per_class.artifact.class_names[:shown],
                            ncols=min(shown, 5), size=2.2,
                            suptitle=f"per-class posters (fig 9), {per_class_ipc:g} IPC each — "
                                     f"measured on: {nbs.measured_on(data, profile, paper_name)}")
figures.save_figure(fig, f"fig9_per_class_posters_{nbs.slug(paper_name)}",
                    nbs.runs_sidecar(data, profile, [per_class], requested=dataset))
plt.show()

# %% [markdown]
# ## 3. Beyond the paper: does the poster train other networks?
#
# The poster of section 1 was distilled through the ConvNet. Benchmarks of dataset distillation
# (DC-Bench, DD-Ranking) also train other students on a distilled set — ResNet-18, VGG-11 and
# AlexNet in their 32×32 variants — to see whether it encodes the data or the ConvNet. Same
# protocol, seeds and steps for every student; an architecture that cannot take these images
# (ResNet-18 and VGG-11 on 8×8 digits) is listed with the reason. The same on a finished run:
# `podd evaluate RUN --arch convnet resnet18 vgg11 alexnet`; on the CIFAR-10 subset's posters:
# `benchmarks/cross_arch.py`.

# %%
patch_images, patch_labels = patches_and_labels(artifact)
test_x = preprocess(data.x_test)
results, skipped = across_architectures(patch_images, patch_labels, test_x, data.y_test,
                                        EvalProtocol.from_config(config), eval_archs)
transfer = pd.DataFrame([{"student": arch, "accuracy": r.mean(), "std": r.std(),
                          "eval": f"{r.num_models} models × {r.steps[-1]} steps"}
                         for arch, r in results.items()])
for arch, why in skipped.items():
    print(f"{arch}: not evaluated — {why}")
figures.save_table(transfer.round(2), f"cross_arch_{nbs.slug(paper_name)}",
                   nbs.runs_sidecar(data, profile, [shared], requested=dataset, students=list(results)),
                   caption=f"The fig-8 poster on other students. Measured on: "
                           f"{nbs.measured_on(data, profile, paper_name)}.")
transfer

# %% [markdown]
# **Open questions the paper raises** (§6): better class orders (photometric, image-based), IPC
# above one, augmenting patches during distillation, and cyclic posters whose border patches
# wrap around. All of these are small changes to `podd.poster` / `podd.ordering`.

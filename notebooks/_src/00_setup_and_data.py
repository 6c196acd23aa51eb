# %% [markdown]
# # 00 · Set-up, CIFAR-10 with few labels, and the baseline to beat
#
# **What you will learn**
# - how the course's data pipeline works: CIFAR-10 as one `uint8` tensor on the device, a
#   class-balanced few-label split, and augmentations that run batched on the device;
# - what weak, contrastive and strong augmentations do to an image;
# - how well plain supervised training does with 250 and with 4000 labels. Every later notebook
#   tries to beat these numbers by also using the unlabelled images.
#
# **Time budget**: the two baseline trainings of `BUDGET_EPOCHS = 10` epochs dominate: about
# 2 min on a laptop GPU (estimated) and about 2.4 h on one CPU thread (measured
# throughput); set `BUDGET_EPOCHS` lower (e.g. 1) to go faster on a CPU.
#
# **Prerequisites**: Python and basic PyTorch (tensors, `nn.Module`, a training loop). No earlier
# notebook.

# %% [markdown]
# ## Set-up
# `SMOKE` is true when the tests run this notebook (`SSL_COURSE_SMOKE=1`): the same cells run on
# tiny data for a few steps. Leave it alone when you learn.

# %%
import platform

import matplotlib.pyplot as plt
import torch
import torchvision

import ssl_course
from ssl_course import config
from ssl_course.data import cifar10_available, few_label_split, make_bundle
from ssl_course.data.augment import contrastive_augment, strong_augment, weak_augment
from ssl_course.experiment import Experiment, run_experiment
from ssl_course.viz import image_grid, plot_history

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
print(f"ssl_course {ssl_course.__version__} · torch {torch.__version__} · torchvision {torchvision.__version__} "
      f"· python {platform.python_version()}")
print(f"device: {DEVICE}" + (f" ({torch.cuda.get_device_name()})" if DEVICE.type == "cuda" else ""))
print(f"smoke mode: {SMOKE}")

# %% [markdown]
# ## The data
# `make_bundle` loads the training and test images as `uint8` tensors of shape `[N, 3, 32, 32]`
# and moves them to the device once. At 150 MB, all of CIFAR-10 fits in any GPU's memory, so no
# loader processes are needed. If CIFAR-10 is not on this machine (see `data/README.md`), the
# notebook falls back to the course's synthetic data set: ten classes of coloured shapes and
# textures that a small network learns in seconds.

# %%
DATA = "cifar10" if cifar10_available() else "synthetic"
SUBSET = dict(train_subset=2000, test_subset=500) if SMOKE else {}
data = make_bundle(DATA, num_labels=250 if not SMOKE else 100, seed=0, device=DEVICE, **SUBSET)
print(f"data set: {DATA}; train {tuple(data.train_images.shape)} {data.train_images.dtype}; "
      f"test {tuple(data.test_images.shape)}; classes: {', '.join(data.class_names)}")

# %%
per_class = 8
examples = torch.cat([data.train_images[(data.train_labels == c).nonzero()[:per_class, 0]]
                      for c in range(data.num_classes)])
image_grid(examples, nrow=per_class, suptitle="eight training images of each class (one class per row)")
plt.show()

# %% [markdown]
# ## A few labels
# Semi-supervised papers report CIFAR-10 results with 40, 250 and 4000 labels: 4, 25 or 400 per
# class. `few_label_split` draws the same number from every class, is deterministic for a seed,
# and returns the rest as the unlabelled pool. The labelled images are all a learner may use as
# labels; the unlabelled pool keeps its labels hidden (only evaluation looks at them).

# %%
labeled_idx, unlabeled_idx = few_label_split(data.train_labels.cpu(), num_labels=40, seed=0)
print(f"40 labels: {labeled_idx.numel()} labelled, {unlabeled_idx.numel()} unlabelled, "
      f"overlap {len(set(labeled_idx.tolist()) & set(unlabeled_idx.tolist()))}")
chosen = data.train_images[labeled_idx.to(DEVICE)]
order = data.train_labels[labeled_idx.to(DEVICE)].argsort(stable=True)
image_grid(chosen[order], nrow=4, suptitle="the whole labelled set for 40 labels (4 per class, one class per row)")
plt.show()

figure, axis = plt.subplots(figsize=(7, 2.5))
counts = torch.bincount(data.train_labels[data.labeled_idx].cpu(), minlength=data.num_classes)
axis.bar(range(data.num_classes), counts.numpy())
axis.set(xticks=range(data.num_classes), ylabel="labelled images", title=f"{data.labeled_idx.numel()} labels: per-class counts")
axis.set_xticklabels(data.class_names, rotation=45, ha="right")
plt.show()

# %% [markdown]
# ## Augmentations, batched on the device
# Each function takes a `uint8` batch and returns normalised float images, drawing **independent
# random parameters for every image** from a seeded `torch.Generator`:
#
# | pipeline | what it does | used by |
# |---|---|---|
# | `weak_augment` | reflect-pad 4, random 32×32 crop, horizontal flip | supervised, FixMatch's weak view |
# | `contrastive_augment` | random resized crop, flip, colour jitter, grayscale | SimCLR, MoCo, SupCon, NNCLR, PAWS |
# | `strong_augment` | RandAugment (2 random ops) + Cutout | FeatMatch |
# | `fixmatch_augment` | FixMatch's RandAugment (2 ops, each applied with probability 0.5) + Cutout | FixMatch's strong view |
#
# Each row below is one original image followed by four draws of each pipeline.

# %%
from ssl_course.data.augment import normalize

generator = torch.Generator(device=DEVICE).manual_seed(0)
rows = []
for image in data.train_images[:4]:
    copies = image.unsqueeze(0).repeat(4, 1, 1, 1)
    rows += [normalize(image.unsqueeze(0)), weak_augment(copies, generator),
             contrastive_augment(copies, generator), strong_augment(copies, generator)]
titles = (["original"] + ["weak"] * 4 + ["contrastive"] * 4 + ["strong"] * 4) * 4
image_grid(torch.cat(rows), nrow=13, titles=titles, scale=0.9)
plt.show()

# %% [markdown]
# Things to notice: weak views are the same picture shifted by a few pixels; contrastive views
# can zoom into a small part and change the colours, so "is this the same image?" needs more
# than colour histograms; strong views can be hard to recognise at all. Contrastive methods
# learn what stays the same across such views; FixMatch asks the network to give a strong view
# the label it confidently gave the weak one.

# %% [markdown]
# ## The baseline: supervised training on the labelled images only
# The same engine trains every method in the course (`ssl_course.train.fit`): warm-up + cosine
# learning rate, mixed precision on a GPU, a progress bar, checkpoints. Here it trains the
# course's fast backbone with cross-entropy on 250 and then on 4000 labels for the same number
# of epochs. Runs are saved under `runs/`: running the cell again reloads them instead of training
# again.

# %%
BUDGET_EPOCHS = 10   # per label count; smoke mode stops after 30 steps instead
# Expected time of this cell (2 supervised runs of 10 epochs, backbone small), training only:
#   laptop GPU ≈ 2 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 2.4 h: measured throughput on one thread of a server CPU, times the
#   epochs (benchmarks/RESULTS.md); more cores are faster. Fractions such as 0.5 work too.
LABEL_COUNTS = (50, 500) if SMOKE else (250, 4000)
results = {}
for num_labels in LABEL_COUNTS:
    experiment = Experiment(method="supervised", data=DATA, labels=num_labels, backbone="tiny" if SMOKE else "small",
                            epochs=BUDGET_EPOCHS, steps=30 if SMOKE else None,
                            batch_size=64 if SMOKE else None, **SUBSET)
    out = config.runs_dir() / f"00_supervised_{DATA}_{num_labels}"
    results[num_labels] = run_experiment(experiment, out, resume=True)
    print(f"{num_labels:>5} labels: test accuracy {results[num_labels]['test_accuracy']:.3f} "
          f"(kNN {results[num_labels]['knn_accuracy']:.3f}) after {results[num_labels]['wall_time_seconds']:.0f} s")

# %%
import json

for num_labels in LABEL_COUNTS:
    history = json.loads((config.runs_dir() / f"00_supervised_{DATA}_{num_labels}" / "history.json").read_text())
    plot_history(history, title=f"supervised, {num_labels} labels")
plt.show()

figure, axis = plt.subplots(figsize=(4, 3))
axis.bar([str(n) for n in LABEL_COUNTS], [results[n]["test_accuracy"] for n in LABEL_COUNTS])
axis.set(xlabel="labels", ylabel="test accuracy", ylim=(0, 1), title="supervised baseline")
plt.show()

# %% [markdown]
# ## Take-aways
# - With few labels the network can memorise its handful of images: trained long enough, its
#   training loss falls towards zero while its test accuracy stays far below what the same network
#   reaches with all 50 000 labels. Read the printed test accuracies for your run: the gap between
#   the two bars above (what 16× more labels buy at this budget) is what the rest of the course
#   tries to close *without* more labels. In smoke mode both runs are too short to show it.
# - The kNN accuracy printed above uses **all** training labels as its memory bank; it measures
#   how well the features separate classes, not what a few-label learner can do. The number to
#   compare across methods is the test accuracy.
# - Compare methods only under the same budget, split and backbone; the comparison notebook
#   (`12_compare`) does exactly that.
#
# **Pitfalls**: an augmentation pipeline that runs on the CPU can starve a GPU; the few-label split
# must be class-balanced and fixed by a seed, or results are not comparable; the CIFAR-10 copy
# on the course machines is rebuilt from JPEGs, so accuracies run a little below published ones.
#
# ## Exercise
# Change `num_labels` in the split cell to 4000 and check, with `torch.bincount`, that every class
# gets 400 labels. What error do you get for 45 labels, and why?
#
# ## References
# - A. Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009 (CIFAR-10).
# - K. Sohn et al., *FixMatch*, NeurIPS 2020 (the 40 / 250 / 4000-label protocol, weak and strong views).
# - T. Chen et al., *A Simple Framework for Contrastive Learning of Visual Representations*, ICML 2020
#   (the contrastive augmentations).

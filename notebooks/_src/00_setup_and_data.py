# %% [markdown]
# # 00 · Set-up, CIFAR-10 with few labels, and the baseline to beat
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/00_setup_and_data.ipynb)
#
# **What you will learn**
# - how the course's data pipeline works: CIFAR-10 as one `uint8` tensor on the device, a
#   class-balanced few-label split, and augmentations that run batched on the device;
# - what weak, contrastive and strong augmentations do to an image;
# - how well plain supervised training does with 250 and with 4000 labels. Every later notebook
#   tries to beat these numbers by also using the unlabelled images;
# - the weighted kNN classifier that every training run reports, derived and written as a loop,
#   and which labels its memory bank uses.

# %% [markdown]
# **Time budget**: Run All on one CPU thread takes about 20 min, where the notebook trains the `tiny`
# backbone: the two baseline trainings of `CPU_EPOCHS = 5` epochs each, on every training image, take
# about 12-18 min (from measured step times); more cores are faster. `FULL_BUDGET = True` in the
# training cell trains them for the full `BUDGET_EPOCHS = 10` epochs (about 35 min on a CPU). On a
# laptop GPU the full budget takes about 2 min (estimated, `small` backbone).
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: the training cell then loads the course's reference runs instead
# (see the README).

# %% [markdown]
# **Prerequisites**: Python and basic PyTorch (tensors, `nn.Module`, a training loop). No earlier
# notebook.
#
# **Recap** of Python and PyTorch, which this notebook builds on (answers:
# [`notebooks/solutions/ANSWERS.md`, section 00](solutions/ANSWERS.md#00-set-up-and-data)):
# 1. In a PyTorch training step, what does `loss.backward()` compute, and where does it put it?
# 2. Why does a training loop call `optimizer.zero_grad()` (or `set_to_none`) before every backward
#    pass?
# 3. What changes between `model.train()` and `model.eval()`?

# %% [markdown]
# ## Set-up
# `SMOKE` is true when the environment variable `SSL_COURSE_SMOKE=1` is set: every cell then runs
# on tiny data for a few steps, a quick check that the notebook runs from top to bottom (its numbers
# mean nothing). Leave it unset when you learn.

# %%
import sys

if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "ssl_course @ git+https://github.com/ssl-course/ssl_course"], check=True)
    from ssl_course.colab import colab_setup
    colab_setup()

import platform

import matplotlib.pyplot as plt
import torch
import torchvision

import ssl_course
from ssl_course import config, reference
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
print(f"smoke mode: {SMOKE} · course mode: {config.mode()}")

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
# **What to look for**: ten rows, each holding one class (planes, cars, birds, ...), every image 32×32
# pixels and recognisable. If a row mixes classes, or the colours look inverted or noisy, the labels
# or the normalisation are wrong, and every later notebook inherits the error.

# %% [markdown]
# ## A few labels
# Semi-supervised papers report CIFAR-10 results with 40, 250 and 4000 labels: 4, 25 or 400 per
# class. The 250- and 4000-label settings come from Oliver et al. (2018), who proposed a common
# protocol for comparing semi-supervised methods; MixMatch reported on it, and FixMatch added the
# 40-label setting. `few_label_split` draws the same number from every class, is deterministic for a seed,
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
# **What to look for**: the first grid has exactly four images per row, each row one class; the bar
# chart has ten bars of equal height (25 each for 250 labels). Unequal bars would mean the split is
# not class-balanced, and an overlap other than 0 above would mean a labelled image also sits in the
# unlabelled pool.

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
# A **weak augmentation** leaves the image the same picture, only shifted by a few pixels or
# mirrored; a **strong augmentation** may change it so much that it is hard to recognise, while
# its class stays the same. **RandAugment** draws a few operations at random from a fixed list
# (rotate, shear, posterize, colour, contrast, ...) and applies each at a random strength;
# **Cutout** then greys out a random square, so the network cannot rely on one small region.
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
# **What to look for**: weak views are the same picture shifted by a few pixels; contrastive views
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
#
# **What an epoch is in this course.** Every budget in the course is counted in epochs, and the
# engine defines an epoch the same way for every method (`ssl_course.train.TrainConfig`): one epoch
# is `len(training set) // batch_size` optimiser steps, where `batch_size` is the method's
# **primary batch**. Here the training set holds the 45 000 images left after the validation split
# (below) and the baseline's batch is 128 images, so one epoch is 351 steps. What the primary batch
# holds depends on the method: labelled images for this supervised baseline (with 250 labels, one
# epoch goes through the labelled set about 180 times: 351 × 128 / 250), unlabelled or all
# training images for the self-supervised methods, and 448 unlabelled images for FixMatch (its
# labelled batch of 64 comes on top). So "10 epochs" means the same number of primary images for
# every method, about ten times the size of the training set: not the same number of passes over
# the labelled set, not the same images, and not the same time (one method's step can cost as much
# as several of another's).

# %%
FULL_BUDGET = False   # True: BUDGET_EPOCHS epochs per label count on a CPU too (~30-35 min on one CPU thread)
BUDGET_EPOCHS = 10    # per label count, on a GPU or with FULL_BUDGET = True; fractions such as 0.5 work
CPU_EPOCHS = 5        # per label count, on a CPU (FULL_BUDGET = False), on every training image
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
EPOCHS = CPU_EPOCHS if CPU_RUN else BUDGET_EPOCHS   # smoke mode stops after 30 steps instead
# Run All on a CPU (FULL_BUDGET = False) trains the two baselines for CPU_EPOCHS epochs each, on all
# 45 000 training images: 2 x 1755 steps of the `tiny` backbone, about 12-18 min on one thread (a step
# took 0.26 s in the course's reference run, 351 steps in 91 s, and 0.21-0.30 s with
# `benchmarks/cpu_step_time.py`); more cores are faster. Present mode shows the
# course's reference runs. Runs resume from runs/: delete this notebook's folders there before
# switching FULL_BUDGET.
# Laptop GPU (backbone small, 10 epochs) ≈ 2 min: estimated from the FLOPs of each method's training step
# (counted with torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop.
LABEL_COUNTS = (50, 500) if SMOKE else (250, 4000)
BACKBONE = reference.notebook_backbone("00", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
results, run_dirs = {}, {}
for num_labels in LABEL_COUNTS:
    experiment = Experiment(method="supervised", data=DATA, labels=num_labels, backbone=BACKBONE,
                            epochs=EPOCHS, steps=30 if SMOKE else None,
                            batch_size=64 if SMOKE else None, **SUBSET)
    run_dirs[num_labels] = config.runs_dir() / f"00_supervised_{DATA}_{num_labels}_{BACKBONE}"
    results[num_labels] = run_experiment(experiment, run_dirs[num_labels], resume=True)
    result = results[num_labels]
    print(f"{num_labels:>5} labels: validation accuracy {result['val_accuracy']:.3f}, test accuracy "
          f"{result['test_accuracy']:.3f} (kNN on the labelled images {result['knn_accuracy']:.3f}) "
          f"after {result['wall_time_seconds']:.0f} s")
    shipped = reference.load_reference(run_dirs[num_labels])
    if reference.presenting():
        print(f"       ({reference.describe(run_dirs[num_labels])})")
    elif shipped is not None:
        print(f"       the course's reference: test accuracy {shipped['metrics']['test_accuracy']:.3f} "
              f"({reference.describe(run_dirs[num_labels])})")

# %%
import json

for num_labels in LABEL_COUNTS:
    # present mode trained nothing: the run's history is the shipped reference's
    folder = reference.reference_dir(run_dirs[num_labels]) if reference.presenting() else run_dirs[num_labels]
    history = json.loads((folder / "history.json").read_text())
    plot_history(history, title=f"supervised, {num_labels} labels", reference=run_dirs[num_labels])
plt.show()

figure, axis = plt.subplots(figsize=(4, 3))
axis.bar([str(n) for n in LABEL_COUNTS], [results[n]["test_accuracy"] for n in LABEL_COUNTS])
axis.set(xlabel="labels", ylabel="test accuracy", ylim=(0, 1), title="supervised baseline")
plt.show()

# %% [markdown]
# **What to look for**: in each history the training loss falls and the validation accuracy rises,
# then flattens; a validation curve that falls while the training loss keeps falling is the network
# memorising its few labels. In the bar chart, 4000 labels should beat 250 by a wide margin: labels
# are the scarce resource the rest of the course tries to replace.

# %% [markdown]
# **How far is this from the papers?** Oliver et al. (2018, Table 1) report 20.26 % test *error*
# (79.7 % accuracy) for purely supervised training of a **WideResNet-28-2** (WRN-28-2: a residual
# network 28 layers deep with twice the channels of the original CIFAR ResNet, about 1.5 M parameters,
# the standard network of few-label CIFAR-10 papers) on 4000 CIFAR-10 labels,
# after 500 000 training iterations. Your run above uses a smaller network and `EPOCHS`
# epochs, a tiny fraction of that budget: expect it to be well below.
#
# ## The kNN monitor, derived
# Every training run prints a **kNN accuracy**. It answers: "if I classify a test image by the
# labels of the training images whose features are most similar to its features, how often am I
# right?" No classifier is trained, so it measures the representation alone. The course uses the
# weighted kNN of Wu et al. (2018), the monitor of InstDisc, MoCo's CIFAR demo and solo-learn.
# For a test feature $f$ and a **memory bank** (features of training images, computed once and
# stored) $f_1, \dots, f_N$ with labels $y_i$:
#
# 1. cosine similarities $s_i = \frac{f^\top f_i}{\lVert f \rVert \, \lVert f_i \rVert}$;
# 2. keep the $k = 200$ largest, $\mathcal{N}_k(f)$ (fewer if the bank is smaller);
# 3. each neighbour votes for its class with weight $e^{s_i/\tau}$, $\tau = 0.1$:
#    $\text{score}_c(f) = \sum_{i \in \mathcal{N}_k(f)} e^{s_i/\tau}\,[y_i = c]$;
# 4. predict $\arg\max_c \text{score}_c(f)$.

# %% [markdown]
# Why $e^{s/\tau}$ rather than one vote each: with $\tau = 0.1$ a neighbour at $s = 0.9$ weighs
# $e^{(0.9 - 0.7)/0.1} = e^2 \approx 7.4$ times one at $s = 0.7$, so the closest neighbours decide
# and the 200th matters little, but ties between classes are still broken by the many.
#
# **Which bank.** `ssl_course.evaluate.evaluate_method` reports two kNN numbers. `knn_accuracy`
# puts only the **labelled images** in the bank: what a learner with 250 labels can really do
# (PAWS, notebook 11, classifies by similarity to labelled images in the same spirit).
# `knn_all_labels_accuracy`
# (asked for with `knn_bank="all"`, or an int for an evenly spaced subset) puts the features **and
# labels of every training image** in the bank, as representation-learning papers do; the monitor
# during training uses at most `TrainConfig.monitor_bank_size = 10 000` of them and scores the
# validation images. That number uses labels a few-label learner does not have: it tells you how
# well classes separate in the features, not what you could do with 250 labels.
#
# Below, the four steps as a loop over test images, on raw pixels as features (no network at
# all), checked against `ssl_course.evaluate.knn_predict`.

# %%
from ssl_course.evaluate import knn_accuracy, knn_predict


def knn_scores_loop(bank, bank_labels, queries, num_classes, k=200, temperature=0.1):
    """Weighted kNN class scores [M, C], one test image at a time."""
    scores = torch.zeros(len(queries), num_classes, dtype=bank.dtype)
    for row, query in enumerate(queries):
        similarity = torch.stack([query @ item / (query.norm() * item.norm()) for item in bank])   # [N]
        nearest = similarity.argsort(descending=True)[:min(k, len(bank))]                       # [k]
        for i in nearest:
            scores[row, bank_labels[i]] += torch.exp(similarity[i] / temperature)
    return scores


bank_size, query_size = (300, 20) if SMOKE else (2000, 100)
pixel_bank = data.train_images[:bank_size].flatten(1).double().cpu()          # [N, 3072] raw pixels
pixel_queries = data.test_images[:query_size].flatten(1).double().cpu()       # [M, 3072]
bank_labels, query_labels = data.train_labels[:bank_size].cpu(), data.test_labels[:query_size].cpu()
loop_scores = knn_scores_loop(pixel_bank, bank_labels, pixel_queries, data.num_classes)
library_scores = knn_predict(pixel_bank, bank_labels, pixel_queries, data.num_classes, k=200, temperature=0.1)
torch.testing.assert_close(library_scores.double(), loop_scores, rtol=1e-4, atol=1e-6)
print(f"loop == ssl_course.evaluate.knn_predict on {query_size} test images, bank of {bank_size}")
pixel_accuracy = knn_accuracy(data.train_images[:10_000].flatten(1).float(), data.train_labels[:10_000],
                              data.test_images[:1000].flatten(1).float(), data.test_labels[:1000], data.num_classes)
print(f"kNN on raw pixels, bank of up to 10 000 training images: {pixel_accuracy:.3f} "
      f"(chance {1 / data.num_classes:.2f})")

# %% [markdown]
# ## Take-aways
# - With few labels the network can memorise its handful of images: trained long enough, its
#   training loss falls towards zero while its test accuracy stays far below what the same network
#   reaches with all 50 000 labels. Read the printed test accuracies for your run: the gap between
#   the two bars above (what 16× more labels buy at this budget) is what the rest of the course
#   tries to close *without* more labels. In smoke mode both runs are too short to show it.
# - Every run holds out a class-balanced **validation split** of the training images (5,000 of
#   CIFAR-10's 50,000; `val_size=` / `--val-size`): no method trains on it, the kNN monitor during
#   training and any choice of a hyper-parameter read it, and the test set is read once, for the
#   final numbers. Choose settings by `val_accuracy`, report `test_accuracy`.

# %% [markdown]
# - The kNN accuracy printed above uses only the **labelled** images as its memory bank: what a
#   few-label learner can do with the features. The representation-learning convention, a bank of
#   *every* training image with its label, is `knn_all_labels_accuracy` (`knn_bank="all"`,
#   `--knn-bank all`); it measures how well the features separate classes, not what a few-label
#   learner can do. The number to compare across methods is the test accuracy.
# - Compare methods only under the same budget, split and backbone; the comparison notebook
#   (`12_compare`) does exactly that.
#
# **Pitfalls**: an augmentation pipeline that runs on the CPU can starve a GPU; the few-label split
# must be class-balanced and fixed by a seed, or results are not comparable. CIFAR-10 downloaded
# by `ssl_course` (or from the official page) is the original data; a copy rebuilt from JPEG files
# (some mirrors distribute one) costs a couple of points of accuracy, so compare with published
# numbers only on the original.

# %% [markdown]
# ## Exercise
# Change `num_labels` in the split cell to 4000 and check, with `torch.bincount`, that every class
# gets 400 labels. What error do you get for 45 labels, and why?
#
# Two questions to think about (no code needed):
# - **Epochs.** With the engine's epoch, how many steps does each of the two baseline runs above
#   take in `BUDGET_EPOCHS = 10` epochs on all of CIFAR-10, and how many times does each see each of
#   its labelled images? Why do the two runs take about the same time although one has 16 times
#   more labels?
# - **The kNN weights.** With $\tau = 0.1$, how many times more does a neighbour at cosine
#   similarity 0.9 weigh than one at 0.5? What happens to the vote as $\tau$ grows very large, and
#   as it shrinks towards 0?
#
# (Answers: [`notebooks/solutions/ANSWERS.md`, section 00](solutions/ANSWERS.md#00-set-up-and-data).)
#
# ## References
# - A. Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009 (CIFAR-10).
# - A. Oliver, A. Odena, C. Raffel, E. D. Cubuk and I. Goodfellow, *Realistic Evaluation of Deep
#   Semi-Supervised Learning Algorithms*, NeurIPS 2018 (the 250 / 4000-label protocol, shared baselines).
# - D. Berthelot et al., *MixMatch*, NeurIPS 2019 (reports on that protocol).
# - K. Sohn et al., *FixMatch*, NeurIPS 2020 (adds the 40-label setting; weak and strong views).
# - Z. Wu, Y. Xiong, S. X. Yu and D. Lin, *Unsupervised Feature Learning via Non-Parametric Instance
#   Discrimination*, CVPR 2018 (the weighted kNN classifier).
# - T. Chen et al., *A Simple Framework for Contrastive Learning of Visual Representations*, ICML 2020
#   (the contrastive augmentations).

# %% [markdown]
# # 03 · From pretext tasks to instance discrimination: Exemplar and CPC
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/03_exemplar_and_cpc.ipynb)
#
# **What you will learn**
# - Exemplar-CNN (Dosovitskiy et al. 2014): every training image is its own class, and heavily
#   distorted copies of it must be recognised as that class;
# - why a classifier with one class per image *is* instance discrimination, why its cost grows with
#   the data set, and how replacing its weight rows by stored or in-batch embeddings leads to
#   NCE / InfoNCE (notebook 01) and to SimCLR (notebook 04);
# - Contrastive Predictive Coding (CPC): predict the patches below from a causal context, and pick
#   the true one among all patches of the batch with InfoNCE.
#
# How all the pretext tasks and SimCLR compare under one budget is read from the course's
# comparison of every method, in `12_compare`.

# %% [markdown]
# **Time budget**: Run All on one CPU thread takes about 15-20 min, where the notebook uses the `tiny`
# backbone on a 10 000-image subset: three trainings (Exemplar, CPC, the supervised baseline) of
# `CPU_EPOCHS = 4` epochs each take 10-16 min (from measured step times). `FULL_BUDGET = True` in the
# training cell gives them the full `BUDGET_EPOCHS = 10` epochs: 40 minutes to an hour on a CPU, about
# 10 minutes on a laptop GPU with the `small` backbone (estimated, not measured on a GPU).
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run instead
# (see the README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (data, engine, baseline), `01_nce_to_infonce` (NCE and
# InfoNCE) and `02_pretext_tasks` (rotation, the idea of a pretext task).
#
# **Recap** of notebooks 01 and 02, which this one builds on (answers:
# [`notebooks/solutions/ANSWERS.md`, section 03](solutions/ANSWERS.md#03-exemplar-and-cpc)):
# 1. InfoNCE with one positive and $K$ negatives is which classification problem?
# 2. What makes a pretext task's label free?
# 3. Which shortcut can a patch-based pretext task offer, and how do the papers close it?

# %% [markdown]
# ## Set-up

# %%
import sys

if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "ssl_course @ git+https://github.com/ssl-course/ssl_course"], check=True)
    from ssl_course.colab import colab_setup
    colab_setup()

import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ssl_course import claims, config, reference
from ssl_course.data import cifar10_available, make_bundle
from ssl_course.data.augment import contrastive_augment, denormalize
from ssl_course.evaluate import evaluate_method
from ssl_course.exercises import check_cpc_info_nce
from ssl_course.losses import batch_hard_triplet_loss, cpc_info_nce, cpc_patch_grid, exemplar_loss
from ssl_course.methods import build_method
from ssl_course.results import save_embedding_sample, test_embedding
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, plot_history, plot_tsne

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
NOTEBOOK_START = time.perf_counter()
if SMOKE and DEVICE.type == "cpu":
    torch.set_num_threads(1)   # small convolutions: one thread avoids OpenMP spin-waiting

DATA = "cifar10" if cifar10_available() else "synthetic"
if SMOKE:
    SUBSET = dict(train_subset=1000, test_subset=500)
elif DEVICE.type == "cpu":
    SUBSET = dict(train_subset=10_000, test_subset=2000)
else:
    SUBSET = {}
BACKBONE = reference.notebook_backbone("03", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
LABELS = 100 if SMOKE else 250
data = make_bundle(DATA, num_labels=LABELS, seed=0, device=DEVICE, **SUBSET)
TRAIN_SIZE = len(data.train_images)
print(f"device {DEVICE} · smoke {SMOKE} · course mode {config.mode()} · {data} · backbone {BACKBONE}")


def run_dir(run_name):
    """The folder of one of this notebook's runs (its name also names the course's reference run)."""
    return config.runs_dir() / f"03_{run_name}_{DATA}_{LABELS}_{BACKBONE}{'_smoke' if SMOKE else ''}"

# %% [markdown]
# ## Exemplar: one image, one class
# Rotation (notebook 02) asks a network a question with four answers. Exemplar asks one with $N$
# answers, $N$ the number of training images: *which image is this a distorted copy of?* Each row
# below is one surrogate class: an image (left) and random views of it made by cropping,
# rescaling, flipping and changing its colours. Everything that changes along a row is what the
# network must learn to ignore; what stays is what it must keep.

# %%
seed_images = data.train_images[:4]
views = torch.cat([contrastive_augment(seed_images, torch.Generator(device=seed_images.device).manual_seed(k))
                   for k in range(7)])                                         # [7·4, 3, H, W]
rows = torch.cat([seed_images.float() / 255, denormalize(views).clamp(0, 1)])    # seeds, then 7 views each
order = torch.arange(8 * 4).reshape(8, 4).T.flatten()                          # image-major: one row per class
image_grid(rows[order], nrow=8, scale=1.1,
           titles=[("image " if k == 0 else "view ") + f"{i}" for i in range(4) for k in range(8)],
           suptitle="four surrogate classes: each row is one training image and its random views")
plt.show()

# %% [markdown]
# **What to look for**: along a row the crop, scale, flip and colours change, but the object stays the
# same; the network must map all eight pictures of a row to one class. A row whose views are identical
# would make the task trivial.

# %% [markdown]
# ## The Exemplar loss
# With $T_m$ a random transformation, $x_{i_m}$ the training image behind view $m$, $f_\theta$ the
# backbone (plus a hidden layer) and one weight row $w_j$ per training image:
# $$\mathcal{L}_{\text{exemplar}} = -\frac{1}{M}\sum_{m=1}^{M}\log
#   \frac{\exp\big(w_{i_m}^\top f_\theta(T_m x_{i_m})\big)}{\sum_{j=1}^{N}\exp\big(w_j^\top f_\theta(T_m x_{i_m})\big)}$$
# an $N$-way cross-entropy whose label is simply the index of the image. The paper sampled up to
# 32 000 seed patches from STL-10 and found the accuracy of the learned features saturating around
# 8000 classes. CIFAR-10 has 50 000 training images: a 50 000-way output layer has
# $50\,000 \times 512$ weights and costs one matrix product per step, small for a laptop, so the
# course gives every training image its own class (`num_exemplars = len(training set)`).
#
# Below: the loss written with loops, vectorised, and the library's `exemplar_loss`, in float64.

# %%
def exemplar_loss_literal(logits, image_index):
    total = 0.0
    for m in range(len(logits)):
        scores = logits[m]                                  # one view's scores over the N images
        total = total - (scores[image_index[m]] - torch.logsumexp(scores, 0))
    return total / len(logits)


gen = torch.Generator().manual_seed(0)
toy_logits = torch.randn(6, 50, dtype=torch.float64, generator=gen)          # 6 views, N = 50 images
toy_index = torch.randint(0, 50, (6,), generator=gen)
literal = exemplar_loss_literal(toy_logits, toy_index)
torch.testing.assert_close(F.cross_entropy(toy_logits, toy_index), literal)
torch.testing.assert_close(exemplar_loss(toy_logits, toy_index), literal)
print(f"literal == F.cross_entropy == exemplar_loss: {literal.item():.6f}; chance level log N = {math.log(50):.3f}")

# %% [markdown]
# ## From Exemplar to instance discrimination, NCE and InfoNCE
# Read the loss again: the weight row $w_j$ is a **prototype** of image $j$, a vector that stands
# for the image and that features are compared with, and the softmax compares a view with the
# prototypes of all $N$ images. Three problems appear as $N$ grows:
# 1. **Cost.** Every view is scored against all $N$ rows: $O(N)$ per view, 1.2 million rows on ImageNet.
# 2. **Stale prototypes.** Under the full softmax every row gets a gradient at every step: for a
#    view of image $i$, $\partial\mathcal{L}/\partial w_j = p_j\, f_\theta(T x_i)$ for $j \ne i$,
#    with $p_j$ the softmax probability of class $j$, a small push *away* from that view, and
#    $(p_i - 1)\, f_\theta(T x_i)$ for its own row, a pull towards it. But the pull that tells $w_j$
#    what image $j$ looks like comes only when a view of image $j$ is in the batch, about once per
#    epoch; in between the network changes and $w_j$ only drifts away from everything else. This
#    is why Exemplar needs many epochs before its features improve (on the course's synthetic
#    data, kNN accuracy can *fall* during the first two epochs while the exemplar loss falls).
# 3. **Collisions.** Two near-identical images are different classes and are pushed apart.

# %% [markdown]
# Instance discrimination (Wu et al. 2018) keeps the task and changes the parametrisation: the
# prototype of image $j$ becomes a stored, normalised embedding $v_j$ of that image (a *memory
# bank*), and the $N$-way softmax is estimated with NCE against a few thousand sampled
# negatives (notebook 01). That removes the $N$ learned rows and most of the cost (problem 1), but
# not the staleness: $v_j$ is rewritten only when image $j$ is in the batch, so a bank entry was
# computed by the network of up to an epoch ago. MoCo (notebook 04) removes that staleness: its
# negatives come from a **queue**: a first-in first-out store of the $K$ most recent keys
# (embeddings of images from earlier batches; each step adds the new batch and drops the oldest),
# so none is more than $K/N$ steps old, and all are computed by a slowly moving copy of the encoder.
# Taking the negatives from the current batch instead, and the positive from a second
# view of the same image, gives InfoNCE as SimCLR uses it (notebook 04), with no stored embedding at
# all:
# $$\underbrace{w_{i}^\top f(Tx_i)}_{\text{Exemplar}} \;\to\;
#   \underbrace{v_{i}^\top f(Tx_i)/\tau}_{\text{memory bank + NCE}} \;\to\;
#   \underbrace{f(T'x_i)^\top f(Tx_i)/\tau}_{\text{SimCLR, negatives from the batch}}$$
# S4L-Exemplar (notebook 08) takes a fourth route: several copies of each image in the batch and a
# batch-hard triplet loss, the farthest copy against the nearest other image, with no
# prototypes at all. Its loss is checked below on a tiny example.

# %%
points = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 0.5]], dtype=torch.float64)
image_of = torch.tensor([0, 0, 1, 1])                   # two images, two copies each
# anchor 0: its copy is 1 away, the nearest point of the other image 3 away -> softplus(1 - 3)
by_hand = torch.stack([F.softplus(torch.tensor(1.0 - 3.0)), F.softplus(torch.tensor(1.0 - 9.25 ** 0.5)),
                       F.softplus(torch.tensor(0.5 - 3.0)), F.softplus(torch.tensor(0.5 - 9.25 ** 0.5))]).double().mean()
torch.testing.assert_close(batch_hard_triplet_loss(points, image_of), by_hand)
print(f"batch-hard soft-margin triplet loss: {by_hand.item():.4f} (by hand == library)")

# %% [markdown]
# ## Contrastive Predictive Coding: predict the patches below
# CPC (van den Oord et al. 2018; CPC v2: Hénaff et al., ICML 2020, arXiv 2019) cuts each $32\times32$ image into a
# $7\times7$ grid of overlapping $8\times8$ patches with stride 4. The backbone encodes every
# patch on its own; a context network reads the encodings from the top row down; from the
# context at row $r$, linear maps $W_k$ predict the encodings $k$ rows further down.

# %%
image = data.train_images[3:4]
grid = cpc_patch_grid(image, patch_size=8, stride=4)           # [1, 7, 7, 3, 8, 8]
print(f"cpc_patch_grid: image {tuple(image.shape)} -> grid {tuple(grid.shape)}")
figure, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw=dict(width_ratios=[1, 1]))
axes[0].imshow(image[0].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
for (r, c), colour in zip([(0, 0), (0, 1), (2, 0)], ["tab:red", "tab:orange", "tab:cyan"]):
    axes[0].add_patch(plt.Rectangle((4 * c - 0.5, 4 * r - 0.5), 8, 8, fill=False, edgecolor=colour, linewidth=2))
axes[0].set(title="patches (0,0), (0,1) overlap by half; (2,0) is the first\nrow below (0,0) sharing no pixel with it",
            xticks=[], yticks=[])
patches = grid[0].flatten(0, 1)                               # [49, 3, 8, 8]
mosaic = torch.ones(3, 7 * 9, 7 * 9, dtype=torch.uint8, device=patches.device) * 255
for index, patch in enumerate(patches):
    r, c = divmod(index, 7)
    mosaic[:, 9 * r:9 * r + 8, 9 * c:9 * c + 8] = patch
axes[1].imshow(mosaic.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
axes[1].set(title="the 7×7 grid, each patch on its own", xticks=[], yticks=[])
plt.show()

# %% [markdown]
# **What to look for**: the three outlined patches on the left: the red and orange ones overlap by
# half, the cyan one shares no pixel with the red one. On the right, the 49 patches in their 7×7 grid,
# each one encoded alone by the backbone.

# %% [markdown]
# ### The masked context network
# The context at row $r$ must not see rows below $r$, or predicting them is copying. CPC v2 uses a
# **PixelCNN**-style network (PixelCNN is an image model whose masked convolutions let each position
# see only what lies above it and to its left); here it is a stack of residual blocks whose
# $3\times3$ convolutions have
# their *bottom kernel row zeroed* (`MaskedConv2d`): each layer looks one row up and along its own
# row, never down. Two things are shown below: the mask, and the receptive field measured with
# autograd: the gradient of one context vector with respect to every patch encoding. The cells
# it will be asked to predict are outlined.

# %%
demo = build_method("cpc", BACKBONE, data.num_classes).eval()
mask = demo.context_network.blocks[0][2].mask[0, 0].cpu()
print(f"context offsets predicted: k = {demo.offsets}; masked 3×3 kernel:\n{mask}")

figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].imshow(mask.numpy(), cmap="Greens", vmin=0, vmax=1)
axes[0].set(title="MaskedConv2d kernel (1 = used)", xticks=[], yticks=[])
for axis, (row, col) in zip(axes[1:], [(2, 3), (4, 1)]):
    z = torch.randn(1, demo.backbone.feature_dim, 7, 7, requires_grad=True)
    demo.context(z)[0, :, row, col].sum().backward()
    influence = z.grad.abs().sum(1)[0]
    axis.imshow((influence > 0).float().numpy(), cmap="Blues", vmin=0, vmax=1.5)
    axis.plot(col, row, marker="*", color="tab:red", markersize=14)
    for k in demo.offsets:
        if row + k < 7:
            axis.add_patch(plt.Rectangle((col - 0.5, row + k - 0.5), 1, 1, fill=False, edgecolor="tab:orange", linewidth=2))
    axis.set(title=f"context at ★ ({row},{col}) depends on (blue);\npredicts the outlined cells",
             xticks=range(7), yticks=range(7))
    print(f"context ({row},{col}): influenced by grid rows {sorted(set(influence.nonzero()[:, 0].tolist()))}")
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: blue cells (what the context at the star depends on) lie only in the star's
# row and the rows above it; the outlined cells it predicts lie strictly below. A blue cell below the
# star would be a leak: the network could copy its target.

# %% [markdown]
# Two more ways to cheat, and what the course's `cpc` method does about them:
# - **Overlap.** Patch row $r+1$ shares half its pixels with row $r$, so "predicting" it can be done
#   by copying. The method predicts $k = 2, 3, 4$ rows ahead (`min_offset=2`), which share no pixel
#   with anything the context has seen.
# - **Batch norm.** Batch statistics mix every patch of the batch, including the ones to predict.
#   CPC v2 replaced batch norm with layer norm in the encoder; the method swaps every `BatchNorm2d`
#   of the backbone for `GroupNorm(1, C)`. With both, changing pixels below row $4r+8$ leaves the
#   context at row $r$ untouched: the receptive-field plot above shows the same from the encodings'
#   side.

# %% [markdown]
# ### The CPC InfoNCE loss
# For image $b$ and grid position $s$ (a row $r$ and column $c$), the prediction is
# $\hat z_{b,s} = W_k\,c_{b,r,c}$ and the target is the patch encoding $z_{b,s} = W_t\,z_{b,r+k,c}$
# ($W_t$: a linear projection to the target space). With $B$ images, $S = (7-k)\cdot 7$ positions and a
# temperature $\tau$ (1 in CPC: plain dot products, no normalisation),
# $$\mathcal{L}_k = -\frac{1}{BS}\sum_{b=1}^{B}\sum_{s=1}^{S}\log
#   \frac{\exp(\hat z_{b,s}^\top z_{b,s}/\tau)}{\sum_{b'=1}^{B}\sum_{s'=1}^{S}\exp(\hat z_{b,s}^\top z_{b',s'}/\tau)}$$
# and the training loss averages $\mathcal{L}_k$ over $k$. The negatives are all other patches of the
# batch: other positions of the same image and every position of the other images.

# %%
def cpc_info_nce_literal(predictions, targets, temperature=1.0):
    batch, positions, _ = predictions.shape
    total = 0.0
    for b in range(batch):
        for s in range(positions):
            scores = torch.stack([predictions[b, s] @ targets[b2, s2] / temperature
                                  for b2 in range(batch) for s2 in range(positions)])
            total = total - (predictions[b, s] @ targets[b, s] / temperature - torch.logsumexp(scores, 0))
    return total / (batch * positions)


def cpc_info_nce_vectorised(predictions, targets, temperature=1.0):
    flat_predictions, flat_targets = predictions.flatten(0, 1), targets.flatten(0, 1)     # [B·S, D]
    logits = flat_predictions @ flat_targets.T / temperature                              # [B·S, B·S]
    return F.cross_entropy(logits, torch.arange(len(logits)))                           # the diagonal is right


gen = torch.Generator().manual_seed(3)
for batch, positions, dim, temperature in [(3, 5, 8, 1.0), (2, 7, 4, 0.5), (4, 3, 16, 2.0)]:
    targets = torch.randn(batch, positions, dim, generator=gen, dtype=torch.float64)
    predictions = targets + torch.randn(batch, positions, dim, generator=gen, dtype=torch.float64)
    literal = cpc_info_nce_literal(predictions, targets, temperature)
    torch.testing.assert_close(cpc_info_nce_vectorised(predictions, targets, temperature), literal)
    torch.testing.assert_close(cpc_info_nce(predictions, targets, temperature), literal)
print("literal loop == vectorised == ssl_course.losses.cpc_info_nce on 3 random inputs (float64)")
print(f"chance level for B=64 images and k=2: log(B·S) = log({64 * 35}) = {math.log(64 * 35):.2f}")

# %% [markdown]
# ## Training: Exemplar, CPC and the supervised baseline
# The same engine, data, backbone and number of epochs for the three. Exemplar and CPC never see a
# label; they are judged by a weighted kNN classifier (memory bank: all training labels) and by a
# linear probe fitted on the few labelled images. The supervised baseline trains on those labels.
# Runs are saved under `runs/` and reloaded when the cell runs again.

# %%
FULL_BUDGET = False   # True: BUDGET_EPOCHS epochs per method, as on a GPU (on a CPU ~40 min-1 h, same subset)
BUDGET_EPOCHS = 10    # per method, on a GPU or with FULL_BUDGET = True; fractions such as 0.5 work
CPU_EPOCHS = 4        # per method, on a CPU (FULL_BUDGET = False)
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
EPOCHS = 0.5 if SMOKE else CPU_EPOCHS if CPU_RUN else BUDGET_EPOCHS   # smoke: half an epoch of tiny data
# Run All on a CPU (FULL_BUDGET = False) trains the three for CPU_EPOCHS epochs each on the 10 000-image
# subset with the `tiny` backbone: about 10-16 min (upper bounds from steps timed with
# benchmarks/cpu_step_time.py, one thread, s per epoch of 9000 images: CPC 85-130, Exemplar 49-84,
# supervised 15-21; the older estimate in benchmarks/RESULTS.md, Exemplar's measured 97 s per epoch and
# CPC scaled from it by the FLOP ratio, gives up to 24 min). FULL_BUDGET = True on a CPU: the same
# subset for 10 epochs, 40 min-1 h. Present mode shows the course's reference runs. Runs resume from
# runs/: delete this notebook's folders there before switching FULL_BUDGET.
# Laptop GPU (`small` backbone, all of CIFAR-10, 10 epochs) ~ 7 min: estimated from counted FLOPs
# (benchmarks/gpu_day_flops.json: exemplar 0.84, CPC 2.31, supervised 0.68 GFLOP per image) at an
# assumed 5 TFLOP/s, not measured on a laptop.
BATCH_SIZE = dict(exemplar=64, cpc=16, supervised=32) if SMOKE else dict(exemplar=None, cpc=None, supervised=None)
HPARAMS = dict(exemplar=dict(num_exemplars=TRAIN_SIZE), cpc={}, supervised={})


def train(name, run_name=None, bundle=None, max_steps=None, **hyperparameters):
    """Train `name` on `bundle` (default: `data`); `hyperparameters` override HPARAMS[name];
    `run_name` gives the run its own folder under runs/ (otherwise a rerun reloads the default run)."""
    torch.manual_seed(0)
    bundle = data if bundle is None else bundle
    method = build_method(name, BACKBONE, bundle.num_classes, **(HPARAMS[name] | hyperparameters))
    out_dir = run_dir(run_name or name)
    # later cells need only the metrics and a t-SNE sample, so the reference run keeps no weights
    # (Exemplar's would be large: one weight row per training image)
    settings = TrainConfig(epochs=EPOCHS, max_steps=max_steps, batch_size=BATCH_SIZE[name],
                           monitor_every=0 if SMOKE else None, monitor_bank_size=2000, monitor_val_size=1000,
                           out_dir=out_dir, resume=True, seed=0, progress=not SMOKE, reference_weights=False)
    history = fit(method, bundle, settings)
    metrics = evaluate_method(method, bundle, knn_bank=1000 if SMOKE else "all")
    if reference.recording():   # the test features of a fixed sample, for present mode's t-SNE
        save_embedding_sample(reference.reference_dir(out_dir), method, bundle)
    print(f"{name:>10}: {history.step[-1]} steps in {history.seconds[-1]:.0f} s · kNN (all labels) {metrics['knn_all_labels_accuracy']:.3f} "
          f"· linear probe on {LABELS} labels {metrics['linear_probe_accuracy']:.3f}"
          + (f" · classifier {metrics['classifier_accuracy']:.3f}" if "classifier_accuracy" in metrics else ""))
    shipped = reference.load_reference(out_dir)
    if reference.presenting():
        print(f"{'':>12}({reference.describe(out_dir)})")
    elif shipped is not None and shipped["evaluations"]:
        probe = next(iter(shipped["evaluations"].values()))["linear_probe_accuracy"]
        print(f"{'':>12}the course's reference: linear probe {probe:.3f} ({reference.describe(out_dir)})")
    return method, history, metrics


runs = {name: train(name) for name in ("exemplar", "cpc", "supervised")}

# %%
for name, (_, history, _) in runs.items():
    plot_history(history, title=name, reference=run_dir(name))
plt.show()
exemplar_acc = runs["exemplar"][1].logs["exemplar_acc"]
print(f"exemplar: views assigned to their own image {exemplar_acc[0]:.4f} -> {exemplar_acc[-1]:.4f} "
      f"(chance 1/N = {1 / TRAIN_SIZE:.5f}); loss {runs['exemplar'][1].loss[0]:.2f} -> "
      f"{runs['exemplar'][1].loss[-1]:.2f} (log N = {math.log(TRAIN_SIZE):.2f})")

# %% [markdown]
# What to look for: the exemplar loss starts at $\log N$ and falls slowly, because each weight row
# is pulled towards its image only when that image is drawn (every other step it is only pushed
# away from the views in the batch). In a short run the features may even get *worse* for kNN
# than an untrained network's: the task is far from solved and the network first separates images
# by whatever is cheapest. That slowness is problem 2 above: a memory bank keeps it (its entries
# are refreshed just as rarely), MoCo's queue of momentum keys shortens it to $K/N$ steps, and
# in-batch negatives remove it.

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("03");

# %% [markdown]
# ## Evaluation: kNN and linear probe against the supervised baseline

# %%
baseline = runs["supervised"][2]["test_accuracy"]
baseline_probe = runs["supervised"][2]["linear_probe_accuracy"]
print(f"{'method':>10} | {'kNN':>6} | {'probe':>6} | probe vs supervised test acc ({baseline:.3f}) and probe ({baseline_probe:.3f})")
for name, (_, _, metrics) in runs.items():
    probe = metrics["linear_probe_accuracy"]
    versus = "" if name == "supervised" else f"{probe - baseline:+.3f} / {probe - baseline_probe:+.3f}"
    print(f"{name:>10} | {metrics['knn_all_labels_accuracy']:>6.3f} | {probe:>6.3f} | {versus}")
print(f"your budget: {EPOCHS:g} epochs, backbone '{BACKBONE}', probe on {LABELS} labels")

# %% [markdown]
# **How far is this from the papers?** No paper reports this protocol. Exemplar-CNN learns from
# patches of unlabelled STL-10 images and reports the CIFAR-10 accuracy of a classifier on those
# features (Dosovitskiy et al. 2014); CPC (van den Oord et al. 2018) and CPC v2 (Hénaff et al.,
# ICML 2020, arXiv 2019) report ImageNet only, CPC v2 down to about 13 labels per class.
#
# ### t-SNE of the test embeddings
# The features each method hands to the kNN and the probe, squeezed to 2-D and coloured by the
# true class.

# %%
figure, axes = plt.subplots(1, 3, figsize=(15, 5))
for axis, (name, (method, _, metrics)) in zip(axes, runs.items()):
    # present mode: the reference run's features of a fixed sample of 500 test images
    features, labels = test_embedding(run_dir(name), data, method)
    plot_tsne(features, labels, data.class_names, axis=axis, legend=name == "supervised",
              title=f"{name} (kNN, all labels: {metrics['knn_all_labels_accuracy']:.2f})", max_points=300 if SMOKE else 2000)
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: in the supervised panel the classes form separate clusters; Exemplar's and
# CPC's panels show looser ones, with vehicles apart from animals before the classes within each group
# separate. A single blob coloured at random means features that ignore the content.

# %% [markdown]
# ## Take-aways and pitfalls
# - **Exemplar is instance discrimination with a parametric classifier.** Its weaknesses: a cost
#   linear in $N$, prototypes pulled towards their image only once per epoch, collisions between
#   similar images. A memory bank with NCE fixes the cost but its entries are as stale (refreshed
#   once per epoch); MoCo's queue of momentum keys and SimCLR's in-batch InfoNCE fix the staleness.
#   Collisions remain in all of them (notebooks 05 and 06 address them with labels and neighbours).
# - **The augmentations define the task.** Without colour distortion, "which image is this?" is
#   answered by the colour histogram; without cropping, by the position of an edge.
# - **CPC's shortcuts.** Context networks that can see below row $r$, targets that overlap the
#   context, batch norm across patches, and colour: patches of one image share their colours. CPC
#   v2 counters the last with per-patch colour dropping; the course's `cpc` keeps one random
#   channel of half the patches (`color_drop=0.5`).
# - **Cost.** CPC encodes 49 patches per image; Exemplar scores every view against $N$ classes.
#   Budgets in epochs hide such differences: look at the wall times printed above.

# %% [markdown]
# ## Exercises
# **1. CPC's InfoNCE.** `predictions` and `targets` are `[B, S, D]`; every target of the batch is a
# candidate for every prediction. Return the mean cross-entropy.

# %%
def my_cpc_info_nce(predictions, targets, temperature=1.0):
    # YOUR CODE
    raise NotImplementedError("write cpc_info_nce")


check_cpc_info_nce(my_cpc_info_nce);

# %% [markdown]
# **2. Break it on purpose.** Train `cpc` with `min_offset=1` (predict the overlapping row too) and
# with `layer_norm=False`: `train("cpc", run_name="cpc_offset1", min_offset=1)` and
# `train("cpc", run_name="cpc_no_layer_norm", layer_norm=False)` (the keyword arguments override
# `HPARAMS["cpc"]`; `run_name` gives each run its own folder). Compare the pretext accuracy, the kNN
# and the probe accuracy with the default run, and explain what you see with the pitfalls above.
#
# **3. Fewer surrogate classes.** Train `exemplar` on a 2000-image subset for the same number of
# *steps* as above: `small = make_bundle(DATA, LABELS, device=DEVICE, train_subset=2000,
# test_subset=1000)`, then `train("exemplar", run_name="exemplar_2000", bundle=small,
# max_steps=runs["exemplar"][1].step[-1], num_exemplars=2000)`. Each class is now seen five times
# as often: does the exemplar accuracy rise faster, and do kNN and probe follow?
#
# **4. Think: who moves a prototype?** Write the gradient of one view's Exemplar loss with respect
# to the row $w_j$ of another image $j$, and with respect to the row of its own image. How large is
# the first when $N = 45\,000$ and the network is untrained (all scores about equal)? Which of the
# two tells $w_j$ what image $j$ looks like, and how often does it come?
#
# **5. Think: how stale is a negative?** Exemplar's batch is 256 images and the training set holds
# 45 000. How many steps pass between two refreshes of a memory-bank entry $v_j$ (Wu et al.)? How
# old is the oldest key in MoCo's queue with $K = 4096$ at the same batch size, and how old is a
# SimCLR negative?
#
# Solutions: `notebooks/solutions/nce_solutions.py` (exercise 1). What to expect in 2 to 5, and
# why: [`notebooks/solutions/ANSWERS.md`, section 03](solutions/ANSWERS.md#03-exemplar-and-cpc).

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")

# %% [markdown]
# ## References
# - A. Dosovitskiy, J. T. Springenberg, M. Riedmiller, T. Brox, *Discriminative Unsupervised Feature
#   Learning with Convolutional Neural Networks*, NeurIPS 2014 (Exemplar-CNN).
# - Z. Wu, Y. Xiong, S. X. Yu, D. Lin, *Unsupervised Feature Learning via Non-Parametric Instance
#   Discrimination*, CVPR 2018.
# - X. Zhai, A. Oliver, A. Kolesnikov, L. Beyer, *S4L: Self-Supervised Semi-Supervised Learning*,
#   ICCV 2019 (S4L-Exemplar, Section 3.2). Code: github.com/google-research/s4l.
# - A. Hermans, L. Beyer, B. Leibe, *In Defense of the Triplet Loss for Person Re-Identification*, 2017.
# - A. van den Oord, Y. Li, O. Vinyals, *Representation Learning with Contrastive Predictive Coding*,
#   arXiv:1807.03748, 2018.
# - O. J. Hénaff et al., *Data-Efficient Image Recognition with Contrastive Predictive Coding*, ICML 2020
#   (arXiv:1905.09272, 2019) (CPC v2).
# - A. van den Oord, N. Kalchbrenner, K. Kavukcuoglu, *Pixel Recurrent Neural Networks*, ICML 2016
#   (masked convolutions).

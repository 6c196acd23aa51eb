# %% [markdown]
# # 02 · Pretext tasks: predicting rotations, and Contrastive Predictive Coding
#
# **What you will learn**
# - how a *pretext task* (a label the data gives for free) can teach a network features: RotNet
#   predicts by how much an image was turned;
# - Contrastive Predictive Coding (CPC): cut an image into a grid of overlapping patches, summarise
#   the rows above with a *masked* (causal) context network, and pick the true patch a few rows
#   below out of every patch in the batch with InfoNCE (notebook 01);
# - how to check that a context network really cannot see the future, and why overlapping patches
#   and batch norm can let it cheat;
# - how both compare, with a kNN classifier and a linear probe on the few labels, against the
#   supervised baseline trained for the same time on the same labels.
#
# **Time budget**: the three trainings have a fixed budget in minutes, so the total holds on any
# machine: on a laptop GPU about 10-12 minutes (3 minutes per method with the `small` backbone on
# all of CIFAR-10, plus evaluation, which we estimate at under a minute per method: not measured
# on a GPU); on a CPU about 17-20 minutes (5 minutes per method with the `tiny` backbone on a
# 10 000-image subset; on the course's busy shared 2-core CPU we measured about 2 s per rotation
# step and 3.5 s per CPC step, so a CPU run is only about a hundred steps long and its numbers are
# low). Lower `BUDGET_MINUTES` to go faster.
#
# **Prerequisites**: `00_setup_and_data` (data, engine, baseline) and `01_nce_to_infonce` (InfoNCE).

# %% [markdown]
# ## Set-up

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ssl_course import config
from ssl_course.data import cifar10_available, make_bundle
from ssl_course.evaluate import evaluate_method, extract_features
from ssl_course.exercises import check_cpc_info_nce, check_rotate_batch
from ssl_course.losses import cpc_info_nce, cpc_patch_grid, rotate_batch, rotation_loss
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, plot_history, plot_tsne

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
NOTEBOOK_START = time.perf_counter()
if SMOKE and DEVICE.type == "cpu":
    # Smoke runs share a small test machine with other jobs. There, two threads spin-waiting for
    # each other made this notebook 4x slower than one thread (158 s against 37 s, measured).
    torch.set_num_threads(1)

DATA = "cifar10" if cifar10_available() else "synthetic"
if SMOKE:
    SUBSET = dict(train_subset=2000, test_subset=500)
elif DEVICE.type == "cpu":
    SUBSET = dict(train_subset=10_000, test_subset=2000)   # CPC encodes 49 patches per image: keep CPU runs short
else:
    SUBSET = {}
BACKBONE = "small" if DEVICE.type == "cuda" and not SMOKE else "tiny"
LABELS = 100 if SMOKE else 250
data = make_bundle(DATA, num_labels=LABELS, seed=0, device=DEVICE, **SUBSET)
print(f"device {DEVICE} · smoke {SMOKE} · {data} · backbone {BACKBONE}")

# %% [markdown]
# ## Intuition: which way is up?
# Each column below is one training image under the four rotations 0°, 90°, 180°, 270°. Nobody
# labelled these images, yet the rotation *is* a label, and a perfect one. To say that the third
# picture is upside down, a network must know what the right way up looks like for a horse, a
# ship or a truck: sky above, wheels below, heads above legs. That is object knowledge, learned
# without a single class label (Gidaris et al. 2018).

# %%
examples = data.train_images[torch.arange(0, len(data.train_images), len(data.train_images) // 8)[:8]]
rotated, rotation_labels = rotate_batch(examples)
image_grid(rotated, nrow=8, titles=[f"{90 * int(k)}°" for k in rotation_labels], scale=1.1,
           suptitle="rotate_batch: the batch at 0°, then at 90°, 180°, 270° (label k = k·90°)")
plt.show()

# %% [markdown]
# ## The rotation loss
# With $\mathrm{rot}_k$ the counter-clockwise rotation by $k\cdot 90°$, $f_\theta$ the backbone,
# $W \in \mathbb{R}^{4\times F}$ a linear head and a batch of $B$ images $x_1,\dots,x_B$:
# $$\mathcal{L}_{\text{rot}} = -\frac{1}{4B}\sum_{i=1}^{B}\sum_{k=0}^{3}
#   \log\operatorname{softmax}\big(W f_\theta(\mathrm{rot}_k(x_i))\big)_k$$
# a four-way cross-entropy in which every image appears under all four rotations in the same batch
# (the paper found that better than one random rotation per image).
#
# Below: one image and one rotation at a time, then the vectorised version, then the library's
# `rotate_batch` + `rotation_loss`, on a random linear "network" in float64.

# %%
def rotation_loss_literal(images, network):
    total, count = 0.0, 0
    for image in images:
        for k in range(4):
            logits = network(torch.rot90(image, k, dims=(1, 2)).unsqueeze(0))[0]
            total = total - torch.log_softmax(logits, dim=0)[k]
            count += 1
    return total / count


def rotation_loss_vectorised(images, network):
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4).repeat_interleave(len(images))
    return F.cross_entropy(network(rotated), labels)


weights = torch.randn(4, 3 * 8 * 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.1
toy_network = lambda x: x.flatten(1) @ weights.T   # noqa: E731  (a linear "backbone + head")
toy_images = torch.randn(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
literal = rotation_loss_literal(toy_images, toy_network)
torch.testing.assert_close(rotation_loss_vectorised(toy_images, toy_network), literal)
library_images, library_labels = rotate_batch(toy_images)
torch.testing.assert_close(rotation_loss(toy_network(library_images), library_labels), literal)
print(f"literal == vectorised == rotate_batch + rotation_loss: {literal.item():.6f}")

# %% [markdown]
# One detail that breaks RotNet silently: **augment first, rotate second**. A horizontal flip
# applied *after* a 90° rotation gives the same picture as a flipped image rotated by 270°, so the
# label would depend on something the network cannot see. `ssl_course.methods.rotation` crops and
# flips, then rotates.

# %% [markdown]
# ## Contrastive Predictive Coding: predict the patches below
# CPC (van den Oord et al. 2018; CPC v2: Hénaff et al. 2019) cuts each $32\times32$ image into a
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
# ### The masked context network
# The context at row $r$ must not see rows below $r$, or predicting them is copying. CPC v2 uses a
# PixelCNN-style network; here it is a stack of residual blocks whose $3\times3$ convolutions have
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
# Two more ways to cheat, and what the course's `cpc` method does about them:
# - **Overlap.** Patch row $r+1$ shares half its pixels with row $r$, so "predicting" it can be done
#   by copying. The method predicts $k = 2, 3, 4$ rows ahead (`min_offset=2`), which share no pixel
#   with anything the context has seen.
# - **Batch norm.** Batch statistics mix every patch of the batch, including the ones to predict.
#   CPC v2 replaced batch norm with layer norm in the encoder; the method swaps every `BatchNorm2d`
#   of the backbone for `GroupNorm(1, C)`. The course tests check both properties, and that
#   changing pixels below row $4r+8$ leaves the context at row $r$ untouched.

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
# ## Training: rotation, CPC, and the supervised baseline
# The same engine, the same data, the same backbone and the same time budget for all three. The
# two pretext methods never see a label; they are judged by a weighted kNN classifier (whose memory
# bank holds *all* training labels: it measures how well the features separate the classes) and by
# a linear probe fitted on the few labelled images only. The supervised baseline trains on those
# few labels, so its test accuracy is the number to beat. Runs are saved under `runs/` and
# reloaded when the cell runs again.

# %%
BUDGET_MINUTES = 3.0 if DEVICE.type == "cuda" else 5.0    # per method; smoke mode uses 30 steps instead
# None: each method's default (rotation 128 images = 512 rotated ones, CPC 64 images = 3136 patches,
# supervised 128); smoke mode uses small batches so that the three runs take well under a minute.
BATCH_SIZE = dict(rotation=32, cpc=16, supervised=32) if SMOKE else dict(rotation=None, cpc=None, supervised=None)


def train(name):
    torch.manual_seed(0)
    method = build_method(name, BACKBONE, data.num_classes)
    out_dir = config.runs_dir() / f"02_{name}_{DATA}_{LABELS}_{BACKBONE}{'_smoke' if SMOKE else ''}"
    settings = TrainConfig(max_steps=30 if SMOKE else None, max_minutes=None if SMOKE else BUDGET_MINUTES,
                           batch_size=BATCH_SIZE[name], monitor_every=0 if SMOKE else None,
                           monitor_bank_size=2000, monitor_test_size=1000,
                           out_dir=out_dir, resume=True, seed=0, progress=not SMOKE)
    history = fit(method, data, settings)
    metrics = evaluate_method(method, data, knn_bank_size=1000 if SMOKE else None)
    print(f"{name:>10}: {history.step[-1]} steps in {history.seconds[-1]:.0f} s · kNN {metrics['knn_accuracy']:.3f} "
          f"· linear probe on {LABELS} labels {metrics['linear_probe_accuracy']:.3f}"
          + (f" · classifier {metrics['classifier_accuracy']:.3f}" if "classifier_accuracy" in metrics else ""))
    return method, history, metrics


runs = {name: train(name) for name in ("rotation", "cpc", "supervised")}

# %%
for name, (_, history, _) in runs.items():
    plot_history(history, title=name)
plt.show()
rotation_acc = runs["rotation"][1].logs["rotation_acc"]
cpc_acc = runs["cpc"][1].logs["cpc_acc"]
print(f"rotation: pretext accuracy {rotation_acc[0]:.3f} -> {rotation_acc[-1]:.3f} (chance 0.25)")
print(f"cpc: the true patch 2 rows below wins among all candidates {cpc_acc[0]:.4f} -> {cpc_acc[-1]:.4f} of the time "
      f"(chance 1/(B·S) = {1 / ((BATCH_SIZE['cpc'] or 64) * 35):.4f})")

# %% [markdown]
# What to look for: on CIFAR-10 the rotation accuracy climbs well above 0.25 within minutes. On the
# synthetic fallback data it hardly can: discs, squares, crosses, rings, checkerboards and dot
# lattices look the same after a quarter turn, and horizontal stripes turned by 90° are the
# vertical-stripes class, so the pretext task has no answer. A pretext task is only as good as the
# cue it forces the network to find in *your* data.

# %% [markdown]
# ## Evaluation and comparison
# Every number below is read from the runs above. Two baselines: the supervised network's own
# classifier (its test accuracy, the number from notebook 00), and a linear probe on its features
# fitted exactly like the pretext methods' probes. After a short run the probe can beat the
# network's own classifier head, which has seen the few labels for only a few steps.

# %%
baseline = runs["supervised"][2]["test_accuracy"]            # the supervised network's own classifier
baseline_probe = runs["supervised"][2]["linear_probe_accuracy"]  # its features, probed like the others
print(f"{'method':>10} | {'kNN':>6} | {'probe':>6} | probe vs supervised test acc ({baseline:.3f}) and probe ({baseline_probe:.3f})")
for name, (_, _, metrics) in runs.items():
    probe = metrics["linear_probe_accuracy"]
    versus = "" if name == "supervised" else f"{probe - baseline:+.3f} / {probe - baseline_probe:+.3f}"
    print(f"{name:>10} | {metrics['knn_accuracy']:>6.3f} | {probe:>6.3f} | {versus}")
best = max(("rotation", "cpc"), key=lambda n: runs[n][2]["linear_probe_accuracy"])
best_probe = runs[best][2]["linear_probe_accuracy"]
print(f"best pretext method by linear probe here: {best}; it "
      f"{'beats' if best_probe > baseline else 'does not beat'} the supervised classifier and "
      f"{'beats' if best_probe > baseline_probe else 'does not beat'} a probe on the supervised features, "
      f"at this budget")

figure, axis = plt.subplots(figsize=(6, 3))
names = list(runs)
axis.bar([n + "\nkNN" for n in names], [runs[n][2]["knn_accuracy"] for n in names], color="tab:gray")
axis.bar([n + "\nprobe" for n in names], [runs[n][2]["linear_probe_accuracy"] for n in names], color="tab:blue")
axis.axhline(baseline, color="black", linestyle="--", label="supervised test accuracy")
axis.axhline(1 / data.num_classes, color="tab:red", linestyle=":", label="chance")
axis.set(ylim=(0, 1), ylabel="test accuracy", title=f"{DATA}, {LABELS} labels, same budget")
axis.tick_params(axis="x", labelsize=7)
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### t-SNE of the test embeddings
# The features each method hands to the kNN and the probe (for CPC: the mean of its 49 patch
# encodings), squeezed to 2-D and coloured by the true class.

# %%
figure, axes = plt.subplots(1, 3, figsize=(15, 5))
for axis, (name, (method, _, metrics)) in zip(axes, runs.items()):
    method.eval()
    features = extract_features(method.embed, data.test_images)
    plot_tsne(features, data.test_labels, data.class_names, axis=axis, legend=name == "supervised",
              title=f"{name} (kNN {metrics['knn_accuracy']:.2f})", max_points=300 if SMOKE else 2000)
figure.tight_layout()
plt.show()

# %% [markdown]
# ## Take-aways and pitfalls
# - **A pretext task must be solvable, and solving it must need semantics.** Rotation works on
#   photographs because gravity gives them an "up"; it fails on rotation-symmetric data and
#   learns shortcuts from anything that marks an orientation (borders, watermarks, JPEG artefacts).
# - **Which layer to evaluate.** RotNet's last layers specialise in rotations; the paper's best
#   features come from the middle of the network. The course evaluates the pooled output for every
#   method, which flatters no one.
# - **CPC's shortcuts.** Context networks that can see below row $r$, targets that overlap the context,
#   batch norm across patches, and colour: patches of one image share their colours, so the
#   easiest way to find "my" patch among the negatives is colour. CPC v2 counters it with per-patch
#   colour dropping; the course's `cpc` keeps one random channel of half the patches (`color_drop=0.5`).
# - **Conventions differ.** RotNet implementations order the four rotations image-major or
#   rotation-major; CPC implementations differ in the offsets they predict (CPC v2's code skips the
#   overlapping rows), in the direction(s) of prediction (v2 adds left/right/up), and in whether the
#   negatives come from the batch (v2) or from other positions of the same sequence (v1 audio).
# - **Cost.** CPC encodes 49 patches per image: with the `tiny` backbone a step costs about four
#   times a step on whole images (measured on one CPU thread). Budgets in minutes, not epochs,
#   keep comparisons fair.

# %% [markdown]
# ## Exercises
# **1. Rotate a batch.** Return the batch under the four rotations, rotation-major (the whole batch at
# 0°, then at 90°, …), and the labels `k` (`int64`). `torch.rot90(x, k, dims=(2, 3))` rotates
# counter-clockwise.

# %%
def my_rotate_batch(x):
    # YOUR CODE: four rotated copies concatenated on dim 0, and the matching labels
    raise NotImplementedError("write rotate_batch")


check_rotate_batch(my_rotate_batch);

# %% [markdown]
# **2. CPC's InfoNCE.** `predictions` and `targets` are `[B, S, D]`; every target of the batch is a
# candidate for every prediction. Return the mean cross-entropy.

# %%
def my_cpc_info_nce(predictions, targets, temperature=1.0):
    # YOUR CODE
    raise NotImplementedError("write cpc_info_nce")


check_cpc_info_nce(my_cpc_info_nce);

# %% [markdown]
# **3. Break it on purpose.** Train `cpc` with `min_offset=1` (predict the overlapping row too) and
# with `layer_norm=False`, e.g. `build_method("cpc", BACKBONE, 10, min_offset=1)` in `train` (give the
# run another folder name). Compare the pretext accuracy, the kNN and the probe accuracy with the
# default run, and explain what you see with the pitfalls above.
#
# Solutions: `notebooks/solutions/nce_solutions.py`.

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")

# %% [markdown]
# ## References
# - S. Gidaris, P. Singh, N. Komodakis, *Unsupervised Representation Learning by Predicting Image
#   Rotations*, ICLR 2018 (code: github.com/gidariss/FeatureLearningRotNet).
# - A. van den Oord, Y. Li, O. Vinyals, *Representation Learning with Contrastive Predictive Coding*,
#   arXiv:1807.03748, 2018.
# - O. J. Hénaff, A. Srinivas, J. De Fauw, A. Razavi, C. Doersch, S. M. A. Eslami, A. van den Oord,
#   *Data-Efficient Image Recognition with Contrastive Predictive Coding*, ICML 2020 (arXiv 2019; CPC v2).
# - A. van den Oord, N. Kalchbrenner, K. Kavukcuoglu, *Pixel Recurrent Neural Networks*, ICML 2016
#   (masked convolutions).

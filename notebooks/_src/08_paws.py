# %% [markdown]
# # 08 · PAWS: classify unlabelled views with a labelled support set
#
# **What you will learn**
# - the soft nearest-neighbour (SNN) classifier: a prediction that is a similarity-weighted
#   vote of a few labelled *support* embeddings, with no classifier weights at all;
# - why PAWS sharpens its targets and what the temperature `T` does to a probability vector;
# - ME-MAX, the regulariser that stops every image from being assigned to one class, seen in a
#   toy run with and without it;
# - the PAWS loss written with loops, then checked against `ssl_course.losses`;
# - PAWS trained on CIFAR-10 with few labels and compared with the supervised baseline under the
#   same time budget: SNN accuracy, per-class accuracy, a linear head, t-SNE.
#
# **Time budget**: the trainings dominate: about 11 min on a laptop GPU
# (estimated from the FLOPs counted per training step at an assumed 5 TFLOP/s) and about
# 10.8 h on one CPU thread (measured throughput × epochs; more cores are faster). Each
# training cell states its own figures next to its `BUDGET_EPOCHS`; lower it to go faster
# (fractions such as 0.5 work). The budget is in epochs, so your numbers match the reference
# results whatever your hardware.
#
# **Prerequisites**: `00_setup_and_data` (data, augmentations, the baseline) and `03_simclr`
# (two augmented views of an image, projection heads, temperatures in a softmax over
# similarities).

# %% [markdown]
# ## Set-up

# %%
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_course import config
from ssl_course.data import cifar10_available, make_bundle
from ssl_course.evaluate import extract_features, per_class_accuracy
from ssl_course.experiment import run_methods
from ssl_course.exercises import check_me_max, check_sharpen, check_snn
from ssl_course.losses import me_max_regularizer, paws, sharpen, snn
from ssl_course.methods import build_method
from ssl_course.train import load_checkpoint
from ssl_course.viz import interactive_plot, plot_history, plot_per_class_accuracy, plot_tsne

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
print(f"device: {DEVICE}; smoke mode: {SMOKE}")

# %% [markdown]
# ## Intuition: a classifier made of a few labelled examples
# PAWS never trains a classification layer. To classify an embedding $z$ it compares $z$ with
# the embeddings of a small **support set** of labelled images and averages their labels,
# weighting each support by $\exp(\text{cosine similarity} / \tau)$. Below, the "embeddings"
# are points in the plane and there are four labelled supports per class. Because PAWS
# normalises embeddings, only the *direction* of a point matters: the decision regions are
# wedges around the origin. The colour is the predicted class; its strength is the predicted
# probability. Move the temperature $\tau$: small values give hard nearest-neighbour regions,
# large values blur every prediction towards the class proportions of the support set.

# %%
toy_angles = torch.tensor([[0.2, 0.5, 0.8, 1.1], [2.3, 2.6, 2.9, 3.3], [4.3, 4.6, 5.0, 5.4]], dtype=torch.float64)
toy_radius = torch.tensor([1.0, 1.6, 0.8, 1.3], dtype=torch.float64)
toy_supports = torch.stack([toy_radius * torch.cos(toy_angles), toy_radius * torch.sin(toy_angles)], -1)
toy_supports = toy_supports.reshape(-1, 2)
toy_support_classes = torch.arange(3).repeat_interleave(4)
toy_support_labels = F.one_hot(toy_support_classes, 3).double()
grid_x, grid_y = torch.meshgrid(torch.linspace(-2, 2, 161, dtype=torch.float64),
                                torch.linspace(-2, 2, 161, dtype=torch.float64), indexing="xy")
grid = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
toy_colours = np.array(plt.cm.tab10.colors[:3])


def show_snn_regions(temperature):
    probabilities = snn(grid, toy_supports, toy_support_labels, temperature)          # [G, 3]
    confidence, predicted = probabilities.max(dim=1)
    picture = toy_colours[predicted.numpy()] * confidence.numpy()[:, None] + (1 - confidence.numpy()[:, None])
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.imshow(picture.reshape(161, 161, 3), origin="lower", extent=(-2, 2, -2, 2))
    for c in range(3):
        chosen = toy_support_classes == c
        axis.scatter(*toy_supports[chosen].T, color=toy_colours[c], edgecolor="black", s=60, label=f"support, class {c}")
    axis.set(title=f"SNN prediction, τ = {temperature:.2f} (stronger colour = more confident)")
    axis.legend(fontsize=7, loc="lower left")
    plt.show()


interactive_plot(show_snn_regions, temperature=(0.02, 1.0, 0.02, 0.1))

# %% [markdown]
# ## The formulas
# **Soft nearest neighbours.** For an embedding $z_i \in \mathbb{R}^D$, supports
# $z_{S,1}, \dots, z_{S,M}$ with (smoothed one-hot) label rows $y_{S,m} \in \mathbb{R}^K$, and a
# temperature $\tau > 0$, with $\hat z = z / \lVert z \rVert_2$:
#
# $$\pi(z_i) = \sum_{m=1}^{M} \frac{\exp(\hat z_i \cdot \hat z_{S,m} / \tau)}{\sum_{m'=1}^{M} \exp(\hat z_i \cdot \hat z_{S,m'} / \tau)}\; y_{S,m} \;\in\; \Delta^{K}$$
#
# **Sharpening** with temperature $T$ raises every probability to the power $1/T$ and renormalises:
#
# $$\operatorname{Sharpen}(p, T)_k = \frac{p_k^{1/T}}{\sum_{j=1}^{K} p_j^{1/T}}$$
#
# **The PAWS loss.** Every unlabelled image $x$ gives two global views and $m$ small crops. Let
# $z_i$ be the embedding of anchor view $i$ (anchors get gradients) and $z_i^+$ the embedding of
# the *other* global view of the same image (for a small crop: both global views, and the two
# targets are averaged). The target $t_i = \operatorname{Sharpen}(\pi(z^+_i), T)$ is computed
# without gradient, and
#
# $$\mathcal{L} = \underbrace{\frac{1}{n}\sum_{i=1}^{n} H\big(t_i, \pi(z_i)\big)}_{\text{cross-entropy}}
# \; + \; \underbrace{\sum_{k=1}^{K} \bar p_k \log \bar p_k}_{\text{ME-MAX}},
# \qquad \bar p = \frac{1}{n}\sum_{i=1}^{n} \operatorname{Sharpen}\big(\pi(z_i), T\big),$$
#
# where $n$ is the number of anchor views and $H(t, p) = -\sum_k t_k \log p_k$. The ME-MAX term is
# the *negative entropy of the average prediction*: it is smallest, $-\log K$, when the batch as
# a whole uses every class equally often. The official defaults are $\tau = 0.1$, $T = 0.25$ and
# label smoothing 0.1 on the support labels; target entries below $10^{-4}$ are set to zero.

# %% [markdown]
# ## The formulas with loops, then checked against the library
# Deliberately slow code: one query, one support, one class at a time, in float64.

# %%
def snn_loop(query, supports, labels, tau):
    """π(z) for ONE query vector [D] against supports [M, D] with label rows [M, K]."""
    query_norm = math.sqrt(sum(float(v) ** 2 for v in query))
    weights = []
    for support in supports:
        support_norm = math.sqrt(sum(float(v) ** 2 for v in support))
        cosine = sum(float(a) * float(b) for a, b in zip(query, support)) / (query_norm * support_norm)
        weights.append(math.exp(cosine / tau))
    total = sum(weights)
    return [sum(weights[m] / total * float(labels[m, k]) for m in range(len(supports))) for k in range(labels.shape[1])]


def sharpen_loop(p, T):
    powered = [float(v) ** (1.0 / T) for v in p]
    return [v / sum(powered) for v in powered]


def paws_loop(anchors, targets, supports, labels, tau, T, multicrop, target_supports):
    """(cross-entropy, ME-MAX) exactly as in the formulas, with the official multi-crop and floor rules."""
    batch = len(targets) // 2
    target_rows = [sharpen_loop(snn_loop(t, target_supports, labels, tau), T) for t in targets]
    for _ in range(multicrop):   # a small crop's target: mean of its image's two global targets
        target_rows += [[0.5 * (a + b) for a, b in zip(target_rows[i], target_rows[batch + i])] for i in range(batch)]
    target_rows = [[0.0 if v < 1e-4 else v for v in row] for row in target_rows]
    predictions = [snn_loop(a, supports, labels, tau) for a in anchors]
    cross_entropy = sum(-sum(t * math.log(p) for t, p in zip(t_row, p_row))
                        for t_row, p_row in zip(target_rows, predictions)) / len(anchors)
    sharpened = [sharpen_loop(p, T) for p in predictions]
    mean_prediction = [sum(row[k] for row in sharpened) / len(sharpened) for k in range(labels.shape[1])]
    return cross_entropy, sum(v * math.log(v) for v in mean_prediction)


generator = torch.Generator().manual_seed(0)
B, MULTICROP, M, K, D, TAU, T = 3, 2, 6, 3, 5, 0.1, 0.25
anchors = torch.randn((2 + MULTICROP) * B, D, generator=generator, dtype=torch.float64)
views = torch.randn(2 * B, D, generator=generator, dtype=torch.float64)
targets = torch.cat([views[B:], views[:B]])                       # row i targets anchor i: the OTHER view
supports = torch.randn(M, D, generator=generator, dtype=torch.float64)
target_supports = supports + 0.1 * torch.randn(M, D, generator=generator, dtype=torch.float64)
labels = F.one_hot(torch.arange(M) % K, K).double() * 0.9 + 0.1 / K   # label smoothing 0.1

# the vectorised versions, one line each
snn_vectorised = torch.softmax(F.normalize(anchors, dim=1) @ F.normalize(supports, dim=1).T / TAU, dim=1) @ labels
sharpen_vectorised = snn_vectorised ** (1 / T) / (snn_vectorised ** (1 / T)).sum(1, keepdim=True)

snn_looped = torch.tensor([snn_loop(a, supports, labels, TAU) for a in anchors], dtype=torch.float64)
sharpen_looped = torch.tensor([sharpen_loop(p, T) for p in snn_vectorised], dtype=torch.float64)
torch.testing.assert_close(snn(anchors, supports, labels, TAU), snn_looped)
torch.testing.assert_close(snn(anchors, supports, labels, TAU), snn_vectorised)
torch.testing.assert_close(sharpen(snn_vectorised, T), sharpen_looped)
torch.testing.assert_close(sharpen(snn_vectorised, T), sharpen_vectorised)
library = paws(anchors, targets, supports, labels, TAU, T, me_max=True, multicrop=MULTICROP,
               target_support_embeddings=target_supports)
looped = paws_loop(anchors, targets, supports, labels, TAU, T, MULTICROP, target_supports)
torch.testing.assert_close(torch.stack(library), torch.tensor(looped, dtype=torch.float64))
torch.testing.assert_close(me_max_regularizer(snn_vectorised, T), torch.tensor(looped[1], dtype=torch.float64))
print(f"loops == library: cross-entropy {looped[0]:.5f}, ME-MAX {looped[1]:.5f} (minimum possible -log K = {-math.log(K):.5f})")

# %% [markdown]
# ## Sharpening
# The target of an anchor is the SNN prediction of the other view, *sharpened*: a prediction of
# $(0.5, 0.3, 0.2)$ becomes a more confident target, so the network is asked to be a little
# more decisive than it currently is, and the argmax never moves. $T = 1$ changes nothing; $T
# \to 0$ gives a one-hot vector; $T > 1$ flattens. Slide $T$ and watch the bars.

# %%
prediction = torch.tensor([[0.08, 0.35, 0.25, 0.05, 0.15, 0.12]], dtype=torch.float64)


def show_sharpening(T):
    sharpened = sharpen(prediction, T)[0]
    figure, axis = plt.subplots(figsize=(6, 2.8))
    x = np.arange(prediction.shape[1])
    axis.bar(x - 0.2, prediction[0].numpy(), width=0.4, label="SNN prediction")
    axis.bar(x + 0.2, sharpened.numpy(), width=0.4, label=f"Sharpen(·, T={T:.2f})")
    entropy = lambda p: float(-(p * p.clamp_min(1e-12).log()).sum())
    axis.set(xticks=x, xlabel="class", ylabel="probability", ylim=(0, 1),
             title=f"entropy {entropy(prediction[0]):.2f} → {entropy(sharpened):.2f} nats")
    axis.legend()
    plt.show()


interactive_plot(show_sharpening, T=(0.05, 2.0, 0.05, 0.25))

# %% [markdown]
# ## ME-MAX: why the average prediction must stay spread out
# Sharpened targets reward confidence, and there is a cheap way to be confident: put every
# unlabelled image near the supports of *one* class. Each view then agrees with the other view,
# the cross-entropy is small, and the classifier is useless. ME-MAX penalises exactly this: it
# wants the *average* prediction $\bar p$ over a batch to be close to uniform, while still
# allowing every single prediction to be confident.
#
# A toy run: 600 unlabelled points from three overlapping 2-D blobs (200 per class), two
# labelled supports per class, a small MLP as the "network", two noisy "views" of each point, and
# the PAWS loss from the library, trained once without and once with ME-MAX (same seed). The
# bars show the average SNN prediction $\bar p$ over all points at a few moments of training;
# the balanced answer is one third each.

# %%
def toy_paws_run(use_me_max: bool, steps: int = 200, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 2.0], [-1.8, -1.0], [1.8, -1.0]])
    points = torch.cat([centre + 1.6 * torch.randn(200, 2, generator=gen) for centre in centres])
    classes = torch.arange(3).repeat_interleave(200)
    support_index = torch.cat([torch.nonzero(classes == c)[:2, 0] for c in range(3)])   # 2 labels per class
    support_labels = F.one_hot(classes[support_index], 3).float()
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    optimiser = torch.optim.Adam(network.parameters(), lr=0.02)
    snapshots = {}
    for step in range(steps):
        batch = points[torch.randint(len(points), (128,), generator=gen)]
        view1 = batch + 0.3 * torch.randn(batch.shape, generator=gen)
        view2 = batch + 0.3 * torch.randn(batch.shape, generator=gen)
        z = network(torch.cat([view1, view2]))
        targets = torch.cat([z[128:], z[:128]]).detach()                 # the other view
        cross_entropy, me_max_term = paws(z, targets, network(points[support_index]), support_labels,
                                          me_max=use_me_max)
        optimiser.zero_grad()
        (cross_entropy + me_max_term).backward()
        optimiser.step()
        if step in (0, steps // 4, steps // 2, steps - 1):
            with torch.no_grad():
                probabilities = snn(network(points), network(points[support_index]), support_labels)
            snapshots[step] = (probabilities.mean(0), (probabilities.argmax(1) == classes).float().mean().item())
    return snapshots


toy_runs = {"without ME-MAX": toy_paws_run(False), "with ME-MAX": toy_paws_run(True)}
figure, axes = plt.subplots(2, 4, figsize=(12, 5), sharey=True)
for row, (title, snapshots) in zip(axes, toy_runs.items()):
    for axis, (step, (mean_prediction, accuracy)) in zip(row, snapshots.items()):
        axis.bar(range(3), mean_prediction.numpy(), color=toy_colours)
        axis.axhline(1 / 3, color="gray", linestyle="--", linewidth=1)
        axis.set(title=f"{title}\nstep {step}: accuracy {accuracy:.2f}", xticks=range(3), ylim=(0, 1))
axes[0, 0].set_ylabel("average prediction p̄")
axes[1, 0].set_ylabel("average prediction p̄")
for axis in axes[1]:
    axis.set_xlabel("class")
plt.tight_layout()
plt.show()
for title, snapshots in toy_runs.items():
    mean_prediction, accuracy = snapshots[max(snapshots)]
    print(f"{title:>15}: largest class share of p̄ {mean_prediction.max():.2f} (balanced: 0.33), "
          f"SNN accuracy on the toy points {accuracy:.2f}")

# %% [markdown]
# What to look for: without ME-MAX the bars drift away from one third, one class swallowing
# points of its neighbours; with it the average stays near uniform. (In this toy the drift is
# partial; in a real network with many classes, high learning rates and strong augmentation it
# can go all the way to a single class.) ME-MAX is a statement about the *batch*, so it assumes
# the unlabelled classes are roughly balanced: on a long-tailed data set it pushes the wrong way.

# %% [markdown]
# ## PAWS on CIFAR-10 with few labels
# `ssl_course.methods.paws` follows the official CIFAR-10 recipe (`facebookresearch/suncet`,
# `configs/paws/cifar10_train.yaml`) as far as the course engine allows:
#
# | | official CIFAR-10 | here |
# |---|---|---|
# | support batch | 64 images × 10 classes × 2 views, class-balanced | 64 per class when the labels allow, else the fewest labels of any class (`support_per_class=None`), × 10 × 2, drawn with `class_balanced_batch` from a labelled memory the method fills from the engine's labelled batches |
# | unlabelled views | 2 global (crop scale 0.75–1) + 6 small 18×18 crops (0.3–0.75) | the same (smoke mode: 2 small crops) |
# | heads | 3-layer projection head to 128-d, no prediction head | the same |
# | τ, T, label smoothing, ME-MAX | 0.1, 0.25, 0.1, on | the same |
# | optimiser | LARS, lr 3.2, 600 epochs | LARS, peak 3.2 per 256, start 1/4 and end 1/100 of the peak, a time budget |
#
# At test time there is no classifier head: the method embeds all labelled training images
# and predicts with the SNN against them (`test_accuracy` below). The engine also fits a
# logistic-regression head on frozen backbone features of the labelled images
# (`linear_probe_accuracy`): a linear head on top of PAWS features, not the full fine-tuning of
# the paper. The baseline trains with cross-entropy on the same labels for the same number of
# epochs. Runs are saved under `runs/`, so running the cell again reloads them.

# %%
DATA = "cifar10" if cifar10_available() else "synthetic"
NUM_LABELS = 100 if SMOKE else 250
SUBSET = dict(train_subset=2000, test_subset=500) if SMOKE else {}
BACKBONE = "tiny" if SMOKE else "small"
BUDGET_EPOCHS = 10   # per method; smoke mode uses a few steps instead
# Expected time of this cell (paws and the baseline, 10 epochs each, backbone small), training only:
#   laptop GPU ≈ 11 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 10.8 h: measured throughput on one thread of a server CPU, times the
#   epochs (benchmarks/RESULTS.md); more cores are faster. Fractions such as 0.5 work too.
data = make_bundle(DATA, num_labels=NUM_LABELS, seed=0, device=DEVICE, **SUBSET)
print(data)

# PAWS's default support batch is the official 64 per class when the labels allow: with 250 labels
# that is 25 per class. The times above were measured with 8 per class, which this cell keeps;
# drop `support_per_class` to train with the default (more supports, slower steps).
METHODS = {"paws": dict(multicrop=2, support_per_class=4) if SMOKE else dict(support_per_class=8),
           "supervised": {}}
results, run_dirs = run_methods(METHODS, "06", data=DATA, labels=NUM_LABELS, backbone=BACKBONE,
                                epochs=BUDGET_EPOCHS, steps=30 if SMOKE else None,
                                batch_size=64 if SMOKE else None, progress=not SMOKE, **SUBSET)

# %%
for name in METHODS:
    plot_history(json.loads((run_dirs[name] / "history.json").read_text()), title=name)
plt.show()
paws_logs = json.loads((run_dirs["paws"] / "history.json").read_text())["logs"]
figure, axis = plt.subplots(figsize=(6, 3))
for key in ("paws_xent", "me_max", "target_acc"):
    axis.plot(paws_logs[key], label=key)
axis.axhline(-math.log(data.num_classes), color="gray", linestyle="--", linewidth=1, label="-log K")
axis.set(xlabel="log point (one every few training steps)", ylabel="value",
         title="PAWS: the two loss terms and how often targets are right")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# `target_acc` is how often the arg-max of a target agrees with the hidden label of its
# unlabelled image; the method logs it for you and never trains on it. The ME-MAX term sits near
# $-\log K$ when predictions are spread over all classes.

# %% [markdown]
# ## Evaluation: per-class accuracy against the baseline, and t-SNE
# Both trained models are reloaded from their checkpoints. PAWS predicts with the SNN over the
# labelled set (`prepare_evaluation` embeds it), the baseline with its classifier.

# %%
def load_trained(name: str):
    method = build_method(name, BACKBONE, data.num_classes, **METHODS[name])
    method.load_state_dict(load_checkpoint(run_dirs[name] / "checkpoint.pt", map_location=DEVICE)["method"])
    method = method.to(DEVICE).eval()
    with torch.no_grad():
        method.prepare_evaluation(data)
    return method


trained = {name: load_trained(name) for name in METHODS}
predictions = {name: extract_features(method.predict, data.test_images).argmax(1) for name, method in trained.items()}
accuracy = {name: per_class_accuracy(predictions[name], data.test_labels, data.num_classes) for name in METHODS}
axis = None
for name, label in (("paws", "PAWS (SNN)"), ("supervised", "supervised baseline")):
    axis = plot_per_class_accuracy(accuracy[name], data.class_names, label=label, axis=axis)
axis.set_title(f"per-class test accuracy, {NUM_LABELS} labels, same budget")
plt.show()
gap = accuracy["paws"] - accuracy["supervised"]
print(f"mean test accuracy: PAWS {accuracy['paws'].mean():.3f}, baseline {accuracy['supervised'].mean():.3f} "
      f"(difference {gap.mean():+.3f})")
print(f"PAWS is better on {int((gap > 0).sum())} of {data.num_classes} classes; largest gain: "
      f"{data.class_names[int(gap.argmax())]} ({gap.max():+.3f}), largest loss: "
      f"{data.class_names[int(gap.argmin())]} ({gap.min():+.3f})")
print(f"linear head on frozen features: PAWS {results['paws']['linear_probe_accuracy']:.3f}, "
      f"baseline {results['supervised']['linear_probe_accuracy']:.3f}")

# %%
figure, axes = plt.subplots(1, 2, figsize=(11, 5))
for axis, name in zip(axes, METHODS):
    features = extract_features(trained[name].embed, data.test_images)
    plot_tsne(features, data.test_labels, data.class_names, axis=axis, max_points=500 if SMOKE else 2000,
              legend=axis is axes[0], title=f"{name}: backbone features (test acc {results[name]['test_accuracy']:.2f})")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Take-aways and pitfalls
# - PAWS turns a self-supervised two-view objective into a semi-supervised one: the "cluster
#   assignment" of a view is its SNN prediction against labelled supports, so the clusters are
#   the classes from the first step on. No classifier weights are learned; at test time the
#   labelled set *is* the classifier.
# - The target of a view is the other view's **sharpened** prediction, computed without
#   gradient. Without sharpening the targets are as unsure as the predictions and the loss has
#   little to teach; with too small a `T` early mistakes become confident labels.
# - **ME-MAX** prevents the collapse in which every image goes to one class; it assumes the
#   unlabelled data are roughly class-balanced. It does *not* prevent the other collapse, where
#   every embedding lands on the same point: each prediction is then the uniform vote of the
#   supports, the cross-entropy equals $\log K$, ME-MAX equals $-\log K$ and the loss sits at 0.
#   A too-large learning rate does that (the method's docstring lists the rates that collapsed
#   in short CPU runs); watch for a loss stuck at 0 and a `target_acc` at chance.
# - Support batches must be **class-balanced**: the SNN is a vote, and a class with more
#   supports wins more votes. The official code samples 64 labelled images of every class per
#   step; the method does the same when every class has 64 labels, and otherwise uses as many
#   per class as the class with the fewest labels has (25 with 250 labels; the training cell
#   above keeps 8 per class for its time budget).
# - Conventions differ between the paper and the code: targets come from the projection (the
#   anchors from the prediction head when there is one); a small crop's target is the mean of
#   its image's two global targets; target entries below $10^{-4}$ are zeroed without
#   renormalising; the loss is computed in float32 even under mixed precision. With the wide
#   ResNet and no prediction head, the official code takes targets from the backbone output
#   *before* the projection head (a side effect of `return_before_head`); this course keeps
#   anchors and targets in the same projection space.
# - The accuracies here come from a short budget; the paper trains for 600 epochs with LARS.
#   Compare methods only at equal budgets (the numbers printed above), and say whether a number
#   is the SNN, a linear head, or full fine-tuning.

# %% [markdown]
# ## Exercises
# Each checker runs your function and the library's on six random inputs and prints ✓ or the
# first input where they differ, with a hint. The stubs raise `NotImplementedError` until you
# fill them in; the checker reports that instead of stopping the notebook. Solutions:
# `notebooks/solutions/semi_supervised_solutions.py`.
#
# **Exercise 1.** Implement `my_sharpen(p, T)` for a batch `p` of shape `[N, K]`.

# %%
def my_sharpen(p, T):
    # TODO: raise every probability to the power 1/T, then divide each row by its sum.
    raise NotImplementedError


check_sharpen(my_sharpen);

# %% [markdown]
# **Exercise 2.** Implement the soft nearest-neighbour classifier `my_snn(query, support_embeddings,
# support_labels, temperature)`: `[N, D]`, `[M, D]`, `[M, K]` → `[N, K]`. Do not forget to
# normalise both sets of embeddings.

# %%
def my_snn(query, support_embeddings, support_labels, temperature):
    # TODO: cosine similarities / temperature -> softmax over the supports -> weighted labels.
    raise NotImplementedError


check_snn(my_snn);

# %% [markdown]
# **Exercise 3.** Implement the ME-MAX term `my_me_max(probabilities, T)`: sharpen each row, average
# over the batch, return $\sum_k \bar p_k \log \bar p_k$. Then answer: what is its value for a
# batch whose predictions are all one-hot on the same class? And when each class gets a third of
# the one-hot predictions in a 3-class problem?

# %%
def my_me_max(probabilities, T):
    # TODO
    raise NotImplementedError


check_me_max(my_me_max);

# %% [markdown]
# **Exercise 4 (no checker).** Re-run the CIFAR-10 cell with `METHODS["paws"] = dict(me_max=False)`
# and a new tag for `run_methods` (e.g. `"06_no_memax"`, so the run gets its own folder). Compare `target_acc`, the per-class accuracies and the average
# prediction with the run above.
#
# ## References
# - M. Assran, M. Caron, I. Misra, P. Bojanowski, A. Joulin, N. Ballas, M. Rabbat,
#   *Semi-Supervised Learning of Visual Features by Non-Parametrically Predicting View Assignments
#   with Support Samples*, ICCV 2021.
# - Official code: `facebookresearch/suncet` (`src/paws_train.py`, `src/losses.py`,
#   `configs/paws/cifar10_train.yaml`, `snn_eval.py`).

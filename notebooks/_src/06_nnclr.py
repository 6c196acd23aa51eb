# %% [markdown]
# # 06 · NNCLR: nearest neighbours as positives
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/06_nnclr.ipynb)
#
# **What you will learn**
# - why NNCLR replaces "the other view of the same image" by "the nearest neighbour of this view
#   in a queue of past embeddings", and what that buys: positives that are *different images*,
#   often of the same class, which no augmentation could produce;
# - the NNCLR loss written with loops and checked against `ssl_course.losses.nearest_neighbours`
#   and `ssl_course.losses.nnclr`, and the queue's first-in-first-out update;
# - how to watch the mechanism work during training: the neighbours of a few query images early
#   and late in training, and the fraction of neighbours that share the query's class;
# - what the queue size changes.

# %% [markdown]
# **Time budget**: the trainings dominate (the main run, a sweep of four short runs, the baseline; on a
# CPU the notebook switches to the `tiny` backbone and a 10 000-image subset): about 6 min on a laptop
# GPU (estimated from the FLOPs counted per training step at an assumed 5 TFLOP/s) and about 8 min on
# one CPU thread (measured throughput × epochs; more cores are faster). Each
# training cell states its own figures next to its `BUDGET_EPOCHS`; lower it to go faster
# (fractions such as 0.5 work). The budget is in epochs, so a slower machine takes longer but reaches the same numbers (the
# course's shipped reference runs are much shorter: each figure's caption says how long).
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run instead
# (see the README). The trained NNCLR network itself is not shipped (its heads and queue weigh
# 16 MB), so the two cells that look inside its queue need a run of your own.

# %% [markdown]
# **Prerequisites**: `04_simclr_moco` (two views, projection heads, NT-Xent / InfoNCE); `00_setup_and_data` for the
# data and the engine.
#
# **Recap** of notebook 04, which this one builds on (answers: [`notebooks/solutions/ANSWERS.md`,
# section 06](solutions/ANSWERS.md#06-nnclr)):
# 1. What is MoCo's queue, and what does it give the loss?
# 2. Why does MoCo compute its keys with a momentum encoder?
# 3. Where does SimCLR's positive come from, and what limits it?

# %% [markdown]
# ## Set-up
# `SMOKE` is true when the environment variable `SSL_COURSE_SMOKE=1` is set: every cell then runs
# on tiny data for a few steps, a quick check that the notebook runs from top to bottom (its numbers
# mean nothing). Leave it unset when you learn. `notebook_setup` seeds everything, picks
# the device, loads CIFAR-10 (the course's synthetic data when CIFAR-10 is not on this machine) and
# chooses the backbone: `tiny` on a CPU, where it also trains on a 10 000-image subset, `small` on
# a GPU.

# %%
import sys

if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "ssl_course @ git+https://github.com/ssl-course/ssl_course"], check=True)
    from ssl_course.colab import colab_setup
    colab_setup()

import math

import matplotlib.pyplot as plt
import torch
from torch.nn import functional as F

from ssl_course import claims, config, reference
from ssl_course.data.augment import normalize
from ssl_course.evaluate import evaluate_method, extract_features
from ssl_course.experiment import Experiment, run_experiment
from ssl_course.losses import nearest_neighbours, nnclr, update_queue
from ssl_course.methods import build_method
from ssl_course.notebook import notebook_setup
from ssl_course.results import load_trained, save_embedding_sample
from ssl_course.results import test_embedding as results_test_embedding
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, interactive_plot, plot_tsne, reference_history, small_multiples

SMOKE, DEVICE, DATA, NUM_LABELS, SUBSET, BACKBONE, data = notebook_setup(num_labels=250, notebook="06")
# NNCLR never sees the labels; the linear probe and the baseline do.

# %% [markdown]
# ## Intuition: borrow a friend's embedding
# SimCLR's positive for view 1 of an image is view 2 of the same image: however strong the
# augmentation, both come from one photo. NNCLR keeps a **support set** $Q$, a queue of
# embeddings of recently seen images, and uses the **nearest neighbour** of view 1 in $Q$ as the
# positive for view 2. Once the embedding is half-way decent, that neighbour is usually another
# image of the same class: a different dog, in another pose, with another background. The loss
# then asks view 2 to be recognisably close to *that* image, which is a semantic positive no
# augmentation can produce.
#
# A cartoon on the unit circle (2-D embeddings, three classes):

# %%
toy = torch.Generator().manual_seed(1)
centres = torch.tensor([0.3, 2.4, 4.4])
queue_class = torch.randint(0, 3, (40,), generator=toy)
queue_angle = centres[queue_class] + 0.35 * torch.randn(40, generator=toy)
view1_angle, view2_angle = float(centres[0]) + 0.28, float(centres[0]) + 0.05
nearest = int((queue_angle - view1_angle).cos().argmax())   # highest cosine = smallest angle gap


def circle(angle):
    """Angles (a float or a tensor) → points (x, y) on the unit circle."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    return angle.cos().numpy(), angle.sin().numpy()


def point(angle):
    return math.cos(angle), math.sin(angle)


figure, axis = plt.subplots(figsize=(5.5, 5.5))
theta = torch.linspace(0, 2 * math.pi, 200)
axis.plot(*circle(theta), color="0.85", lw=1)
for c, colour in enumerate(["tab:blue", "tab:orange", "tab:green"]):
    chosen = queue_class == c
    axis.scatter(*circle(queue_angle[chosen]), s=25, color=colour, alpha=0.6, label=f"queue, class {c}")
axis.scatter(*point(view1_angle), marker="*", s=250, color="k", label="view 1 (query)")
axis.scatter(*point(view2_angle), marker="^", s=120, color="k", label="view 2")
axis.scatter(*point(float(queue_angle[nearest])), s=220, facecolors="none", edgecolors="red", lw=2,
             label="NN(view 1) in the queue")
axis.annotate("", point(view2_angle), point(float(queue_angle[nearest])),
              arrowprops=dict(arrowstyle="<->", color="red", lw=1.5))
axis.annotate("", point(view2_angle), point(view1_angle), arrowprops=dict(arrowstyle="<->", color="k", ls="--"))
axis.set(aspect="equal", xticks=[], yticks=[],
         title="SimCLR pulls view 2 to view 1 (dashed)\nNNCLR pulls view 2 to view 1's neighbour (red)")
axis.legend(fontsize=7, loc="lower left")
plt.show()

# %% [markdown]
# **What to look for**: the red circle marks the queue entry nearest to view 1; NNCLR pulls view 2
# towards it (red arrow) instead of towards view 1 itself (dashed). When that neighbour has the same
# class as the query, the positive brings new within-class variation.

# %% [markdown]
# ## The formula
# For a batch of $N$ images with two views each:
#
# - $z_{1,i}, z_{2,i} \in \mathbb{R}^{d}$: the **projections** of the two views of image $i$
#   (backbone, then a 3-layer MLP projector that ends in batch norm);
# - $p_{1,i}, p_{2,i}$: the **predictions**, a 2-layer MLP predictor applied to the projections;
# - $Q = \{q_1, \dots, q_{|Q|}\}$: the **support set**, a queue of L2-normalised projections of
#   earlier batches;
# - $\mathrm{NN}(z, Q) = \hat q_{j^*}$ with $j^* = \arg\max_j \hat z^\top \hat q_j$: the queue
#   element with the highest cosine similarity ($\hat{\cdot}$ means L2-normalised);
# - $\tau$: the temperature (0.1 in the paper).
#
# **Nearest by distance or by similarity?** The paper defines the neighbour as the support element
# at the smallest Euclidean distance, $\arg\min_j \lVert z - q_j \rVert_2$; the code (solo-learn's
# `find_nn`, and `ssl_course.losses.nearest_neighbours`) takes $\arg\max_j \hat z^\top \hat q_j$.
# For unit vectors they are the same neighbour, in one line:
# $\lVert \hat z - \hat q_j \rVert^2 = \lVert \hat z\rVert^2 + \lVert \hat q_j\rVert^2 - 2\hat z^\top
# \hat q_j = 2 - 2\,\hat z^\top \hat q_j$, which falls exactly when the cosine similarity rises.
# Our code uses the arg max of the cosine similarity because the queue already holds normalised
# vectors (so one matrix product of `[N, D]` by `[D, Q]` finds every neighbour, no distances to
# compute) and because it is the definition that does not depend on the vectors' lengths: on
# *unnormalised* vectors the smallest Euclidean distance can pick a different row.
#
# $$
# \mathcal{L}_{1\to 2} = -\frac{1}{N}\sum_{i=1}^{N}
# \log\frac{\exp\big(\mathrm{NN}(z_{1,i},Q)^\top \hat p_{2,i}/\tau\big)}
#          {\sum_{k=1}^{N}\exp\big(\mathrm{NN}(z_{1,i},Q)^\top \hat p_{2,k}/\tau\big)},
# \qquad
# \mathcal{L} = \tfrac12\big(\mathcal{L}_{1\to 2} + \mathcal{L}_{2\to 1}\big)
# $$

# %% [markdown]
# Each neighbour must pick out the prediction of *its own* image's other view among the $N$
# predictions of the batch. The arg max has no gradient: the loss trains the network through the
# predictions $p$, and the neighbours act as fixed targets. After the step, the batch's $\hat z_1$
# enter the queue and the oldest entries leave it. **Look up first, then enqueue**; the other
# order would make every view its own nearest neighbour.
#
# ### Literally, with loops

# %%
def nearest_neighbour_loops(z, queue):
    """For each row of z, the normalised queue row with the highest cosine similarity."""
    rows = []
    for query in z:
        best, best_similarity = None, -math.inf
        for j, candidate in enumerate(queue):
            similarity = (query @ candidate / (query.norm() * candidate.norm())).item()
            if similarity > best_similarity:
                best, best_similarity = j, similarity
        rows.append(queue[best] / queue[best].norm())
    return torch.stack(rows)


def nnclr_loops(z1, z2, queue, temperature, p1, p2):
    def one_direction(z_a, p_b):
        neighbours = nearest_neighbour_loops(z_a, queue)
        total = 0.0
        for i in range(len(z_a)):
            scores = torch.stack([neighbours[i] @ (p_b[k] / p_b[k].norm()) / temperature for k in range(len(p_b))])
            total = total - (scores[i] - torch.logsumexp(scores, dim=0))
        return total / len(z_a)

    return 0.5 * (one_direction(z1, p2) + one_direction(z2, p1))


generator = torch.Generator().manual_seed(0)
for n, d, q, tau in [(4, 8, 16, 0.1), (6, 3, 10, 0.5), (5, 16, 40, 0.07)]:
    z1, z2, p1, p2 = (torch.randn(n, d, generator=generator, dtype=torch.float64) for _ in range(4))
    queue = torch.randn(q, d, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(nearest_neighbours(z1, queue), nearest_neighbour_loops(z1, queue))
    expected = nnclr_loops(z1, z2, queue, tau, p1, p2)
    torch.testing.assert_close(nnclr(z1, z2, queue, tau, p1, p2), expected)
    print(f"N={n} D={d} |Q|={q} tau={tau}: loops {expected.item():.6f} = library ✓")

# %% [markdown]
# ### The queue: first in, first out
# `update_queue(queue, z, ptr)` writes the normalised rows of `z` at the pointer, wrapping around
# the end, and returns the new pointer. A queue of six rows, filled four at a time: the rows
# marked with the batch number show who was overwritten.

# %%
queue, ptr = torch.zeros(6, 2), 0
owner = [-1] * 6
for batch_number in range(3):
    new = torch.randn(4, 2, generator=generator)
    queue, new_ptr = update_queue(queue, new, ptr)
    for offset in range(4):
        owner[(ptr + offset) % 6] = batch_number
    print(f"after batch {batch_number}: pointer {ptr} -> {new_ptr}; row owners {owner}")
    ptr = new_ptr

# %% [markdown]
# ## Training NNCLR
# The method (`ssl_course/methods/nnclr.py`) follows the paper and solo-learn: projector
# `D → 2048 → 2048 → 256` with batch norm after every layer, predictor `256 → 4096 → 256`,
# τ = 0.1, and a queue of 4096 embeddings (the paper's 98 304 is for ImageNet with batches of 4096;
# CIFAR runs are far shorter). It trains on every training image and never reads a label.
#
# **Monitoring only.** The method also stores, next to each queue row, the true class of the image
# and its index in the training set, and logs `nn_purity`: the fraction of view-1 neighbours whose
# class matches the query's. The loss never sees these labels; they are there so that we can
# *watch* whether the neighbours are semantically right. A neighbour that is still one of the
# random rows the queue starts with counts as wrong.
#
# To look at the queue early in training too, we wrap the method's `after_optimizer_step` hook to
# save a copy of its state at step `EARLY_STEP`.

# %%
BUDGET_EPOCHS = 10   # the main run and the baseline; smoke mode stops after 30 steps instead
# Expected time of this cell (one NNCLR run of 10 epochs; GPU: backbone small on 50 000 images), training only:
#   laptop GPU ≈ 2 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 4 min: backbone tiny on the 10 000-image subset, measured throughput on one CPU thread
#   (benchmarks/RESULTS.md, "compare, 3 seeds": 28 s per 0.25 epoch of 50 000 images) times the
#   epochs; more cores are faster. Fractions such as 0.5 work too.
# Smoke mode shrinks the heads and the queue to fit the tiny backbone and a few dozen steps.
HPARAMS = dict(queue_size=256, proj_hidden_dim=128, pred_hidden_dim=128) if SMOKE else {}
STEPS = 30 if SMOKE else None
BATCH = 64 if SMOKE else None          # None: the method's default, 256
ON_GPU = DEVICE.type == "cuda"
# A CPU fits far fewer steps in its budget: snapshot and monitor (on smaller subsets) more often.
EARLY_STEP = 6 if SMOKE else (100 if ON_GPU else 20)
MONITOR = dict(monitor_every=10 if SMOKE else (200 if ON_GPU else 25),
               monitor_bank_size=10_000 if ON_GPU else 2_000, monitor_val_size=2_000 if ON_GPU else 1_000)

run_dir = config.runs_dir() / f"06_nnclr_{DATA}_{BACKBONE}{'_smoke' if SMOKE else ''}"
snapshot_path = run_dir / f"state_at_step_{EARLY_STEP}.pt"
config.seed_everything(0)
method = build_method("nnclr", BACKBONE, data.num_classes, **HPARAMS)
original_hook = method.after_optimizer_step


def after_optimizer_step_with_snapshot(info):
    original_hook(info)
    if info.step + 1 == EARLY_STEP:
        snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu().clone() for k, v in method.state_dict().items()}, snapshot_path)


method.after_optimizer_step = after_optimizer_step_with_snapshot
# reference_weights=False: the trained network (16 MB) is not shipped with the course's reference run
train_config = TrainConfig(epochs=BUDGET_EPOCHS, max_steps=STEPS, batch_size=BATCH,
                           log_every=5 if SMOKE else 10, out_dir=run_dir, resume=True, progress=not SMOKE,
                           reference_weights=False, **MONITOR)
history = fit(method, data, train_config)
TRAINED_HERE = not reference.presenting()   # present mode: history and metrics only, not the network
metrics = evaluate_method(method, data, knn_bank="all")
if reference.recording():   # present mode's t-SNE: the features of a fixed sample of test images (small)
    save_embedding_sample(reference.reference_dir(run_dir), method, data)
print(f"NNCLR: {history.step[-1]} steps in {history.seconds[-1]:.0f} s; linear probe {metrics['test_accuracy']:.3f}, "
      f"kNN (all labels) {metrics['knn_all_labels_accuracy']:.3f}; final NN purity {history.logs['nn_purity'][-1]:.3f} "
      f"(chance {1 / data.num_classes:.2f})")
shipped = reference.load_reference(run_dir)
if reference.presenting():
    print(f"(the course's numbers: {reference.describe(run_dir)})")
elif shipped and shipped["evaluations"]:
    shipped_metrics = next(iter(shipped["evaluations"].values()))
    print(f"reference: linear probe {shipped_metrics['test_accuracy']:.3f}, kNN "
          f"{shipped_metrics['knn_all_labels_accuracy']:.3f}, final NN purity "
          f"{shipped['history']['logs']['nn_purity'][-1]:.3f} ({reference.describe(run_dir)})")

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("06");

# %% [markdown]
# ### Loss, NN purity and kNN accuracy over training
# At step 0 the queue holds only random vectors, so every neighbour counts as wrong. Look for NN
# purity climbing well above chance as the representation starts to group classes: that is the
# mechanism of NNCLR made visible. The kNN monitor uses all training
# labels as its bank and measures how well the backbone features separate the classes.

# %%
figure, axes = plt.subplots(1, 3, figsize=(14, 3.6))
shipped_history, caption = reference_history(run_dir)   # the course's run of this cell, drawn dashed
own = "your run" if shipped_history is not None else None
axes[0].plot(history.step, history.loss, label=own)
axes[0].set(xlabel="step", ylabel="loss", title="NNCLR loss")
axes[1].plot(history.step, history.logs["nn_purity"], color="tab:red", label=own)
axes[1].axhline(1 / data.num_classes, color="0.6", ls=":", label="chance")
axes[1].set(xlabel="step", ylabel="fraction", ylim=(0, 1), title="NN purity (monitoring only)")
axes[2].plot(history.monitor_step, history.monitor_knn, marker="o", color="tab:green", label=own)
axes[2].set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="kNN monitor")
if shipped_history is not None:
    dashed = dict(color="gray", ls="--", lw=1.2, label="reference")
    axes[0].plot(shipped_history["step"], shipped_history["loss"], **dashed)
    purity = shipped_history["logs"]["nn_purity"]
    axes[1].plot(shipped_history["step"][len(shipped_history["step"]) - len(purity):], purity, **dashed)
    axes[2].plot(shipped_history["monitor_step"], shipped_history["monitor_knn"], **dashed)
for axis in axes:
    if axis.get_legend_handles_labels()[1]:
        axis.legend(fontsize=9)
if caption:
    figure.suptitle(caption if reference.presenting() else f"dashed: {caption}")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: the loss falls; NN purity starts near chance (0.1) and climbs as the queue
# fills with embeddings of a network that groups classes; the kNN monitor rises with it. Purity stuck
# at chance means the neighbours are random and NNCLR's positives are noise.

# %% [markdown]
# ### Who are the neighbours? Early vs late
# Six test images (never in the queue) are the queries. For each, the three nearest queue entries
# at step `EARLY_STEP` and at the end of training, shown as the training images they came from
# (the monitoring index buffer makes that possible). ✓ marks a neighbour of the query's class;
# "random" is a queue row that still holds its initial random vector. Early in training, watch
# for *hubs*: a few queue entries that are the nearest neighbour of almost every query.

# %%
K = 3
query_index = torch.stack([(data.test_labels == c).nonzero()[0, 0] for c in range(6)])
queries = data.test_images[query_index]


@torch.no_grad()
def queue_neighbours(state, k=K):
    model = build_method("nnclr", BACKBONE, data.num_classes, **HPARAMS)
    model.load_state_dict(state)
    model.to(DEVICE).eval()
    z = F.normalize(model.project(normalize(queries)), dim=1)
    top = (z @ model.queue.T).topk(k, dim=1).indices
    return model.queue_index[top], model.queue_labels[top]


def neighbour_panel(index, labels, query_label):
    gray = torch.full((3, 32, 32), 128, dtype=torch.uint8, device=DEVICE)
    pictures, titles = [], []
    for i, label in zip(index.tolist(), labels.tolist()):
        pictures.append(data.train_images[i] if i >= 0 else gray)
        mark = "✓" if label == query_label else "✗"
        titles.append("random" if i < 0 else f"{data.class_names[label][:8]} {mark}")
    return pictures, titles


def show_neighbours():
    stages = {}
    if snapshot_path.exists():
        stages[f"step {EARLY_STEP}"] = torch.load(snapshot_path, map_location=DEVICE, weights_only=True)
    else:
        print(f"no snapshot at step {EARLY_STEP} (the run was resumed past it); showing the end of training only")
    stages[f"step {history.step[-1]}"] = method.state_dict()
    found = {name: queue_neighbours(state) for name, state in stages.items()}

    pictures, titles = [], []
    for row in range(len(queries)):
        query_label = int(data.test_labels[query_index[row]])
        pictures.append(queries[row])
        titles.append(f"query: {data.class_names[query_label][:8]}")
        for name, (index, labels) in found.items():
            panel, panel_titles = neighbour_panel(index[row], labels[row], query_label)
            pictures += panel
            titles += [f"{name}: {t}" for t in panel_titles]
    image_grid(torch.stack(pictures), nrow=1 + K * len(found), titles=titles, scale=1.5,
               suptitle="query, then its nearest queue entries: " + " | ".join(found))
    plt.show()
    for name, (index, labels) in found.items():
        agree = (labels == data.test_labels[query_index].unsqueeze(1)).float().mean()
        print(f"{name}: {agree:.2f} of these {labels.numel()} neighbours share the query's class; "
              f"{index.unique().numel()} distinct queue entries among them")


NOT_SHIPPED = ("Present mode: the course's reference run ships without its trained network (16 MB), so there "
               "is no trained queue to look into here. Unset SSL_COURSE_MODE and train the cell above to see it.")
if TRAINED_HERE:
    show_neighbours()
else:
    print(NOT_SHIPPED)

# %% [markdown]
# **What to look for**: late in training more neighbours carry a ✓ (same class as the query) than
# early on, and the printed share of agreeing neighbours should rise between the two lines.

# %% [markdown]
# ### How many of the queue's entries does a good neighbour need?
# With the final queue, look up the test queries among only the most recent `entries` rows. The
# slider changes that number; the plot shows the similarity of the nearest neighbour found and
# how often it has the query's class. (This varies the look-up, not the training; the sweep below
# trains with different queue sizes.)

# %%
queue_size = method.queue_size
if TRAINED_HERE:
    with torch.no_grad():
        method.eval()
        test_z = F.normalize(extract_features(method.project, data.test_images), dim=1)
        method.train()
recent_first = (method.queue_ptr - 1 - torch.arange(queue_size, device=DEVICE)) % queue_size


def draw_prefix(axis, entries=queue_size):
    entries = int(entries)
    rows = recent_first[:entries]
    similarity, nearest = (test_z @ method.queue[rows].T).max(dim=1)
    purity = (method.queue_labels[rows][nearest] == data.test_labels).float().mean()
    axis.hist(similarity.cpu().numpy(), bins=40, color="tab:purple")
    axis.set(xlabel="cosine similarity to nearest entry", ylabel="test images",
             title=f"{entries} entries: purity {purity:.2f}, mean sim. {similarity.mean():.2f}")


def show_prefix(entries=queue_size):
    figure, axis = plt.subplots(figsize=(6, 2.8))
    draw_prefix(axis, entries)
    plt.show()


if TRAINED_HERE:
    interactive_plot(show_prefix, entries=(8, queue_size, 8, queue_size))
else:
    print(NOT_SHIPPED)

# %%
if TRAINED_HERE:
    prefix_sizes = sorted({max(8, queue_size // 64), max(8, queue_size // 8), queue_size})
    small_multiples(draw_prefix, panel_size=(4.6, 3.2), entries=prefix_sizes)
    plt.show()

# %% [markdown]
# **What to look for**: with more entries the nearest neighbour is more similar (the histogram moves
# right) and the purity in the title rises; a small recent slice of the queue already finds most good
# neighbours.

# %% [markdown]
# ## The queue size, trained
# A sweep over the queue size with a shorter budget per run. A tiny queue offers few candidates,
# so the nearest one is often a poor match; a huge queue holds embeddings computed by a network
# that has changed since (they are stale) and takes longer to fill with real entries.

# %%
SWEEP_EPOCHS = 2   # per queue size
# Expected time of this cell (4 NNCLR runs of 2 epochs), training only:
#   laptop GPU ≈ 2 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 3 min: backbone tiny on the 10 000-image subset, measured throughput on one CPU thread
#   (as above) times the epochs; more cores are faster. Fractions such as 0.5 work too.
QUEUE_SIZES = (32, 256) if SMOKE else (256, 1024, 4096, 16384)
sweep, shipped_sweep, sweep_dirs = {}, {}, {}
for size in QUEUE_SIZES:
    config.seed_everything(0)
    run = build_method("nnclr", BACKBONE, data.num_classes, **{**HPARAMS, "queue_size": size})
    sweep_dirs[size] = config.runs_dir() / f"06_nnclr_queue{size}_{DATA}_{BACKBONE}{'_smoke' if SMOKE else ''}"
    sweep_config = TrainConfig(epochs=SWEEP_EPOCHS, max_steps=12 if SMOKE else None,
                               batch_size=BATCH, monitor_every=0, progress=not SMOKE, resume=True,
                               out_dir=sweep_dirs[size], reference_weights=False)   # no later cell needs them
    run_history = fit(run, data, sweep_config)
    run_metrics = evaluate_method(run, data, knn_bank=10_000)
    sweep[size] = dict(purity=run_history.logs["nn_purity"][-1], knn=run_metrics["knn_all_labels_accuracy"],
                       probe=run_metrics["linear_probe_accuracy"], steps=run_history.step[-1])
    print(f"queue {size:>6}: {sweep[size]['steps']} steps, final NN purity {sweep[size]['purity']:.3f}, "
          f"kNN {sweep[size]['knn']:.3f}, linear probe {sweep[size]['probe']:.3f}")
    shipped = reference.load_reference(sweep_dirs[size])
    if shipped and shipped["evaluations"] and not reference.presenting():
        recorded = next(iter(shipped["evaluations"].values()))
        shipped_sweep[size] = dict(purity=shipped["history"]["logs"]["nn_purity"][-1],
                                   knn=recorded["knn_all_labels_accuracy"], probe=recorded["linear_probe_accuracy"])
        print(f"{'reference':>12}: {shipped['info']['steps']} steps, final NN purity "
              f"{shipped_sweep[size]['purity']:.3f}, kNN {shipped_sweep[size]['knn']:.3f}, "
              f"linear probe {shipped_sweep[size]['probe']:.3f}")
if reference.presenting():
    for size in QUEUE_SIZES:
        print(f"queue {size:>6}: {reference.describe(sweep_dirs[size])}")

figure, axis = plt.subplots(figsize=(7, 3.6))
for key, colour in (("purity", "tab:red"), ("knn", "tab:green"), ("probe", "tab:blue")):
    axis.plot(QUEUE_SIZES, [sweep[s][key] for s in QUEUE_SIZES], marker="o", color=colour, label=key)
    if len(shipped_sweep) == len(QUEUE_SIZES):
        axis.plot(QUEUE_SIZES, [shipped_sweep[s][key] for s in QUEUE_SIZES], ls="--", color=colour,
                  label=f"{key} (reference)")
shown = " (the course's reference runs)" if reference.presenting() else ""
axis.set(xscale="log", xlabel="queue size", ylabel="accuracy (purity: fraction)", ylim=(0, 1),
         title=f"queue size sweep (same budget per run){shown}")
axis.set_xticks(QUEUE_SIZES, [str(s) for s in QUEUE_SIZES])
axis.minorticks_off()
axis.legend(fontsize=9, ncol=2)
plt.show()
best_size = max(QUEUE_SIZES, key=lambda s: sweep[s]["knn"])
print(f"largest kNN accuracy in this sweep: queue {best_size} ({sweep[best_size]['knn']:.3f})")

# %% [markdown]
# **What to look for**: purity, kNN and probe for each queue size; the best size is usually in the
# middle: a tiny queue offers poor neighbours, a huge one stale ones. Differences of a point or two
# are within the noise of one seed.

# %% [markdown]
# ## Compared with the supervised baseline, and the embedding
# The cross-entropy baseline of notebook 00 on the same `NUM_LABELS` labels and the same
# backbone, with NNCLR's main-run budget. NNCLR's test accuracy is a linear probe on those same
# labelled images.

# %%
baseline_dir = config.runs_dir() / f"06_supervised_{DATA}_{NUM_LABELS}_{BACKBONE}{'_smoke' if SMOKE else ''}"
baseline = run_experiment(Experiment(method="supervised", data=DATA, labels=NUM_LABELS, backbone=BACKBONE,
                                     epochs=BUDGET_EPOCHS, steps=20 if SMOKE else None,
                                     batch_size=32 if SMOKE else None, progress=not SMOKE, **SUBSET),
                          baseline_dir, resume=True)
print(f"NNCLR linear probe {metrics['test_accuracy']:.3f} vs supervised baseline {baseline['test_accuracy']:.3f} "
      f"({NUM_LABELS} labels): difference {metrics['test_accuracy'] - baseline['test_accuracy']:+.3f}")
shipped = reference.load_reference(baseline_dir)
if reference.presenting():
    print(f"(the course's numbers: {reference.describe(baseline_dir)})")
elif shipped and shipped["metrics"]:
    print(f"reference: supervised baseline {shipped['metrics']['test_accuracy']:.3f} ({reference.describe(baseline_dir)})")

# %% [markdown]
# **How far is this from the paper?** For scale: the NNCLR paper reports 75.6 % ImageNet top-1 for
# a linear probe on a ResNet-50 pretrained for 1000 epochs (abstract); it reports no few-label
# CIFAR-10 number.

# %%
def test_embedding(model, folder):
    """[n, D] backbone features of test images and their labels; in present mode the fixed sample of
    500 test images stored with the reference run (the networks are not shipped)."""
    return results_test_embedding(folder, data, model)


supervised = build_method("supervised", BACKBONE, data.num_classes)
if not reference.presenting():
    load_trained(supervised, baseline_dir, DEVICE)
figure, axes = plt.subplots(1, 2, figsize=(11, 5))
for axis, (name, model, folder, accuracy) in zip(axes, [
        ("NNCLR", method, run_dir, metrics["test_accuracy"]),
        ("supervised", supervised, baseline_dir, baseline["test_accuracy"])]):
    features, labels = test_embedding(model, folder)
    plot_tsne(features, labels, data.class_names, axis=axis, max_points=500 if SMOKE else 2000,
              legend=name == "NNCLR", title=f"{name} (test acc {accuracy:.2f})")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: the supervised panel separates the classes most; NNCLR's shows looser
# clusters, with vehicles apart from animals. A single blob coloured at random means features that
# ignore the content.

# %% [markdown]
# ## Take-aways
# - NNCLR is SimCLR-style contrast whose positive is a *different* image: the nearest neighbour of
#   one view in a queue of past embeddings. Its quality rises with training, and the NN purity
#   curve shows it directly.
# - The queue is state: it must be a buffer so that a checkpoint holds it and a resumed run looks
#   up the same neighbours (the course's method keeps queue, pointer and the monitoring buffers as
#   registered buffers).
# - The queue size trades the chance of finding a close neighbour against staleness; the sweep
#   above shows how it played out in this budget.
#
# **Pitfalls and conventions**
# - Enqueue *after* the look-up, and only one view (solo-learn enqueues view 1), or each view
#   finds itself.
# - The neighbours are targets: no gradient flows through the arg max. Gradients reach the
#   network through the predictions $p$, and the queue is a detached buffer.
# - solo-learn's loss is `cross_entropy(nn @ p.T / τ, arange(N))` per direction, averaged over the
#   two directions, as here. Code bases differ in such details (how they symmetrise, whether there
#   is a predictor, LARS vs SGD), so compare loss values only within one of them.
# - The labels used for NN purity are hidden labels: logging them is fine, training on them would
#   turn NNCLR into a supervised method.

# %% [markdown]
# ## Exercises
# **1. The look-up.** Write `my_nearest_neighbours(z, queue)`: for each row of `z` the queue row
# with the largest *cosine* similarity, returned L2-normalised (shape `[N, D]`).

# %%
from ssl_course.exercises import check_nnclr_lookup


def my_nearest_neighbours(z, queue):
    # YOUR CODE: normalise both, similarities [N, Q], arg max per row, gather the normalised rows
    raise NotImplementedError("finish my_nearest_neighbours")


check_nnclr_lookup(my_nearest_neighbours);

# %% [markdown]
# **2. Enqueue first.** Take one training batch, call `update_queue` with view 1 *before* the
# look-up, and compute `nearest_neighbours(z1, queue)`. Compare it with `F.normalize(z1, dim=1)`.
# What does the loss turn into, and why does the correct order matter?
#
# **3. Purity is not accuracy.** A queue row from the same class as the query counts as "pure".
# Why can NN purity be high while the linear probe is still poor, and the other way round? Look at
# the gallery above for a hint.
#
# **4. The loss.** Write `my_nnclr_loss(z1, z2, queue, temperature)` without a predictor
# (`p = z`): for each direction, the neighbour of one view scores all $N$ normalised embeddings of
# the other view, the matching image is the correct class; return the mean of the two directions.
# The checker compares with `ssl_course.losses.nnclr` and names the usual mistakes (one direction,
# the neighbour contrasted with its own view, no neighbour at all, ...).
#
# Solutions of 1 and 4: `notebooks/solutions/contrastive_solutions.py` (`nearest_neighbours`,
# `nnclr_loss`). What to expect in 2 and 3, and why:
# [`notebooks/solutions/ANSWERS.md`, section 06](solutions/ANSWERS.md#06-nnclr).

# %%
from ssl_course.exercises import check_nnclr_loss


def my_nnclr_loss(z1, z2, queue, temperature=0.1):
    # YOUR CODE: nn1 = NN(z1, queue), nn2 = NN(z2, queue); logits nn1 @ normalised z2.T / temperature
    # against arange(N), the same from nn2 to z1, then average the two cross-entropies
    raise NotImplementedError("finish my_nnclr_loss")


check_nnclr_loss(my_nnclr_loss);

# %% [markdown]
# ## References
# - D. Dwibedi, Y. Aytar, J. Tompson, P. Sermanet and A. Zisserman, *With a Little Help from My
#   Friends: Nearest-Neighbor Contrastive Learning of Visual Representations*, ICCV 2021.
# - V. G. T. da Costa, E. Fini, M. Nabi, N. Sebe and E. Ricci, *solo-learn: A Library of
#   Self-supervised Methods for Visual Representation Learning*, JMLR 2022.
#   Code: github.com/vturrisi/solo-learn (`solo/methods/nnclr.py`, `solo/losses/nnclr.py`).
# - K. He, H. Fan, Y. Wu, S. Xie and R. Girshick, *Momentum Contrast for Unsupervised Visual
#   Representation Learning*, CVPR 2020 (the queue).

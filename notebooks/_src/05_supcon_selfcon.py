# %% [markdown]
# # 05 · Supervised contrastive learning: SupCon and SelfCon
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/05_supcon_selfcon.ipynb)
#
# **What you will learn**
# - how labels change a contrastive loss: with SupCon every image of the same class becomes a
#   positive, not only the other view of the same image;
# - the SupCon loss $\mathcal{L}^{sup}_{out}$ term by term, written with loops and checked
#   against `ssl_course.losses.supcon`, and why it *is* SimCLR's NT-Xent when there are no labels;
# - what the factor $\tau/\tau_{base}$ in the official code does to the gradient;
# - SelfCon's trick: a sub-network exit inside the same network provides the positive, so one
#   augmented view per image is enough;
# - how SupCon and SelfCon compare with plain cross-entropy when all three see the same few labels
#   for the same budget in epochs.

# %% [markdown]
# **Time budget**: the trainings dominate (on a CPU the notebook switches to the `tiny` backbone and a
# 10 000-image subset): about 5 min on a laptop GPU (estimated from the FLOPs counted per training
# step at an assumed 5 TFLOP/s) and about 4 min on one CPU thread (measured throughput × epochs;
# more cores are faster). Each
# training cell states its own figures next to its `BUDGET_EPOCHS`; lower it to go faster
# (fractions such as 0.5 work). The budget is in epochs, so a slower machine takes longer but reaches the same numbers (the
# course's shipped reference runs are much shorter: each figure's caption says how long).
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run instead
# (see the README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (the data bundle, the engine, the supervised baseline)
# and `04_simclr_moco` (views, projection heads, NT-Xent).
#
# **Recap** of notebooks 00 and 04, which this one builds on (answers:
# [`notebooks/solutions/ANSWERS.md`, section 05](solutions/ANSWERS.md#05-supcon-and-selfcon)):
# 1. In NT-Xent with $N$ images and two views each, how many candidates does one view compare
#    against, and which one is its positive?
# 2. Where does the projection head sit, and which features are evaluated?
# 3. Two images of the same class in one SimCLR batch: what does the loss do with them?

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


import json

import matplotlib.pyplot as plt
import torch
from torch.nn import functional as F

from ssl_course import claims, reference
from ssl_course.data.augment import contrastive_augment
from ssl_course.experiment import run_methods
from ssl_course.losses import nt_xent, selfcon, supcon
from ssl_course.methods import build_method
from ssl_course.models import MultiExitNet, build_backbone
from ssl_course.notebook import notebook_setup
from ssl_course.results import load_trained
from ssl_course.results import test_embedding as results_test_embedding
from ssl_course.viz import image_grid, interactive_plot, plot_history, plot_tsne, small_multiples

SMOKE, DEVICE, DATA, NUM_LABELS, SUBSET, BACKBONE, data = notebook_setup(num_labels=250, notebook="05")

# %% [markdown]
# ## Intuition: which pairs are positives?
# Take six images and two augmented views of each: twelve embeddings. Stack them view-major (all
# first views, then all second views), the order the library uses. The matrix below marks, for
# every anchor (row), which of the other eleven embeddings (columns) the loss pulls towards it.
#
# - **Without labels** (SimCLR) an anchor has exactly one positive: the other view of its own
#   image, on the two off-diagonals.
# - **With labels** (SupCon) every view of every image of the same class is a positive too. The
#   "negatives" that happen to share the class, which SimCLR pushes away, become pulls.
#
# The diagonal (an embedding with itself) is never a candidate.

# %%
classes = torch.tensor([0, 1, 0, 2, 1, 0], device=DEVICE)   # three classes, repeated on purpose
picked = torch.stack([(data.train_labels == c).nonzero()[k, 0] for k, c in
                      zip([0, 0, 1, 0, 1, 2], classes.tolist())])
batch_images, batch_labels = data.train_images[picked], data.train_labels[picked]
image_grid(batch_images, nrow=6, titles=[f"{i}: {data.class_names[c]}" for i, c in enumerate(batch_labels.tolist())],
           suptitle="a batch of six images")
plt.show()


def positives_mask(labels: torch.Tensor, views: int) -> torch.Tensor:
    """[V·N, V·N] boolean: True where column is a positive of row (same label, not itself)."""
    stacked = labels.repeat(views)                       # view-major, as supcon flattens
    same = stacked[:, None] == stacked[None, :]
    return same & ~torch.eye(len(stacked), dtype=torch.bool, device=labels.device)


def draw_mask(mask: torch.Tensor, title: str, axis) -> None:
    n = mask.shape[0]
    picture = torch.ones(n, n, 3)
    picture[mask.cpu()] = torch.tensor([0.2, 0.65, 0.3])                  # positive: green
    picture[torch.eye(n, dtype=torch.bool)] = torch.tensor([0.6, 0.6, 0.6])  # self: grey
    axis.imshow(picture.numpy())
    half = n // 2
    ticks = [f"{i}·v1" for i in range(half)] + [f"{i}·v2" for i in range(half)]
    axis.set_xticks(range(n), ticks, rotation=90, fontsize=7)
    axis.set_yticks(range(n), ticks, fontsize=7)
    axis.axhline(half - 0.5, color="k", lw=0.8)
    axis.axvline(half - 0.5, color="k", lw=0.8)
    axis.set_title(f"{title}: {int(mask.sum())} positive pairs")


instance_labels = torch.arange(6, device=DEVICE)   # "every image is its own class" = no labels
figure, axes = plt.subplots(1, 2, figsize=(10, 5))
draw_mask(positives_mask(instance_labels, 2), "without labels (SimCLR)", axes[0])
draw_mask(positives_mask(batch_labels, 2), "with labels (SupCon)", axes[1])
figure.suptitle("rows: anchors · columns: candidates · green: positive · grey: excluded (itself)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: left: one green cell per row, at the other view of the same image (a shifted
# diagonal); right: extra green cells wherever two images share a class. The grey diagonal (an anchor
# against itself) is never a positive.

# %% [markdown]
# ## The SupCon loss
# Stack the $V$ views of the $N$ images of a batch into $A = VN$ embeddings $z_1, \dots, z_A$,
# each L2-normalised by the model (the loss does not normalise). For an anchor $a$:
#
# - $C(a) = \{1,\dots,A\} \setminus \{a\}$: its **candidates**, every other embedding;
# - $P(a) = \{p \in C(a) : y_p = y_a\}$: its **positives**, the candidates with the same label
#   $y$ (the other views of its own image always qualify);
# - $\tau$: the **temperature** dividing the cosine similarities $z_a^\top z_c$;
# - $\tau_{base}$: a constant that rescales the loss (see below).
#
# $$
# \mathcal{L}^{sup}_{out} \;=\; \frac{\tau}{\tau_{base}} \, \frac{1}{A} \sum_{a=1}^{A}
# \frac{-1}{|P(a)|} \sum_{p \in P(a)}
# \log \frac{\exp(z_a^\top z_p / \tau)}{\sum_{c \in C(a)} \exp(z_a^\top z_c / \tau)}
# $$
#
# "out" because the average over positives sits *outside* the log: each positive is its own
# classification problem "pick $p$ among all candidates", and their log-probabilities are
# averaged. The paper also tried $\mathcal{L}^{sup}_{in}$ (average the probabilities inside the
# log) and found it trains worse. An anchor without positives (its class appears once in a
# single-view batch) contributes 0 but still counts in the $1/A$.
#
# ### Literally, with loops
# One anchor at a time, one positive at a time, in float64. Slow but impossible to misread.

# %%
def supcon_loops(features, labels=None, temperature=0.07, base_temperature=0.07):
    """L_out^sup with Python loops. features [N, V, D] (normalised), labels [N] or None."""
    n, v, _ = features.shape
    if labels is None:
        labels = torch.arange(n)
    z = [features[i, k] for k in range(v) for i in range(n)]        # view-major: all view 0, then view 1, ...
    y = [int(labels[i]) for k in range(v) for i in range(n)]
    total = torch.zeros((), dtype=features.dtype)
    for a in range(len(z)):
        candidates = [c for c in range(len(z)) if c != a]
        positives = [p for p in candidates if y[p] == y[a]]
        if not positives:
            continue                                                  # contributes 0, still counted in 1/A
        denominator = sum(torch.exp(z[a] @ z[c] / temperature) for c in candidates)
        log_probs = [torch.log(torch.exp(z[a] @ z[p] / temperature) / denominator) for p in positives]
        total = total - sum(log_probs) / len(positives)
    return temperature / base_temperature * total / len(z)


generator = torch.Generator().manual_seed(0)
for n, v, d, tau in [(6, 2, 8, 0.1), (5, 3, 4, 0.5), (8, 1, 16, 0.07)]:
    features = F.normalize(torch.randn(n, v, d, generator=generator, dtype=torch.float64), dim=2)
    labels = torch.randint(0, 3, (n,), generator=generator)
    expected = supcon_loops(features, labels, tau, 0.07)
    torch.testing.assert_close(supcon(features, labels, tau, 0.07), expected)
    print(f"N={n} V={v} D={d} tau={tau}: loops {expected.item():.6f} = library ✓")

# %% [markdown]
# ### Without labels, SupCon is SimCLR
# With `labels=None` the only positive of an anchor is the other view of its image, and with
# $\tau_{base} = \tau$ the prefactor is 1: that is exactly NT-Xent.

# %%
z1 = F.normalize(torch.randn(16, 32, generator=generator, dtype=torch.float64), dim=1)
z2 = F.normalize(z1 + 0.5 * torch.randn(16, 32, generator=generator, dtype=torch.float64), dim=1)
without_labels = supcon(torch.stack([z1, z2], dim=1), None, temperature=0.5, base_temperature=0.5)
torch.testing.assert_close(without_labels, nt_xent(z1, z2, temperature=0.5))
print(f"supcon(labels=None) = {without_labels.item():.6f}, nt_xent = {nt_xent(z1, z2, 0.5).item():.6f} ✓")

# %% [markdown]
# ### The factor $\tau / \tau_{base}$
# Differentiating $\log\text{softmax}(z_a^\top z_c/\tau)$ brings down a factor $1/\tau$: a small
# temperature multiplies every gradient. HobbitLong/SupContrast multiplies the loss by
# $\tau/\tau_{base}$ with a fixed $\tau_{base} = 0.07$, which replaces that $1/\tau$ by
# $1/\tau_{base}$, so trying another temperature does not also change the effective learning rate.
# The course's SupCon and SelfCon use $\tau = 0.1$ (the SupContrast CIFAR commands; they use 0.5
# for their SimCLR baseline) with $\tau_{base} = 0.07$, as that code does. The table measures the
# gradient norm on one random batch:

# %%
base = F.normalize(torch.randn(32, 2, 64, generator=generator, dtype=torch.float64), dim=2)
labels = torch.randint(0, 4, (32,), generator=generator)
print(f"{'tau':>6} | grad norm, base_tau = tau | grad norm, base_tau = 0.07")
columns = {"base_tau = tau": [], "base_tau = 0.07": []}
for tau in (0.05, 0.1, 0.2, 0.5):
    norms = []
    for base_tau in (tau, 0.07):
        features = base.clone().requires_grad_(True)
        supcon(features, labels, tau, base_tau).backward()
        norms.append(features.grad.norm().item())
    columns["base_tau = tau"].append(norms[0])
    columns["base_tau = 0.07"].append(norms[1])
    print(f"{tau:>6} | {norms[0]:>25.4f} | {norms[1]:>26.4f}")
for name, values in columns.items():
    print(f"{name}: the largest gradient norm is {max(values) / min(values):.1f}x the smallest")

# %% [markdown]
# Compare how much each column varies over the temperatures (the ratios printed under the
# table). The factor only rescales the gradient, so it matters for the learning rate you pick,
# never for where the minimum is.
#
# ### What the temperature does to one anchor
# Anchor 0 of a small labelled batch: the bars are its softmax probabilities over the candidates,
# green for positives. Low $\tau$ concentrates the mass on the nearest candidates (hard negatives
# included); high $\tau$ spreads it out. The title shows the anchor's loss term (before the
# $\tau/\tau_{base}$ factor).

# %%
toy_labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
prototypes = F.normalize(torch.randn(3, 16, generator=generator, dtype=torch.float64), dim=1)
toy = F.normalize(prototypes[toy_labels].unsqueeze(1) + 0.6 * torch.randn(8, 2, 16, generator=generator,
                                                                               dtype=torch.float64), dim=2)


def draw_anchor(axis, temperature=0.1):
    z = toy.transpose(0, 1).reshape(16, 16)
    y = toy_labels.repeat(2)
    logits = (z[0] @ z.T / temperature).clone()
    logits[0] = float("-inf")
    probability = logits.softmax(0)
    positive = (y == y[0]) & (torch.arange(16) != 0)
    term = -(probability[positive].log()).mean()
    axis.bar(range(16), probability.numpy(), color=["tab:green" if p else "tab:gray" for p in positive.tolist()])
    axis.set(xlabel="candidate (0 is the anchor itself)", ylabel="p(candidate | anchor)",
             title=f"tau={temperature:.2f}: mass on positives {probability[positive].sum():.2f}\n"
                   f"-mean log p(positive) {term:.3f}")


def show_anchor(temperature=0.1):
    figure, axis = plt.subplots(figsize=(8, 2.8))
    draw_anchor(axis, temperature)
    figure.tight_layout()
    plt.show()


interactive_plot(show_anchor, temperature=(0.02, 1.0, 0.02, 0.1))

# %%
small_multiples(draw_anchor, panel_size=(4.2, 3.2), temperature=[0.05, 0.1, 0.3, 1.0])
plt.show()

# %% [markdown]
# **What to look for**: as the temperature falls, the probability mass moves onto the few candidates
# most similar to the anchor; at τ = 1 it spreads almost evenly. The printed mass on positives is
# highest at an intermediate temperature when some negatives are very similar to the anchor.

# %% [markdown]
# ## SelfCon: the positive comes from inside the network
# SupCon needs two augmented views per image, so two forward passes. SelfCon (Bae, Kim, Ko, Lee, Noh
# and Yun, AAAI 2023) attaches a small **sub-network** after an intermediate stage of the backbone. One
# forward pass of one view now ends in two exits: the backbone's final features $f$ and the
# sub-network's features $g$. Each goes through its own projection head, and the pair
# $(z^F_i, z^G_i)$ plays the role of the two views in SupCon ("SelfCon-S", single view):
#
# $$
# \mathcal{L}_{SelfCon} = \mathcal{L}^{sup}_{out}\big(\{z^G_i, z^F_i\}_{i=1}^{N};\ y,\ \tau,\ \tau_{base}\big)
# $$
#
# with the same positives rule: the other exit of the same image and both exits of every image of
# the same class. After training only the backbone's final exit is kept for evaluation; the
# sub-network and both heads are thrown away.
#
# **Which normaliser.** The paper writes its loss with a factor $1/(|P_i||\Omega|)$ in front of the
# double sum over the positive images $P_i$ and the exits $\Omega$: an average over the anchor's
# positive pairs. The official code does not use that formula directly: it stacks the exits as
# views and calls SupContrast's loss, which divides each anchor's sum by the number of positives
# that anchor *actually has* (`mask.sum(1)`, the anchor itself excluded) and then averages over all
# anchors, i.e. the $\frac{1}{|P(a)|}$ and $\frac{1}{A}$ of $\mathcal{L}^{sup}_{out}$ above. Both
# are "mean over positive pairs"; the code's count is exact for every anchor whatever its class
# frequency in the batch. `ssl_course.losses.selfcon` follows the code, so SelfCon is literally
# `supcon` on the stacked exits (the loop check below confirms that identity).
#
# The network, drawn from the actual module:

# %%
def describe_multi_exit(net: MultiExitNet) -> list[tuple[str, tuple[int, ...], int]]:
    """(block name, output shape for one 32×32 image, parameters) along both paths."""
    x = torch.zeros(1, 3, 32, 32)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    rows, branch = [], None
    with torch.no_grad():
        net.eval()
        x = net.backbone.stem(x)
        rows.append(("stem", tuple(x.shape[1:]), count(net.backbone.stem)))
        for index, stage in enumerate(net.backbone.stages):
            x = stage(x)
            rows.append((f"stage {index + 1}", tuple(x.shape[1:]), count(stage)))
            if index == net.exit_after:
                branch = net.exit(x)
        rows.append(("sub-network exit", tuple(branch.shape[1:]), count(net.exit)))
    return rows


example_net = MultiExitNet(build_backbone("small"), exit_after=1)
rows = describe_multi_exit(example_net)
for name, shape, parameters in rows:
    print(f"{name:>17}: output {str(shape):<16} {parameters:>9,} parameters")

figure, axis = plt.subplots(figsize=(11, 3))
axis.axis("off")
main_path = rows[:-1] + [("avg-pool → head F", (example_net.feature_dim,), 0)]
for index, (name, shape, _) in enumerate(main_path):
    axis.add_patch(plt.Rectangle((index * 2.1, 1.6), 1.8, 0.9, fc="#cfe2f3", ec="k"))
    axis.text(index * 2.1 + 0.9, 2.05, f"{name}\n{shape}", ha="center", va="center", fontsize=8)
    if index:
        axis.annotate("", (index * 2.1, 2.05), (index * 2.1 - 0.3, 2.05), arrowprops=dict(arrowstyle="->"))
branch_x = (example_net.exit_after + 1) * 2.1
axis.annotate("", (branch_x + 0.9, 0.9), (branch_x + 0.9, 1.6), arrowprops=dict(arrowstyle="->"))
axis.add_patch(plt.Rectangle((branch_x, 0.0), 1.8, 0.9, fc="#fce5cd", ec="k"))
axis.text(branch_x + 0.9, 0.45, f"sub-network exit\n{rows[-1][1]}", ha="center", va="center", fontsize=8)
axis.add_patch(plt.Rectangle((branch_x + 2.1, 0.0), 1.8, 0.9, fc="#fce5cd", ec="k"))
axis.text(branch_x + 3.0, 0.45, "avg-pool → head G", ha="center", va="center", fontsize=8)
axis.annotate("", (branch_x + 2.1, 0.45), (branch_x + 1.8, 0.45), arrowprops=dict(arrowstyle="->"))
axis.set(xlim=(-0.2, len(main_path) * 2.1), ylim=(-0.2, 2.7),
         title=f"MultiExitNet(small, exit_after={example_net.exit_after}): blue = backbone, orange = sub-network")
plt.show()

# %% [markdown]
# **What to look for**: the blue boxes are the backbone's stages, the orange ones the sub-network that
# branches off after `exit_after`. Both exits end in an embedding of the same size, so the two can be
# compared in one contrastive loss.

# %% [markdown]
# The sub-network shares the stem and the first stages, so its gradient trains them too: the early
# layers receive signal from a short path, like the auxiliary classifiers of deeply supervised
# networks. The official CIFAR script puts the exit after the second of four ResNet stages;
# `exit_after=1` is the same place.
#
# ### SelfCon from loops vs the library
# SelfCon is SupCon over the stacked exits, so the loop version is one line on top of
# `supcon_loops`: the exits are the views (sub-network first, backbone last, as the official
# code stacks them; the order does not change the value).

# %%
for n, d, tau in [(8, 16, 0.1), (5, 4, 0.5)]:
    backbone_z = F.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=1)
    subnet_z = F.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=1)
    labels = torch.randint(0, 3, (n,), generator=generator)
    expected = supcon_loops(torch.stack([subnet_z, backbone_z], dim=1), labels, tau, 0.07)
    torch.testing.assert_close(selfcon(backbone_z, [subnet_z], labels, tau, 0.07), expected)
    print(f"N={n} D={d} tau={tau}: loops {expected.item():.6f} = library ✓")

# %% [markdown]
# One view, one forward pass, two embeddings per image: here on the six images above with an
# untrained SelfCon model (in training mode, so batch norm uses this batch's statistics, as it
# does during training). Whatever the two exits of an image give now is an accident of the random
# weights; the loss will pull them, and same-class images, together.

# %%
untrained = build_method("selfcon", BACKBONE, data.num_classes).to(DEVICE).train()
with torch.no_grad():
    view = contrastive_augment(batch_images, generator=torch.Generator(device=DEVICE).manual_seed(0))
    backbone_z, (subnet_z,) = untrained.project_exits(view)
    same_image = (backbone_z * subnet_z).sum(1)
    loss = selfcon(backbone_z, [subnet_z], batch_labels, temperature=0.1)
print("cosine between the two exits of each image:", [f"{c:.2f}" for c in same_image.tolist()])
print(f"SelfCon loss of this batch (untrained): {loss.item():.3f}")

# %% [markdown]
# ## Training: SupCon, SelfCon and the cross-entropy baseline on the same labels
# All three see only the `NUM_LABELS` labelled images, with the same backbone and the same budget in
# epochs (the engine's epoch of notebook 00; here each method's primary batch holds labelled images,
# so an epoch goes through the few labels many times). SupCon and SelfCon have no classifier: their test accuracy is the engine's linear probe,
# a logistic regression on frozen backbone features of the labelled images (the paper's second
# stage). The baseline's test accuracy is its own classifier. Runs are saved under `runs/`, so
# running the cell again reloads them. The curves of the course's reference runs are drawn dashed
# beside yours.
#
# Batch sizes are each method's default: 256 for SupCon and SelfCon (contrastive losses want many
# positives and negatives per batch; the SupContrast CIFAR commands use 1024), 128 for the baseline.

# %%
BUDGET_EPOCHS = 10   # per method; smoke mode stops after 30 steps instead
# Expected time of this cell (3 runs of 10 epochs; GPU: backbone small on 50 000 images), training only:
#   laptop GPU ≈ 5 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 4 min: backbone tiny on the 10 000-image subset, measured throughput on one CPU thread
#   (benchmarks/RESULTS.md, "compare, 3 seeds": 7 s, 14 s and 8 s per 0.25 epoch of 50 000 images)
#   times the epochs; more cores are faster. Fractions such as 0.5 work too.
METHODS = {"supervised": {}, "supcon": {}, "selfcon": {}}
results, run_dirs = run_methods(METHODS, "05", data=DATA, labels=NUM_LABELS, backbone=BACKBONE,
                                epochs=BUDGET_EPOCHS, steps=30 if SMOKE else None,
                                batch_size=32 if SMOKE else None, progress=not SMOKE, knn_bank="all", **SUBSET)

# %%
for name in METHODS:
    plot_history(json.loads((run_dirs[name] / "history.json").read_text()), title=name, reference=run_dirs[name])
plt.show()

# %% [markdown]
# **What to look for**: each method's training loss falls and its validation accuracy rises; the
# dashed curves are the course's reference runs. A contrastive loss that stays at its starting
# value is a stuck run or a **collapse**: every image gets (nearly) the same embedding, so all
# similarities are equal and the loss cannot prefer any candidate.

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("05", results);

# %% [markdown]
# ## Evaluation
# The numbers below come from the runs above (test accuracy: classifier for the baseline, linear
# probe for the contrastive methods; kNN uses all training labels as its bank, so it measures how
# well the features separate classes rather than what a few-label learner can do).

# %%
names = list(METHODS)
test_acc = [results[n]["test_accuracy"] for n in names]
knn_acc = [results[n]["knn_all_labels_accuracy"] for n in names]
figure, axis = plt.subplots(figsize=(6, 3))
x = torch.arange(len(names)).numpy()
axis.bar(x - 0.2, test_acc, width=0.4, label="classifier (baseline) / linear probe")
axis.bar(x + 0.2, knn_acc, width=0.4, label="kNN, bank: all training labels")
axis.set(xticks=x, ylim=(0, 1), ylabel="test accuracy", title=f"{NUM_LABELS} labels, same budget, backbone {BACKBONE}")
axis.set_xticklabels(names)
axis.legend()
plt.show()

best = max(names, key=lambda n: results[n]["test_accuracy"])
baseline = results["supervised"]["test_accuracy"]
print(f"best test accuracy: {best} ({results[best]['test_accuracy']:.3f}); cross-entropy baseline {baseline:.3f}")
for name in ("supcon", "selfcon"):
    gap = results[name]["test_accuracy"] - baseline
    print(f"{name} vs baseline: {gap:+.3f} test accuracy")
for name in names:
    seconds = max(results[name]["wall_time_seconds"], 1e-9)
    steps = results[name]["steps"]
    print(f"{name:>10}: {steps} steps in {seconds:.0f} s = {steps / seconds:.1f} steps/s")
    shipped = reference.load_reference(run_dirs[name])
    if reference.presenting():
        print(f"{'':>10}  (the course's numbers: {reference.describe(run_dirs[name])})")
    elif shipped and shipped["metrics"]:
        print(f"{'':>10}  reference: test accuracy {shipped['metrics']['test_accuracy']:.3f}, "
              f"kNN (all labels) {shipped['metrics']['knn_all_labels_accuracy']:.3f} ({reference.describe(run_dirs[name])})")
print(f"your budget: {BUDGET_EPOCHS} epochs, backbone '{BACKBONE}', {NUM_LABELS} labels")

# %% [markdown]
# **What to look for**: on the test split, the left bar of each method is its few-label number (the
# baseline's own classifier, a linear probe on the `NUM_LABELS` labels for SupCon and SelfCon), the
# right bar a kNN whose bank holds all training labels. SupCon's left bar near or above the
# baseline's is its claim; a kNN bar far above the probe bar means features that separate classes
# which the few labels cannot yet exploit.

# %% [markdown]
# **How far is this from the papers?** The SupCon paper (Table 2) reports 96.0 % CIFAR-10 test
# accuracy for SupCon and 95.0 % for cross-entropy with a ResNet-50 trained on **all 50 000 labels**
# (its code's CIFAR commands pretrain for 1000 epochs at batch size 1024). Your run sees
# `NUM_LABELS` labels for `BUDGET_EPOCHS` epochs with a smaller network, so it is far below; the
# paper's point, SupCon a point above cross-entropy with every label, is about a regime this
# notebook does not reach. The SelfCon paper likewise trains with every label: SelfCon reaches
# 76.45 % on CIFAR-100 (100 classes, not comparable with CIFAR-10) with a ResNet-18, 2.87 points
# above SupCon and 4.36 above cross-entropy (Bae et al., arXiv 2106.15499v2, abstract), pretrained
# for 1000 epochs at batch size 1024 (official `scripts/selfcon_represent.sh`); on ImageNet with a
# ResNet-50 the AAAI 2023 version reports SelfCon 0.6 points above SupCon.
#
# ### t-SNE of the test embeddings
# Each method's evaluation features (backbone output, before any head) for the test images,
# coloured by their true class. Look for compact, separated clusters; t-SNE keeps neighbourhoods,
# not distances, so read it as "who sits next to whom".

# %%
def test_embedding(name: str):
    """[n, D] backbone features of test images and their labels, from your trained network; in
    present mode the fixed sample of 500 test images stored with the reference run (its network
    is not shipped: results/ stays small)."""
    return results_test_embedding(run_dirs[name], data, lambda: load_trained(
        build_method(name, BACKBONE, data.num_classes, **METHODS[name]), run_dirs[name], DEVICE))


figure, axes = plt.subplots(1, 3, figsize=(15, 5))
for axis, name in zip(axes, names):
    features, labels = test_embedding(name)
    plot_tsne(features, labels, data.class_names, axis=axis, max_points=500 if SMOKE else 2000,
              legend=axis is axes[0], title=f"{name} (test acc {results[name]['test_accuracy']:.2f})")
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: SupCon's panel should show tighter class clusters than the baseline's, since
# it pulls same-class embeddings together explicitly; SelfCon's sits in between. A single blob
# coloured at random means features that ignore the content.

# %% [markdown]
# ## Take-aways
# - SupCon is NT-Xent with a different positives mask: same-class embeddings are pulled together
#   instead of pushed apart. With few labels it sees only the labelled images, so a batch repeats
#   them many times; the augmentations carry much of the work.
# - SelfCon gets its positive pair from two exits of one forward pass of one view, where SupCon
#   needs two augmentations and a forward pass over both. Compare the steps per second printed
#   above to see what that is worth on your machine.
# - Neither has a classifier: the accuracy you report depends on the second stage (here a linear
#   probe on the labelled features). Always say which protocol a number comes from.
#
# **Pitfalls and conventions**
# - `supcon` expects *normalised* features `[N, V, D]`; forgetting `F.normalize` in the head gives
#   a loss that still decreases but trains badly.
# - $\tau/\tau_{base}$: SupContrast multiplies by it, many re-implementations do not; the values
#   then differ by a constant factor (1.43 at τ = 0.1) and so do the gradients.
# - View order: SupContrast stacks views view-major (`torch.cat(torch.unbind(features, 1))`); the
#   labels must be repeated the same way (`labels.repeat(V)`), not `repeat_interleave`.
# - An anchor with no positive (a class seen once in a single-view batch) must contribute 0, not
#   NaN: older versions of SupContrast's loss divided by zero there.
# - Batch norm: both views go through the network in one batch, so the statistics are shared.

# %% [markdown]
# ## Exercises
# **1. SupCon, vectorised.** Write `my_supcon(features, labels, temperature, base_temperature)`
# without Python loops: flatten the views view-major, build the `[A, A]` logits, mask the
# diagonal, take `log_softmax`, average over the positives of each anchor (guard anchors without
# positives), scale and average. The checker compares it with the library on six random inputs.

# %%
from ssl_course.exercises import check_supcon


def my_supcon(features, labels=None, temperature=0.07, base_temperature=0.07):
    n, v, d = features.shape
    if labels is None:
        labels = torch.arange(n, device=features.device)
    z = features.transpose(0, 1).reshape(v * n, d)
    # YOUR CODE: logits, self mask, log-probabilities, positives mask, mean over positives, scale, mean
    raise NotImplementedError(f"finish my_supcon (z is [V*N, D] = {list(z.shape)})")


check_supcon(my_supcon);

# %% [markdown]
# **2. A single view for SupCon.** The SelfCon paper's "SupCon-S" baseline is SupCon with *one*
# view per image (`features.unsqueeze(1)`). In a batch of 32 images from 10 classes, how many anchors have no
# positive on average? Compute it with `positives_mask` for random labels, then explain why
# SelfCon's sub-network exit removes the problem.
#
# **3. Where to branch.** Train SelfCon with `hparams={"exit_after": 0}` (the exit right after the
# first stage) for the same budget and compare the test accuracy and the printed `exit_cosine`
# log with `exit_after=1`. Which exit is the better partner, and why might a very shallow one be
# too weak a positive?
#
# **4. Think: the $\tau/\tau_{base}$ factor.** SupContrast multiplies its loss by
# $\tau/\tau_{base}$. With $\tau = 0.1$ and $\tau_{base} = 0.07$, by what factor does that change
# the loss and its gradient? Under plain SGD (no momentum, no weight decay), which change of the
# learning rate gives exactly the same training run without the factor? Why is it no longer exact
# with weight decay?
#
# Solutions: `notebooks/solutions/contrastive_solutions.py` (`supcon`). What to expect in 2 to 4,
# and why: [`notebooks/solutions/ANSWERS.md`, section 05](solutions/ANSWERS.md#05-supcon-and-selfcon).

# %% [markdown]
# ## References
# - P. Khosla, P. Teterwak, C. Wang, A. Sarna, Y. Tian, P. Isola, A. Maschinot, C. Liu and
#   D. Krishnan, *Supervised Contrastive Learning*, NeurIPS 2020. Code: github.com/HobbitLong/SupContrast.
# - S. Bae, S. Kim, J. Ko, G. Lee, S. Noh and S.-Y. Yun, *Self-Contrastive Learning:
#   Single-viewed Supervised Contrastive Framework using Sub-network*, AAAI 2023.
#   Code: github.com/raymin0223/self-contrastive-learning.
# - T. Chen, S. Kornblith, M. Norouzi and G. Hinton, *A Simple Framework for Contrastive Learning
#   of Visual Representations*, ICML 2020 (NT-Xent).

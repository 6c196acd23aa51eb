# %% [markdown]
# # 04 · SimCLR and MoCo: contrastive learning from two views of every image
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/04_simclr_moco.ipynb)
#
# **What you will learn**
# - the idea both methods share: two random views of the same image should map to nearby
#   embeddings, views of different images to distant ones, and no label is needed for that;
# - SimCLR's NT-Xent loss symbol by symbol, written as loops, then vectorised, then checked
#   against `ssl_course.losses.nt_xent`, and what its temperature $\tau$ does;
# - MoCo's answer to "SimCLR needs huge batches": a queue of keys from earlier batches and a
#   slowly moving momentum copy of the encoder that produces them;
# - the NT-Xent gradient, derived: who gets pushed, and how hard;
# - a measured label-efficiency curve: a pretrained encoder's linear probe against training from
#   scratch at 4 to 400 labels per class;
# - how both compare with the supervised baseline of notebook 00 when all three get the same few
#   labels and the same budget in epochs, judged by a linear probe, a kNN monitor and a t-SNE.

# %% [markdown]
# **Time budget**: the trainings dominate (on a CPU the notebook switches to the `tiny` backbone and a 10 000-image subset): about 5 min on a laptop GPU
# (estimated from the FLOPs counted per training step at an assumed 5 TFLOP/s) and about
# 4 min on one CPU thread (measured throughput × epochs; more cores are faster). Each
# training cell states its own figures next to its `BUDGET_EPOCHS`; lower it to go faster
# (fractions such as 0.5 work). The budget is in epochs, so a slower machine takes longer but reaches the same numbers (the
# course's shipped reference runs are much shorter: each figure's caption says how long).
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run instead
# (see the README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (data bundle, augmentations, engine, supervised
# baseline) and `01_nce_to_infonce` (InfoNCE as "which of these is the real partner?").
#
# **Recap** of notebooks 00 and 01, which this one builds on (answers:
# [`notebooks/solutions/ANSWERS.md`, section 04](solutions/ANSWERS.md#04-simclr-and-moco)):
# 1. What does the temperature $\tau$ in InfoNCE's softmax do?
# 2. How does InfoNCE bound the mutual information between two views?
# 3. What do the contrastive augmentations of notebook 00 do to an image, and why so strongly?

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

import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import ssl_course
from ssl_course import claims, config, reference
from ssl_course.data import cifar10_available, contrastive_augment, make_bundle
from ssl_course.evaluate import evaluate_method, extract_features
from ssl_course.losses import info_nce, nt_xent
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, interactive_plot, plot_tsne, reference_history, small_multiples

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
print(f"ssl_course {ssl_course.__version__} · torch {torch.__version__} · device {DEVICE} · smoke {SMOKE} "
      f"· mode {config.mode()}")

# %% [markdown]
# ## The data
# CIFAR-10 when it is on this machine, the course's synthetic data set otherwise. SimCLR and MoCo
# read no label while they train; the `LABELS` labelled images are used afterwards, by the linear
# probe, and by the supervised baseline we compare with.

# %%
DATA = "cifar10" if cifar10_available() else "synthetic"
LABELS = 100 if SMOKE else 250
BACKBONE = reference.notebook_backbone("04", SMOKE, DEVICE)   # "small": ~16x the compute of "tiny"
if SMOKE:
    SUBSET = dict(train_subset=2000, test_subset=500)
elif DEVICE.type == "cpu" and DATA == "cifar10":
    SUBSET = dict(train_subset=10_000, test_subset=2000)   # keeps evaluation on a CPU to minutes
else:
    SUBSET = {}
data = make_bundle(DATA, num_labels=LABELS, seed=0, device=DEVICE, **SUBSET)
print(data)

# %% [markdown]
# ## Intuition: one batch, two views, one similarity matrix
# Take $N$ images and draw two random contrastive views of each: $2N$ pictures. Encode all of
# them, L2-normalise, and compare every picture with every other one by cosine similarity: a
# $2N \times 2N$ matrix. Rows and columns are ordered "all first views, then all second views",
# so the **positive** of view $i$ (the other view of the same image) sits $N$ places to the right
# or left of the diagonal: the two off-diagonals boxed in red below. Everything else in a row is
# a **negative**. The diagonal (a view compared with itself) is always 1 and is left out of the
# loss. A contrastive loss wants the red boxes bright and the rest of the row dark.
#
# Here is the matrix of a network that has not learnt anything yet.

# %%
torch.manual_seed(0)
untrained = build_method("simclr", BACKBONE, data.num_classes).to(DEVICE)
one_per_class = torch.stack([(data.train_labels == c).nonzero()[0, 0] for c in range(data.num_classes)])
picked = data.train_images[one_per_class[:8]]
N_PICKED = picked.shape[0]


def two_views(images, seed=0):
    """The same two contrastive views of ``images`` every time it is called with the same seed."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return contrastive_augment(images, generator), contrastive_augment(images, generator)


@torch.no_grad()
def similarity_of_views(method, images, seed=0):
    """[2N, 2N] cosine similarities of the projections of two views of ``images`` (eval mode)."""
    was_training = method.training
    method.eval()
    view1, view2 = two_views(images, seed)
    z = F.normalize(method.project(torch.cat([view1, view2])), dim=1)
    method.train(was_training)
    return (z @ z.T).float().cpu()


def draw_similarity(similarity, title, axis):
    n = similarity.shape[0] // 2
    shown = similarity.clone().fill_diagonal_(float("nan"))          # the diagonal is not in the loss
    picture = axis.imshow(shown, cmap="viridis", vmin=-1, vmax=1)
    rows = torch.arange(2 * n)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    axis.scatter(positives, rows, marker="s", s=60, facecolors="none", edgecolors="red", linewidths=1.5)
    axis.axhline(n - 0.5, color="white", lw=0.8)
    axis.axvline(n - 0.5, color="white", lw=0.8)
    axis.set(title=title, xlabel="candidate (view 1 | view 2)", ylabel="anchor (view 1 | view 2)")
    return picture


view1, view2 = two_views(picked)
image_grid(torch.cat([view1, view2]), nrow=N_PICKED, scale=0.9,
           suptitle="row 1: first views, row 2: second views of the same 8 images")
plt.show()

figure, axis = plt.subplots(figsize=(4.6, 4))
figure.colorbar(draw_similarity(similarity_of_views(untrained, picked), "untrained network", axis), ax=axis)
plt.show()

# %% [markdown]
# What to look for: in an untrained network the red boxes hardly stand out from the rest of
# their rows (similar colours and layouts look alike to it, whichever image they come from).
# After training we draw the same matrix again and print the mean positive and negative
# similarities of both networks.
#
# ## The NT-Xent loss (SimCLR)
# Stack the two views' projections into $z_1, \dots, z_{2N}$ (view 1 of images $1..N$, then view 2).
# For an anchor $a$, let $p(a)$ be the index of its positive: $p(a) = a + N$ for $a \le N$ and
# $p(a) = a - N$ otherwise. With the cosine similarity
# $s_{ab} = \dfrac{z_a^\top z_b}{\lVert z_a \rVert\,\lVert z_b \rVert}$,
#
# $$\mathcal{L}_{\text{NT-Xent}} = \frac{1}{2N} \sum_{a=1}^{2N} -\log
#   \frac{\exp\left(s_{a,p(a)} / \tau\right)}{\sum_{b=1,\, b \ne a}^{2N} \exp\left(s_{ab} / \tau\right)}$$
#
# - $N$: images in the batch; $2N$: views, every one of them is an anchor once;
# - $z_a$: the output for view $a$ of the **projection head**, a small MLP on top of the backbone
#   (the loss normalises it); only the loss sees it: after training it is thrown away, because the
#   backbone's features before it transfer better;
# - $s_{ab}$: cosine similarity of views $a$ and $b$, between $-1$ and $1$;
# - $\tau > 0$: the temperature; the similarities are divided by it before the softmax;
# - the denominator runs over the $2N - 1$ candidates $b \ne a$: the positive and $2N-2$ negatives.
#
# Each term is the cross-entropy of a $(2N-1)$-way classification "which candidate is my other
# view?". "NT-Xent" stands for normalised (cosine), temperature-scaled cross-entropy.
#
# ### Literally, with loops

# %%
def nt_xent_loops(z1, z2, temperature):
    """NT-Xent exactly as the formula reads: one anchor at a time, one candidate at a time."""
    n = z1.shape[0]
    z = [row / row.norm() for row in torch.cat([z1, z2])]        # 2N unit vectors
    total = torch.zeros((), dtype=z1.dtype)
    for a in range(2 * n):
        p = a + n if a < n else a - n                                 # index of the positive
        numerator = torch.exp(z[a] @ z[p] / temperature)
        denominator = sum(torch.exp(z[a] @ z[b] / temperature) for b in range(2 * n) if b != a)
        total = total - torch.log(numerator / denominator)
    return total / (2 * n)


# %% [markdown]
# ### Vectorised
# All similarities at once as a matrix product; the diagonal is set to $-\infty$ so that
# $\exp(-\infty) = 0$ drops it from the denominator; `logsumexp` computes the log of the
# denominator without overflow for small $\tau$.

# %%
def nt_xent_vectorised(z1, z2, temperature):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)                                   # [2N, D]
    logits = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])               # p(a) for every a
    log_prob = logits[torch.arange(2 * n), positive] - torch.logsumexp(logits, dim=1)
    return -log_prob.mean()


generator = torch.Generator().manual_seed(0)
for n, d, tau in [(4, 8, 0.5), (7, 3, 0.1), (16, 32, 0.2), (2, 5, 1.0)]:
    z1 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    library = nt_xent(z1, z2, tau)
    torch.testing.assert_close(nt_xent_loops(z1, z2, tau), library)
    torch.testing.assert_close(nt_xent_vectorised(z1, z2, tau), library)
    print(f"N={n:2d} D={d:2d} tau={tau}: loops = vectorised = library = {library.item():.6f}")

# %% [markdown]
# ### The gradient: who gets pushed, and how hard
# Take one anchor $a$ with positive $p = p(a)$ and write its term as a function of its similarities
# $s_{ab}$ to the candidates $b \ne a$:
#
# $$\ell_a = -\frac{s_{ap}}{\tau} + \log \sum_{b \ne a} e^{s_{ab}/\tau},
# \qquad p_{ab} = \frac{e^{s_{ab}/\tau}}{\sum_{c \ne a} e^{s_{ac}/\tau}}
# \ \text{(the softmax over the candidates).}$$
#
# Differentiate with respect to one similarity $s_{ab}$. The first term contributes $-1/\tau$ only
# when $b = p$; the derivative of $\log\sum_c e^{s_{ac}/\tau}$ is $\frac{1}{\tau}
# \frac{e^{s_{ab}/\tau}}{\sum_c e^{s_{ac}/\tau}} = p_{ab}/\tau$. Together:
#
# $$\frac{\partial \ell_a}{\partial s_{ab}} = \frac{p_{ab} - \mathbb{1}[b = p]}{\tau}.$$
#
# Gradient descent moves each similarity against its gradient. For the positive the gradient is
# $(p_{ap} - 1)/\tau \le 0$: its similarity is **raised**, by less as the anchor already picks it
# ($p_{ap} \to 1$). For a negative it is $p_{ab}/\tau \ge 0$: its similarity is **lowered** in
# proportion to $p_{ab}$, the probability the anchor gives it. (The full gradient with respect to
# $z_a$ follows by the chain rule through $s_{ab}$; the factor $p_{ab} - \mathbb{1}[b=p]$ is the
# same.) The next cell checks the formula with autograd.

# %%
similarity_row = torch.tensor([0.9, 0.7, 0.2, -0.1, 0.5], dtype=torch.float64, requires_grad=True)  # [candidates]
positive_index, tau = 0, 0.5
term = -similarity_row[positive_index] / tau + torch.logsumexp(similarity_row / tau, dim=0)
term.backward()
softmax = torch.softmax(similarity_row.detach() / tau, dim=0)
derived = (softmax - F.one_hot(torch.tensor(positive_index), 5).double()) / tau
torch.testing.assert_close(similarity_row.grad, derived)
print("autograd:", [f"{g:+.3f}" for g in similarity_row.grad.tolist()])
print("derived: ", [f"{g:+.3f}" for g in derived.tolist()], "(positive first, then four negatives)")

# %% [markdown]
# ### What the temperature does
# The loss is a softmax over the candidates. Dividing by a small $\tau$ makes it peaked: almost all
# probability goes to the few candidates with the highest similarity. By the gradient above, every
# negative $b$ is pushed away with a weight equal to its softmax probability $p_{ab}$, so a small
# $\tau$ concentrates the push on the hard negatives (notebook 01: those that already look like the
# anchor), while a large $\tau$ spreads it evenly over all negatives, easy ones included.
#
# Below: one made-up anchor with a positive at similarity 0.7, five hard negatives near 0.6 and
# 120 easy negatives near 0. Move the slider (in JupyterLab) and watch the share of the push that
# goes to the hard negatives; the row of panels after it shows four temperatures side by side. The SimCLR paper uses $\tau = 0.5$ on CIFAR-10; MoCo v2 uses 0.2.

# %%
candidate_generator = torch.Generator().manual_seed(1)
SIMILARITIES = torch.cat([torch.tensor([0.7]), 0.6 + 0.05 * torch.randn(5, generator=candidate_generator),
                          0.15 * torch.randn(120, generator=candidate_generator)]).clamp(-1, 1)
KIND = ["positive"] + ["hard negative"] * 5 + ["easy negative"] * 120


def draw_temperature(axes, temperature=0.5):
    left, right = axes
    probability = torch.softmax(SIMILARITIES / temperature, dim=0)
    loss = -probability[0].log().item()
    hard, easy = probability[1:6].sum().item(), probability[6:].sum().item()
    colours = {"positive": "tab:red", "hard negative": "tab:orange", "easy negative": "tab:gray"}
    order = SIMILARITIES.argsort(descending=True)
    left.bar(range(len(order)), probability[order], color=[colours[KIND[i]] for i in order], width=1.0)
    left.set(xlabel="candidates, most similar first", ylabel="softmax probability",
             title=f"tau = {temperature:.2f}: loss {loss:.2f}")
    for name, colour in colours.items():
        left.bar([0], [0], color=colour, label=name)
    left.legend(fontsize=8)
    right.bar(["hard (5)", "easy (120)"], [hard / (hard + easy), easy / (hard + easy)],
              color=["tab:orange", "tab:gray"])
    right.set(ylim=(0, 1), xlabel="negatives", ylabel="share of the push", title="where the gradient goes")


def show_temperature(temperature=0.5):
    figure, axes = plt.subplots(1, 2, figsize=(11, 3))
    draw_temperature(axes, temperature)
    figure.tight_layout()
    plt.show()


interactive_plot(show_temperature, temperature=(0.05, 2.0, 0.05, 0.5))

# %%
small_multiples(draw_temperature, axes_per_value=2, sharey=False, panel_size=(3.6, 2.8),
                temperature=[0.05, 0.2, 0.5, 2.0])
plt.show()

# %% [markdown]
# **What to look for**: as τ falls, the softmax on the left concentrates on the few hard negatives and
# the right panel's orange bar (share of the push on the 5 hard negatives) grows towards 1; at τ = 2
# the 120 easy negatives take most of the push.

# %% [markdown]
# Too small a $\tau$ over-reacts to a few negatives, which on an unlabelled data set are often
# images of the *same class* (a "false negative"); too large a $\tau$ learns little from any
# single one. That is why $\tau$ is tuned per data set and batch size.
#
# ## MoCo: contrastive learning as a dictionary look-up
# SimCLR's negatives are the other images of the batch, so more negatives means a bigger batch,
# and a bigger batch means more memory. MoCo keeps a **queue** of $K$ encoded images ("keys")
# from the last $K/N$ batches instead, and turns every step into a look-up: the **query** $q$ (view
# 1 of an image) must find its own key $k^+$ (view 2 of the same image) among $1 + K$ keys. With
# L2-normalised vectors,
#
# $$\mathcal{L}_{\text{InfoNCE}} = -\frac{1}{N}\sum_{i=1}^{N} \log
#   \frac{\exp(q_i^\top k_i^{+} / \tau)}{\exp(q_i^\top k_i^{+} / \tau) + \sum_{j=1}^{K} \exp(q_i^\top n_j / \tau)}$$
#
# - $q_i$: the query encoder's output for view 1 of image $i$ (this side gets the gradient);
# - $k_i^{+}$: the key encoder's output for view 2 of the same image, computed without gradient;
# - $n_1, \dots, n_K$: the keys in the queue, from earlier batches, all negatives;
# - $\tau$: temperature (0.2 in MoCo v2).
#
# It is the cross-entropy of a $(K+1)$-way classification whose correct class is always "the
# positive", which the library implements by putting the positive logit in column 0.

# %%
def info_nce_loops(query, positive_key, negative_keys, temperature):
    q = F.normalize(query, dim=1)
    k = F.normalize(positive_key, dim=1)
    negatives = F.normalize(negative_keys, dim=1)
    total = torch.zeros((), dtype=query.dtype)
    for i in range(q.shape[0]):
        positive = torch.exp(q[i] @ k[i] / temperature)
        others = sum(torch.exp(q[i] @ negatives[j] / temperature) for j in range(negatives.shape[0]))
        total = total - torch.log(positive / (positive + others))
    return total / q.shape[0]


for n, k_size, d, tau in [(4, 16, 8, 0.2), (3, 50, 5, 0.07), (8, 10, 16, 1.0)]:
    q = torch.randn(n, d, generator=generator, dtype=torch.float64)
    k = q + 0.3 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    queue = torch.randn(k_size, d, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(info_nce_loops(q, k, queue, tau), info_nce(q, k, queue, tau))
print("InfoNCE: loops = library on 3 random float64 inputs")

# %% [markdown]
# ### Why the key encoder must move slowly
# The queue only helps if its keys are comparable with today's queries. Keys computed by the
# query encoder itself would come from a network that changed at every one of the last $K/N$
# steps, so old keys would be "in another language". MoCo computes keys with a second network
# whose weights $\theta_k$ follow the query encoder's $\theta_q$ by an **exponential moving average**
# (**EMA**: after every optimiser step, each weight moves a fraction $1 - m$ of the way towards the
# trained one):
#
# $$\theta_k \leftarrow m\,\theta_k + (1 - m)\,\theta_q, \qquad 0 \le m < 1 .$$
#
# The key encoder then changes little from step to step and the queue stays consistent. The
# price is a lag of roughly $1/(1-m)$ steps. Below, one weight of the query encoder follows a
# made-up trajectory (a drift plus noise, a stand-in for SGD) and we apply the update with three
# momenta.

# %%
steps = torch.arange(3000)
walk_generator = torch.Generator().manual_seed(0)
query_weight = torch.sin(steps / 400.0) + 0.05 * torch.randn(len(steps), generator=walk_generator).cumsum(0) / 10
figure, axis = plt.subplots(figsize=(9, 3))
axis.plot(steps, query_weight, color="black", lw=1, label="query weight $\\theta_q$")
for m in (0.9, 0.99, 0.999):
    key, trace = query_weight[0].clone(), []
    for value in query_weight:
        key = m * key + (1 - m) * value
        trace.append(key.item())
    axis.plot(steps, trace, label=f"key weight, m = {m} (lag ~{1 / (1 - m):.0f} steps)")
axis.set(xlabel="optimiser step", ylabel="weight value", title="the momentum encoder lags the query encoder")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# **What to look for**: each coloured curve is a smoothed, delayed copy of the black one: the larger
# m, the smoother and the later. With m = 0.999 the key weight still sits near its starting value
# after a few hundred steps, which is why a short CIFAR run uses 0.99.

# %% [markdown]
# With $m = 0.999$ (MoCo on ImageNet, ~5000 steps per epoch) the key weight is ~1000 steps behind;
# CIFAR runs are much shorter, so the course uses 0.99, the value of MoCo's CIFAR-10 demo. A
# smoke run of 30 steps is shorter still: there we use $m = 0.9$, otherwise the key encoder
# would still be 74 % the random initial network at the end ($0.99^{30} \approx 0.74$).
#
# **Batch norm can cheat.** A query and its positive key pass through their encoders in the same
# batch; queued negatives came through in other batches. Batch norm normalises with the batch's
# statistics, so the network can learn to recognise "normalised with the same statistics as me"
# instead of "same image". The loss then falls while the features get no better. MoCo's official
# code normalises per GPU and shuffles the key batch across GPUs so that a query and its key are
# normalised with different sub-batches (**shuffle BN**). On one device, `ssl_course`'s MoCo splits
# every batch-norm layer into `bn_splits = 8` groups ("virtual GPUs") and shuffles the keys
# before the key encoder, as MoCo's CIFAR demo does. SimCLR instead normalises all $2N$ views
# together, which is the "global BN" of its paper.

# %% [markdown]
# ## Training: SimCLR, MoCo and the supervised baseline under the same budget
# All three use the same backbone, the same `LABELS` labels and the same budget in epochs (the
# engine's epoch of notebook 00: the same number of primary images, not the same time). SimCLR and
# MoCo train on every training image without labels; the supervised baseline trains on the
# labelled images only (as in notebook 00, run again here so that budgets match). Runs are saved
# under `runs/` and reloaded if you run the cell again. Where the course ships a reference run of
# the same cell, its numbers are printed under yours.

# %%
BUDGET_EPOCHS = 10   # per method; smoke mode stops after 30 steps instead
# Expected time of this cell (3 runs of 10 epochs; GPU: backbone small on 50 000 images), training only:
#   laptop GPU ≈ 5 min: estimated from the FLOPs of each method's training step (counted with
#   torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU ≈ 4 min: measured throughput on one CPU thread, backbone tiny on the 10 000-image subset, estimated: small's time scaled by the counted FLOP ratio 0.043/0.683, times the
#   epochs (benchmarks/RESULTS.md); more cores are faster. Fractions such as 0.5 work too.
BATCH_SIZE = 32 if SMOKE else None                        # None: each method's default (256 / 128)
HPARAMS = {
    "supervised": {},
    "simclr": {},                                         # tau = 0.5, head 512 -> 128
    "moco": dict(momentum=0.9, queue_size=512) if SMOKE else {},   # default m = 0.99, K = 4096
}

RUN_DIRS = {}


def train(name):
    torch.manual_seed(0)
    method = build_method(name, BACKBONE, data.num_classes, **HPARAMS[name])
    tag = "".join(f"_{key}{value}" for key, value in sorted(HPARAMS[name].items()))   # new settings, new folder
    out_dir = config.runs_dir() / f"04_{name}_{DATA}_{LABELS}_{BACKBONE}{tag}{'_smoke' if SMOKE else ''}"
    settings = TrainConfig(max_steps=30 if SMOKE else None, epochs=BUDGET_EPOCHS,
                           batch_size=BATCH_SIZE, monitor_every=15 if SMOKE else None,
                           monitor_bank_size=500 if SMOKE else 10_000, monitor_val_size=500 if SMOKE else 2000,
                           out_dir=out_dir, resume=True, seed=0, progress=not SMOKE)
    history = fit(method, data, settings)
    metrics = evaluate_method(method, data, knn_bank="all")
    print(f"{name:>10}: {history.step[-1]} steps in {history.seconds[-1]:.0f} s; test accuracy (classifier or linear probe) "
          f"{metrics['test_accuracy']:.3f}, kNN (all labels) {metrics['knn_all_labels_accuracy']:.3f}")
    shipped = reference.load_reference(out_dir)
    if reference.presenting():
        print(f"{'':>10}  (these are the course's numbers: {reference.describe(out_dir)})")
    elif shipped and shipped["evaluations"]:
        ref = next(iter(shipped["evaluations"].values()))
        print(f"{'':>10}  reference: test accuracy {ref['test_accuracy']:.3f}, "
              f"kNN (all labels) {ref['knn_all_labels_accuracy']:.3f} ({reference.describe(out_dir)})")
    RUN_DIRS[name] = out_dir   # the run's name, for the reference curves below
    return method, history, metrics


runs = {name: train(name) for name in ("supervised", "simclr", "moco")}

# %% [markdown]
# ## Evaluation
# - **test accuracy**: for the supervised baseline its own classifier; for SimCLR and MoCo a
#   linear probe fitted on the frozen backbone features of the `LABELS` labelled images only.
#   This is the few-label number to compare.
# - **kNN accuracy**: weighted kNN whose memory bank holds the features and labels of *every*
#   training image. It measures how well the classes separate in feature space, not what a
#   few-label learner could reach.

# %%
print(f"{'method':>10} | {'test acc':>8} | {'kNN acc':>7} | {'steps':>5}")
for name, (_, history, metrics) in runs.items():
    print(f"{name:>10} | {metrics['test_accuracy']:8.3f} | {metrics['knn_all_labels_accuracy']:7.3f} | {history.step[-1]:5d}")
baseline = runs["supervised"][2]["test_accuracy"]
for name in ("simclr", "moco"):
    accuracy = runs[name][2]["test_accuracy"]
    verdict = "beats" if accuracy > baseline else "does not beat"
    print(f"{name} + linear probe {verdict} the supervised baseline under this budget: "
          f"{accuracy:.3f} vs {baseline:.3f} ({accuracy - baseline:+.3f})")
print(f"your budget: {BUDGET_EPOCHS} epochs, backbone '{BACKBONE}', probe on {LABELS} labels")

figure, axis = plt.subplots(figsize=(7, 4))
captions = {}
for (name, (_, history, _)), colour in zip(runs.items(), ("tab:blue", "tab:orange", "tab:green")):
    if history.monitor_step:
        axis.plot(history.monitor_seconds, history.monitor_knn, marker="o", color=colour, label=name)
    shipped, captions[name] = reference_history(RUN_DIRS[name])   # the course's run of this cell, dashed
    if shipped is not None and shipped["monitor_step"]:
        axis.plot(shipped["monitor_seconds"], shipped["monitor_knn"], linestyle="--", color=colour,
                  label=f"{name} (reference)")
shown = "the course's reference runs" if reference.presenting() else "your runs; dashed: the reference runs"
axis.set(xlabel="training seconds", ylabel="kNN accuracy (validation subset)", ylim=(0, 1),
         title=f"kNN monitor during training\n({shown})" if any(captions.values()) else "kNN monitor during training")
axis.legend(fontsize=9)
plt.show()
for name, caption in captions.items():
    if caption:
        print(f"{name:>10}: {caption}")

# %% [markdown]
# **What to look for**: the solid kNN curves rise over the training seconds; the dashed ones are the
# course's reference runs of the same cell. A curve that stays at chance (0.1) while the loss falls
# means the views are solvable by a shortcut rather than by content.

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("04", {name: metrics for name, (_, _, metrics) in runs.items()});

# %% [markdown]
# What to look for: on a budget of minutes the contrastive methods often start *below* the
# supervised baseline on kNN (they first have to learn what "the same image" means) and need
# many epochs to overtake it; the linear probe on few labels is where self-supervision usually
# pays off first. Read the numbers printed above, not this sentence, for your run.
#
# **How far is this from the papers?** The SimCLR paper (Appendix B.9) reports about 94 % linear-probe
# accuracy on CIFAR-10 for a ResNet-50 pretrained on CIFAR-10 for hundreds of epochs at batch sizes up
# to 4096, with the probe trained on all 50 000 labels. MoCo's paper reports ImageNet only, but its
# official CIFAR-10 demo (`facebookresearch/moco`, `colab/moco_cifar10_demo.ipynb`) gives a kNN
# number measured the way this course measures its kNN column (k = 200, τ = 0.1, every training
# label in the bank): 82.6 % for a ResNet-18 after 200 epochs at batch size 512 and 88.7 % after
# 800 epochs, so your MoCo kNN is directly comparable with it, up to the network and the number of
# epochs; a linear probe on all 50 000 labels of its 800-epoch symmetric-loss model reaches 90.7 %. Your run differs on every axis: a smaller
# network, `BUDGET_EPOCHS` epochs, and a probe that sees only `LABELS` labels. Expect tens of points
# less; what you can compare is the *order* of the three methods at equal budget.

# %% [markdown]
# ## Why pretrain at all? Label efficiency, measured
# The case for self-supervised pretraining is strongest when labels are scarce. The figure below
# comes from `benchmarks/label_efficiency.py`: one SimCLR pretraining on a 10 000-image CIFAR-10
# subset (the `tiny` backbone, a budget of minutes on a CPU), then for 4, 25, 100 and 400 labels
# per class
#
# - a **linear probe** on the frozen SimCLR features (only the probe sees labels);
# - the same probe on a **random, untrained** encoder of the same shape (what the architecture alone
#   gives);
# - the same network **trained from scratch** on the labelled images only, for a fixed number of steps.
#
# Each label count was run on two different labelled splits (the dots; the line is their mean).
# The budget and the measured numbers are in `benchmarks/figures/label_efficiency.json` and
# `benchmarks/RESULTS.md`.

# %%
import json
from pathlib import Path

FIGURES = Path(config.REPO_ROOT) / "benchmarks" / "figures"
label_efficiency = json.loads((FIGURES / "label_efficiency.json").read_text())
print("budget:", label_efficiency["budget"])
print(f"{'labels/class':>12} | {'SimCLR probe':>12} | {'random probe':>12} | {'from scratch':>12}")
for per_class in label_efficiency["labels_per_class"]:
    means = [sum(label_efficiency[key][f"{per_class}/{seed}"] for seed in range(label_efficiency["seeds"]))
             / label_efficiency["seeds"] for key in ("simclr_probe", "random_probe", "scratch")]
    print(f"{per_class:>12} | " + " | ".join(f"{100 * m:11.1f}%" for m in means))
figure, axis = plt.subplots(figsize=(8, 5))
axis.imshow(plt.imread(FIGURES / "label_efficiency_cpu.png"))
axis.axis("off")
plt.show()

# %% [markdown]
# **What to look for**: the SimCLR probe column against the random-probe column: the gap is what
# pretraining bought at each number of labels, and it shrinks as labels grow. All three columns rise
# from left to right.

# %% [markdown]
# **Reading it honestly.** At this budget (ten SimCLR epochs on 10 000 images with a tiny network)
# the pretraining buys little: the SimCLR probe is a few points above the *random* encoder's probe
# everywhere, ahead of training from scratch only at 4 labels per class, and behind it from 25
# labels per class on, because the from-scratch network trains every layer for the task. That is
# the shape the figure takes when pretraining is short; the argument for self-supervision rests on
# what happens when it is long. At scale the gap is large: the SimCLR paper (Table 7) fine-tunes a
# ResNet-50 pretrained on ImageNet with 1 % of the labels to 48.3 % top-1, against 25.4 % for the
# same network trained on those labels alone (10 % of the labels: 65.6 % against 56.4 %).
#
# To reproduce it (about half an hour on a laptop CPU, a few minutes on a GPU with `--device cuda`),
# set `REPRODUCE = True`; the new figure and JSON go to `runs/label_efficiency/`. Try a longer
# pretraining (`--pretrain-epochs 50`) and watch which curve moves.

# %%
REPRODUCE = False
if REPRODUCE:
    import subprocess
    import sys

    subprocess.run([sys.executable, str(Path(config.REPO_ROOT) / "benchmarks" / "label_efficiency.py"),
                    "--out", str(config.runs_dir() / "label_efficiency"), "--device", DEVICE.type], check=True)

# %% [markdown]
# ### The similarity matrix again, after SimCLR's training

# %%
simclr = runs["simclr"][0]
figure, axes = plt.subplots(1, 2, figsize=(9.5, 4))
draw_similarity(similarity_of_views(untrained, picked), "untrained", axes[0])
figure.colorbar(draw_similarity(similarity_of_views(simclr, picked), "after SimCLR training", axes[1]), ax=axes[1])
figure.tight_layout()
plt.show()
for label, method in (("untrained", untrained), ("SimCLR", simclr)):
    similarity = similarity_of_views(method, picked)
    mask = ~torch.eye(2 * N_PICKED, dtype=torch.bool)
    positive_mask = torch.zeros_like(mask)
    positive_mask[torch.arange(2 * N_PICKED), torch.cat([torch.arange(N_PICKED, 2 * N_PICKED), torch.arange(N_PICKED)])] = True
    print(f"{label:>9}: mean positive similarity {similarity[positive_mask].mean():.3f}, "
          f"mean negative similarity {similarity[mask & ~positive_mask].mean():.3f}")

# %% [markdown]
# **What to look for**: after training, the diagonal band of positive pairs (each view against the
# other view of its image) is brighter than the rest, and the printed mean positive similarity is well
# above the negative one. Untrained, positives and negatives look alike.

# %% [markdown]
# ### MoCo's look-up, seen from one query
# For 256 training images we compute the queries and their positive keys, and compare each query
# with its own key and with every key in MoCo's queue. The histogram shows where the positive
# lands among the $K$ negatives: the further right of the grey mass, the easier the look-up.
#
# Batch norm matters here too: the queue's keys were computed in training mode, normalised with
# batch statistics. Comparing them with queries computed in eval mode (running statistics) would
# compare two different networks. So we work in training mode, on a scratch copy, because
# training-mode forward passes also update BN's running statistics.

# %%
import copy

lookup = copy.deepcopy(runs["moco"][0]).train()   # the run itself stays untouched


@torch.no_grad()
def keys_of(images, seed):
    """Keys of one contrastive view of ``images``, in batches of 256 like the training batches."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return torch.cat([lookup.encode_key(contrastive_augment(chunk, generator), generator)
                      for chunk in images.split(256)])


with torch.no_grad():
    view1, view2 = two_views(data.train_images[:256], seed=1)
    queries = F.normalize(lookup.encode_query(view1).float(), dim=1)
    keys = lookup.encode_key(view2, torch.Generator(device=DEVICE).manual_seed(1))
    queue = lookup.queue
    positive_similarity = (queries * keys).sum(1)
    negative_similarity = queries @ queue.T
rank = (negative_similarity > positive_similarity[:, None]).sum(1)
figure, axis = plt.subplots(figsize=(7, 3))
axis.hist(negative_similarity[0].cpu().numpy(), bins=50, color="tab:gray", label=f"query 0 vs {len(queue)} queued keys")
axis.axvline(positive_similarity[0].item(), color="tab:red", lw=2, label="query 0 vs its own key")
axis.set(xlabel="cosine similarity", ylabel="keys", title="a (K+1)-way look-up")
axis.legend(fontsize=8)
plt.show()
print(f"the positive key is the most similar of all {len(queue) + 1} keys for "
      f"{(rank == 0).float().mean().item():.1%} of 256 queries (chance: {1 / (len(queue) + 1):.2%}); "
      f"median number of queued keys that beat it: {rank.float().median().item():.0f}")

# %% [markdown]
# **What to look for**: the red line (query 0 against its own key) lies to the right of the grey mass
# of queued keys; the printed share of queries whose own key wins should be far above chance.

# %% [markdown]
# ### Queue size: more negatives make the look-up harder
# Same queries, now against $K$ fresh keys of *other* training images (so no negative is the
# query's own image), for growing $K$. A look-up that is no better than guessing has loss
# $\log(K+1)$ (dashed). The gap between the dashed line and the loss is what the encoder has
# learnt as InfoNCE measures it: InfoNCE bounds the mutual information between the two views by
# $\log(K+1) - \mathcal{L}$, so only a large enough $K$ can show a large gap.

# %%
negative_keys = keys_of(data.train_images[256:256 + (1024 if SMOKE else 4096)], seed=2)
sizes = [k for k in (16, 64, 256, 1024, 4096) if k <= len(negative_keys)]
losses = [info_nce(queries, keys, negative_keys[:k], lookup.temperature).item() for k in sizes]
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3))
left.plot(sizes, losses, marker="o", label="InfoNCE of the trained MoCo")
left.plot(sizes, [math.log(k + 1) for k in sizes], "--", color="gray", label="log(K+1): no better than guessing")
left.set(xscale="log", xlabel="number of negatives K", ylabel="loss", title="queue size")
left.legend(fontsize=8)
right.plot(sizes, [math.log(k + 1) - loss for k, loss in zip(sizes, losses)], marker="o", color="tab:green")
right.set(xscale="log", xlabel="number of negatives K", ylabel="log(K+1) - loss (nats)",
          title="what the encoder has learnt, as the bound sees it")
figure.tight_layout()
plt.show()
for k, loss in zip(sizes, losses):
    print(f"K={k:5d}: loss {loss:.3f}, log(K+1) - loss = {math.log(k + 1) - loss:.3f} nats")

# %% [markdown]
# **What to look for**: the loss (left) grows with K but stays below the dashed log(K+1); the gap
# (right) grows with K too, up to the limit log(K+1) allows: more negatives let the bound see more of
# what the encoder learned.

# %% [markdown]
# A bigger queue costs almost nothing (one matrix product), which is MoCo's point; the limit is
# staleness: the oldest key in the queue is $K/N$ steps old.
#
# ### t-SNE of the test embeddings
# Backbone features of the test images, squeezed to 2-D; colours are the true classes, which no
# contrastive method saw during training.

# %%
figure, axes = plt.subplots(1, 3, figsize=(15, 5))
for axis, (name, (method, _, metrics)) in zip(axes, runs.items()):
    method.eval()
    features = extract_features(method.embed, data.test_images)
    method.train()
    plot_tsne(features, data.test_labels, data.class_names, axis=axis, legend=name == "supervised",
              title=f"{name} (kNN, all labels: {metrics['knn_all_labels_accuracy']:.2f})", max_points=500 if SMOKE else 2000)
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: in the supervised panel the classes form separate clusters; SimCLR's and
# MoCo's panels show looser ones, with vehicles apart from animals before the classes within each
# group separate. A single blob coloured at random means features that ignore the content.

# %% [markdown]
# ## Take-aways and pitfalls
# - **Views carry the signal.** Both methods learn what is shared by two random views of an
#   image; the augmentation decides what "shared" means (colour jitter forces the network past
#   colour histograms, crops force it to relate parts to wholes).
# - **Temperature.** $\tau$ sets how strongly the hardest negatives dominate the gradient. SimCLR
#   uses 0.5 on CIFAR-10 and MoCo v2 0.2; on very short runs a smaller SimCLR $\tau$ (such as 0.2)
#   may do better, so measure it (`HPARAMS["simclr"] = dict(temperature=0.2)`) rather than take it
#   on trust.
# - **Batch size vs queue.** SimCLR's negatives are the $2N-2$ other views of the batch, so it
#   wants large batches (the paper used 4096, with **LARS**: SGD whose step for each layer is
#   scaled by the ratio of that layer's weight norm to its gradient norm, which keeps training
#   stable at the large learning rates such batches need). MoCo gets $K$ negatives from its queue at
#   any batch
#   size; the price is stale keys and a second network. The queue must be consistent: that is
#   what the momentum $m$ is for, and $1/(1-m)$ must be small next to the run's length.

# %% [markdown]
# - **The 2× convention.** The official SimCLR TF code adds the mean losses of the two
#   directions (view 1 as anchors, then view 2), which is twice the value of the mean over all
#   $2N$ anchors that `ssl_course.losses.nt_xent` and the PyTorch ports return (checked in the
#   next cell). Gradients scale by the same factor, so a learning rate copied between the two
#   conventions is off by 2. The same goes for MoCo's symmetric loss: the CIFAR demo sums the two
#   directions, `ssl_course` averages them.
# - **BN cheating.** Batch norm lets samples of one batch see each other. If a query and its key
#   share batch statistics and the negatives do not, the loss falls for the wrong reason. Use
#   shuffle BN (or our split BN on one device); SimCLR uses global BN across devices.
# - **kNN with all labels is a probe, not a result.** Compare methods by the few-label numbers,
#   under the same budget, split and backbone (notebook `12_compare`).

# %%
def nt_xent_two_directions_summed(z1, z2, temperature):
    """The TF convention: the mean loss of the view-1 anchors plus that of the view-2 anchors."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = a.shape[0]
    own = torch.eye(n, dtype=torch.bool)
    targets = torch.arange(n)
    from_a = torch.cat([a @ b.T, (a @ a.T).masked_fill(own, float("-inf"))], dim=1) / temperature
    from_b = torch.cat([b @ a.T, (b @ b.T).masked_fill(own, float("-inf"))], dim=1) / temperature
    return F.cross_entropy(from_a, targets) + F.cross_entropy(from_b, targets)


z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
ratio = nt_xent_two_directions_summed(z1, z2, 0.5) / nt_xent(z1, z2, 0.5)
print(f"TF-style value / ssl_course value = {ratio.item():.6f}")

# %% [markdown]
# ## Exercises
# **1. NT-Xent.** Fill in `my_nt_xent(z1, z2, temperature)` (shapes `[N, D]`, returns a scalar,
# mean over the $2N$ anchors) without looking at the library. The checker compares it with
# `ssl_course.losses.nt_xent` on six random inputs and names the usual mistakes (forgetting the
# diagonal mask, summing the two directions, ...).

# %%
def my_nt_xent(z1, z2, temperature=0.5):
    # 1. normalise and stack the two views into [2N, D]
    # 2. similarity matrix / temperature, with the diagonal removed
    # 3. cross-entropy against the index of each anchor's positive
    raise NotImplementedError("your NT-Xent here")


# %%
from ssl_course.exercises import check_nt_xent

check_nt_xent(my_nt_xent);

# %% [markdown]
# **2. The momentum update.** Fill in `my_momentum_update(key_encoder, query_encoder, momentum)`:
# it must change the key encoder's parameters *in place* to $m\,\theta_k + (1-m)\,\theta_q$ and
# nothing else (not the query encoder, not the batch-norm running statistics, no autograd graph).
# The checker runs it on small encoders for six momenta and names the mistake it recognises
# (swapped $m$ and $1-m$, rebinding a name instead of writing into the tensor, averaging buffers, ...).

# %%
def my_momentum_update(key_encoder, query_encoder, momentum=0.99):
    # pair key_encoder.parameters() with query_encoder.parameters(), then update each key tensor
    # in place, without recording gradients
    raise NotImplementedError("your momentum update here")


# %%
from ssl_course.exercises import check_momentum_update

check_momentum_update(my_momentum_update);

# %% [markdown]
# **3. Think, then measure.** Train MoCo in smoke mode twice more, once with `momentum=0.0` (the
# key encoder is the query encoder of the previous step) and once with `bn_splits=1` (no shuffle
# BN), by editing `HPARAMS["moco"]` (the run folder's name follows the settings). Which of the kNN numbers changes?
# Does the training loss tell you the same story as the kNN accuracy?
#
# **4. Think: how many candidates?** At a batch of $N = 256$ images, how many negatives does each
# SimCLR anchor have, and how many does a MoCo query have with $K = 4096$? By the bound of notebook
# 01, what is the largest amount of mutual information, in nats, that each loss can certify?

# %% [markdown]
# **5. Think: the momentum against the budget.** On all of CIFAR-10 (as on a GPU), SimCLR and
# MoCo train on the 45 000 training images at a batch of 256. How many steps is one epoch, and how
# many are `BUDGET_EPOCHS = 10` epochs? The key encoder lags the query encoder by about $1/(1-m)$
# steps: what fraction of the run is that for $m = 0.99$ and for ImageNet's $m = 0.999$, and what
# would the larger momentum do to the keys early in this run?
#
# Solutions to 1 and 2: `notebooks/solutions/contrastive_solutions.py` (`nt_xent`,
# `momentum_update`). What to expect in 3 to 5, and why: [`notebooks/solutions/ANSWERS.md`, section 04](solutions/ANSWERS.md#04-simclr-and-moco).
#
# ## References
# - T. Chen, S. Kornblith, M. Norouzi, G. Hinton, *A Simple Framework for Contrastive Learning of
#   Visual Representations*, ICML 2020. Code: https://github.com/google-research/simclr
# - K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, *Momentum Contrast for Unsupervised Visual
#   Representation Learning*, CVPR 2020. Code: https://github.com/facebookresearch/moco
#   (and its CIFAR-10 demo notebook, the source of the split-BN and $m = 0.99$ settings).
# - X. Chen, H. Fan, R. Girshick, K. He, *Improved Baselines with Momentum Contrastive Learning*
#   (MoCo v2), arXiv:2003.04297, 2020.
# - A. van den Oord, Y. Li, O. Vinyals, *Representation Learning with Contrastive Predictive
#   Coding*, 2018 (InfoNCE).

# %% [markdown]
# # 08 · MixMatch, FixMatch and S4L: three ways to learn from unlabelled images
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/08_mixmatch_fixmatch_s4l.ipynb)
#
# **What you will learn**
# - why predictions on unlabelled data help at all: the decision boundary should not cut through
#   dense regions (entropy minimisation, consistency), shown on a 2-D toy problem;
# - MixMatch's recipe: guess a label from several augmentations, sharpen it, and MixUp labelled
#   and unlabelled images together;
# - FixMatch's recipe: a confident prediction on a weakly augmented image becomes the hard label of
#   a strongly augmented copy, and how many such pseudo-labels pass the threshold (and are right)
#   during training;
# - S4L: a self-supervised task (which way is up?) trained on all images next to the supervised one;
# - how the three compare with the supervised baseline under the same labels and budget.

# %% [markdown]
# **Time budget**: Run All on one CPU thread took 12 min (measured, whole notebook), where the notebook
# trains the `tiny` backbone: the four trainings (supervised, MixMatch, FixMatch, S4L) of
# `CPU_EPOCHS = 4` epochs each on a 10 000-image subset take 11 of them. `FULL_BUDGET = True` in
# the data cell trains them for the full `BUDGET_EPOCHS = 10` epochs on every image: about 17 min on a
# laptop GPU (an estimate from the FLOPs of a training step), about 3.5 hours on one CPU thread
# (measured: the README and `benchmarks/RESULTS.md`). The full budget is in epochs, so a slower
# machine with `FULL_BUDGET = True` takes longer but reaches the same numbers (the course's shipped
# reference runs are much shorter: each figure's caption says how long).
#
# To read through the notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run (see the
# README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (data pipeline, augmentations, the supervised baseline)
# and `02_pretext_tasks` (rotation prediction, which S4L reuses). Softmax and cross-entropy should
# feel familiar. This notebook lays the semi-supervised foundations (consistency, pseudo-labels,
# sharpening, MixUp) that the rest of Part II builds on.
#
# **Recap** of notebooks 00 and 02, which this one builds on (answers:
# [`notebooks/solutions/ANSWERS_07_11.md`, section
# 08](solutions/ANSWERS_07_11.md#08-mixmatch-fixmatch-and-s4l)):
# 1. What do the weak and the strong augmentations of notebook 00 do?
# 2. What does RotNet's head predict, and what does that ask of the features?
# 3. Why does the supervised network with 250 labels overfit, and what can unlabelled images add?

# %% [markdown]
# ## Set-up
# `SMOKE` is true when the environment variable `SSL_COURSE_SMOKE=1` is set: every cell then runs
# on a small subset for a few steps, a quick check that the notebook runs from top to bottom (its
# numbers mean nothing). Leave it unset when you learn.

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
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ssl_course import claims, config, reference
from ssl_course.data import beta_sample, cifar10_available, make_bundle
from ssl_course.data.augment import normalize
from ssl_course.evaluate import extract_features
from ssl_course.exercises import check_fixmatch_mask, check_mixup
from ssl_course.experiment import run_methods
from ssl_course.losses import (
    fixmatch_loss,
    mixmatch_guess_labels,
    mixmatch_loss,
    mixup,
    rotate_batch,
    s4l_loss,
    sharpen,
)
from ssl_course.methods import build_method
from ssl_course.notebook import CPU_SUBSET, SMOKE_SUBSET
from ssl_course.results import load_trained
from ssl_course.viz import (
    image_grid,
    interactive_plot,
    load_run_history,
    plot_tsne,
    print_reference_results,
    reference_history,
    small_multiples,
    to_display,
)

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
print(f"device: {DEVICE}; smoke mode: {SMOKE}; mode: {config.mode()}")

# %% [markdown]
# ## Intuition: the boundary should run through empty space
# Two half-moons, 600 points, and only **three labels per moon**. A classifier trained on the six
# labelled points draws *some* boundary between them, often straight through a moon. The
# unlabelled points show where the data is; two ideas use them:
#
# - **entropy minimisation** (Grandvalet & Bengio 2005): also minimise the entropy of the
#   prediction on every unlabelled point, i.e. ask the model to be confident there. A boundary in
#   a dense region makes many points uncertain, so it is pushed out;
# - **consistency**: two slightly perturbed copies of an unlabelled point should get the same
#   prediction. Near a boundary a small perturbation flips the prediction, so again the boundary
#   moves to where there are few points.
#
# MixMatch sharpens its guesses (an implicit entropy minimisation) and asks for consistency across
# augmentations; FixMatch uses confident hard labels (entropy minimisation in its bluntest form)
# on strongly perturbed copies (consistency). The toy below trains the same small MLP three ways.

# %%
from sklearn.datasets import make_moons

moon_points, moon_classes = make_moons(n_samples=600, noise=0.08, random_state=0)
moon_points = torch.tensor((moon_points - moon_points.mean(0)) / moon_points.std(0), dtype=torch.float32)
moon_classes = torch.tensor(moon_classes)
pick = torch.Generator().manual_seed(0)
moon_labeled = torch.cat([(moon_classes == c).nonzero()[torch.randperm(int((moon_classes == c).sum()),
                                                                      generator=pick)[:3], 0] for c in (0, 1)])


def entropy_term(net, generator):
    """Mean entropy of the predictions on all (unlabelled) points."""
    p = torch.softmax(net(moon_points), dim=1)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()


def consistency_term(net, generator, noise=0.15):
    """Squared difference between the predictions on two noisy copies (the first one is the target)."""
    with torch.no_grad():
        target = torch.softmax(net(moon_points + noise * torch.randn(moon_points.shape, generator=generator)), 1)
    prediction = torch.softmax(net(moon_points + noise * torch.randn(moon_points.shape, generator=generator)), 1)
    return ((prediction - target) ** 2).sum(1).mean()


def train_toy(extra=None, weight=0.0, steps=500):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        loss = F.cross_entropy(net(moon_points[moon_labeled]), moon_classes[moon_labeled])
        if extra is not None:
            loss = loss + min(1.0, step / 100) * weight * extra(net, generator)   # ramped up, as MixMatch does
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (net(moon_points).argmax(1) == moon_classes).float().mean().item()
    return net, accuracy


toy_runs = {"supervised only (6 labels)": train_toy(),
            "+ entropy minimisation": train_toy(entropy_term, weight=1.0),
            "+ consistency": train_toy(consistency_term, weight=10.0)}

axis_values = torch.linspace(-2.5, 2.5, 150)
grid = torch.stack(torch.meshgrid(axis_values, axis_values, indexing="xy"), -1).reshape(-1, 2)
figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
for axis, (title, (net, accuracy)) in zip(axes, toy_runs.items()):
    with torch.no_grad():
        probability = torch.softmax(net(grid), 1)[:, 1].reshape(150, 150)
    axis.contourf(axis_values, axis_values, probability, levels=20, cmap="RdBu", alpha=0.45)
    axis.contour(axis_values, axis_values, probability, levels=[0.5], colors="k", linewidths=2)
    axis.scatter(moon_points[:, 0], moon_points[:, 1], s=4, color="0.4")
    axis.scatter(moon_points[moon_labeled, 0], moon_points[moon_labeled, 1], c=moon_classes[moon_labeled],
                 cmap="RdBu", s=140, edgecolors="k", vmin=0, vmax=1)
    axis.set(title=f"{title}\naccuracy on all points {accuracy:.3f}", xticks=[], yticks=[])
plt.show()
for title, (_, accuracy) in toy_runs.items():
    print(f"{title:<28} accuracy on all 600 points: {accuracy:.3f}")

# %% [markdown]
# What to look for: the black line is the decision boundary, big dots are the six labels, grey
# dots the unlabelled points. Does the boundary cut a moon in the left panel? Does an unlabelled
# term move it into the gap between the moons? Entropy minimisation can also lock in an early,
# wrong boundary (it makes the model confident wherever it already is); that is the
# *confirmation bias* that FixMatch's high threshold and MixMatch's soft guesses try to limit.

# %% [markdown]
# ## The formulas
# Notation: a labelled batch $\mathcal{X} = \{(x_b, y_b)\}_{b=1}^{B}$, an unlabelled batch
# $\mathcal{U} = \{u_b\}_{b=1}^{\mu B}$ ($\mu$ unlabelled images per labelled one), $C$ classes, a
# network $f$ that outputs logits $z = f(x) \in \mathbb{R}^C$, $\operatorname{softmax}(z)_k =
# e^{z_k} / \sum_j e^{z_j}$, and $H(p, q) = -\sum_k p_k \log q_k$ the cross-entropy.
# $\alpha(\cdot)$ is a weak augmentation (pad-crop + flip), $\mathcal{A}(\cdot)$ a strong one
# (RandAugment + Cutout).
#
# **FixMatch** (Sohn et al. 2020). For each unlabelled image, $q_b = \operatorname{softmax}(f(\alpha(u_b)))$
# is the prediction on the weak view and $\hat y_b = \arg\max_k q_{bk}$ its hard pseudo-label:
#
# $$\ell_u = \frac{1}{\mu B} \sum_{b=1}^{\mu B} \mathbb{1}\big[\max_k q_{bk} \ge \gamma\big]\;
#   H\big(\hat y_b, \operatorname{softmax}(f(\mathcal{A}(u_b)))\big), \qquad
#   \mathcal{L} = \ell_s + \lambda_u \ell_u$$
#
# with $\gamma = 0.95$ the **confidence threshold**, the top probability a pseudo-label needs (the
# paper's $\tau$; the course keeps $\tau$ for temperatures), $\lambda_u = 1$, $\ell_s$ the
# cross-entropy of the
# weak labelled views, and no gradient through $q_b$. The sum runs over **all** $\mu B$ images,
# also those that did not pass: the loss grows as more images pass.
#
# **MixMatch** (Berthelot et al. 2019). Guess a label from $n_a$ weak views, then sharpen it with a
# temperature $T$:
#
# $$\bar q_b = \frac{1}{n_a}\sum_{a=1}^{n_a} \operatorname{softmax}\big(f(\alpha_a(u_b))\big), \qquad
#   \operatorname{Sharpen}(\bar q_b, T)_c = \frac{\bar q_{bc}^{1/T}}{\sum_{j=1}^{C} \bar q_{bj}^{1/T}}$$
#
# MixUp each (image, label vector) pair with a partner drawn from the shuffled union of both
# batches, with $\lambda \sim \operatorname{Beta}(\alpha, \alpha)$, $\alpha = 0.75$:
#
# $$\lambda' = \max(\lambda, 1 - \lambda), \qquad x' = \lambda' x_1 + (1 - \lambda') x_2, \qquad
#   p' = \lambda' p_1 + (1 - \lambda') p_2$$
#
# ($\lambda' \ge 0.5$ keeps every mixed image closer to its first image, so mixed labelled rows
# still count as labelled). The loss on the mixed labelled set $\mathcal{X}'$ and unlabelled set
# $\mathcal{U}'$:
#
# $$\mathcal{L}_X = \frac{1}{|\mathcal{X}'|}\sum_{(x,p)\in\mathcal{X}'} H\big(p, \operatorname{softmax}(f(x))\big), \qquad
#   \mathcal{L}_U = \frac{1}{C\,|\mathcal{U}'|}\sum_{(u,q)\in\mathcal{U}'} \big\lVert q - \operatorname{softmax}(f(u)) \big\rVert_2^2, \qquad
#   \mathcal{L} = \mathcal{L}_X + \lambda_U \mathcal{L}_U$$
#
# with $\lambda_U = 75$ on CIFAR-10 after a **ramp-up**: the weight grows linearly from 0 over the
# paper's first 16 000 steps, while the guesses are still close to random. The squared error is bounded,
# so a wrong guess costs less than it would under cross-entropy.
#
# **S4L-Rotation** (Zhai et al. 2019). With $\operatorname{rot}_r$ a rotation by $r \cdot 90°$ and
# a second, 4-way head $g$ on the same features:
#
# $$\mathcal{L} = \frac{1}{B}\sum_{b} H\big(y_b, \operatorname{softmax}(f(\alpha(x_b)))\big)
#   + w\,\frac{1}{4N}\sum_{n=1}^{N}\sum_{r=0}^{3} H\big(r, \operatorname{softmax}(g(\operatorname{rot}_r(\alpha(v_n))))\big)$$
#
# where $v_1, \dots, v_N$ are the labelled **and** unlabelled images of the step and $w = 1$.

# %% [markdown]
# ## The formulas, literally
# First with explicit loops over samples and classes, as written above; then vectorised; then
# compared with the library on random inputs in float64.

# %%
def softmax_row(z):
    exps = [torch.exp(z[k] - z.max()) for k in range(len(z))]
    total = sum(exps)
    return [e / total for e in exps]


def fixmatch_loss_loop(logits_weak, logits_strong, threshold):
    n, num_classes = logits_weak.shape
    loss = 0.0
    for b in range(n):
        q = softmax_row(logits_weak[b])
        best = max(range(num_classes), key=lambda k: q[k])          # hard pseudo-label
        if q[best] >= threshold:                                           # the confidence mask
            log_p = logits_strong[b][best] - torch.log(sum(torch.exp(logits_strong[b][k]) for k in range(num_classes)))
            loss = loss - log_p
    return loss / n                                                  # mean over ALL samples


def fixmatch_loss_vectorised(logits_weak, logits_strong, threshold):
    confidence, pseudo = torch.softmax(logits_weak, 1).max(1)
    mask = (confidence >= threshold).to(logits_strong.dtype)
    return (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()


def mixup_loop(x1, p1, x2, p2, lam):
    mixed_x, mixed_p = torch.empty_like(x1), torch.empty_like(p1)
    for b in range(len(x1)):
        lam_prime = max(float(lam[b]), 1 - float(lam[b]))
        mixed_x[b] = lam_prime * x1[b] + (1 - lam_prime) * x2[b]
        mixed_p[b] = lam_prime * p1[b] + (1 - lam_prime) * p2[b]
    return mixed_x, mixed_p


def mixmatch_loss_loop(logits_x, targets_x, logits_u, targets_u, lambda_u):
    loss_x = 0.0
    for b in range(len(logits_x)):
        log_norm = torch.log(sum(torch.exp(z) for z in logits_x[b]))
        loss_x = loss_x - sum(targets_x[b, k] * (logits_x[b, k] - log_norm) for k in range(logits_x.shape[1]))
    loss_x = loss_x / len(logits_x)
    loss_u = 0.0
    for b in range(len(logits_u)):
        prediction = softmax_row(logits_u[b])
        loss_u = loss_u + sum((targets_u[b, k] - prediction[k]) ** 2 for k in range(logits_u.shape[1]))
    loss_u = loss_u / (len(logits_u) * logits_u.shape[1])
    return loss_x + lambda_u * loss_u, loss_x, loss_u


rng = torch.Generator().manual_seed(0)
for trial in range(3):
    n, num_classes = 6 + trial, 4 + trial
    weak = torch.randn(n, num_classes, generator=rng, dtype=torch.float64) * 3
    strong = torch.randn(n, num_classes, generator=rng, dtype=torch.float64)
    library, mask, _ = fixmatch_loss(weak, strong, threshold=0.8)
    torch.testing.assert_close(fixmatch_loss_loop(weak, strong, 0.8), library)
    torch.testing.assert_close(fixmatch_loss_vectorised(weak, strong, 0.8), library)

    x1, x2 = torch.randn(2, n, 3, 4, 4, generator=rng, dtype=torch.float64)
    p1 = F.one_hot(torch.randint(num_classes, (n,), generator=rng), num_classes).double()
    p2 = torch.softmax(torch.randn(n, num_classes, generator=rng, dtype=torch.float64), 1)
    lam = torch.rand(n, generator=rng, dtype=torch.float64)
    for mine, theirs in zip(mixup_loop(x1, p1, x2, p2, lam), mixup(x1, p1, x2, p2, lam)):
        torch.testing.assert_close(mine, theirs)

    logits_x, logits_u = torch.randn(2, n, num_classes, generator=rng, dtype=torch.float64)
    targets_u = sharpen(torch.softmax(torch.randn(n, num_classes, generator=rng, dtype=torch.float64), 1), 0.5)
    for mine, theirs in zip(mixmatch_loss_loop(logits_x, p2, logits_u, targets_u, 75.0),
                            mixmatch_loss(logits_x, p2, logits_u, targets_u, lambda_u=75.0)):
        torch.testing.assert_close(mine, theirs)
    print(f"trial {trial}: loops, vectorised and library agree (FixMatch: {int(mask.sum())} of {n} passed)")

# %% [markdown]
# ## MixUp, seen
# Two training images of different classes, mixed with a few values of $\lambda$. Note that
# $\lambda = 0.2$ and $\lambda = 0.8$ give the same $\lambda' = 0.8$: MixMatch's variant never lets
# the partner dominate. The label vector is mixed with the same weight as the pixels.

# %%
DATA = "cifar10" if cifar10_available() else "synthetic"
FULL_BUDGET = False   # True: every training image for BUDGET_EPOCHS epochs, as on a GPU (~3.5 h on one CPU thread)
# Run All on a CPU (FULL_BUDGET = False) trains on a 10 000-image subset for CPU_EPOCHS epochs:
# the four trainings below take about 15-17 min on one thread. Present mode shows the course's reference runs, recorded on every image. Runs resume
# from runs/: delete this notebook's folders there before switching FULL_BUDGET.
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
SUBSET = dict(SMOKE_SUBSET) if SMOKE else dict(CPU_SUBSET) if CPU_RUN and DATA == "cifar10" else {}
NUM_LABELS = 100 if SMOKE else 250
data = make_bundle(DATA, num_labels=NUM_LABELS, seed=0, device=DEVICE, **SUBSET)
print(data)

first = int((data.train_labels == 0).nonzero()[0])
second = int((data.train_labels == 1).nonzero()[0])
pair = normalize(data.train_images[[first, second]])
labels_pair = F.one_hot(data.train_labels[[first, second]], data.num_classes).float()
lambdas = [1.0, 0.9, 0.75, 0.6, 0.5, 0.2]
figure, axes = plt.subplots(2, len(lambdas), figsize=(2.2 * len(lambdas), 4.4))
for column, lam in enumerate(lambdas):
    mixed_image, mixed_label = mixup(pair[:1], labels_pair[:1], pair[1:], labels_pair[1:], lam)
    axes[0, column].imshow(to_display(mixed_image)[0], interpolation="nearest")
    axes[0, column].set(title=f"λ={lam}, λ'={max(lam, 1 - lam)}", xticks=[], yticks=[])
    axes[1, column].bar(range(data.num_classes), mixed_label[0].cpu().numpy())
    axes[1, column].set(ylim=(0, 1), xticks=range(data.num_classes))
    axes[1, column].set_xticklabels(data.class_names, rotation=90, fontsize=7)
figure.suptitle(f"MixUp of a '{data.class_names[0]}' and a '{data.class_names[1]}': image and label vector")
figure.tight_layout()
plt.show()

draws = beta_sample(0.75, 20_000, torch.Generator().manual_seed(0), "cpu")
figure, axis = plt.subplots(figsize=(6, 2.8))
axis.hist(draws.numpy(), bins=50, alpha=0.6, label="λ ~ Beta(0.75, 0.75)")
axis.hist(torch.maximum(draws, 1 - draws).numpy(), bins=50, alpha=0.6, label="λ' = max(λ, 1-λ)")
axis.set(xlabel="mixing weight", ylabel="count")
axis.legend()
plt.show()
print(f"mean λ' = {torch.maximum(draws, 1 - draws).mean():.3f}: on average a mixed image keeps about that much of its own row")

# %% [markdown]
# **What to look for**: in the top row the first image fades into the second as λ falls, and the label
# bars below split between the two classes with the same weights. In the histogram, λ piles up near 0
# and 1, while λ' = max(λ, 1 − λ) never goes below 0.5.

# %% [markdown]
# ## Label guessing and sharpening
# MixMatch predicts each unlabelled image under $n_a = 2$ augmentations, averages the two
# distributions and sharpens the average. The bars below are made-up predictions (random logits
# with a fixed seed), so you can see the arithmetic; move the slider to change $T$. $T = 1$ keeps
# the average, $T \to 0$ approaches a one-hot vector at the arg-max, $T > 1$ flattens it.

# %%
example_logits = torch.randn(2, 1, data.num_classes, generator=torch.Generator().manual_seed(3)) * 1.5  # [n_a, N, C]


def show_guess(T=0.5):
    views = torch.softmax(example_logits[:, 0], dim=1)
    average = views.mean(0, keepdim=True)
    guessed = mixmatch_guess_labels(example_logits, T=T)        # average, then sharpen
    torch.testing.assert_close(guessed, sharpen(average, T))
    panels = [("view 1", views[0]), ("view 2", views[1]), ("average", average[0]), (f"sharpened, T={T:.2f}", guessed[0])]
    figure, axes = plt.subplots(1, 4, figsize=(14, 2.8), sharey=True)
    for axis, (title, values) in zip(axes, panels):
        axis.bar(range(data.num_classes), values.numpy())
        axis.set(title=f"{title} (max {values.max():.2f})", ylim=(0, 1), xticks=range(data.num_classes),
                 xlabel="class", ylabel="probability")
    plt.show()


interactive_plot(show_guess, T=(0.1, 2.0, 0.05, 0.5))

# %% [markdown]
# **What to look for**: the average of the two views is flatter than either view; sharpening with T < 1 makes it peakier without moving its arg-max, and T = 1 leaves it unchanged. Without a kernel: the sharpened guess for four temperatures.

# %%
def draw_guess(axis, T):
    guessed = mixmatch_guess_labels(example_logits, T=T)[0]
    axis.bar(range(data.num_classes), guessed.numpy())
    axis.set(title=f"T = {T}: max {guessed.max():.2f}", ylim=(0, 1), xticks=range(data.num_classes),
             xlabel="class", ylabel="sharpened guess")


small_multiples(draw_guess, T=(0.1, 0.5, 1.0, 2.0), title="MixMatch's guessed label, sharpened with temperature T")
plt.show()

# %% [markdown]
# **What to look for**: the tallest bar stays on the same class for every T; the smaller T, the closer
# the guess to one-hot (T = 0.1) and the larger, the flatter (T = 2).

# %% [markdown]
# ## Rotation as an auxiliary task (S4L)
# `rotate_batch` returns every image under the four rotations and the rotation index as label.
# Predicting it needs no human label, so S4L trains it on labelled and unlabelled images alike.
# It only teaches something if images have a canonical "up": photos do; a circle or a
# checkerboard does not.

# %%
rotated, rotation_labels = rotate_batch(data.train_images[:3])
order = torch.arange(12).reshape(4, 3).T.reshape(-1)  # show image by image: 0°, 90°, 180°, 270°
image_grid(rotated[order], nrow=4, titles=[f"{90 * int(r)}°" for r in rotation_labels[order]],
           suptitle="three training images under the four rotations (labels 0-3)")
plt.show()

# %% [markdown]
# **What to look for**: each row is one image under 0°, 90°, 180° and 270°; only the first copy is
# upright. S4L's rotation head must say which, on labelled and unlabelled images alike.

# %% [markdown]
# **S4L-Rotation's loss, with loops.** With class logits of the labelled images, rotation logits
# of all $R$ rotated (labelled and unlabelled) images and a weight $w$:
# $$\mathcal{L} = \frac{1}{N_l}\sum_{i=1}^{N_l} -\log \operatorname{softmax}(f_c(x_i))_{y_i}
#   + w\,\frac{1}{R}\sum_{r=1}^{R} -\log \operatorname{softmax}(f_r(\operatorname{rot}_{a_r} x_r))_{a_r}.$$
# One row at a time, in float64, against `ssl_course.losses.s4l_loss`:

# %%
def cross_entropy_loop(logits, targets):
    total = 0.0
    for row, target in zip(logits.tolist(), targets.tolist()):
        log_normaliser = math.log(sum(math.exp(v) for v in row))
        total += -(row[target] - log_normaliser)
    return total / len(logits)


def s4l_loss_loop(class_logits, labels, rotation_logits, rotation_labels, weight):
    classification = cross_entropy_loop(class_logits, labels)
    rotation = cross_entropy_loop(rotation_logits, rotation_labels)
    return classification + weight * rotation, classification, rotation


gen = torch.Generator().manual_seed(1)
class_logits = torch.randn(6, 10, generator=gen, dtype=torch.float64)           # [N_l, C]
class_labels = torch.randint(10, (6,), generator=gen)
rotation_logits = torch.randn(4 * 9, 4, generator=gen, dtype=torch.float64)     # [R, 4]: 9 images × 4 angles
rotation_targets = torch.arange(4).repeat_interleave(9)                         # rotation-major, like rotate_batch
looped = s4l_loss_loop(class_logits, class_labels, rotation_logits, rotation_targets, 0.5)
library = s4l_loss(class_logits, class_labels, rotation_logits, rotation_targets, rotation_weight=0.5)
torch.testing.assert_close(torch.stack(library), torch.tensor(looped, dtype=torch.float64))
# gradients too: the library's loss and the loop written with torch ops must agree
for tensor in (class_logits, rotation_logits):
    tensor.requires_grad_(True)
library_total = s4l_loss(class_logits, class_labels, rotation_logits, rotation_targets, rotation_weight=0.5)[0]
torch_loop_total = (torch.stack([-torch.log_softmax(r, 0)[t] for r, t in zip(class_logits, class_labels)]).mean()
                    + 0.5 * torch.stack([-torch.log_softmax(r, 0)[t]
                                         for r, t in zip(rotation_logits, rotation_targets)]).mean())
grads_library = torch.autograd.grad(library_total, (class_logits, rotation_logits))
grads_loop = torch.autograd.grad(torch_loop_total, (class_logits, rotation_logits))
for a, b in zip(grads_library, grads_loop):
    torch.testing.assert_close(a, b)
print(f"S4L-Rotation loss, loop == library (values and gradients): total {looped[0]:.4f} = "
      f"classification {looped[1]:.4f} + 0.5 × rotation {looped[2]:.4f} (chance level of the rotation term: log 4 = "
      f"{math.log(4):.4f})")

# %% [markdown]
# ### S4L-Exemplar: the other self-supervised task of S4L
# S4L's second variant replaces rotation by Exemplar (notebook 03): every labelled and unlabelled
# image is shown as $n_a = 8$ heavily augmented copies, and an embedding head must keep the copies of
# one image closer to each other than to any copy of another image. With L2-normalised embeddings
# $\hat e$, Euclidean distances $d$, and for each anchor $a$ its farthest copy $p$ and the nearest
# copy $n$ of another image, the batch-hard soft-margin triplet loss (S4L, Section 3.2) is
# $$\mathcal{T} = \frac{1}{M}\sum_{a=1}^{M}\log\big(1 + \exp(d_{ap} - d_{an})\big),\qquad
#   \mathcal{L} = \mathcal{L}_{\text{class}} + w\,\tfrac12\big(\mathcal{T}_{\text{unlabelled}} + \mathcal{T}_{\text{labelled}}\big)$$
# with $w = 1$ and the class loss on every copy of the labelled images. It is registered as
# `s4l_exemplar` (`s4l` is S4L-Rotation); the cell below checks the library loss against a loop.
# Swap `"s4l"` for `"s4l_exemplar"` in `METHODS` below to train it (8 copies make a step about
# twice as costly as S4L-Rotation's 4 rotations).

# %%
from ssl_course.losses import s4l_exemplar_loss


def triplet_literal(embeddings, image_of):
    total = 0.0
    for a in range(len(embeddings)):
        distances = [torch.dist(embeddings[a], embeddings[b]) for b in range(len(embeddings))]
        positive = max(d for b, d in enumerate(distances) if b != a and image_of[b] == image_of[a])
        negative = min(d for b, d in enumerate(distances) if image_of[b] != image_of[a])
        total = total + F.softplus(positive - negative)
    return total / len(embeddings)


gen = torch.Generator().manual_seed(0)
logits, labels = torch.randn(3, 8, 10, dtype=torch.float64, generator=gen), torch.tensor([1, 4, 7])
emb_l, emb_u = (torch.randn(n, 8, 16, dtype=torch.float64, generator=gen) for n in (3, 5))


def group(embeddings):
    return triplet_literal(F.normalize(embeddings, dim=-1).flatten(0, 1), torch.arange(len(embeddings)).repeat_interleave(8))


expected = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(8)) + 0.5 * (group(emb_u) + group(emb_l))
torch.testing.assert_close(s4l_exemplar_loss(logits, labels, emb_l, emb_u)[0], expected)
print(f"S4L-Exemplar loss, loop == library: {expected.item():.4f}")

# %% [markdown]
# ## Training: supervised vs MixMatch vs FixMatch vs S4L
# The same split (`NUM_LABELS` labels, seed 0), backbone and budget in epochs for each method,
# with each method's own default batch size, optimiser and learning rate (see the method files
# in `ssl_course/methods/`). Runs are saved under `runs/`; running the cell again reloads them.
# On a CPU the cell trains the `tiny` backbone, on a GPU the `small` one.
#
# - MixMatch: 64 labelled + 64 unlabelled images per step (×2 views), AdamW, $\lambda_U$ ramped
#   over the first 1/16 of the budget;
# - FixMatch: 64 labelled + 448 unlabelled (weak + strong) per step, SGD;
# - S4L: 128 labelled + 128 unlabelled per step, each under four rotations, SGD;
# - MixMatch and FixMatch are evaluated with an exponential moving average of their weights, as
#   in the official code.
#
# Smoke mode uses the tiny backbone, 30 steps and small batches: its numbers mean nothing.

# %%
BUDGET_EPOCHS = 10   # per method, on every image (GPU, or FULL_BUDGET = True); fractions such as 0.5 work
CPU_EPOCHS = 4       # per method, on the CPU's 10 000-image subset (FULL_BUDGET = False)
EPOCHS = CPU_EPOCHS if CPU_RUN else BUDGET_EPOCHS   # smoke mode stops after 30 steps instead
# Expected time: about 17 min on a laptop GPU (4 runs of 10 epochs), an estimate from the FLOPs of
# a training step. CPU, one thread, tiny backbone, 9000 training images (the subset minus validation):
# the four trainings of 4 epochs took 11 min in all, measured (supervised 41 s, FixMatch 88 s, MixMatch
# 143 s, S4L 399 s; benchmarks/RESULTS.md, 'CPU "Run All", measured end to end'); every
# image for 10 epochs is five times the images and 2.5 times the epochs (the README measured 3.5 h).
METHODS = ("supervised", "mixmatch", "fixmatch", "s4l")
SMOKE_BATCH = {"supervised": 64, "mixmatch": 32, "fixmatch": 64, "s4l": 16}
BACKBONE = reference.notebook_backbone("08", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
SETTINGS = dict(batch_sizes=SMOKE_BATCH if SMOKE else None, data=DATA, labels=NUM_LABELS, backbone=BACKBONE,
                epochs=EPOCHS, steps=30 if SMOKE else None, **SUBSET)
# the t-SNE below needs the trained FixMatch and baseline networks: only their reference runs keep weights
results, run_dirs = run_methods(("supervised", "fixmatch"), "08", reference_weights=True, **SETTINGS)
more_results, more_run_dirs = run_methods(("mixmatch", "s4l"), "08", **SETTINGS)
results, run_dirs = {**results, **more_results}, {**run_dirs, **more_run_dirs}

# %%
baseline = results["supervised"]["test_accuracy"]
figure, axis = plt.subplots(figsize=(6, 3.2))
accuracies = [results[name]["test_accuracy"] for name in METHODS]
axis.bar(METHODS, accuracies, color=["0.6", "tab:blue", "tab:orange", "tab:green"])
axis.axhline(baseline, color="k", linestyle="--", linewidth=1, label="supervised baseline")
axis.axhline(1 / data.num_classes, color="r", linestyle=":", linewidth=1, label="chance")
axis.set(ylabel="test accuracy", ylim=(0, 1), title=f"{DATA}, {NUM_LABELS} labels, same budget")
axis.legend()
plt.show()
print_reference_results({name: run_dirs[name] for name in METHODS})
for name in METHODS[1:]:   # judged on the validation split; the bars above show the test split
    difference = results[name]["val_accuracy"] - results["supervised"]["val_accuracy"]
    print(f"{name:>9} vs supervised, validation accuracy: {difference:+.3f} "
          f"({'better' if difference > 0 else 'not better'} in this run)")
print(f"your budget: {EPOCHS:g} epochs of {len(data.train_images)} training images, backbone '{BACKBONE}', "
      f"{NUM_LABELS} labels")

# %% [markdown]
# **What to look for**: the bars are each method's test accuracy from its own classifier (MixMatch and
# FixMatch with their moving-average weights); the dashed line is the baseline's. At this short budget
# a method may not clear the baseline; the printed validation differences, not the bars, decide the
# claims below. A bar at the red chance line means a broken run.

# %% [markdown]
# **How far is this from the papers?** On CIFAR-10 with 250 labels and a WRN-28-2, FixMatch
# reaches 94.93 % after $2^{20}$ training steps (Sohn et al. 2020, abstract and Table 2) and
# MixMatch about 89 % (11 % error; Berthelot et al. 2019, abstract). With the engine's epoch
# (notebook 00) and FixMatch's primary batch of 448 unlabelled images, $2^{20}$ steps are about
# 10 000 epochs of the 45 000 training images; your run has `BUDGET_EPOCHS`.

# %% [markdown]
# ### What this comparison should show, and what the course's reference run shows
# The cell below prints each claim this notebook makes about the training above, judged on the
# **validation** split (the test split is never used to decide anything): the course's reference
# run (same cell, recorded on a CPU; its budget is printed with it, and a second seed where two
# methods are compared), then your own run. When a claim from the papers cannot show at the
# course's budget, it says so and gives what was measured instead.

# %%
claims.show("08", results);

# %% [markdown]
# ## How many pseudo-labels pass, and how many are right?
# FixMatch logs, every few steps, the fraction of unlabelled images whose weak-view confidence
# passed $\gamma$ (`mask_rate`) and the fraction that passed **and** matched the hidden true label
# (`pseudo_correct_rate`); their ratio is the accuracy of the pseudo-labels that were used.
# MixMatch logs the confidence of its sharpened guesses and how often their arg-max is right.
#
# The hidden labels are read **only for these plots**. The methods never put them in a loss
# (shuffling them would leave every loss unchanged); a real learner would not have them.

# %%
histories = {name: load_run_history(run_dirs[name]) for name in METHODS}
fixmatch_logs, mixmatch_logs = histories["fixmatch"]["logs"], histories["mixmatch"]["logs"]
mask_rate = np.array(fixmatch_logs["mask_rate"])
correct_rate = np.array(fixmatch_logs["pseudo_correct_rate"])
passing_accuracy = np.divide(correct_rate, mask_rate, out=np.full_like(mask_rate, np.nan), where=mask_rate > 0)

figure, axes = plt.subplots(1, 2, figsize=(13, 4.2))
steps = histories["fixmatch"]["step"]
axes[0].plot(steps, mask_rate, label="passed the threshold (mask rate)")
axes[0].plot(steps, passing_accuracy, marker=".", label="accuracy of those that passed (gap: none passed)")
axes[0].plot(steps, fixmatch_logs["pseudo_acc_all"], label="accuracy of all arg-max guesses", linestyle="--")
axes[0].set(xlabel="step", ylabel="fraction", ylim=(0, 1), title="FixMatch pseudo-labels (τ = 0.95)")
axes[1].plot(histories["mixmatch"]["step"], mixmatch_logs["guess_confidence"], label="mean max of the sharpened guess")
axes[1].plot(histories["mixmatch"]["step"], mixmatch_logs["guess_acc"], label="accuracy of the guess's arg-max")
axes[1].set(xlabel="step", ylabel="fraction", ylim=(0, 1), title="MixMatch guessed labels (T = 0.5)")
captions = []
for axis, name, key in ((axes[0], "fixmatch", "mask_rate"), (axes[1], "mixmatch", "guess_acc")):
    shipped, caption = reference_history(run_dirs[name])   # the course's reference run, dashed (learn mode)
    if shipped is not None:
        axis.plot(shipped["step"][len(shipped["step"]) - len(shipped["logs"][key]):], shipped["logs"][key],
                  color="gray", linestyle=":", linewidth=1.5, label=f"{key}, reference run")
    captions += [f"{name}: {caption}"] if caption else []
    axis.legend(fontsize=9)
if captions:
    figure.suptitle("\n".join(captions), fontsize=10)
figure.tight_layout()
plt.show()
final_passing = passing_accuracy[-1]
print(f"FixMatch, last logged steps: {mask_rate[-1]:.1%} of unlabelled images passed; "
      + (f"{final_passing:.1%} of those were right" if np.isfinite(final_passing) else "none passed, so none were used")
      + f"; {fixmatch_logs['pseudo_acc_all'][-1]:.1%} of all guesses were right.")
rotation_accuracy = histories["s4l"]["logs"]["rotation_acc"][-1]
print(f"S4L rotation head, last logged steps: {rotation_accuracy:.1%} of rotations predicted right (chance 25%).")

# %% [markdown]
# What to look for: early in training almost nothing passes FixMatch's 0.95 threshold, so the
# unlabelled loss is zero and FixMatch is a supervised learner with an expensive batch; as the
# network gets confident the mask rate climbs. Are the passing pseudo-labels more accurate than
# the arg-max guesses overall? That gap is what the threshold buys. On the synthetic data many
# shapes look the same after a quarter turn (circles, rings, checkerboards; horizontal stripes
# become vertical stripes, another class), so S4L's rotation head cannot do much better than
# chance there; on CIFAR-10 photos it can.

# %% [markdown]
# ## The learned features
# A t-SNE of the test images' features, from the FixMatch model (its moving-average weights)
# and from the supervised baseline. Compact, separated colour clusters mean the features separate
# the classes; t-SNE keeps neighbourhoods, not distances.

# %%
def trained(name):
    return load_trained(build_method(name, BACKBONE, data.num_classes), run_dirs[name], DEVICE)


figure, axes = plt.subplots(1, 2, figsize=(11, 5))
for axis, name in zip(axes, ("fixmatch", "supervised")):
    features = extract_features(trained(name).embed, data.test_images)
    plot_tsne(features, data.test_labels, data.class_names, axis=axis, legend=name == "fixmatch",
              max_points=500 if SMOKE else 2000,
              title=f"{name}: test accuracy {results[name]['test_accuracy']:.3f}")
plt.show()

# %% [markdown]
# **What to look for**: FixMatch's panel should show class clusters at least as compact as the
# baseline's; where the two models confuse classes (cat and dog, car and truck), their clusters touch.
# A single blob coloured at random means features that ignore the content.

# %% [markdown]
# ## Take-aways
# - All three methods add a term on unlabelled images to plain cross-entropy: MixMatch a squared
#   error to sharpened, averaged guesses on MixUp'ed inputs; FixMatch a cross-entropy to hard,
#   confident pseudo-labels across weak/strong augmentation; S4L a label-free rotation task.
# - Read the comparison above for what it is: one seed, one split, a few minutes. The papers
#   train for about a million steps; over a short budget FixMatch's unlabelled term is inactive
#   until predictions cross 0.95, and MixMatch's ramp and moving average need time too.
#
# **Pitfalls and conventions**
# - FixMatch averages the masked loss over **all** $\mu B$ unlabelled images (official code and the
#   PyTorch port), not only over the confident ones; dividing by the number that passed gives
#   huge gradients from the first few pseudo-labels.
# - A low threshold lets wrong pseudo-labels in and the model then trains on its own mistakes
#   (confirmation bias); a threshold that nothing reaches makes the method supervised.

# %% [markdown]
# - MixMatch's $\lambda' = \max(\lambda, 1-\lambda)$; the official code draws $\lambda$ per sample, the
#   paper's pseudo-code once per batch. Forgetting the ramp-up of $\lambda_U = 75$ lets random
#   early guesses dominate.
# - Batch norm: the official TensorFlow code interleaves labelled and unlabelled rows across
#   forward passes so that each BN batch is representative; the course runs one concatenated
#   forward pass, which has the same effect on one device.
# - Both official codes evaluate an exponential moving average of the weights (decay 0.999); our
#   average warms up its decay because our runs are short (`EmaCopy` in `ssl_course/methods/fixmatch.py`).
# - Rotation prediction only helps when orientation is meaningful, and a class head that must
#   give rotated copies the same label fights the rotation head.
#
# ## Exercises
# Solutions are in `notebooks/solutions/semi_supervised_solutions.py`; answers to the questions
# in `notebooks/solutions/ANSWERS_07_11.md` (notebook 08); try first.
#
# **1. FixMatch's mask.** Write `my_fixmatch_mask(logits_weak, threshold)` returning a float
# tensor `[N]` with 1.0 where the largest softmax probability of a row is at least `threshold`.

# %%
def my_fixmatch_mask(logits_weak, threshold=0.95):
    # 1. class probabilities of each row  2. the largest one  3. compare with the threshold
    raise NotImplementedError("replace this line with your code")


check_fixmatch_mask(my_fixmatch_mask);

# %% [markdown]
# **2. MixMatch's MixUp.** Write `my_mixup(x1, p1, x2, p2, lam)` returning `(mixed_x, mixed_p)`,
# where `lam` is a number (use $\lambda' = \max(\lambda, 1-\lambda)$ and the same weight for
# inputs and label vectors; inputs may be feature rows `[N, D]` or images `[N, 3, H, W]`).

# %%
def my_mixup(x1, p1, x2, p2, lam):
    # 1. λ' = max(λ, 1 − λ)  2. mix the inputs  3. mix the label vectors with the same λ'
    raise NotImplementedError("replace this line with your code")


check_mixup(my_mixup);

# %% [markdown]
# **3. The threshold.** Train FixMatch again with a threshold of 0.7, in its own run folder:
# `run_methods({"fixmatch": {"threshold": 0.7}}, "08_t07", **SETTINGS)` (the settings of the cell above),
# and plot the mask rate and the accuracy of the passing pseudo-labels next to the 0.95 run. Which
# curve rises faster, and which one is more often right? Does the test accuracy follow?
#
# **4. Think: what passes $\gamma = 0.95$?** An untrained 10-class network gives logits that are
# almost equal. Suppose the largest logit exceeds the nine others, all equal, by a margin $m$. How
# large must $m$ be for the prediction to pass the threshold? What does that say about the first
# steps of a FixMatch run?
#
# **5. Think: epochs for a semi-supervised method.** FixMatch's primary batch is its 448
# unlabelled images, with 64 labelled images on top. On the 45 000 training images, how many steps
# is one epoch, and how many times is each of 250 labelled images drawn in 10 epochs? Compare with
# the supervised baseline (batch 128 labelled images) at the same 10 epochs.

# %% [markdown]
# ## References
# - D. Berthelot, N. Carlini, I. Goodfellow, N. Papernot, A. Oliver, C. Raffel, *MixMatch: A
#   Holistic Approach to Semi-Supervised Learning*, NeurIPS 2019. Code:
#   https://github.com/google-research/mixmatch
# - K. Sohn, D. Berthelot, C.-L. Li, Z. Zhang, N. Carlini, E. D. Cubuk, A. Kurakin, H. Zhang,
#   C. Raffel, *FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence*,
#   NeurIPS 2020. Code: https://github.com/google-research/fixmatch (PyTorch port:
#   https://github.com/kekmodel/FixMatch-pytorch)
# - X. Zhai, A. Oliver, A. Kolesnikov, L. Beyer, *S4L: Self-Supervised Semi-Supervised Learning*,
#   ICCV 2019. Code: https://github.com/google-research/s4l
# - Y. Grandvalet, Y. Bengio, *Semi-supervised Learning by Entropy Minimization*, NeurIPS 2004
#   (published 2005).
# - H. Zhang, M. Cisse, Y. N. Dauphin, D. Lopez-Paz, *mixup: Beyond Empirical Risk Minimization*,
#   ICLR 2018.
# - S. Gidaris, P. Singh, N. Komodakis, *Unsupervised Representation Learning by Predicting Image
#   Rotations*, ICLR 2018 (the rotation task).

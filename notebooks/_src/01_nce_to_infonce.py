# %% [markdown]
# # 01 · From noise-contrastive estimation to InfoNCE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/01_nce_to_infonce.ipynb)
#
# **What you will learn**
# - how noise-contrastive estimation (NCE) fits an *unnormalised* model by logistic regression
#   against samples from a known noise distribution, and why it recovers the normalising constant
#   that maximum likelihood cannot touch;
# - how InfoNCE turns "data or noise?" into "which of these $N$ candidates is the real one?", the
#   $(K{+}1)$-way classification behind CPC, MoCo and SimCLR;
# - what the temperature does to that classification;
# - why the InfoNCE loss bounds mutual information from below, and why the bound can never exceed
#   $\log N$ however good the critic is.
#
# **Time budget**: everything here is a small 1-D to 6-D toy problem, so a GPU does not help and the
# notebook runs on the CPU either way: under a minute of computing on a laptop with or without a
# GPU, plus reading time.
#
# Looking through the course without training (`SSL_COURSE_MODE=present`, see the README) changes
# nothing here: this notebook trains no network on images, only the toys, so it runs as it is.
#
# **Prerequisites**: notebook `00_setup_and_data` (the course's set-up), logistic regression and
# the softmax cross-entropy, and what a probability density is.
#
# **Recap** of the maths this notebook builds on (answers: [`notebooks/solutions/ANSWERS.md`,
# section 01](solutions/ANSWERS.md#01-from-nce-to-infonce)):
# 1. What is a probability density, and why must it integrate to 1?
# 2. Logistic regression: what does the sigmoid of the logit give, and which loss fits it?
# 3. What is the softmax cross-entropy of logits $\ell_1, \dots, \ell_K$ for the true class $y$?

# %% [markdown]
# ## Set-up
# Every tensor in this notebook is tiny, so it runs on the CPU on purpose: moving a few thousand
# numbers to a GPU costs more than computing with them. For the same reason PyTorch gets one
# thread: on arrays this small, splitting work between threads costs more than it saves.

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
from torch import nn

from ssl_course import config
from ssl_course.exercises import check_info_nce, check_nce_loss
from ssl_course.losses import info_nce
from ssl_course.viz import interactive_plot, small_multiples

SMOKE = config.smoke()
DEVICE = torch.device("cpu")   # toy problems: see above
torch.set_num_threads(1)
config.seed_everything(0)
NOTEBOOK_START = time.perf_counter()
print(f"torch {torch.__version__} · smoke mode: {SMOKE} · course mode: {config.mode()} · toys run on {DEVICE} "
      f"(best device here: {config.pick_device()})")

# %% [markdown]
# ## Intuition: learn a density by telling it apart from noise
# Below, blue is a sample from a density we pretend not to know; orange is a sample from a wider
# "noise" density that we chose ourselves, so we can evaluate it anywhere. There are $\nu = 5$
# noise points for every data point. Now ask: *given a point $u$, is it data or noise?* The best
# possible answer is $P(\text{data}\mid u) = \dfrac{p_d(u)}{p_d(u) + \nu\,p_n(u)}$ (black curve).
# Since we know $p_n$ and $\nu$, a classifier that gets this probability right has learned $p_d$.
# That is the whole idea of NCE.

# %%
TRUE_MEAN, TRUE_STD = 1.5, 0.6          # the "unknown" data density N(1.5, 0.6²)
NOISE_MEAN, NOISE_STD = 0.0, 2.5        # the noise density we pick: wider, covers the data
NU = 5                                  # noise samples per data sample
NUM_DATA = 2000

data_dist = torch.distributions.Normal(torch.tensor(TRUE_MEAN, dtype=torch.float64), torch.tensor(TRUE_STD, dtype=torch.float64))
noise_dist = torch.distributions.Normal(torch.tensor(NOISE_MEAN, dtype=torch.float64), torch.tensor(NOISE_STD, dtype=torch.float64))
generator = torch.Generator().manual_seed(0)
x_data = TRUE_MEAN + TRUE_STD * torch.randn(NUM_DATA, generator=generator, dtype=torch.float64)
y_noise = NOISE_MEAN + NOISE_STD * torch.randn(NU * NUM_DATA, generator=generator, dtype=torch.float64)

u = torch.linspace(-7, 7, 400, dtype=torch.float64)
posterior = data_dist.log_prob(u).exp() / (data_dist.log_prob(u).exp() + NU * noise_dist.log_prob(u).exp())
figure, axis = plt.subplots(figsize=(9, 3.8))
axis.hist(y_noise.numpy(), bins=80, density=True, alpha=0.5, color="tab:orange", label=f"noise y ~ p_n ({NU}× as many)")
axis.hist(x_data.numpy(), bins=60, density=True, alpha=0.6, color="tab:blue", label="data x ~ p_d")
twin = axis.twinx()
twin.plot(u.numpy(), posterior.numpy(), color="black", label="P(data | u), the best classifier")
twin.set(ylim=(0, 1.05), ylabel="P(data | u)")
axis.set(xlabel="u", ylabel="density", title="NCE: a classifier between data and noise")
axis.legend(loc="upper left")
twin.legend(loc="upper right")
plt.show()

# %% [markdown]
# **What to look for**: the black curve is near 1 where blue (data) dominates, around u = 1.5, and
# near 0 in the tails, where only orange (noise) lives. It never reaches 1 because, with five noise
# points per data point, noise is present everywhere.

# %% [markdown]
# ## The NCE loss
# **Model.** An *unnormalised* Gaussian with a free log-normaliser:
# $$\log p_m(u;\theta) = -\frac{(u-\mu)^2}{2\sigma^2} + c,\qquad \theta = (\mu,\ \log\sigma,\ c).$$
# For a proper density $c$ would have to equal $c^\star(\sigma) = -\log(\sigma\sqrt{2\pi})$; here $c$ is just
# another parameter. Maximum likelihood cannot learn it: raising $c$ raises the likelihood of every
# data point, forever.
#
# **Classifier.** With $N$ data samples $x_i \sim p_d$, $M = \nu N$ noise samples $y_j \sim p_n$, and the
# log-ratio
# $$G(u;\theta) = \log p_m(u;\theta) - \log p_n(u),$$
# the model's guess that $u$ is data is
# $$h(u;\theta) = \frac{p_m(u;\theta)}{p_m(u;\theta) + \nu\,p_n(u)} = \sigma\big(G(u;\theta) - \log\nu\big),$$
# with $\sigma(a) = 1/(1+e^{-a})$ the logistic function: the prior odds data : noise are $1:\nu$.
#
# **Loss** (the negative of Gutmann & Hyvärinen's objective $J_T$, normalised by $N$):
# $$\mathcal{L}_{\text{NCE}}(\theta) = -\frac{1}{N}\Big[\sum_{i=1}^{N}\log h(x_i;\theta) + \sum_{j=1}^{M}\log\big(1 - h(y_j;\theta)\big)\Big].$$
# This is the cross-entropy of logistic regression with logit $G - \log\nu$. Gutmann & Hyvärinen
# show that its minimiser satisfies $p_m(\,\cdot\,;\hat\theta) \to p_d$ as $N\to\infty$: the classifier can only be
# optimal if $p_m$ is the data density, *normalisation included*, because $p_n$ is normalised and
# the comparison is against it.

# %% [markdown]
# ### Literal, vectorised, and as a library logistic regression
# First one sample at a time, straight from the formula; then on whole tensors; then through
# PyTorch's own binary cross-entropy with logits, which says "NCE is logistic regression" in code.

# %%
def log_model(u, mean, log_std, c):
    """log p_m(u; θ) of the unnormalised Gaussian."""
    return -0.5 * ((u - mean) / log_std.exp()) ** 2 + c


def nce_loss_literal(x, y, mean, log_std, c, noise):
    nu = len(y) / len(x)
    total = 0.0
    for x_i in x:                                   # data points should be called "data"
        g = log_model(x_i, mean, log_std, c) - noise.log_prob(x_i)
        total = total + torch.log(torch.sigmoid(g - math.log(nu)))
    for y_j in y:                                   # noise points should be called "noise"
        g = log_model(y_j, mean, log_std, c) - noise.log_prob(y_j)
        total = total + torch.log(1 - torch.sigmoid(g - math.log(nu)))
    return -total / len(x)


def nce_loss_vectorised(x, y, mean, log_std, c, noise):
    log_nu = math.log(len(y) / len(x))
    logit_data = log_model(x, mean, log_std, c) - noise.log_prob(x) - log_nu
    logit_noise = log_model(y, mean, log_std, c) - noise.log_prob(y) - log_nu
    # log σ(a) and log(1 - σ(a)) = log σ(-a), computed stably
    return -(F.logsigmoid(logit_data).sum() + F.logsigmoid(-logit_noise).sum()) / len(x)


def nce_loss_bce(x, y, mean, log_std, c, noise):
    log_nu = math.log(len(y) / len(x))
    logits = torch.cat([log_model(x, mean, log_std, c) - noise.log_prob(x),
                        log_model(y, mean, log_std, c) - noise.log_prob(y)]) - log_nu
    labels = torch.cat([torch.ones_like(x), torch.zeros_like(y)])      # 1 = data, 0 = noise
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(x)


check_gen = torch.Generator().manual_seed(1)
for trial in range(3):
    theta = [torch.randn((), generator=check_gen, dtype=torch.float64) for _ in range(3)]
    x_small, y_small = x_data[:20 + trial], y_noise[:(20 + trial) * (trial + 1)]
    literal = nce_loss_literal(x_small, y_small, *theta, noise_dist)
    vectorised = nce_loss_vectorised(x_small, y_small, *theta, noise_dist)
    torch.testing.assert_close(vectorised, literal)
    torch.testing.assert_close(nce_loss_bce(x_small, y_small, *theta, noise_dist), literal)
print(f"literal loop == vectorised == BCE-with-logits on 3 random inputs (float64); last value {literal.item():.6f}")

# %% [markdown]
# ### Train it and read off the normalising constant
# Adam on the full sample. Watch $c$: nothing in the model ties it to $\sigma$, yet it should end near
# $-\log(\hat\sigma\sqrt{2\pi})$.

# %%
def fit_nce(x, y, noise, steps, lr=0.05, record=False):
    mean = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_std = torch.zeros((), dtype=torch.float64, requires_grad=True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([mean, log_std, c], lr=lr)
    trace = []
    for _ in range(steps):
        loss = nce_loss_vectorised(x, y, mean, log_std, c, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if record:
            trace.append((loss.item(), mean.item(), log_std.exp().item(), c.item()))
    return mean.detach(), log_std.detach().exp(), c.detach(), trace


NCE_STEPS = 300 if SMOKE else 800
mean_hat, std_hat, c_hat, trace = fit_nce(x_data, y_noise, noise_dist, NCE_STEPS, record=True)
c_true = -math.log(TRUE_STD * math.sqrt(2 * math.pi))
print(f"{'':>16}{'recovered':>12}{'true':>10}")
print(f"{'mean μ':>16}{mean_hat.item():>12.3f}{TRUE_MEAN:>10.3f}")
print(f"{'std σ':>16}{std_hat.item():>12.3f}{TRUE_STD:>10.3f}")
print(f"{'log-normaliser c':>16}{c_hat.item():>12.3f}{c_true:>10.3f}")
print(f"c that would normalise the *fitted* σ: {-math.log(std_hat.item() * math.sqrt(2 * math.pi)):.3f} "
      f"(compare with the learned c = {c_hat.item():.3f})")
area = torch.trapezoid(log_model(u, mean_hat, std_hat.log(), c_hat).exp(), u).item()
print(f"∫ p_m(u) du of the learned, never explicitly normalised model: {area:.3f} (a density integrates to 1)")

# %%
losses, means, stds, cs = zip(*trace)
figure, axes = plt.subplots(1, 3, figsize=(11.5, 3.8))  # no wider: Lab would shrink it
axes[0].plot(losses)
axes[0].set(xlabel="Adam step", ylabel="NCE loss", title="training")
axes[1].plot(cs, label="learned c")
axes[1].axhline(c_true, color="black", linestyle="--", label="true log-normaliser")
axes[1].plot(means, label="learned μ")
axes[1].axhline(TRUE_MEAN, color="gray", linestyle=":", label="true μ")
axes[1].set(xlabel="Adam step", ylabel="parameter value", title="parameters")
axes[1].legend()
axes[2].plot(u.numpy(), data_dist.log_prob(u).exp().numpy(), color="black", label="true p_d")
axes[2].plot(u.numpy(), log_model(u, mean_hat, std_hat.log(), c_hat).exp().numpy(), "--", color="tab:red",
             label="exp(log p_m) learned by NCE")
axes[2].plot(u.numpy(), noise_dist.log_prob(u).exp().numpy(), color="tab:orange", alpha=0.6, label="noise p_n")
axes[2].set(xlabel="u", ylabel="density", title="densities", xlim=(-5, 6), ylim=(0, 1.0))
axes[2].legend(loc="upper left")  # above the noise curve, clear of the peak
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: the NCE loss falls and levels off; the learned c settles near the dashed line
# and the learned μ near the dotted one; the red dashed density lies on the black one. A c that keeps
# drifting means the noise density does not cover the data.

# %% [markdown]
# ### More noise, better estimates
# Gutmann & Hyvärinen show that the estimator's variance falls as $\nu$ grows, towards that of
# maximum likelihood. Below, the same fit is repeated on fresh samples for a few values of $\nu$;
# the spread of the error in $c$ should shrink from left to right.

# %%
NUS = (1, 4, 16)
REPEATS = 3 if SMOKE else 8
spread = {}
for nu in NUS:
    errors = []
    for repeat in range(REPEATS):
        gen = torch.Generator().manual_seed(100 + repeat)
        x_rep = TRUE_MEAN + TRUE_STD * torch.randn(200, generator=gen, dtype=torch.float64)
        y_rep = NOISE_MEAN + NOISE_STD * torch.randn(200 * nu, generator=gen, dtype=torch.float64)
        _, _, c_rep, _ = fit_nce(x_rep, y_rep, noise_dist, NCE_STEPS)
        errors.append(c_rep.item() - c_true)
    spread[nu] = torch.tensor(errors)
    print(f"ν = {nu:>2}: error in c over {REPEATS} data sets of 200 points: mean {spread[nu].mean():+.3f}, "
          f"std {spread[nu].std():.3f}")
figure, axis = plt.subplots(figsize=(5, 3))
axis.boxplot([spread[nu].numpy() for nu in NUS])
axis.set_xticks(range(1, len(NUS) + 1), [str(nu) for nu in NUS])
axis.axhline(0, color="black", linewidth=0.8)
axis.set(xlabel="ν (noise samples per data sample)", ylabel="c − c*", title="NCE estimate of the log-normaliser")
plt.show()

# %% [markdown]
# **What to look for**: the boxes narrow from ν = 1 to ν = 16 and stay centred near 0: more noise
# samples give a less noisy estimate of the normaliser, not a different one.

# %% [markdown]
# ## InfoNCE: from "data or noise?" to "which one is real?"
# NCE classifies one point at a time. InfoNCE (van den Oord et al. 2018) hands the classifier a
# *set* and asks which one belongs with a context: one **positive**, the candidate drawn together
# with the context (for images: another view of the same image), and $K$ **negatives**, candidates
# drawn independently of it (other images) that the loss must tell apart from the positive. In
# MoCo's words (He et al. 2020) it is a dictionary
# look-up: a query $q$ must find its key $k^+$ among the keys $\{k^+, k_1, \dots, k_K\}$.
#
# $$\mathcal{L}_{\text{InfoNCE}} = -\frac{1}{B}\sum_{i=1}^{B}\log
#   \frac{\exp(q_i^\top k_i^+/\tau)}{\exp(q_i^\top k_i^+/\tau) + \sum_{j=1}^{K}\exp(q_i^\top k_j/\tau)}$$
#
# - $q_i \in \mathbb{R}^D$: the query (an embedding of one view, or CPC's context); $B$ queries in a batch;
# - $k_i^+$: its positive key (an embedding of another view of the same image, or the real future);
# - $k_1,\dots,k_K$: $K$ negative keys shared by all queries (MoCo, notebook 04, keeps them from
#   earlier batches); $N = K+1$ candidates;
# - $\tau > 0$: the temperature; in `ssl_course.losses.info_nce` all vectors are L2-normalised first,
#   so $q^\top k$ is a cosine similarity.
#
# It is the softmax cross-entropy of an $N$-way classifier whose right answer is always the positive.
# The score $q^\top k/\tau$ plays the role of NCE's $G$: for a critic flexible enough to reach the
# optimum, it equals $\log\frac{p(k\mid q)}{p(k)}$ up to a term that does not depend on $k$.

# %%
def info_nce_literal(query, positive_key, negative_keys, temperature):
    total = 0.0
    for q, k_pos in zip(query, positive_key):
        q, k_pos = q / q.norm(), k_pos / k_pos.norm()
        positive = torch.exp(q @ k_pos / temperature)
        denominator = positive
        for k_neg in negative_keys:
            denominator = denominator + torch.exp(q @ (k_neg / k_neg.norm()) / temperature)
        total = total - torch.log(positive / denominator)
    return total / len(query)


def info_nce_vectorised(query, positive_key, negative_keys, temperature):
    q, k_pos, k_neg = (F.normalize(t, dim=1) for t in (query, positive_key, negative_keys))
    logits = torch.cat([(q * k_pos).sum(1, keepdim=True), q @ k_neg.T], dim=1) / temperature  # [B, 1+K]
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))                     # positive = column 0


check_gen = torch.Generator().manual_seed(2)
for batch, dim, num_negatives, temperature in [(4, 8, 16, 0.1), (7, 3, 5, 0.5), (2, 32, 64, 1.0)]:
    q = torch.randn(batch, dim, generator=check_gen, dtype=torch.float64)
    k_pos = q + 0.5 * torch.randn(batch, dim, generator=check_gen, dtype=torch.float64)
    k_neg = torch.randn(num_negatives, dim, generator=check_gen, dtype=torch.float64)
    literal = info_nce_literal(q, k_pos, k_neg, temperature)
    torch.testing.assert_close(info_nce_vectorised(q, k_pos, k_neg, temperature), literal)
    torch.testing.assert_close(info_nce(q, k_pos, k_neg, temperature), literal)
print("literal loop == vectorised == ssl_course.losses.info_nce on 3 random inputs (float64)")

# %% [markdown]
# ### What the temperature does
# Fix one query's cosine similarities to its positive (green) and to nine negatives. The softmax over
# them is the classifier's belief; the loss is $-\log$ of the green bar. A small $\tau$ makes the
# softmax peaked, so that the hardest negatives (the tall grey bars) dominate the gradient; a large
# $\tau$
# spreads it over all of them. Move the slider (without a running kernel it draws once with
# $\tau = 0.2$); the row of panels below it shows four temperatures side by side.

# %%
SIMILARITIES = torch.tensor([0.70, 0.82, 0.55, 0.40, 0.31, 0.20, 0.05, -0.10, -0.30, -0.55])  # [positive, 9 negatives]


def draw_softmax(axis, temperature):
    probabilities = torch.softmax(SIMILARITIES / temperature, dim=0)
    colours = ["tab:green"] + ["tab:gray"] * (len(SIMILARITIES) - 1)
    axis.bar(range(len(SIMILARITIES)), probabilities.numpy(), color=colours)
    axis.set(title=f"τ = {temperature:.2f}: loss = {-probabilities[0].log().item():.3f}", ylim=(0, 1),
             xticks=[], xlabel="candidates (green: positive)", ylabel="softmax probability")


def show_softmax(temperature):
    figure, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    colours = ["tab:green"] + ["tab:gray"] * (len(SIMILARITIES) - 1)
    axes[0].bar(range(len(SIMILARITIES)), SIMILARITIES.numpy(), color=colours)
    axes[0].set(title="cosine similarities", xticks=[], xlabel="candidates (green: positive)",
                ylabel="cosine similarity")
    draw_softmax(axes[1], temperature)
    figure.tight_layout()
    plt.show()


interactive_plot(show_softmax, temperature=(0.02, 2.0, 0.01, 0.2))

# %%
small_multiples(draw_softmax, panel_size=(3.4, 2.8), temperature=[0.05, 0.2, 0.5, 2.0])
plt.show()

# %% [markdown]
# **What to look for**: one negative here is *more* similar to the query than the positive (a
# **hard negative**: a negative that already looks like the query, e.g. an image of the same class).
# At small $\tau$ the loss is dominated by pushing it away; at large $\tau$
# all candidates look alike and the loss tends to $\log N$ whatever the similarities are.

# %% [markdown]
# ## InfoNCE bounds mutual information, but never above $\log N$
# For pairs $(x, y) \sim p(x, y)$, a critic $f(x, y)$, and batches of $N$ pairs in which each $x_i$
# must pick its own $y_i$ out of the $N$ candidates $y_1, \dots, y_N$,
# $$\mathcal{L}_N = -\,\mathbb{E}\Big[\frac{1}{N}\sum_{i=1}^{N}\log\frac{e^{f(x_i, y_i)}}{\sum_{j=1}^{N} e^{f(x_i, y_j)}}\Big],
# \qquad I(X; Y) \;\ge\; \log N - \mathcal{L}_N$$
# (van den Oord et al. 2018; proved carefully by Poole et al. 2019). Two consequences:
# since $\mathcal{L}_N \ge 0$, the estimate $\log N - \mathcal{L}_N$ can never exceed $\log N$: to certify
# a lot of information you need many negatives; and a weak critic only loosens the bound.
#
# **A toy with a known answer.** $x, y \in \mathbb{R}^d$ Gaussian, each coordinate pair correlated with
# coefficient $\rho$ and independent of the others: $I(X;Y) = -\tfrac{d}{2}\log(1-\rho^2)$ nats.
# The critic is separable, $f(x, y) = g(x)^\top h(y)$ with two small MLPs, trained with exactly this
# loss at batch size $N$; then the bound is estimated on fresh batches of the same size.

# %%
DIM, RHO = 3, 0.9
TRUE_MI = -0.5 * DIM * math.log(1 - RHO ** 2)
print(f"true mutual information: {TRUE_MI:.3f} nats")


def correlated_pairs(count, generator):
    x = torch.randn(count, DIM, generator=generator)
    y = RHO * x + math.sqrt(1 - RHO ** 2) * torch.randn(count, DIM, generator=generator)
    return x, y


class SeparableCritic(nn.Module):
    def __init__(self, dim, hidden=64, out=32):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))
        self.h = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x, y):
        return self.g(x) @ self.h(y).T        # [N, N] scores f(x_i, y_j)


def infonce_from_scores(scores):
    return F.cross_entropy(scores, torch.arange(len(scores)))       # the positive of row i is column i


BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
CRITIC_STEPS = 25 if SMOKE else 600
estimates = {}
torch.manual_seed(0)
for n in BATCH_SIZES:
    critic = SeparableCritic(DIM)
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(n)
    for _ in range(CRITIC_STEPS):
        x, y = correlated_pairs(n, gen)
        loss = infonce_from_scores(critic(x, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # the bound, averaged over fresh batches of the same size
        losses = [infonce_from_scores(critic(*correlated_pairs(n, gen))) for _ in range(50)]
        estimates[n] = math.log(n) - torch.stack(losses).mean().item()
    print(f"N = {n:>3}: InfoNCE estimate {estimates[n]:.3f} nats   (ceiling log N = {math.log(n):.3f}, "
          f"true {TRUE_MI:.3f})")

# %%
figure, axis = plt.subplots(figsize=(6, 3.5))
ns = list(BATCH_SIZES)
axis.plot(ns, [estimates[n] for n in ns], marker="o", label="InfoNCE estimate log N − L_N")
axis.plot(ns, [math.log(n) for n in ns], linestyle="--", color="gray", label="ceiling log N")
axis.axhline(TRUE_MI, color="black", label=f"true I(X;Y) = {TRUE_MI:.2f}")
axis.set(xscale="log", xlabel="N = K + 1 candidates per query (batch size)", ylabel="nats",
         title="the InfoNCE bound on a Gaussian pair")
axis.set_xticks(ns, [str(n) for n in ns])
axis.legend()
plt.show()
print(f"largest estimate: {max(estimates.values()):.3f} nats at N = {max(estimates, key=estimates.get)}; "
      f"every estimate ≤ log N: {all(estimates[n] <= math.log(n) + 1e-6 for n in ns)}")

# %% [markdown]
# What to look for: for small $N$ the estimate sits under the $\log N$ line and far below the true
# value, however good the critic; as $N$ grows it climbs towards the true value, always from below,
# and the gap closes slowly (roughly like $1/N$ once $\log N$ is well above the true value). In
# smoke mode the critics train for only a few steps, so the curve sits lower; the ceiling holds
# regardless. This is one reason contrastive methods like large batches or large stores of negatives:
# with $N$ candidates the objective cannot ask for more than $\log N$ nats.

# %% [markdown]
# ## Take-aways and pitfalls
# - **NCE** learns an unnormalised model by logistic regression against known noise; the
#   normaliser becomes one more parameter, and the noise must cover the data (where $p_n$ is ~0,
#   the classifier wins without learning anything about $p_d$).
# - **The $\log\nu$ term** is part of the logit; drop it and the learned $c$ is off by $\log\nu$.
#   Likewise the loss is divided by the number of *data* samples: dividing by $N+M$ only rescales
#   it, but two separate means (data mean + noise mean) change the weighting and the optimum.
# - **InfoNCE** is the $(K{+}1)$-way version: softmax cross-entropy with the positive as the right
#   class. Implementations differ in where the positive sits (column 0 in MoCo, the diagonal in
#   SimCLR/CPC), in normalisation (cosine in MoCo/SimCLR, raw dot products in CPC), and in the
#   temperature (0.07 in MoCo, 0.2 in MoCo v2, 0.5 for SimCLR on CIFAR, none in CPC).
# - **As an MI estimator** InfoNCE is biased low and capped at $\log N$; Poole et al. (2019)
#   compare it with other bounds. A better contrastive loss is not simply a tighter MI bound:
#   representations improve for reasons the bound does not capture (Tschannen et al. 2020).

# %% [markdown]
# ## Exercises
# **1. Binary NCE.** Write the loss from its formula: `log_model_data`, `log_noise_data` are
# $\log p_m(x_i)$ and $\log p_n(x_i)$ for the $N$ data samples, `log_model_noise`, `log_noise_noise` the
# same for the $M$ noise samples; $\nu = M/N$. Return a scalar tensor.

# %%
def my_nce_loss(log_model_data, log_noise_data, log_model_noise, log_noise_noise):
    nu = len(log_model_noise) / len(log_model_data)
    # YOUR CODE: the logits G - log(nu) for data and noise, then the loss divided by N
    raise NotImplementedError(f"write the binary NCE loss (here nu = M/N = {nu:g})")


check_nce_loss(my_nce_loss);

# %% [markdown]
# **2. InfoNCE as a dictionary look-up.** `query` and `positive_key` are `[N, D]`, `negative_keys` is
# `[K, D]`; normalise all three, build the `[N, 1+K]` logits with the positive in column 0, divide by
# the temperature and take the cross-entropy.

# %%
def my_info_nce(query, positive_key, negative_keys, temperature):
    # YOUR CODE
    raise NotImplementedError("write the InfoNCE loss")


check_info_nce(my_info_nce);

# %% [markdown]
# **3. Think.** Set `NU = 1` in the intuition cell and rerun the NCE fit: what happens to the
# recovered $c$ and to its spread? Then train the critic of the bound with $N = 4$ for ten times as many
# steps: can the estimate ever pass $\log 4$? Why not?
#
# Solutions: `notebooks/solutions/nce_solutions.py`. What to expect in 3, and why:
# [`notebooks/solutions/ANSWERS.md`, section 01](solutions/ANSWERS.md#01-from-nce-to-infonce).

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")

# %% [markdown]
# ## References
# - M. Gutmann, A. Hyvärinen, *Noise-contrastive estimation: A new estimation principle for
#   unnormalized statistical models*, AISTATS 2010 (and JMLR 13, 2012, for the $\nu$ analysis).
# - A. van den Oord, Y. Li, O. Vinyals, *Representation Learning with Contrastive Predictive Coding*,
#   arXiv:1807.03748, 2018 (InfoNCE and its MI bound).
# - B. Poole, S. Ozair, A. van den Oord, A. Alemi, G. Tucker, *On Variational Bounds of Mutual
#   Information*, ICML 2019.
# - K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, *Momentum Contrast for Unsupervised Visual
#   Representation Learning*, CVPR 2020 (the dictionary look-up view; code:
#   github.com/facebookresearch/moco).
# - M. Tschannen, J. Djolonga, P. Rubenstein, S. Gelly, M. Lucic, *On Mutual Information
#   Maximization for Representation Learning*, ICLR 2020.

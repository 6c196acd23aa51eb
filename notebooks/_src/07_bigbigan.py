# %% [markdown]
# # 07 · BiGAN → BigBiGAN: a representation from a generative game
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/07_bigbigan.ipynb)
#
# **What you will learn**
# - the GAN game and its optimal discriminator, and why the generator then minimises a
#   Jensen-Shannon divergence;
# - BiGAN's joint discriminator on (image, latent) pairs, and why at the optimum the encoder and
#   the generator invert each other;
# - BigBiGAN's discriminator with three parts (F on the image, H on the latent, J on both) and its
#   hinge losses, written with loops and checked against `ssl_course.losses.bigbigan_losses`;
# - what a small BigBiGAN trained on CIFAR-10 does and does not learn: samples, reconstructions,
#   the discriminator's scores, and its encoder's kNN / linear probe next to supervised training
#   and SimCLR at the same budget.

# %% [markdown]
# **Time budget**: a BigBiGAN step is expensive (two updates, each through the encoder, the generator
# and the discriminator). Run All on one CPU thread takes about 20 min: it trains BigBiGAN, SimCLR and
# the supervised baseline for `CPU_EPOCHS = 2` epochs on a 10 000-image subset with the `tiny`
# backbone (about 13 min for BigBiGAN and 1-4 min for the other two, from measured step times), enough
# to see the mechanics, not a representation. `FULL_BUDGET = True` in the data cell trains the three
# for the full `BUDGET_EPOCHS = 10` epochs on every image: about 10 minutes on a laptop GPU (estimated
# from counted FLOPs, not measured), about 5 hours on one CPU thread.
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run (see the
# README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (data and the training engine), `01_nce_to_infonce`
# (NCE: a classifier that tells data from noise, the idea a GAN's discriminator builds on),
# `04_simclr_moco` (SimCLR, the baseline we compare to).
#
# **Recap** of notebooks 01 and 04, which this one builds on (answers:
# [`notebooks/solutions/ANSWERS_07_11.md`, section
# 07](solutions/ANSWERS_07_11.md#07-bigan-and-bigbigan)):
# 1. NCE trains a classifier to tell data from noise. What does the best such classifier know about
#    the data?
# 2. A logistic classifier's binary cross-entropy, averaged over real and fake examples: what is it
#    for a perfect classifier, and for one that always says 1/2?
# 3. How did notebook 04 judge SimCLR's features with few labels?

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

from ssl_course import claims, config, reference
from ssl_course.data import cifar10_available, make_bundle
from ssl_course.data.augment import normalize
from ssl_course.evaluate import evaluate_method, extract_features
from ssl_course.experiment import run_methods
from ssl_course.losses import bigbigan_losses
from ssl_course.methods import build_method
from ssl_course.models.gan import normalized_to_unit
from ssl_course.notebook import CPU_SUBSET
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, plot_tsne, reference_history

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
plt.rcParams.update({"font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12})
print(f"device: {DEVICE} · smoke mode: {SMOKE} · mode: {config.mode()}")

# %%
DATA = "cifar10" if cifar10_available() else "synthetic"
FULL_BUDGET = False   # True: every training image for BUDGET_EPOCHS epochs, as on a GPU (~5 h on one CPU thread)
# Run All on a CPU (FULL_BUDGET = False) trains on a 10 000-image subset for CPU_EPOCHS epochs:
# about 15-17 min on one thread for the three trainings. Present mode shows the course's reference
# runs, recorded on every image. Runs resume from runs/: delete this notebook's folders there
# before switching FULL_BUDGET.
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
SUBSET = dict(train_subset=1000, test_subset=300) if SMOKE else dict(CPU_SUBSET) if CPU_RUN and DATA == "cifar10" else {}
NUM_LABELS = 100 if SMOKE else 250     # BigBiGAN never sees them; the probe and the baseline do
BACKBONE = reference.notebook_backbone("07", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
data = make_bundle(DATA, num_labels=NUM_LABELS, seed=0, device=DEVICE, **SUBSET)
print(data)

# %% [markdown]
# ## 1. The GAN game and its optimal discriminator
# A generator $G$ turns noise $z \sim p_z$ into samples $G(z)$ with some density $p_g$; a
# discriminator $D(x) \in (0, 1)$ says how likely $x$ is real. They play
#
# $$\min_G \max_D\; V(D, G) = \mathbb{E}_{x\sim p_{\text{data}}}[\log D(x)] + \mathbb{E}_{x\sim p_g}[\log(1 - D(x))].$$
#
# **The optimal discriminator.** For a fixed $G$, write $V$ as one integral,
# $V = \int p_{\text{data}}(x)\log D(x) + p_g(x)\log(1-D(x))\,dx$, and maximise the integrand
# point by point: $a\log y + b\log(1-y)$ is maximal at $y = a/(a+b)$ (set the derivative
# $a/y - b/(1-y)$ to 0). Hence
#
# $$D^*(x) = \frac{p_{\text{data}}(x)}{p_{\text{data}}(x) + p_g(x)}.$$
#
# **What G then minimises.** Put $D^*$ back and let $m = (p_{\text{data}} + p_g)/2$:
#
# $$V(D^*, G) = \mathbb{E}_{p_{\text{data}}}\Big[\log\frac{p_{\text{data}}}{2m}\Big] + \mathbb{E}_{p_g}\Big[\log\frac{p_g}{2m}\Big]
#   = -\log 4 + \mathrm{KL}(p_{\text{data}}\,\|\,m) + \mathrm{KL}(p_g\,\|\,m) = -\log 4 + 2\,\mathrm{JS}(p_{\text{data}}\,\|\,p_g).$$
#
# The Jensen-Shannon divergence is $\ge 0$ and is $0$ only when $p_g = p_{\text{data}}$: the
# generator's best move is to reproduce the data distribution, and then $D^* = 1/2$ everywhere
# (Goodfellow et al., 2014). Let us check the identity numerically on two 1-D Gaussians.

# %%
grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
step = grid[1] - grid[0]


def log_gaussian(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


# Work with log-densities: far in the tails the densities underflow to 0 and D* to exactly 0 or 1.
log_data, log_g = log_gaussian(grid, 0.0, 1.0), log_gaussian(grid, 1.5, 0.7)
log_mix = torch.logaddexp(log_data, log_g)                 # log(p_data + p_g)
p_data, p_g = log_data.exp(), log_g.exp()
d_star = torch.exp(log_data - log_mix)
value = ((p_data * (log_data - log_mix) + p_g * (log_g - log_mix)) * step).sum()     # log D*, log(1 - D*)
log_m = log_mix - math.log(2)                              # m = (p_data + p_g) / 2
js = 0.5 * ((p_data * (log_data - log_m)).sum() + (p_g * (log_g - log_m)).sum()) * step
print(f"V(D*, G) = {value:.6f},  -log 4 + 2 JS = {-math.log(4) + 2 * js:.6f}")

figure, axis = plt.subplots(figsize=(9, 4))
axis.plot(grid, p_data, label="$p_{data}$")
axis.plot(grid, p_g, label="$p_g$")
axis.plot(grid, d_star, "k--", label="$D^*(x)$")
axis.set(xlim=(-4, 5), xlabel="x", ylabel="density / probability", title="The optimal discriminator")
axis.legend(loc="upper left")
plt.show()

# %% [markdown]
# **What to look for**: the dashed D* is 1/2 exactly where the two densities cross, near 1 where only
# the data has mass and near 0 where only the generator does. The printed V(D*, G) equals −log 4 + 2
# JS: the game measures the Jensen–Shannon divergence.

# %% [markdown]
# ## 2. BiGAN: a discriminator on pairs makes E and G inverse maps
# A GAN has no way back from an image to its latent. BiGAN (Donahue, Krähenbühl and Darrell,
# ICLR 2017) and ALI (Dumoulin et al., ICLR 2017) add an **encoder** $E: x \mapsto z$ and let the
# discriminator look at **pairs**: real pairs $(x, E(x))$ with $x \sim p_{\text{data}}$, and
# generated pairs $(G(z), z)$ with $z \sim p_z$. These are samples of two joint distributions,
# $p_{EX}(x, z) = p_{\text{data}}(x)\,\delta(z - E(x))$ and $p_{GZ}(x, z) = p_z(z)\,\delta(x - G(z))$.
#
# The argument of section 1 carries over word for word with $(x, z)$ in place of $x$: the optimal
# discriminator is $p_{EX}/(p_{EX} + p_{GZ})$, and $E$ and $G$ minimise
# $\mathrm{JS}(p_{EX} \,\|\, p_{GZ})$, which is zero only when the two joint distributions are
# equal. Now read what equality means. Every real pair lies on the graph of $E$ (the set
# $\{(x, E(x))\}$), every generated pair on the graph of $G$ (the set $\{(G(z), z)\}$); equal
# distributions put their mass on the same pairs, so (almost surely) a pair $(x, z)$ on one graph
# is on the other: $z = E(x)$ and $x = G(z)$, i.e. $G(E(x)) = x$ and $E(G(z)) = z$. At the
# optimum **E inverts G**, without any reconstruction loss: E must recover whatever G needs to
# draw the image. That is why the encoder learns a representation.
#
# In practice nobody reaches the optimum: networks are finite and training stops early. Section 5
# shows what that costs.

# %% [markdown]
# ## 3. BigBiGAN: three scores and hinge losses
# BigBiGAN (Donahue and Simonyan, NeurIPS 2019) scales BiGAN up with BigGAN's networks and splits
# the discriminator into three parts:
# - $D_x(x)$ (the paper's $F$), a conv net on the image, with a unary score
#   $s_x = \theta_x^\top D_x(x)$: a plain GAN critic, which cares about sample quality;
# - $D_z(z)$ (the paper's $H$), an MLP on the latent, with a unary score $s_z = \theta_z^\top D_z(z)$:
#   it tells the prior from the encoder's outputs, pushing $E(x)$ towards $p_z$;
# - $D_{xz}(D_x(x), D_z(z))$ (the paper's $J$), an MLP on both, with the joint score
#   $s_{xz} = \theta_{xz}^\top D_{xz}$: the BiGAN term that ties each image to its latent.
#
# With the hinge $h(t) = \max(0, 1 - t)$ and $y = +1$ for real pairs, $y = -1$ for generated ones:
#
# $$\ell_D = h(y s_x) + h(y s_z) + h(y s_{xz}), \qquad \ell_{EG} = y\,(s_x + s_z + s_{xz}),$$
#
# each averaged over its batch. D minimises $\mathcal{L}_D$; E and G minimise $\mathcal{L}_{EG}$,
# which is *not* hinged, so they keep getting a gradient even from pairs D is sure about.
# A literal loop, one pair and one score at a time, checked against the library:

# %%
def bigbigan_losses_loop(real_scores, fake_scores):
    d_loss = eg_loss = 0.0
    for scores, y in ((real_scores, +1.0), (fake_scores, -1.0)):
        batch = len(scores[0])
        for i in range(batch):
            for s in scores:                       # s_x, s_z, s_xz
                d_loss = d_loss + max(0.0, 1.0 - y * float(s[i])) / batch
                eg_loss = eg_loss + y * float(s[i]) / batch
    return d_loss, eg_loss


generator = torch.Generator().manual_seed(0)
real_scores = tuple(0.5 + torch.randn(6, generator=generator, dtype=torch.float64) for _ in range(3))
fake_scores = tuple(-0.5 + torch.randn(9, generator=generator, dtype=torch.float64) for _ in range(3))
library = bigbigan_losses(real_scores, fake_scores)
loop = bigbigan_losses_loop(real_scores, fake_scores)
print(f"discriminator loss: library {library[0]:.6f} · loop {loop[0]:.6f}")
print(f"encoder-generator loss: library {library[1]:.6f} · loop {loop[1]:.6f}")
assert abs(library[0] - loop[0]) < 1e-10 and abs(library[1] - loop[1]) < 1e-10

# %% [markdown]
# ### Exercise 1: the two losses
# Write both losses yourself, vectorised (no Python loop over the batch). The checkers run them on
# six random inputs and, when they differ, name the usual mistake; until you fill them in, the stubs
# raise `NotImplementedError` and the checkers say so instead of stopping the notebook. Solutions:
# `notebooks/solutions/bigbigan_solutions.py`.

# %%
from ssl_course.exercises import check_bigbigan_discriminator_loss, check_bigbigan_encoder_generator_loss


def my_discriminator_loss(real_scores, fake_scores):
    # TODO: hinge each of the three scores, sum the parts per pair, average each batch, add.
    raise NotImplementedError("replace this line with your code")


def my_encoder_generator_loss(real_scores, fake_scores):
    # TODO: mean summed score of the real pairs minus that of the generated pairs.
    raise NotImplementedError("replace this line with your code")


check_bigbigan_discriminator_loss(my_discriminator_loss);
check_bigbigan_encoder_generator_loss(my_encoder_generator_loss);

# %% [markdown]
# ## 4. Training a small BigBiGAN
# `build_method("bigbigan", ...)` holds the encoder (the course backbone plus a head that outputs
# the mean and standard deviation of a Gaussian over $z$), a small DCGAN-style generator and the
# three-part discriminator $D_x$, $D_z$, $D_{xz}$ (`ssl_course/models/gan.py`). Each training step has two updates with two
# Adam optimisers, first D, then E and G together; `docs/RECIPES.md` lists every setting next to
# the paper's. We keep a fixed set of latents and draw $G(z)$ from them at the end of each epoch,
# to watch the samples form. The run is saved in its own folder: section 6 evaluates this same
# network beside SimCLR and the supervised baseline, and running the cell again reloads it.

# %%
BUDGET_EPOCHS = 10   # BigBiGAN, SimCLR and the baseline, on every image (GPU, or FULL_BUDGET = True)
CPU_EPOCHS = 2       # the same three on the CPU's 10 000-image subset (FULL_BUDGET = False)
EPOCHS = 2 if SMOKE else CPU_EPOCHS if CPU_RUN else BUDGET_EPOCHS   # smoke mode: 2 epochs of tiny data
# Expected time of this cell and of the comparison below:
#   laptop GPU ~ 7 min for the three methods (10 epochs, `small` backbone): estimated from counted FLOPs
#   (benchmarks/gpu_day_flops.json: BigBiGAN 2.0, SimCLR 1.4, supervised 0.7 GFLOP per image) at an
#   assumed 5 TFLOP/s, not measured;
#   CPU, one thread, `tiny` backbone, 9000 training images: a BigBiGAN step of 128 images took at most 5.6 s
#   (benchmarks/RESULTS.md "CPU step times"), 400 s per epoch, so about 13 min
#   for 2 epochs, plus 1-4 min for SimCLR and the baseline: the mechanics, not a representation.
RUN = config.runs_dir() / f"07_bigbigan_{DATA}_{NUM_LABELS}_{BACKBONE}"   # resumes from here

method = build_method("bigbigan", BACKBONE, data.num_classes)
fixed_z = torch.randn(16, method.z_dim, generator=torch.Generator().manual_seed(1)).to(DEVICE)
snapshots = []


@torch.no_grad()
def samples(z):
    was_training = method.training
    method.eval()
    images = normalized_to_unit(method.generate(z)).cpu()
    method.train(was_training)
    return images


def keep_samples(epoch, _data):
    snapshots.append((f"after {epoch + 1} epoch(s)", samples(fixed_z)))


snapshots.append(("before training", samples(fixed_z.to(next(method.parameters()).device))))
method.on_epoch_end = keep_samples          # the engine calls this hook after every epoch
history = fit(method, data, TrainConfig(epochs=EPOCHS, device=str(DEVICE), seed=0, monitor_every=0, log_every=5,
                                        out_dir=RUN, resume=True))
final_samples = samples(fixed_z)
if not torch.equal(final_samples, snapshots[-1][1]):   # a reloaded run, or one stopped within an epoch
    snapshots.append((f"at the end ({history.step[-1]} steps)", final_samples))

# %% [markdown]
# ### Samples $G(z)$ through training (the same 16 latents each time)

# %%
shown = snapshots if len(snapshots) <= 4 else [snapshots[i] for i in
                                                 torch.linspace(0, len(snapshots) - 1, 4).round().long().tolist()]
for when, images in shown:
    image_grid(images, nrow=8, scale=1.0, suptitle=f"G(z) {when}")
    plt.show()

# %% [markdown]
# **What to look for**: before training the samples are noise; after each epoch they gain colour blobs
# and then rough layouts (sky above ground). Sixteen near-identical samples are mode collapse: the
# generator found one picture that fools D.

# %% [markdown]
# ### The discriminator's three scores over training
# Each curve is a batch mean of one score on real pairs (solid) and generated pairs (dashed). A
# healthy game keeps real above generated without the gap running away; D's accuracy on the
# summed score should stay well below 1 (at 1, D has won and the gradients to E and G are
# uninformative). Where the course ships a reference run of this cell, its D accuracy is drawn
# dashed in grey beside yours.

# %%
figure, axes = plt.subplots(1, 2, figsize=(15, 4.5))
for part, colour in (("s_x", "C0"), ("s_z", "C1"), ("s_xz", "C2")):
    axes[0].plot(history.step, history.logs[f"real_{part}"], color=colour, label=f"{part} real")
    axes[0].plot(history.step, history.logs[f"fake_{part}"], color=colour, linestyle="--", label=f"{part} generated")
axes[0].set(xlabel="step", ylabel="mean score", title="Discriminator scores")
axes[0].legend(ncol=3, loc="best")
axes[1].plot(history.step, history.logs["d_accuracy"], label="D accuracy (summed score)")
axes[1].plot(history.step, history.logs["discriminator"], label="D loss")
axes[1].plot(history.step, history.logs["encoder_generator"], label="E/G loss")
shipped, caption = reference_history(RUN)
if shipped is not None:
    axes[1].plot(shipped["step"], shipped["logs"]["d_accuracy"], color="gray", linestyle="--",
                 label="reference D accuracy")
axes[1].set(xlabel="step", ylabel="loss / accuracy", title="Losses and D's accuracy")
axes[1].legend(loc="best")
if caption:
    figure.suptitle(caption, fontsize=12)
plt.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: solid (real) scores stay above dashed (generated) ones, with a gap that does
# not run away; D's accuracy hovers well below 1. An accuracy stuck at 1 means D has won and E and G
# get no useful gradient.

# %% [markdown]
# ### Reconstructions $G(E(x))$ next to $x$
# Top row: test images; bottom row: the generator's drawing of the encoder's latent (its mean).

# %%
method.eval()
test_images = data.test_images[:8]
with torch.no_grad():
    originals = normalize(test_images)
    reconstructions = normalized_to_unit(method.reconstruct(originals)).cpu()
image_grid(torch.cat([normalized_to_unit(originals).cpu(), reconstructions]), nrow=8, scale=1.2,
           suptitle="x (top) and G(E(x)) (bottom)")
plt.show()
pixel_error = (reconstructions - normalized_to_unit(originals).cpu()).abs().mean().item()
print(f"mean absolute pixel error of G(E(x)): {pixel_error:.3f} (pixels in [0, 1])")

# %% [markdown]
# **What to look for**: the bottom row should keep some of the top row's colour layout (a dark object
# on a light background, a blue band of sky), not its pixels: the printed pixel error stays large.

# %% [markdown]
# ## 5. Where a small GAN falls short
# **Reconstructions keep some semantics, not pixels.** Even BigBiGAN at ImageNet scale
# reconstructs the *kind* of image (pose, colour layout, sometimes the class), not the image:
# the game only asks the joint distributions to match, and a finite encoder-generator pair
# settles for an approximate inverse. At our budget expect at best the rough colour layout of
# each image above.
#
# **Mode collapse.** A generator can fool the discriminator with a few kinds of image. One
# symptom: samples from many different latents look alike. We measure it by the mean distance
# between pairs of samples from random latents, next to the same number for real images: a
# ratio far below 1 means the generator covers less variety than the data.

# %%
with torch.no_grad():
    z = torch.randn(256, method.z_dim, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    fake = normalized_to_unit(method.generate(z)).flatten(1).cpu()
    real = normalized_to_unit(normalize(data.test_images[:256])).flatten(1).cpu()
diversity = torch.pdist(fake).mean().item() / torch.pdist(real).mean().item()
print(f"sample diversity (mean pairwise distance, generated / real): {diversity:.2f}")
image_grid(fake[:16].view(-1, 3, 32, 32), nrow=8, scale=1.0, suptitle="16 random samples: how different are they?")
plt.show()

# %% [markdown]
# **What to look for**: sixteen different pictures; the printed diversity ratio near 1 means the
# samples vary as much as real images, a ratio well below 1 means they collapse onto a few modes.

# %% [markdown]
# ## 6. The encoder as a representation: kNN and linear probe
# The same budget for SimCLR and supervised training on the labelled subset, with `run_methods`
# (each run is saved and resumes from its folder), and the BigBiGAN trained above, evaluated the
# same way (the settings of section 4 are `run_methods`' settings, so it is not trained twice).
# The encoder's features are the pooled backbone output, the same features every method is
# evaluated on.

# %%
results, folders = run_methods(["supervised", "simclr"], tag="07", data=DATA, labels=NUM_LABELS,
                               backbone=BACKBONE, epochs=EPOCHS, device=str(DEVICE), monitor_every=0,
                               **SUBSET)
results["bigbigan"] = evaluate_method(method, data)
folders["bigbigan"] = RUN
print(f"  bigbigan: kNN (labelled bank) {results['bigbigan']['knn_accuracy']:.3f}, "
      f"linear probe {results['bigbigan']['linear_probe_accuracy']:.3f}, {history.step[-1]} steps")
for name, run in folders.items():   # the course's reference runs of the same cells, if any
    shipped = reference.load_reference(run)
    if shipped is None:
        continue
    if reference.presenting():
        print(f"{name:>10}: the numbers above are the {reference.describe(run)}")
    else:
        numbers = shipped["metrics"] or next(iter(shipped["evaluations"].values()), {})
        print(f"{name:>10}: course reference kNN {numbers.get('knn_accuracy', float('nan')):.3f}, "
              f"linear probe {numbers.get('linear_probe_accuracy', float('nan')):.3f} ({reference.describe(run)})")
figure, axis = plt.subplots(figsize=(9, 4.5))
names = list(results)
for offset, (key, label) in enumerate((("knn_accuracy", "kNN"), ("linear_probe_accuracy", "linear probe"))):
    values = [results[name].get(key, float("nan")) for name in names]
    axis.bar([i + 0.4 * offset for i in range(len(names))], values, width=0.4, label=label)
axis.set_xticks([i + 0.2 for i in range(len(names))], names)
axis.set(xlabel="method", ylabel="test accuracy", title=f"{EPOCHS:g} epochs each, {NUM_LABELS} labels")
axis.legend(loc="upper right")
plt.show()

# %% [markdown]
# **What to look for**: two bars per method on the test split: kNN whose bank is the labelled images
# only, and a linear probe fitted on those same labels. SimCLR usually leads BigBiGAN at this budget;
# bars at chance (0.1) would mean an encoder that ignores the image.

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("07", results);

# %% [markdown]
# **How far is this from the paper?** BigBiGAN's results are on ImageNet (a linear probe of a
# large RevNet encoder after hundreds of thousands of steps at batch 2048; Donahue and Simonyan,
# NeurIPS 2019), not on CIFAR-10, so there is no published number for this setting; the SimCLR
# bar is the comparison that matters here.
#
# ### t-SNE of the BigBiGAN encoder's test features

# %%
method.eval()
features = extract_features(method.embed, data.test_images)
figure, axis = plt.subplots(figsize=(8, 7))
plot_tsne(features.cpu(), data.test_labels.cpu(), data.class_names, axis=axis, title="BigBiGAN encoder (t-SNE)",
          max_points=300 if SMOKE else 2000)
plt.show()

# %% [markdown]
# **What to look for**: compared with the t-SNE panels of notebooks 04 and 12, BigBiGAN's encoder
# separates the classes less at this budget; colour-driven groups (sky, sea) are easier to see than
# classes.

# %% [markdown]
# ## Read the results honestly
# - At ImageNet scale BigBiGAN's encoder reached a linear probe close to the contrastive methods
#   of its time; it needed very large networks, batch 2048 and hundreds of thousands of steps.
#   At a laptop budget a GAN is still learning to draw, and its encoder usually trails SimCLR and
#   may not beat the supervised baseline on few labels: compare the bars above.
# - The representation comes from the generator's needs: E must keep what G needs to draw the
#   image. A weak generator asks for little, so the encoder learns little; this is the main reason
#   generative representation learning needs scale.
#
# ## Exercises
# Answers to the questions: `notebooks/solutions/ANSWERS_07_11.md` (notebook 07).
#
# 1. (Section 3) Write both losses; the checkers above name the usual mistakes.
# 2. Remove the unary scores: how would you change `bigbigan_losses` to give plain BiGAN's hinge
#    losses (joint score only)? Which part of the discriminator would then be unused?
# 3. Train with `z_dim=16` and with `z_dim=128` (`build_method("bigbigan", ..., z_dim=...)`) at a
#    short budget, give each run its own folder (a different `tag` in `run_methods`), and compare the
#    sample diversity ratio and the kNN accuracy.

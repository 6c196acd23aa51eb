# %% [markdown]
# # 02 · Pretext tasks: rotation, relative position, jigsaw puzzles, colorization and AET
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/02_pretext_tasks.ipynb)
#
# **What you will learn**
# - how a *pretext task* (a label the data gives for free) can teach a network features, through
#   four classics: predicting a rotation (RotNet), the relative position of two patches
#   (Doersch et al.), the order of shuffled tiles (jigsaw, Noroozi & Favaro) and the colours of a
#   grey image (Zhang et al.);
# - each task's loss, written with loops from its formula and checked against the library;
# - the **shortcut** each task offers (a cue that solves the task without understanding the
#   image) and how each paper closed it, shown by small experiments for three of them: chromatic
#   aberration, touching tiles and ambiguous permutation sets, plus grey L2 colours (rotation's
#   shortcut, the corners and blur that an arbitrary-angle rotation leaves, is closed by design);
# - AET, which generalises rotation: predict the parameters of any transformation from the
#   representations of an image and its transformed copy, which asks for features that change
#   with the image (equivariance) where contrastive methods ask them not to (invariance), and
#   its variational view, AVT;
# - how the four compare on CIFAR-10 with few labels (kNN and a linear probe) against a supervised
#   baseline trained for the same number of epochs, and what their features look like (t-SNE).
#
# Contrastive Predictive Coding, which also learns from patches of an image, is notebook 03.

# %% [markdown]
# **Time budget**: Run All on one CPU thread takes about 20 min, where the notebook uses a 10
# 000-image subset and the `tiny` backbone: six trainings (four pretext tasks, the supervised baseline
# and AET) of `CPU_EPOCHS = 3` epochs each take about 10 min (from measured step times), the short
# shortcut experiments a few minutes. `FULL_BUDGET = True` in the training cell gives every training
# the full `BUDGET_EPOCHS = 10` epochs: 35 min to an hour on a CPU, about 13 minutes on a laptop GPU
# (estimated from counted FLOPs, not measured on a laptop). Lower `SHORT_STEPS` to shorten the
# shortcut experiments.
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: every training cell then loads the course's reference run instead
# (see the README).

# %% [markdown]
# **Prerequisites**: `00_setup_and_data` (data, engine and its epochs, supervised baseline, the
# weighted kNN classifier). The linear probe is explained below, where it is first used.
#
# **Recap** of notebook 00, which this one builds on (answers: [`notebooks/solutions/ANSWERS.md`,
# section 02](solutions/ANSWERS.md#02-pretext-tasks)):
# 1. What is one epoch of the course's engine, in steps?
# 2. How does the weighted kNN classifier of notebook 00 classify an image?
# 3. Why is the supervised network trained on the few labels the baseline every other method must
#    beat?

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

import dataclasses
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ssl_course import claims, config, reference
from ssl_course.data import (
    ab_bin_centers,
    cifar10_available,
    hamming_distances,
    jigsaw_permutations,
    jigsaw_puzzles,
    lab_to_rgb,
    make_bundle,
    relative_position_pairs,
    rgb_to_lab,
)
from ssl_course.data.augment import normalize
from ssl_course.data.transforms_params import FAMILIES, random_transformation
from ssl_course.evaluate import evaluate_method
from ssl_course.exercises import check_aet_loss, check_colorization_loss, check_rotate_batch
from ssl_course.experiment import run_methods
from ssl_course.losses import (
    aet_loss,
    annealed_mean,
    avt_gaussian_nll,
    class_rebalancing_weights,
    colorization_loss,
    jigsaw_loss,
    relative_position_loss,
    rotate_batch,
    rotation_loss,
    soft_encode_ab,
)
from ssl_course.methods import build_method
from ssl_course.results import load_trained, save_embedding_sample, test_embedding
from ssl_course.train import TrainConfig, fit
from ssl_course.viz import image_grid, plot_tsne, to_display

SMOKE = config.smoke()
DEVICE = config.pick_device()
config.seed_everything(0)
NOTEBOOK_START = time.perf_counter()
if DEVICE.type == "cpu":
    # Small convolutions on a CPU run faster on one thread than on two that wait for each other.
    torch.set_num_threads(1)
plt.rcParams.update({"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12})

DATA = "cifar10" if cifar10_available() else "synthetic"
if SMOKE:
    SUBSET = dict(train_subset=2000, test_subset=500)
elif DEVICE.type == "cpu":
    SUBSET = dict(train_subset=10_000, test_subset=2000)
else:
    SUBSET = {}
BACKBONE = reference.notebook_backbone("02", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
LABELS = 100 if SMOKE else 250
data = make_bundle(DATA, num_labels=LABELS, seed=0, device=DEVICE, **SUBSET)
print(f"device {DEVICE} · smoke {SMOKE} · course mode {config.mode()} · {data} · backbone {BACKBONE}")


def run_dir(run_name):
    """The folder of one of this notebook's runs (its name also names the course's reference run)."""
    return config.runs_dir() / f"02_{run_name}_{DATA}_{LABELS}_{BACKBONE}{'_smoke' if SMOKE else ''}"


def short_run(name, steps, run_name, batch_size=64, lr=None, images=None, **hparams):
    """A short pretext run for the shortcut experiments: (method, pretext accuracy on held-out images)."""
    torch.manual_seed(0)
    method = build_method(name, BACKBONE, data.num_classes, **hparams)
    bundle = data if images is None else images
    # only the accuracy is used later, so the reference run keeps no weights, just that number
    fit(method, bundle, TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, seed=0, progress=False,
                                    monitor_every=0, out_dir=run_dir(run_name), resume=True,
                                    reference_weights=False))
    method.eval()
    measure = {"relative_position": "position_accuracy", "jigsaw": "jigsaw_accuracy"}[name]
    key = reference.evaluation_key(measure=measure, held_out=500)
    stored = reference.stored_evaluation(method, key)   # present mode: the reference run's number
    if stored is not None:
        return method, stored[measure]
    accuracy = getattr(method, measure)(normalize(bundle.test_images[:500]))
    reference.store_evaluation(method, key, {measure: accuracy})   # record mode: keep it for present mode
    return method, accuracy


SHORT_STEPS = 15 if SMOKE else 150   # steps of each shortcut experiment (about 10-40 s each on a CPU)

# %% [markdown]
# ## Rotation: which way is up?
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
# **What to look for**: each image appears four times, turned by 0°, 90°, 180° and 270°, with the
# label under it. The upright copy should be easy for you to pick out: that is the knowledge the
# network must acquire. Images that look the same at every angle (a flat sky) carry no signal.

# %% [markdown]
# ## The rotation loss
# With $\mathrm{rot}_k$ the counter-clockwise rotation by $k\cdot 90°$, $f_\theta$ the backbone,
# $W \in \mathbb{R}^{4\times D}$ a linear head ($D$ the feature dimension) and a batch of $B$ images $x_1,\dots,x_B$:
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


def toy_network(x):
    """A linear "backbone + head": flattened pixels times a random weight matrix."""
    return x.flatten(1) @ weights.T


toy_images = torch.randn(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
literal = rotation_loss_literal(toy_images, toy_network)
torch.testing.assert_close(rotation_loss_vectorised(toy_images, toy_network), literal)
library_images, library_labels = rotate_batch(toy_images)
torch.testing.assert_close(rotation_loss(toy_network(library_images), library_labels), literal)
print(f"literal == vectorised == rotate_batch + rotation_loss: {literal.item():.6f}")

# %% [markdown]
# **The shortcut RotNet closes by design.** Rotating by an arbitrary angle resamples the pixels
# and leaves the corners of the square empty: a network could read the angle from the empty
# corners and the interpolation blur, without looking at the object. Multiples of 90° only move
# pixels (by transposing and flipping the pixel grid), so every rotated image is as sharp and as
# full as the original, and the only cue left is the content: which way is up for this object.
# Gidaris et al. chose exactly four angles partly for this reason. (This notebook does not train on
# other angles; the experiments below show the shortcuts of the other three tasks.)
#
# One detail that breaks RotNet silently: **augment first, rotate second**. A horizontal flip
# applied *after* a 90° rotation gives the same picture as a flipped image rotated by 270°, so the
# label would depend on something the network cannot see. `ssl_course.methods.rotation` crops and
# flips, then rotates.

# %% [markdown]
# ## Relative position: where does this patch go?
# Doersch, Gupta and Efros (2015) cut a $3\times3$ grid of patches out of an image and show the
# network the centre patch and one of its 8 neighbours. The label is the neighbour's position.
# To say that a patch showing a wheel sits *below* a patch showing a car door, the network has to
# recognise wheels and doors. Below: centre (left) and neighbour (right) with the label to predict.
# On $32\times32$ images the course uses $8\times8$ patches, a 3-pixel gap and ±1 pixel of jitter
# (`docs/RECIPES.md` lists the paper's values). Such a grid fills the whole image, so each of the 8
# positions would always be cut from the same place, and a patch showing sky would be "above"
# whatever it is paired with. As the official code places its grid anywhere in the image, the
# method enlarges each image a little and cuts the grid's window at a random place
# (`grid_shift`; the figure below shows the plain centred grid).

# %%
examples = data.train_images[:6]
centre, neighbour, position = relative_position_pairs(examples, generator=torch.Generator(device=DEVICE).manual_seed(0))
names = ["↖", "↑", "↗", "←", "→", "↙", "↓", "↘"]
pairs = torch.stack([centre, neighbour], dim=1).flatten(0, 1)
titles = [t for k in position.tolist() for t in ("centre", f"label {k} {names[k]}")]
image_grid(pairs, nrow=6, titles=titles, scale=1.4, suptitle="relative_position_pairs: centre patch and its neighbour")
plt.show()

# %% [markdown]
# **What to look for**: each centre patch is followed by a neighbour, and the arrow in its label
# points from the centre to where the neighbour was cut. Gaps and jitter between patches mean that
# matching edges cannot give the answer away.

# %% [markdown]
# **The loss.** With $f$ the trunk shared by both patches and $g$ the head that reads the two
# features side by side ("late fusion"), for $M$ pairs $(x^c_m, x^n_m)$ with positions $y_m$:
# $$\mathcal{L}_{\text{pos}} = -\frac{1}{M}\sum_{m=1}^{M}\log\operatorname{softmax}\big(g([f(x^c_m), f(x^n_m)])\big)_{y_m}$$
# Below: the loop over pairs, and the library's `relative_position_loss`, on a random linear trunk.

# %%
gen = torch.Generator().manual_seed(0)
trunk = torch.randn(3 * 8 * 8, 16, dtype=torch.float64, generator=gen) * 0.1
head = torch.randn(32, 8, dtype=torch.float64, generator=gen) * 0.3
toy_centres = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=gen)
toy_neighbours = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=gen)
toy_positions = torch.randint(8, (6,), generator=gen)


def relative_position_loss_literal(centres, neighbours, positions):
    total = 0.0
    for centre_patch, neighbour_patch, y in zip(centres, neighbours, positions):
        features = torch.cat([centre_patch.flatten() @ trunk, neighbour_patch.flatten() @ trunk])  # late fusion
        logits = features @ head
        total = total - torch.log_softmax(logits, dim=0)[y]
    return total / len(centres)


literal = relative_position_loss_literal(toy_centres, toy_neighbours, toy_positions)
logits = torch.cat([toy_centres.flatten(1) @ trunk, toy_neighbours.flatten(1) @ trunk], dim=1) @ head
torch.testing.assert_close(relative_position_loss(logits, toy_positions), literal)
print(f"literal loop == relative_position_loss: {literal.item():.6f} (chance: log 8 = {torch.log(torch.tensor(8.)):.4f})")

# %% [markdown]
# **The shortcut: chromatic aberration.** Doersch et al. found their network solving the task
# without looking at objects: camera lenses focus colours slightly differently, so the offset
# between the green and the magenta channels changes across the frame and gives each patch's
# position away. CIFAR-10's tiny images hardly show the effect, so we add an exaggerated one:
# the red channel brightens from left to right and the blue channel from top to bottom. Then we
# train twice for the same few steps: once as is, once with the paper's remedy, **colour
# dropping** (each patch keeps one random channel; the other two become faint noise). Both runs
# keep the official code's other patch defences: a third of the patches blurred, and every
# patch's mean and overall contrast normalised, so brightness says nothing about the place.

# %%
rows = torch.linspace(-40, 40, 32, device=DEVICE)


def with_aberration(images):
    shifted = images.float()
    shifted[:, 0] += rows.view(1, 1, 32)          # red: left to right
    shifted[:, 2] += rows.view(1, 32, 1)          # blue: top to bottom
    return shifted.clamp(0, 255).to(torch.uint8)


aberrated = dataclasses.replace(data, train_images=with_aberration(data.train_images),
                                test_images=with_aberration(data.test_images))
results = {}
for color_drop in (False, True):
    for name, bundle in (("original", data), ("with aberration", aberrated)):
        run_name = f"shortcut_position_{'aberration' if bundle is aberrated else 'original'}_drop{int(color_drop)}"
        _, results[(name, color_drop)] = short_run("relative_position", SHORT_STEPS, run_name, images=bundle,
                                                   color_drop=color_drop)
        print(f"{name:>16}, colour dropping {'on ' if color_drop else 'off'}: position accuracy {results[(name, color_drop)]:.3f}")

# %% [markdown]
# What to look for in the four printed accuracies: without colour dropping, the aberrated images
# should make the task easier (the "with aberration, off" line above the "original, off" line):
# the network can read the colour gradient instead of the objects. With colour dropping, a single
# channel no longer tells where the patch is (every channel brightens in one direction only, and
# the network does not know which channel it got), so the two "on" lines should be close, and
# whatever the network learns there must come from the image content. One seed and a short run can
# blur these gaps; in smoke mode the runs are too short for them to show at all.
# The gap between patches and the jitter close another shortcut: lines and textures that continue
# across a boundary.

# %% [markdown]
# ## Jigsaw puzzles: which permutation shuffled the tiles?
# Noroozi and Favaro (2016) cut a $3\times3$ grid of tiles, shuffle them by one permutation of a
# fixed set of $P$, and the network, one shared trunk per tile, must name the permutation. The
# paper's main setting is $P = 1000$ permutations; its ablation of the permutation set (Table 3)
# also trains with 100. The course uses $P = 100$ (`num_permutations`), a smaller classification
# head for short runs on small images. Tiles are cut at a random place inside their cell, which
# leaves random gaps between them.

# %%
PERMUTATIONS = jigsaw_permutations(100)
tiles, puzzle_labels = jigsaw_puzzles(examples[:2], PERMUTATIONS.to(DEVICE), generator=torch.Generator(device=DEVICE).manual_seed(1))
figure, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for row in range(2):
    axes[2 * row].imshow(examples[row].permute(1, 2, 0).cpu().numpy())
    axes[2 * row].set(title="image", xticks=[], yticks=[])
    mosaic = torch.full((3, 3 * 9, 3 * 9), 255, dtype=torch.uint8)
    for index, tile in enumerate(tiles[row].cpu()):
        r, c = divmod(index, 3)
        mosaic[:, 9 * r:9 * r + 8, 9 * c:9 * c + 8] = tile
    axes[2 * row + 1].imshow(mosaic.permute(1, 2, 0).numpy())
    axes[2 * row + 1].set(title=f"puzzle: permutation {int(puzzle_labels[row])}\n{PERMUTATIONS[int(puzzle_labels[row])].tolist()}",
                          xticks=[], yticks=[])
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: the tiles of each puzzle are the image's nine tiles in the order of the
# printed permutation, with white gaps between them; reading the permutation back should restore the
# image. Gaps keep the tiles' edges from lining up, a shortcut the network would otherwise take.

# %% [markdown]
# **The loss.** With $t_{m,1..9}$ the tiles of puzzle $m$, $\pi_m$ its permutation (index $k_m$ in
# the set), $f$ the shared trunk and $g$ the head on the 9 concatenated features:
# $$\mathcal{L}_{\text{jig}} = -\frac{1}{M}\sum_{m=1}^{M}\log\operatorname{softmax}\big(g([f(t_{m,\pi_m(1)}),\dots,f(t_{m,\pi_m(9)})])\big)_{k_m}$$

# %%
tile_trunk = torch.randn(3 * 4 * 4, 5, dtype=torch.float64, generator=gen) * 0.2
tile_head = torch.randn(9 * 5, 10, dtype=torch.float64, generator=gen) * 0.3
toy_tiles = torch.randn(4, 9, 3, 4, 4, dtype=torch.float64, generator=gen)     # original order
toy_perms = jigsaw_permutations(10)
toy_labels = torch.randint(10, (4,), generator=gen)


def jigsaw_loss_literal(original_tiles, labels):
    total = 0.0
    for tiles_m, k in zip(original_tiles, labels):
        shuffled = [tiles_m[int(toy_perms[k, i])] for i in range(9)]          # position i shows tile perm[i]
        features = torch.cat([tile.flatten() @ tile_trunk for tile in shuffled])
        total = total - torch.log_softmax(features @ tile_head, dim=0)[k]
    return total / len(original_tiles)


shuffled = torch.stack([toy_tiles[m, toy_perms[k]] for m, k in enumerate(toy_labels.tolist())])
library_logits = (shuffled.flatten(2) @ tile_trunk).flatten(1) @ tile_head
torch.testing.assert_close(jigsaw_loss(library_logits, toy_labels), jigsaw_loss_literal(toy_tiles, toy_labels))
print(f"literal loop == jigsaw_loss: {jigsaw_loss_literal(toy_tiles, toy_labels).item():.6f}")

# %% [markdown]
# **Why the Hamming distance matters.** Two permutations that differ in only two positions make
# nearly the same puzzle: the network must tell them apart from a single swapped pair. The paper
# picks the set greedily so that its members are far apart. Below: the pairwise Hamming distances
# (positions where two permutations differ) of a random set, of the paper's greedy rule (largest
# *mean* distance to the set so far), of the course's greedy rule (largest *minimum* distance) and of a
# deliberately "near-identical" set (the closest permutations).

# %%
sets = {"random": torch.stack([torch.randperm(9, generator=torch.Generator().manual_seed(s)) for s in range(100)]),
        "greedy, max mean (paper)": jigsaw_permutations(100, criterion="max_mean"),
        "greedy, max min (course)": PERMUTATIONS,
        "near-identical": jigsaw_permutations(100, criterion="min_mean")}
figure, axis = plt.subplots(figsize=(8, 4))
for name, perms in sets.items():
    distances = hamming_distances(perms, perms)
    off_diagonal = distances[~torch.eye(100, dtype=torch.bool)]
    print(f"{name:>26}: minimum distance {int(off_diagonal.min())}, mean {off_diagonal.float().mean():.2f}")
    axis.hist(off_diagonal.numpy(), bins=torch.arange(0.5, 10.5).numpy(), histtype="step", linewidth=2, label=name)
axis.set(xlabel="Hamming distance between two permutations of the set", ylabel="pairs")
axis.legend(fontsize=10, loc="upper left")
plt.show()

# %% [markdown]
# **What to look for**: the near-identical set piles up at small distances (two positions swapped),
# the greedy sets at large ones (most positions differ), and the random set in between. The minimum
# distance printed for each set is the hardest pair the network must tell apart.

# %% [markdown]
# Now train the same network for the same steps with the greedy set, with the near-identical set,
# and with the greedy set but **no gaps** (tiles cut edge to edge, `tile_size=cell_size`), the
# shortcut the paper closes: matching borders and lines that run across tiles.

# %%
jigsaw_runs = {"greedy set, gaps": {}, "near-identical set, gaps": dict(permutation_criterion="min_mean"),
               "greedy set, no gaps": dict(tile_size=10)}
for name, hparams in jigsaw_runs.items():
    _, accuracy = short_run("jigsaw", SHORT_STEPS, "shortcut_jigsaw_" + name.replace(",", "").replace(" ", "_"), **hparams)
    print(f"{name:>26}: jigsaw accuracy on held-out images {accuracy:.3f} (chance 0.01)")

# %% [markdown]
# What to look for (after a real run, not in smoke mode): the near-identical set is the hardest
# to solve, because its classes differ in tiny details, and it pushes the network towards
# low-level cues. Without gaps, the accuracy is higher: the network matches tile borders, which is
# exactly what we do *not* want it to learn.

# %% [markdown]
# ## Colorization: what colour was it?
# Zhang, Isola and Efros (2016) convert images to CIE Lab: $L$ is the lightness, $a$ and $b$ the
# colour. The network sees only $L$ and predicts $ab$. Knowing that grass is green and the sky blue
# takes knowing grass and sky. `rgb_to_lab` gives the same numbers as scikit-image's `rgb2lab`.

# %%
def as_uint8(images01):
    """RGB in [0, 1] -> uint8, the format image_grid shows as is (it takes float images as normalised)."""
    return (images01.clamp(0, 1) * 255).round().to(torch.uint8)


rgb = examples.float() / 255
lab = rgb_to_lab(rgb)
grey = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], 1))
colour_only = lab_to_rgb(torch.cat([torch.full_like(lab[:, :1], 60.0), lab[:, 1:]], 1))
image_grid(as_uint8(torch.cat([rgb, grey, colour_only])), nrow=6, scale=1.4,
           titles=["RGB"] * 6 + ["L (input)"] * 6 + ["ab (target) at L = 60"] * 6,
           suptitle="what the network sees (L) and what it must predict (ab)")
plt.show()

# %% [markdown]
# **What to look for**: the middle row (L only) is a grey photo whose shapes you still recognise; the
# bottom row (ab only) is colour without shading. The network sees the middle row and must produce the
# bottom row: knowing that the sky is blue takes knowing it is sky.

# %% [markdown]
# **Regression averages colours into grey.** If a car can be red or blue, the L2 loss
# $\tfrac12\lVert y - \hat y\rVert^2$ is minimised by the *mean* colour: a greyish purple. Zhang et
# al. instead quantise the ab plane into $Q$ bins of side 10 (here $Q$ = `len(ab_bin_centers())`),
# turn each true colour into a soft target $Z$ over its nearest bins (5 in the paper, 10 in the
# official code and in the method; Gaussian, $\sigma = 5$), and
# train a classifier with a **class-rebalanced** cross-entropy (rare, saturated colours weigh more):
# $$\mathcal{L}_{\text{col}} = -\frac{1}{BHW}\sum_{b,h,w} w_{q^*_{bhw}}\sum_{q=1}^{Q} Z_{bhw,q}\log\operatorname{softmax}(\ell_{bhw})_q,\qquad q^*_{bhw} = \arg\max_q Z_{bhw,q}$$
# with $w \propto \big((1-\lambda)\tilde p + \lambda/Q\big)^{-1}$, $\tilde p$ the smoothed colour
# frequencies, $\lambda = \tfrac12$. The colour is read out with the **annealed mean**: the mean of
# $\operatorname{softmax}(\ell/T)$ with $T = 0.38$, between the grey mean ($T = 1$) and the patchy
# mode ($T \to 0$). The official training code, and the method, take the true colour at every 4th
# pixel (averaging would mix the two colours of an edge) and leave grey photographs out of the
# loss: they have no colour to teach.

# %%
centers = ab_bin_centers().double()
toy_ab = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=gen) * 30
toy_logits = torch.randn(2, len(centers), 3, 3, dtype=torch.float64, generator=gen)
targets = soft_encode_ab(toy_ab, centers)
weights = class_rebalancing_weights(targets.sum(dim=(0, 2, 3)) + 1.0, 0.5, centers)


def colorization_loss_literal(logits, targets, weights):
    total, pixels = 0.0, 0
    for b in range(logits.shape[0]):
        for h in range(logits.shape[2]):
            for w in range(logits.shape[3]):
                log_p = torch.log_softmax(logits[b, :, h, w], dim=0)
                z = targets[b, :, h, w]
                total = total - weights[z.argmax()] * (z * log_p).sum()
                pixels += 1
    return total / pixels


torch.testing.assert_close(colorization_loss(toy_logits, targets, weights), colorization_loss_literal(toy_logits, targets, weights))
print(f"Q = {len(centers)} bins; literal loop == colorization_loss: {colorization_loss_literal(toy_logits, targets, weights).item():.6f}")
for temperature in (1.0, 0.38, 0.01):
    chroma = annealed_mean(toy_logits, centers, temperature).norm(dim=1).mean()
    print(f"annealed mean at T = {temperature:<4}: mean colourfulness |ab| = {chroma:.1f}")

# %% [markdown]
# **L2 against classification on the same images.** Both variants train the same trunk for the
# same steps; we compare their colours on test images and their mean colourfulness $|ab|$.

# %%
COLOR_STEPS = 15 if SMOKE else 300
colorizers = {}
for loss in ("regression", "classification"):
    torch.manual_seed(0)
    colorizers[loss] = build_method("colorization", BACKBONE, data.num_classes, loss=loss)
    fit(colorizers[loss], data, TrainConfig(max_steps=COLOR_STEPS, batch_size=64, lr=3e-3, seed=0, progress=False,
                                            monitor_every=0, out_dir=run_dir(f"colorize_{loss}"), resume=True))
    colorizers[loss].eval()
test_rgb = normalize(data.test_images[:6])
rows_to_show = [data.test_images[:6].float() / 255]
true_chroma = rgb_to_lab(rows_to_show[0])[:, 1:].norm(dim=1).mean()
for loss, method in colorizers.items():
    coloured = method.colorize(test_rgb)
    rows_to_show.append(coloured)
    print(f"{loss:>14}: mean |ab| of the predicted colours {rgb_to_lab(coloured)[:, 1:].norm(dim=1).mean():.1f} "
          f"(true images: {true_chroma:.1f})")
image_grid(as_uint8(torch.cat(rows_to_show)), nrow=6, scale=1.4, titles=["truth"] * 6 + ["L2"] * 6 + ["classification"] * 6,
           suptitle="same L, two losses")
plt.show()

# %% [markdown]
# What to look for in the printed $|ab|$ values and the pictures: with enough steps the L2
# colours should stay washed out (small $|ab|$) while the rebalanced classifier dares to paint; in
# a short run the difference may be small. The shortcut here is subtler: colours can often be guessed from low-level
# cues (the sky is bright, the background smooth) without recognising the object, and an image
# whose colours the network cannot guess simply contributes a grey answer.

# %% [markdown]
# ## AET: the pretext task that generalises rotation
# RotNet asks which of four rotations was applied: a class out of four. AET (Zhang et al., CVPR
# 2019) asks for the transformation itself: transform an image with random parameters $\theta$,
# and ask a decoder to recover $\theta$ from the representations of the image and of its
# transformed copy. A rotation by $k\cdot 90°$ is one such transformation with one discrete
# parameter; AET draws whole families of transformations with continuous parameters and regresses
# them.
#
# ### The transformations, seen
# Five families, each with a parameter vector in $[-1, 1]^P$ that a network will have to predict
# (`ssl_course.data.transforms_params`): **projective** (the four corners move: $P = 8$),
# **affine** (rotation, translation, scale, shear: $P = 6$), **similarity** (no shear: 5),
# **Euclidean** (rotation and translation: 4), and the non-spatial **ccbs** (colour, contrast,
# brightness, sharpness factors: 4). Each row below is one image under four random draws.

# %%
images = data.train_images[:4]
generator = torch.Generator(device=images.device).manual_seed(0)
figure, axes = plt.subplots(len(images), 1 + len(FAMILIES), figsize=(2.2 * (1 + len(FAMILIES)), 2.3 * len(images)))
for row, image in enumerate(images):
    axes[row, 0].imshow(to_display(normalize(image[None]))[0], interpolation="nearest")
    for column, name in enumerate(FAMILIES, start=1):
        transformed, params = random_transformation(name, image[None], generator)
        axes[row, column].imshow(transformed[0].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
        if row == 0:
            axes[row, column].set_title(f"{name} (P={params.shape[1]})")
axes[0, 0].set_title("original")
for axis in axes.flat:
    axis.set(xticks=[], yticks=[])
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: the four spatial families move pixels and fill what leaves the frame with
# grey. Projective copies look tilted, as if photographed at an angle; affine ones can also be
# sheared; similarity keeps angles and Euclidean also the size. The ccbs column moves nothing and
# changes only colour, contrast, brightness and sharpness: a decoder can recover its parameters only
# from features that still encode colour.

# %% [markdown]
# ### AET's loss
# An encoder $E$ maps $x$ to $z = E(x)$ and the copy to $\tilde z = E(t(x))$; a decoder $D$
# reads both and predicts $\hat\theta = D(z, \tilde z)$. With $N$ images and $P$ parameters,
#
# $$\mathcal L_{\mathrm{AET}} = \frac{1}{NP}\sum_{n=1}^{N}\sum_{p=1}^{P}\big(\hat\theta_{n,p} - \theta_{n,p}\big)^2 ,$$
#
# the mean squared error of the official code (`nn.MSELoss`). **Why this keeps geometry**: a
# decoder can only tell how far the copy was turned or shifted if $z$ and $\tilde z$ still say
# where the parts of the image are and which way they face. An encoder that threw that away
# (as a contrastive encoder is asked to, for its augmentations) would leave the decoder guessing
# the mean, $\hat\theta = \mathbb E\,\theta$. So the encoder is pushed towards representations
# that *change predictably* with the transformation. That is **equivariance**: the representation of
# $t(x)$ follows from that of $x$ and from $t$. Its opposite is **invariance**, the same representation
# for $x$ and $t(x)$, which contrastive methods (notebooks 03 and 04) ask for their augmentations.
#
# The formula, literally, against the library:

# %%
def aet_loss_loop(predicted, true):
    total = 0.0
    for n in range(predicted.shape[0]):
        for p in range(predicted.shape[1]):
            total = total + (predicted[n, p] - true[n, p]) ** 2
    return total / predicted.numel()


predicted = torch.rand(5, 8, dtype=torch.float64) * 2 - 1
true = torch.rand(5, 8, dtype=torch.float64) * 2 - 1
torch.testing.assert_close(aet_loss_loop(predicted, true), aet_loss(predicted, true))
print(f"loop and library agree: {float(aet_loss(predicted, true)):.4f}; "
      f"guessing 0 for uniform parameters scores about 1/3: {float(aet_loss(torch.zeros_like(true), true)):.3f}")

# %% [markdown]
# ### The variational view: AVT
# AVT (Qi et al., ICCV 2019) makes both sides probabilistic. The encoder outputs a mean and a
# variance, and the copy's representation is *sampled*, $\tilde z = \mu_E(t(x)) + \sigma_E(t(x))\,\epsilon$
# with $\epsilon \sim \mathcal N(0, I)$: the reparameterisation trick, so gradients flow through
# the sample. The decoder outputs a distribution over the transformation,
# $q_\phi(\theta \mid z, \tilde z) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$. Training
# maximises the mutual information $I(\theta; z, \tilde z)$ between the transformation and the
# two representations; since $I = H(\theta) - H(\theta \mid z, \tilde z)$ and $H(\theta)$ is
# fixed by how we draw $\theta$, maximising
# $\mathbb E\,\log q_\phi(\theta \mid z, \tilde z)$ maximises a lower bound of $I$. Its negative
# is a Gaussian negative log-likelihood,
#
# $$\mathcal L_{\mathrm{AVT}} = \frac1N\sum_{n,p}\tfrac12\Big(\log 2\pi + \log\sigma^2_{n,p} + \frac{(\theta_{n,p}-\mu_{n,p})^2}{\sigma^2_{n,p}}\Big),$$
#
# and with a *fixed* variance $\sigma^2 = \tfrac12$ it is $P$ times AET's loss plus a constant:
# AET is AVT with a deterministic encoder and a fixed-variance decoder.

# %%
half = torch.full_like(true, torch.log(torch.tensor(0.5, dtype=torch.float64)))
nll = avt_gaussian_nll(predicted, half, true)
torch.testing.assert_close(nll, 8 * aet_loss(predicted, true) + 4 * torch.log(torch.tensor(torch.pi, dtype=torch.float64)))
print(f"AVT NLL with σ² = 1/2: {float(nll):.4f} = 8 · AET loss + 4 log π")

# %% [markdown]
# AET (projective and affine families, weights 1 and 1) trains in the next section, with the same
# budget as the other pretext tasks.

# %% [markdown]
# ## Training on CIFAR-10 with few labels
# The same engine, data and backbone for every method, and the same number of epochs (the engine's
# epoch of notebook 00: `len(training set) // batch_size` steps of each method's primary batch). The
# pretext methods never see a label; they are judged by a weighted kNN classifier (whose memory bank
# holds *all* training labels) and by a **linear probe**: the trained backbone is frozen, its
# features of the few labelled images are computed once, and a logistic regression (one linear
# layer and a softmax) is fitted on them; its test accuracy says how much of the class information
# a linear read-out can find in the features. The supervised baseline trains on the few labelled
# images for the same number of epochs; its primary batch holds labelled images, so it goes through
# its few labels many times per epoch. Its test accuracy is the number to beat. Runs are saved
# under `runs/` and reloaded when the cell runs again.

# %%
FULL_BUDGET = False   # True: BUDGET_EPOCHS epochs of every training here and for AET below, as on a GPU
BUDGET_EPOCHS = 10    # per method, on a GPU or with FULL_BUDGET = True; fractions such as 0.5 work
CPU_EPOCHS = 3        # per method, on a CPU (FULL_BUDGET = False)
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
EPOCHS = CPU_EPOCHS if CPU_RUN else BUDGET_EPOCHS   # smoke mode trains 20 steps instead
# Run All on a CPU (FULL_BUDGET = False) trains these five methods and AET (next cells) for CPU_EPOCHS
# epochs each on the 10 000-image subset with the `tiny` backbone: about 8 min for the five and 2-3 min
# for AET on one thread (upper bounds from steps timed with benchmarks/cpu_step_time.py, s per
# epoch of 9000 images: rotation 79-86, colorization 30, supervised 15-21, jigsaw 9, relative position 3,
# AET 31-54; the older one-epoch times in benchmarks/RESULTS.md are up to twice these). FULL_BUDGET = True
# on a CPU: the same subset for 10 epochs, ~35 min-1 h. Present mode shows the course's reference runs.
# Runs resume from runs/: delete this notebook's folders there before switching FULL_BUDGET.
# Laptop GPU (`small` backbone, all of CIFAR-10, 10 epochs) ~ 8 min: estimated from the counted FLOPs of
# each method's training step (benchmarks/gpu_day_flops.json, 4.7 GFLOP per image for the five) at an
# assumed 5 TFLOP/s, not measured on a laptop.
METHODS = ("rotation", "relative_position", "jigsaw", "colorization", "supervised")
BATCH_SIZE = 32 if SMOKE else None   # None: each method's default


def train(name, run_name=None, **hyperparameters):
    """Train method `name` (with `hyperparameters` overriding its defaults) into runs/02_<run_name>_..."""
    torch.manual_seed(0)
    method = build_method(name, BACKBONE, data.num_classes, **hyperparameters)
    out_dir = run_dir(run_name or name)
    # later cells need only the metrics and a t-SNE sample, so the reference run keeps no weights
    settings = TrainConfig(max_steps=20 if SMOKE else None, epochs=None if SMOKE else EPOCHS,
                           batch_size=BATCH_SIZE, monitor_every=0 if SMOKE else None, monitor_bank_size=2000,
                           monitor_val_size=1000, out_dir=out_dir, resume=True, seed=0, progress=not SMOKE,
                           reference_weights=False)
    history = fit(method, data, settings)
    metrics = evaluate_method(method, data, knn_bank=1000 if SMOKE else "all")
    if reference.recording():   # the test features of a fixed sample, for present mode's t-SNE
        save_embedding_sample(reference.reference_dir(out_dir), method, data)
    print(f"{name:>18}: {history.step[-1]} steps in {history.seconds[-1]:.0f} s · kNN (all labels) {metrics['knn_all_labels_accuracy']:.3f} "
          f"· linear probe on {LABELS} labels {metrics['linear_probe_accuracy']:.3f}"
          + (f" · classifier {metrics['classifier_accuracy']:.3f}" if "classifier_accuracy" in metrics else ""))
    shipped = reference.load_reference(out_dir)
    if reference.presenting():
        print(f"{'':>20}({reference.describe(out_dir)})")
    elif shipped is not None and shipped["evaluations"]:
        probe = next(iter(shipped["evaluations"].values()))["linear_probe_accuracy"]
        print(f"{'':>20}the course's reference: linear probe {probe:.3f} ({reference.describe(out_dir)})")
    return method, history, metrics


runs = {name: train(name) for name in METHODS}

# %% [markdown]
# ### AET, with the same budget
# AET trains through `ssl_course.experiment.run_methods` on the same data, labels, backbone and
# epochs (`EPOCHS`, set with `FULL_BUDGET` in the training cell above). Its trained network is
# kept, because the cell after next reads its decoders' predictions.

# %%
# Expected time: Run All on a CPU (FULL_BUDGET = False above) trains AET for CPU_EPOCHS = 3 epochs of the
# 10 000-image subset, `tiny` backbone: 2-3 min on one thread (0.44-0.76 s per step of 128 images, an upper
# bound timed with benchmarks/cpu_step_time.py; benchmarks/RESULTS.md's older one-epoch run took
# 165 s with its evaluation). FULL_BUDGET = True: 10 epochs, ~5-30 min on a CPU; laptop GPU a few minutes
# (estimated: AET counts 2.05 GFLOP per image with the `small` backbone, benchmarks/gpu_day_flops.json,
# at an assumed 5 TFLOP/s).
AET_SETTINGS = dict(data=DATA, labels=LABELS, backbone=BACKBONE, knn_bank=1000 if SMOKE else "all", **SUBSET,
                    **(dict(steps=20, batch_size=BATCH_SIZE) if SMOKE else dict(epochs=EPOCHS)))
# AET's trained network is used below (its decoders' predictions): a reference run keeps its weights
aet_results, aet_dirs = run_methods(["aet"], "02", reference_weights=True, **AET_SETTINGS)
aet_metrics = aet_results["aet"]
shipped = reference.load_reference(aet_dirs["aet"])
if reference.presenting():
    print(f"aet: the numbers shown are the {reference.describe(aet_dirs['aet'])}")
elif shipped is not None and shipped["metrics"] is not None:
    print(f"aet: course reference kNN (all labels) {shipped['metrics'].get('knn_all_labels_accuracy', float('nan')):.3f}, "
          f"linear probe {shipped['metrics'].get('linear_probe_accuracy', float('nan')):.3f} "
          f"({reference.describe(aet_dirs['aet'])})")

# %%
aet_vs_supervised = {"supervised": runs["supervised"][2], "aet": aet_metrics}
figure, axis = plt.subplots(figsize=(7, 4))
measures = ("knn_all_labels_accuracy", "linear_probe_accuracy")
for offset, measure in enumerate(measures):
    axis.bar([i + 0.4 * offset for i in range(len(aet_vs_supervised))],
             [metrics.get(measure, float("nan")) for metrics in aet_vs_supervised.values()],
             width=0.4, label=measure.replace("_", " "))
axis.set_xticks([i + 0.2 for i in range(len(aet_vs_supervised))], list(aet_vs_supervised))
axis.axhline(1 / data.num_classes, color="r", linestyle=":", label="chance")
axis.set(xlabel="method", ylabel="accuracy", ylim=(0, 1), title=f"{DATA}, {LABELS} labels, {EPOCHS:g} epochs")
axis.legend(loc="upper left")
plt.show()
for measure in measures:
    print(f"{measure}: aet {aet_metrics[measure]:.3f} vs supervised {runs['supervised'][2][measure]:.3f}")

# %% [markdown]
# **What to look for**: AET's bars above the red chance line mean its features separate classes
# although it never saw a label. The supervised bars are the reference: the printed differences are
# what predicting transformations gives, at this budget, against training on the labels directly. A
# kNN bar near
# chance with a probe well above it means the classes are separable in the features but not yet
# grouped by distance.

# %% [markdown]
# ### AET's predicted against true parameters
# The trained decoders on held-out test images: each dot is one parameter of one image. Points on
# the diagonal are perfect predictions; a flat cloud at 0 is a decoder that learnt nothing but the
# mean. Read the spread per parameter: rotation (cos, sin) is usually the hardest for a short run.

# %%
aet = load_trained(build_method("aet", BACKBONE, data.num_classes), aet_dirs["aet"], DEVICE)   # in eval mode
test_images = data.test_images[:300]
generator = torch.Generator(device=test_images.device).manual_seed(1)
figure, axes = plt.subplots(1, 2, figsize=(12, 5))
with torch.no_grad():
    z = aet.backbone(normalize(test_images))
    for axis, name in zip(axes, aet.families):
        transformed, theta = random_transformation(name, test_images, generator)
        theta_hat = aet.decoders[name](z, aet.backbone(normalize(transformed)))
        for p in range(theta.shape[1]):
            axis.scatter(theta[:, p].cpu(), theta_hat[:, p].cpu(), s=6, alpha=0.5, label=f"θ[{p}]")
        axis.plot([-1, 1], [-1, 1], "k--", linewidth=1)
        axis.set(xlabel="true parameter", ylabel="predicted", title=f"{name}: MSE {float(aet_loss(theta_hat, theta)):.3f}")
        axis.legend(fontsize=9, ncol=2, markerscale=3)
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: clouds that tilt along the dashed diagonal are parameters the decoder reads
# from the two representations; a horizontal band at 0 is a parameter it only guesses by its mean.
# A decoder that only guesses the mean scores the parameters' variance (about 1/3 for one uniform in
# $[-1, 1]$, printed under AET's loss); a title's MSE well below that means the features keep geometry.

# %% [markdown]
# ## Evaluation and comparison
# Every number below is read from the runs above. Two baselines: the supervised network's own
# classifier, and a linear probe on its features fitted like the pretext methods' probes.

# %%
baseline = runs["supervised"][2]["test_accuracy"]
baseline_probe = runs["supervised"][2]["linear_probe_accuracy"]
print(f"{'method':>18} | {'kNN':>6} | {'probe':>6} | probe vs supervised test acc ({baseline:.3f}) / its probe ({baseline_probe:.3f})")
for name, (_, _, metrics) in runs.items():
    probe = metrics["linear_probe_accuracy"]
    versus = "" if name == "supervised" else f"{probe - baseline:+.3f} / {probe - baseline_probe:+.3f}"
    print(f"{name:>18} | {metrics['knn_all_labels_accuracy']:>6.3f} | {probe:>6.3f} | {versus}")
pretext = [n for n in METHODS if n != "supervised"]
best = max(pretext, key=lambda n: runs[n][2]["linear_probe_accuracy"])
print(f"best pretext task by linear probe here: {best} "
      f"({'beats' if runs[best][2]['linear_probe_accuracy'] > baseline else 'does not beat'} the supervised classifier "
      f"at this budget)")
print(f"your budget: {EPOCHS:g} epochs, backbone '{BACKBONE}', {LABELS} labels")

figure, axis = plt.subplots(figsize=(10, 4.5))
positions = torch.arange(len(METHODS)).float()
axis.bar(positions - 0.2, [runs[n][2]["knn_all_labels_accuracy"] for n in METHODS], width=0.4, color="tab:gray",
         label="kNN (bank: all training labels)")
axis.bar(positions + 0.2, [runs[n][2]["linear_probe_accuracy"] for n in METHODS], width=0.4, color="tab:blue",
         label=f"linear probe ({LABELS} labels)")
axis.axhline(baseline, color="black", linestyle="--", label="supervised (its own classifier)")
axis.axhline(1 / data.num_classes, color="tab:red", linestyle=":", label="chance")
axis.set_xticks(positions.tolist(), [n.replace("_", "\n") for n in METHODS])
axis.set(ylim=(0, 1), ylabel="test accuracy", title=f"{DATA}, {LABELS} labels, same epochs")
axis.legend(fontsize=10, loc="upper right")
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: every bar sits above the red chance line; the grey kNN bar (bank: all training
# labels) and the blue linear probe (250 labels) of a pretext method usually stay below the dashed
# supervised line at this short budget. A bar at chance means a method learned nothing: check its loss
# curve above.

# %% [markdown]
# ### What the papers claim here, and what the course's reference run shows
# The cell below prints the claim this notebook's training tests, judged on the **validation**
# split: the course's reference run of the cell above (its budget is printed with it) and, when
# you trained, your own run. When the claim cannot show at the course's budget, it says so and
# gives what was measured instead.

# %%
claims.show("02", {**{name: metrics for name, (_, _, metrics) in runs.items()}, "aet": aet_metrics});

# %% [markdown]
# **How far is this from the papers?** Only RotNet was evaluated on CIFAR-10 with few labels. A
# 4-block **NIN** (network in network: every block is a convolution followed by two 1×1
# convolutions, a small MLP applied at each pixel) pretrained on every training image (200 epochs
# in the official config), then a conv block trained on its block-2 features, has 35.37 % test
# error with 20 labels per class (about 65 % accuracy), 24.72 % with 100 and 17.16 % with 400 per
# class, against 66.34 %, 52.74 % and 25.81 % for the same network trained on those labels alone
# (Gidaris et al. 2018, as tabulated in Qi & Luo, TPAMI 2022, Table 1). Its protocol differs from
# yours in two ways that both favour it: a
# longer pretraining, and a small convolutional classifier trained on the *middle* of the network,
# where its features are best, instead of a linear probe on the pooled output. The closest
# published point to your 25 labels per class is 20 per class. The other three papers pretrain on
# ImageNet and report transfer, not CIFAR-10: Doersch et al. transfer their features to object
# detection and classification, Noroozi & Favaro report 68.6 % classification and 51.8 % detection
# mAP on PASCAL VOC 2007 (against 78.2 % and 56.5 % with supervised ImageNet features), and Zhang
# et al. evaluate their colorization features on ImageNet and by transfer. For them your run is a
# small-image version of the idea, with no published number to aim at.

# %% [markdown]
# ### t-SNE of the test embeddings
# The features each method hands to the kNN and the probe, squeezed to 2-D and coloured by the true class.
# t-SNE keeps each image's nearest neighbours next to it but stretches and shrinks everything else:
# read a panel as "who sits next to whom", never as "how far apart" or "how big" a cluster is.

# %%
figure, axes = plt.subplots(1, len(METHODS), figsize=(5 * len(METHODS), 5))
for axis, (name, (method, _, metrics)) in zip(axes, runs.items()):
    # present mode: the reference run's features of a fixed sample of 500 test images
    features, labels = test_embedding(run_dir(name), data, method)
    plot_tsne(features, labels, data.class_names, axis=axis, legend=name == "supervised",
              title=f"{name} (kNN, all labels: {metrics['knn_all_labels_accuracy']:.2f})", max_points=300 if SMOKE else 2000)
figure.tight_layout()
plt.show()

# %% [markdown]
# **What to look for**: in the supervised panel the classes form separate clusters; a pretext method's
# panel shows looser ones, with vehicles (plane, car, ship, truck) away from animals before the
# classes within each group separate. A single blob coloured at random means features that ignore the
# content.

# %% [markdown]
# ## Take-aways and pitfalls
# - **A pretext task must be solvable, and solving it must need semantics.** Every task here has a
#   cheap way out: the empty corners and resampling blur of an arbitrary-angle rotation, chromatic
#   aberration and continuing edges for relative position, touching borders and near-identical
#   permutations for jigsaw, low-level colour statistics for colorization. Each paper's recipe
#   (rotations by multiples of 90°, colour dropping, gaps and jitter, per-tile normalisation,
#   far-apart permutations, rebalancing) exists to close one.
# - **Patch tasks train on small inputs.** The relative-position and jigsaw trunks see 8-pixel
#   patches and are evaluated on whole 32-pixel images: the filters transfer, the scale does not
#   quite, one reason why these tasks do less well on tiny images than on the papers' large ones.
# - **Which layer to evaluate.** The last layers specialise on the pretext task: RotNet's official
#   CIFAR-10 experiments classify from block 2 of its 4 blocks (`gidariss/FeatureLearningRotNet`,
#   `run_cifar10_semi_supervised_experiments.sh`). The course evaluates the pooled output for every
#   method, which flatters no one.
# - **Budgets.** A jigsaw step encodes 9 tiles per image, a relative-position step 2 patches: compare
#   methods at equal epochs *and* look at the wall time each run printed.

# %% [markdown]
# - **Equivariance or invariance.** Predicting the transformation (rotation, AET) rewards
#   representations that change *with* the image; contrastive learning (notebooks 03 and 04)
#   rewards representations that do not. Which is better depends on whether the transformation
#   changes what you care about. A transformation the decoder cannot see (a 180° turn of a symmetric
#   object) only adds noise to the loss, and AET's parameters must share one range (here $[-1, 1]$),
#   or the largest one dominates the MSE.

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
# **2. The rebalanced colorization loss.** `logits` and `targets` are `[B, Q, H, W]` (targets from
# `soft_encode_ab`), `weights` is `[Q]`. Return the mean over pixels of
# $w_{q^*}\cdot\big(-\sum_q Z_q \log\operatorname{softmax}(\ell)_q\big)$ with $q^*$ the most likely *true* bin.

# %%
def my_colorization_loss(logits, targets, weights):
    # YOUR CODE
    raise NotImplementedError("write the colorization loss")


check_colorization_loss(my_colorization_loss);

# %% [markdown]
# **3. Break it on purpose.** Train `jigsaw` with `permutation_criterion="min_mean"` and with
# `tile_size=10` (no gaps), and `relative_position` with `color_drop=False`, for the cell's budget:
# `train("jigsaw", run_name="jigsaw_no_gaps", tile_size=10)` (the keyword arguments go to
# `build_method`; `run_name` gives the run its own folder, so it does not reload the default run).
# Compare pretext accuracy, kNN and probe with the default runs and explain what you see.
#
# **4. The annealing temperature.** Colorize the test images above with `annealing_temperature`
# 1.0, 0.38 and 0.01 (set `colorizers["classification"].annealing_temperature`) and describe the
# colours.
#
# **5. Think: why only four angles?** Suppose RotNet used eight rotations, every 45°. What would a
# 45° rotation of a 32×32 image look like at its corners, and what could the network learn from
# that instead of the object? Why do 90° steps not have this problem?
#
# **6. Think: what "10 epochs" means for the baseline.** With the engine's epoch (notebook 00) and
# the supervised baseline's batch of 128, how many steps does it take in 10 epochs on a training set
# of 45 000 images, and how many times does it see each of its 250 labelled images? What does that
# predict for its training loss, and for the gap between its training and test accuracy?
#
# **7. AET's loss.** Write `my_aet_loss(predicted, true)` for `[N, P]` tensors.

# %%
def my_aet_loss(predicted, true):
    # 1. the difference  2. squared  3. the mean over rows and parameters
    raise NotImplementedError("replace this line with your code")


check_aet_loss(my_aet_loss);

# %% [markdown]
# **8. One family at a time.** Train `aet` with only the affine family
# (`run_methods({"aet": {"families": "affine"}}, "02_affine", **AET_SETTINGS)`, the settings of the
# AET cell) and compare its kNN accuracy with the two-family run. Then try `families="ccbs"`: does a
# network that only has to predict colour changes learn features that separate the classes?
#
# **9. Think: the baseline of AET's parameter plot.** Each parameter is drawn uniformly from
# $[-1, 1]$. Why does a decoder that always predicts 0 score an MSE of about 1/3, and why is 0 the
# best constant guess?
#
# **10. Think: which families need geometry?** For each of the five families, could a network
# predict the parameters from the colour histograms of the two images alone, without knowing where
# anything is in them? What does your answer predict about the features each family teaches?
#
# Solutions to 1 and 2: `notebooks/solutions/pretext_solutions.py`; to 7:
# `notebooks/solutions/aet_enaet_solutions.py`. What to expect in 3 to 6 and 8 to 10, and
# why: [`notebooks/solutions/ANSWERS.md`, section 02](solutions/ANSWERS.md#02-pretext-tasks).

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")

# %% [markdown]
# ## References
# - S. Gidaris, P. Singh, N. Komodakis, *Unsupervised Representation Learning by Predicting Image
#   Rotations*, ICLR 2018.
# - C. Doersch, A. Gupta, A. A. Efros, *Unsupervised Visual Representation Learning by Context
#   Prediction*, ICCV 2015.
# - M. Noroozi, P. Favaro, *Unsupervised Learning of Visual Representations by Solving Jigsaw
#   Puzzles*, ECCV 2016.
# - R. Zhang, P. Isola, A. A. Efros, *Colorful Image Colorization*, ECCV 2016.
# - L. Zhang, G.-J. Qi, L. Wang, J. Luo, *AET vs. AED: Unsupervised Representation Learning by
#   Auto-Encoding Transformations rather than Data*, CVPR 2019. Code:
#   https://github.com/maple-research-lab/AET
# - G.-J. Qi, L. Zhang, C. W. Chen, Q. Tian, *AVT: Unsupervised Learning of Transformation
#   Equivariant Representations by Autoencoding Variational Transformations*, ICCV 2019.
# - Recipes (paper values against the course's): `docs/RECIPES.md`.

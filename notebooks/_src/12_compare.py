# %% [markdown]
# # 12 · All methods under one budget
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ssl-course/ssl_course/blob/main/notebooks/12_compare.ipynb)
#
# **What you will learn**
# - how to compare representation-learning and semi-supervised methods fairly: the same backbone,
#   the same few-label split, the same budget in epochs, several seeds;
# - how to read a comparison: accuracy against time rather than one final number, mean ± std over
#   seeds, and what a t-SNE panel can and cannot tell you;
# - which of the course's methods profit most from unlabelled images at your budget, and how the
#   pretext tasks of Part I compare with each other and with SimCLR.

# %% [markdown]
# **Time budget**: reading an existing results folder takes a minute. Run All on one CPU thread, with
# no results folder yet, runs a first-look comparison: every method for `CPU_MINUTES = 0.5` minutes on
# a 10 000-image subset with the `tiny` backbone, about 15 min with the evaluations. `FULL_BUDGET =
# True` in the comparison cell runs the default comparison (every method, 250 labels, `BUDGET_EPOCHS =
# 10` epochs each, one seed): about 47 min on a laptop GPU (estimated, `small` backbone), hours on a
# CPU even with its `tiny` backbone (about 46 h with the `small` one, measured throughput): on a CPU,
# rather read a results folder made elsewhere.
#
# To look through this notebook without training (about a minute), start Jupyter with
# `SSL_COURSE_MODE=present`: the comparison cell then loads the course's reference comparison (short
# CPU runs of every method, see the README).

# %% [markdown]
# **Prerequisites**: notebooks 00 to 11 (you should know what every method does before ranking them).
#
# **Recap** of Parts I and II, which this notebook compares (answers:
# [`notebooks/solutions/ANSWERS.md`, section 12](solutions/ANSWERS.md#12-compare)):
# 1. How is a self-supervised method scored with few labels, and how a semi-supervised one?
# 2. What is the validation split for, and why is the test split never used to choose?
# 3. What does "the same budget in epochs" give every method, and what does it not?

# %%
import sys

if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "ssl_course @ git+https://github.com/ssl-course/ssl_course"], check=True)
    from ssl_course.colab import colab_setup
    colab_setup()

import csv
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from ssl_course import claims, config, reference
from ssl_course.compare import markdown_table, run_comparison
from ssl_course.data import cifar10_available, dataset_class_names
from ssl_course.methods import method_names
from ssl_course.notebook import CPU_SUBSET
from ssl_course.viz import plot_curves, plot_tsne_grid

SMOKE = config.smoke()
DEVICE = config.pick_device()
print(f"device: {DEVICE}; smoke mode: {SMOKE}; mode: {config.mode()}; registered methods: {', '.join(method_names())}")

# %% [markdown]
# ## A results folder
# The command line does the heavy lifting and can be interrupted and resumed:
#
# ```bash
# python -m ssl_course compare --data cifar10 --labels 250 4000 --epochs-per-method 10 --seeds 0 1 2 --out runs/compare
# ```
#
# Point `RESULTS` at such a folder (or set `SSL_COURSE_COMPARE_DIR`). If it holds no results yet,
# the next cell runs a comparison there with the budget below; in smoke mode it runs a tiny one
# with three methods on a data subset. On a CPU the comparison uses the `tiny` backbone.

# %%
FULL_BUDGET = False   # True: every method for BUDGET_EPOCHS epochs on every image, on a CPU too (hours there)
BUDGET_EPOCHS = 10    # per method: the default of `compare --epochs-per-method`; smoke mode: 1 epoch
CPU_MINUTES = 0.5     # per method, on a CPU (FULL_BUDGET = False), on the 10 000-image subset
CPU_RUN = DEVICE.type == "cpu" and config.mode() == "learn" and not (SMOKE or FULL_BUDGET)
# Run All on a CPU (FULL_BUDGET = False), when RESULTS holds no results yet, trains every method for
# CPU_MINUTES of training time on a 10 000-image subset with the `tiny` backbone: 21 methods x 0.5 min plus
# their evaluations, about 15 min. A minute budget ranks methods by what a CPU does in that time, not
# by what they learn in a fixed number of epochs: a first look, like the course's reference comparison
# (1 min per method, shown in present mode). Delete RESULTS' folder before switching FULL_BUDGET.
# The full budget (every method, 10 epochs each at 250 labels), training only:
#   laptop GPU (backbone small) ≈ 47 min: estimated from the FLOPs of each method's training step
#   (counted with torch.utils.flop_counter) at an assumed 5 TFLOP/s sustained, not measured on a laptop;
#   CPU: backbone small ≈ 46.0 h: measured throughput on one CPU thread, times the epochs
#   (benchmarks/RESULTS.md); the tiny backbone used on a CPU is cheaper, still hours; more cores are
#   faster. Fractions such as 0.5 work too.
DATA = "cifar10" if cifar10_available() else "synthetic"
BACKBONE = reference.notebook_backbone("12", SMOKE, DEVICE)   # "tiny" on a CPU, "small" on a GPU
if SMOKE:
    settings = dict(methods=["supervised", "simclr", "fixmatch"], labels=[100], minutes_per_method=None,
                    epochs_per_method=1, seeds=[0], backbone="tiny", train_subset=1000, test_subset=300)
elif CPU_RUN:
    settings = dict(methods=method_names(), labels=[250], minutes_per_method=CPU_MINUTES, epochs_per_method=None,
                    seeds=[0], backbone=BACKBONE, **(CPU_SUBSET if DATA == "cifar10" else {}))
else:
    settings = dict(methods=method_names(), labels=[250], minutes_per_method=None,
                    epochs_per_method=BUDGET_EPOCHS, seeds=[0], backbone=BACKBONE, train_subset=None, test_subset=None)
NAME = f"12_compare_{DATA}_{'_'.join(map(str, settings['labels']))}_{settings['backbone']}"
RESULTS = Path(os.environ.get("SSL_COURSE_COMPARE_DIR", config.runs_dir() / NAME))

if not (RESULTS / "results.csv").exists():
    run_comparison(RESULTS, data=DATA, **settings)   # present mode: copies the course's reference comparison
with (RESULTS / "results.csv").open() as stream:
    rows = list(csv.DictReader(stream))
comparison_settings = json.loads((RESULTS / "compare.json").read_text())
print(f"{len(rows)} runs from {RESULTS}: data={comparison_settings['data']}, backbone={comparison_settings['backbone']}, "
      f"budget={comparison_settings['minutes_per_method'] or comparison_settings['epochs_per_method']} "
      f"{'minutes' if comparison_settings['minutes_per_method'] else 'epochs'} per method")

# %% [markdown]
# ## The table
# Accuracy is each method's own classifier, or a linear probe trained on the labelled images only
# for methods without one. Validation accuracy is that number on the validation split held out of
# the training images: every decision (which method wins, which setting to keep) is made on it.
# Test accuracy is the number you report at the end, never the one you choose by. kNN accuracy uses only the *labelled* images as its memory bank (what a few-label learner
# can do with the features); `compare --knn-bank all` adds, in `results.csv`, the kNN with *all*
# training labels, which measures how well the features separate classes. With several seeds the
# cells show mean ± sample standard deviation.

# %%
display(Markdown(markdown_table(rows)))
failed = [r for r in rows if r["status"] != "ok"]
for row in failed:
    print(f"failed: {row['method']} @{row['labels']} labels, seed {row['seed']}: {row['error']}")
if reference.has_reference(RESULTS.name):   # the course ships a comparison with this folder's name
    if reference.presenting():
        print(f"These are the course's reference runs, {reference.describe(RESULTS.name)}: "
              "far shorter than the budget above, so read the ranking as a first look.")
    else:
        with (reference.reference_dir(RESULTS.name) / "results.csv").open() as stream:
            print(f"The course's reference comparison, {reference.describe(RESULTS.name)}:")
            display(Markdown(markdown_table(list(csv.DictReader(stream)))))

# %% [markdown]
# ## Who beats the baseline?
# The supervised baseline sees the same labels for the same number of epochs. A method that cannot
# beat it has not earned its extra machinery, at least not at this budget. Which method
# wins is decided on validation accuracy; test accuracy is reported, never used to choose.

# %%
def mean_accuracy(method, labels, split="val"):
    key = f"{split}_accuracy"   # decisions on the validation split; the test split is reported, never used to choose
    values = [float(r[key]) for r in rows
              if r["method"] == method and int(r["labels"]) == labels and r["status"] == "ok" and r.get(key)]
    return sum(values) / len(values) if values else None

for labels in sorted({int(r["labels"]) for r in rows}):
    baseline = mean_accuracy("supervised", labels)
    scores = {m: mean_accuracy(m, labels) for m in dict.fromkeys(r["method"] for r in rows)}
    scores = {m: s for m, s in scores.items() if s is not None}
    best = max(scores, key=scores.get)
    print(f"{labels} labels: best {best} ({scores[best]:.3f}); supervised baseline "
          f"{'not in this folder' if baseline is None else f'{baseline:.3f}'}")
    for method, score in sorted(scores.items(), key=lambda item: -item[1]):
        verdict = "" if baseline is None or method == "supervised" else ("beats" if score > baseline else "does NOT beat")
        print(f"   {method:>12}: {score:.3f} {verdict} {'the baseline' if verdict else ''}")

    figure, axis = plt.subplots(figsize=(8, 3))
    names = sorted(scores, key=scores.get)
    axis.barh(names, [scores[n] for n in names], color=["tab:red" if n == "supervised" else "tab:blue" for n in names])
    axis.set(xlabel="validation accuracy", xlim=(0, 1), title=f"{labels} labels, same budget")
    plt.show()

# %% [markdown]
# **What to look for**: the red bar is the supervised baseline; blue bars to its right beat it on
# validation accuracy at this budget. Differences of a point or two are within the spread of seeds.

# %% [markdown]
# ## The pretext tasks and SimCLR, under one budget
# Notebooks 02 and 03 trained each pretext task against the supervised baseline on its own; the
# same table, restricted to them, to SimCLR (notebook 04) and to the baseline, lets them meet each
# other. A pretext method has no classifier, so its accuracy here is the linear probe on the few
# labelled images; the baseline's is its own classifier. Read it honestly: one seed, a short
# budget, and methods whose defaults were tuned for long runs; a difference of a point or two is
# noise.

# %%
PRETEXT = ["rotation", "relative_position", "jigsaw", "colorization", "aet", "exemplar", "cpc", "simclr", "supervised"]
present = [name for name in PRETEXT if any(r["method"] == name for r in rows)]
missing = [name for name in PRETEXT if name not in present]
pretext_rows = [r for r in rows if r["method"] in present]
display(Markdown(markdown_table(pretext_rows)))
if missing:
    print(f"not in this results folder: {', '.join(missing)}")


def mean_of(method, key, labels):
    """The mean over seeds of one column of results.csv (None where the folder has no such number)."""
    values = [float(r[key]) for r in pretext_rows
              if r["method"] == method and int(r["labels"]) == labels and r["status"] == "ok" and r.get(key)]
    return sum(values) / len(values) if values else None


first_labels = sorted({int(r["labels"]) for r in pretext_rows})[0]
names = sorted(present, key=lambda name: mean_of(name, "val_accuracy", first_labels) or 0.0)
figure, axis = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
positions = range(len(names))
for offset, (key, label) in enumerate((("val_accuracy", "probe (classifier for supervised)"),
                                       ("val_knn_accuracy", "kNN, labelled bank"))):
    axis.barh([p + 0.4 * offset for p in positions], [mean_of(n, key, first_labels) or 0.0 for n in names], height=0.4,
              label=label)
axis.set_yticks([p + 0.2 for p in positions], names)
axis.axvline(1 / len(dataset_class_names(comparison_settings["data"])), color="tab:red", linestyle=":", label="chance")
axis.set(xlabel="validation accuracy", xlim=(0, 1), title=f"pretext tasks and SimCLR, {first_labels} labels, same budget")
axis.legend(fontsize=10, loc="lower right")
plt.show()

# %% [markdown]
# **What to look for**: each pair of bars is one method; the red dotted line is chance. A pretext
# task whose probe bar sits near chance learned little the labels can use at this budget; compare its
# kNN bar with the probe: a kNN far below the probe means the classes are separable by a line but
# not yet grouped by distance.

# %% [markdown]
# ### What this comparison should show, and what the course's reference run shows
# The cell below prints each claim this notebook makes about the training above, judged on the
# **validation** split (the test split is never used to decide anything): the course's reference
# run (same cell, recorded on a CPU; its budget is printed with it, and a second seed where two
# methods are compared), then your own run. When a claim from the papers cannot show at the
# course's budget, it says so and gives what was measured instead.

# %%
claims.show("12");

# %% [markdown]
# ## Accuracy against wall time
# Lines are the kNN monitor during training, stars the final test accuracy. A method whose line is
# still climbing at the end would gain from a longer budget; one that plateaued early would not.

# %%
plot_curves(RESULTS)
plt.show()

# %% [markdown]
# **What to look for**: a line still climbing at its right end would gain from more time; a line that
# plateaued early would not. Stars far above the end of their line mean the probe or classifier does
# better than the kNN monitor suggests.

# %% [markdown]
# ## The same test images through every method
# Each panel embeds the same test images with one trained model and maps them to 2-D with t-SNE,
# coloured by true class. Compact, separated colours mean a linear probe or a kNN will do well;
# t-SNE distorts distances and sizes, so compare panels by *who is near whom*, not by how far apart
# the clusters look.

# %%
try:
    figure = plot_tsne_grid(RESULTS, labels=sorted({int(r["labels"]) for r in rows})[0],
                            class_names=dataset_class_names(comparison_settings["data"]))
    plt.show()
except FileNotFoundError as error:
    print(error)

# %% [markdown]
# **What to look for**: panels with compact, separated colours belong to the methods with the highest
# kNN accuracy; compare panels by who is next to whom, not by cluster sizes, which t-SNE distorts.

# %% [markdown]
# ## What a bigger batch, queue or support set costs
# A budget hides a second question: what does each knob of a method cost per step?
# `benchmarks/scaling.py` times one training step (and its memory) while it sweeps SimCLR's batch
# size, MoCo's and NNCLR's queue size and PAWS's support set. The figures measured for the course
# are stored in `benchmarks/figures/` (device in each title); run the script on your machine to
# get yours:
#
# ```bash
# python benchmarks/scaling.py --out runs/scaling          # ResNet-18 on a GPU, tiny net on a CPU
# ```

# %%
figures = sorted((config.REPO_ROOT / "benchmarks" / "figures").glob("scaling_*.png"))
for path in figures:
    figure, axis = plt.subplots(figsize=(13, 7))
    axis.imshow(plt.imread(path))
    axis.set_axis_off()
    axis.set_title(path.name)
    plt.show()
if not figures:
    print("no stored scaling figure: run benchmarks/scaling.py")

# %% [markdown]
# **What to look for**: Read the curves against the formulas: NT-Xent builds a `[2B, 2B]` similarity matrix, so its share
# grows with the square of the batch; MoCo compares `2B` queries with `K` queued keys, cheap until
# `K` reaches tens of thousands; NNCLR additionally searches the queue for each nearest neighbour;
# PAWS pushes its support images through the network every step, so a bigger support set costs
# almost what a bigger batch does.

# %% [markdown]
# ## What these numbers say, and what they do not
# - **Budget.** Every method got the same number of epochs, with the engine's epoch of notebook 00:
#   `len(training set) // batch_size` steps of the method's primary batch, so every method drew
#   about the same number of primary images. They are not the same images, nor the same kind: the
#   baseline's primary batch holds labelled images (its few labels, many times over), a
#   self-supervised method's holds training images without labels, and FixMatch's holds 448
#   unlabelled images with 64 labelled images on top. A method that is slow per step (PAWS with
#   many crops, MixMatch's double forward) takes longer for its epochs; under a time budget
#   (`--minutes-per-method`) it would pay for that instead; with a longer budget the ranking can
#   change. Published numbers use hundreds of epochs.
#   The course's reference comparison is a time budget instead: every training stopped after at
#   most 1.5 CPU-minutes (one thread), so a method with a cheap step (the supervised baseline,
#   MixMatch) took many more steps there than one with an expensive step (PAWS, FixMatch); the
#   steps column says how many. Notebooks 08, 10 and 11 give the semi-supervised methods 12 CPU-minutes
#   each, with a second seed.
# - **Seeds.** With one seed, differences of a point or two are noise; use `--seeds 0 1 2` and
#   compare the ± columns before believing an order.

# %% [markdown]
# - **Data.** CIFAR-10 downloaded by `ssl_course` (or from the official page) is the original data.
#   Some mirrors distribute a copy rebuilt from JPEG files; training on such a copy costs a couple
#   of points of accuracy, so compare published numbers only with runs on the original. Every
#   method here sees the same copy, so the comparison between them stays fair either way.
# - **Protocols differ.** Self-supervised methods are scored by a linear probe on the few labels,
#   semi-supervised ones by their own classifier; both are "test accuracy with N labels", but the
#   first also shows how reusable the features are.
#
# ## Exercise
# Run the comparison from a terminal with three seeds for two methods of your choice, point
# `RESULTS` at it, and decide whether their difference is larger than the spread between seeds.

# %% [markdown]
# Two questions to think about first (no training):
# - **Validation or test?** Why does the table hold both a validation and a test accuracy, and what
#   goes wrong if you pick each method's learning rate by its test accuracy and then report that
#   same test accuracy?
# - **kNN and probe disagree.** A method's kNN accuracy (labelled bank) is far below its linear
#   probe accuracy, while for another method the two are close. What does each case say about how
#   the classes sit in the features?
#
# How to decide, and what to expect: [`notebooks/solutions/ANSWERS.md`, section 12](solutions/ANSWERS.md#12-compare).
#
# ## References
# - Oliver et al., *Realistic Evaluation of Deep Semi-Supervised Learning Algorithms*, NeurIPS 2018
#   (why equal budgets and shared baselines matter).
# - Each method's paper is cited in its own notebook.

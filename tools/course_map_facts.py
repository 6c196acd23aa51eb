"""What the course map says about each registered method: the hand-written columns of its table and
the family diagram (``tools/course_map.py`` turns them into ``docs/course_map.md`` and
``docs/course_map_families.svg``).

Columns that the code can answer are *not* written here: which labels a method trains on comes from
its ``data_sources``, how the course evaluates it from ``has_classifier``, its reference number from
``results/``. Everything else is one short phrase per method. ``published`` quotes only numbers whose
source is named (paper, table or official code) and says "—" with the reason where a paper has no
CIFAR-10 number for the course to aim at.

Notebook numbers are the course's order (issue 21): 00 set-up, 01 NCE → InfoNCE, 02 pretext tasks
and AET, 03 Exemplar and CPC, 04 SimCLR and MoCo, 05 SupCon and SelfCon, 06 NNCLR, 07 BigBiGAN,
08 MixMatch/FixMatch/S4L, 09 En-AET, 10 FeatMatch, 11 PAWS, 12 the comparison.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodFacts:
    """One row of the course map (every field is Markdown, one line)."""

    title: str           # the name a learner reads ("SimCLR")
    notebook: str        # the notebook that teaches it, "04"
    family: str          # a key of FAMILIES
    builds_on: tuple[str, ...]   # registered methods it extends most directly (arrows of the diagram;
                                 # the labels every semi-supervised method shares with the baseline are implied)
    target: str          # what the positive / the prediction target is
    against_collapse: str   # what prevents collapse or a shortcut
    state: str           # extra state beyond backbone and heads ("—" for none)
    passes: str          # forward passes per training step
    published: str       # published CIFAR-10 number and its source, or "—" and why
    label_note: str = ""  # added to the derived "labels" column (e.g. what the paper used)
    evaluation_note: str = ""   # added to the derived evaluation column


#: The families of the diagram, in drawing order: key → (title, part of the course).
FAMILIES: dict[str, tuple[str, str]] = {
    "baseline": ("Baseline", "both"),
    "pretext": ("Pretext tasks", "self-supervised"),
    "transformation": ("Transformation prediction", "self-supervised"),
    "contrastive": ("Instance discrimination / contrastive", "self-supervised"),
    "supervised_contrastive": ("Supervised contrastive", "self-supervised"),
    "nearest_neighbour": ("Nearest-neighbour", "self-supervised"),
    "generative": ("Generative", "self-supervised"),
    "consistency": ("Consistency / pseudo-label SSL", "semi-supervised"),
    "auxiliary": ("Self-supervised task + labels", "semi-supervised"),
    "prototype": ("Prototype / support-set SSL", "semi-supervised"),
}

NO_CIFAR = "— no CIFAR-10 number to aim at: {}"

METHODS: dict[str, MethodFacts] = {
    "supervised": MethodFacts(
        "Supervised", "00", "baseline", (),
        "the true label", "nothing to collapse: every target is a real label", "—",
        "1 over the B labelled weak views",
        "79.7 % with **4000** labels (20.26 % error), WRN-28-2, 500 000 iterations: Oliver et al., "
        "NeurIPS 2018, Table 1"),
    "rotation": MethodFacts(
        "RotNet", "02", "pretext", (),
        "which of 0°, 90°, 180°, 270° the image was turned by",
        "all four rotations of an image in one batch; flip before rotating, so the label stays well defined",
        "—", "1 over 4B rotated views",
        "≈ 64.6 % with 20 labels per class (35.37 % error), NIN, conv classifier on block 2: Gidaris et al., "
        "ICLR 2018, as tabulated by Qi & Luo, TPAMI 2022, Table 1"),
    "relative_position": MethodFacts(
        "Context prediction", "02", "pretext", (),
        "which of the 8 neighbours of a centre patch the other patch is",
        "gaps and jitter (edges), colour dropping (chromatic aberration), blurred and normalised patches, "
        "a shifted grid (position in the frame)",
        "—", "1 over 2B patches (centre + neighbour)",
        NO_CIFAR.format("ImageNet pretraining, PASCAL VOC transfer (Doersch et al., ICCV 2015)")),
    "jigsaw": MethodFacts(
        "Jigsaw", "02", "pretext", ("relative_position",),
        "which of P = 100 permutations shuffled the 3×3 tiles",
        "random gaps between tiles, each tile standardised, permutations far apart in Hamming distance",
        "—", "1 over 9B tiles",
        NO_CIFAR.format("ImageNet pretraining, PASCAL VOC transfer (Noroozi & Favaro, ECCV 2016)")),
    "colorization": MethodFacts(
        "Colorization", "02", "pretext", (),
        "the distribution over quantised ab colours of each pixel, from lightness L",
        "class rebalancing (rare colours weigh more: no grey average), grey images left out",
        "running colour prior (a buffer)", "1 over B lightness images (trunk + decoder)",
        NO_CIFAR.format("ImageNet and transfer only (Zhang et al., ECCV 2016)")),
    "aet": MethodFacts(
        "AET", "02", "transformation", ("rotation",),
        "the parameters of a random projective and affine warp, from E(x) and E(t(x))",
        "the target depends on each image's geometry: a constant code cannot regress it",
        "one decoder per transformation family", "1 over 3B images (original + 2 warped copies)",
        "— not quoted: the paper's CIFAR-10 results train a classifier on frozen NIN features with all "
        "50 000 labels (Zhang et al., CVPR 2019), not a few-label protocol"),
    "exemplar": MethodFacts(
        "Exemplar-CNN", "03", "contrastive", (),
        "the index of its own image: 50 000 surrogate classes",
        "a softmax over every image's class; heavy augmentation hides colour and position",
        "a 50 000-way classifier", "1 over B views",
        "— not quoted: features learned from STL-10 patches, classifier on all CIFAR-10 labels "
        "(Dosovitskiy et al., NeurIPS 2014), another protocol"),
    "cpc": MethodFacts(
        "CPC", "03", "contrastive", (),
        "the true encoding of the patch k rows below, among every patch of the batch (InfoNCE)",
        "layer norm instead of batch norm, per-patch colour dropping, a causal (masked) context network",
        "context network + one predictor W_k per offset", "1 over 49B patches, then the context network",
        NO_CIFAR.format("ImageNet only (van den Oord et al., arXiv 2018; Hénaff et al., ICML 2020)")),
    "simclr": MethodFacts(
        "SimCLR", "04", "contrastive", ("exemplar", "cpc"),
        "the other augmented view of the same image; the other 2N − 2 views are negatives",
        "negatives in the softmax; strong colour augmentation; both views in one batch-norm batch",
        "—", "1 over 2N views",
        "≈ 94 % linear probe with **all** labels, ResNet-50: Chen et al., ICML 2020, Appendix B.9"),
    "moco": MethodFacts(
        "MoCo v2", "04", "contrastive", ("simclr",),
        "the momentum encoder's key of the other view; K = 4096 queued keys are negatives",
        "negatives from the queue; shuffle batch norm (8 split groups on one device)",
        "queue of 4096 keys + momentum key encoder (m = 0.99)",
        "2: queries (with gradient) and keys (momentum encoder, no gradient)",
        "— paper: ImageNet only. Official CIFAR-10 demo: kNN 82.6 % (all labels in the bank), ResNet-18, "
        "200 epochs (facebookresearch/moco, colab/moco_cifar10_demo.ipynb)"),
    "supcon": MethodFacts(
        "SupCon", "05", "supervised_contrastive", ("simclr",),
        "the other view **and every image of the same class**",
        "negatives from the other classes", "—", "1 over 2B labelled views",
        "96.0 % with **all** labels (cross-entropy 95.0 %), ResNet-50: Khosla et al., NeurIPS 2020, Table 2",
        label_note=" (paper: all)"),
    "selfcon": MethodFacts(
        "SelfCon", "05", "supervised_contrastive", ("supcon",),
        "the sub-network's output for the same image (one view) and same-class outputs",
        "negatives from the other classes", "a second exit (sub-network) with its own head",
        "1 over B labelled views, read at two exits",
        "— not quoted: the course cites its CIFAR-100 result with all labels (Bae et al., AAAI 2023)",
        label_note=" (paper: all)"),
    "nnclr": MethodFacts(
        "NNCLR", "06", "nearest_neighbour", ("simclr", "moco"),
        "the nearest neighbour of the other view in a queue of past embeddings",
        "the other neighbours of the batch as negatives; look-up before enqueueing (no self-match)",
        "support queue of 4096 projections + predictor", "2 (one per view, per-view batch norm)",
        NO_CIFAR.format("ImageNet only (Dwibedi et al., ICCV 2021)")),
    "bigbigan": MethodFacts(
        "BigBiGAN", "07", "generative", (),
        "fool a discriminator on (x, E(x)) against (G(z), z)",
        "the adversarial game (E and G must invert each other); unary scores on x and on z",
        "generator + joint discriminator, two Adam optimisers",
        "2 updates: D (E, G without gradient, D on 2B pairs), then E and G (all again with gradient)",
        NO_CIFAR.format("ImageNet only (Donahue & Simonyan, NeurIPS 2019)")),
    "mixmatch": MethodFacts(
        "MixMatch", "08", "consistency", (),
        "the sharpened mean prediction over n_a = 2 weak views (guessed label), mixed by MixUp",
        "labelled cross-entropy; λ_u ramped up (a fast ramp collapsed to one class on the course's runs)",
        "EMA of the weights (evaluated)", "2: label guess over 2B_u (no gradient), then B_l + 2B_u mixed",
        "≈ 89 % with 250 labels (11 % error), WRN-28-2: Berthelot et al., NeurIPS 2019, abstract",
        evaluation_note=" (EMA weights)"),
    "fixmatch": MethodFacts(
        "FixMatch", "08", "consistency", ("mixmatch",),
        "the weak view's arg-max as a hard pseudo-label for the strong view, if confidence ≥ 0.95",
        "the confidence threshold; labelled cross-entropy", "EMA of the weights (evaluated)",
        "1 over B_l + 2μB (μ = 7: weak and strong unlabelled views)",
        "94.93 % with 250 labels, WRN-28-2, 2²⁰ steps: Sohn et al., NeurIPS 2020, Table 2",
        evaluation_note=" (EMA weights)"),
    "s4l": MethodFacts(
        "S4L-Rotation", "08", "auxiliary", ("rotation",),
        "the class (labelled images) and the rotation (every image)",
        "the rotation task needs no label, so the unlabelled images cannot collapse the class head",
        "a rotation head", "1 over 4(B_l + B_u) rotated views",
        NO_CIFAR.format("ImageNet with 10 % and 1 % of its labels only (Zhai et al., ICCV 2019)")),
    "s4l_exemplar": MethodFacts(
        "S4L-Exemplar", "08", "auxiliary", ("exemplar",),
        "copies of one image closer than any other image's (batch-hard triplet), plus the class",
        "the triplet's negatives (other images)", "a 1000-d embedding head",
        "1 over 8(B_l + B_u) heavy views",
        NO_CIFAR.format("ImageNet only (Zhai et al., ICCV 2019)")),
    "enaet": MethodFacts(
        "En-AET", "09", "auxiliary", ("mixmatch", "aet"),
        "MixMatch's targets + 5 families' warp parameters + the guess for each warped copy (KL)",
        "MixMatch's; the warp regression needs no label", "5 decoders; EMA of the weights",
        "3: MixMatch's 2, then B_u + 5 warped copies",
        "90.65 % with 100 labels (9.35 % error): Wang et al., IEEE TIP 2021, abstract",
        evaluation_note=" (EMA weights)"),
    "featmatch": MethodFacts(
        "FeatMatch", "10", "prototype", ("mixmatch", "fixmatch"),
        "the sharpened prediction of the weak view's prototype-refined features, for every mixed view",
        "labelled cross-entropy; prototypes drawn from labelled features",
        "class prototypes (k-means, refreshed each epoch), feature buffer, attention module",
        "2: weak views (no gradient), then B_l + 3B_u mixed views; + a labelled pass and k-means per epoch",
        "92.5 % with 250 labels (7.50 ± 0.64 % error), WRN-28-2: Kuo et al., ECCV 2020, as quoted in the "
        "README of GT-RIPL/FeatMatch",
        evaluation_note=" (on prototype-refined features)"),
    "paws": MethodFacts(
        "PAWS", "11", "prototype", ("nnclr",),
        "the sharpened soft-nearest-neighbour prediction of the other view against a labelled support batch",
        "ME-MAX (the mean prediction must spread over all classes); sharpening",
        "labelled memory (64 images per class) for the support batch",
        "2: supports + 2B_u global views, then 6B_u small crops (multi-crop)",
        "≈ 96 % with **4000** labels (4.0 ± 0.25 % error), WRN-28-2: Assran et al., ICCV 2021, as listed on "
        "Papers with Code; no 250-label run",
        evaluation_note=": soft nearest neighbours over the labelled images"),
}

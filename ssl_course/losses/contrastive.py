r"""Contrastive losses: InfoNCE (MoCo), NT-Xent (SimCLR), SupCon, SelfCon and NNCLR.

All functions are pure: they take embeddings and return a scalar loss tensor (plus, for the
NNCLR queue, an updated queue). They never create parameters, never detach their inputs (the
caller decides what receives gradients), and compute in the dtype and on the device of their
inputs, so the same call works for float32 on a GPU and float64 in a gradient check.

Shared vocabulary
-----------------
* anchor: the embedding whose loss term is being computed;
* positive: an embedding the anchor should be close to (another view of the same image, or
  for the supervised losses any embedding with the same label);
* negatives / candidates: everything the anchor is compared against in the softmax;
* temperature :math:`\tau`: divides the cosine similarities before the softmax; small values
  make the softmax concentrate on the hardest negatives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_2d,
    check_3d,
    check_floating,
    check_labels,
    check_nonempty,
    check_same_device_dtype,
    check_same_shape,
    check_temperature,
)

__all__ = [
    "info_nce",
    "nt_xent",
    "supcon",
    "selfcon",
    "nearest_neighbours",
    "nnclr",
    "update_queue",
]


# --------------------------------------------------------------------------------------------
# InfoNCE with a queue of negatives (MoCo)
# --------------------------------------------------------------------------------------------
def info_nce(
    query: Tensor,
    positive_key: Tensor,
    negative_keys: Tensor,
    temperature: float = 0.07,
) -> Tensor:
    r"""InfoNCE loss with one positive key per query and a shared set of negatives (MoCo).

    Shapes:
        query:         ``[N, D]`` embeddings of the queries (view 1, query encoder).
        positive_key:  ``[N, D]`` row ``i`` is the positive for ``query[i]`` (view 2, key encoder).
        negative_keys: ``[K, D]`` negatives shared by every query (MoCo's queue), ``K >= 1``.
        returns:       a scalar (0-dim tensor) in the inputs' dtype.

    All three inputs are L2-normalised inside, so dot products are cosine similarities.

    .. math::

        \mathcal{L} = -\frac{1}{N}\sum_{i=1}^{N}
        \log \frac{\exp(q_i^\top k_i^{+}/\tau)}
                  {\exp(q_i^\top k_i^{+}/\tau) + \sum_{j=1}^{K}\exp(q_i^\top n_j/\tau)}

    i.e. the cross-entropy of a :math:`(1+K)`-way classification whose correct class is the
    positive key.

    The loss does not detach anything. In MoCo the keys come from the momentum encoder under
    ``torch.no_grad()`` and the queue is a buffer, so only the query receives gradients.

    References:
        van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive Coding",
        2018 (InfoNCE). He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised Visual
        Representation Learning", CVPR 2020 (MoCo).
        Matches facebookresearch/moco (``moco/builder.py``): logits ``cat([l_pos, l_neg], 1) / T``
        fed to ``nn.CrossEntropyLoss`` with target 0, averaged over the batch.
    """
    _check_info_nce_args(query, positive_key, negative_keys, temperature)

    # 1. Normalise, so that a dot product is a cosine similarity in [-1, 1] and only the
    #    temperature sets how peaked the softmax is (not the embeddings' norms).
    q = F.normalize(query, dim=1)
    k_pos = F.normalize(positive_key, dim=1)
    k_neg = F.normalize(negative_keys, dim=1)

    # 2. One positive logit per query, and K negative logits against the shared queue.
    positive_logits = (q * k_pos).sum(dim=1, keepdim=True)  # [N, 1]
    negative_logits = q @ k_neg.T  # [N, K]

    # 3. Put the positive in column 0: the task becomes "(1+K)-way classification, the right
    #    answer is always class 0", which is exactly cross-entropy with all-zero targets.
    logits = torch.cat([positive_logits, negative_logits], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)

    # 4. Cross-entropy = -log softmax(logits)[0], averaged over the N queries.
    return F.cross_entropy(logits, targets)


# --------------------------------------------------------------------------------------------
# NT-Xent (SimCLR)
# --------------------------------------------------------------------------------------------
def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    r"""NT-Xent, the normalised-temperature cross-entropy of SimCLR.

    Shapes:
        z1, z2:  ``[N, D]`` projections of two augmented views; row ``i`` of both comes from
                 image ``i``. Normalised inside.
        returns: a scalar (0-dim tensor) in the inputs' dtype.

    The 2N embeddings :math:`z_1,\dots,z_{2N}` (view 1 then view 2) are each an anchor. The
    positive of anchor :math:`a` is the other view of the same image, :math:`p(a)`; the
    candidates are the other :math:`2N-1` embeddings (the anchor's similarity with itself is
    excluded). With cosine similarity :math:`s_{ab} = z_a^\top z_b / (\|z_a\|\|z_b\|)`:

    .. math::

        \mathcal{L} = \frac{1}{2N}\sum_{a=1}^{2N}
        -\log \frac{\exp(s_{a,p(a)}/\tau)}{\sum_{b=1,\,b\neq a}^{2N}\exp(s_{ab}/\tau)}

    This is the mean over all 2N anchors, as in the paper's Algorithm 1 and the PyTorch ports
    (e.g. SupContrast's ``SupConLoss`` without labels). The official TensorFlow code
    (google-research/simclr, ``add_contrastive_loss``) returns ``mean(loss_a + loss_b)``, the
    sum of the two directions' means, i.e. twice this value; the gradients differ by the same
    factor 2, which only rescales the learning rate.

    References:
        Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of
        Visual Representations", ICML 2020.
    """
    _check_nt_xent_args(z1, z2, temperature)

    n = z1.shape[0]
    # 1. Normalise and stack the two views: rows 0..N-1 are view 1, rows N..2N-1 view 2.
    z = torch.cat([F.normalize(z1, dim=1), F.normalize(z2, dim=1)], dim=0)  # [2N, D]

    # 2. All pairwise cosine similarities, divided by the temperature.
    logits = (z @ z.T) / temperature  # [2N, 2N]

    # 3. An embedding is trivially most similar to itself; leaving the diagonal in would put a
    #    constant exp(1/tau) in every denominator. -inf removes it from the softmax entirely.
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))

    # 4. The positive of row i is the same image's other view: row i+N for view 1, i-N for view 2.
    idx = torch.arange(n, device=z.device)
    targets = torch.cat([idx + n, idx])

    # 5. Cross-entropy over the 2N-1 candidates, averaged over all 2N anchors.
    return F.cross_entropy(logits, targets)


# --------------------------------------------------------------------------------------------
# Supervised contrastive loss (SupCon) and Self-Contrastive learning (SelfCon)
# --------------------------------------------------------------------------------------------
def supcon(
    features: Tensor,
    labels: Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> Tensor:
    r"""Supervised contrastive loss :math:`\mathcal{L}^{sup}_{out}` of Khosla et al.

    Shapes:
        features: ``[N, V, D]``: ``V`` views of each of ``N`` samples. The embeddings must
                  already be L2-normalised; this function does **not** normalise them (as in
                  SupContrast, where the model's head normalises).
        labels:   ``[N]`` integer class of each sample, or ``None``: then only the other views
                  of the same sample are positives (SimCLR's NT-Xent, times tau/base_tau).
        returns:  a scalar (0-dim tensor) in the features' dtype.

    Every one of the :math:`A = NV` embeddings is an anchor :math:`a`. Its candidates are the
    other :math:`A-1` embeddings, :math:`C(a)`; its positives :math:`P(a)\subseteq C(a)` are
    those with the same label (all views, excluding the anchor itself):

    .. math::

        \mathcal{L} = \frac{\tau}{\tau_{base}}\,\frac{1}{A}\sum_{a=1}^{A}
        \frac{-1}{\max(|P(a)|, 1)}\sum_{p\in P(a)}
        \log\frac{\exp(z_a^\top z_p/\tau)}{\sum_{c\in C(a)}\exp(z_a^\top z_c/\tau)}

    An anchor with no positive (a class that appears once in a single-view batch) contributes 0
    but still counts in the mean over :math:`A`.

    Follows HobbitLong/SupContrast's ``SupConLoss`` (``losses.py``) with ``contrast_mode='all'``:
    the factor :math:`\tau/\tau_{base}` (the gradient of the bare loss carries a factor
    :math:`1/\tau`; the rescaling replaces it by :math:`1/\tau_{base}`, so changing
    ``temperature`` alone does not change the gradient's scale), the row-max shift of the
    logits (numerics only; ``log_softmax`` does it here), and the guard that later versions of
    that file added for anchors without positives (their denominator ``mask.sum(1)`` is replaced
    by 1; the first version divided by zero and returned NaN).

    ``supcon(torch.stack([z1, z2], 1), None, tau, base_temperature=tau)`` equals
    ``nt_xent(z1, z2, tau)`` for normalised ``z1``, ``z2``.

    References:
        Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu and Krishnan, "Supervised
        Contrastive Learning", NeurIPS 2020, eq. (2).
    """
    _check_supcon_args(features, labels, temperature, base_temperature)
    n, v, d = features.shape

    # 1. Flatten views into one set of A = V*N anchors, view-major (all samples' view 0, then
    #    view 1, ...), the order SupContrast gets from torch.cat(torch.unbind(features, 1)).
    z = features.transpose(0, 1).reshape(v * n, d)  # [A, D]
    sample_class = torch.arange(n, device=z.device) if labels is None else labels.to(z.device)
    anchor_class = sample_class.repeat(v)  # class of row v*N + i is the class of sample i

    # 2. Similarities of every anchor with every candidate, divided by the temperature.
    logits = (z @ z.T) / temperature  # [A, A]

    # 3. An anchor is not its own candidate: remove the diagonal from the softmax.
    self_mask = torch.eye(v * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))

    # 4. log p(c | a) over the A-1 candidates. log_softmax subtracts the row maximum before
    #    exponentiating, which is SupContrast's "logits - logits_max" step: it prevents
    #    overflow at small temperature and does not change the value.
    log_prob = torch.log_softmax(logits, dim=1)

    # 5. Positives: same class, not the anchor itself.
    positive_mask = (anchor_class[:, None] == anchor_class[None, :]) & ~self_mask
    num_positives = positive_mask.sum(dim=1)

    # 6. Average the log-probabilities over each anchor's positives. Dividing by max(|P|, 1)
    #    makes anchors without positives contribute exactly 0 instead of 0/0 = NaN.
    positive_log_prob = torch.where(positive_mask, log_prob, torch.zeros_like(log_prob))
    mean_log_prob_pos = positive_log_prob.sum(dim=1) / num_positives.clamp(min=1)

    # 7. Scale by tau / base_tau and average over all A anchors.
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.mean()


def selfcon(
    backbone_features: Tensor,
    subnet_features: Tensor | Sequence[Tensor],
    labels: Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> Tensor:
    r"""SelfCon-S loss: supervised contrast between the exits of one network on a single view.

    Shapes:
        backbone_features: ``[N, D]`` L2-normalised projection of the backbone's last exit.
        subnet_features:   ``[N, D]``, or a list of ``S`` such tensors: the L2-normalised
                           projections of the sub-network exits (same images, same single view).
        labels:            ``[N]`` integer classes, or ``None`` (SelfCon-SU: only the same
                           image's other exits are positives).
        returns:           a scalar (0-dim tensor) in the features' dtype.

    The :math:`1+S` exit outputs of an image play the role that augmented views play in SupCon:
    every exit output of every image is an anchor; its positives are the outputs of all exits
    for all images with the same label, except the anchor itself (so they always include the
    same image's output from the other exits). With :math:`z_{i,e}` the output of exit
    :math:`e` for image :math:`i`, this is

    .. math::

        \mathcal{L}_{SelfCon} = \mathcal{L}^{sup}_{out}\big(
        [z_{i,1},\dots,z_{i,S},z_{i,F}]_{i=1}^{N};\ y,\ \tau,\ \tau_{base}\big)

    i.e. :func:`supcon` on the ``[N, 1+S, D]`` stack. Nothing is normalised inside.

    Matches raymin0223/self-contrastive-learning: ``main_represent.py`` stacks the sub-network
    outputs followed by the backbone output as views and calls ``ConLoss`` (``losses/losses.py``,
    SupContrast's loss with ``contrast_mode='all'``) with the labels. The stacking order does
    not change the value, because the loss averages over all anchors.

    References:
        Bae, Kim, Ko, Lee, Noh and Yun, "Self-Contrastive Learning: Single-viewed
        Supervised Contrastive Framework using Sub-network", AAAI 2023.
    """
    subnets = _check_selfcon_args(backbone_features, subnet_features)

    # 1. The exits act as views: stack them into SupCon's [N, V, D] layout, sub-networks
    #    first and the backbone last, as the official training script does.
    features = torch.stack([*subnets, backbone_features], dim=1)  # [N, 1+S, D]

    # 2. Same loss as SupCon over the stacked exits.
    return supcon(features, labels, temperature=temperature, base_temperature=base_temperature)


# --------------------------------------------------------------------------------------------
# NNCLR
# --------------------------------------------------------------------------------------------
def nearest_neighbours(z: Tensor, queue: Tensor) -> Tensor:
    r"""For each row of ``z``, the row of ``queue`` with the highest cosine similarity.

    Shapes:
        z:       ``[N, D]`` embeddings (need not be normalised).
        queue:   ``[Q, D]`` support set (need not be normalised).
        returns: ``[N, D]``: row ``i`` is the L2-normalised queue row :math:`\mathrm{NN}(z_i, Q)`.

    .. math::

        \mathrm{NN}(z, Q) = \frac{q_{j^*}}{\|q_{j^*}\|},\qquad
        j^* = \arg\max_{j}\ \frac{z^\top q_j}{\|z\|\,\|q_j\|}

    Ties go to the lowest index. The arg max is not differentiable, so no gradient reaches ``z``
    through the look-up; a gradient reaches ``queue`` only if it requires one (NNCLR's queue is a
    buffer, so it does not).

    References:
        Dwibedi, Aytar, Tompson, Sermanet and Zisserman, "With a Little Help from My Friends:
        Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021.
        Matches vturrisi/solo-learn's ``NNCLR.find_nn`` (``solo/methods/nnclr.py``), whose queue
        holds normalised embeddings and which returns ``queue[argmax(z @ queue.T)]``.
    """
    _check_nearest_neighbours_args(z, queue)

    # 1. Cosine similarity = dot product of normalised vectors.
    z_unit = F.normalize(z, dim=1)
    queue_unit = F.normalize(queue, dim=1)
    # 2. Index of the most similar queue entry for each z (no gradient through an arg max).
    with torch.no_grad():
        nearest = (z_unit @ queue_unit.T).argmax(dim=1)
    # 3. Return the neighbour itself, normalised like everything NNCLR compares.
    return queue_unit[nearest]


def nnclr(
    z1: Tensor,
    z2: Tensor,
    queue: Tensor,
    temperature: float = 0.1,
    p1: Tensor | None = None,
    p2: Tensor | None = None,
) -> Tensor:
    r"""NNCLR loss: the nearest neighbour of one view in a queue is the positive for the other view.

    Shapes:
        z1, z2:  ``[N, D]`` projections of two views (used to look up neighbours).
        queue:   ``[Q, D]`` support set of past projections (see :func:`update_queue`).
        p1, p2:  ``[N, D]`` predictor outputs for the two views; default to ``z1``, ``z2``
                 (NNCLR without a predictor).
        returns: a scalar (0-dim tensor) in the inputs' dtype.

    With :math:`\mathrm{NN}` from :func:`nearest_neighbours` and all vectors L2-normalised,
    the direction "neighbour of view 1 against predictions of view 2" is

    .. math::

        \mathcal{L}_{1\to 2} = -\frac{1}{N}\sum_{i=1}^{N}
        \log\frac{\exp(\mathrm{NN}(z_{1,i},Q)^\top p_{2,i}/\tau)}
                 {\sum_{k=1}^{N}\exp(\mathrm{NN}(z_{1,i},Q)^\top p_{2,k}/\tau)}

    and :math:`\mathcal{L} = \tfrac12(\mathcal{L}_{1\to 2} + \mathcal{L}_{2\to 1})`.

    Look up before enqueueing: call ``nnclr`` with the queue of previous steps, then
    :func:`update_queue` with one view (``z1``). Otherwise a sample finds itself as its own
    nearest neighbour.

    References:
        Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning
        of Visual Representations", ICCV 2021, eq. (2) and its symmetrised form.
        Matches vturrisi/solo-learn (``solo/losses/nnclr.py``: ``cross_entropy(nn @ p.T / T,
        arange(N))`` on normalised inputs; ``solo/methods/nnclr.py``: the two directions
        ``nn1`` vs ``p2`` and ``nn2`` vs ``p1``, each weighted 1/2).
    """
    p1 = z1 if p1 is None else p1
    p2 = z2 if p2 is None else p2
    _check_nnclr_args(z1, z2, queue, temperature, p1, p2)

    # 1. Swap the positive: the support-set neighbour of a view stands in for that view.
    nn1 = nearest_neighbours(z1, queue)
    nn2 = nearest_neighbours(z2, queue)
    p1_unit = F.normalize(p1, dim=1)
    p2_unit = F.normalize(p2, dim=1)

    # 2. Row i of nn @ p.T scores neighbour i against all N predictions of the other view;
    #    the matching one (column i) is the correct class.
    targets = torch.arange(z1.shape[0], device=z1.device)
    loss_12 = F.cross_entropy((nn1 @ p2_unit.T) / temperature, targets)
    loss_21 = F.cross_entropy((nn2 @ p1_unit.T) / temperature, targets)

    # 3. Symmetrise.
    return 0.5 * (loss_12 + loss_21)


@torch.no_grad()
def update_queue(queue: Tensor, z: Tensor, ptr: int | Tensor) -> tuple[Tensor, int]:
    r"""First-in-first-out update of a support-set queue (MoCo / NNCLR style).

    Shapes:
        queue:   ``[Q, D]`` current queue.
        z:       ``[N, D]`` new embeddings; stored L2-normalised and detached, cast to the
                 queue's dtype.
        ptr:     index of the oldest entry, where writing starts (an int or a 1-element tensor).
        returns: ``(new_queue, new_ptr)``: a new ``[Q, D]`` tensor (the input is not modified)
                 and ``(ptr + N) % Q``.

    Rows ``ptr, ptr+1, ...`` (wrapping around the end) are overwritten. If ``N >= Q`` only the
    last ``Q`` rows of ``z`` survive, as if they had been enqueued one at a time.

    Look up before enqueueing, and enqueue one view: call :func:`nnclr` (or :func:`info_nce`)
    with the old queue first, then ``queue, ptr = update_queue(queue, z1, ptr)``.

    References:
        He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
        (``_dequeue_and_enqueue`` in facebookresearch/moco, which additionally requires ``Q`` to
        be a multiple of ``N``; here any ``N`` works thanks to the wrap-around).
    """
    ptr = _check_update_queue_args(queue, z, ptr)
    n, size = z.shape[0], queue.shape[0]
    # 1. Store what the look-up compares with: unit vectors, without the graph of this step.
    new_rows = F.normalize(z.detach(), dim=1).to(queue.dtype)
    # 2. With more new rows than slots, the older new rows would be overwritten anyway.
    start = ptr
    if n > size:
        new_rows = new_rows[-size:]
        start = (ptr + n - size) % size
    # 3. Write at ptr, ptr+1, ... modulo Q, so the oldest entries are replaced first.
    positions = (start + torch.arange(new_rows.shape[0], device=queue.device)) % size
    new_queue = queue.clone()
    new_queue[positions] = new_rows
    return new_queue, (ptr + n) % size


# --------------------------------------------------------------------------------------------
# Input checks, one helper per function (the vocabulary is in _checks.py)
# --------------------------------------------------------------------------------------------
def _check_embeddings(name: str, t: object, layout: str = "[N, D]") -> None:
    check_floating(name, t)
    check_2d(name, t, layout)
    assert isinstance(t, Tensor)
    check_nonempty(name, t, 0, "rows")
    check_nonempty(name, t, 1, "feature dimensions")


def _check_feature_dims(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same feature dimension D (they are compared by dot "
            f"products); got D={a.shape[1]} for {name_a} (shape {tuple(a.shape)}) and D={b.shape[1]} "
            f"for {name_b} (shape {tuple(b.shape)}). Build the queue / bank with the projection head's "
            f"output size."
        )


def _check_info_nce_args(query: Tensor, positive_key: Tensor, negative_keys: Tensor, temperature: float) -> None:
    _check_embeddings("query", query)
    _check_embeddings("positive_key", positive_key)
    check_same_shape("query", query, "positive_key", positive_key)
    _check_embeddings("negative_keys", negative_keys, "[K, D]")
    _check_feature_dims("query", query, "negative_keys", negative_keys)
    check_same_device_dtype("query", query, "positive_key", positive_key)
    check_same_device_dtype("query", query, "negative_keys", negative_keys)
    check_temperature("temperature", temperature)


def _check_nt_xent_args(z1: Tensor, z2: Tensor, temperature: float) -> None:
    _check_embeddings("z1", z1)
    _check_embeddings("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_same_device_dtype("z1", z1, "z2", z2)
    check_temperature("temperature", temperature)


def _check_supcon_args(features: Tensor, labels: Tensor | None, temperature: float, base_temperature: float) -> None:
    check_floating("features", features)
    check_3d(
        "features",
        features,
        "[N, V, D] (samples, views, feature dimension)",
        fix="Stack the views on dim 1: torch.stack([z1, z2], dim=1), or features.unsqueeze(1) for a "
        "single view per sample.",
    )
    check_nonempty("features", features, 0, "samples")
    check_nonempty("features", features, 1, "views")
    check_nonempty("features", features, 2, "feature dimensions")
    check_temperature("temperature", temperature)
    check_temperature("base_temperature", base_temperature)
    n, v, d = features.shape
    if labels is None and v < 2:
        raise ValueError(
            f"supcon without labels needs at least 2 views per sample (the positives are the other "
            f"views); got features of shape {tuple(features.shape)} with V={v}. Stack two views with "
            f"torch.stack([z1, z2], dim=1), or pass labels."
        )
    if n * v < 2:
        raise ValueError(
            f"supcon needs at least 2 embeddings in total (an anchor needs something to be compared "
            f"with); got features of shape {tuple(features.shape)}."
        )
    if labels is not None:
        check_labels("labels", labels, n, "features.shape[0]")


def _check_selfcon_args(backbone_features: Tensor, subnet_features: Tensor | Sequence[Tensor]) -> list[Tensor]:
    _check_embeddings("backbone_features", backbone_features)
    if isinstance(subnet_features, Tensor):
        subnets = [subnet_features]
    elif isinstance(subnet_features, Sequence) and not isinstance(subnet_features, str):
        subnets = list(subnet_features)
    else:
        raise ValueError(
            f"subnet_features must be a [N, D] tensor or a list of them (one per sub-network); "
            f"got {type(subnet_features).__name__}."
        )
    if len(subnets) == 0:
        raise ValueError(
            "subnet_features is an empty list: SelfCon needs at least one sub-network output to "
            "contrast the backbone with. Pass the sub-network's projection, e.g. [sub_z]."
        )
    for s, sub in enumerate(subnets):
        name = "subnet_features" if isinstance(subnet_features, Tensor) else f"subnet_features[{s}]"
        _check_embeddings(name, sub)
        check_same_shape("backbone_features", backbone_features, name, sub)
        check_same_device_dtype("backbone_features", backbone_features, name, sub)
    return subnets


def _check_nearest_neighbours_args(z: Tensor, queue: Tensor) -> None:
    _check_embeddings("z", z)
    _check_embeddings("queue", queue, "[Q, D]")
    _check_feature_dims("z", z, "queue", queue)
    check_same_device_dtype("z", z, "queue", queue)


def _check_update_queue_args(queue: Tensor, z: Tensor, ptr: int | Tensor) -> int:
    check_floating("queue", queue)
    check_2d("queue", queue, "[Q, D]")
    check_nonempty("queue", queue, 0, "rows")
    check_floating("z", z)
    check_2d("z", z, "[N, D]")
    check_nonempty("z", z, 0, "rows")
    _check_feature_dims("z", z, "queue", queue)
    if z.device != queue.device:
        raise ValueError(
            f"z and queue must be on the same device; got {z.device} and {queue.device}. "
            f"Register the queue as a buffer so that model.to(device) moves it."
        )
    if isinstance(ptr, Tensor):
        if ptr.numel() != 1 or ptr.is_floating_point():
            raise ValueError(f"ptr must be a single integer; got a tensor of shape {tuple(ptr.shape)} "
                             f"and dtype {ptr.dtype}.")
        ptr = int(ptr.item())
    elif isinstance(ptr, bool) or not isinstance(ptr, int):
        raise ValueError(f"ptr must be an int (the index of the oldest queue row); got {ptr!r}.")
    size = queue.shape[0]
    if not 0 <= ptr < size:
        raise ValueError(
            f"ptr must satisfy 0 <= ptr < queue size ({size}); got {ptr}. Start from 0 and use the "
            f"pointer returned by the previous update_queue call."
        )
    return ptr


def _check_nnclr_args(z1: Tensor, z2: Tensor, queue: Tensor, temperature: float, p1: Tensor, p2: Tensor) -> None:
    _check_embeddings("z1", z1)
    _check_embeddings("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_same_device_dtype("z1", z1, "z2", z2)
    _check_embeddings("queue", queue, "[Q, D]")
    _check_feature_dims("z1", z1, "queue", queue)
    check_same_device_dtype("z1", z1, "queue", queue)
    check_temperature("temperature", temperature)
    for name, p in (("p1", p1), ("p2", p2)):
        _check_embeddings(name, p)
        check_same_shape("z1", z1, name, p)
        check_same_device_dtype("z1", z1, name, p)

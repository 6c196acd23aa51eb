"""Solutions to the contrastive-learning exercises.

Each function is what a learner is expected to write in the notebook: plain PyTorch, one step
per line, no validation. Check any of them with the matching checker, e.g.

    from ssl_course.exercises.contrastive import check_nt_xent
    check_nt_xent(nt_xent)        # prints "✓ correct on 6 inputs"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(query, positive_key, negative_keys, temperature=0.07):
    """MoCo's InfoNCE: query [N, D], positive_key [N, D], negative_keys [K, D] -> scalar."""
    # Cosine similarities need unit vectors.
    q = F.normalize(query, dim=1)
    k = F.normalize(positive_key, dim=1)
    queue = F.normalize(negative_keys, dim=1)

    # One positive score per query, K negative scores per query.
    l_pos = (q * k).sum(dim=1, keepdim=True)  # [N, 1]
    l_neg = q @ queue.T  # [N, K]

    # The positive is in column 0, so the correct "class" is 0 for every query.
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    targets = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets)


def nt_xent(z1, z2, temperature=0.5):
    """SimCLR's NT-Xent: z1, z2 [N, D] -> scalar, mean over the 2N anchors."""
    n = len(z1)
    z = torch.cat([F.normalize(z1, dim=1), F.normalize(z2, dim=1)])  # [2N, D]
    similarity = z @ z.T / temperature  # [2N, 2N]

    # An embedding must not be its own candidate.
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))

    # Row i's positive is the other view of the same image.
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, targets)


def supcon(features, labels=None, temperature=0.07, base_temperature=0.07):
    """SupCon L_out: features [N, V, D] (already normalised), labels [N] or None -> scalar."""
    n, v, d = features.shape
    if labels is None:
        labels = torch.arange(n, device=features.device)  # only the other views are positives

    # All views in one list, view-major, and the matching labels.
    z = features.transpose(0, 1).reshape(v * n, d)
    z_labels = labels.repeat(v)

    logits = z @ z.T / temperature
    self_mask = torch.eye(v * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1)

    positive_mask = (z_labels[:, None] == z_labels[None, :]) & ~self_mask
    num_positives = positive_mask.sum(dim=1).clamp(min=1)  # anchors without positives give 0
    positive_log_prob = torch.where(positive_mask, log_prob, torch.zeros_like(log_prob))
    mean_log_prob_pos = positive_log_prob.sum(dim=1) / num_positives

    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.mean()


def nearest_neighbours(z, queue):
    """NNCLR's support-set look-up: z [N, D], queue [Q, D] -> the nearest normalised queue rows [N, D]."""
    z = F.normalize(z, dim=1)
    queue = F.normalize(queue, dim=1)
    similarity = z @ queue.T  # [N, Q] cosine similarities
    nearest = similarity.argmax(dim=1)
    return queue[nearest]


def rotate_batch(x):
    """RotNet's pretext batch: x [B, C, H, W] -> ([4B, C, H, W], labels [4B]), rotation-major."""
    rotated = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    labels = [torch.full((len(x),), k, dtype=torch.long, device=x.device) for k in range(4)]
    return torch.cat(rotated), torch.cat(labels)


@torch.no_grad()
def momentum_update(key_encoder, query_encoder, momentum=0.99):
    """MoCo's key encoder update, in place: key <- m * key + (1 - m) * query, parameters only."""
    for key, query in zip(key_encoder.parameters(), query_encoder.parameters()):
        key.mul_(momentum).add_(query, alpha=1 - momentum)


def nnclr_loss(z1, z2, queue, temperature=0.1):
    """NNCLR without a predictor: the neighbour of each view is the anchor for the other view."""
    targets = torch.arange(z1.shape[0])
    nn1 = nearest_neighbours(z1, queue)  # [N, D], normalised
    nn2 = nearest_neighbours(z2, queue)
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    loss_12 = F.cross_entropy(nn1 @ z2.T / temperature, targets)  # row i: NN(z1_i) against every z2
    loss_21 = F.cross_entropy(nn2 @ z1.T / temperature, targets)
    return 0.5 * (loss_12 + loss_21)

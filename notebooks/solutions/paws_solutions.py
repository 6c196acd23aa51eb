"""Reference solution for the PAWS-loss exercise of notebook 11 (check with ``check_paws_loss``).

Written the way a course participant would: the formula, step by step, no input validation::

    from ssl_course.exercises import check_paws_loss
    check_paws_loss(paws_loss)   # ✓ correct on 6 inputs
"""
import torch
import torch.nn.functional as F


def paws_loss(anchors, supports, support_labels, tau, T):
    """Cross-entropy to the other view's sharpened SNN prediction, plus ME-MAX. anchors: [2B, D]."""
    # 1. soft nearest neighbours of every anchor: cosine similarities, softmax over the supports, label vote
    similarity = F.normalize(anchors, dim=1) @ F.normalize(supports, dim=1).T          # [2B, M]
    predictions = torch.softmax(similarity / tau, dim=1) @ support_labels               # [2B, K]
    # 2. targets: the OTHER view's prediction, sharpened, without gradient, tiny entries zeroed
    half = anchors.shape[0] // 2
    with torch.no_grad():
        targets = torch.cat([predictions[half:], predictions[:half]])                  # [2B, K]
        targets = targets ** (1 / T) / (targets ** (1 / T)).sum(dim=1, keepdim=True)
        targets[targets < 1e-4] = 0
    # 3. cross-entropy between targets and predictions, averaged over the anchors
    cross_entropy = -(targets * predictions.log()).sum(dim=1).mean()
    # 4. ME-MAX: negative entropy of the batch's mean sharpened prediction
    sharpened = predictions ** (1 / T) / (predictions ** (1 / T)).sum(dim=1, keepdim=True)
    mean_prediction = sharpened.mean(dim=0)                                             # [K]
    return cross_entropy + (mean_prediction * mean_prediction.log()).sum()

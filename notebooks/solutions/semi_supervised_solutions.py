"""Reference solutions for the semi-supervised notebook exercises.

Each function is a short, literal implementation of the formula from the paper, written the
way a course participant would write it in the notebook (no input validation, no tricks).
Check them with the matching ``ssl_course.exercises.semi_supervised.check_*`` function::

    from ssl_course.exercises.semi_supervised import check_sharpen
    check_sharpen(sharpen)   # ✓ correct on 6 inputs
"""
import torch
import torch.nn.functional as F


def sharpen(p, T):
    """Sharpen(p, T)_k = p_k^(1/T) / sum_j p_j^(1/T), row by row. p: [N, K]."""
    powered = p ** (1.0 / T)
    return powered / powered.sum(dim=1, keepdim=True)


def snn(query, support_embeddings, support_labels, temperature=0.1):
    """PAWS soft nearest neighbours: softmax(q̂ ẑ_Sᵀ / τ) y_S. Returns [N, K] probabilities."""
    # 1. normalise, so that dot products are cosine similarities
    query = F.normalize(query, dim=1)
    support_embeddings = F.normalize(support_embeddings, dim=1)
    # 2. soft nearest neighbours: softmax over the supports
    weights = torch.softmax(query @ support_embeddings.T / temperature, dim=1)
    # 3. weighted average of the support labels
    return weights @ support_labels


def me_max(probabilities, T=0.25):
    """PAWS ME-MAX: sum_k p̄_k log p̄_k with p̄ the mean of the sharpened predictions."""
    mean_prediction = sharpen(probabilities, T).mean(dim=0)
    return (mean_prediction * torch.log(mean_prediction)).sum()


def mixup(x1, p1, x2, p2, lam):
    """MixMatch MixUp: λ' = max(λ, 1−λ); mix inputs and labels with the same λ'."""
    lam = max(lam, 1 - lam)
    mixed_x = lam * x1 + (1 - lam) * x2
    mixed_p = lam * p1 + (1 - lam) * p2
    return mixed_x, mixed_p


def fixmatch_mask(logits_weak, threshold=0.95):
    """1.0 where the weak view's largest softmax probability is >= threshold, else 0.0. Shape [N]."""
    probabilities = torch.softmax(logits_weak, dim=1)
    max_probability = probabilities.max(dim=1).values
    return (max_probability >= threshold).float()


def fixmatch_loss(logits_weak, logits_strong, threshold=0.95):
    """Mean over ALL unlabelled samples of mask * CE(strong logits, hard pseudo-label)."""
    with torch.no_grad():
        probabilities = torch.softmax(logits_weak, dim=1)
        max_probability, pseudo_labels = probabilities.max(dim=1)
        mask = (max_probability >= threshold).to(logits_strong.dtype)
    per_sample = F.cross_entropy(logits_strong, pseudo_labels, reduction="none")
    return (mask * per_sample).mean()

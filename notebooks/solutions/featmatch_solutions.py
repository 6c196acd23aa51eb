"""Reference solutions for the FeatMatch notebook exercises (``10_featmatch``).

Short, literal implementations, as a course participant would write them. Check them with the
matching ``ssl_course.exercises.featmatch.check_*`` function::

    from ssl_course.exercises.featmatch import check_kmeans_step
    check_kmeans_step(kmeans_step)   # ✓ correct on 6 inputs
"""
import math

import torch


def featmatch_pseudo_labels(logits, T=0.75):
    """Sharpen(softmax(logits), T) without gradient. logits: [N, C]."""
    with torch.no_grad():
        probabilities = torch.softmax(logits, dim=1)
        powered = probabilities ** (1.0 / T)
        return powered / powered.sum(dim=1, keepdim=True)


def attention_weights(feature_embeddings, prototype_embeddings):
    """softmax(e_x E_pᵀ / sqrt(d)) over the prototypes. [N, d] x [P, d] -> [N, P]."""
    d = feature_embeddings.shape[1]
    scores = feature_embeddings @ prototype_embeddings.T / math.sqrt(d)
    return torch.softmax(scores, dim=1)


def kmeans_step(points, centroids):
    """One Lloyd iteration: nearest centroid for every point, then the mean of each cluster."""
    distances = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(dim=2)   # [N, k]
    assignment = distances.argmin(dim=1)
    new_centroids = centroids.clone()
    for j in range(centroids.shape[0]):
        members = points[assignment == j]
        if len(members) > 0:                      # an empty cluster keeps its centroid
            new_centroids[j] = members.mean(dim=0)
    return new_centroids

"""t-SNE of learned embeddings, coloured by class (scikit-learn's TSNE)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def tsne_2d(features: torch.Tensor | np.ndarray, seed: int = 0, perplexity: float = 30.0,
            max_iter: int = 500) -> np.ndarray:
    """``[N, D]`` features → ``[N, 2]`` t-SNE coordinates (cosine geometry: rows are L2-normalised).

    t-SNE preserves neighbourhoods, not distances: clusters that touch in the plot may be far apart
    in feature space, and cluster sizes mean little. Read it as "who is near whom".
    """
    from sklearn.manifold import TSNE

    array = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2 or len(array) < 5:
        raise ValueError(f"t-SNE needs [N, D] features with N >= 5, got shape {array.shape}")
    array = array / (np.linalg.norm(array, axis=1, keepdims=True) + 1e-12)
    perplexity = min(perplexity, (len(array) - 1) / 3)
    kwargs = {"max_iter": max_iter}
    try:
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, **kwargs)
    except TypeError:  # scikit-learn < 1.5 calls it n_iter
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_iter=max_iter)
    return embedding.fit_transform(array)


def plot_tsne(features, labels, class_names: Sequence[str] | None = None, title: str = "t-SNE",
              axis=None, seed: int = 0, max_points: int = 2000, legend: bool = True,
              legend_below: bool = True):
    """Scatter the 2-D t-SNE of ``features`` coloured by ``labels``; at most ``max_points`` points.

    The colour key goes below the plot (``legend_below=True``), where it hides no point; in a grid of
    panels, where below is the next row, ``legend_below=False`` puts it inside at the emptiest spot.
    """
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} features but {len(labels)} labels")
    if len(labels) > max_points:
        keep = np.random.default_rng(seed).choice(len(labels), max_points, replace=False)
        features = features[torch.as_tensor(keep)] if isinstance(features, torch.Tensor) else features[keep]
        labels = labels[keep]
    points = tsne_2d(features, seed=seed)
    if axis is None:
        _, axis = plt.subplots(figsize=(5, 5))
    for label in np.unique(labels):
        chosen = labels == label
        name = class_names[label] if class_names is not None else str(label)
        axis.scatter(points[chosen, 0], points[chosen, 1], s=4, label=name, color=plt.cm.tab10(label % 10))
    axis.set(title=title, xticks=[], yticks=[])
    if legend:
        if legend_below:
            axis.legend(markerscale=3, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3,
                        frameon=False)
        else:
            axis.legend(markerscale=3, fontsize=9, loc="best")
    return axis

r"""FeatMatch's prototype attention ``AugF``: refine each feature with what it shares with class prototypes.

Kuo, Ma, Huang and Kira, "FeatMatch: Feature-Based Augmentation for Semi-Supervised Learning",
ECCV 2020; official module ``AttenHead`` in ``GT-RIPL/FeatMatch`` ``model/model.py``. The
prototypes come from :func:`ssl_course.cluster.extract_prototypes`; the losses that use the
refined features are in :mod:`ssl_course.losses.featmatch`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_course.losses._checks import (
    check_matrix,
    check_non_negative,
    check_positive_int,
    check_same_device_dtype_all,
)

__all__ = ["PrototypeAttention"]


class PrototypeAttention(nn.Module):
    r"""FeatMatch's feature refinement / augmentation module ``AugF`` (multi-head attention).

    For a feature :math:`x \in \mathbb{R}^D` and prototypes :math:`P \in \mathbb{R}^{P \times D}`,
    each head :math:`h = 1..H` (head dimension :math:`d = D / H`) computes

    .. math::
        e_x = \phi_e^h(x),\quad E_p = \phi_e^h(P),\quad
        w = \operatorname{softmax}\!\Big(\frac{e_x E_p^{\top}}{\sqrt d}\Big),\quad
        a^h = \operatorname{ReLU}\big(\phi_a^h([\, w E_p \,;\, e_x \,])\big)

    and the refined feature is the residual

    .. math::
        g = \operatorname{ReLU}\big(x + \phi_r([a^1; \dots; a^H])\big).

    The same embedding :math:`\phi_e^h` maps features and prototypes (the official code embeds
    ``cat([fx_in, fp_in])`` with one ``embd{i}`` per head). Layer order follows ``AttenHead`` in
    ``GT-RIPL/FeatMatch`` ``model/model.py``: per-head ``Linear(D, D/H)`` embedding, softmax over
    prototypes scaled by ``sqrt(D/H)``, concatenation ``[attended, embedded feature]``, per-head
    ``Linear(2D/H, D/H)`` + ReLU, heads concatenated, ``Linear(D, D)``, residual, ReLU.
    The official model uses ``num_heads = 4`` on CIFAR-10.

    Differences from the official module, on purpose: attention dropout is optional and off
    by default (official: ``Dropout(0.1)`` on the attention weights), and the returned weights
    are the softmax probabilities *before* dropout, so every row sums to 1 for plotting.

    Args:
        feature_dim: ``D``, the backbone feature size.
        num_heads: ``H``; must divide ``D``.
        attention_dropout: dropout probability on the attention weights in training mode.

    Shapes:
        ``forward(features [N, D], prototypes [P, D]) -> (refined_features [N, D],
        attention_weights [N, H, P])``.
    """

    def __init__(self, feature_dim: int, num_heads: int = 4, attention_dropout: float = 0.0) -> None:
        super().__init__()
        attention_dropout = _check_attention_args(feature_dim, num_heads, attention_dropout)
        self.feature_dim = feature_dim
        self.num_heads = num_heads
        self.head_dim = feature_dim // num_heads
        # phi_e^h: one embedding per head, shared by features and prototypes so that their
        # dot products are comparable.
        self.embed_heads = nn.ModuleList([nn.Linear(feature_dim, self.head_dim) for _ in range(num_heads)])
        # phi_a^h: per head, fuses [attended prototypes, embedded feature] back to D / H.
        self.combine_heads = nn.ModuleList([nn.Linear(2 * self.head_dim, self.head_dim) for _ in range(num_heads)])
        # phi_r: maps the concatenated heads back to the feature space for the residual.
        self.residual_projection = nn.Linear(num_heads * self.head_dim, feature_dim)
        self.attention_dropout = nn.Dropout(attention_dropout)

    def forward(self, features: Tensor, prototypes: Tensor) -> tuple[Tensor, Tensor]:
        self._check_forward_args(features, prototypes)
        num_samples = features.shape[0]

        # 1. Embed features and prototypes with the same per-head map phi_e^h.
        feature_embeddings = torch.stack([embed(features) for embed in self.embed_heads])  # [H, N, d]
        prototype_embeddings = torch.stack([embed(prototypes) for embed in self.embed_heads])  # [H, P, d]

        # 2. Scaled dot-product attention over the prototypes: which prototypes does each
        #    feature resemble? Dividing by sqrt(d) keeps the softmax from saturating.
        scores = feature_embeddings @ prototype_embeddings.transpose(1, 2) / math.sqrt(self.head_dim)  # [H, N, P]
        attention_weights = torch.softmax(scores, dim=-1)

        # 3. Attended prototype summary: a convex combination of prototype embeddings.
        attended = self.attention_dropout(attention_weights) @ prototype_embeddings  # [H, N, d]

        # 4. Per head, fuse [attended, own embedding] with phi_a^h and a ReLU.
        combined = torch.stack([
            F.relu(combine(torch.cat([attended[head], feature_embeddings[head]], dim=1)))
            for head, combine in enumerate(self.combine_heads)
        ])  # [H, N, d]

        # 5. Concatenate the heads per sample, project with phi_r and add as a residual: the
        #    module learns a *change* to the feature, so it starts close to the identity.
        concatenated = combined.transpose(0, 1).reshape(num_samples, self.num_heads * self.head_dim)
        refined_features = F.relu(features + self.residual_projection(concatenated))  # [N, D]
        return refined_features, attention_weights.transpose(0, 1)  # [N, H, P]

    def _check_forward_args(self, features: Tensor, prototypes: Tensor) -> None:
        check_matrix("features", features, f"[N, {self.feature_dim}]")
        check_matrix("prototypes", prototypes, f"[P, {self.feature_dim}]")
        for name, tensor in (("features", features), ("prototypes", prototypes)):
            if tensor.shape[1] != self.feature_dim:
                raise ValueError(
                    f"{name} must have feature dimension {self.feature_dim}, got shape {tuple(tensor.shape)}"
                )
        check_same_device_dtype_all(features=features, prototypes=prototypes)
        weight = self.residual_projection.weight
        if features.dtype != weight.dtype or features.device != weight.device:
            raise ValueError(
                f"features are {features.dtype} on {features.device} but the module's parameters are "
                f"{weight.dtype} on {weight.device}; call module.to(features.dtype / device) first"
            )


def _check_attention_args(feature_dim: int, num_heads: int, attention_dropout: float) -> float:
    check_positive_int("feature_dim", feature_dim)
    check_positive_int("num_heads", num_heads)
    if feature_dim % num_heads != 0:
        raise ValueError(
            f"num_heads={num_heads} must divide feature_dim={feature_dim} (each head gets D / H dimensions)"
        )
    attention_dropout = check_non_negative("attention_dropout", attention_dropout)
    if attention_dropout >= 1:
        raise ValueError(f"attention_dropout must lie in [0, 1), got {attention_dropout}")
    return attention_dropout

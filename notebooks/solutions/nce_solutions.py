"""Solutions to the exercises of notebooks 01 (NCE → InfoNCE) and 02 (pretext tasks and CPC).

Plain PyTorch, one idea per line, no input validation: what a learner is expected to write.
Check each with its checker::

    from ssl_course.exercises import check_nce_loss, check_info_nce, check_rotate_batch, check_cpc_info_nce
    check_nce_loss(nce_loss)            # prints "✓ correct on 6 inputs"
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def nce_loss(log_model_data, log_noise_data, log_model_noise, log_noise_noise):
    """Binary NCE: [N] and [M] log-densities of data and noise samples -> scalar loss."""
    n, m = len(log_model_data), len(log_model_noise)
    log_nu = math.log(m / n)  # nu noise samples per data sample: prior odds noise:data = nu

    # The logistic classifier's logit: log p_model - log p_noise - log nu.
    logit_data = log_model_data - log_noise_data - log_nu
    logit_noise = log_model_noise - log_noise_noise - log_nu

    # Data should be called "data" (log sigma(logit)), noise "noise" (log(1 - sigma) = log sigma(-logit)).
    # Gutmann & Hyvärinen divide by the number of data samples N.
    return -(F.logsigmoid(logit_data).sum() + F.logsigmoid(-logit_noise).sum()) / n


def info_nce(query, positive_key, negative_keys, temperature=0.07):
    """InfoNCE as a (1 + K)-way classification: query/positive [N, D], negatives [K, D] -> scalar."""
    q = F.normalize(query, dim=1)
    k_pos = F.normalize(positive_key, dim=1)
    k_neg = F.normalize(negative_keys, dim=1)
    logits = torch.cat([(q * k_pos).sum(1, keepdim=True), q @ k_neg.T], dim=1) / temperature
    # The positive sits in column 0 of every row.
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def rotate_batch(x):
    """x [B, C, H, W] -> (x_rot [4B, C, H, W], labels [4B]): the batch at 0, 90, 180, 270 degrees."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # rotation-major
    labels = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return rotated, labels


def cpc_info_nce(predictions, targets, temperature=1.0):
    """CPC's InfoNCE: predictions/targets [B, S, D]; every other target in the batch is a negative."""
    b, s, d = predictions.shape
    predicted = predictions.reshape(b * s, d)
    actual = targets.reshape(b * s, d)
    logits = predicted @ actual.T / temperature  # [B*S, B*S] plain dot products
    return F.cross_entropy(logits, torch.arange(b * s, device=logits.device))

"""Reference solutions for the AET exercise of ``02_pretext_tasks`` and the En-AET exercise of ``09_enaet``.

Short, literal implementations of the formulas, written the way a course participant would
write them in the notebook. Check them with ``ssl_course.exercises.transformation``::

    from ssl_course.exercises import check_aet_loss
    check_aet_loss(aet_loss)   # ✓ correct on 6 inputs
"""
import torch
import torch.nn.functional as F


def aet_loss(predicted, true):
    """Mean over rows and parameters of (θ̂ − θ)². predicted, true: [N, P]."""
    return ((predicted - true) ** 2).mean()


def transformation_consistency(logits, q):
    """(1/N) Σ_n Σ_k q_nk (log q_nk − log softmax(z_n)_k), with 0 log 0 = 0. logits, q: [N, K]."""
    # 1. log-probabilities of the transformed copy's prediction
    log_p = F.log_softmax(logits, dim=1)
    # 2. q log q, defined as 0 where q = 0
    q_log_q = torch.where(q > 0, q * torch.log(q.clamp_min(1e-30)), torch.zeros_like(q))
    # 3. sum over classes, mean over rows
    return (q_log_q - q * log_p).sum(dim=1).mean()

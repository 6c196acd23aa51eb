"""Loss functions of the course, one module per family, all re-exported here::

    from ssl_course.losses import nt_xent, info_nce, supcon, paws, fixmatch_loss, exemplar_loss

Every function documents its formula (LaTeX), tensor shapes, the paper, and which official
implementation's conventions it follows. ``tests/test_losses_package.py`` checks that every
public function of the modules below is listed here.
"""
from __future__ import annotations

from ._checks import skip_value_checks, value_checks_enabled
from .adversarial import bigbigan_losses
from .contrastive import info_nce, nearest_neighbours, nnclr, nt_xent, selfcon, supcon, update_queue
from .exemplar import batch_hard_triplet_loss, exemplar_loss, s4l_exemplar_loss
from .featmatch import consistency_ramp, featmatch_consistency, featmatch_loss, featmatch_pseudo_labels
from .pretext import (
    annealed_mean,
    class_rebalancing_weights,
    colorization_l2_loss,
    colorization_loss,
    cpc_info_nce,
    cpc_patch_grid,
    jigsaw_loss,
    non_grey_mask,
    relative_position_loss,
    rotate_batch,
    rotation_loss,
    soft_encode_ab,
)
from .semi_supervised import (
    fixmatch_loss,
    me_max_regularizer,
    mixmatch_guess_labels,
    mixmatch_loss,
    mixup,
    paws,
    s4l_loss,
    sharpen,
    snn,
    soft_cross_entropy,
)
from .transformation import aet_ensemble_loss, aet_loss, avt_gaussian_nll, transformation_consistency_loss

__all__ = [
    # contrastive
    "info_nce",
    "nt_xent",
    "supcon",
    "selfcon",
    "nearest_neighbours",
    "nnclr",
    "update_queue",
    # pretext
    "rotate_batch",
    "rotation_loss",
    "cpc_info_nce",
    "cpc_patch_grid",
    "relative_position_loss",
    "jigsaw_loss",
    "soft_encode_ab",
    "class_rebalancing_weights",
    "colorization_loss",
    "annealed_mean",
    "colorization_l2_loss",
    "non_grey_mask",
    # exemplar (Exemplar, S4L-Exemplar)
    "exemplar_loss",
    "batch_hard_triplet_loss",
    "s4l_exemplar_loss",
    # semi_supervised
    "sharpen",
    "snn",
    "me_max_regularizer",
    "paws",
    "soft_cross_entropy",
    "mixmatch_guess_labels",
    "mixup",
    "mixmatch_loss",
    "fixmatch_loss",
    "s4l_loss",
    # featmatch
    "featmatch_pseudo_labels",
    "featmatch_consistency",
    "featmatch_loss",
    "consistency_ramp",
    # adversarial
    "bigbigan_losses",
    # transformation (AET / En-AET)
    "aet_loss",
    "aet_ensemble_loss",
    "transformation_consistency_loss",
    "avt_gaussian_nll",
    # value-check switch (_checks)
    "skip_value_checks",
    "value_checks_enabled",
]

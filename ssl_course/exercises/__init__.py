"""Checkers for the notebooks' exercises, one module per family, all re-exported here::

    from ssl_course.exercises import check_nt_xent
    check_nt_xent(my_nt_xent)   # prints a verdict, returns True when correct

A checker runs your function and the library's on several random inputs and prints either
"correct on N inputs" or the first input where they differ, with a hint about the usual mistake.
"""
from __future__ import annotations

from .adversarial import check_bigbigan_discriminator_loss, check_bigbigan_encoder_generator_loss
from .contrastive import (
    check_info_nce,
    check_nnclr_lookup,
    check_nnclr_loss,
    check_nt_xent,
    check_rotate_batch,
    check_supcon,
)
from .featmatch import check_attention_weights, check_featmatch_pseudo_labels, check_kmeans_step
from .momentum import check_momentum_update, reference_momentum_update
from .nce import check_cpc_info_nce, check_nce_loss, nce_loss_reference
from .paws import check_paws_loss
from .pretext import check_colorization_loss
from .semi_supervised import (
    check_fixmatch_loss,
    check_fixmatch_mask,
    check_me_max,
    check_mixup,
    check_sharpen,
    check_snn,
)
from .transformation import check_aet_loss, check_transformation_consistency

__all__ = [
    # adversarial
    "check_bigbigan_discriminator_loss",
    "check_bigbigan_encoder_generator_loss",
    # contrastive
    "check_info_nce",
    "check_nt_xent",
    "check_supcon",
    "check_nnclr_lookup",
    "check_nnclr_loss",
    "check_rotate_batch",
    # momentum
    "check_momentum_update",
    "reference_momentum_update",
    # pretext
    "check_colorization_loss",
    # transformation
    "check_aet_loss",
    "check_transformation_consistency",
    # featmatch
    "check_featmatch_pseudo_labels",
    "check_attention_weights",
    "check_kmeans_step",
    # nce
    "check_nce_loss",
    "check_cpc_info_nce",
    "nce_loss_reference",
    # paws
    "check_paws_loss",
    # semi_supervised
    "check_sharpen",
    "check_snn",
    "check_me_max",
    "check_mixup",
    "check_fixmatch_mask",
    "check_fixmatch_loss",
]

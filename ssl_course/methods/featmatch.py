r"""FeatMatch: feature-based augmentation with class prototypes (Kuo et al., ECCV 2020).

Official code: ``GT-RIPL/FeatMatch`` (``train/featmatch.py`` ``FeatMatchTrainer``,
``model/model.py`` ``FeatMatch``/``AttenHead``, ``config/cifar10/*.json``).

Image augmentations change pixels; FeatMatch also changes *features*. A small attention module
``AugF`` (:class:`ssl_course.models.PrototypeAttention`) refines every backbone feature ``f`` with
information from **class prototypes**: k-means centroids of the features of each class, extracted
from labelled images and from unlabelled images with confident pseudo-labels. One linear
classifier reads both the refined features ``g = AugF(f)`` and the raw ``f``:

.. math::
    \mathcal{L} = \mathcal{L}_{\text{clf}}
      + \frac{\lambda_g}{V} \sum_{v=1}^{V} H\big(\hat p, \operatorname{Clf}(g_v)\big)
      + \frac{\lambda_f}{V} \sum_{v=1}^{V} H\big(\hat p, \operatorname{Clf}(f_v)\big),
    \qquad \hat p = \operatorname{Sharpen}\big(\operatorname{softmax}(\operatorname{Clf}(g_{\text{weak}})), T\big)

over the ``V = K + 1`` views of each unlabelled image: ``K`` strong views and the weak view
itself (``weak_view_consistency``; ``V = K`` without it), every view refined by the attention
(:func:`ssl_course.losses.featmatch_consistency`, :func:`ssl_course.losses.featmatch_loss`,
``T = 0.75``, ``λ_g = 0.5``, ``λ_f = 2.0`` as the CIFAR-10 configs' ``loss.mix`` and
``loss.graph``, both multiplied by a **linear** ramp).

How this file follows ``train/featmatch.py``
--------------------------------------------
1. **Two phases.** The official trainer runs ``pretrain_iters = 3000`` iterations *without*
   attention (``train1``: pseudo-labels and both losses from the raw classifier, loss
   ``L_clf + ramp·mix·L_con``), then extracts the first prototypes and switches to ``train2``.
   Here the first phase is the first epoch: the buffer ``prototypes_ready`` is false until the
   first :meth:`on_epoch_end`.
2. **Prototypes** are refreshed at every epoch end (official: every ``sample_interval = 500``
   iterations) by :meth:`refresh_prototypes`: features of *all labelled images* from a fresh
   pass in eval mode without augmentation (``get_labeled_featrues``), plus the raw weak-view
   features of the unlabelled images recorded since the last refresh with the arg-max of the
   refined prediction as pseudo-label (``fu``/``pu``). Unlabelled features count if their
   confidence exceeds 0.5; the threshold halves (up to 5 times) until every class has more
   than ``prototypes_per_class`` of them, otherwise only labelled features are used
   (``get_unlabeled_features``). The first refresh therefore uses **labelled features only**,
   as in the official code, because nothing is recorded during the first phase. Per class,
   ``labeled_fraction`` of the prototypes come from labelled features and the rest from
   unlabelled ones (official ``l_ratio = 0.5``, ``pk = 20``), each set clustered by k-means on
   L2-normalised features (:func:`ssl_course.cluster.extract_prototypes`, ``metric="cosine"``).
   Unlike the official code, the class mean is not added as an extra prototype, so every
   class has exactly ``prototypes_per_class`` prototypes and the prototypes form one tensor.
3. **Views.** The official loader (``dataloader/base_loader.py`` ``SSLDataset``) gives each
   image one flip-and-crop view (view 0, the source of the pseudo-label) and ``K = 8``
   RandAugment views; ``train2`` feeds all ``K + 1`` views of every image through the attention
   and the classifier, gives every view of an unlabelled image the pseudo-label of its view 0,
   and averages the consistency terms over all of them, view 0 included. Here each unlabelled
   image has one weak view (:func:`weak_augment`) and ``num_strong_views = K`` strong views
   (:func:`strong_augment`), the weak one in the consistency terms as well; the default
   ``K = 2`` (official 8) because a step's cost grows with ``K + 1`` (``docs/RECIPES.md``).
   Each *labelled* image has one strong view (official: the same ``K + 1`` views as the
   unlabelled ones), so ``K`` does not multiply the labelled part of the batch.
4. **MixUp** as ``data_mixup``: labelled and unlabelled strong views are concatenated, mixed
   with a shuffled copy with one ``λ ~ Beta(0.75, 0.75)`` per step, ``λ' = max(λ, 1-λ)``, and the
   one-hot labels / pseudo-labels are mixed with the same ``λ'``; every loss is computed on the
   mixed batch with the soft cross-entropy (``log_loss``).
5. **Ramp.** ``coeff = step / coeff_rampup`` (linear, capped at 1); the official CIFAR-10 run
   ramps over 75 000 of its 183 000 iterations, ``ramp_fraction = 0.4`` of the run here.

Checkpoints capture the prototypes, their labels, whether each came from labelled features, the
``prototypes_ready`` flag and the unlabelled feature buffer (all registered buffers).

Evaluation: :meth:`predict` uses the classifier on the **refined** features once prototypes
exist (``eval2`` in the official code predicts with ``logits_xg``); before the first refresh, or
with ``predict_refined=False``, the classifier reads the raw features. :meth:`embed` returns
the raw backbone features for the kNN monitor and the linear probe.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.cluster import extract_prototypes
from ssl_course.data.augment import strong_augment, weak_augment
from ssl_course.data.beta import beta_sample
from ssl_course.losses import (
    consistency_ramp,
    featmatch_consistency,
    featmatch_loss,
    featmatch_pseudo_labels,
    mixup,
    soft_cross_entropy,
)
from ssl_course.models.attention import PrototypeAttention

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class FeatMatch(Method):
    """Backbone + linear classifier + prototype attention, trained with the FeatMatch loss.

    Args:
        backbone: a course backbone (``feature_dim`` must be divisible by ``num_heads``).
        num_classes: number of classes ``C``.
        prototypes_per_class: prototypes of each class (official CIFAR-10: 20 incl. the mean).
        labeled_fraction: share of each class's prototypes clustered from labelled features.
        num_heads: attention heads of ``AugF`` (official: 4).
        sharpen_temperature: ``T`` of the pseudo-labels (official: 0.75).
        lambda_g, lambda_f: final weights of the refined / raw consistency terms (0.5, 2.0).
        ramp_fraction: fraction of the run over which both weights ramp up linearly.
        mixup_alpha: ``α`` of the Beta distribution of MixUp's ``λ`` (official: 0.75).
        buffer_size: capacity of the buffer of unlabelled weak-view features between refreshes.
        confidence_threshold: starting confidence for unlabelled features to enter the k-means.
        kmeans_iters: Lloyd iterations per refresh.
        predict_refined: classify refined features at evaluation (official) or raw ones.
        num_strong_views: ``K``, strong RandAugment views of each unlabelled image per step
            (official CIFAR-10: 8; default 2 for the laptop budget, see ``docs/RECIPES.md``).
        weak_view_consistency: also put the weak view (the pseudo-label's source) in the
            consistency terms, as the official trainer does (``V = K + 1`` views); ``False``
            uses the ``K`` strong views only.
    """

    name = "featmatch"
    data_sources = ("labeled", "unlabeled")
    default_optimizer = "sgd"
    default_lr = 0.08                 # official 0.04 at bsu = 128 (config/cifar10/*.json), per 256 here
    default_momentum = 0.95           # official "mom"
    default_weight_decay = 2e-4       # official "weight_decay"
    default_batch_size = 128          # unlabelled images per step (official bsu = 128)
    default_unlabeled_ratio = 2       # labelled = 64 (official bsl = 64)
    has_classifier = True
    training_only_state = ("buffer_",)   # the feature buffer prototypes are clustered from

    def __init__(self, backbone: nn.Module, num_classes: int, prototypes_per_class: int = 10,
                 labeled_fraction: float = 0.5, num_heads: int = 4, sharpen_temperature: float = 0.75,
                 lambda_g: float = 0.5, lambda_f: float = 2.0, ramp_fraction: float = 0.4,
                 mixup_alpha: float = 0.75, buffer_size: int = 8192, confidence_threshold: float = 0.5,
                 kmeans_iters: int = 20, predict_refined: bool = True, num_strong_views: int = 2,
                 weak_view_consistency: bool = True) -> None:
        super().__init__(backbone, num_classes)
        for name, value in (("prototypes_per_class", prototypes_per_class), ("num_heads", num_heads),
                            ("buffer_size", buffer_size), ("kmeans_iters", kmeans_iters)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(num_strong_views, bool) or not isinstance(num_strong_views, int) or num_strong_views < 1:
            raise ValueError(f"num_strong_views must be a positive int (strong RandAugment views per unlabelled "
                             f"image; official CIFAR-10 K = 8), got {num_strong_views!r}")
        if not 0.0 < labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in (0, 1], got {labeled_fraction}")
        if not 0.0 <= ramp_fraction <= 1.0:
            raise ValueError(f"ramp_fraction must be in [0, 1], got {ramp_fraction}")
        if not sharpen_temperature > 0 or not mixup_alpha > 0:
            raise ValueError(f"sharpen_temperature and mixup_alpha must be > 0, "
                             f"got {sharpen_temperature}, {mixup_alpha}")
        if lambda_g < 0 or lambda_f < 0:
            raise ValueError(f"lambda_g and lambda_f must be >= 0, got {lambda_g}, {lambda_f}")
        if not 0.0 < confidence_threshold < 1.0:
            raise ValueError(f"confidence_threshold must be in (0, 1), got {confidence_threshold}")
        dim = backbone.feature_dim
        self.classifier = nn.Linear(dim, num_classes)
        self.attention = PrototypeAttention(dim, num_heads)
        self.prototypes_per_class = prototypes_per_class
        self.labeled_fraction = float(labeled_fraction)
        self.num_heads = num_heads
        self.sharpen_temperature = float(sharpen_temperature)
        self.lambda_g, self.lambda_f = float(lambda_g), float(lambda_f)
        self.ramp_fraction = float(ramp_fraction)
        self.mixup_alpha = float(mixup_alpha)
        self.buffer_size = buffer_size
        self.confidence_threshold = float(confidence_threshold)
        self.kmeans_iters = kmeans_iters
        self.predict_refined = bool(predict_refined)
        self.num_strong_views = num_strong_views
        self.weak_view_consistency = bool(weak_view_consistency)
        count = num_classes * prototypes_per_class
        # Prototypes [C*p, D] grouped by class, their classes, and 1 where a prototype was
        # clustered from labelled features (official `lp`).
        self.register_buffer("prototypes", torch.zeros(count, dim))
        self.register_buffer("prototype_labels", torch.arange(num_classes).repeat_interleave(prototypes_per_class))
        self.register_buffer("prototype_from_labeled", torch.ones(count, dtype=torch.bool))
        self.register_buffer("prototypes_ready", torch.zeros((), dtype=torch.bool))
        # A host copy of the flag, so that a GPU step does not read the buffer back every time;
        # None means "read it once" (after construction or after loading a checkpoint).
        self._ready_on_host: bool | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_ready_on_host", None))
        # Unlabelled weak-view features since the last refresh (official `fu`, `pu`), a ring buffer.
        self.register_buffer("buffer_features", torch.zeros(buffer_size, dim))
        self.register_buffer("buffer_labels", torch.zeros(buffer_size, dtype=torch.long))
        self.register_buffer("buffer_confidence", torch.zeros(buffer_size))
        self.register_buffer("buffer_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("buffer_next", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ networks ------------------
    @property
    def attention_active(self) -> bool:
        """True once prototypes exist (after the first refresh)."""
        if self._ready_on_host is None:
            self._ready_on_host = bool(self.prototypes_ready)
        return self._ready_on_host

    def refine(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``AugF``: raw features ``[N, D]`` → (refined ``[N, D]``, attention ``[N, heads, C*p]``)."""
        if not self.attention_active:
            raise RuntimeError("no prototypes yet: they are extracted at the first epoch end "
                               "(or call refresh_prototypes(data))")
        # The attention module checks that its input matches its float32 weights; under autocast
        # the backbone returns bfloat16, so hand it float32 (autocast still runs its matmuls fast).
        return self.attention(features.float(), self.prototypes)

    def attend(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised images → (raw features, refined features, attention weights ``[N, heads, C*p]``)."""
        features = self.backbone(images).float()
        refined, weights = self.refine(features)
        return features, refined, weights

    # ------------------------------------------------------------------ prototypes ----------------
    @torch.no_grad()
    def _record(self, features: torch.Tensor, probabilities: torch.Tensor) -> None:
        """Append unlabelled features with their pseudo-label and confidence to the ring buffer."""
        features, probabilities = features[-self.buffer_size:], probabilities[-self.buffer_size:]
        confidence, labels = probabilities.max(dim=1)
        slots = (self.buffer_next + torch.arange(features.shape[0], device=features.device)) % self.buffer_size
        self.buffer_features.index_copy_(0, slots, features.float())
        self.buffer_labels.index_copy_(0, slots, labels)
        self.buffer_confidence.index_copy_(0, slots, confidence.float())
        self.buffer_next.copy_((self.buffer_next + features.shape[0]) % self.buffer_size)
        self.buffer_count.copy_((self.buffer_count + features.shape[0]).clamp_max(self.buffer_size))

    def _confident_unlabeled(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Buffered features whose confidence passes a threshold that halves until every class
        has more than ``prototypes_per_class`` of them (official ``get_unlabeled_features``)."""
        count = int(self.buffer_count)
        if count == 0:
            return None
        features, labels = self.buffer_features[:count], self.buffer_labels[:count]
        confidence = self.buffer_confidence[:count]
        threshold = self.confidence_threshold
        for _ in range(5):
            chosen = confidence > threshold
            per_class = torch.bincount(labels[chosen], minlength=self.num_classes)
            if bool((per_class > self.prototypes_per_class).all()):
                return features[chosen], labels[chosen]
            threshold /= 2
        return None

    @torch.no_grad()
    def refresh_prototypes(self, data, seed: int = 0) -> dict[str, float]:
        """Re-extract the prototypes from ``data``'s labelled images and the buffered unlabelled
        features, then empty the buffer. Returns how many features of each kind were used."""
        from ssl_course.evaluate import extract_features

        was_training = self.training
        self.eval()
        try:
            labeled_features = extract_features(self.backbone, data.train_images[data.labeled_idx]).float()
        finally:
            self.train(was_training)
        labeled_labels = data.train_labels[data.labeled_idx].to(labeled_features.device)
        device = labeled_features.device
        generator = torch.Generator(device=device).manual_seed(10_007 * (seed + 1))
        per_class, classes = self.prototypes_per_class, self.num_classes
        from_labeled = max(1, round(per_class * self.labeled_fraction))
        unlabeled = self._confident_unlabeled() if from_labeled < per_class else None
        if unlabeled is None:
            prototypes, _ = extract_prototypes(labeled_features, labeled_labels, classes, per_class,
                                               iters=self.kmeans_iters, generator=generator, metric="cosine")
            source = torch.ones(classes, per_class, dtype=torch.bool, device=device)
            used_unlabeled = 0
        else:
            part_l, _ = extract_prototypes(labeled_features, labeled_labels, classes, from_labeled,
                                           iters=self.kmeans_iters, generator=generator, metric="cosine")
            part_u, _ = extract_prototypes(unlabeled[0].to(device), unlabeled[1].to(device), classes,
                                           per_class - from_labeled, iters=self.kmeans_iters,
                                           generator=generator, metric="cosine")
            # Group by class: class c's labelled prototypes, then its unlabelled ones.
            prototypes = torch.cat([part_l.view(classes, from_labeled, -1),
                                    part_u.view(classes, per_class - from_labeled, -1)], dim=1).flatten(0, 1)
            source = torch.zeros(classes, per_class, dtype=torch.bool, device=device)
            source[:, :from_labeled] = True
            used_unlabeled = int(unlabeled[0].shape[0])
        self.prototypes.copy_(prototypes)
        self.prototype_from_labeled.copy_(source.flatten())
        self.prototypes_ready.fill_(True)
        self._ready_on_host = True
        self.buffer_count.zero_()
        self.buffer_next.zero_()
        return {"labeled_features": int(labeled_features.shape[0]), "unlabeled_features": used_unlabeled}

    def on_epoch_end(self, epoch: int, data) -> None:
        self.refresh_prototypes(data, seed=epoch)

    # ------------------------------------------------------------------ training ------------------
    def _mixup_draw(self, generator: torch.Generator, size: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One ``λ ~ Beta(α, α)`` (a 0-d tensor on ``device``) and a permutation, both from the
        step's generator, so a resumed run mixes exactly as an uninterrupted one. λ stays on the
        device (:func:`beta_sample`): reading it back would stall a GPU step."""
        lam = beta_sample(self.mixup_alpha, 1, generator, device)[0]
        permutation = torch.randperm(size, generator=generator, device=generator.device).to(device)
        return lam, permutation

    def _views(self, labeled: torch.Tensor, unlabeled: torch.Tensor, weak_images: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """Images of one step, view-major: ``[L + V*N, 3, H, W]`` = one strong view of each
        labelled image, then ``K`` strong views of the ``N`` unlabelled images, then (with
        ``weak_view_consistency``) their weak views. The first strong view of both parts comes
        from one call, so that ``K = 1`` without the weak view draws exactly as before."""
        views = [strong_augment(torch.cat([labeled, unlabeled]), generator)]
        views += [strong_augment(unlabeled, generator) for _ in range(self.num_strong_views - 1)]
        if self.weak_view_consistency:
            views.append(weak_images)
        return torch.cat(views)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        generator = batch.generator
        labeled, unlabeled = batch.labeled_images, batch.unlabeled_images
        num_labeled = labeled.shape[0]
        active = self.attention_active

        # 1. Pseudo-labels from the weak view of every unlabelled image: sharpened prediction of
        #    the refined features (raw features before the first prototypes), no gradient.
        with torch.no_grad():
            weak_images = weak_augment(unlabeled, generator)                      # [N, 3, H, W]
            weak_features = self.backbone(weak_images).float()
            weak_input = self.refine(weak_features)[0] if active else weak_features
            weak_logits = self.classifier(weak_input).float()
            pseudo_labels = featmatch_pseudo_labels(weak_logits, self.sharpen_temperature)
            # 1a. Remember the raw weak features and the refined prediction for the next k-means.
            if active:
                self._record(weak_features, weak_logits.softmax(dim=1))

        # 2. One strong view of each labelled image and V views of each unlabelled image (K strong,
        #    plus the weak one), all mixed together (MixUp); every view of an image shares its
        #    pseudo-label. The attention (step 3) refines every view, as in the official train2.
        views = self._views(labeled, unlabeled, weak_images, generator)           # [L + V*N, 3, H, W]
        num_views = (views.shape[0] - num_labeled) // unlabeled.shape[0]
        targets = torch.cat([F.one_hot(batch.labels, self.num_classes).float(),
                             pseudo_labels.repeat(num_views, 1)])                  # [L + V*N, C]
        lam, permutation = self._mixup_draw(generator, views.shape[0], views.device)
        mixed, mixed_targets = mixup(views, targets, views[permutation], targets[permutation], lam)

        # 3. Raw features f, refined features g = AugF(f), one classifier on both.
        features = self.backbone(mixed)
        logits_f = self.classifier(features)
        logits_g = self.classifier(self.refine(features)[0]) if active else logits_f

        # 4. Losses (float32): classification on the mixed labelled part (refined prediction),
        #    consistency of the mixed unlabelled views for refined (g) and raw (f) predictions.
        with torch.autocast(device_type=features.device.type, enabled=False):
            logits_f, logits_g = logits_f.float(), logits_g.float()
            clf = soft_cross_entropy(logits_g[:num_labeled], mixed_targets[:num_labeled])
            per_view = (num_views, unlabeled.shape[0], self.num_classes)
            unlabeled_targets = mixed_targets[num_labeled:].view(per_view)          # [V, N, C]
            con_g = featmatch_consistency(logits_g[num_labeled:].view(per_view), unlabeled_targets)
            con_f = (featmatch_consistency(logits_f[num_labeled:].view(per_view), unlabeled_targets)
                     if active else logits_f.new_zeros(()))
            ramp = consistency_ramp(step.progress, self.ramp_fraction, 1.0, schedule="linear")
            loss = featmatch_loss(clf, con_g, con_f, ramp * self.lambda_g, ramp * self.lambda_f)

        logs: dict[str, torch.Tensor | float] = {"clf": clf.detach(), "con_g": con_g.detach(), "con_f": con_f.detach(),
                                                 "ramp": ramp, "attention": float(active)}
        if batch.unlabeled_true_labels is not None:  # monitoring only
            logs["pseudo_acc"] = (pseudo_labels.argmax(1) == batch.unlabeled_true_labels).float().mean()
        return StepOutput(loss, logs)

    # ------------------------------------------------------------------ evaluation ----------------
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        if self.predict_refined and self.attention_active:
            return self.classifier(self.refine(features)[0])
        return self.classifier(features)

    def predict_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Classifier logits on the raw features (no attention), for comparison."""
        return self.classifier(self.backbone(images))

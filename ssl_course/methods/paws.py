r"""PAWS: predicting view assignments with a labelled support set (Assran et al., ICCV 2021).

Official code: ``facebookresearch/suncet`` (``src/paws_train.py``, ``src/losses.py``,
``configs/paws/cifar10_train.yaml``, ``snn_eval.py``).

Every step, a class-balanced **support batch** of labelled images and a batch of unlabelled
images are embedded. Each unlabelled view is classified by soft nearest neighbours (SNN) against
the supports; the network learns to give a view the (sharpened) SNN prediction of the *other*
view of the same image, plus ME-MAX, which keeps the average prediction spread over all classes:

.. math::
    \mathcal{L} = \frac{1}{n}\sum_i H\big(\operatorname{Sharpen}(\pi(z^+_i), T),\ \pi(z_i)\big)
    + \sum_k \bar p_k \log \bar p_k

(:func:`ssl_course.losses.paws`). At test time there is no classifier head: an image gets the SNN
prediction against the embeddings of the whole labelled set (``snn_eval.py``).

How this file maps the official CIFAR-10 recipe onto the course's engine
------------------------------------------------------------------------
* **Networks.** Backbone, then the official 3-layer projection head
  (``Linear-BN-ReLU-Linear-BN-ReLU-Linear``, hidden = backbone width, output 128), and an
  optional 4×-bottleneck prediction head (``use_pred_head``: off in the CIFAR-10 config, on for
  ImageNet). Anchors (views and supports that receive gradients) are the prediction-head outputs
  when there is one, else the projections; targets are the projections, detached
  (``target_support_embeddings`` in :func:`ssl_course.losses.paws`). As in the official code:
  ``suncet``'s encoder applies ``fc`` (the projection head) inside ``_forward_backbone`` and only
  the prediction head in ``_forward_head``, so ``h`` ("before head") is the projection and,
  without a prediction head, ``z = h`` (as the comment above ``encoder(imgs,
  return_before_head=True)`` in ``src/paws_train.py`` says). Targets are projections, never
  pre-projection backbone features.
* **Support batch.** The engine draws a labelled batch each step, but not a class-balanced one,
  and the method never sees the whole labelled set before training starts. So the method keeps
  a small **labelled memory** (registered buffers, hence in checkpoints): up to
  ``memory_per_class`` of the most recent labelled images of each class, filled from the
  engine's labelled batches (``default_unlabeled_ratio = 1`` makes that batch as large as the
  unlabelled one, so every class is in memory after the first step with overwhelming
  probability). The support batch is drawn from that memory with
  :func:`ssl_course.data.class_balanced_batch`: ``support_per_class`` images of every class, each
  seen in ``support_views`` augmented views, with the official label smoothing (0.1).
  ``support_per_class=None`` (the default) uses the official 64 per class (``cifar10_train.yaml``:
  ``supervised_imgs_per_class: 64``; 1280 supports with 4000 labels) when the labels allow, and
  otherwise the labelled count of the class with the fewest labels (25 with 250 labels), so that
  no support image is repeated; :meth:`on_fit_start` reads that count from the data before the
  first step. Supports are the costliest part of a step: on a CPU (``tiny`` backbone, batch 128)
  a step took 0.44 s with 8 per class and 0.85 s with 32 (``benchmarks/figures/scaling_cpu.csv``);
  pass a small ``support_per_class`` for quick runs.
  A class not yet in memory (only possible in the first steps) is left out of that step's
  support batch.
* **Views.** Two global views per unlabelled image (:func:`contrastive_augment`, crop scale
  ``(0.75, 1)`` with multi-crop and ``(0.5, 1)`` without, colour strength 0.5, as
  ``paws_train.py`` sets for CIFAR-10) plus ``multicrop`` small 18×18 crops
  (:func:`multicrop_augment`, scale ``(0.3, 0.75)``); the official CIFAR-10 config uses 6.
* **Pairing.** Anchors are ``[view 1; view 2; small crops]``; targets are the projections of
  ``[view 2; view 1]``, so each global view is pulled towards the other one's assignment
  (``target_views = cat([view2, view1])`` in ``paws_train.py``).
* **Loss in float32** (the official code disables autocast for the loss): the SNN softmax with
  ``τ = 0.1`` is too sharp for bfloat16.
* **Optimiser.** As the official run (``cifar10_train.yaml``, ``src/utils.py``'s
  ``init_opt`` and ``WarmupCosineSchedule``): LARS, momentum 0.9, no Nesterov, weight decay 1e-6,
  biases and batch-norm parameters excluded from decay and adaptation (``LARS_exclude``), peak lr
  3.2 at an unlabelled batch of 256 (``default_lr``, scaled linearly by the engine), the warm-up
  starting at 0.8 (``default_start_lr_fraction`` = 1/4 of the peak) and the cosine ending at 0.032
  (``default_final_lr_fraction`` = 1/100). The warm-up length is the engine's (5 % of the budget;
  official: 10 of 600 epochs). Too large a learning rate collapses every embedding onto one point:
  the SNN prediction is then uniform for every view and ``paws_xent + me_max`` sits at 0
  (``log K - log K``).

Evaluation
----------
:meth:`prepare_evaluation` embeds every labelled training image (no augmentation) as the
support set; :meth:`predict` returns ``log`` of the SNN probabilities against it, so the engine's
``test_accuracy`` is the **soft nearest-neighbour classifier** (``has_classifier = True``), as
``snn_eval.py`` reports it. :meth:`embed` returns the backbone features, so ``linear_probe_accuracy``
is a logistic-regression head fitted on frozen backbone features of the labelled images: a
linear head on top of PAWS features, *not* the full fine-tuning of the paper's tables.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.augment import contrastive_augment, multicrop_augment
from ssl_course.data.labeled_memory import LabeledMemory
from ssl_course.losses.semi_supervised import paws, snn

from . import register
from .base import Batch, Method, StepInfo, StepOutput


def _projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """The official 3-layer projection head (``init_model`` in ``src/paws_train.py``)."""
    return nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(in_dim, hidden_dim)), ("bn1", nn.BatchNorm1d(hidden_dim)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(hidden_dim, hidden_dim)), ("bn2", nn.BatchNorm1d(hidden_dim)), ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(hidden_dim, out_dim)),
    ]))


def _prediction_head(dim: int) -> nn.Sequential:
    """The official 4× bottleneck prediction head (``use_pred_head: true`` in the ImageNet config)."""
    return nn.Sequential(OrderedDict([
        ("bn1", nn.BatchNorm1d(dim)), ("fc1", nn.Linear(dim, dim // 4)), ("bn2", nn.BatchNorm1d(dim // 4)),
        ("relu", nn.ReLU()), ("fc2", nn.Linear(dim // 4, dim)),
    ]))


def smoothed_one_hot(classes: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label rows as ``make_labels_matrix`` in ``suncet``: ``1 - s + s/C`` on the class, ``s/C`` elsewhere."""
    return F.one_hot(classes, num_classes).float() * (1.0 - smoothing) + smoothing / num_classes


#: Support images per class in the official CIFAR-10 run (``supervised_imgs_per_class``).
OFFICIAL_SUPPORT_PER_CLASS = 64


@register
class PAWS(Method):
    """Backbone + projection head (+ optional prediction head) trained with the PAWS loss.

    Args:
        backbone: a course backbone (``feature_dim`` attribute).
        num_classes: number of classes ``C``.
        output_dim: size of the projection (official: 128).
        use_pred_head: add the official prediction head (CIFAR-10 config: off).
        support_per_class: labelled images per class in each step's support batch; ``None``: the
            official 64, or fewer when a class has fewer labelled images (see :meth:`on_fit_start`).
        support_views: augmented views of each support image (official: 2).
        multicrop: small crops per unlabelled image (official CIFAR-10: 6; 0 disables them).
        temperature: SNN temperature ``τ`` (official: 0.1), also used at evaluation.
        sharpen_temperature: target sharpening ``T`` (official: 0.25).
        me_max: add the ME-MAX regulariser (official: on).
        label_smoothing: smoothing of the support labels (official: 0.1).
        color_jitter_strength: colour distortion strength of every view (official CIFAR-10: 0.5).
        memory_per_class: capacity of the labelled memory per class.
        image_size: side of the training images (the memory's shape must be fixed for checkpoints).
    """

    name = "paws"
    data_sources = ("labeled", "unlabeled")
    default_optimizer = "lars"          # official: LARS, momentum 0.9, no Nesterov
    default_nesterov = False
    default_lr = 3.2                    # official peak lr at an unlabelled batch of 256
    default_start_lr_fraction = 0.25    # official start_lr 0.8 = 3.2 / 4
    default_final_lr_fraction = 0.01    # official final_lr 0.032 = 3.2 / 100
    default_weight_decay = 1e-6
    default_batch_size = 256
    default_unlabeled_ratio = 1
    has_classifier = True
    training_only_state = ("memory.",)   # the labelled images supports are drawn from while training

    def __init__(self, backbone: nn.Module, num_classes: int, output_dim: int = 128, use_pred_head: bool = False,
                 support_per_class: int | None = None, support_views: int = 2, multicrop: int = 6,
                 temperature: float = 0.1, sharpen_temperature: float = 0.25, me_max: bool = True,
                 label_smoothing: float = 0.1, color_jitter_strength: float = 0.5,
                 memory_per_class: int = 64, image_size: int = 32) -> None:
        super().__init__(backbone, num_classes)
        if support_per_class is not None and (isinstance(support_per_class, bool)
                                              or not isinstance(support_per_class, int) or support_per_class < 1):
            raise ValueError(f"support_per_class must be a positive int or None (the official 64, "
                             f"capped by the labels), got {support_per_class!r}")
        for name, value in (("output_dim", output_dim),
                            ("support_views", support_views), ("memory_per_class", memory_per_class),
                            ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(multicrop, bool) or not isinstance(multicrop, int) or multicrop < 0:
            raise ValueError(f"multicrop must be an int >= 0, got {multicrop!r}")
        if use_pred_head and output_dim < 4:
            raise ValueError(f"the prediction head needs output_dim >= 4 (a 4x bottleneck), got {output_dim}")
        if not temperature > 0 or not sharpen_temperature > 0:
            raise ValueError("temperature and sharpen_temperature must be > 0, "
                             f"got {temperature}, {sharpen_temperature}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if not color_jitter_strength >= 0:
            raise ValueError(f"color_jitter_strength must be >= 0, got {color_jitter_strength}")
        self.projector = _projection_head(backbone.feature_dim, backbone.feature_dim, output_dim)
        self.predictor = _prediction_head(output_dim) if use_pred_head else None
        self.output_dim = output_dim
        self.use_pred_head = bool(use_pred_head)
        self.support_per_class = support_per_class
        # what a step draws: set from the labels by on_fit_start when support_per_class is None
        self.supports_in_use = support_per_class or min(OFFICIAL_SUPPORT_PER_CLASS, memory_per_class)
        self.support_views = support_views
        self.multicrop = multicrop
        self.temperature = float(temperature)
        self.sharpen_temperature = float(sharpen_temperature)
        self.me_max = bool(me_max)
        self.label_smoothing = float(label_smoothing)
        self.color_jitter_strength = float(color_jitter_strength)
        self.memory_per_class = memory_per_class
        self.image_size = image_size
        self.memory = LabeledMemory(num_classes, memory_per_class, image_size)
        # Evaluation support set (prepare_evaluation); derived from the data, so not checkpointed.
        self.register_buffer("eval_support", torch.empty(0, output_dim), persistent=False)
        self.register_buffer("eval_support_labels", torch.empty(0, num_classes), persistent=False)

    # ------------------------------------------------------------------ networks ------------------
    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images → projections ``h`` (the target space)."""
        return self.projector(self.backbone(images))

    def _anchor_space(self, h: torch.Tensor) -> torch.Tensor:
        return self.predictor(h) if self.predictor is not None else h

    def snn_embed(self, images: torch.Tensor) -> torch.Tensor:
        """The embedding the SNN classifier compares (``encoder(imgs)`` in ``snn_eval.py``)."""
        return self._anchor_space(self.project(images))

    # ------------------------------------------------------------------ labelled memory -----------
    def remember_labeled(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Write labelled ``uint8`` images into the labelled memory (:meth:`LabeledMemory.remember`)."""
        self.memory.remember(images, labels)

    def on_fit_start(self, data) -> None:
        """With ``support_per_class=None``: the official 64 supports per class, or the labelled count
        of the class with the fewest labels when that is smaller (and at most ``memory_per_class``)."""
        if self.support_per_class is not None:
            return
        labels = data.train_labels[data.labeled_idx]
        fewest = int(torch.bincount(labels.long(), minlength=self.num_classes).min())
        self.supports_in_use = max(1, min(OFFICIAL_SUPPORT_PER_CLASS, self.memory_per_class, fewest))

    def draw_support(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A class-balanced support batch from the memory: ``uint8 [S,3,H,W]`` and classes ``[S]``."""
        return self.memory.draw(self.supports_in_use, generator)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Checkpoints written before the memory became a submodule name its buffers memory_<name>.
        for name in ("images", "count", "next"):
            if f"{prefix}memory_{name}" in state_dict:
                state_dict[f"{prefix}memory.{name}"] = state_dict.pop(f"{prefix}memory_{name}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ training ------------------
    def _global_views(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scale = (0.75, 1.0) if self.multicrop > 0 else (0.5, 1.0)
        return contrastive_augment(images, generator, crop_scale=scale, jitter_strength=self.color_jitter_strength)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        generator = batch.generator
        unlabeled = batch.unlabeled_images
        size = unlabeled.shape[0]
        # 1. Support batch: remember this step's labelled images, draw a class-balanced batch
        #    from the labelled memory, augment every support image `support_views` times.
        self.remember_labeled(batch.labeled_images, batch.labels)
        support_images, support_classes = self.draw_support(generator)
        support = torch.cat([self._global_views(support_images, generator) for _ in range(self.support_views)])
        support_labels = smoothed_one_hot(support_classes.repeat(self.support_views), self.num_classes,
                                          self.label_smoothing)
        num_support = support.shape[0]

        # 2. Unlabelled views: two global views and `multicrop` small crops of every image.
        view1 = self._global_views(unlabeled, generator)
        view2 = self._global_views(unlabeled, generator)

        # 3. Embed. Same-resolution images go through the network together (as the official
        #    multi-crop forward does): supports + global views, then the small crops.
        h = self.project(torch.cat([support, view1, view2]))                # targets live here
        z = self._anchor_space(h)                                           # anchors live here
        anchors = [z[num_support:]]
        if self.multicrop > 0:
            crops = torch.cat([multicrop_augment(unlabeled, generator, jitter_strength=self.color_jitter_strength)
                               for _ in range(self.multicrop)])
            anchors.append(self._anchor_space(self.project(crops)))

        # 4. PAWS loss in float32. Row i of the targets belongs to anchor i: the targets of
        #    [view 1; view 2] are the projections of [view 2; view 1] (no gradient).
        with torch.autocast(device_type=z.device.type, enabled=False):
            anchor_views = torch.cat(anchors).float()
            target_views = h[num_support:].detach().float()
            target_views = torch.cat([target_views[size:], target_views[:size]])
            cross_entropy, me_max_term = paws(
                anchor_views, target_views, z[:num_support].float(), support_labels.to(z.device),
                temperature=self.temperature, sharpen_temperature=self.sharpen_temperature, me_max=self.me_max,
                multicrop=self.multicrop, target_support_embeddings=h[:num_support].detach().float())
            loss = cross_entropy + me_max_term

        # 5. Logs: how often the (hidden) label of an unlabelled image agrees with its target's
        #    arg-max — read only for monitoring, never used for training.
        logs: dict[str, torch.Tensor | float] = {"paws_xent": cross_entropy.detach(), "me_max": me_max_term.detach(),
                                                 "supports_per_class": float(self.supports_in_use)}
        if batch.unlabeled_true_labels is not None:
            with torch.no_grad():
                targets = snn(target_views[:size], h[:num_support].detach().float(), support_labels.to(z.device),
                              self.temperature)
                logs["target_acc"] = (targets.argmax(1) == batch.unlabeled_true_labels).float().mean()
        return StepOutput(loss, logs)

    # ------------------------------------------------------------------ evaluation ----------------
    @torch.no_grad()
    def prepare_evaluation(self, data) -> None:
        """Embed every labelled training image (no augmentation) as the SNN support set."""
        from ssl_course.evaluate import extract_features

        images = data.train_images[data.labeled_idx]
        self.eval_support = extract_features(self.snn_embed, images).float()
        self.eval_support_labels = F.one_hot(data.train_labels[data.labeled_idx].to(images.device),
                                             self.num_classes).float()

    def snn_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` soft-nearest-neighbour probabilities against the labelled support set."""
        if self.eval_support.shape[0] == 0:
            raise RuntimeError("no support set: call prepare_evaluation(data) first (evaluate_method does)")
        query = self.snn_embed(images)
        with torch.autocast(device_type=query.device.type, enabled=False):
            return snn(query.float(), self.eval_support.to(query.device), self.eval_support_labels.to(query.device),
                       self.temperature)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Log SNN probabilities (arg-max = the SNN classifier's class)."""
        probabilities = self.snn_probabilities(images)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()

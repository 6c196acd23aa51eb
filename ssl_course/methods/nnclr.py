"""NNCLR: the positive of a view is its nearest neighbour in a queue of past embeddings.

Dwibedi, Aytar, Tompson, Sermanet and Zisserman, "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021. Conventions from
vturrisi/solo-learn (``solo/methods/nnclr.py``), the reference PyTorch implementation.

Algorithm::

    queue Q: [Q_size, 256] unit vectors (random at the start), pointer ptr
    for each batch of images x (all training images, labels unused):
        v1, v2 = two contrastive augmentations of x
        z1, z2 = projector(backbone(v1)), projector(backbone(v2))   # 3-layer MLP ending in BN;
        p1, p2 = predictor(z1), predictor(z2)                       # 2-layer MLP; one pass per view
        loss = ½ [ InfoNCE(NN(z1, Q) vs p2) + InfoNCE(NN(z2, Q) vs p1) ]   # look up first ...
        Q, ptr = enqueue(Q, normalise(z1), ptr)                           # ... then enqueue

Each view has its own forward pass, so every batch norm normalises one view's batch with that
view's statistics (solo-learn's ``BaseMethod.training_step`` runs the backbone once per crop and
``NNCLR.training_step`` the projector and predictor once per view). One joint pass over both views
would mix the two views' statistics, which changes what the projector's final BN does to z1, z2.

The look-up uses the queue of *previous* steps; enqueueing first would let an image find its own
view. Only ``z1`` is enqueued (as solo-learn does), normalised and detached, at the end of the
step, so a checkpoint written after the step holds the queue that the next step needs.

Sizes: projector ``D → 2048 → 2048 → 256`` (BN after every layer, ReLU between), predictor
``256 → 4096 → 256`` (as in the paper and solo-learn); ``proj_hidden_dim`` / ``pred_hidden_dim``
shrink them for CPU runs. τ = 0.1 (the paper's value). The paper's queue holds 98 304 embeddings
for ImageNet with batch 4096; for CIFAR-sized runs we default to **4096**: with a few thousand
steps per run a much longer queue would hold embeddings from a network many updates old
(solo-learn's CIFAR config uses 65 536 with longer training).

Optimiser: solo-learn's CIFAR config (``scripts/pretrain/cifar/nnclr.yaml``) uses LARS, lr 0.4
at batch 256, weight decay 1e-5, trust coefficient 0.02 with ``clip_lr`` (the LARC variant: a
layer's rate never exceeds the global one), biases and norms excluded. We keep SGD (momentum 0.9,
Nesterov, 1-D parameters not decayed) with solo-learn's **weight decay 1e-5**: the course's LARS
follows SimCLR (trust 0.001, no clipping), which is not solo-learn's variant, and with clipping the
per-layer rate is bounded by the global one, so SGD at a comparable rate is the closer stand-in.
``default_lr = 0.1`` per 256 images was first chosen on short CPU runs on synthetic data (100
steps of batch 64, ``tiny`` backbone: 0.1, 0.2 and 0.8 per 256 gave kNN 0.66, 0.60 and 0.20).
Re-checked on a CIFAR-10 **validation** split (1,000 training images held out, never the test
set; ``benchmarks/recheck_defaults.py``): 150 steps of batch 128, ``tiny`` backbone, heads
narrowed to 512 for the CPU, one seed, weight decay 1e-5 and per-view BN: 0.05, 0.1 and 0.2 per
256 gave validation kNN 0.325, 0.348 and 0.287, so 0.1 stays (a short run: weak evidence).

Monitoring only (never used in the loss): ``queue_labels`` holds the **true** class of every
queued image and ``queue_index`` its index in ``train_images``. They let us log ``nn_purity``,
the fraction of looked-up neighbours (view 1) that share the query's true class, and show which
training images served as neighbours. Reading ``batch.unlabeled_true_labels`` for anything that
affects the weights would be cheating; here it only fills these two buffers and a logged number.
A neighbour that is still one of the random initial queue rows counts as wrong (label −1), as in
solo-learn's ``nn_acc``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course import distributed
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses.contrastive import nnclr
from ssl_course.models import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class NNCLR(Method):
    """Backbone + projector + predictor, trained with nearest-neighbour positives from a support queue."""

    name = "nnclr"
    data_sources = ("all",)
    default_lr = 0.1                 # per 256 images (SGD); see the note on the learning rate above
    default_weight_decay = 1e-5      # solo-learn's CIFAR config
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, queue_size: int = 4096, temperature: float = 0.1,
                 proj_dim: int = 256, proj_hidden_dim: int = 2048, pred_hidden_dim: int = 4096) -> None:
        super().__init__(backbone, num_classes)
        for name, value in (("queue_size", queue_size), ("proj_dim", proj_dim),
                            ("proj_hidden_dim", proj_hidden_dim), ("pred_hidden_dim", pred_hidden_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.projector = mlp_head(backbone.feature_dim, proj_hidden_dim, proj_dim, num_layers=3, last_batch_norm=True)
        self.predictor = mlp_head(proj_dim, pred_hidden_dim, proj_dim, num_layers=2)
        self.temperature = float(temperature)
        self.queue_size = queue_size
        self.proj_dim, self.proj_hidden_dim, self.pred_hidden_dim = proj_dim, proj_hidden_dim, pred_hidden_dim
        # The support set: random unit vectors until real embeddings replace them (solo-learn's start).
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # Monitoring only: true class and training-set index of each queued embedding (-1: random row).
        self.register_buffer("queue_labels", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_index", torch.full((queue_size,), -1, dtype=torch.long))

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images → projector outputs ``[B, proj_dim]`` (not normalised)."""
        return self.projector(self.backbone(images))

    @torch.no_grad()
    def nearest_queue_index(self, z: torch.Tensor) -> torch.Tensor:
        """``[B]`` index of the queue row with the highest cosine similarity to each row of ``z``."""
        return (F.normalize(z.float(), dim=1) @ self.queue.T).argmax(dim=1)

    @torch.no_grad()
    def enqueue(self, z: torch.Tensor, labels: torch.Tensor | None = None, index: torch.Tensor | None = None) -> None:
        """FIFO: write normalised, detached ``z`` at the pointer (wrapping), with its monitoring labels.

        The same rule as :func:`ssl_course.losses.update_queue` (with more rows than slots only the
        last ``queue_size`` rows survive), written with the pointer kept on the device, so that a
        training step on a GPU never waits to read it back to the host.
        """
        count, size = z.shape[0], self.queue_size
        keep = min(count, size)
        start = (self.queue_ptr + count - keep) % size
        slots = (start + torch.arange(keep, device=self.queue.device)) % size
        self.queue[slots] = F.normalize(z.detach()[-keep:].float(), dim=1).to(self.queue.dtype)
        # The same slots for the monitoring buffers.
        missing = torch.full((count,), -1, dtype=torch.long, device=self.queue.device)
        self.queue_labels[slots] = (labels if labels is not None else missing)[-keep:].to(self.queue.device)
        self.queue_index[slots] = (index if index is not None else missing)[-keep:].to(self.queue.device)
        self.queue_ptr.copy_((self.queue_ptr + count) % size)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        images = batch.unlabeled_images
        # 1. two contrastive views of every image (labels are not used)
        view1 = contrastive_augment(images, generator=batch.generator)
        view2 = contrastive_augment(images, generator=batch.generator)
        # 2. one pass per view (per-view batch norm, as solo-learn): projections z (for the look-up)
        #    and predictions p (for the loss)
        z1, z2 = self.project(view1), self.project(view2)                 # [B, proj_dim] each
        p1, p2 = self.predictor(z1), self.predictor(z2)                   # [B, proj_dim] each
        logs: dict[str, torch.Tensor] = {}
        truth = batch.unlabeled_true_labels
        # float32 outside autocast: the look-up and the similarities / 0.1 need more than bf16
        with torch.autocast(images.device.type, enabled=False):
            z1, z2, p1, p2 = (t.float() for t in (z1, z2, p1, p2))
            # under torchrun, predictions are scored against the neighbours of every process's images
            z1, z2, p1, p2 = (distributed.gather_with_grad(t) for t in (z1, z2, p1, p2))
            truth = distributed.gather(truth) if truth is not None else None
            indices = distributed.gather(batch.unlabeled_index) if batch.unlabeled_index is not None else None
            # 3. look up each view's nearest neighbour in the queue of PREVIOUS steps; it replaces
            #    the view as the positive for the other view's prediction (symmetrised InfoNCE)
            loss = nnclr(z1, z2, self.queue, temperature=self.temperature, p1=p1, p2=p2)
            # 4. monitoring only: do the neighbours of view 1 share the query's true class?
            if truth is not None:
                neighbour = self.nearest_queue_index(z1)
                logs["nn_purity"] = (self.queue_labels[neighbour] == truth).float().mean()
            # 5. enqueue view 1 (normalised, detached) after the look-up
            self.enqueue(z1.detach(), truth, indices)
        return StepOutput(loss, logs)

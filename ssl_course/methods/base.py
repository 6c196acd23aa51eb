"""The Method contract: what every method gives the one training engine.

A method is a small ``nn.Module`` that owns its networks (backbone, heads, momentum copies, queues)
and knows which augmented views it needs. The engine (:func:`ssl_course.train.fit`) hands it a
:class:`Batch` of raw ``uint8`` images that already sit on the device, and the method returns a
loss. Everything that must survive a checkpoint (queues, pointers, prototypes) is registered as a
buffer, so ``state_dict()`` captures it and a resumed run continues exactly.

Most methods minimise one loss with one optimiser. A method with several players (a GAN's
discriminator and generator) lists the updates of one training step in ``updates``, gives each its
parameters and optimiser settings in :meth:`Method.optimizer_specs` (an :class:`OptimizerSpec` per
update), and returns each update's loss from :meth:`Method.update_step`. The engine runs the
updates in order, each with its own optimiser, and never needs to know which method it trains.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ssl_course.optim import OPTIMIZERS

if TYPE_CHECKING:  # pragma: no cover
    from ssl_course.data import DataBundle


@dataclass
class OptimizerSpec:
    """One optimiser of a method and its settings; ``None`` means "the method's default".

    The engine resolves each field as: this spec's value, else the run's
    :class:`~ssl_course.train.TrainConfig` value (optimizer, weight decay, momentum), else the
    method's ``default_*`` class attribute.
    """

    parameters: list[nn.Parameter]
    optimizer: str | None = None          # "sgd" | "adamw" | "adam" | "lars"; None: method.default_optimizer
    lr_multiplier: float = 1.0            # peak lr = engine base lr (config.lr or method.default_lr * batch/256) * this
    weight_decay: float | None = None     # None: config.weight_decay or method.default_weight_decay
    momentum: float | None = None         # SGD/LARS momentum; None: method.default_momentum (0.9)
    nesterov: bool | None = None          # None: method.default_nesterov
    betas: tuple[float, float] = (0.9, 0.999)   # Adam/AdamW
    decay_biases_and_norms: bool | None = None  # weight decay (and LARS adaptation) on 1-D params; None: method default
    start_lr_fraction: float | None = None  # warm-up starts at this × peak lr; None: method.default_start_lr_fraction
    final_lr_fraction: float | None = None  # cosine ends at this × peak lr; None: method.default_final_lr_fraction

    def __post_init__(self) -> None:
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of {list(OPTIMIZERS)}")
        if not self.lr_multiplier > 0:
            raise ValueError(f"lr_multiplier must be > 0, got {self.lr_multiplier}")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("start_lr_fraction", "final_lr_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1] (a fraction of the peak lr), got {value}")


@dataclass
class Batch:
    """One training step's images, still ``uint8`` and on the training device.

    ``labeled_images [B_l,3,H,W]`` with ``labels [B_l]`` come from the few-label subset;
    ``unlabeled_images [B_u,3,H,W]`` with ``unlabeled_index [B_u]`` come from the unlabelled pool
    (or the whole training set for self-supervised methods). ``generator`` is seeded from
    ``(seed, step, process rank)`` so that augmentations repeat exactly after a resume;
    ``shared_generator`` is seeded from ``(seed, step)`` only and is identical on every process
    of a distributed run: draw anything that all processes must agree on (e.g. PAWS's labelled
    support batch) from it.

    ``unlabeled_true_labels`` are the hidden labels of the unlabelled images. They exist only so a
    method can *log* how many of its pseudo-labels are right; training on them would be cheating.
    """

    labeled_images: torch.Tensor | None
    labels: torch.Tensor | None
    unlabeled_images: torch.Tensor | None
    unlabeled_index: torch.Tensor | None
    generator: torch.Generator
    unlabeled_true_labels: torch.Tensor | None = None
    shared_generator: torch.Generator | None = None


@dataclass
class StepInfo:
    """Where the run is: global ``step`` (0-based), ``epoch``, and ``progress`` in [0, 1]."""

    step: int
    epoch: int
    progress: float
    steps_per_epoch: int


@dataclass
class StepOutput:
    """The loss to minimise and a few named scalars to log (tensors are fine: read lazily)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)


class Method(nn.Module):
    """Base class. Subclasses set ``name`` and the ``default_*`` hyper-parameters, and implement
    :meth:`training_step`; the other hooks have sensible defaults.

    Optimiser defaults (each overridable per update in :meth:`optimizer_specs`): ``default_optimizer``
    (``"sgd"``, ``"adamw"``, ``"adam"`` or ``"lars"``), ``default_momentum``, ``default_nesterov``
    and ``default_decay_biases_and_norms`` (``False``: biases and normalisation scales, the 1-D
    parameters, get no weight decay and no LARS adaptation). The schedule's shape: the warm-up
    rises linearly from ``default_start_lr_fraction`` × peak to the peak, then a cosine falls to
    ``default_final_lr_fraction`` × peak (0 and 0: the usual warm-up from zero and decay to zero;
    PAWS's official schedule starts at 1/4 and ends at 1/100 of its peak).

    A method with several optimisers sets ``updates`` (e.g. ``("discriminator", "generator")``),
    returns one :class:`OptimizerSpec` per update from :meth:`optimizer_specs`, and overrides
    :meth:`update_step` instead of :meth:`training_step`.

    ``data_sources`` says what the engine must draw each step:
    ``("labeled",)`` supervised only, ``("all",)`` self-supervised on every training image,
    ``("labeled", "unlabeled")`` semi-supervised (labelled batch + ``unlabeled_ratio``× as many
    unlabelled images), ``("labeled", "all")`` self-supervised plus a labelled batch (SupCon on
    the few labels uses ``("labeled",)``).
    """

    name: ClassVar[str] = "base"
    data_sources: ClassVar[tuple[str, ...]] = ("labeled",)
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.05          # for a batch of 256; the engine scales linearly
    default_weight_decay: ClassVar[float] = 5e-4
    default_momentum: ClassVar[float] = 0.9
    default_nesterov: ClassVar[bool] = True
    default_decay_biases_and_norms: ClassVar[bool] = False
    default_start_lr_fraction: ClassVar[float] = 0.0
    default_final_lr_fraction: ClassVar[float] = 0.0
    updates: ClassVar[tuple[str, ...]] = ("main",)   # the updates of one training step, in order
    default_batch_size: ClassVar[int] = 256
    default_unlabeled_ratio: ClassVar[int] = 7
    has_classifier: ClassVar[bool] = False       # True when predict() returns logits
    # prefixes of state_dict entries only training reads (replay memories, feature buffers): a reference
    # run's weights leave them out, so results/ stays small (ssl_course.reference.save_weights)
    training_only_state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not hasattr(backbone, "feature_dim"):
            raise ValueError("backbone must expose `feature_dim` (use ssl_course.models.build_backbone)")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.backbone = backbone
        self.num_classes = num_classes

    # --- hooks the engine calls -------------------------------------------------------------
    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def update_step(self, update: str, batch: Batch, step: StepInfo) -> StepOutput:
        """The loss of one update (a name in ``updates``); the engine steps that update's optimiser.

        The default serves single-loss methods: update ``"main"`` is :meth:`training_step`. Every
        update of a step sees the same ``batch`` (its generators continue where the previous
        update left them) and the same ``step``.
        """
        if update != "main":
            raise NotImplementedError(f"{type(self).__name__} lists update {update!r} in `updates` but does not "
                                      "override update_step to compute its loss")
        return self.training_step(batch, step)

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """One :class:`OptimizerSpec` per name in ``updates``: which parameters it moves, and how."""
        return {"main": OptimizerSpec(self.optimizer_parameters())}

    def after_optimizer_step(self, step: StepInfo) -> None:
        """Momentum encoders and queues update here, after the weights moved (once per step, after
        every update)."""

    def on_fit_start(self, data: DataBundle) -> None:
        """Called by :func:`~ssl_course.train.fit` before the first step (and again on a resume),
        with the data on the training device: settings that depend on the data, e.g. PAWS's support
        images per class, which the labelled images per class bound. Must not create parameters
        or change hyper-parameters (the run record and the optimisers are built from them)."""

    def on_epoch_end(self, epoch: int, data: DataBundle) -> None:
        """Per-epoch work, e.g. FeatMatch's k-means prototypes."""

    def prepare_evaluation(self, data: DataBundle) -> None:
        """Called before evaluation, e.g. PAWS embeds its labelled support set here."""

    def optimizer_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (momentum copies have ``requires_grad=False``)."""
        return [p for p in self.parameters() if p.requires_grad]

    # --- evaluation features ----------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images ``[B,3,H,W]`` → features ``[B,D]`` for kNN and the linear probe."""
        return self.backbone(images)

    def predict(self, images: torch.Tensor) -> torch.Tensor | None:
        """Class logits ``[B,C]`` when the method trains a classifier, else ``None``."""
        return None

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(embed(images), predict(images))``. Evaluation calls this once per batch; a method whose
        classifier sits on its embedding overrides it to run the backbone once instead of twice."""
        return self.embed(images), self.predict(images)

    # --- hyper-parameters: read from the constructor, so the record cannot drift from it ----------
    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        """The arguments of ``__init__`` after ``backbone`` and ``num_classes``: what
        :func:`~ssl_course.methods.build_method` accepts as ``**hparams``."""
        parameters = inspect.signature(cls.__init__).parameters
        return tuple(name for name, parameter in parameters.items()
                     if name not in ("self", "backbone", "num_classes")
                     and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY))

    def hparams(self) -> dict[str, Any]:
        """Every constructor hyper-parameter with the value this method stores under the same name
        (recorded in ``metrics.json`` and the checkpoint). ``build_method(name, backbone,
        num_classes, **method.hparams())`` builds the same method again."""
        names = self.hyperparameter_names()
        missing = [name for name in names if not hasattr(self, name)]
        if missing:
            raise AttributeError(f"{type(self).__name__} keeps no attribute for its hyper-parameter(s) {missing}; "
                                 "store each one in __init__ (self.<name> = <name>) so that hparams() can record it")
        return {name: getattr(self, name) for name in names}

"""Context prediction: where does this patch sit relative to that one? (Doersch, Gupta & Efros, ICCV 2015).

Two patches are cut from an image: the centre of a 3x3 grid and one of its 8 neighbours. The same
trunk (the backbone) encodes each patch on its own; a small head reads the two features side by
side ("late fusion") and must say which of the 8 positions the neighbour came from. To tell that
an ear lies *above* an eye, the trunk must recognise ears and eyes.

Algorithm (one step)::

    1. x = weak_augment(images, pad=0)                    # random flip only (no shift, see below)
    2. centre, neighbour, y = relative_position_pairs(x)  # [B,3,p,p] twice, y in 0..7
    3. centre, neighbour = drop_colours(...)               # the chromatic-aberration defence
    4. f_c, f_n = backbone(centre), backbone(neighbour)   # [B, D] each, one shared trunk
    5. logits = head(cat(f_c, f_n))                        # [B, 8]
    6. loss = relative_position_loss(logits, y)

Shortcuts and the defences (scaled from the paper's 96 px patches to 32x32 images, see
``docs/RECIPES.md``):

* **Continuing edges**: adjacent patches share lines and textures across their boundary. A gap
  (paper: 48 px, half a patch; here 3 px with 8 px patches) and a random jitter of each patch
  (paper: up to 7 px; here ±1 px) leave no boundary to match.
* **Chromatic aberration**: lenses shift colour channels by an amount that depends on the position
  in the frame, so the green-vs-magenta offset of a patch tells where it is. The paper's remedy
  that we use is *colour dropping*: each patch keeps one random colour channel, the two others
  are replaced by faint Gaussian noise (the paper also tried projecting out green-magenta).
  The notebook shows the effect; ``color_drop=False`` turns it off.
* The grid sits in the centre of the image without a random shift: a shift would need space the
  32x32 image does not have (the grid and jitter use 32 of 32 pixels).

Evaluation uses the backbone on whole images (kNN, linear probe): a fully convolutional trunk with
global pooling takes any input size, so the trunk trained on 8x8 patches runs on 32x32 images, as
the paper's trunk trained on patches was evaluated on whole images.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import weak_augment
from ssl_course.data.patches import relative_position_pairs
from ssl_course.losses.pretext import relative_position_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput

NUM_POSITIONS = 8


def drop_colours(patches: torch.Tensor, generator: torch.Generator | None, noise_std: float = 0.01) -> torch.Tensor:
    """Keep one random channel of each normalised patch ``[N,3,p,p]``; the others become N(0, noise_std²) noise.

    Doersch et al. replace the dropped channels by Gaussian noise of about 1/100 of the kept
    channel's standard deviation; normalised channels have a standard deviation near 1.
    """
    count = patches.shape[0]
    draw_device = generator.device if generator is not None else patches.device
    keep = (torch.rand(count, generator=generator, device=draw_device).to(patches.device) * 3).long()
    mask = nn.functional.one_hot(keep.clamp_max(2), 3).to(patches.dtype)[:, :, None, None]   # [N, 3, 1, 1]
    noise = torch.randn(patches.shape, generator=generator, device=draw_device).to(patches) * noise_std
    return patches * mask + noise * (1 - mask)


@register
class RelativePosition(Method):
    """Shared trunk on a centre patch and a neighbour patch, late fusion, 8-way position classifier."""

    name = "relative_position"
    data_sources = ("all",)
    default_optimizer = "sgd"
    default_lr = 0.1
    default_weight_decay = 5e-4
    default_batch_size = 256   # pairs (one per image)

    def __init__(self, backbone: nn.Module, num_classes: int, patch_size: int = 8, gap: int = 3, jitter: int = 1,
                 color_drop: bool = True, hidden_dim: int = 512) -> None:
        super().__init__(backbone, num_classes)
        if patch_size < 4 or gap < 0 or jitter < 0 or 3 * patch_size + 2 * gap + 2 * jitter > 32:
            raise ValueError(f"the 3x3 grid of patches (3·patch_size + 2·gap + 2·jitter) must fit in 32 pixels "
                             f"with patch_size >= 4; got patch_size={patch_size}, gap={gap}, jitter={jitter}.")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be positive; got {hidden_dim}.")
        self.patch_size, self.gap, self.jitter = patch_size, gap, jitter
        self.color_drop = bool(color_drop)
        self.hidden_dim = hidden_dim
        # Late fusion: the two patch features meet only here (paper: fc6 per patch, then fc7, fc8).
        self.position_head = nn.Sequential(
            nn.Linear(2 * backbone.feature_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, NUM_POSITIONS))

    def pairs(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``[B,3,32,32]`` → ``(logits [B, 8], labels [B])`` for one random pair each."""
        # 1. centre + neighbour patches and the neighbour's position
        centre, neighbour, labels = relative_position_pairs(images, self.patch_size, self.gap, self.jitter,
                                                            generator=generator)
        both = torch.cat([centre, neighbour])                                 # [2B, 3, p, p]
        # 2. the chromatic-aberration defence, per patch
        if self.color_drop:
            both = drop_colours(both, generator)
        # 3. one trunk for both patches, then late fusion
        features = self.backbone(both)                                        # [2B, D]
        f_centre, f_neighbour = features.chunk(2)
        return self.position_head(torch.cat([f_centre, f_neighbour], dim=1)), labels

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # a flip keeps the task well posed (the label refers to the flipped image); no shift (see above)
        views = weak_augment(batch.unlabeled_images, generator=batch.generator, pad=0)
        logits, labels = self.pairs(views, batch.generator)
        loss = relative_position_loss(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return StepOutput(loss, {"position_acc": accuracy})

    @torch.no_grad()
    def position_accuracy(self, images: torch.Tensor, seed: int = 0) -> float:
        """Share of pairs cut from normalised ``images`` whose position the head gets right (chance 1/8)."""
        logits, labels = self.pairs(images, torch.Generator(device=images.device).manual_seed(seed))
        return (logits.argmax(1) == labels).float().mean().item()


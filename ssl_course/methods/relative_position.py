"""Context prediction: where does this patch sit relative to that one? (Doersch, Gupta & Efros, ICCV 2015).

Two patches are cut from an image: the centre of a 3x3 grid and one of its 8 neighbours. The same
trunk (the backbone) encodes each patch on its own; a small head reads the two features side by
side ("late fusion") and must say which of the 8 positions the neighbour came from. To tell that
an ear lies *above* an eye, the trunk must recognise ears and eyes.

Algorithm (one step)::

    1. x = weak_augment(images, pad=0)                    # random flip only
       x = shift_grid(x, 16)                               # enlarged to 48x48, a random 32x32 window
    2. centre, neighbour, y = relative_position_pairs(x)  # [B,3,p,p] twice, y in 0..7
    3. patches = blur_some(patches)                        # 1 in 3 shrunk (to as few as 2x2) and regrown
       patches = drop_colours(patches)                     # the chromatic-aberration defence
       patches = centre_and_scale(patches)                 # mean 0 per channel, RMS 1 per patch
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
* **Sharpness and brightness**: the official code (``cdoersch/deepcontext`` ``train.py``,
  ``prep_image``) also shrinks one patch in three to a random size (down to 100 of 96x96 pixels;
  here down to 2x2 of 8x8, ``downsample_prob``) and scales it back, so that how sharp a patch is
  says little, and subtracts each patch's mean and divides by its overall magnitude "so that
  gradients are a less useful cue" (``normalise_patches``): brightness and contrast that change
  across the frame (vignetting, sky above ground) no longer tell where a patch was cut.
* **Where in the frame**: the grid and jitter use 32 of 32 pixels, so on the image as it is each
  of the 8 neighbours would always be cut from the same place of the frame (±1 px), and whatever
  a patch shows about *where in the frame* it lies (sky at the top, the object in the middle)
  would give the label away: a network shown the neighbour patch *alone* names its position for
  42-44 % of CIFAR-10 validation pairs (chance 12.5 %; ``docs/RECIPES.md``). The official code starts its
  grid at a random offset and pairs patches all over the image. Here every image is enlarged by
  ``grid_shift`` pixels (to 48x48) and the 32x32 window holding the grid is cut at a random place
  of it (:func:`shift_grid`), so the places the 8 positions are cut from overlap: the neighbour
  alone then gives 15-16 %. ``grid_shift=0`` restores the fixed, centred grid.

Evaluation uses the backbone on whole images (kNN, linear probe): a fully convolutional trunk with
global pooling takes any input size, so the trunk trained on 8x8 patches runs on 32x32 images, as
the paper's trunk trained on patches was evaluated on whole images.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.augment import weak_augment
from ssl_course.data.patches import crop_patches, relative_position_pairs
from ssl_course.losses.pretext import relative_position_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput

NUM_POSITIONS = 8


def shift_grid(images: torch.Tensor, shift: int, generator: torch.Generator | None) -> torch.Tensor:
    """Enlarge ``[B,C,H,W]`` to ``(H + shift) x (W + shift)`` (bilinear) and cut an ``H x W`` window at a
    random offset in ``0..shift`` per image and axis: the centred grid then lands anywhere within
    ``shift`` pixels of the enlarged frame. ``shift=0`` returns the images unchanged."""
    if shift == 0:
        return images
    batch, _, height, width = images.shape
    if height != width:
        raise ValueError(f"shift_grid needs square images; got {height}x{width}.")
    enlarged = F.interpolate(images, size=(height + shift, width + shift), mode="bilinear", align_corners=False)
    draw_device = generator.device if generator is not None else images.device
    offsets = (torch.rand(batch, 1, 2, generator=generator, device=draw_device) * (shift + 1)).long()
    offsets = offsets.to(images.device)
    return crop_patches(enlarged, offsets[..., 0], offsets[..., 1], height)[:, 0]


def blur_some(patches: torch.Tensor, generator: torch.Generator | None, probability: float = 1 / 3,
              smallest: int = 2) -> torch.Tensor:
    """Shrink a random ``probability`` of the patches ``[N,C,p,p]`` to ``s x s`` and regrow them to ``p x p``.

    As ``prep_image`` of ``cdoersch/deepcontext`` (``train.py``): a third of the patches, and the
    side ``s = floor(sqrt(u·(hi² - lo²) + lo²))`` with ``u ~ U[0, 1)``, so the *pixel count* is
    uniform between ``lo²`` and ``hi²``. Official: 96 px patches, ``lo, hi = 10, 95`` (down to
    100 pixels). Scaled to ``p`` px: ``hi = 95/96·p`` (sides up to ``p - 1``) and ``lo`` =
    ``smallest`` (the scaled 10/96·8 px would be below one pixel). Bilinear both ways, as
    ``caffe.io.resize``. Every size is computed for every patch and the drawn one selected, so
    nothing waits for the host.
    """
    count, _, height, width = patches.shape
    if height != width or not 1 <= smallest < height:
        raise ValueError(f"blur_some needs square patches larger than smallest={smallest}; got {height}x{width}.")
    draw_device = generator.device if generator is not None else patches.device
    chosen = (torch.rand(count, generator=generator, device=draw_device) < probability).to(patches.device)
    low, high = float(smallest), height * 95 / 96
    uniform = torch.rand(count, generator=generator, device=draw_device).to(patches.device)
    sides = torch.sqrt(uniform * (high ** 2 - low ** 2) + low ** 2).floor().long()    # [N] in smallest..p-1
    out = patches
    for side in range(smallest, height):
        small = F.interpolate(patches, size=(side, side), mode="bilinear", align_corners=False)
        regrown = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
        out = torch.where((chosen & (sides == side)).view(count, 1, 1, 1), regrown, out)
    return out


def centre_and_scale(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch ``[N,C,p,p]``: every channel's mean removed, then divided by the patch's RMS (→ 1).

    ``prep_image`` of ``cdoersch/deepcontext`` removes the kept channel's mean (the dropped ones are
    centred noise) and scales the whole patch to a fixed root mean square ("so gradients are a
    less useful cue"; 50 there, for AlexNet's input range; 1 here, the scale of normalised images).
    """
    centred = patches - patches.mean(dim=(-2, -1), keepdim=True)
    return centred / centred.pow(2).mean(dim=(-3, -2, -1), keepdim=True).sqrt().clamp_min(eps)   # flat patch: 0


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
                 color_drop: bool = True, downsample_prob: float = 1 / 3, normalise_patches: bool = True,
                 grid_shift: int = 16, hidden_dim: int = 512) -> None:
        super().__init__(backbone, num_classes)
        if patch_size < 4 or gap < 0 or jitter < 0 or 3 * patch_size + 2 * gap + 2 * jitter > 32:
            raise ValueError(f"the 3x3 grid of patches (3·patch_size + 2·gap + 2·jitter) must fit in 32 pixels "
                             f"with patch_size >= 4; got patch_size={patch_size}, gap={gap}, jitter={jitter}.")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be positive; got {hidden_dim}.")
        if not 0.0 <= downsample_prob <= 1.0:
            raise ValueError(f"downsample_prob must be a probability in [0, 1] (official: 1/3); got {downsample_prob}.")
        if isinstance(grid_shift, bool) or not isinstance(grid_shift, int) or grid_shift < 0:
            raise ValueError(f"grid_shift must be an int >= 0 (pixels the image is enlarged by; 0: fixed grid); "
                             f"got {grid_shift!r}.")
        self.patch_size, self.gap, self.jitter, self.grid_shift = patch_size, gap, jitter, grid_shift
        self.color_drop = bool(color_drop)
        self.downsample_prob, self.normalise_patches = float(downsample_prob), bool(normalise_patches)
        self.hidden_dim = hidden_dim
        # Late fusion: the two patch features meet only here (paper: fc6 per patch, then fc7, fc8).
        self.position_head = nn.Sequential(
            nn.Linear(2 * backbone.feature_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, NUM_POSITIONS))

    def cut(self, images: torch.Tensor,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised images ``[B,3,32,32]`` → ``(centre, neighbour [B,3,p,p], labels [B])``, before the defences."""
        shifted = shift_grid(images, self.grid_shift, generator)      # the grid anywhere in the frame
        return relative_position_pairs(shifted, self.patch_size, self.gap, self.jitter, generator=generator)

    def defend(self, patches: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Patches ``[N,3,p,p]`` after deepcontext's defences: blur some, drop colours, fix mean and magnitude."""
        if self.downsample_prob > 0:
            patches = blur_some(patches, generator, self.downsample_prob)
        if self.color_drop:
            patches = drop_colours(patches, generator)
        if self.normalise_patches:
            patches = centre_and_scale(patches)
        return patches

    def pairs(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``[B,3,32,32]`` → ``(logits [B, 8], labels [B])`` for one random pair each."""
        # 1. centre + neighbour patches and the neighbour's position
        centre, neighbour, labels = self.cut(images, generator)
        # 2. the official defences, per patch
        both = self.defend(torch.cat([centre, neighbour]), generator)          # [2B, 3, p, p]
        # 3. one trunk for both patches, then late fusion
        features = self.backbone(both)                                        # [2B, D]
        f_centre, f_neighbour = features.chunk(2)
        return self.position_head(torch.cat([f_centre, f_neighbour], dim=1)), labels

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # a flip keeps the task well posed (the label refers to the flipped image); the grid's shift is in cut()
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


"""Solving jigsaw puzzles (Noroozi & Favaro, ECCV 2016).

Each image is cut into 3x3 tiles, the tiles are shuffled by one permutation of a fixed set of
``P`` (default 100), and the network must say which permutation it was. The same trunk (the
backbone) encodes every tile on its own; a head reads the 9 features concatenated in the shuffled
order (the paper's "context-free network": no tile sees another before the head).

Algorithm (one step)::

    1. x = weak_augment(images, pad=0)                        # random flip only
    2. tiles, y = jigsaw_puzzles(x, permutations)             # [B, 9, 3, t, t], y in 0..P-1
    3. tiles = standardise(tiles)                              # one mean and std per tile
    4. f = backbone(tiles.flatten(0, 1)).view(B, 9 * D)        # shared trunk
    5. logits = head(f)                                        # [B, P]
    6. loss = jigsaw_loss(logits, y)

Shortcuts and the defences (``docs/RECIPES.md`` lists the paper's values and ours):

* **Continuing edges**: tiles cut edge to edge can be ordered by matching their borders. Each tile
  is cut at a random position inside its cell, leaving random gaps (paper: 64 px tiles in 75 px
  cells; here 8 px tiles in 10 px cells). ``tile_size=cell_size`` removes the gaps: the notebook
  shows the pretext accuracy this shortcut buys.
* **Low-level statistics**: adjacent tiles share mean brightness and contrast; each tile is
  standardised on its own, with one mean and one standard deviation over its pixels and channels
  (as the reference loader ``bbrattoli/JigsawPuzzlePytorch``, ``JigsawLoader.py``, does), so the
  tile keeps its colour balance: a red tile stays redder than it is green.
* **Ambiguous classes**: two permutations of the set that differ in only two tiles are nearly the
  same puzzle; the set is chosen greedily for a large minimum Hamming distance
  (:func:`ssl_course.data.jigsaw_permutations`).

Evaluation runs the backbone on whole images, like :mod:`ssl_course.methods.relative_position`.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import weak_augment
from ssl_course.data.jigsaw import PERMUTATION_CRITERIA, jigsaw_permutations
from ssl_course.data.patches import jigsaw_puzzles
from ssl_course.losses.pretext import jigsaw_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput

NUM_TILES = 9


def standardise_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``[..., C, t, t]`` → each tile shifted to mean 0 and scaled to std 1 over all its channels and pixels.

    One mean and one standard deviation per tile, as ``bbrattoli/JigsawPuzzlePytorch``
    (``JigsawLoader.py``: ``m = tile.mean(); s = tile.std()``, then ``Normalize([m, m, m], [s, s, s])``).
    Standardising each channel apart would also erase the tile's colour balance.
    """
    mean = tiles.mean(dim=(-3, -2, -1), keepdim=True)
    std = tiles.std(dim=(-3, -2, -1), keepdim=True)
    return (tiles - mean) / (std + eps)


@register
class Jigsaw(Method):
    """Shared trunk on 9 shuffled tiles, features concatenated, classifier over a fixed permutation set."""

    name = "jigsaw"
    data_sources = ("all",)
    default_optimizer = "sgd"
    default_lr = 0.1
    default_weight_decay = 5e-4
    default_batch_size = 128   # puzzles; 9 x 128 tiles per step

    def __init__(self, backbone: nn.Module, num_classes: int, num_permutations: int = 100,
                 permutation_criterion: str = "max_min", tile_size: int = 8, cell_size: int = 10,
                 standardise: bool = True, hidden_dim: int = 512, permutation_seed: int = 0) -> None:
        super().__init__(backbone, num_classes)
        if not 4 <= tile_size <= cell_size or 3 * cell_size > 32:
            raise ValueError(f"need 4 <= tile_size <= cell_size and 3·cell_size <= 32; got tile_size={tile_size}, "
                             f"cell_size={cell_size}. The default is 8 px tiles in 10 px cells.")
        if permutation_criterion not in PERMUTATION_CRITERIA:
            raise ValueError(f"permutation_criterion must be one of {PERMUTATION_CRITERIA}; got "
                             f"{permutation_criterion!r}.")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be positive; got {hidden_dim}.")
        self.tile_size, self.cell_size, self.standardise = tile_size, cell_size, bool(standardise)
        self.num_permutations, self.hidden_dim = num_permutations, hidden_dim
        self.permutation_criterion, self.permutation_seed = permutation_criterion, permutation_seed
        # A constant rebuilt from the hyper-parameters: a buffer so it follows .to(device), not saved.
        self.register_buffer("permutations", jigsaw_permutations(num_permutations, NUM_TILES, permutation_seed,
                                                                 permutation_criterion).clone(), persistent=False)
        self.permutation_head = nn.Sequential(
            nn.Linear(NUM_TILES * backbone.feature_dim, hidden_dim), nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True), nn.Linear(hidden_dim, num_permutations))

    def puzzles(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``[B,3,32,32]`` → ``(logits [B, P], labels [B])``, one random puzzle each."""
        # 1. shuffled tiles and the index of the permutation used
        tiles, labels = jigsaw_puzzles(images, self.permutations, self.tile_size, self.cell_size, generator)
        if self.standardise:
            tiles = standardise_tiles(tiles)
        # 2. one trunk for every tile, features concatenated in the shuffled order
        batch = tiles.shape[0]
        features = self.backbone(tiles.flatten(0, 1)).view(batch, -1)        # [B, 9·D]
        return self.permutation_head(features), labels

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        views = weak_augment(batch.unlabeled_images, generator=batch.generator, pad=0)
        logits, labels = self.puzzles(views, batch.generator)
        loss = jigsaw_loss(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return StepOutput(loss, {"jigsaw_acc": accuracy})

    @torch.no_grad()
    def jigsaw_accuracy(self, images: torch.Tensor, seed: int = 0) -> float:
        """Share of puzzles made from normalised ``images`` whose permutation the head finds (chance 1/P)."""
        logits, labels = self.puzzles(images, torch.Generator(device=images.device).manual_seed(seed))
        return (logits.argmax(1) == labels).float().mean().item()


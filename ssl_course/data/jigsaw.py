r"""The fixed permutation set of the jigsaw task (Noroozi & Favaro, ECCV 2016, Section 3.2).

The network classifies *which* permutation of a fixed set was applied to the 9 tiles. If two
permutations of the set differ in only two tiles, a puzzle made with one is nearly the same as a
puzzle made with the other, and the task is ambiguous; the paper therefore picks the set greedily
so that its members are far apart in Hamming distance (the number of positions at which two
permutations differ).

Greedy selection (:func:`jigsaw_permutations`): start from one random permutation of all
``num_tiles!``; then, ``P - 1`` times, add the candidate whose distance to the set chosen so far is
largest. ``criterion`` says how "distance to a set" is measured:

* ``"max_min"`` (default): the *minimum* distance to any chosen permutation (ties broken by the
  larger mean distance), i.e. farthest-point sampling. For 100 permutations of 9 tiles the
  minimum pairwise distance of the set is 6 (mean 8.08).
* ``"max_mean"``: the *mean* distance, as written in the paper's Algorithm 1 and its public
  re-implementations. The mean pairwise distance is the same 8.08, but two members can be only 2
  apart (a single swap).
* ``"min_mean"``: the opposite choice, the candidates *closest* to the set: a set of near-identical
  permutations, to show in the notebook what an ambiguous task does to learning.

A uniformly random set of 100 has minimum distance about 3. (Numbers measured with seed 0 and
checked in ``tests/test_pretext_data.py``.)
"""
from __future__ import annotations

import functools
import itertools

import torch

__all__ = ["jigsaw_permutations", "hamming_distances", "PERMUTATION_CRITERIA"]

PERMUTATION_CRITERIA = ("max_min", "max_mean", "min_mean")
_MAX_TILES = 10   # 10! = 3.6 M candidates (36 MB); 11! would be 40 M


def hamming_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[M, T]`` and ``[N, T]`` permutations → int64 ``[M, N]``: positions at which each pair differs."""
    return (a[:, None, :] != b[None, :, :]).sum(-1)


@functools.lru_cache(maxsize=8)
def _select(num_permutations: int, num_tiles: int, seed: int, criterion: str) -> torch.Tensor:
    candidates = torch.tensor(list(itertools.permutations(range(num_tiles))), dtype=torch.uint8)  # [T!, T]
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(len(candidates), (1,), generator=generator))
    chosen = [first]
    distance = (candidates != candidates[first]).sum(1)           # [T!] to the latest choice
    total, nearest = distance.clone(), distance.clone()            # sum and min over the chosen set
    for _ in range(num_permutations - 1):
        # 1. score every candidate; a large integer weight makes the minimum the primary key
        if criterion == "max_min":
            score = nearest * (num_tiles * num_permutations + 1) + total
        elif criterion == "max_mean":
            score = total
        else:   # "min_mean": the closest candidates (negated so argmax picks them)
            score = -total
        score = score.clone()
        score[chosen] = torch.iinfo(score.dtype).min               # never pick one twice
        # 2. take the best and update the running distances to the set
        pick = int(score.argmax())
        chosen.append(pick)
        distance = (candidates != candidates[pick]).sum(1)
        total += distance
        nearest = torch.minimum(nearest, distance)
    return candidates[chosen].long()


def jigsaw_permutations(num_permutations: int = 100, num_tiles: int = 9, seed: int = 0,
                        criterion: str = "max_min") -> torch.Tensor:
    """The jigsaw task's permutation set, int64 ``[num_permutations, num_tiles]`` on the CPU.

    Row ``k`` is permutation ``k``: the tile shown at position ``i`` of puzzle class ``k`` is the
    original tile ``perms[k, i]`` (tiles numbered row by row). Deterministic for a given
    ``(num_permutations, num_tiles, seed, criterion)``; the result is cached, so do not modify it.
    Takes about a second for 9 tiles.
    """
    for name, value, low in (("num_permutations", num_permutations, 2), ("num_tiles", num_tiles, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
    if num_tiles > _MAX_TILES:
        raise ValueError(f"num_tiles must be at most {_MAX_TILES} (the search scans all num_tiles! "
                         f"permutations); got {num_tiles}. The paper uses 9 (a 3x3 grid).")
    if num_permutations > _factorial(num_tiles):
        raise ValueError(f"there are only {_factorial(num_tiles)} permutations of {num_tiles} tiles; "
                         f"got num_permutations={num_permutations}.")
    if criterion not in PERMUTATION_CRITERIA:
        raise ValueError(f"criterion must be one of {PERMUTATION_CRITERIA}; got {criterion!r}.")
    return _select(num_permutations, num_tiles, int(seed), criterion)


def _factorial(n: int) -> int:
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result

"""Shard: one process's part of each global batch when `world` processes train together (torchrun, DDP).

Pure index arithmetic: the loader asks it which items this rank loads; the distributed callback asks it how many
real items each rank holds at a step, to weight losses and to drop padding when it gathers results."""
from __future__ import annotations

from typing import Callable, Sequence

__all__ = ['Shard']


class Shard:
    """Rank `rank` of `world`: of each global batch of `world * bs` items, the `bs` from position `rank * bs`.

    So `world` processes with `bs` each load, step by step, exactly the items one process with `world * bs` would.
    In the last, partial, global batch a rank may hold fewer than `bs` items, or none: then it loads one item (the
    step's first) as padding, so every rank runs every step; `sizes` says which items are real. `share_seed` turns
    this rank's draw of the epoch's seed into the one all ranks use (rank 0's, broadcast); identity by default."""

    def __init__(self, rank: int, world: int, share_seed: Callable[[int], int] | None = None):
        if not 0 <= rank < world:
            raise ValueError(f'Shard: rank {rank} is not one of the {world} ranks 0..{world - 1}.')
        self.rank, self.world = rank, world
        self.share_seed: Callable[[int], int] = share_seed if share_seed is not None else _same

    def n_steps(self, n: int, bs: int, drop_last: bool) -> int:
        """Global batches (so batches on each rank) an epoch of `n` items has."""
        g = self.world * bs
        return n // g if drop_last else -(-n // g)

    def sizes(self, n: int, bs: int, drop_last: bool, step: int) -> list[int]:
        """Real items each rank holds at `step` (padding excluded), in rank order; they sum to the global batch."""
        g = self.world * bs
        m = min(g, n - step * g)
        return [min(max(m - r * bs, 0), bs) for r in range(self.world)]

    def indices(self, order: Sequence[int], bs: int, drop_last: bool) -> list[int]:
        """This rank's items of an epoch whose global order is `order`, padded as the class docstring says."""
        g, out = self.world * bs, []
        for step in range(self.n_steps(len(order), bs, drop_last)):
            start = step * g
            mine = list(order[start + self.rank * bs:min(start + (self.rank + 1) * bs, start + g)])
            out += mine if mine else [order[start]]
        return out

    def __repr__(self) -> str:
        return f'Shard(rank={self.rank}, world={self.world})'


def _same(seed: int) -> int:
    return seed

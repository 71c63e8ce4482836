"""A mapping whose values are made when first read, then kept: what a reader of a package may not need
(the review report reads a few of its datasets) is never made."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LazyMap(Mapping[K, V], Generic[K, V]):
    def __init__(self, makers: Mapping[K, Callable[[], V]]):
        self._makers = makers
        self._made: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        if key not in self._made:
            self._made[key] = self._makers[key]()
        return self._made[key]

    def __contains__(self, key: object) -> bool:  # Mapping's own would make the value
        return key in self._makers

    def __iter__(self) -> Iterator[K]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)

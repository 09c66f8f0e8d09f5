"""One page of a listing, the same for every resource (seed 000's ``pagination`` block)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    total_items: int
    page: int
    size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_items / self.size) if self.total_items else 0

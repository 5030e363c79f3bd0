"""Segmentation losses: overlap measures (Dice, Jaccard, Tversky, Lovász) over masks."""

from __future__ import annotations

__all__: list[str] = []

"""Metric-learning losses: embeddings pulled together or pushed apart by label."""

from __future__ import annotations

__all__: list[str] = []

"""Ranking losses and metrics over lists of scores."""

from __future__ import annotations

__all__: list[str] = []

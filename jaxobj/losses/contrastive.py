"""Contrastive and self-supervised losses over paired embeddings."""

from __future__ import annotations

__all__: list[str] = []

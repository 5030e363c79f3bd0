"""Sequence losses: token-level cross-entropy for language models and CTC."""

from __future__ import annotations

__all__: list[str] = []

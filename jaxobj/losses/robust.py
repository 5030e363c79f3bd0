"""Robust losses: Barron's general and adaptive loss and its special cases."""

from __future__ import annotations

__all__: list[str] = []

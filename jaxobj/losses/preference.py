"""Preference and alignment losses over policy and reference log-probabilities."""

from __future__ import annotations

__all__: list[str] = []

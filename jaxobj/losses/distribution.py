"""Distribution losses: divergences between predicted and target distributions."""

from __future__ import annotations

__all__: list[str] = []

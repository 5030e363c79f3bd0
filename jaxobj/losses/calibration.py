"""Calibration and proper scoring: Brier, log score, ECE, temperature scaling."""

from __future__ import annotations

__all__: list[str] = []

"""Generative-model losses: VAE likelihoods and KL terms, GAN objectives and penalties."""

from __future__ import annotations

__all__: list[str] = []

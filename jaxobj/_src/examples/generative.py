"""Example inputs for the generative-model losses.

VAE terms take per-sample arrays with one trailing event axis (the latent or
data dimension), so the batch shape leads and the per-element loss is one value
per sample; GAN losses take one logit per real and per generated sample.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

EVENT = 4


def _f32(a):
  return np.asarray(a, np.float32)


def _posterior(rng, shape):
  """Encoder outputs: means and log-variances of a diagonal Gaussian."""
  shape = shape + (EVENT,)
  return _f32(rng.standard_normal(shape)), _f32(0.7 * rng.standard_normal(shape))


def _bernoulli(rng, shape):
  """Decoder logits and targets in [0, 1], some exactly 0 or 1 (binarized pixels)."""
  shape = shape + (EVENT,)
  targets = np.where(
    rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(size=shape)
  )
  return _f32(2.0 * rng.standard_normal(shape)), _f32(targets)


def _gaussian(rng, shape):
  """Decoder means and data."""
  shape = shape + (EVENT,)
  return _f32(rng.standard_normal(shape)), _f32(rng.standard_normal(shape))


def _discriminator(rng, shape):
  """Discriminator logits on real samples (mostly positive) and on fakes."""
  return _f32(1.0 + 1.5 * rng.standard_normal(shape)), _f32(-1.0 + 1.5 * rng.standard_normal(shape))


def _generator(rng, shape):
  """Discriminator logits on generated samples."""
  return (_f32(-1.0 + 1.5 * rng.standard_normal(shape)),)


def _elbo_terms(rng, shape):
  """Per-sample reconstruction NLLs and KL terms (non-negative nats)."""
  return _f32(rng.uniform(20.0, 120.0, shape)), _f32(rng.uniform(0.5, 15.0, shape))


POSTERIOR = Inputs(_posterior)
BERNOULLI = Inputs(_bernoulli)
GAUSSIAN = Inputs(_gaussian)
DISCRIMINATOR = Inputs(_discriminator)
GENERATOR = Inputs(_generator)
ELBO_TERMS = Inputs(_elbo_terms)

r"""Generative-model losses: VAE likelihoods and KL terms, GAN objectives and penalties.

**VAE terms** are per sample: inputs carry the batch axes first and
``event_ndims`` trailing event axes (the latent dimension for the KL, the data
dimensions for a reconstruction), which are summed, so the per-element loss
(what ``where`` and ``weights`` index) has the batch shape. Summing, not
averaging, over events keeps the reconstruction and KL terms on the same
(nats per sample) scale, as the ELBO requires. :func:`negative_elbo` combines
them with a traceable :math:`\beta`.

**GAN losses** take the discriminator's raw outputs (logits, or critic scores
for the hinge and Wasserstein forms) on real and generated samples; each form
has a discriminator and a generator side. **Gradient penalties** take the
critic function itself and differentiate it inside the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import generative as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

# wgan_gradient_penalty and r1_penalty take the critic function as their first
# input, which the registry's array-drawn conformance inputs cannot supply, so
# they are not registered, and therefore not re-exported at the top level (every
# public function with a reduction must be registered): use them as
# jaxobj.losses.generative.wgan_gradient_penalty / r1_penalty.
__all__ = [
  "ElboTerms",
  "bernoulli_reconstruction_loss",
  "gan_discriminator_loss",
  "gan_generator_loss",
  "gaussian_kl_divergence",
  "gaussian_reconstruction_loss",
  "negative_elbo",
  "r1_penalty",
  "wgan_gradient_penalty",
]

# The choices of gan_discriminator_loss / gan_generator_loss ``loss_type``.
GAN_LOSS_TYPES = ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares")


# --------------------------------------------------------------------------
# Shared preparation.


def _event_split(x, event_ndims, name):
  """The per-sample (batch) shape: ``x.shape`` without its event axes."""
  if (
    isinstance(event_ndims, bool)
    or not isinstance(event_ndims, int)
    or not (0 <= event_ndims <= x.ndim)
  ):
    raise ValueError(
      f"event_ndims must be an int in [0, {name}.ndim={x.ndim}] (the number of "
      f"trailing axes summed per sample), got event_ndims={event_ndims!r} for "
      f"{name}.shape={x.shape}."
    )
  return x.shape[: x.ndim - event_ndims]


def _inverse_sd(log_variance):
  """``exp(-s/2)``, capped at ``sqrt(max)`` so an exact prediction (residual
  0) stays at 0 for any log-variance instead of ``0 * inf``."""
  cap = 0.5 * math.log(float(jnp.finfo(log_variance.dtype).max))
  return jnp.exp(jnp.minimum(-0.5 * log_variance, cap))


def _sum_events(values, event_ndims):
  return jnp.sum(values, axis=tuple(range(values.ndim - event_ndims, values.ndim)))


def _per_sample(where, event_ndims, first, *others):
  """Checked inputs of one shape, masked samples replaced by harmless values.

  ``first`` and ``others`` are ``(name, value, fill, is_target)``; targets may
  be integer or boolean (cast), everything else must be floating. Returns the
  arrays and the per-sample shape.
  """
  name0, value0, fill0, _ = first
  x = checks.as_float(value0, name0)
  shape = _event_split(x, event_ndims, name0)
  out = [masked_fill(where, x, shape, fill0, axis_extra=event_ndims)]
  for name, value, fill, is_target in others:
    checks.check_same_shape(name0, x, name, value)
    a = checks.as_target(value, name, x) if is_target else checks.as_float(value, name)
    out.append(
      masked_fill(
        where, a.astype(jnp.promote_types(a.dtype, x.dtype)), shape, fill, axis_extra=event_ndims
      )
    )
  return out, shape


# --------------------------------------------------------------------------
# VAE: KL terms, reconstruction likelihoods, the ELBO.


@register("generative", inputs=examples.POSTERIOR)
def gaussian_kl_divergence(
  mean: ArrayLike,
  log_variance: ArrayLike,
  prior_mean: ArrayLike | None = None,
  prior_log_variance: ArrayLike | None = None,
  *,
  event_ndims: int = 1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""KL divergence of a diagonal Gaussian from the standard normal or another diagonal Gaussian.

  .. math::
     \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(\mu_p, \sigma_p^2)\big)
     = \tfrac12 \sum_{\text{event}} \left(\frac{\sigma^2}{\sigma_p^2} - 1
       - \log\frac{\sigma^2}{\sigma_p^2} + \frac{(\mu - \mu_p)^2}{\sigma_p^2}\right)

  With the prior omitted (:math:`\mu_p = 0`, :math:`\sigma_p = 1`) this is the
  VAE term :math:`\tfrac12\sum(\mu^2 + \sigma^2 - 1 - \log\sigma^2)`. Inputs
  are log-variances :math:`s = \log\sigma^2`; with :math:`d = s - s_p` each
  term is computed as :math:`\operatorname{expm1}(d) - d +
  \big((\mu - \mu_p)\,e^{-s_p/2}\big)^2`, exact as :math:`d \to 0` (where the
  textbook form cancels) and free of the overflow of :math:`e^{-s_p}`
  (:math:`e^{-s_p/2}` is capped at :math:`\sqrt{\max}` of the dtype, so equal
  means give 0 for any prior variance).

  Args:
    mean: posterior means :math:`\mu`, float array ``[*batch, *event]``.
    log_variance: posterior log-variances :math:`s`, same shape.
    prior_mean: prior means, same shape (0 when omitted).
    prior_log_variance: prior log-variances, same shape (0 when omitted). A
      prior shared over the batch is passed with ``jnp.broadcast_to``.
    event_ndims: number of trailing axes summed per sample (static; 1 for a
      latent vector).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`),
      over the batch shape.

  Returns:
    The reduced loss (nats per sample); per-sample values for ``"none"``.

  Raises:
    ValueError: shapes differ, bad ``event_ndims``.
    TypeError: integer ``mean`` or log-variances.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> mu, logvar = jnp.array([[0.0, 1.0], [2.0, 0.0]]), jnp.array([[0.0, 0.0], [1.0, -1.0]])
    >>> print(jaxobj.gaussian_kl_divergence(mu, logvar, reduction="none"))
    [0.5    2.5431]

  References:
    Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014
    (appendix B).
  """
  others = [("log_variance", log_variance, 0.0, False)]
  if prior_mean is not None:
    others.append(("prior_mean", prior_mean, 0.0, False))
  if prior_log_variance is not None:
    others.append(("prior_log_variance", prior_log_variance, 0.0, False))
  arrays, _ = _per_sample(where, event_ndims, ("mean", mean, 0.0, False), *others)
  mu, s = arrays[:2]
  rest = iter(arrays[2:])
  mu_p = next(rest) if prior_mean is not None else 0.0
  s_p = next(rest) if prior_log_variance is not None else 0.0
  d = s - s_p
  terms = jnp.expm1(d) - d + jnp.square((mu - mu_p) * _inverse_sd(jnp.asarray(s_p, d.dtype)))
  return reduce_loss(
    0.5 * _sum_events(terms, event_ndims), where=where, weights=weights, reduction=reduction
  )


@register("generative", inputs=examples.BERNOULLI)
def bernoulli_reconstruction_loss(
  logits: ArrayLike,
  targets: ArrayLike,
  *,
  event_ndims: int = 1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Bernoulli negative log-likelihood of data given decoder logits, summed over the event axes.

  .. math::
     -\log p(y \mid x) = \sum_{\text{event}} \big(y\,\operatorname{softplus}(-x)
       + (1 - y)\operatorname{softplus}(x)\big)

  the binary cross-entropy of each pixel (or feature), summed per sample.
  Targets in [0, 1] may be soft (grey levels), as in the usual VAE on MNIST;
  for them the value is the cross-entropy, not a normalized likelihood.

  Args:
    logits: decoder logits, float array ``[*batch, *event]``.
    targets: data in [0, 1], same shape (integer or boolean accepted).
    event_ndims: number of trailing axes summed per sample (static; 3 for
      ``[B, H, W, C]`` images).
    where, weights, reduction: the loss contract, over the batch shape.

  Returns:
    The reduced loss (nats per sample).

  Raises:
    ValueError: shapes differ, bad ``event_ndims``.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 10.0], [-3.0, 3.0]])
    >>> y = jnp.array([[1.0, 1.0], [0.0, 1.0]])
    >>> print(jaxobj.bernoulli_reconstruction_loss(x, y, reduction="none"))
    [0.6932 0.0972]
  """
  (x, y), _ = _per_sample(
    where, event_ndims, ("logits", logits, 0.0, False), ("targets", targets, 0.0, True)
  )
  values = y * jax.nn.softplus(-x) + (1.0 - y) * jax.nn.softplus(x)
  return reduce_loss(
    _sum_events(values, event_ndims), where=where, weights=weights, reduction=reduction
  )


_HALF_LOG_2PI = 0.9189385332046727


@register("generative", inputs=examples.GAUSSIAN)
def gaussian_reconstruction_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  log_variance: ArrayLike | None = None,
  *,
  variance: float | ArrayLike = 1.0,
  full: bool = False,
  event_ndims: int = 1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Gaussian NLL of data given decoder means, with a fixed or a predicted variance.

  .. math::
     -\log p(y \mid \mu, \sigma^2) = \sum_{\text{event}} \tfrac12\left(
       \frac{(y - \mu)^2}{\sigma^2} + \log\sigma^2\right)
       \;[+\ \tfrac12\log 2\pi \text{ per event element if full}]

  With a fixed ``variance`` of 1 this is half the summed squared error (the
  common "MSE" VAE decoder). A predicted ``log_variance`` :math:`s` (one per
  element) gives :math:`\tfrac12\big(s + ((y - \mu) e^{-s/2})^2\big)`; an exact
  prediction stays finite for any :math:`s` (:math:`e^{-s/2}` is capped at
  :math:`\sqrt{\max}` of the dtype, reached below :math:`s \approx -177` in
  float32). ``variance`` is then unused.

  Args:
    predictions: decoder means :math:`\mu`, float array ``[*batch, *event]``.
    targets: data, same shape.
    log_variance: optional predicted log-variances, same shape.
    variance: fixed :math:`\sigma^2 > 0` when ``log_variance`` is omitted
      (traceable).
    full: add the constant :math:`\tfrac12\log 2\pi` per element, making the
      value a normalized NLL (static; off by default, as in
      :func:`jaxobj.gaussian_nll_loss`).
    event_ndims: number of trailing axes summed per sample (static).
    where, weights, reduction: the loss contract, over the batch shape.

  Returns:
    The reduced loss (nats per sample).

  Raises:
    ValueError: shapes differ, bad ``event_ndims``, ``variance <= 0`` (when
      concrete).
    TypeError: integer ``predictions`` or ``log_variance``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> mu, y = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 2.0]])
    >>> print(jaxobj.gaussian_reconstruction_loss(mu, y))
    2.5
    >>> print(jaxobj.gaussian_reconstruction_loss(mu, y, jnp.log(jnp.array([[1.0, 4.0]]))))
    1.6931472
  """
  checks.check_range("variance", variance, low=0.0, low_inclusive=False)
  others = [("targets", targets, 0.0, True)]
  if log_variance is not None:
    others.append(("log_variance", log_variance, 0.0, False))
  arrays, _ = _per_sample(where, event_ndims, ("predictions", predictions, 0.0, False), *others)
  mu, y = arrays[:2]
  if log_variance is not None:
    s = arrays[2]
    values = 0.5 * (s + jnp.square((y - mu) * _inverse_sd(s)))
  else:
    values = 0.5 * (jnp.square(y - mu) / variance + jnp.log(variance))
  if full:
    values = values + _HALF_LOG_2PI
  return reduce_loss(
    _sum_events(values, event_ndims), where=where, weights=weights, reduction=reduction
  )


class ElboTerms(NamedTuple):
  """The negative ELBO and its two terms, each reduced the same way."""

  # Each a (sum, count) pair under reduction="sum_and_count", as every loss.
  loss: Reduced
  reconstruction: Reduced
  kl: Reduced


@register(
  "generative", inputs=examples.ELBO_TERMS, zero_hessian="linear in the reconstruction term"
)
def negative_elbo(
  reconstruction: ArrayLike,
  kl: ArrayLike,
  *,
  beta: float | ArrayLike = 1.0,
  return_terms: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced | ElboTerms:
  r"""The negative ELBO, reconstruction + beta * KL, optionally with both terms for logging.

  .. math::
     \mathcal L = -\mathbb E_{q(z\mid x)}[\log p(x \mid z)]
       + \beta\,\mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big)

  from per-sample reconstruction NLLs (e.g. :func:`bernoulli_reconstruction_loss`
  with ``reduction="none"`` on a reparametrized sample) and per-sample KL
  terms (:func:`gaussian_kl_divergence`). :math:`\beta = 1` is the ELBO of
  Kingma and Welling; :math:`\beta > 1` is the β-VAE. ``beta`` is traceable,
  so a schedule's value at the current step (KL annealing / warm-up, e.g.
  ``jaxobj.objective.linear_warmup(0.0, 1.0, steps)(step)``) can be passed
  inside a jitted train step without recompiling.

  Args:
    reconstruction: per-sample reconstruction NLLs, float array of the batch
      shape.
    kl: per-sample KL terms, same shape.
    beta: non-negative KL weight (traceable).
    return_terms: also return the two terms (static).
    where, weights, reduction: the loss contract, applied to the total and to
      each term alike.

  Returns:
    The reduced negative ELBO; with ``return_terms=True`` an
    :class:`ElboTerms` ``(loss, reconstruction, kl)`` of the reduced total and
    the two reduced terms (``loss == reconstruction + beta * kl``), e.g.
    ``terms.loss, terms._asdict()`` for ``jax.value_and_grad(...,
    has_aux=True)``.

  Raises:
    ValueError: shapes differ, ``beta < 0`` (when concrete).
    TypeError: integer inputs.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> rec, kl = jnp.array([10.0, 12.0]), jnp.array([2.0, 4.0])
    >>> print(jaxobj.negative_elbo(rec, kl, beta=0.5))
    12.5
    >>> terms = jaxobj.negative_elbo(rec, kl, beta=0.5, return_terms=True)
    >>> print(terms.loss, terms.reconstruction, terms.kl)
    12.5 11.0 3.0

  References:
    Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
    Higgins et al., "beta-VAE", ICLR 2017; Bowman et al., "Generating
    Sentences from a Continuous Space", CoNLL 2016 (KL annealing).
  """
  checks.check_range("beta", beta, low=0.0)
  (rec, kl_), _ = _per_sample(
    where, 0, ("reconstruction", reconstruction, 0.0, False), ("kl", kl, 0.0, False)
  )
  reduce = lambda v: reduce_loss(v, where=where, weights=weights, reduction=reduction)
  total = reduce(rec + beta * kl_)
  return ElboTerms(total, reduce(rec), reduce(kl_)) if return_terms else total


# --------------------------------------------------------------------------
# GAN objectives.


@register("generative", inputs=examples.DISCRIMINATOR)
def gan_discriminator_loss(
  real_logits: ArrayLike,
  fake_logits: ArrayLike,
  *,
  loss_type: str = "non_saturating",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Discriminator (critic) loss of a GAN, from its outputs on real and generated samples.

  .. math::
     \begin{array}{ll}
     \text{minimax, non\_saturating:} & \operatorname{softplus}(-r) + \operatorname{softplus}(f)
       = -\log\sigma(r) - \log(1 - \sigma(f)) \\
     \text{hinge:} & \max(0, 1 - r) + \max(0, 1 + f) \\
     \text{wasserstein:} & f - r \\
     \text{least\_squares:} & \tfrac12 (r - 1)^2 + \tfrac12 f^2
     \end{array}

  with :math:`r = D(x)` on a real sample and :math:`f = D(G(z))` on a
  generated one, both raw outputs (logits; critic scores for hinge and
  Wasserstein). The minimax and non-saturating games share this loss (they
  differ on the generator side, :func:`gan_generator_loss`). The
  least-squares form uses Mao et al.'s labels :math:`a = 0` (fake),
  :math:`b = 1` (real). Minimized by the discriminator.

  The per-element loss pairs ``real_logits[i]`` with ``fake_logits[i]`` (so
  the two batches have one shape); with the mean reduction this is the usual
  mean over reals plus mean over fakes. Masking pair ``i`` drops both.

  Args:
    real_logits: :math:`D` on real samples, float array of any shape.
    fake_logits: :math:`D` on generated samples, same shape.
    loss_type: one of :data:`GAN_LOSS_TYPES` (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, unknown ``loss_type``.
    TypeError: integer logits.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> r, f = jnp.array([2.0, 0.5]), jnp.array([-1.0, 0.5])
    >>> print(jaxobj.gan_discriminator_loss(r, f, reduction="none"))
    [0.4402 1.4482]
    >>> print(jaxobj.gan_discriminator_loss(r, f, loss_type="hinge", reduction="none"))
    [0. 2.]

  References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014;
    Lim and Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization
    for GANs", ICLR 2018 (hinge); Arjovsky et al., "Wasserstein GAN", ICML
    2017; Mao et al., "Least Squares GANs", ICCV 2017.
  """
  checks.check_choice("loss_type", loss_type, GAN_LOSS_TYPES)
  (r, f), _ = _per_sample(
    where, 0, ("real_logits", real_logits, 0.0, False), ("fake_logits", fake_logits, 0.0, False)
  )
  if loss_type in ("minimax", "non_saturating"):
    values = jax.nn.softplus(-r) + jax.nn.softplus(f)
  elif loss_type == "hinge":
    values = jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f)
  elif loss_type == "wasserstein":
    values = f - r
  else:
    values = 0.5 * jnp.square(r - 1.0) + 0.5 * jnp.square(f)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("generative", inputs=examples.GENERATOR)
def gan_generator_loss(
  fake_logits: ArrayLike,
  *,
  loss_type: str = "non_saturating",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generator loss of a GAN, from the discriminator's outputs on generated samples.

  .. math::
     \begin{array}{ll}
     \text{minimax:} & -\operatorname{softplus}(f) = \log(1 - \sigma(f)) \\
     \text{non\_saturating:} & \operatorname{softplus}(-f) = -\log\sigma(f) \\
     \text{hinge, wasserstein:} & -f \\
     \text{least\_squares:} & \tfrac12 (f - 1)^2
     \end{array}

  with :math:`f = D(G(z))` the raw output (logit or critic score). The
  minimax form is the original zero-sum game (its gradient vanishes when the
  discriminator confidently rejects the fakes); the non-saturating form is
  Goodfellow et al.'s practical replacement and the default. Minimized by the
  generator. Values can be negative (minimax, hinge, Wasserstein).

  Args:
    fake_logits: :math:`D` on generated samples, float array of any shape.
    loss_type: one of :data:`GAN_LOSS_TYPES` (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: unknown ``loss_type``.
    TypeError: integer logits.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> f = jnp.array([-2.0, 0.0, 3.0])
    >>> print(jaxobj.gan_generator_loss(f, reduction="none"))
    [2.1269 0.6931 0.0486]
    >>> print(jaxobj.gan_generator_loss(f, loss_type="least_squares", reduction="none"))
    [4.5 0.5 2. ]

  References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, and the
    references of :func:`gan_discriminator_loss`.
  """
  checks.check_choice("loss_type", loss_type, GAN_LOSS_TYPES)
  (f,), _ = _per_sample(where, 0, ("fake_logits", fake_logits, 0.0, False))
  if loss_type == "minimax":
    values = -jax.nn.softplus(f)
  elif loss_type == "non_saturating":
    values = jax.nn.softplus(-f)
  elif loss_type in ("hinge", "wasserstein"):
    values = -f
  else:
    values = 0.5 * jnp.square(f - 1.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Gradient penalties: they take the critic and differentiate it inside.


def _input_gradient_sq_norms(critic, x):
  """Per-sample squared norms of d critic / d x (batch axis 0).

  One vector-Jacobian product with a cotangent of ones: exact per-sample input
  gradients when each output depends on its own sample only (no batch
  normalization in the critic, as WGAN-GP prescribes).
  """
  scores, vjp = jax.vjp(critic, x)
  (grads,) = vjp(jnp.ones_like(scores))
  grads = grads.astype(x.dtype)
  return jnp.sum(jnp.square(grads), axis=tuple(range(1, x.ndim)))


def _samples(x, name):
  x = checks.as_float(x, name)
  if x.ndim < 1:
    raise ValueError(f"{name} must have a leading batch axis, got {name}.shape={x.shape}.")
  return x


@register("generative", no_inputs="takes the critic, a function")
def wgan_gradient_penalty(
  critic: Callable[[jax.Array], jax.Array],
  real: ArrayLike,
  fake: ArrayLike,
  *,
  key: jax.Array | None = None,
  interpolation: ArrayLike | None = None,
  target: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""WGAN-GP gradient penalty: the critic's input-gradient norm pulled to 1 at random interpolates.

  .. math::
     \ell_i = \big(\lVert \nabla_{\hat x} D(\hat x_i) \rVert_2 - t\big)^2,
     \qquad \hat x_i = \epsilon_i x_i + (1 - \epsilon_i)\,\tilde x_i,
     \quad \epsilon_i \sim U[0, 1]

  with :math:`x` real and :math:`\tilde x` generated samples and target
  :math:`t = 1`. The gradient is taken inside the loss (a ``jax.vjp`` of
  ``critic``), so differentiating this loss with respect to the critic's
  parameters (closed over by ``critic``) gives the second-order term the
  method needs. The norm's gradient at a zero input-gradient is taken as 0.
  Add it to the critic loss with the paper's weight :math:`\lambda = 10`.

  Args:
    critic: maps a batch ``[B, ...]`` to scores, one per sample (any output
      shape whose entries each depend on one sample; no batch statistics).
    real: real samples, float array ``[B, ...]`` (batch axis first).
    fake: generated samples, same shape.
    key: PRNG key drawing :math:`\epsilon = ` ``jax.random.uniform(key, (B,))``.
    interpolation: the coefficients :math:`\epsilon`, shape ``(B,)``, instead
      of ``key`` (exactly one of the two).
    target: the norm :math:`t` (traceable; 1 in the paper).
    where, weights, reduction: the loss contract over the batch axis. Masked
      samples are replaced by zeros before the critic sees them.

  Returns:
    The reduced penalty.

  Raises:
    ValueError: shapes differ, neither or both of ``key`` and
      ``interpolation``.
    TypeError: integer samples.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxobj.losses.generative import wgan_gradient_penalty
    >>> w = jnp.array([3.0, 4.0])
    >>> critic = lambda x: x @ w          # input gradient w everywhere, norm 5
    >>> real, fake = jnp.ones((2, 2)), jnp.zeros((2, 2))
    >>> print(wgan_gradient_penalty(critic, real, fake, key=jax.random.key(0)))
    16.0

  References:
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
  """
  x = _samples(real, "real")
  checks.check_same_shape("real", x, "fake", fake)
  x_fake = checks.as_float(fake, "fake").astype(x.dtype)
  shape = x.shape[:1]
  if key is not None and interpolation is None:
    eps = jax.random.uniform(key, shape, x.dtype)
  elif interpolation is not None and key is None:
    eps = checks.as_float(interpolation, "interpolation").astype(x.dtype)
    if eps.shape != shape:
      raise ValueError(
        f"interpolation must have shape {shape} (one coefficient per "
        f"sample), got interpolation.shape={eps.shape}."
      )
  else:
    raise ValueError(
      "pass exactly one of key= (to draw the interpolation coefficients) "
      "and interpolation= (the coefficients, shape (batch,))."
    )
  eps = masked_fill(where, eps, shape)
  x = masked_fill(where, x, shape, axis_extra=x.ndim - 1)
  x_fake = masked_fill(where, x_fake, shape, axis_extra=x.ndim - 1)
  mixed = x_fake + eps.reshape(shape + (1,) * (x.ndim - 1)) * (x - x_fake)
  sq = _input_gradient_sq_norms(critic, mixed)
  # Double where: sqrt's derivative is infinite at 0. A NaN norm stays NaN.
  positive = sq > 0
  norm = jnp.where(
    positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), jnp.where(jnp.isnan(sq), sq, 0.0)
  )
  return reduce_loss(jnp.square(norm - target), where=where, weights=weights, reduction=reduction)


@register("generative", no_inputs="takes the critic, a function")
def r1_penalty(
  critic: Callable[[jax.Array], jax.Array],
  real: ArrayLike,
  *,
  gamma: float | ArrayLike = 10.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""R1 regularizer: the squared norm of the discriminator's input gradient on real data.

  .. math:: \ell_i = \frac{\gamma}{2}\,\lVert \nabla_x D(x_i) \rVert_2^2

  Penalizing the gradient on real samples only (R1) makes the GAN game
  locally convergent (Mescheder et al.); pass generated samples instead for
  the R2 variant. The gradient is taken inside the loss, so differentiating it
  with respect to the discriminator's parameters works. ``critic`` is the
  discriminator's logit function.

  Args:
    critic: maps a batch ``[B, ...]`` to logits, one per sample (no batch
      statistics).
    real: real samples, float array ``[B, ...]`` (batch axis first).
    gamma: :math:`\gamma \ge 0` (traceable; 10 in the paper's experiments).
    where, weights, reduction: the loss contract over the batch axis.

  Returns:
    The reduced penalty.

  Raises:
    ValueError: ``gamma < 0`` (when concrete), scalar ``real``.
    TypeError: integer ``real``.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj.losses.generative import r1_penalty
    >>> critic = lambda x: jnp.sum(x ** 2, axis=-1)   # gradient 2x
    >>> print(r1_penalty(critic, jnp.array([[1.0, 0.0], [0.0, 2.0]]), gamma=1.0,
    ...                  reduction="none"))
    [2. 8.]

  References:
    Mescheder et al., "Which Training Methods for GANs do actually
    Converge?", ICML 2018.
  """
  checks.check_range("gamma", gamma, low=0.0)
  x = _samples(real, "real")
  shape = x.shape[:1]
  x = masked_fill(where, x, shape, axis_extra=x.ndim - 1)
  values = 0.5 * gamma * _input_gradient_sq_norms(critic, x)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)

"""Values and gradients of jaxobj.losses.generative.

References are float64 NumPy/SciPy implementations written from the formulas
(the multivariate-normal KL with matrices, ``scipy.stats.norm``, ``log_expit``),
optax where it overlaps (sigmoid cross-entropy), closed-form gradients, and for
the gradient penalties critics whose input gradients are known in closed form.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from jax.test_util import check_grads
from references import close, ref_reduce
from scipy.special import expit, log_expit

import jaxobj
from jaxobj.losses.generative import GAN_LOSS_TYPES, r1_penalty, wgan_gradient_penalty

B, D = 6, 4
MASK = np.array([True, False, True, True, False, True])
W = np.linspace(0.5, 2.0, B)


def poison(a, mask=MASK):
  """NaN in the masked samples."""
  m = np.asarray(mask).reshape((-1,) + (1,) * (np.ndim(a) - 1))
  return np.where(m, a, np.nan).astype(np.asarray(a).dtype)


def rng_inputs(seed, *shapes, scale=1.0):
  rng = np.random.default_rng(seed)
  return [scale * rng.standard_normal(s) for s in shapes]


# --------------------------------------------------------------------------
# Gaussian KL.


def ref_kl(mu, lv, mu_p=None, lv_p=None):
  """KL(N(mu, diag e^lv) || N(mu_p, diag e^lv_p)) per sample, from the
  multivariate-normal formula with explicit covariance matrices."""
  mu_p = np.zeros_like(mu) if mu_p is None else mu_p
  lv_p = np.zeros_like(lv) if lv_p is None else lv_p
  out = np.empty(mu.shape[:-1])
  for i in np.ndindex(out.shape):
    s, s_p = np.diag(np.exp(lv[i])), np.diag(np.exp(lv_p[i]))
    inv = np.linalg.inv(s_p)
    diff = mu_p[i] - mu[i]
    out[i] = 0.5 * (
      np.trace(inv @ s)
      + diff @ inv @ diff
      - mu.shape[-1]
      + np.log(np.linalg.det(s_p) / np.linalg.det(s))
    )
  return out


@pytest.mark.parametrize("with_prior", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_kl_values(with_prior, reduction):
  mu, lv, mu_p, lv_p = rng_inputs(0, *[(B, D)] * 4)
  lv, lv_p = 0.7 * lv, 0.7 * lv_p
  prior = (mu_p, lv_p) if with_prior else ()
  expected = ref_kl(mu, lv, *prior)
  with jax.enable_x64(True):
    got = jaxobj.gaussian_kl_divergence(mu, lv, *prior, reduction=reduction)
    close(got, ref_reduce(expected, reduction=reduction), rtol=1e-12)
    got = jaxobj.gaussian_kl_divergence(mu, lv, *prior, where=MASK, weights=W, reduction=reduction)
    close(got, ref_reduce(expected, MASK, W, reduction), rtol=1e-12)
  got32 = jaxobj.gaussian_kl_divergence(
    *(np.float32(a) for a in (mu, lv) + prior), reduction=reduction
  )
  assert got32.dtype == jnp.float32
  close(got32, ref_reduce(expected, reduction=reduction), rtol=2e-6)


def test_kl_only_prior_variance_or_mean():
  mu, lv, lv_p = rng_inputs(1, (B, D), (B, D), (B, D))
  with jax.enable_x64(True):
    close(
      jaxobj.gaussian_kl_divergence(mu, lv, prior_log_variance=lv_p, reduction="none"),
      ref_kl(mu, lv, None, lv_p),
      rtol=1e-12,
    )
    close(
      jaxobj.gaussian_kl_divergence(mu, lv, prior_mean=lv_p, reduction="none"),
      ref_kl(mu, lv, lv_p, None),
      rtol=1e-12,
    )


def test_kl_is_exact_near_the_prior():
  """For q -> p the textbook form cancels; the series d^2/4 + d^3/12 per element."""
  d = np.array([[1e-3, -1e-3, 3e-4, 2e-5]], np.float32)
  got = jaxobj.gaussian_kl_divergence(np.zeros_like(d), d, reduction="none")
  d64 = d.astype(np.float64)
  close(got, np.sum(d64**2 / 4 + d64**3 / 12 + d64**4 / 48, -1), rtol=1e-5, atol=0)
  assert float(jaxobj.gaussian_kl_divergence(np.zeros_like(d), np.zeros_like(d))) == 0.0


def test_kl_event_axes():
  mu, lv = rng_inputs(2, (3, 2, 5), (3, 2, 5))
  with jax.enable_x64(True):
    flat = jaxobj.gaussian_kl_divergence(mu.reshape(3, 10), lv.reshape(3, 10), reduction="none")
    close(jaxobj.gaussian_kl_divergence(mu, lv, event_ndims=2, reduction="none"), flat, rtol=1e-13)
    close(
      jaxobj.gaussian_kl_divergence(mu, lv, reduction="none"), ref_kl(mu, lv), rtol=1e-12
    )  # per (sample, row) with event_ndims=1
    per_element = jaxobj.gaussian_kl_divergence(mu, lv, event_ndims=0, reduction="none")
    close(per_element.sum((1, 2)), flat, rtol=1e-13)
  for bad in (-1, 4, 1.0, True):
    with pytest.raises(ValueError, match="event_ndims"):
      jaxobj.gaussian_kl_divergence(mu, lv, event_ndims=bad)


def test_kl_gradients():
  mu, lv, mu_p, lv_p = rng_inputs(3, *[(3, 2)] * 4)
  with jax.enable_x64(True):
    f = lambda *a: jaxobj.gaussian_kl_divergence(*a, where=MASK[:3], reduction="sum")
    check_grads(f, (mu, lv, mu_p, lv_p), order=2, modes=["rev"])
    g_mu, g_lv = jax.grad(
      lambda m, s: jaxobj.gaussian_kl_divergence(m, s, reduction="sum"), argnums=(0, 1)
    )(mu, lv)
  close(g_mu, mu, rtol=1e-13)  # d/d mu = mu, d/d s = (e^s - 1)/2
  close(g_lv, 0.5 * np.expm1(lv), rtol=1e-13)


def test_kl_bad_inputs():
  mu = np.zeros((B, D), np.float32)
  with pytest.raises(ValueError, match=r"prior_mean.*\(6, 3\)"):
    jaxobj.gaussian_kl_divergence(mu, mu, np.zeros((B, 3), np.float32))
  with pytest.raises(ValueError, match="prior_log_variance"):
    jaxobj.gaussian_kl_divergence(mu, mu, prior_log_variance=np.zeros(D, np.float32))
  with pytest.raises(TypeError, match="log_variance"):
    jaxobj.gaussian_kl_divergence(mu, np.zeros((B, D), np.int32))


def test_kl_extreme_log_variances_are_finite():
  mu = np.array([[1e4, -1e4, 0.0, 1.0]], np.float32)
  lv = np.array([[80.0, -80.0, -1e4, 0.0]], np.float32)
  value, grads = jax.value_and_grad(jaxobj.gaussian_kl_divergence, argnums=(0, 1))(mu, lv)
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


# --------------------------------------------------------------------------
# Reconstruction likelihoods.


def ref_bernoulli(x, y):
  return -np.sum(y * log_expit(x) + (1 - y) * log_expit(-x), axis=-1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bernoulli_values(reduction):
  rng = np.random.default_rng(4)
  x = 3 * rng.standard_normal((B, D))
  y = np.where(rng.uniform(size=(B, D)) < 0.5, rng.integers(0, 2, (B, D)), rng.uniform(size=(B, D)))
  with jax.enable_x64(True):
    got = jaxobj.bernoulli_reconstruction_loss(x, y, where=MASK, weights=W, reduction=reduction)
    close(got, ref_reduce(ref_bernoulli(x, y), MASK, W, reduction), rtol=1e-12)
  optax_sum = np.sum(optax.sigmoid_binary_cross_entropy(np.float32(x), np.float32(y)), -1)
  close(
    jaxobj.bernoulli_reconstruction_loss(np.float32(x), np.float32(y), reduction="none"),
    optax_sum,
    rtol=1e-6,
  )


def test_bernoulli_images_and_extremes():
  rng = np.random.default_rng(5)
  x = (1e4 * rng.choice([-1.0, 1.0], (2, 3, 3))).astype(np.float32)
  y = (x > 0).astype(np.float32)
  got = jaxobj.bernoulli_reconstruction_loss(x, y, event_ndims=2, reduction="none")
  assert got.shape == (2,) and np.all(np.asarray(got) == 0.0)
  wrong = jaxobj.bernoulli_reconstruction_loss(x, 1 - y, event_ndims=2, reduction="none")
  close(wrong, np.full(2, 9e4), rtol=1e-6)
  g = jax.grad(lambda x: jaxobj.bernoulli_reconstruction_loss(x, 1 - y, event_ndims=2))(x)
  close(g, np.sign(x) / 2, rtol=1e-6)  # sigma(x) - y, over the batch mean
  ints = jaxobj.bernoulli_reconstruction_loss(x, y.astype(np.int32), event_ndims=2)
  assert float(ints) == 0.0


def ref_gaussian(mu, y, var=1.0, log_var=None, full=False):
  var = np.exp(log_var) if log_var is not None else var
  out = 0.5 * ((y - mu) ** 2 / var + np.log(var))
  return np.sum(out + (0.5 * np.log(2 * np.pi) if full else 0.0), axis=-1)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("predicted", [False, True])
def test_gaussian_reconstruction_values(full, predicted):
  mu, y, s = rng_inputs(6, (B, D), (B, D), (B, D))
  kw = {"log_var": s} if predicted else {"var": 0.3}
  args = (mu, y, s) if predicted else (mu, y)
  hyper = {} if predicted else {"variance": 0.3}
  with jax.enable_x64(True):
    for reduction in ("mean", "sum", "none"):
      got = jaxobj.gaussian_reconstruction_loss(
        *args, **hyper, full=full, where=MASK, weights=W, reduction=reduction
      )
      close(got, ref_reduce(ref_gaussian(mu, y, full=full, **kw), MASK, W, reduction), rtol=1e-12)
  if full:  # a normalized log-density
    sd = np.exp(s / 2) if predicted else np.sqrt(0.3)
    close(
      ref_gaussian(mu, y, full=True, **kw), -scipy.stats.norm.logpdf(y, mu, sd).sum(-1), rtol=1e-12
    )


def test_gaussian_reconstruction_matches_regression_nll():
  mu, y, s = (np.float32(a) for a in rng_inputs(7, (B, D), (B, D), (B, D)))
  close(
    jaxobj.gaussian_reconstruction_loss(mu, y, s, event_ndims=0, reduction="none"),
    jaxobj.gaussian_nll_loss(mu, y, s, log_variance=True, reduction="none"),
    rtol=1e-6,
  )
  close(
    jaxobj.gaussian_reconstruction_loss(mu, y, reduction="none"),
    np.sum(np.asarray(jaxobj.l2_loss(mu, y, reduction="none")), -1),
    rtol=1e-6,
  )


def test_gaussian_reconstruction_gradients_and_variance():
  mu, y, s = rng_inputs(8, (3, 2), (3, 2), (3, 2))
  with jax.enable_x64(True):
    f = lambda m, t, s: jaxobj.gaussian_reconstruction_loss(m, t, s, reduction="sum")
    check_grads(f, (mu, y, s), order=2, modes=["rev"])
    gv = jax.grad(
      lambda v: jaxobj.gaussian_reconstruction_loss(mu, y, variance=v, reduction="sum")
    )(0.7)
  # d/d var of sum 0.5 ((y - mu)^2 / var + log var)
  close(gv, np.sum(-0.5 * (y - mu) ** 2 / 0.49 + 0.5 / 0.7), rtol=1e-12)
  with pytest.raises(ValueError, match="variance"):
    jaxobj.gaussian_reconstruction_loss(mu, y, variance=0.0)
  with pytest.raises(ValueError, match=r"log_variance"):
    jaxobj.gaussian_reconstruction_loss(mu, y, s[:, :1])
  lv = np.array([[-1e4, 80.0]], np.float32)
  value, g = jax.value_and_grad(jaxobj.gaussian_reconstruction_loss, argnums=(0, 2))(
    np.float32([[0.0, 1e4]]), np.float32([[0.0, 0.0]]), lv
  )
  assert np.isfinite(value) and all(np.all(np.isfinite(a)) for a in g)


# --------------------------------------------------------------------------
# The ELBO helper.


def test_negative_elbo_values_and_terms():
  rec, kl = (np.abs(a) for a in rng_inputs(9, (B,), (B,), scale=5.0))
  for reduction in ("mean", "sum", "none"):
    terms = jaxobj.negative_elbo(
      np.float32(rec),
      np.float32(kl),
      beta=0.3,
      where=MASK,
      weights=W,
      reduction=reduction,
      return_terms=True,
    )
    close(
      jaxobj.negative_elbo(
        np.float32(rec), np.float32(kl), beta=0.3, where=MASK, weights=W, reduction=reduction
      ),
      terms.loss,
    )
    close(terms.loss, ref_reduce(rec + 0.3 * kl, MASK, W, reduction))
    close(terms.reconstruction, ref_reduce(rec, MASK, W, reduction))
    close(terms.kl, ref_reduce(kl, MASK, W, reduction))
    close(terms.loss, terms.reconstruction + 0.3 * terms.kl)


def test_negative_elbo_beta_is_traceable():
  rec, kl = (np.float32(np.abs(a)) for a in rng_inputs(10, (B,), (B,)))
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(beta):
    terms = jaxobj.negative_elbo(rec, kl, beta=beta, return_terms=True)
    return terms.loss, terms._asdict()

  for beta in (0.0, 0.5, 1.0):  # an annealing schedule's values: one trace
    loss, info = step(jnp.float32(beta))
    close(loss, rec.mean() + beta * kl.mean())
    assert set(info) == {"loss", "reconstruction", "kl"}
  batched = jax.vmap(lambda b: jaxobj.negative_elbo(rec, kl, beta=b))(jnp.arange(3.0))
  close(batched, rec.mean() + np.arange(3.0) * kl.mean())
  close(jax.grad(lambda b: jaxobj.negative_elbo(rec, kl, beta=b))(0.2), kl.mean())


def test_negative_elbo_end_to_end_and_masks():
  """With a model: value_and_grad with the terms as aux; NaN behind the mask."""
  mu, lv, logits = (np.float32(a) for a in rng_inputs(11, (B, 2), (B, 2), (B, 3)))
  x = np.float32(np.random.default_rng(11).integers(0, 2, (B, 3)))

  def objective(params, where):
    terms = jaxobj.negative_elbo(
      jaxobj.bernoulli_reconstruction_loss(params["logits"], x, where=where, reduction="none"),
      jaxobj.gaussian_kl_divergence(params["mu"], params["lv"], where=where, reduction="none"),
      beta=0.5,
      where=where,
      return_terms=True,
    )
    return terms.loss, terms

  clean = {"mu": mu, "lv": lv, "logits": logits}
  dirty = {k: poison(v) for k, v in clean.items()}
  (value, terms), grads = jax.value_and_grad(objective, has_aux=True)(dirty, MASK)
  expected = np.mean((ref_bernoulli(logits, x) + 0.5 * ref_kl(mu, lv))[MASK])
  close(value, expected)
  close(terms.kl, np.mean(ref_kl(mu, lv)[MASK]))
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~MASK] == 0)


def test_negative_elbo_bad_inputs():
  rec = np.ones(B, np.float32)
  with pytest.raises(ValueError, match="beta"):
    jaxobj.negative_elbo(rec, rec, beta=-1.0)
  with pytest.raises(ValueError, match=r"kl\.shape=\(6, 1\)"):
    jaxobj.negative_elbo(rec, rec[:, None])
  with pytest.raises(TypeError, match="reconstruction"):
    jaxobj.negative_elbo(rec.astype(np.int32), rec)


# --------------------------------------------------------------------------
# GAN losses.


def ref_discriminator(r, f, kind):
  if kind in ("minimax", "non_saturating"):
    return -log_expit(r) - log_expit(-f)
  if kind == "hinge":
    return np.maximum(0, 1 - r) + np.maximum(0, 1 + f)
  if kind == "wasserstein":
    return f - r
  return 0.5 * (r - 1) ** 2 + 0.5 * f**2


def ref_generator(f, kind):
  return {
    "minimax": log_expit(-f),
    "non_saturating": -log_expit(f),
    "hinge": -f,
    "wasserstein": -f,
    "least_squares": 0.5 * (f - 1) ** 2,
  }[kind]


KINDS = GAN_LOSS_TYPES


@pytest.mark.parametrize("kind", KINDS)
def test_gan_values(kind):
  r, f = rng_inputs(12, (B,), (B,), scale=2.0)
  with jax.enable_x64(True):
    for reduction in ("mean", "sum", "none"):
      got = jaxobj.gan_discriminator_loss(
        r, f, loss_type=kind, where=MASK, weights=W, reduction=reduction
      )
      close(got, ref_reduce(ref_discriminator(r, f, kind), MASK, W, reduction), rtol=1e-12)
      got = jaxobj.gan_generator_loss(f, loss_type=kind, where=MASK, weights=W, reduction=reduction)
      close(got, ref_reduce(ref_generator(f, kind), MASK, W, reduction), rtol=1e-12)


def test_gan_matches_optax_cross_entropy():
  r, f = (np.float32(a) for a in rng_inputs(13, (B,), (B,), scale=3.0))
  bce = optax.sigmoid_binary_cross_entropy
  ones, zeros = np.ones(B, np.float32), np.zeros(B, np.float32)
  close(jaxobj.gan_discriminator_loss(r, f, reduction="none"), bce(r, ones) + bce(f, zeros))
  close(jaxobj.gan_generator_loss(f, reduction="none"), bce(f, ones))
  close(jaxobj.gan_generator_loss(f, loss_type="minimax", reduction="none"), -bce(f, zeros))


@pytest.mark.parametrize("kind", KINDS)
def test_gan_gradients(kind):
  r, f = rng_inputs(14, (B,), (B,), scale=2.0)
  with jax.enable_x64(True):
    d = lambda r, f: jaxobj.gan_discriminator_loss(r, f, loss_type=kind, reduction="sum")
    g = lambda f: jaxobj.gan_generator_loss(f, loss_type=kind, reduction="sum")
    check_grads(d, (r, f), order=1, modes=["rev"])
    check_grads(g, (f,), order=1, modes=["rev"])
    gr, gf = jax.grad(d, argnums=(0, 1))(r, f)
    gg = jax.grad(g)(f)
  expected = {  # closed forms of d/dr, d/df (discriminator) and d/df (generator)
    "minimax": (-expit(-r), expit(f), -expit(f)),
    "non_saturating": (-expit(-r), expit(f), -expit(-f)),
    "hinge": (-1.0 * (r < 1.0), 1.0 * (f > -1.0), -np.ones(B)),
    "wasserstein": (-np.ones(B), np.ones(B), -np.ones(B)),
    "least_squares": (r - 1, f, f - 1),
  }[kind]
  for got, want in zip((gr, gf, gg), expected):
    close(got, want, rtol=1e-12)


def test_minimax_generator_saturates_and_non_saturating_does_not():
  f = np.float32([-10.0])  # the discriminator confidently rejects the fake
  g_minimax = jax.grad(lambda f: jaxobj.gan_generator_loss(f, loss_type="minimax"))(f)
  g_ns = jax.grad(lambda f: jaxobj.gan_generator_loss(f, loss_type="non_saturating"))(f)
  assert abs(float(g_minimax[0])) < 1e-4 and float(g_ns[0]) < -0.99


@pytest.mark.parametrize("kind", KINDS)
def test_gan_contract(kind):
  """The contract checks for every kind (the registry-wide test sees the default)."""
  r, f = (np.float32(a) for a in rng_inputs(15, (B,), (B,), scale=2.0))
  where = jnp.asarray(MASK)
  d = lambda r, f, **kw: jaxobj.gan_discriminator_loss(r, f, loss_type=kind, **kw)
  g = lambda f, **kw: jaxobj.gan_generator_loss(f, loss_type=kind, **kw)
  # mask == slice, NaN behind the mask changes nothing and gives zero gradients
  close(d(poison(r), poison(f), where=where), d(r[MASK], f[MASK]))
  close(g(poison(f), where=where), g(f[MASK]))
  grads = jax.grad(lambda r, f: d(r, f, where=where) + g(f, where=where), argnums=(0, 1))(
    poison(r), poison(f)
  )
  for a in grads:
    assert np.all(np.isfinite(a)) and np.all(np.asarray(a)[~MASK] == 0)
  # all masked: 0 with zero gradients
  none = jnp.zeros(B, bool)
  assert float(d(r, f, where=none)) == 0.0 and float(g(f, where=none)) == 0.0
  assert np.all(jax.grad(lambda f: g(f, where=none))(f) == 0)
  # extremes, low precision, extra batch axes
  for scale in (1e4, -1e4):
    big = jax.value_and_grad(lambda r, f: d(r, f) + g(f), argnums=(0, 1))(scale * r, scale * f)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(big))
  assert g(f.astype(jnp.bfloat16)).dtype == jnp.float32
  close(d(r.reshape(2, 3), f.reshape(2, 3), reduction="none").reshape(B), d(r, f, reduction="none"))


def test_gan_bad_inputs():
  r = np.zeros(B, np.float32)
  with pytest.raises(ValueError, match="'hinge'"):
    jaxobj.gan_discriminator_loss(r, r, loss_type="vanilla")
  with pytest.raises(ValueError, match="'least_squares'"):
    jaxobj.gan_generator_loss(r, loss_type="lsgan")
  with pytest.raises(ValueError, match=r"fake_logits\.shape=\(6, 1\)"):
    jaxobj.gan_discriminator_loss(r, r[:, None])
  with pytest.raises(TypeError, match="fake_logits"):
    jaxobj.gan_generator_loss(np.zeros(B, np.int32))


# --------------------------------------------------------------------------
# Gradient penalties.

# A critic with a closed-form input gradient:
#   D(x) = sum_k sin(a_k x_k) + c |x|^2,   dD/dx_k = a_k cos(a_k x_k) + 2 c x_k.
A = np.array([0.5, -1.5, 2.0, 1.0])
C = 0.3


def sine_critic(x):
  a = A.reshape((1,) * (x.ndim - 1) + (-1,))
  return jnp.sum(jnp.sin(a * x) + C * x * x, axis=tuple(range(1, x.ndim)))


def sine_critic_grad(x):
  a = A.reshape((1,) * (x.ndim - 1) + (-1,))
  return a * np.cos(a * x) + 2 * C * x


def ref_gp(real, fake, eps, target=1.0):
  mixed = fake + eps.reshape((-1,) + (1,) * (real.ndim - 1)) * (real - fake)
  norms = np.sqrt(np.sum(sine_critic_grad(mixed) ** 2, axis=tuple(range(1, real.ndim))))
  return (norms - target) ** 2


def ref_r1(real, gamma):
  return 0.5 * gamma * np.sum(sine_critic_grad(real) ** 2, axis=tuple(range(1, real.ndim)))


def test_gradient_penalty_values():
  real, fake = rng_inputs(16, (B, D), (B, D))
  eps = np.random.default_rng(16).uniform(size=B)
  with jax.enable_x64(True):
    for reduction in ("mean", "sum", "none"):
      got = wgan_gradient_penalty(
        sine_critic, real, fake, interpolation=eps, where=MASK, weights=W, reduction=reduction
      )
      close(got, ref_reduce(ref_gp(real, fake, eps), MASK, W, reduction), rtol=1e-12)
    got = wgan_gradient_penalty(
      sine_critic, real, fake, interpolation=eps, target=0.5, reduction="none"
    )
    close(got, ref_gp(real, fake, eps, 0.5), rtol=1e-12)
    key = jax.random.key(3)
    drawn = np.asarray(jax.random.uniform(key, (B,), jnp.float64))
    close(
      wgan_gradient_penalty(sine_critic, real, fake, key=key, reduction="none"),
      ref_gp(real, fake, drawn),
      rtol=1e-12,
    )


def test_gradient_penalty_images_and_linear_critic():
  real, fake = rng_inputs(17, (3, 2, 4), (3, 2, 4))
  eps = np.array([0.0, 0.5, 1.0])
  with jax.enable_x64(True):
    got = wgan_gradient_penalty(sine_critic, real, fake, interpolation=eps, reduction="none")
    close(got, ref_gp(real, fake, eps), rtol=1e-12)
    w = np.array([3.0, 4.0])  # a linear critic: ||grad|| = 5 wherever it is evaluated
    lin = wgan_gradient_penalty(
      lambda x: x @ w, real[:, 0, :2], fake[:, 0, :2], key=jax.random.key(0), reduction="none"
    )
    close(lin, np.full(3, 16.0), rtol=1e-14)


def mlp_critic(params, x):
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def test_gradient_penalty_differentiates_the_critic_parameters():
  rng = np.random.default_rng(18)
  params = {
    "w1": rng.standard_normal((3, 5)),
    "b1": rng.standard_normal(5),
    "w2": rng.standard_normal(5),
  }
  real, fake = rng.standard_normal((2, 4, 3))
  eps = rng.uniform(size=4)
  with jax.enable_x64(True):
    gp = lambda p, real, fake: wgan_gradient_penalty(
      lambda x: mlp_critic(p, x), real, fake, interpolation=eps, where=MASK[:4]
    )
    check_grads(gp, (params, real, fake), order=1, modes=["rev"])
    r1 = lambda p, real: r1_penalty(lambda x: mlp_critic(p, x), real, gamma=2.0)
    check_grads(r1, (params, real), order=1, modes=["rev"])


def test_gradient_penalty_at_a_zero_input_gradient():
  """A flat critic: norm 0, penalty target^2, and a finite (zero) parameter gradient."""
  real, fake = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
  loss = lambda w: wgan_gradient_penalty(lambda x: x @ w, real, fake, key=jax.random.key(1))
  value, g = jax.value_and_grad(loss)(jnp.zeros(3))
  assert float(value) == 1.0 and np.all(np.asarray(g) == 0.0)
  g = jax.grad(lambda w: r1_penalty(lambda x: x @ w, real))(jnp.zeros(3))
  assert np.all(np.asarray(g) == 0.0)


def test_r1_values_and_gamma():
  real = rng_inputs(19, (B, D))[0]
  with jax.enable_x64(True):
    for reduction in ("mean", "sum", "none"):
      got = r1_penalty(sine_critic, real, gamma=3.0, where=MASK, weights=W, reduction=reduction)
      close(got, ref_reduce(ref_r1(real, 3.0), MASK, W, reduction), rtol=1e-12)
    g_gamma = jax.grad(lambda c: r1_penalty(sine_critic, real, gamma=c))(2.0)
    close(g_gamma, ref_r1(real, 1.0).mean(), rtol=1e-12)
    per_gamma = jax.vmap(lambda c: r1_penalty(sine_critic, real, gamma=c))(jnp.array([1.0, 10.0]))
    close(per_gamma, [ref_r1(real, 1.0).mean(), ref_r1(real, 10.0).mean()], rtol=1e-12)


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalty_contract(penalty):
  real, fake = (np.float32(a) for a in rng_inputs(20, (B, D), (B, D)))
  eps = np.float32(np.random.default_rng(20).uniform(size=B))

  def fn(real, fake, eps, **kw):
    if penalty == "gp":
      return wgan_gradient_penalty(sine_critic, real, fake, interpolation=eps, **kw)
    return r1_penalty(sine_critic, real, **kw)

  where = jnp.asarray(MASK)
  close(
    fn(poison(real), poison(fake), poison(eps), where=where), fn(real[MASK], fake[MASK], eps[MASK])
  )
  grads = jax.grad(lambda r, f: fn(r, f, poison(eps), where=where), argnums=(0, 1))(
    poison(real), poison(fake)
  )
  for g in grads:
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~MASK] == 0)
  none = jnp.zeros(B, bool)
  assert float(fn(real, fake, eps, where=none)) == 0.0
  assert np.all(jax.grad(lambda r: fn(r, fake, eps, where=none))(real) == 0)
  close(fn(real, fake, eps, reduction="sum"), np.sum(fn(real, fake, eps, reduction="none")))
  out = fn(real.astype(jnp.bfloat16), fake.astype(jnp.bfloat16), eps)
  assert out.dtype == jnp.float32
  jitted = jax.jit(lambda r, f, e: fn(r, f, e, reduction="none"))
  close(jitted(real, fake, eps), fn(real, fake, eps, reduction="none"))


def test_penalty_bad_inputs():
  real = np.zeros((B, D), np.float32)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="exactly one"):
    wgan_gradient_penalty(sine_critic, real, real)
  with pytest.raises(ValueError, match="exactly one"):
    wgan_gradient_penalty(sine_critic, real, real, key=key, interpolation=np.zeros(B))
  with pytest.raises(ValueError, match=r"interpolation\.shape=\(6, 1\)"):
    wgan_gradient_penalty(sine_critic, real, real, interpolation=np.zeros((B, 1)))
  with pytest.raises(ValueError, match=r"fake\.shape=\(6, 3\)"):
    wgan_gradient_penalty(sine_critic, real, real[:, :3], key=key)
  with pytest.raises(TypeError, match="real"):
    r1_penalty(sine_critic, real.astype(np.int32))
  with pytest.raises(ValueError, match="batch axis"):
    r1_penalty(sine_critic, np.float32(1.0))
  with pytest.raises(ValueError, match="gamma"):
    r1_penalty(sine_critic, real, gamma=-1.0)


def test_wgan_gradient_penalty_nan_reaches_the_value():
  # The norm's "> 0" guard sent a NaN squared norm to 0: the penalty was 1.0.
  critic = lambda x: jnp.sum(x**2, axis=-1)  # noqa: E731  (input gradient 2x)
  real, fake = jnp.ones((3, 2)), jnp.full((3, 2), 2.0)
  eps = jnp.full((3,), 0.5)
  bad = real.at[1, 0].set(jnp.nan)
  out = np.asarray(wgan_gradient_penalty(critic, bad, fake, interpolation=eps, reduction="none"))
  assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
  keep = jnp.array([True, False, True])
  close(
    wgan_gradient_penalty(critic, bad, fake, interpolation=eps, where=keep),
    wgan_gradient_penalty(critic, real, fake, interpolation=eps, where=keep),
  )

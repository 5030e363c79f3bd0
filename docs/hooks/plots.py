"""One figure per loss family, drawn from the jaxobj functions themselves.

Every curve is the library's own ``reduction="none"`` output (and its
``jax.grad``), so a plot changes when the loss does. The docs build calls
:func:`render_all` (see ``docs/hooks/build.py``); run this file to write the
PNGs to a folder for a look:

    python docs/hooks/plots.py /tmp/plots
"""

from __future__ import annotations

import io
import math
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxobj  # noqa: E402

DPI = 90
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _figure(ncols=1):
  fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.0), dpi=DPI)
  axes = np.atleast_1d(axes)
  for ax in axes:
    ax.grid(alpha=0.3)
  return fig, axes


def _elementwise(fn, x):
  """``fn`` (scalar -> scalar) and its derivative over the grid ``x``."""
  f = jax.vmap(fn)
  g = jax.vmap(jax.grad(fn))
  return np.asarray(f(x)), np.asarray(g(x))


def regression():
  r = jnp.linspace(-4.0, 4.0, 321)
  losses = {
    "squared_error": lambda x: jaxobj.squared_error(x[None]),
    "absolute_error": lambda x: jaxobj.absolute_error(x[None]),
    "huber_loss (δ=1)": lambda x: jaxobj.huber_loss(x[None], delta=1.0),
    "log_cosh": lambda x: jaxobj.log_cosh(x[None]),
    "quantile_loss (q=0.9)": lambda x: jaxobj.quantile_loss(x[None], jnp.zeros(1), quantile=0.9),
    "epsilon_insensitive (ε=0.5)": lambda x: jaxobj.epsilon_insensitive_loss(
      x[None], jnp.zeros(1), epsilon=0.5
    ),
  }
  fig, (a, b) = _figure(2)
  for name, fn in losses.items():
    v, g = _elementwise(fn, r)
    a.plot(r, v, label=name)
    b.plot(r, g, label=name)
  a.set(xlabel="residual r = prediction − target", ylabel="loss", ylim=(0, 4.5))
  b.set(xlabel="residual r", ylabel="dℓ/dr (influence)", ylim=(-4.5, 4.5))
  a.legend(fontsize=7)
  return fig


def robust():
  r = jnp.linspace(-6.0, 6.0, 361)
  fig, (a, b) = _figure(2)
  for alpha in (2.0, 1.0, 0.0, -2.0, -math.inf):
    fn = lambda x, al=alpha: jaxobj.general_robust_loss(x[None], alpha=al, scale=1.0)
    v, g = _elementwise(fn, r)
    a.plot(r, v, label=f"α = {alpha:g}")
    b.plot(r, g, label=f"α = {alpha:g}")
  a.set(xlabel="residual x (scale c = 1)", ylabel="ρ(x, α, c)", ylim=(0, 6))
  b.set(xlabel="residual x", ylabel="dρ/dx", ylim=(-3, 3))
  a.legend(fontsize=7)
  return fig


def classification():
  m = jnp.linspace(-4.0, 4.0, 321)
  one = jnp.ones((1,))
  losses = {
    "sigmoid_binary_cross_entropy": lambda z: jaxobj.sigmoid_binary_cross_entropy(z[None], one),
    "sigmoid_focal_loss (γ=2)": lambda z: jaxobj.sigmoid_focal_loss(z[None], one, gamma=2.0),
    "hinge_loss": lambda z: jaxobj.hinge_loss(z[None], one),
    "squared_hinge_loss": lambda z: jaxobj.squared_hinge_loss(z[None], one),
  }
  fig, (a,) = _figure()
  for name, fn in losses.items():
    a.plot(m, np.asarray(jax.vmap(fn)(m)), label=name)
  a.set(xlabel="margin y·z (logit times label sign)", ylabel="loss", ylim=(0, 5))
  a.legend(fontsize=7)
  return fig


def _logit(p):
  return jnp.log(p) - jnp.log1p(-p)


def calibration():
  p = jnp.linspace(0.01, 0.99, 197)
  one = jnp.ones((1,))
  fig, (a, b) = _figure(2)
  log_score = jax.vmap(lambda z: jaxobj.sigmoid_binary_cross_entropy(z[None], one))(_logit(p))
  brier = jax.vmap(lambda z: jaxobj.binary_brier_score(z[None], one))(_logit(p))
  a.plot(p, log_score, label="log score (cross-entropy)")
  a.plot(p, brier, label="binary_brier_score")
  a.set(xlabel="predicted probability of the true outcome", ylabel="loss", ylim=(0, 4))
  a.legend(fontsize=7)
  # A reliability diagram of an over-confident classifier, then temperature-scaled.
  key = jax.random.key(0)
  k1, k2 = jax.random.split(key)
  n, classes = 4000, 5
  labels = jax.random.randint(k1, (n,), 0, classes)
  clean = 1.5 * jax.nn.one_hot(labels, classes) + jax.random.normal(k2, (n, classes))
  logits = 3.0 * clean  # the Bayes logits are 1.5 * clean: over-confident by 2
  t = jaxobj.fit_temperature(logits, labels)
  for name, z in (
    ("raw logits", logits),
    (f"temperature {float(t):.2f}", jaxobj.temperature_scale(logits, t)),
  ):
    d = jaxobj.reliability_diagram(z, labels, num_bins=10)
    keep = np.asarray(d.count) > 0
    ece = float(jaxobj.expected_calibration_error(z, labels, num_bins=10))
    b.plot(
      np.asarray(d.confidence)[keep],
      np.asarray(d.accuracy)[keep],
      "o-",
      label=f"{name} (ECE {ece:.3f})",
    )
  b.plot([0, 1], [0, 1], "k--", lw=0.8)
  b.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
  b.legend(fontsize=7)
  return fig


def distribution():
  p = jnp.linspace(0.01, 0.99, 197)
  q = jnp.array([0.3, 0.7])

  def bern(x):
    return jnp.stack([x, 1 - x])

  losses = {
    "kl_divergence KL(target ‖ model)": lambda x: jaxobj.kl_divergence(jnp.log(bern(x)), q),
    "reverse_kl_divergence KL(model ‖ target)": lambda x: jaxobj.reverse_kl_divergence(
      jnp.log(bern(x)), q
    ),
    "jensen_shannon_divergence": lambda x: jaxobj.jensen_shannon_divergence(jnp.log(bern(x)), q),
  }
  fig, (a,) = _figure()
  for name, fn in losses.items():
    a.plot(p, np.asarray(jax.vmap(fn)(p)), label=name)
  a.axvline(0.3, color="k", lw=0.8, ls="--")
  a.set(xlabel="model Bernoulli parameter (target 0.3)", ylabel="divergence", ylim=(0, 1.5))
  a.legend(fontsize=7)
  return fig


def sequence():
  z = jnp.linspace(-2.0, 10.0, 241)
  vocab = 8

  def ce(x, smoothing):
    logits = jnp.zeros((1, vocab)).at[0, 0].set(x)
    return jaxobj.token_cross_entropy(logits, jnp.zeros((1,), jnp.int32), label_smoothing=smoothing)

  fig, (a,) = _figure()
  for s in (0.0, 0.1, 0.3):
    a.plot(z, np.asarray(jax.vmap(lambda x, s=s: ce(x, s))(z)), label=f"label_smoothing={s:g}")
  a.set(xlabel="logit of the target token (7 others at 0)", ylabel="token_cross_entropy")
  a.legend(fontsize=7)
  return fig


def segmentation():
  # A 32x32 image whose foreground is a 6x6 square (3.5% of the pixels); the
  # prediction finds a growing part of it, with no false positives.
  size, side = 32, 6
  labels = np.zeros((1, size, size), np.int32)
  labels[0, 10 : 10 + side, 10 : 10 + side] = 1
  fg = np.argwhere(labels[0] == 1)
  found = np.arange(0, len(fg) + 1, 2)
  logits = []
  for k in found:
    pred = np.zeros((size, size), np.float32)
    for i, j in fg[:k]:
      pred[i, j] = 1.0
    z = np.stack([-4.0 * (2 * pred - 1), 4.0 * (2 * pred - 1)], -1)
    logits.append(z)
  logits = jnp.asarray(np.stack(logits))
  lab = jnp.asarray(np.repeat(labels, len(found), 0))
  recall = found / len(fg)
  curves = {
    "dice_loss": jaxobj.dice_loss(logits, lab, reduction="none"),
    "jaccard_loss": jaxobj.jaccard_loss(logits, lab, reduction="none"),
    "tversky_loss (α=0.3, β=0.7)": jaxobj.tversky_loss(
      logits, lab, alpha=0.3, beta=0.7, reduction="none"
    ),
    "softmax_cross_entropy (pixel mean)": jnp.mean(
      jaxobj.softmax_cross_entropy_with_integer_labels(logits, lab, reduction="none"), axis=(1, 2)
    ),
  }
  fig, (a,) = _figure()
  for name, v in curves.items():
    v = np.asarray(v)
    a.plot(recall, v.reshape(len(found), -1).mean(-1), label=name)
  a.set_title("foreground: 3.5% of the pixels", fontsize=9)
  a.set(xlabel="fraction of a small object found", ylabel="loss")
  a.legend(fontsize=7)
  return fig


def metric_learning():
  d = jnp.linspace(0.0, 2.5, 201)
  fig, (a, b) = _figure(2)
  zero = jnp.zeros((1, 1))
  for label, name in ((1, "similar pair"), (0, "dissimilar pair")):
    v = jax.vmap(
      lambda x, y=label: jaxobj.pairwise_contrastive_loss(
        zero, x.reshape(1, 1), jnp.array([y]), margin=1.0
      )
    )(d)
    a.plot(d, np.asarray(v), label=name)
  a.set(xlabel="distance between the embeddings", ylabel="pairwise_contrastive_loss (m=1)")
  a.legend(fontsize=7)
  gap = jnp.linspace(-1.0, 2.0, 201)
  for distance in ("lp", "squared_euclidean"):
    v = jax.vmap(
      lambda g, dist=distance: jaxobj.triplet_margin_loss(
        zero, jnp.full((1, 1), 1.0), jnp.full((1, 1), 1.0 + g), margin=0.5, distance=dist
      )
    )(gap)
    b.plot(gap, np.asarray(v), label=f"distance={distance!r}")
  b.set(xlabel="d(a, n) − d(a, p), with d(a, p) = 1", ylabel="triplet_margin_loss (m=0.5)")
  b.legend(fontsize=7)
  return fig


def contrastive():
  key = jax.random.key(0)
  k1, k2 = jax.random.split(key)
  batch, dim = 64, 32
  q = jax.random.normal(k1, (batch, dim))
  noise = jax.random.normal(k2, (batch, dim))
  sigma = jnp.linspace(0.0, 3.0, 31)
  fig, (a,) = _figure()
  for t in (0.05, 0.1, 0.3, 1.0):
    v = jax.vmap(lambda s, t=t: jaxobj.info_nce_loss(q, q + s * noise, temperature=t))(sigma)
    a.plot(sigma, np.asarray(v), label=f"temperature={t:g}")
  a.axhline(math.log(batch), color="k", lw=0.8, ls="--")
  a.text(0.05, math.log(batch) + 0.1, "log B (chance)", fontsize=7)
  a.set(xlabel="noise between the two views (B = 64, D = 32)", ylabel="info_nce_loss")
  a.legend(fontsize=7)
  return fig


def ranking():
  gap = jnp.linspace(-4.0, 4.0, 321)
  labels = jnp.array([[1.0, 0.0]])
  losses = {
    "pairwise_logistic_loss": lambda g: jaxobj.pairwise_logistic_loss(
      jnp.stack([g, 0.0])[None], labels
    ),
    "pairwise_hinge_loss": lambda g: jaxobj.pairwise_hinge_loss(jnp.stack([g, 0.0])[None], labels),
    "softmax_loss (ListNet)": lambda g: jaxobj.softmax_loss(jnp.stack([g, 0.0])[None], labels),
    "listmle_loss": lambda g: jaxobj.listmle_loss(jnp.stack([g, 0.0])[None], labels),
  }
  fig, (a,) = _figure()
  for name, fn in losses.items():
    a.plot(gap, np.asarray(jax.vmap(fn)(gap)), label=name)
  a.set(xlabel="score(relevant) − score(irrelevant)", ylabel="loss per list", ylim=(0, 5))
  a.legend(fontsize=7)
  return fig


def preference():
  h = jnp.linspace(-6.0, 6.0, 241)
  zero = jnp.zeros(())
  fig, (a,) = _figure()
  for kind in ("sigmoid", "hinge", "ipo"):
    v = jax.vmap(
      lambda x, k=kind: jaxobj.dpo_loss(
        x[None], zero[None], zero[None], zero[None], beta=1.0, loss_type=k
      )
    )(h)
    a.plot(h, np.asarray(v), label=f"dpo_loss(loss_type={kind!r})")
  a.set(xlabel="implicit reward margin (β = 1)", ylabel="loss", ylim=(0, 6))
  a.legend(fontsize=7)
  return fig


def policy_gradient():
  ratio = jnp.linspace(0.3, 2.2, 241)
  fig, (a,) = _figure()

  def curve(adv, **kw):
    def one(w):
      lp = jnp.log(w)[None, None]  # one completion of one token, old log-prob 0
      return jaxobj.policy_gradient_loss(lp, jnp.zeros((1, 1)), jnp.array([adv]), **kw)

    return np.asarray(jax.vmap(one)(ratio))

  for adv, style in ((1.0, "-"), (-1.0, "--")):
    a.plot(ratio, curve(adv), style, color=COLORS[0], label=f"A = {adv:+.0f}, ε = 0.2")
    label = "ε_high = 0.28 (DAPO)" if adv > 0 else None
    a.plot(ratio, curve(adv, epsilon_high=0.28), style, color=COLORS[1], label=label)
  a.plot(ratio, curve(-1.0, delta=1.5), ":", color=COLORS[2], label="A = -1, delta = 1.5")
  a.set(xlabel="importance ratio π / π_old", ylabel="per-token loss")
  a.legend(fontsize=7)
  return fig


def generative():
  z = jnp.linspace(-6.0, 6.0, 241)
  fig, (a,) = _figure()
  for kind in ("minimax", "non_saturating", "hinge", "wasserstein", "least_squares"):
    v = jax.vmap(lambda x, k=kind: jaxobj.gan_generator_loss(x[None], loss_type=k))(z)
    a.plot(z, np.asarray(v), label=kind)
  a.axvspan(-6, -3, color="grey", alpha=0.15)
  a.text(-5.8, 4.2, "D rejects fakes\n(early training)", fontsize=7)
  a.set(
    xlabel="discriminator logit on a generated sample", ylabel="gan_generator_loss", ylim=(-5, 5)
  )
  a.legend(fontsize=7)
  return fig


def regularization():
  w = jnp.linspace(-2.0, 2.0, 201)
  penalties = {
    "l1_penalty": lambda x: jaxobj.l1_penalty({"w": x}),
    "l2_penalty": lambda x: jaxobj.l2_penalty({"w": x}),
    "elastic_net_penalty (ρ=0.5)": lambda x: jaxobj.elastic_net_penalty({"w": x}, l1_ratio=0.5),
  }
  fig, (a, b) = _figure(2)
  for name, fn in penalties.items():
    v, g = _elementwise(fn, w)
    a.plot(w, v, label=name)
    b.plot(w, g, label=name)
  a.set(xlabel="weight w", ylabel="penalty")
  b.set(xlabel="weight w", ylabel="gradient (pull towards 0)")
  a.legend(fontsize=7)
  return fig


def noisy_labels():
  m = jnp.linspace(-8.0, 8.0, 321)
  losses = {
    "cross-entropy": jaxobj.softmax_cross_entropy_with_integer_labels,
    "generalized_cross_entropy (q=0.7)": jaxobj.generalized_cross_entropy,
    "symmetric_cross_entropy": jaxobj.symmetric_cross_entropy,
    "nce_rce_loss": jaxobj.nce_rce_loss,
    "reverse_cross_entropy": jaxobj.reverse_cross_entropy,
  }
  fig, (a, b) = _figure(2)
  for name, loss in losses.items():

    def fn(v, loss=loss):
      return loss(jnp.stack([v, 0.0, 0.0, 0.0])[None], jnp.array([0]))

    v, g = _elementwise(fn, m)
    a.plot(m, v, label=name)
    b.plot(m, np.abs(g), label=name)
  a.set(xlabel="logit of the labelled class (others 0)", ylabel="loss", ylim=(0, 8))
  b.set(xlabel="logit of the labelled class (others 0)", ylabel="|gradient|")
  a.legend(fontsize=7)
  return fig


def metric_surrogates():
  fig, (a, b) = _figure(2)
  s = jnp.array([[0.9, 0.8, 0.45, 0.4, 0.1, -0.3]])
  y = jnp.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
  tau = jnp.logspace(-3, 0.5, 100)
  ap = jax.vmap(lambda t: jaxobj.smooth_ap_loss(s, y, temperature=t))(tau)
  a.plot(tau, np.asarray(ap), label="smooth_ap_loss")
  a.axhline(float(ap[0]), color="k", ls=":", lw=1, label="1 − average precision")
  a.set(xscale="log", xlabel="temperature τ", ylabel="loss")
  a.legend(fontsize=7)
  x = jnp.array([[2.0, 1.0, -0.5, -1.0, 0.5, -2.0]])
  labels = jnp.array([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]])  # TP 1, FP 2, FN 1
  scale = jnp.logspace(-1, 1.5, 100)
  for i, beta in enumerate((0.5, 1.0, 2.0)):
    f = jax.vmap(lambda c, beta=beta: jaxobj.soft_fbeta_loss(c * x, labels, beta=beta))(scale)
    b.plot(scale, np.asarray(f), color=COLORS[i], label=f"soft_fbeta_loss (β={beta:g})")
    b.axhline(float(f[-1]), color=COLORS[i], ls=":", lw=1)
  b.set(xscale="log", xlabel="logit scale", ylabel="loss (dotted: 1 − F-β)")
  b.legend(fontsize=7)
  return fig


def registration():
  fig, (a, b) = _figure(2)
  i, j = jnp.meshgrid(jnp.arange(32.0), jnp.arange(32.0), indexing="ij")
  waves = jnp.linspace(0.25, 4.0, 60)
  ddf = jax.vmap(lambda k: jnp.stack([jnp.sin(2 * jnp.pi * k * j / 32), 0 * i], -1))(waves)
  a.plot(waves, np.asarray(jaxobj.diffusion_loss(ddf, reduction="none")), label="diffusion_loss")
  bend = jaxobj.bending_energy_loss(ddf, reduction="none")
  a.plot(waves, np.asarray(bend), label="bending_energy_loss")
  a.set(yscale="log", xlabel="waves of a 1-pixel displacement across 32 pixels", ylabel="loss")
  a.legend(fontsize=7)
  img = 0.5 + 0.5 * jnp.sin(i / 3.0) * jnp.cos(j / 5.0)
  shifts = jnp.arange(-8, 9)
  moved = jax.vmap(lambda s: jnp.roll(img, s, axis=1))(shifts)[..., None]
  fixed = jnp.broadcast_to(img[..., None], moved.shape)
  lncc = jaxobj.local_normalized_cross_correlation_loss(
    moved, fixed, kernel_size=7, reduction="none"
  )
  mi = jaxobj.global_mutual_information_loss(moved, fixed, reduction="none")
  b.plot(shifts, np.asarray(lncc), label="local_normalized_cross_correlation_loss")
  b.plot(shifts, np.asarray(mi) / -float(mi[8]), label="global_mutual_information_loss (scaled)")
  b.set(xlabel="misalignment (pixels)", ylabel="loss")
  b.legend(fontsize=7)
  return fig


def soft_ranking():
  x = jnp.array([0.3, -1.2, 2.0, 0.5])
  eps = jnp.logspace(-2, 1.5, 120)
  fig, (a, b) = _figure(2)
  for reg, style in (("l2", "-"), ("kl", "--")):
    ranks = jax.vmap(
      lambda e, r=reg: jaxobj.soft_rank(x, regularization_strength=e, regularization=r)
    )(eps)
    sort = jax.vmap(
      lambda e, r=reg: jaxobj.soft_sort(x, regularization_strength=e, regularization=r)
    )(eps)
    for i in range(4):
      label = f"x = {float(x[i]):g}" if reg == "l2" else None
      a.plot(eps, np.asarray(ranks[:, i]), style, color=COLORS[i], label=label)
      b.plot(eps, np.asarray(sort[:, i]), style, color=COLORS[i])
  a.set(xscale="log", xlabel="regularization_strength ε", ylabel="soft_rank")
  b.set(xscale="log", xlabel="regularization_strength ε", ylabel="soft_sort (ascending)")
  a.legend(fontsize=7)
  return fig


FIGURES = {
  "regression": regression,
  "robust": robust,
  "classification": classification,
  "calibration": calibration,
  "distribution": distribution,
  "sequence": sequence,
  "segmentation": segmentation,
  "metric_learning": metric_learning,
  "contrastive": contrastive,
  "ranking": ranking,
  "preference": preference,
  "policy_gradient": policy_gradient,
  "generative": generative,
  "regularization": regularization,
  "soft_ranking": soft_ranking,
  "noisy_labels": noisy_labels,
  "metric_surrogates": metric_surrogates,
  "registration": registration,
}


def png(name: str) -> bytes:
  """The PNG of one family's figure."""
  fig = FIGURES[name]()
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=DPI)
  plt.close(fig)
  return buf.getvalue()


def render_all() -> dict[str, bytes]:
  """``{"<family>.png": bytes}`` for every family."""
  return {f"{name}.png": png(name) for name in FIGURES}


if __name__ == "__main__":
  out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "plots")
  out.mkdir(parents=True, exist_ok=True)
  for file, data in render_all().items():
    (out / file).write_bytes(data)
    print(f"{out / file}: {len(data) / 1024:.0f} KB")

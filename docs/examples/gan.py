"""GAN objectives: why the non-saturating generator loss is the default.

Early in training the discriminator rejects generated samples with confidence
(a large negative logit). The original minimax generator loss, log(1 - D),
then has almost no gradient; the non-saturating loss, -log D, has a gradient
near 1; the Wasserstein critic's is constant. ``gan_discriminator_loss`` and
``gan_generator_loss`` take logits for every ``loss_type``, and
``wgan_gradient_penalty`` keeps a Wasserstein critic 1-Lipschitz.

    python docs/examples/gan.py
"""

import jax
import jax.numpy as jnp

import jaxobj

rejected = jnp.array([-6.0])  # D's logit on a generated sample, early in training


def main():
  grads = {
    kind: float(
      jnp.abs(
        jax.grad(lambda z, kind=kind: jaxobj.gan_generator_loss(z, loss_type=kind))(rejected)[0]
      )
    )
    for kind in ("minimax", "non_saturating", "wasserstein")
  }
  print("generator gradient when D rejects the fakes:", {k: round(v, 4) for k, v in grads.items()})
  assert grads["minimax"] < 0.01 < 0.9 < grads["non_saturating"]

  # A linear critic f(x) = x @ w has gradient norm |w|: the penalty is (|w| - 1)^2.
  w = jnp.array([3.0, 4.0])
  real, fake = jnp.ones((8, 2)), jnp.zeros((8, 2))
  penalty = jaxobj.wgan_gradient_penalty(lambda x: x @ w, real, fake, key=jax.random.key(0))
  d_loss = jaxobj.gan_discriminator_loss(real @ w, fake @ w, loss_type="wasserstein")
  print(
    f"critic loss {float(d_loss):.1f}, gradient penalty {float(penalty):.1f} "
    "(|w| = 5, so (5 - 1)^2 = 16)"
  )
  assert abs(float(penalty) - 16.0) < 1e-4
  return grads


if __name__ == "__main__":
  main()

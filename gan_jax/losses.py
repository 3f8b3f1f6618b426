"""The loss zoo: GAN objectives as pairs of pure functions on discriminator outputs.

Each objective is an ``Objective(d_loss, g_loss)``:

* ``d_loss(real_out, fake_out) -> scalar``: what the discriminator (critic, energy function)
  minimises;
* ``g_loss(fake_out) -> scalar``: what the generator minimises.

Outputs are logits (or critic values, or energies), never probabilities: every log-sigmoid is
computed stably through ``softplus`` (``-log sigmoid(x) = softplus(-x)`` and
``-log(1 - sigmoid(x)) = softplus(x)``). Outputs may have any shape (``(B,)`` or ``(B, 1)``); the
loss averages over all elements.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class Objective(NamedTuple):
  """A GAN objective: the discriminator's and the generator's loss, matched."""
  d_loss: Callable[[ArrayLike, ArrayLike], jax.Array]  # (real_out, fake_out) -> scalar
  g_loss: Callable[[ArrayLike], jax.Array]             # fake_out -> scalar


def bce_d_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
  """Binary cross-entropy D loss: -E[log D(x)] - E[log(1 - D(G(z)))], with D = sigmoid(logit).

  Goodfellow et al. 2014, "Generative Adversarial Nets" (arXiv:1406.2661), eq. 1. At the optimal
  D*(x) = p(x) / (p(x) + q(x)) its value is log 4 - 2 JSD(p, q).
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_g_loss(fake_logits: ArrayLike) -> jax.Array:
  """Saturating (minimax) G loss: E[log(1 - D(G(z)))] = -E[softplus(logit)].

  Goodfellow et al. 2014 (arXiv:1406.2661), eq. 1. Its gradient vanishes when D confidently
  rejects the fakes (logit -> -inf), which is why it saturates early in training.
  """
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_g_loss(fake_logits: ArrayLike) -> jax.Array:
  """Non-saturating G loss: -E[log D(G(z))] = E[softplus(-logit)].

  Goodfellow et al. 2014 (arXiv:1406.2661), section 3: same fixed point as the minimax game,
  strong gradients where D rejects the fakes.
  """
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Wasserstein critic loss: E[f(G(z))] - E[f(x)].

  Arjovsky et al. 2017, "Wasserstein GAN" (arXiv:1701.07875). With f 1-Lipschitz (weight
  clipping or a gradient penalty), -min of this is the Kantorovich-Rubinstein estimate of W1.
  """
  return jnp.mean(fake_out) - jnp.mean(real_out)


def wasserstein_g_loss(fake_out: ArrayLike) -> jax.Array:
  """Wasserstein G loss: -E[f(G(z))]. Arjovsky et al. 2017 (arXiv:1701.07875)."""
  return -jnp.mean(fake_out)


def hinge_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Hinge D loss: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))].

  Lim & Ye 2017, "Geometric GAN" (arXiv:1705.02894); Miyato et al. 2018 (arXiv:1802.05957).
  The G loss is the Wasserstein one, -E[D(G(z))].
  """
  return jnp.mean(jax.nn.relu(1.0 - real_out)) + jnp.mean(jax.nn.relu(1.0 + fake_out))


def least_squares_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Least-squares D loss with targets a=0 (fake), b=1 (real): ½E[(D(x)-1)²] + ½E[D(G(z))²].

  Mao et al. 2017, "Least Squares GANs" (arXiv:1611.04076), eq. 2 with the 0-1 coding.
  """
  return 0.5 * jnp.mean((real_out - 1.0) ** 2) + 0.5 * jnp.mean(fake_out ** 2)


def least_squares_g_loss(fake_out: ArrayLike) -> jax.Array:
  """Least-squares G loss with target c=1: ½E[(D(G(z))-1)²]. Mao et al. 2017 (arXiv:1611.04076)."""
  return 0.5 * jnp.mean((fake_out - 1.0) ** 2)


def ebgan(margin: float = 1.0) -> Objective:
  """Energy-based GAN on energies E (low on data): D = E(x) + [m - E(G(z))]₊, G = E(G(z)).

  Zhao et al. 2017, "Energy-based Generative Adversarial Network" (arXiv:1609.03126), eqs. 1-2.
  The discriminator's outputs are energies (the autoencoder's reconstruction error), not logits.
  """
  def d_loss(real_energy, fake_energy):
    return jnp.mean(real_energy) + jnp.mean(jax.nn.relu(margin - fake_energy))

  def g_loss(fake_energy):
    return jnp.mean(fake_energy)

  return Objective(d_loss, g_loss)


OBJECTIVES = {
    'minimax': Objective(bce_d_loss, minimax_g_loss),
    'non_saturating': Objective(bce_d_loss, non_saturating_g_loss),
    'wasserstein': Objective(wasserstein_d_loss, wasserstein_g_loss),
    'hinge': Objective(hinge_d_loss, wasserstein_g_loss),
    'least_squares': Objective(least_squares_d_loss, least_squares_g_loss),
    'ebgan': ebgan(),
}

# Objectives that take options, and the constructor that builds them.
_PARAMETRIC = {'ebgan': ebgan}


def get(name: str, **kwargs) -> Objective:
  """Returns the objective called `name`, built with `kwargs` if it takes options."""
  if name not in OBJECTIVES:
    raise ValueError(
        f'unknown objective {name!r}; valid objectives: {", ".join(sorted(OBJECTIVES))}')
  if name in _PARAMETRIC:
    return _PARAMETRIC[name](**kwargs)
  if kwargs:
    raise ValueError(f'objective {name!r} takes no options, got {sorted(kwargs)}')
  return OBJECTIVES[name]

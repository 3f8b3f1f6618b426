"""Penalties and constraints that keep the discriminator (critic) well behaved.

A penalty term has the signature ``term(d_fn, real, fake, key) -> scalar`` and is added to the
discriminator's loss times ``config.penalty.weight`` (lazily, every ``config.penalty.every``
iterations and scaled by it, with ``lazy``); ``d_fn`` maps a batch to D's outputs.
Weight clipping is not a loss term but a projection after each critic update, so it is an optax
transformation chained after D's optimizer. ``get(name, **options)`` returns both parts as a
``Penalty``.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def _per_example_grads(d_fn, x):
  """∇ₓ D(x) for each example (valid for a D without cross-example layers, e.g. no BatchNorm)."""
  return jax.grad(lambda x: jnp.sum(d_fn(x)))(x)


def _per_example_sq_norm(grads):
  return jnp.sum(jnp.reshape(grads, (grads.shape[0], -1)) ** 2, axis=1)


def gradient_penalty(d_fn, real, fake, key, target: float = 1.0) -> jax.Array:
  """WGAN-GP: E_x̂[(‖∇ₓ̂ D(x̂)‖₂ - target)²], x̂ = εx + (1-ε)x̃, ε ~ U[0, 1] per example.

  Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (arXiv:1704.00028), Alg. 1.
  The paper's weight is λ = 10. Don't use it with BatchNorm in the critic (the paper's advice):
  the per-example gradient is then not defined.
  """
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  interpolates = eps * real + (1.0 - eps) * fake
  sq_norm = _per_example_sq_norm(_per_example_grads(d_fn, interpolates))
  # The epsilon keeps the gradient of sqrt finite at a zero gradient.
  return jnp.mean((jnp.sqrt(sq_norm + 1e-12) - target) ** 2)


def r1_penalty(d_fn, real) -> jax.Array:
  """R1: E_{x~data}[‖∇ₓ D(x)‖₂²], the zero-centred gradient penalty on real data.

  Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?"
  (arXiv:1801.04406), eq. 9, which writes it as (γ/2)·E‖∇D‖²: weight = γ/2.
  """
  return jnp.mean(_per_example_sq_norm(_per_example_grads(d_fn, real)))


def r2_penalty(d_fn, fake) -> jax.Array:
  """R2: E_{x̃~G}[‖∇ₓ̃ D(x̃)‖₂²], the zero-centred gradient penalty on generated data.

  Mescheder et al. 2018 (arXiv:1801.04406), eq. 10 (weight = γ/2, as R1); with R1, the
  regulariser of Roth et al. 2017 ("Stabilizing Training of GANs through Regularization",
  arXiv:1705.09367) and of the R3GAN baseline (Huang et al. 2024, arXiv:2501.05441).
  """
  return jnp.mean(_per_example_sq_norm(_per_example_grads(d_fn, fake)))


def lazy(term: Callable[[], jax.Array], step, every: int) -> jax.Array:
  """Lazy regularisation: every · term() at the steps that are multiples of `every`, 0 (and
  nothing computed) at the others; `every` = 1 is term() itself.

  Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2,
  arXiv:1912.04958), sec. 3.1: R1 once every 16 minibatches, scaled by 16, costs a sixteenth
  and trains the same. A `lax.cond`, so the skipped steps skip the double backward.
  """
  if every == 1:
    return term()
  return jax.lax.cond(step % every == 0, lambda: every * term(), lambda: jnp.zeros(()))


def dragan_penalty(d_fn, real, key, scale: float = 0.5, target: float = 1.0) -> jax.Array:
  """DRAGAN: E[(‖∇ₓ̂ D(x̂)‖₂ - target)²] at x̂ = x + α·δ, near the data.

  Kodali et al. 2017, "On Convergence and Stability of GANs" (arXiv:1705.07215), Alg. 1: the
  gradient norm is held at 1 in a noisy neighbourhood of the real data, where sharp gradients
  of D go with mode collapse. δ = scale · std(x) · u with u ~ U[0, 1]^d elementwise and std(x)
  the batch's standard deviation; α ~ U[0, 1] per example places x̂ on the segment [x, x + δ]
  (the authors' code). Their weight is λ = 10 with scale = 0.5.
  """
  u_key, a_key = jax.random.split(key)
  delta = scale * jnp.std(real) * jax.random.uniform(u_key, real.shape, real.dtype)
  alpha = jax.random.uniform(a_key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  perturbed = real + alpha * delta
  sq_norm = _per_example_sq_norm(_per_example_grads(d_fn, perturbed))
  return jnp.mean((jnp.sqrt(sq_norm + 1e-12) - target) ** 2)


def lecam_anchors(anchors, real_out, fake_out, decay: float = 0.99) -> tuple:
  """LeCam's anchors after a batch: α ← decay · α + (1 - decay) · mean D(·), for the reals'
  outputs (α_R) and the fakes' (α_F), without gradient; starting at 0 (Tseng et al. 2021,
  "Regularizing Generative Adversarial Networks under Limited Data", arXiv:2104.03310, sec. 3)."""
  alpha_r, alpha_f = anchors
  real, fake = jax.lax.stop_gradient(jnp.mean(real_out)), jax.lax.stop_gradient(jnp.mean(fake_out))
  return decay * alpha_r + (1 - decay) * real, decay * alpha_f + (1 - decay) * fake


def orthogonal_regularization(params) -> jax.Array:
  """R(W) = Σ_W ‖WᵀW ⊙ (1 - I)‖²_F over the kernels of `params` (every leaf named 'kernel' with
  2+ axes, reshaped to (fan_in, filters)): BigGAN's orthogonal regularisation (Brock et al. 2019,
  "Large Scale GAN Training for High Fidelity Natural Image Synthesis", arXiv:1809.11096, eq. 3),
  which pulls the filters toward mutual orthogonality without constraining their norms (the
  diagonal of the Gram matrix is left out). The paper's β = 1e-4 on G. 0 for orthogonal filters.
  """
  total = jnp.zeros(())
  for path, w in jax.tree_util.tree_leaves_with_path(params):
    if getattr(path[-1], 'key', None) != 'kernel' or w.ndim < 2:
      continue
    w = w.reshape(-1, w.shape[-1]).astype(jnp.float32)
    gram = w.T @ w
    total = total + jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))))
  return total


def lecam_penalty(real_out, fake_out, anchors) -> jax.Array:
  """R_LC = E_x[relu(D(x) - α_F)²] + E_z[relu(α_R - D(G(z)))²], anchors = (α_R, α_F).

  Tseng et al. 2021 (arXiv:2104.03310), eq. 3, in the form of the authors' code (google/lecam-gan)
  and StudioGAN: D's outputs on reals are pulled toward the fakes' moving average and the fakes'
  toward the reals', penalised only past it (the paper's eq. 3 writes the squares without the
  clip). It bounds the LeCam divergence D's objective then minimises; the paper's weight is
  0.3 for BigGAN on CIFAR, 0.01 for StyleGAN2.
  """
  alpha_r, alpha_f = anchors
  return (jnp.mean(jax.nn.relu(real_out - alpha_f) ** 2) +
          jnp.mean(jax.nn.relu(alpha_r - fake_out) ** 2))


def weight_clipping(clip: float) -> optax.GradientTransformation:
  """Clips every parameter to [-clip, clip] after the update: p ← clip(p + u, -c, c).

  Arjovsky et al. 2017, "Wasserstein GAN" (arXiv:1701.07875), Algorithm 1 (c = 0.01, with
  RMSProp). Chain it last, after the optimizer, so the projection applies to the new parameters.
  """
  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('weight_clipping needs the parameters: call update(updates, state, params)')
    updates = jax.tree.map(lambda u, p: jnp.clip(p + u, -clip, clip) - p, updates, params)
    return updates, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class Penalty(NamedTuple):
  """A penalty term for D's loss and a transformation chained after D's optimizer."""
  term: Callable  # (d_fn, real, fake, key) -> scalar
  d_transform: optax.GradientTransformation


def _no_term(d_fn, real, fake, key):
  del d_fn, real, fake, key
  return jnp.zeros(())


def _none():
  return Penalty(_no_term, optax.identity())


def _wgan_gp(target=1.0):
  return Penalty(lambda d_fn, real, fake, key: gradient_penalty(d_fn, real, fake, key, target),
                 optax.identity())


def _dragan(scale=0.5, target=1.0):
  return Penalty(lambda d_fn, real, fake, key: dragan_penalty(d_fn, real, key, scale, target),
                 optax.identity())


def _r1():
  return Penalty(lambda d_fn, real, fake, key: r1_penalty(d_fn, real), optax.identity())


def _r2():
  return Penalty(lambda d_fn, real, fake, key: r2_penalty(d_fn, fake), optax.identity())


def _r1_r2():
  return Penalty(lambda d_fn, real, fake, key: r1_penalty(d_fn, real) + r2_penalty(d_fn, fake),
                 optax.identity())


def _weight_clipping(clip=0.01):
  return Penalty(_no_term, weight_clipping(clip))


PENALTIES = {
    'none': _none,
    'wgan_gp': _wgan_gp,
    'r1': _r1,
    'r2': _r2,
    'r1_r2': _r1_r2,
    'dragan': _dragan,
    'weight_clipping': _weight_clipping,
}


def get(name: str, **options) -> Penalty:
  """Returns the penalty called `name` with its options (wgan_gp: target; dragan: scale, target;
  weight_clipping: clip)."""
  if name not in PENALTIES:
    raise ValueError(
        f'unknown penalty {name!r}; valid penalties: {", ".join(sorted(PENALTIES))}')
  try:
    return PENALTIES[name](**options)
  except TypeError:
    raise ValueError(f'penalty {name!r} does not take options {sorted(options)}') from None

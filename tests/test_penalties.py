"""Penalties against critics whose input gradient is known in closed form."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import penalties


def _linear_critic(w):
  w = jnp.asarray(w)
  return lambda x: x.reshape(x.shape[0], -1) @ w.reshape(-1)


@pytest.mark.parametrize('norm', [1.0, 2.0, 0.5])
def test_gradient_penalty_of_linear_critic(norm):
  # D(x) = w·x has ∇D = w everywhere, so GP = (‖w‖ - 1)² at every interpolate.
  key = jax.random.key(0)
  w = norm * jnp.array([0.6, 0.8, 0.0])  # ‖w‖ = norm
  real = jax.random.normal(key, (16, 3))
  fake = real + 1.0
  gp = jax.jit(lambda r, f: penalties.gradient_penalty(_linear_critic(w), r, f, key))(real, fake)
  chex.assert_shape(gp, ())
  np.testing.assert_allclose(gp, (norm - 1.0) ** 2, atol=1e-6)


def test_gradient_penalty_target_and_image_shapes():
  key = jax.random.key(1)
  w = jnp.full((2, 2, 1), 0.5)  # ‖w‖ = 1 over a (2, 2, 1) "image"
  real = jax.random.normal(key, (4, 2, 2, 1))
  gp = penalties.gradient_penalty(_linear_critic(w), real, -real, key, target=3.0)
  np.testing.assert_allclose(gp, 4.0, atol=1e-5)


def test_gradient_penalty_uses_the_interpolates():
  # D(x) = ½‖x‖² has ∇D(x) = x: with real = a·1, fake = 0 the interpolate is εa·1 and the
  # penalty is E[(ε·a·√d - 1)²] over ε ~ U[0,1]; with a√d = 1 that is E[(ε-1)²] = 1/3.
  d = 4
  real = jnp.full((4096, d), 1 / np.sqrt(d))
  fake = jnp.zeros_like(real)
  d_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)
  gp = penalties.gradient_penalty(d_fn, real, fake, jax.random.key(2))
  np.testing.assert_allclose(gp, 1 / 3, atol=0.02)


def test_r1_of_quadratic_critic():
  # D(x) = ½‖x‖²: ∇D = x, so R1 = E‖x‖².
  x = jax.random.normal(jax.random.key(3), (32, 5))
  d_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)
  np.testing.assert_allclose(penalties.r1_penalty(d_fn, x), jnp.mean(jnp.sum(x ** 2, 1)),
                             rtol=1e-5)


@pytest.mark.parametrize('norm', [1.0, 3.0])
def test_dragan_of_linear_critic(norm):
  # ∇D = w at every perturbed point: DRAGAN = (‖w‖ - 1)².
  w = norm * jnp.array([0.6, 0.8])
  real = jax.random.normal(jax.random.key(4), (16, 2))
  pen = jax.jit(lambda r: penalties.dragan_penalty(_linear_critic(w), r, jax.random.key(5)))(real)
  np.testing.assert_allclose(pen, (norm - 1.0) ** 2, atol=1e-5)


def test_dragan_perturbs_within_half_a_std_above_the_data():
  # 1-D data ±1 (std 1), D(x) = ½x²: ∇D(x̂) = x̂ = x + α·0.5·u with α, u ~ U[0, 1].
  # |x̂| - 1 = ±0.5αu for x = ±1, so the penalty is 0.25·E[α²]E[u²] = 0.25/9 = 1/36.
  real = jnp.tile(jnp.array([[1.0], [-1.0]]), (8192, 1))
  d_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)
  pen = penalties.dragan_penalty(d_fn, real, jax.random.key(6))
  np.testing.assert_allclose(pen, 1 / 36, rtol=0.05)
  # Scale 0 puts x̂ on the data: (|±1| - 1)² = 0.
  np.testing.assert_allclose(penalties.dragan_penalty(d_fn, real, jax.random.key(6), scale=0.0),
                             0.0, atol=1e-6)


def test_weight_clipping_projects_after_the_update():
  params = {'w': jnp.array([0.005, -0.009, 0.0, 0.02])}
  tx = optax.chain(optax.sgd(1.0), penalties.weight_clipping(0.01))
  state = tx.init(params)
  grads = {'w': jnp.array([-1.0, 1.0, 0.003, 0.0])}  # sgd step: p - g
  updates, _ = tx.update(grads, state, params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new['w'], [0.01, -0.01, -0.003, 0.01], atol=1e-7)
  assert float(jnp.max(jnp.abs(new['w']))) <= 0.01 + 1e-7


def test_penalty_registry():
  none = penalties.get('none')
  assert float(none.term(None, jnp.ones((2, 1)), jnp.ones((2, 1)), None)) == 0.0
  clip = penalties.get('weight_clipping', clip=0.05)
  updates, _ = clip.d_transform.update({'w': jnp.array([1.0])}, optax.EmptyState(),
                                       {'w': jnp.array([0.0])})
  np.testing.assert_allclose(updates['w'], [0.05])
  with pytest.raises(ValueError,
                     match='valid penalties: dragan, none, r1, weight_clipping, wgan_gp'):
    penalties.get('gp')
  with pytest.raises(ValueError, match="does not take options \\['clip'\\]"):
    penalties.get('r1', clip=0.1)

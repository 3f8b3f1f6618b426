"""Penalties against critics whose input gradient is known in closed form, and every registered
penalty inside a real D step."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import configs, penalties, steps, toy_data


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


def test_r2_and_r1_r2_of_quadratic_critics():
  # D(x) = ½ c‖x‖²: ∇D = c·x, so R2 = c² E‖x̃‖² on the fakes, and r1_r2 = R1 + R2.
  real = jax.random.normal(jax.random.key(3), (16, 4))
  fake = 2.0 + jax.random.normal(jax.random.key(4), (16, 4))
  d_fn = lambda x: 1.5 * jnp.sum(x ** 2, axis=1)
  sq = lambda x: float(jnp.mean(jnp.sum((3.0 * x) ** 2, 1)))
  assert float(penalties.r2_penalty(d_fn, fake)) == pytest.approx(sq(fake), rel=1e-5)
  both = penalties.get('r1_r2').term(d_fn, real, fake, None)
  assert float(both) == pytest.approx(sq(real) + sq(fake), rel=1e-5)


def test_lazy_penalty_is_every_k_steps_times_k_and_skips_the_rest():
  def term():
    return jnp.float32(2.5)

  assert float(penalties.lazy(term, 7, 1)) == 2.5  # every = 1: the term itself, no cond
  lazy = jax.jit(lambda step: penalties.lazy(term, step, 4))
  assert [float(lazy(s)) for s in range(6)] == [10.0, 0, 0, 0, 10.0, 0]
  # Differentiable, and the skipped branch is the zero gradient.
  grad = jax.jit(jax.grad(lambda w, s: penalties.lazy(lambda: w ** 2, s, 3)))
  assert (float(grad(2.0, 3)), float(grad(2.0, 4))) == (12.0, 0.0)


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
                     match='valid penalties: dragan, none, r1, r1_r2, r2, weight_clipping, '
                           'wgan_gp'):
    penalties.get('gp')
  with pytest.raises(ValueError, match="does not take options \\['clip'\\]"):
    penalties.get('r1', clip=0.1)


# Every entry of penalties.PENALTIES inside steps.d_step (a tiny WGAN on the ring). A penalty is a
# term added to D's loss unless listed here as an optax transformation of D's updates (with the
# options it is run with); a new entry is tested as a term penalty.
TRANSFORMS = {'weight_clipping': {'clip': 0.01}}
BATCH = 16


def _gan(name: str, weight: float):
  c = configs.toy_config()
  c.data.batch_size = BATCH
  c.model.g.hidden = (16,)
  c.model.d.hidden = (16, 16)
  c.objective.name = 'wasserstein'
  c.penalty.update(name=name, weight=weight)
  for option, value in TRANSFORMS.get(name, {}).items():
    c.penalty[option] = value
  return steps.build_gan(c, (2,))


@pytest.fixture(scope='module')
def inputs():
  """One initial state (it does not depend on the penalty) and one real batch for every step."""
  state = steps.create_state(_gan('none', 0.0), jax.random.key(0))
  return state, {'x': toy_data.get('ring').sample(jax.random.key(1), BATCH)}


def _d_step(inputs, name: str, weight: float):
  state, batch = inputs
  step = jax.jit(functools.partial(steps.d_step, _gan(name, weight)))
  return jax.device_get(step(state, batch, jax.random.key(2)))


@pytest.fixture(scope='module')
def plain_step(inputs):
  return _d_step(inputs, 'none', 0.0)


def _same(a, b):
  """Same tree, every leaf equal bit for bit."""
  return (jax.tree.structure(a) == jax.tree.structure(b) and
          all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def _without_penalty(metrics):
  return {k: v for k, v in metrics.items() if k != 'd_penalty'}


def test_lazy_regularisation_in_the_d_step(inputs, plain_step):
  """penalty.every = 4: at iteration 0 the penalty of every = 1 times 4, at iteration 1 none
  (the plain step's update)."""
  state, batch = inputs

  def step(every, at):
    c = configs.toy_config()
    c.data.batch_size = BATCH
    c.model.g.hidden = (16,)
    c.model.d.hidden = (16, 16)
    c.objective.name = 'wasserstein'
    c.penalty.update(name='wgan_gp', weight=1.0, every=every)
    fn = jax.jit(functools.partial(steps.d_step, steps.build_gan(c, (2,))))
    return jax.device_get(fn(state.replace(step=jnp.int32(at)), batch, jax.random.key(2)))

  (_, every_step), (_, lazy_on), (lazy_off, off_metrics) = step(1, 0), step(4, 0), step(4, 1)
  np.testing.assert_allclose(lazy_on['d_penalty'], 4 * every_step['d_penalty'], rtol=1e-6)
  assert float(off_metrics['d_penalty']) == 0.0
  chex.assert_trees_all_close(lazy_off.d.params, plain_step[0].d.params, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('name', sorted(penalties.PENALTIES))
def test_every_penalty_in_a_d_step(name, inputs, plain_step):
  plain_state, plain_metrics = plain_step
  off, off_metrics = _d_step(inputs, name, 0.0)
  on, on_metrics = _d_step(inputs, name, 1.0)
  chex.assert_tree_all_finite((off_metrics, on_metrics))
  assert _same(off.g, plain_state.g) and _same(on.g, plain_state.g)  # G is frozen
  if name in TRANSFORMS:  # projected updates, whatever the weight; no term in the loss
    clip = TRANSFORMS[name]['clip']
    assert max(float(np.max(np.abs(p))) for p in jax.tree.leaves(on.d.params)) <= clip + 1e-6
    assert float(on_metrics['d_penalty']) == 0.0
    assert _same((on, on_metrics), (off, off_metrics))
    assert not _same(on.d.params, plain_state.d.params)
  elif name == 'none':
    assert float(on_metrics['d_penalty']) == 0.0
    assert _same((off, off_metrics), plain_step) and _same((on, on_metrics), plain_step)
  else:  # a term: weight 0 is the plain step bit for bit, weight > 0 changes it
    assert _same((off, _without_penalty(off_metrics)),
                 (plain_state, _without_penalty(plain_metrics)))
    assert float(on_metrics['d_penalty']) > 0.0
    np.testing.assert_allclose(on_metrics['d_loss'],
                               on_metrics['d_objective'] + on_metrics['d_penalty'], rtol=1e-5)
    np.testing.assert_array_equal(on_metrics['d_objective'], plain_metrics['d_objective'])
    assert not _same(on.d.params, plain_state.d.params)

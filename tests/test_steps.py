"""The pure steps: what each changes, determinism, no retracing, and the equivalences
(8 devices = 1 device; steps_per_call = k equals k single calls)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs, gan, steps
from gan_jax import state as state_lib


def tiny_config(**changes):
  c = configs.toy_config()
  c.data.batch_size = 32
  c.model.g.hidden = (32, 32)
  c.model.d.hidden = (32, 32)
  c.train.steps_per_call = 1
  for key, value in changes.items():
    section, field = key.split('__')
    c[section][field] = value
  return c


def one_device():
  return jax.devices()[:1]


@pytest.fixture(scope='module')
def exp():
  return gan.GANExperiment(tiny_config(), devices=one_device())


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_d_step_changes_d_only(exp):
  state = exp.init_state()
  real = exp.data.sample(jax.random.key(0), 32)
  new, metrics = jax.jit(lambda s, r, k: steps.d_step(exp.gan, s, {'x': r}, k))(state, real,
                                                                          jax.random.key(1))
  assert _changed(state.d.params, new.d.params)
  chex.assert_trees_all_equal(state.g, new.g)
  chex.assert_trees_all_equal(state.g_ema, new.g_ema)
  assert set(metrics) == {'d_loss', 'd_objective', 'd_penalty', 'd_real', 'd_fake', 'd_grad_norm'}
  chex.assert_tree_all_finite(metrics)
  chex.assert_shape(list(metrics.values()), [()] * len(metrics))


def test_g_step_changes_g_only(exp):
  state = exp.init_state()
  real = exp.data.sample(jax.random.key(0), 32)
  new, metrics = jax.jit(lambda s, r, k: steps.g_step(exp.gan, s, {'x': r}, k))(state, real,
                                                                          jax.random.key(1))
  assert _changed(state.g.params, new.g.params)
  chex.assert_trees_all_equal(state.d, new.d)
  assert set(metrics) == {'g_loss', 'g_grad_norm'}
  chex.assert_tree_all_finite(metrics)


def test_iteration_counts_n_critic_and_ema():
  exp = gan.GANExperiment(tiny_config(optim__n_critic=3, optim__ema_decay=0.9),
                         devices=one_device())
  state = exp.init_state()
  new, metrics = exp.train_fn(1)(jax.tree.map(jnp.copy, state), exp.loop_key)
  assert int(new.step) == 1
  # Adam's step count: 3 D updates and 1 G update.
  assert int(new.d.opt_state[0][0].count) == 3
  assert int(new.g.opt_state[0].count) == 1
  expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, state.g_ema, new.g.params)
  chex.assert_trees_all_close(new.g_ema, expected, rtol=1e-6)
  chex.assert_shape(metrics['d_loss'], (1,))


def test_ema_warm_up_copies_g_until_ema_start_then_averages():
  exp = gan.GANExperiment(tiny_config(optim__ema_decay=0.9, optim__ema_start=2),
                         devices=one_device())
  state, call = exp.init_state(), exp.train_fn(1)
  for step in range(4):
    before = jax.device_get(state.g_ema)
    state, _ = call(state, exp.loop_key)
    g = jax.device_get(state.g.params)
    if step < 2:  # iterations 0 and 1: the EMA is G itself
      chex.assert_trees_all_equal(jax.device_get(state.g_ema), g)
    else:
      expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, before, g)
      chex.assert_trees_all_close(jax.device_get(state.g_ema), expected, rtol=1e-6)
      assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.g_ema),
                                                          jax.tree.leaves(g)))


def test_ema_rampup_caps_the_half_life_at_a_fraction_of_the_steps_done():
  """optim.ema_rampup r: decay_t = ½^(1 / min(h, r·t)), h = ln ½ / ln decay (stylegan2-ada's
  ema_rampup, in iterations): 0 at t = 0, then by hand at t = 10 and 100, the plain decay once
  r·t ≥ h; the real step averages with exactly that decay."""
  decay, r = 0.5 ** (1 / 20), 0.5  # a half-life of 20 iterations
  at = lambda t: float(state_lib.ema_decay_at(decay, t, 0, r))
  assert at(0) == 0.0
  np.testing.assert_allclose([at(1), at(10), at(39), at(40), at(100)],
                             [0.5 ** 2, 0.5 ** (1 / 5), 0.5 ** (1 / 19.5), decay, decay],
                             rtol=1e-6)
  assert state_lib.ema_decay_at(decay, 7, 0, 0.0) == decay  # off: the plain decay
  assert float(state_lib.ema_decay_at(decay, 3, 5, r)) == 0.0  # the warm-up still copies G
  exp = gan.GANExperiment(tiny_config(optim__ema_decay=decay, optim__ema_rampup=r),
                          devices=one_device())
  state, call = exp.init_state(), exp.train_fn(1)
  for step in range(3):
    before = jax.device_get(state.g_ema)
    state, _ = call(state, exp.loop_key)
    d = at(step)
    expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, before,
                            jax.device_get(state.g.params))
    chex.assert_trees_all_close(jax.device_get(state.g_ema), expected, rtol=1e-5, atol=1e-7)


def test_steps_per_call_equals_single_calls(exp):
  k = 4
  state = exp.init_state()
  fused, fused_metrics = exp.train_fn(k)(jax.tree.map(jnp.copy, state), exp.loop_key)
  single = state
  single_metrics = []
  for _ in range(k):
    single, m = exp.train_fn(1)(single, exp.loop_key)
    single_metrics.append(m['g_loss'][0])
  assert int(fused.step) == int(single.step) == k
  chex.assert_trees_all_close(fused, single, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(fused_metrics['g_loss'], np.array(single_metrics), rtol=1e-6)


def test_eight_devices_equal_one_device():
  config = tiny_config(optim__n_critic=2)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    exp = gan.GANExperiment(config, devices=devices)
    state, metrics = exp.train_fn(2)(exp.init_state(), exp.loop_key)
    results.append((jax.device_get(state), jax.device_get(metrics)))
  (s1, m1), (s8, m8) = results
  assert len(jax.devices()) == 8
  chex.assert_trees_all_close(s1, s8, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(m1, m8, rtol=1e-5, atol=1e-6)


def test_eight_device_outputs_are_replicated_and_batches_sharded():
  exp = gan.GANExperiment(tiny_config(), devices=jax.devices())
  state, metrics = exp.train_fn(1)(exp.init_state(), exp.loop_key)
  for leaf in jax.tree.leaves((state, metrics)):
    assert leaf.sharding.is_fully_replicated
  hlo = exp.train_fn(1).lower(exp.init_state(), exp.loop_key).compile().as_text()
  assert 'all-reduce' in hlo  # gradients are summed across the data shards


def test_no_retrace_across_calls(exp):
  traces = []
  fn = jax.jit(lambda s, k: (traces.append(1), steps.train_call(exp.gan, s, k, num_steps=2))[1],
               donate_argnums=0)
  state = exp.init_state()
  for _ in range(3):
    state, _ = fn(state, exp.loop_key)
  assert len(traces) == 1


def test_deterministic_per_seed_and_different_across_seeds():
  def run(seed):
    c = tiny_config()
    c.seed = seed
    exp = gan.GANExperiment(c, devices=one_device())
    return jax.device_get(exp.train_fn(3)(exp.init_state(), exp.loop_key)[0])
  a, b, c = run(0), run(0), run(1)
  chex.assert_trees_all_equal(a, b)
  assert _changed(a.g.params, c.g.params)


# Every penalty inside a D step: tests/test_penalties.py (test_every_penalty_in_a_d_step).


def test_batchnorm_statistics_are_carried():
  c = tiny_config()
  c.model.g.norm = 'batch'
  c.model.d.norm = 'batch'
  exp = gan.GANExperiment(c, devices=one_device())
  state = exp.init_state()
  new, _ = exp.train_fn(1)(jax.tree.map(jnp.copy, state), exp.loop_key)
  assert _changed(state.g.batch_stats, new.g.batch_stats)
  assert _changed(state.d.batch_stats, new.d.batch_stats)


IMAGE_ARCHITECTURES = {  # every image architecture with batch statistics or power iterations
    'dcgan: conditional-batchnorm G, batchnorm + spectral-norm projection D': {
        'g': {'channels': 8, 'conditioning': 'cbn'},
        'd': {'channels': 8, 'spectral_norm': True, 'conditioning': 'projection'}},
    'resnet: batchnorm G, spectral-norm D': {
        'generator': 'resnet', 'discriminator': 'resnet',
        'g': {'channels': 8}, 'd': {'channels': 8, 'spectral_norm': True, 'norm': None}},
}


@pytest.mark.parametrize('name', sorted(IMAGE_ARCHITECTURES))
def test_image_iteration_on_eight_devices_equals_one(name):
  """BatchNorm statistics over the global batch, spectral norm's power iterations and the
  updates: one iteration of an image GAN on 8 devices equals it on 1 (the batch sharded 8 ways)."""
  from gan_jax import configs
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = 16
  c.model.g.channels = c.model.d.channels = 8
  # SGD: Adam would blow the rounding noise of gradients that are 0 in exact arithmetic (a
  # bias before BatchNorm) up to ±lr steps, on one device count and not the other.
  c.optim.g_optimizer = c.optim.d_optimizer = 'sgd'
  for field, value in IMAGE_ARCHITECTURES[name].items():
    if not isinstance(value, dict):
      c.model[field] = value
      continue
    for key, v in value.items():
      if v is None:
        del c.model[field][key]
      else:
        c.model[field][key] = v
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    exp = gan.GANExperiment(c, devices=devices)
    batches = exp.batch_stream(0)(1)
    state, _ = exp.train_fn(1)(exp.init_state(), exp.loop_key, batches)
    results.append(jax.device_get(state))
  chex.assert_trees_all_close(results[0], results[1], rtol=2e-5, atol=2e-6)
  assert jax.tree.leaves(results[0].g.batch_stats) or jax.tree.leaves(results[0].d.batch_stats)


def test_standing_stats_are_the_moments_of_g_with_the_given_parameters():
  """G's first BatchNorm sees Dense(z) = zW + b with z ~ N(0, I): mean b, variance Σ_i W_ij².
  Standing statistics recomputed for new parameters reach those moments (within 6σ of a running
  average over ~19 batches of 512), while G's own statistics stay at the old parameters'."""
  c = tiny_config(data__batch_size=512)
  c.model.g.norm = 'batch'
  exp = gan.GANExperiment(c, devices=one_device())
  state = exp.init_state()
  dense = state.g.params['MLP_0']['Dense_0']
  k_w, k_b = jax.random.split(jax.random.key(3))
  w = 1.5 * jax.random.normal(k_w, dense['kernel'].shape) / np.sqrt(dense['kernel'].shape[0])
  b = jax.random.normal(k_b, dense['bias'].shape)
  params = jax.tree.map(jnp.copy, state.g.params)
  params['MLP_0']['Dense_0'] = {'kernel': w, 'bias': b}
  stats = steps.standing_stats(exp.gan, params, state.g.batch_stats, jax.random.key(4), 60)
  bn = stats['MLP_0']['BatchNorm_0']
  var = np.sum(np.square(np.asarray(w)), axis=0)
  n_eff = 512 * 19  # momentum 0.9: the running average weighs ~1 / (1 - 0.9²) batches
  np.testing.assert_allclose(bn['mean'], b, atol=6 * np.sqrt(var.max() / n_eff))
  np.testing.assert_allclose(bn['var'], var, rtol=6 * np.sqrt(2 / n_eff))
  old = state.g.batch_stats['MLP_0']['BatchNorm_0']
  assert np.abs(np.asarray(old['mean']) - np.asarray(b)).max() > 0.5  # far from the new moments


def test_standing_stats_switch_recomputes_only_the_ema_generator():
  """optim.ema_standing_stats = 0 samples both generators with G's own statistics; > 0 gives the
  EMA generator statistics of its own (the same for the same state) and leaves the raw G's."""
  c = tiny_config()
  c.model.g.norm = 'batch'
  plain = gan.GANExperiment(c, devices=one_device())
  state, _ = plain.train_fn(3)(plain.init_state(), plain.loop_key)
  c.optim.ema_standing_stats = 5
  standing = gan.GANExperiment(c, devices=one_device())
  for kind in ('ema', 'raw'):
    chex.assert_trees_all_equal(plain.generator(state, kind)[1], state.g.batch_stats)
  chex.assert_trees_all_equal(standing.generator(state, 'raw')[1], state.g.batch_stats)
  ema_stats = standing.generator(state, 'ema')[1]
  assert _changed(ema_stats, state.g.batch_stats)
  chex.assert_trees_all_equal(ema_stats, standing.generator(state, 'ema')[1])
  assert _changed(standing.samples(state, 'ema', 16), plain.samples(state, 'ema', 16))
  np.testing.assert_array_equal(standing.samples(state, 'raw', 16), plain.samples(state, 'raw', 16))

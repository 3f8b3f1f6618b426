"""The stabilisation tricks: each changes what it should and nothing else.

Equivalences with the plain step (noise annealed to σ = 0, unrolling a frozen D, m = 1), values
worked out by hand (packing, feature matching, ensembles), the adaptive schedule's loop counts on
a discriminator whose loss we control, and the config errors of tricks that do not compose.
"""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import configs, losses, models, penalties, steps, toy_data, tricks

B = 8


def tiny(**changes):
  """A small ring config; `changes` maps dotted field names to values."""
  c = configs.toy_config()
  c.data.batch_size = B
  c.model.z_dim = 4
  c.model.g.hidden = (8,)
  c.model.d.hidden = (8, 8)
  for key, value in changes.items():
    node, *path = [c] + key.split('.')
    for field in path[:-1]:
      node = node[field]
    node[path[-1]] = value
  return c


def build(**changes):
  gan = steps.build_gan(tiny(**changes), (2,), toy_data.ring().sample)
  return gan, steps.create_state(gan, jax.random.key(0))


REAL = toy_data.ring().sample(jax.random.key(5), B)
KEY = jax.random.key(7)


# The steps run eagerly here: one compile per primitive, shared by every config, instead of one
# per config (test_steps and test_train check the jitted loop).
def d_step(gan, state, real=REAL):
  return steps.d_step(gan, state, {'x': real}, KEY)


def g_step(gan, state, real=REAL):
  return steps.g_step(gan, state, {'x': real}, KEY)


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- the pure pieces -----------------------------------------------------------------------------

def test_pack_concatenates_consecutive_samples():
  x = jnp.arange(12.0).reshape(6, 2)
  np.testing.assert_array_equal(tricks.pack(x, 2), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
  np.testing.assert_array_equal(tricks.pack(x, 3), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
  assert tricks.pack(x, 1) is x
  images = jnp.arange(4 * 2 * 2 * 3.0).reshape(4, 2, 2, 3)  # packs on channels
  packed = tricks.pack(images, 2)
  chex.assert_shape(packed, (2, 2, 2, 6))
  np.testing.assert_array_equal(packed[1, :, :, :3], images[2])
  np.testing.assert_array_equal(packed[1, :, :, 3:], images[3])


def test_instance_noise_schedule():
  std = lambda step, anneal=100: float(tricks.instance_noise_std(0.5, anneal, step))
  assert std(0) == 0.5
  np.testing.assert_allclose(std(25), 0.375)
  assert std(100) == 0.0 and std(1000) == 0.0
  assert std(10**6, anneal=0) == 0.5  # no annealing: constant


def test_feature_matching_loss_by_hand():
  real = [jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.ones((2, 1, 3))]
  fake = [jnp.array([[0.0, 0.0], [0.0, 2.0]]), jnp.zeros((2, 1, 3))]
  # means (2, 3) vs (0, 1): 4 + 4; second layer: 3 ones vs zeros: 3
  np.testing.assert_allclose(tricks.feature_matching_loss(real, fake), 11.0)


# --- each trick against the plain step -----------------------------------------------------------

@pytest.fixture(scope='module')
def plain():
  return build()


def test_instance_noise_annealed_to_zero_equals_plain_step(plain):
  gan, state = plain
  noisy, _ = build(**{'tricks.instance_noise.std': 0.5, 'tricks.instance_noise.anneal_steps': 3})
  done = state.replace(step=jnp.int32(3))  # σ(3) = 0: the noise code runs with σ = 0
  for step_fn in (d_step, g_step):
    chex.assert_trees_all_equal(step_fn(noisy, done), step_fn(gan, done))
  # At step 0 (σ = 0.5) D sees other inputs: its update and metrics differ.
  (a, ma), (b, mb) = d_step(noisy, state), d_step(gan, state)
  assert _changed(a.d.params, b.d.params) and float(ma['d_real']) != float(mb['d_real'])


def test_packed_discriminator_judges_consecutive_pairs_by_hand():
  gan, state = build(**{'tricks.pack': 2})
  d_params = state.d.params
  chex.assert_shape(d_params['MLP_0']['Dense_0']['kernel'], (4, 8))  # D's input: 2 samples × 2
  _, metrics = d_step(gan, state)
  by_hand = models.MLPDiscriminator(hidden=(8, 8)).apply({'params': d_params},
                                                          np.asarray(REAL).reshape(B // 2, 4))
  np.testing.assert_allclose(metrics['d_real'], np.mean(by_hand), rtol=1e-6)
  # One value per point for plots: the pack of m copies of that point.
  out, _, _ = steps.discriminate(gan, d_params, {}, REAL, None, False)
  chex.assert_shape(out, (B,))
  np.testing.assert_allclose(out, models.MLPDiscriminator(hidden=(8, 8)).apply(
      {'params': d_params}, jnp.concatenate([REAL, REAL], axis=1)), rtol=1e-6)


def test_pack_one_equals_plain_step(plain):
  gan, state = plain
  packed_one, _ = build(**{'tricks.pack': 1})
  chex.assert_trees_all_equal(d_step(packed_one, state), d_step(gan, state))
  chex.assert_trees_all_equal(g_step(packed_one, state), g_step(gan, state))


def test_unrolled_with_k_zero_or_frozen_d_equals_plain_step(plain):
  gan, state = plain
  k0, _ = build(**{'tricks.unroll_steps': 0})
  chex.assert_trees_all_equal(g_step(k0, state), g_step(gan, state))
  # k = 2 through a D whose optimizer cannot move it (lr 0): the unrolled D is D itself and the
  # gradient through the unroll is exactly zero, so G's update is the plain one.
  frozen, _ = build(**{'tricks.unroll_steps': 2, 'optim.d_lr': 0.0})
  (new_frozen, m_frozen), (new_plain, m_plain) = g_step(frozen, state), g_step(gan, state)
  chex.assert_trees_all_close(new_frozen.g, new_plain.g, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(m_frozen['g_loss'], m_plain['g_loss'], rtol=1e-6)


def test_unrolled_changes_g_only_and_differentiates_through_d_updates(plain):
  gan, state = plain
  unrolled, _ = build(**{'tricks.unroll_steps': 2})
  new, _ = g_step(unrolled, state)
  chex.assert_trees_all_equal(new.d, state.d)  # the surrogate D is not kept
  assert _changed(new.g.params, g_step(gan, state)[0].g.params)

  def unrolled_d(g_params):
    return steps.unrolled_discriminator(unrolled, state.d, g_params, {}, REAL, None, KEY,
                                        state.step, 2)

  d2 = unrolled_d(state.g.params)
  assert int(d2.opt_state[0][0].count) == 2  # two Adam updates, its moments carried between them
  # Two d_updates by hand with the same draws give the same D.
  d = state.d
  for key in jax.random.split(KEY, 2):
    z_key, _, pen_key, noise_key = jax.random.split(key, 4)
    fake = gan.generator.apply({'params': state.g.params}, jax.random.normal(z_key, (B, 4)))
    d, _, _ = steps.d_update(gan, d, REAL, fake, None, None, pen_key, noise_key, state.step)
  chex.assert_trees_all_close(d2, d, rtol=1e-5, atol=1e-6)
  # θ_D^k depends on θ_G: the derivative through the D updates is not zero.
  grads = jax.grad(lambda p: sum(jnp.sum(w) for w in jax.tree.leaves(unrolled_d(p).params)))(
      state.g.params)
  assert optax.tree.norm(grads) > 1e-4


def test_label_smoothing_changes_the_d_objective_only(plain):
  gan, state = plain
  smooth, _ = build(**{'tricks.label_smoothing': 0.9})
  _, m = d_step(smooth, state)
  _, m_plain = d_step(gan, state)
  real, fake = float(m['d_real']), float(m['d_fake'])  # (B,) logits; rebuild them
  out = lambda x: gan.discriminator.apply({'params': state.d.params}, x)
  fake_x = gan.generator.apply({'params': state.g.params},
                               jax.random.normal(jax.random.split(KEY, 3)[0], (B, 4)))
  r, f = np.asarray(out(REAL), np.float64), np.asarray(out(fake_x), np.float64)
  np.testing.assert_allclose([real, fake], [r.mean(), f.mean()], rtol=1e-5)
  sp = lambda x: np.log1p(np.exp(x))
  np.testing.assert_allclose(m['d_objective'],
                             np.mean(0.9 * sp(-r) + 0.1 * sp(r)) + np.mean(sp(f)), rtol=1e-5)
  np.testing.assert_allclose(m_plain['d_objective'], np.mean(sp(-r)) + np.mean(sp(f)), rtol=1e-5)
  chex.assert_trees_all_equal(g_step(smooth, state), g_step(gan, state))  # G untouched


def test_feature_matching_modes(plain):
  gan, state = plain
  replace, _ = build(**{'tricks.feature_matching.mode': 'replace',
                        'tricks.feature_matching.weight': 2.0})
  aux, _ = build(**{'tricks.feature_matching.mode': 'auxiliary',
                    'tricks.feature_matching.weight': 0.5})
  new_r, m_r = g_step(replace, state)
  new_a, m_a = g_step(aux, state)
  new_p, m_p = g_step(gan, state)
  np.testing.assert_allclose(m_r['g_adversarial'], m_p['g_loss'], rtol=1e-6)
  np.testing.assert_allclose(m_r['g_loss'], 2.0 * m_r['g_feature_matching'], rtol=1e-6)
  np.testing.assert_allclose(m_a['g_loss'], m_a['g_adversarial'] + 0.5 * m_a['g_feature_matching'],
                             rtol=1e-6)
  assert float(m_r['g_feature_matching']) > 0
  assert _changed(new_r.g.params, new_p.g.params) and _changed(new_a.g.params, new_p.g.params)
  chex.assert_trees_all_equal(d_step(replace, state), d_step(gan, state))  # D untouched


def test_minibatch_discrimination_couples_examples():
  gan, state = build(**{'model.d.minibatch_discrimination': 3})
  d = lambda x: gan.discriminator.apply({'params': state.d.params}, x)
  moved = REAL.at[1].add(1.0)
  assert float(d(REAL)[0]) != float(d(moved)[0])  # D(x_0) depends on x_1
  plain, plain_state = build()
  d_plain = lambda x: plain.discriminator.apply({'params': plain_state.d.params}, x)
  assert float(d_plain(REAL)[0]) == float(d_plain(moved)[0])
  # For plots, each point is judged alone (a batch of one), without an N×N kernel matrix.
  points = jax.random.normal(KEY, (3000, 2))
  out, _, _ = steps.discriminate(gan, state.d.params, {}, points, None, False)
  chex.assert_shape(out, (3000,))
  np.testing.assert_allclose(out[:3], [d(points[i:i + 1])[0] for i in range(3)], rtol=1e-5)
  new, metrics = d_step(gan, state)
  chex.assert_tree_all_finite(metrics)
  mbd = 'MinibatchDiscrimination_0'
  assert _changed(new.d.params[mbd], state.d.params[mbd])


def test_ensemble_sums_the_members_losses():
  widths = ((4,), (8, 8), (16, 16, 16))
  gan, state = build(**{'tricks.ensemble': widths})
  params = state.d.params
  for k, hidden in enumerate(widths):  # members of increasing capacity
    member = params[f'members_{k}']['MLP_0']
    assert [member[f'Dense_{i}']['kernel'].shape[1] for i in range(len(hidden))] == list(hidden)
  _, m = d_step(gan, state)
  np.testing.assert_allclose(m['d_objective'], sum(m[f'd_objective_{k}'] for k in range(3)),
                             rtol=1e-6)
  # G's loss is the sum of its non-saturating losses against each member.
  z = jax.random.normal(jax.random.split(KEY)[0], (B, 4))
  fake = gan.generator.apply({'params': state.g.params}, z)
  outs = gan.discriminator.apply({'params': params}, fake)
  chex.assert_shape(outs, (B, 3))
  _, mg = g_step(gan, state)
  np.testing.assert_allclose(mg['g_loss'], sum(losses.non_saturating_g_loss(outs[:, k])
                                               for k in range(3)), rtol=1e-5)
  out, _, _ = steps.discriminate(gan, params, {}, fake, None, False)
  np.testing.assert_allclose(out, jnp.mean(outs, axis=1), rtol=1e-6)


@pytest.mark.parametrize('name', ['relativistic', 'relativistic_average'])
def test_relativistic_g_loss_sees_the_reals(plain, name):
  gan, state = build(**{'objective.name': name})
  _, m = g_step(gan, state)
  _, m_moved = g_step(gan, state, REAL + 0.5)  # same fakes, other reals: another G loss
  assert float(m['g_loss']) != float(m_moved['g_loss'])
  _, m_plain = g_step(plain[0], state)
  _, m_plain_moved = g_step(plain[0], state, REAL + 0.5)
  assert float(m_plain['g_loss']) == float(m_plain_moved['g_loss'])


# --- the adaptive schedule -----------------------------------------------------------------------

class _BiasD(nn.Module):
  """D(x) = b for every x: with d_loss = mean(D(real)) and SGD(lr 1), each D step lowers b by 1."""

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    return jnp.zeros(x.shape[0]) + self.param('b', nn.initializers.zeros, ())


def _controlled_gan(c1, c2, max_d, max_g):
  objective = losses.Objective(lambda real, fake: jnp.mean(real), lambda fake: jnp.mean(fake))
  return steps.GAN(
      generator=models.MLPGenerator((2,), hidden=(4,)), discriminator=_BiasD(),
      g_tx=optax.sgd(0.1), d_tx=optax.sgd(1.0), objective=objective,
      penalty=penalties.get('none'), penalty_weight=0.0, penalty_every=1, z_dim=2,
      num_classes=0, acgan=False, batch_size=4, n_critic=1, ema_decay=0.5, ema_start=0, data_shape=(2,),
      sample_data=toy_data.ring().sample,
      tricks=tricks.Tricks(adaptive=tricks.Adaptive(c1, c2, max_d, max_g)))


@pytest.mark.parametrize('c1, c2, max_d, max_g, counts', [
    # L before each D step: 0, -1, -2, -3 ≤ -2.5 → 4 steps, b = -4; then G's L = b = -4 < 0
    # until the cap (3). Next iteration: L = -4 ≤ -2.5 after one D step (each loop runs once).
    (-2.5, 0.0, 10, 3, [(4, 3), (1, 3)]),
    (-2.5, -10.0, 2, 3, [(2, 1), (2, 1)]),  # D capped at 2; G stops at once (L = b ≥ -10)
])
def test_adaptive_schedule_loop_counts(c1, c2, max_d, max_g, counts):
  gan = _controlled_gan(c1, c2, max_d, max_g)
  state = steps.create_state(gan, jax.random.key(0))
  fn = jax.jit(lambda s: steps.train_call(gan, s, jax.random.key(1), num_steps=2))
  new, metrics = fn(state)
  np.testing.assert_array_equal(np.stack([metrics['d_steps'], metrics['g_steps']], 1), counts)
  total_d = sum(c[0] for c in counts)
  assert float(new.d.params['b']) == -total_d  # each D step moved b by exactly -1
  assert int(new.step) == 2
  np.testing.assert_array_equal(metrics['g_d_objective'], [-counts[0][0], -total_d])


# --- config errors -------------------------------------------------------------------------------

@pytest.mark.parametrize('changes, message', [
    ({'objective.name': 'wasserstein', 'tricks.label_smoothing': 0.9},
     "label_smoothing.*'wasserstein'.*valid objectives: minimax, non_saturating"),
    ({'tricks.label_smoothing': 1.5}, r'label_smoothing=1.5 must be in \(0, 1\]'),
    ({'tricks.pack': 3}, 'pack=3 must divide config.data.batch_size=8'),
    ({'tricks.pack': 0}, 'pack=0 must be an integer >= 1'),
    ({'tricks.feature_matching.mode': 'both'},
     "feature_matching.mode='both'.*valid choices: none, replace, auxiliary"),
    ({'tricks.unroll_steps': -1}, 'unroll_steps=-1'),
    ({'tricks.instance_noise.std': -0.1}, 'instance_noise.std=-0.1 must be >= 0'),
    ({'tricks.ensemble': ((4,), ())}, 'each member needs at least one hidden layer'),
    ({'tricks.adaptive.enabled': True, 'tricks.adaptive.max_g_steps': 0},
     'adaptive.max_g_steps=0 must be an integer >= 1'),
])
def test_bad_trick_settings_name_the_field(changes, message):
  with pytest.raises(configs.ConfigError, match=message):
    steps.build_gan(tiny(**changes), (2,), toy_data.ring().sample)


def test_tricks_that_need_another_discriminator_say_which():
  gmmn = {'model.discriminator': 'identity', 'model.d': {}, 'objective': {'name': 'mmd'}}
  c = tiny(**gmmn, **{'tricks.feature_matching.mode': 'replace'})
  with pytest.raises(configs.ConfigError, match='feature_matching.*valid choices: mlp, '
                                                'mlp_autoencoder, dcgan, resnet, dcgan_autoencoder'):
    steps.build_gan(c, (8, 8, 1))
  c = tiny(**gmmn, **{'tricks.ensemble': ((4,),)})
  with pytest.raises(configs.ConfigError, match='ensemble.*valid choices: biggan, dcgan, '
                                                'dcgan_autoencoder, mlp, mlp_autoencoder, resnet'):
    steps.build_gan(c, (8, 8, 1))


def test_configs_without_a_tricks_section_still_build():
  c = tiny()
  del c['tricks']
  gan = steps.build_gan(c, (2,), toy_data.ring().sample)
  assert gan.tricks == tricks.Tricks()


# --- LeCam ------------------------------------------------------------------------------------

def test_lecam_penalty_and_anchors_by_hand():
  real, fake = jnp.array([1.0, -1.0]), jnp.array([0.5, -2.0])
  # relu(D(x) - α_F)² = (1.3², 0), relu(α_R - D(G(z)))² = (0, 2.2²): means 0.845 + 2.42.
  assert float(penalties.lecam_penalty(real, fake, (0.2, -0.3))) == pytest.approx(3.265)
  a_r, a_f = penalties.lecam_anchors((0.2, -0.3), real, fake, decay=0.9)
  assert (float(a_r), float(a_f)) == (pytest.approx(0.18), pytest.approx(0.9 * -0.3 + 0.1 * -0.75))
  grad = jax.grad(lambda r: penalties.lecam_penalty(r, fake, penalties.lecam_anchors(
      (0.0, 0.0), r, fake)))(real)  # the anchors carry no gradient
  np.testing.assert_allclose(grad, [2 * (1.0 - 0.01 * -0.75) / 2, 0.0], rtol=1e-6)


def test_lecam_adds_its_term_to_d_only_and_tracks_the_anchors(plain):
  gan, state = plain
  lecam, lecam_state = build(**{'tricks.lecam.weight': 0.3, 'tricks.lecam.decay': 0.9})
  assert (float(lecam_state.aux['lecam_real']), float(lecam_state.aux['lecam_fake'])) == (0, 0)
  (a, ma), (b, mb) = d_step(gan, state), d_step(lecam, lecam_state)
  assert float(mb['d_objective']) == float(ma['d_objective'])  # the same D and batch
  assert float(mb['d_lecam']) > 0
  assert float(mb['d_loss']) == pytest.approx(float(ma['d_loss']) + 0.3 * float(mb['d_lecam']))
  assert float(b.aux['lecam_real']) == pytest.approx(0.1 * float(mb['d_real']))
  assert float(b.aux['lecam_fake']) == pytest.approx(0.1 * float(mb['d_fake']))
  assert _changed(a.d.params, b.d.params)
  chex.assert_trees_all_equal(g_step(gan, state)[0].g, g_step(lecam, lecam_state)[0].g)


# --- the augmentations (DiffAugment, ADA) in the steps -------------------------------------------

IMAGE_SHAPE = (16, 16, 1)


def image_gan(**changes):
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = B
  c.model.z_dim = 8
  c.model.g.channels = c.model.d.channels = 4
  for key, value in changes.items():
    node, *path = [c] + key.split('.')
    for field in path[:-1]:
      node = node[field]
    node[path[-1]] = value
  gan = steps.build_gan(c, IMAGE_SHAPE)
  return gan, steps.create_state(gan, jax.random.key(0))


IMAGES = jax.random.uniform(jax.random.key(3), (B,) + IMAGE_SHAPE, minval=-1, maxval=1)


@pytest.fixture(scope='module')
def plain_images():
  return image_gan()


def _jitted_steps(gan):
  return (jax.jit(lambda s: steps.d_step(gan, s, {'x': IMAGES}, KEY)),
          jax.jit(lambda s: steps.g_step(gan, s, {'x': IMAGES}, KEY)))


def test_ada_at_p_zero_equals_the_plain_step(plain_images):
  """ADA on with p = 0 (and DiffAugment's empty policy) is the plain D and G step bit for bit."""
  gan, state = plain_images
  ada, ada_state = image_gan(**{'tricks.ada.enabled': True, 'tricks.diffaugment': ''})
  assert float(ada_state.aux['ada_p']) == 0.0
  # Eagerly, op by op: jitted, the two programs differ (ADA's branches are in the graph) and
  # XLA may fuse G's backward pass differently, rounding the last bit otherwise.
  for step_fn in (steps.d_step, steps.g_step):
    (a, ma), (b, mb) = (step_fn(g, s, {'x': IMAGES}, KEY) for g, s in ((gan, state),
                                                                        (ada, ada_state)))
    chex.assert_trees_all_equal((a.g, a.d, a.g_ema), (b.g, b.d, b.g_ema))
    chex.assert_trees_all_equal({k: v for k, v in mb.items() if k != 'ada_rt'}, ma)


@pytest.mark.parametrize('changes', [{'tricks.diffaugment': 'color,translation,cutout'},
                                     {'tricks.ada.enabled': True, 'tricks.ada.p_init': 1.0}],
                         ids=['diffaugment', 'ada_p1'])
def test_augmentations_change_what_d_sees_in_both_steps(plain_images, changes):
  """D's inputs are augmented (reals and fakes, D step and G step), and G's gradient flows back
  through the augmentation: finite, nonzero, and another update than the plain step's."""
  gan, state = plain_images
  aug, aug_state = image_gan(**changes)
  seen = steps.d_inputs(aug, IMAGES, 0, KEY, aug_state.aux.get('ada_p'))
  assert seen.shape == IMAGES.shape and not np.allclose(seen, IMAGES)
  for plain_fn, aug_fn, net in zip(_jitted_steps(gan), _jitted_steps(aug), ('d', 'g')):
    (a, _), (b, mb) = plain_fn(state), aug_fn(aug_state)
    assert _changed(getattr(a, net).params, getattr(b, net).params)
    grad_norm = float(mb[f'{net}_grad_norm'])
    assert np.isfinite(grad_norm) and grad_norm > 0


def test_ada_step_accumulates_then_moves_p_by_the_papers_step():
  ada = tricks.Ada(target=0.6, interval=2, speed_images=1_000)
  aux = {'ada_p': jnp.float32(0.5), 'ada_sign_sum': jnp.float32(0),
         'ada_sign_count': jnp.int32(0), 'other': 7}
  aux = steps.ada_step(ada, aux, jnp.array([1.0, 0.8]), 10, step=1)  # not due: summed
  assert (float(aux['ada_p']), float(aux['ada_sign_sum']), int(aux['ada_sign_count'])) == (
      0.5, pytest.approx(1.8), 2)
  up = steps.ada_step(ada, aux, jnp.array([0.6, 0.2]), 10, step=2)  # r_t = 0.65 > 0.6
  assert float(up['ada_p']) == pytest.approx(0.5 + 2 * 10 * 2 / 1_000)
  assert (float(up['ada_sign_sum']), int(up['ada_sign_count']), up['other']) == (0.0, 0, 7)
  down = steps.ada_step(ada, aux, jnp.array([-1.0, -1.0]), 10, step=2)  # r_t = -0.05 < 0.6
  assert float(down['ada_p']) == pytest.approx(0.5 - 0.04)


def test_ada_p_follows_the_overfitting_heuristic_during_training():
  """In the jitted loop p changes only every `interval` iterations, by ±B·n_critic·interval /
  speed_images in the direction of (mean r_t of the interval - target), clipped to [0, 1]."""
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = B
  c.model.g.channels = c.model.d.channels = 4
  c.optim.n_critic = 2
  c.tricks.ada.update(enabled=True, interval=3, speed_images=480, target=0.0, p_init=0.5)
  gan = steps.build_gan(c, IMAGE_SHAPE)
  state = steps.create_state(gan, jax.random.key(0))
  batches = {'x': jnp.broadcast_to(IMAGES, (9, 2) + IMAGES.shape)}
  state, metrics = jax.jit(lambda s: steps.train_call(gan, s, KEY, batches, num_steps=9))(state)
  p, rt = np.asarray(metrics['ada_p']), np.asarray(metrics['ada_rt'])
  delta = B * 2 * 3 / 480
  expected = [0.5]
  for window in range(3):
    r = rt[3 * window:3 * window + 3].mean()
    expected.append(float(np.clip(expected[-1] + np.sign(r - 0.0) * delta, 0, 1)))
  np.testing.assert_allclose(p, np.repeat(expected[:3], 3), atol=1e-6)
  assert float(state.aux['ada_p']) == pytest.approx(expected[3], abs=1e-6)
  assert len(set(np.round(p, 6))) > 1  # the test saw p move


@pytest.mark.parametrize('changes, message', [
    ({'tricks.lecam.weight': -1.0}, r'lecam.weight=-1.0 must be >= 0'),
    ({'tricks.lecam.weight': 0.1, 'tricks.lecam.decay': 1.0}, r'lecam.decay=1.0 must be in \[0, 1\)'),
    ({'tricks.diffaugment': 'color,rotate'},
     "tricks.diffaugment='rotate' is not known; valid choices: color, cutout, translation"),
    ({'tricks.ada.enabled': True, 'tricks.ada.target': 1.5}, r'ada.target=1.5 must be in \[0, 1\)'),
    ({'tricks.ada.enabled': True, 'tricks.ada.interval': 0}, 'ada.interval=0 must be an integer'),
    ({'tricks.ada.enabled': True, 'tricks.adaptive.enabled': True},
     'ada does not compose with config.tricks.adaptive'),
])
def test_bad_augmentation_settings_name_the_field(changes, message):
  with pytest.raises(configs.ConfigError, match=message):
    image_gan(**changes)


@pytest.mark.parametrize('field, value, name', [
    ('tricks.diffaugment', 'translation', 'diffaugment'), ('tricks.ada.enabled', True, 'ada')])
def test_augmentations_refuse_data_that_is_not_images(field, value, name):
  with pytest.raises(configs.ConfigError, match=f"config.tricks.{name} augments images, and "
                                                "'ring' is not an image dataset"):
    build(**{field: value})


# --- consistency regularisation, top-k, orthogonal regularisation, D's weight decay -------------

def test_top_k_count_decays_by_gamma_per_interval_down_to_the_floor():
  count = lambda step: int(tricks.top_k_count(64, step, 0.99, 0.5, 10))
  assert [count(t) for t in (0, 9, 10, 25, 100)] == [
      64, 64, int(64 * 0.99), int(64 * 0.99 ** 2), int(64 * 0.99 ** 10)]
  assert count(10_000) == 32
  assert int(tricks.top_k_count(10, 10_000, 0.5, 0.75, 1)) == 8  # ⌈0.75 · 10⌉


def test_top_k_weights_select_exactly_the_k_highest_scores():
  scores = jnp.array([0.3, -1.0, 2.0, 0.3, 0.5, -0.2])
  # 2.0, 0.5, then the first of the tied 0.3s
  np.testing.assert_array_equal(tricks.top_k_weights(scores, 3), [1, 0, 1, 0, 1, 0])
  for k in range(7):
    assert float(jnp.sum(tricks.top_k_weights(scores, k))) == k


def test_top_k_with_k_equal_to_the_batch_is_the_plain_g_step(plain):
  gan, state = plain
  top, top_state = build(**{'tricks.top_k.enabled': True, 'tricks.top_k.min_fraction': 1.0})
  (a, ma), (b, mb) = g_step(gan, state), g_step(top, top_state)
  assert int(mb['g_top_k']) == B
  chex.assert_trees_all_close(a.g.params, b.g.params, rtol=1e-6, atol=1e-7)
  assert float(mb['g_loss']) == pytest.approx(float(ma['g_loss']), rel=1e-6)


def test_top_k_loss_is_the_objective_on_the_k_best_fakes_only():
  """G's top-k loss equals the non-saturating loss of the k fakes D scores highest, computed by
  hand from D's outputs; its gradient is that of those fakes alone."""
  gan, state = build(**{'tricks.top_k.enabled': True, 'tricks.top_k.gamma': 0.5,
                        'tricks.top_k.decay_every': 1, 'tricks.top_k.min_fraction': 0.25})
  state = state.replace(step=jnp.asarray(1, state.step.dtype))  # k = ⌊8 · 0.5⌋ = 4
  scores = jnp.array([0.1, 2.0, -3.0, 0.7, 1.5, -0.4, 0.0, 0.9])
  k = int(steps.top_k(gan, B, state.step))
  assert k == 4
  best = np.sort(np.asarray(scores))[-k:]
  expected = np.mean(np.log1p(np.exp(-best)))  # non-saturating: softplus(-D)
  assert float(steps.g_objective(gan, scores, None, state.step)) == pytest.approx(expected,
                                                                                 rel=1e-6)
  grad = jax.grad(lambda s: steps.g_objective(gan, s, None, state.step))(scores)
  assert np.count_nonzero(np.asarray(grad)) == k
  assert set(np.flatnonzero(np.asarray(grad))) == {1, 3, 4, 7}


def test_consistency_loss_by_hand():
  a = jnp.array([[1.0, 2.0], [0.0, 0.0]])
  b = jnp.array([[0.0, 0.0], [0.0, 1.0]])
  assert float(tricks.consistency_loss(a, b)) == pytest.approx((1 + 4 + 1) / 2)
  assert float(tricks.consistency_loss(a[:, 0], b[:, 0])) == pytest.approx(0.5)


def test_orthogonal_regularization_by_hand():
  """Σ ‖WᵀW ⊙ (1 - I)‖²_F over kernels: W = [[1, 0], [1, 1]] has WᵀW = [[2, 1], [1, 1]], so 2;
  an orthogonal kernel (any scale per filter) gives 0; biases and 1-d leaves are left out."""
  w = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  params = {'Dense_0': {'kernel': w, 'bias': jnp.ones(2)},
            'Conv_0': {'kernel': jnp.stack([3 * jnp.eye(2), jnp.zeros((2, 2))])[None]}}
  assert float(penalties.orthogonal_regularization({'Dense_0': params['Dense_0']})) == 2.0
  assert float(penalties.orthogonal_regularization({'Conv_0': params['Conv_0']})) == 0.0
  assert float(penalties.orthogonal_regularization(params)) == 2.0


def test_orthogonal_adds_its_term_to_g_only(plain):
  gan, state = plain
  ortho, ortho_state = build(**{'tricks.orthogonal': 1e-2})
  (a, ma), (b, mb) = g_step(gan, state), g_step(ortho, ortho_state)
  expected = float(penalties.orthogonal_regularization(state.g.params))
  assert float(mb['g_orthogonal']) == pytest.approx(expected, rel=1e-6) and expected > 0
  assert float(mb['g_loss']) == pytest.approx(float(ma['g_loss']) + 1e-2 * expected, rel=1e-6)
  assert _changed(a.g.params, b.g.params)
  chex.assert_trees_all_equal(d_step(gan, state)[0].d, d_step(ortho, ortho_state)[0].d)


def test_d_weight_decay_adds_wd_theta_to_the_gradient():
  """SGD with weight decay wd: θ ← θ - lr·(g + wd·θ); 0 is the plain optimizer."""
  from gan_jax import state as state_lib
  params, grads = {'w': jnp.array([1.0, -2.0])}, {'w': jnp.array([0.5, 0.5])}
  for wd in (0.0, 0.1):
    tx = state_lib.make_optimizer('sgd', 0.01, (0.5, 0.999), weight_decay=wd)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates['w'], -0.01 * (grads['w'] + wd * params['w']), rtol=1e-6)
  gan, state = build(**{'optim.d_weight_decay': 0.0})
  decayed, decayed_state = build(**{'optim.d_weight_decay': 0.5})
  assert _changed(d_step(gan, state)[0].d.params, d_step(decayed, decayed_state)[0].d.params)
  chex.assert_trees_all_equal(g_step(gan, state)[0].g, g_step(decayed, decayed_state)[0].g)


@pytest.mark.parametrize('changes', [
    {'tricks.consistency.bcr_augment': 'cutout'},
    {'tricks.consistency.zcr_sigma': 0.5},
    {'tricks.top_k.gamma': 0.5}, {'tricks.orthogonal': 0.0}, {'optim.ema_standing_stats': 0}],
    ids=['bcr_augment', 'zcr_sigma', 'top_k_off', 'orthogonal_0', 'standing_0'])
def test_switches_at_strength_zero_are_the_plain_step(plain_images, changes):
  """Every new switch off (a weight of 0, top_k disabled) but its other options changed: the
  plain D and G steps, bit for bit."""
  gan, state = plain_images
  other, other_state = image_gan(**changes)
  for step_fn in (steps.d_step, steps.g_step):
    (a, ma), (b, mb) = (step_fn(g, s, {'x': IMAGES}, KEY) for g, s in ((gan, state),
                                                                        (other, other_state)))
    chex.assert_trees_all_equal((a.g, a.d, a.g_ema, ma), (b.g, b.d, b.g_ema, mb))


def test_bcr_adds_the_consistency_of_d_under_its_transformation(plain_images):
  """bCR's term is λ_real·E‖D(x) - D(T(x))‖² + λ_fake·E‖D(G(z)) - D(T(G(z)))‖²: positive for a
  D that is not invariant to translation, added to D's loss only; D's objective unchanged."""
  gan, state = plain_images
  bcr, bcr_state = image_gan(**{'tricks.consistency.bcr_real': 10.0,
                                'tricks.consistency.bcr_fake': 10.0})
  (a, ma), (b, mb) = (steps.d_step(gan, state, {'x': IMAGES}, KEY),
                      steps.d_step(bcr, bcr_state, {'x': IMAGES}, KEY))
  assert float(mb['d_objective']) == float(ma['d_objective'])
  assert float(mb['d_bcr']) > 0
  assert float(mb['d_loss']) == pytest.approx(float(ma['d_loss']) + float(mb['d_bcr']), rel=1e-6)
  assert _changed(a.d.params, b.d.params)
  chex.assert_trees_all_equal(steps.g_step(gan, state, {'x': IMAGES}, KEY)[0].g,
                              steps.g_step(bcr, bcr_state, {'x': IMAGES}, KEY)[0].g)


def test_zcr_terms_scale_with_the_latent_noise_squared(plain_images):
  """zCR's ‖D(G(z)) - D(G(z + Δz))‖² and ‖G(z) - G(z + Δz)‖² are smooth in Δz ~ N(0, σ²): a
  tenth of σ gives a hundredth of each term (within 10%); zcr_gen enters G's loss with a minus."""
  terms = {}
  for sigma in (1e-2, 1e-3):
    gan, state = image_gan(**{'tricks.consistency.zcr_dis': 5.0,
                              'tricks.consistency.zcr_gen': 0.5,
                              'tricks.consistency.zcr_sigma': sigma})
    _, md = steps.d_step(gan, state, {'x': IMAGES}, KEY)
    _, mg = steps.g_step(gan, state, {'x': IMAGES}, KEY)
    terms[sigma] = (float(md['d_zcr']), float(mg['g_zcr']))
    assert float(md['d_loss']) == pytest.approx(float(md['d_objective']) + 5.0 * terms[sigma][0],
                                                rel=1e-5)
  for big, small in zip(terms[1e-2], terms[1e-3]):
    assert big > 0 and big / small == pytest.approx(100, rel=0.1)


@pytest.mark.parametrize('changes, message', [
    ({'tricks.consistency.bcr_real': -1.0}, 'consistency.bcr_real=-1.0 must be >= 0'),
    ({'tricks.consistency.zcr_sigma': 0.0}, 'consistency.zcr_sigma=0.0 must be > 0'),
    ({'tricks.consistency.bcr_real': 1.0, 'tricks.consistency.bcr_augment': 'flip'},
     "consistency.bcr_augment='flip' is not known"),
    ({'tricks.top_k.enabled': True, 'tricks.top_k.gamma': 1.5}, r'top_k.gamma=1.5 must be in'),
    ({'tricks.top_k.enabled': True, 'tricks.top_k.decay_every': 0},
     'top_k.decay_every=0 must be an integer >= 1'),
    ({'tricks.top_k.enabled': True, 'objective.name': 'relativistic_average'},
     "top_k ranks the fakes.*not 'relativistic_average'"),
    ({'tricks.orthogonal': -1e-4}, 'orthogonal=-0.0001 must be >= 0'),
])
def test_bad_consistency_and_top_k_settings_name_the_field(changes, message):
  with pytest.raises(configs.ConfigError, match=message):
    image_gan(**changes)


def test_bcr_refuses_data_that_is_not_images():
  with pytest.raises(configs.ConfigError, match="consistency.bcr_real/bcr_fake augments images"):
    build(**{'tricks.consistency.bcr_real': 1.0})


def test_pulling_away_adds_its_term_to_g_only():
  """EBGAN-PT: G's loss gains λ_PT · f_PT of the fakes' codes (a mean squared cosine: in [0, 1]);
  D's step is untouched; at λ_PT = 0 the plain EBGAN step."""
  ae = {'objective.name': 'ebgan', 'model.discriminator': 'dcgan_autoencoder',
        'model.d': {'channels': 4, 'conditioning': 'none'}}
  gan, state = image_gan(**ae)
  pt, pt_state = image_gan(**ae, **{'tricks.pulling_away': 0.1})
  (a, ma), (b, mb) = (steps.g_step(g, s, {'x': IMAGES}, KEY) for g, s in ((gan, state),
                                                                           (pt, pt_state)))
  assert 0 < float(mb['g_pulling_away']) <= 1
  assert float(mb['g_loss']) == pytest.approx(float(ma['g_loss']) + 0.1 * float(
      mb['g_pulling_away']), rel=1e-6)
  assert _changed(a.g.params, b.g.params)
  chex.assert_trees_all_equal(steps.d_step(gan, state, {'x': IMAGES}, KEY)[0].d,
                              steps.d_step(pt, pt_state, {'x': IMAGES}, KEY)[0].d)
  zero, zero_state = image_gan(**ae, **{'tricks.pulling_away': 0.0})
  chex.assert_trees_all_equal(steps.g_step(zero, zero_state, {'x': IMAGES}, KEY)[0].g, a.g)


def test_feature_matching_and_ensembles_on_image_discriminators(plain_images):
  """The DCGAN D sows its last features: feature matching adds w·‖E f(x) - E f(G(z))‖² to G's
  loss; an ensemble of image Ds is given by each member's channels, its output one column each."""
  gan, state = plain_images
  fm, fm_state = image_gan(**{'tricks.feature_matching.mode': 'auxiliary',
                              'tricks.feature_matching.weight': 2.0})
  _, ma = steps.g_step(gan, state, {'x': IMAGES}, KEY)
  _, mb = steps.g_step(fm, fm_state, {'x': IMAGES}, KEY)
  assert float(mb['g_feature_matching']) > 0
  assert float(mb['g_adversarial']) == pytest.approx(float(ma['g_loss']), rel=1e-6)
  assert float(mb['g_loss']) == pytest.approx(
      float(ma['g_loss']) + 2.0 * float(mb['g_feature_matching']), rel=1e-6)
  ens, ens_state = image_gan(**{'tricks.ensemble': ((4,), (8,))})
  kernels = [ens_state.d.params[f'members_{k}']['StridedConv_0']['kernel'].shape[-1]
             for k in range(2)]
  assert kernels == [4, 8]
  out = steps.run_d(ens, ens_state.d.params, ens_state.d.batch_stats, IMAGES, None, False)[0]
  assert out.shape == (B, 2)
  _, md = steps.d_step(ens, ens_state, {'x': IMAGES}, KEY)
  assert float(md['d_objective']) == pytest.approx(
      float(md['d_objective_0']) + float(md['d_objective_1']), rel=1e-6)


@pytest.mark.parametrize('changes, message', [
    ({'tricks.pulling_away': 0.1}, "pulling_away acts on the code of an autoencoder D, not on "
                                   "'dcgan'"),
    ({'tricks.pulling_away': -0.1}, 'pulling_away=-0.1 must be >= 0'),
    ({'tricks.ensemble': ((4, 8),)}, 'members of an image D are given by their channels'),
    ({'model.d.embedding': 8}, 'D outputs an embedding of 8, which only the mmd objective'),
    ({'model.d.embedding': 8, 'objective.name': 'mmd', 'tricks.lecam.weight': 0.1},
     'config.tricks.lecam.weight needs one D score per example'),
    ({'model.discriminator': 'identity', 'model.d': {}, 'objective.name': 'mmd',
      'penalty.name': 'r1'}, "config.penalty.name='r1' needs one D score per example"),
])
def test_image_toolkit_refusals_name_the_field(changes, message):
  with pytest.raises(configs.ConfigError, match=message):
    image_gan(**changes)

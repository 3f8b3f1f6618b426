"""Every objective: shape contract, values worked out by hand, stability, the registry."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses


@pytest.mark.parametrize('name', sorted(losses.OBJECTIVES))
@pytest.mark.parametrize('shape', [(8,), (8, 1)])
def test_objective_contract(name, shape):
  obj = losses.get(name)
  real, fake = jnp.linspace(-2, 2, 8).reshape(shape), -jnp.linspace(0, 1, 8).reshape(shape)
  d, g = jax.jit(obj.d_loss)(real, fake), jax.jit(losses.g_value, static_argnums=0)(obj, fake, real)
  chex.assert_shape([d, g], [(), ()])
  chex.assert_type([d, g], jnp.float32)
  chex.assert_tree_all_finite((d, g))


def _sp(x):  # softplus in float64, the reference
  return np.log1p(np.exp(x))


REAL = np.array([2.0, -1.0, 0.5, 0.0], np.float32)
FAKE = np.array([-3.0, 1.5, 0.0, -0.5], np.float32)


def _sigmoid(x):
  return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


HAND = {
    # -E log D(x) - E log(1 - D(G(z))), with D = sigmoid
    'minimax': (-np.mean(np.log(_sigmoid(REAL))) - np.mean(np.log(1 - _sigmoid(FAKE))),
                np.mean(np.log(1 - _sigmoid(FAKE)))),
    'non_saturating': (-np.mean(np.log(_sigmoid(REAL))) - np.mean(np.log(1 - _sigmoid(FAKE))),
                       -np.mean(np.log(_sigmoid(FAKE)))),
    'wasserstein': (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE)),
    # relu(1 - r) = [0, 2, 0.5, 1] -> 0.875; relu(1 + f) = [0, 2.5, 1, 0.5] -> 1.0
    'hinge': (0.875 + 1.0, -np.mean(FAKE)),
    # ½E(r-1)² = ½·mean([1, 4, .25, 1]) = 0.78125; ½E f² = ½·mean([9, 2.25, 0, .25]) = 1.4375
    'least_squares': (0.78125 + 1.4375, 0.5 * np.mean((FAKE - 1) ** 2)),
}


@pytest.mark.parametrize('name', sorted(HAND))
def test_objective_values_by_hand(name):
  obj = losses.get(name)
  d_ref, g_ref = HAND[name]
  np.testing.assert_allclose(obj.d_loss(REAL, FAKE), d_ref, rtol=1e-6)
  np.testing.assert_allclose(obj.g_loss(FAKE), g_ref, rtol=1e-6)


def test_ebgan_values_by_hand():
  real_e, fake_e = np.array([0.1, 0.3]), np.array([0.5, 2.0])
  obj = losses.get('ebgan', margin=1.0)
  # D = E(x) + [m - E(G(z))]+ = 0.2 + mean([0.5, 0]) = 0.45; G = E(G(z)) = 1.25
  np.testing.assert_allclose(obj.d_loss(real_e, fake_e), 0.45, rtol=1e-6)
  np.testing.assert_allclose(obj.g_loss(fake_e), 1.25, rtol=1e-6)
  np.testing.assert_allclose(losses.get('ebgan', margin=3.0).d_loss(real_e, fake_e),
                             0.2 + (2.5 + 1.0) / 2, rtol=1e-6)


def test_bce_at_indifferent_discriminator_is_log4():
  zeros = jnp.zeros(16)
  np.testing.assert_allclose(losses.bce_d_loss(zeros, zeros), math.log(4), rtol=1e-6)


@pytest.mark.parametrize('name', ['minimax', 'non_saturating'])
def test_log_sigmoid_losses_are_stable_at_extreme_logits(name):
  obj = losses.get(name)
  big = jnp.array([100.0, -100.0, 1e4, -1e4])
  values = (obj.d_loss(big, -big), obj.g_loss(big), obj.g_loss(-big))
  grads = (jax.grad(lambda f: obj.g_loss(f))(big), jax.grad(lambda r: obj.d_loss(r, big))(big))
  chex.assert_tree_all_finite((values, grads))
  # -log sigmoid(-1e4) = 1e4 exactly in floating point, not inf.
  np.testing.assert_allclose(losses.non_saturating_g_loss(jnp.array([-1e4])), 1e4, rtol=1e-6)


def test_minimax_saturates_where_non_saturating_does_not():
  # D confidently rejects the fakes (logit -10): the minimax gradient vanishes, NS stays ~1.
  fake = jnp.array([-10.0])
  g_mm = jax.grad(losses.minimax_g_loss)(fake)
  g_ns = jax.grad(losses.non_saturating_g_loss)(fake)
  assert abs(float(g_mm[0])) < 1e-4
  assert abs(float(g_ns[0])) > 0.99


def test_get_unknown_names_valid_keys():
  with pytest.raises(ValueError, match='valid objectives: .*hinge.*wasserstein'):
    losses.get('hinj')


def test_get_rejects_options_of_another_objective():
  with pytest.raises(ValueError, match='takes no options'):
    losses.get('hinge', margin=1.0)
  with pytest.raises(ValueError, match="objective 'ebgan' takes options margin, got \\['gamma'\\]"):
    losses.get('ebgan', gamma=1.0)


@pytest.mark.parametrize('name', sorted(losses.OBJECTIVES))
def test_registry_holds_factories(name):
  # Each entry builds its Objective; get(name) is the factory's objective without options.
  built = losses.OBJECTIVES[name]()
  assert isinstance(built, losses.Objective)
  got = losses.get(name)
  assert isinstance(got, losses.Objective) and got.g_uses_real == built.g_uses_real
  real, fake = jnp.asarray(REAL), jnp.asarray(FAKE)
  np.testing.assert_array_equal(got.d_loss(real, fake), built.d_loss(real, fake))
  np.testing.assert_array_equal(losses.g_value(got, fake, real), losses.g_value(built, fake, real))


def test_relativistic_values_by_hand():
  sp = lambda x: np.log1p(np.exp(np.asarray(x, np.float64)))
  r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
  # RSGAN: pairs by index; D = E softplus(f - r), G = E softplus(r - f).
  rs = losses.get('relativistic')
  np.testing.assert_allclose(rs.d_loss(REAL, FAKE), np.mean(sp(f - r)), rtol=1e-6)
  np.testing.assert_allclose(rs.g_loss(FAKE, REAL), np.mean(sp(r - f)), rtol=1e-6)
  # RaSGAN: D̃(x_r) = r - mean f, D̃(x_f) = f - mean r; G swaps the roles.
  ra = losses.get('relativistic_average')
  d_ref = np.mean(sp(-(r - f.mean()))) + np.mean(sp(f - r.mean()))
  g_ref = np.mean(sp(-(f - r.mean()))) + np.mean(sp(r - f.mean()))
  np.testing.assert_allclose(ra.d_loss(REAL, FAKE), d_ref, rtol=1e-6)
  np.testing.assert_allclose(ra.g_loss(FAKE, REAL), g_ref, rtol=1e-6)
  # RaHinge: mean r = 0.375, mean f = -0.5. relu(1 - (r + 0.5)) = [0, 1.5, 0, 0.5] -> 0.5;
  # relu(1 + (f - 0.375)) = [0, 2.125, 0.625, 0.125] -> 0.71875.
  rh = losses.get('relativistic_average_hinge')
  np.testing.assert_allclose(rh.d_loss(REAL, FAKE), 0.5 + 0.71875, rtol=1e-6)
  np.testing.assert_allclose(rh.g_loss(FAKE, REAL), rh.d_loss(FAKE, REAL), rtol=1e-6)
  assert all(losses.get(n).g_uses_real for n in ('relativistic', 'relativistic_average',
                                                 'relativistic_average_hinge'))
  assert not any(losses.get(n).g_uses_real for n in ('minimax', 'non_saturating', 'hinge'))


def test_relativistic_average_is_indifferent_at_equal_outputs():
  same = jnp.full((6,), 0.7)  # C(x_r) = C(x_f): both relative logits 0, so D = G = 2 log 2
  ra = losses.get('relativistic_average')
  np.testing.assert_allclose(ra.d_loss(same, same), 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(ra.g_loss(same, same), 2 * math.log(2), rtol=1e-6)


def test_one_sided_label_smoothing_by_hand():
  # Real target 0.9: -E[0.9 log σ(r) + 0.1 log(1 - σ(r))] - E[log(1 - σ(f))].
  p = _sigmoid(REAL)
  ref = (-np.mean(0.9 * np.log(p) + 0.1 * np.log(1 - p)) -
         np.mean(np.log(1 - _sigmoid(FAKE))))
  np.testing.assert_allclose(losses.smoothed_bce_d_loss(REAL, FAKE, 0.9), ref, rtol=1e-6)
  smoothed = losses.one_sided_label_smoothing(losses.get('non_saturating'), 0.9)
  np.testing.assert_allclose(smoothed.d_loss(REAL, FAKE), ref, rtol=1e-6)
  assert smoothed.g_loss is losses.non_saturating_g_loss  # one-sided: G's loss unchanged
  # Target 1 is the plain BCE loss; a target < 1 keeps D's real logits finite at the optimum.
  np.testing.assert_allclose(losses.smoothed_bce_d_loss(REAL, FAKE, 1.0),
                             losses.bce_d_loss(REAL, FAKE), rtol=1e-6)
  grad = jax.grad(lambda r: losses.smoothed_bce_d_loss(r, FAKE, 0.9))
  np.testing.assert_allclose(grad(jnp.full(4, math.log(9.0))), 0.0, atol=1e-6)  # σ(r*) = 0.9


def test_label_smoothing_needs_cross_entropy():
  assert losses.one_sided_label_smoothing(losses.get('hinge'), 1.0) == losses.get('hinge')
  with pytest.raises(ValueError, match='valid objectives: minimax, non_saturating'):
    losses.one_sided_label_smoothing(losses.get('wasserstein'), 0.9)

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
  d, g = jax.jit(obj.d_loss)(real, fake), jax.jit(obj.g_loss)(fake)
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

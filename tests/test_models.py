"""Shape and dtype contracts of the MLP architectures, with each normalisation."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import models

NORMS = list(models.NORMS)
# The image architectures have their own contract tests in test_image_models.py.
MLP_GENERATORS = {k: v for k, v in models.GENERATORS.items() if k.startswith('mlp')}
MLP_DISCRIMINATORS = sorted(k for k in models.DISCRIMINATORS if k.startswith('mlp'))


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('data_shape', [(1,), (2,), (3, 4)])
def test_generators(norm, data_shape):
  for name, cls in MLP_GENERATORS.items():
    g = cls(data_shape=data_shape, hidden=(16, 16), norm=norm, output_activation='tanh')
    z = jax.random.normal(jax.random.key(0), (5, 7))
    variables = g.init(jax.random.key(1), z, train=False)
    assert ('batch_stats' in variables) == (norm == 'batch'), name
    x, _ = g.apply(variables, z, train=True, mutable=['batch_stats'])
    chex.assert_shape(x, (5,) + data_shape)
    chex.assert_type(x, jnp.float32)
    assert float(jnp.max(jnp.abs(x))) <= 1.0  # tanh output


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('name', MLP_DISCRIMINATORS)
def test_discriminators(name, norm):
  d = models.DISCRIMINATORS[name](hidden=(16, 8), norm=norm)
  x = jax.random.normal(jax.random.key(0), (6, 2))
  variables = d.init(jax.random.key(1), x, train=False)
  out = d.apply(variables, x, train=False)
  chex.assert_shape(out, (6,))
  chex.assert_tree_all_finite(out)


def test_autoencoder_energy_is_reconstruction_error():
  d = models.MLPAutoencoderDiscriminator(hidden=(8,), code_dim=2)
  x = jax.random.normal(jax.random.key(0), (4, 3))
  variables = d.init(jax.random.key(1), x)
  energy = d.apply(variables, x)
  assert bool(jnp.all(energy >= 0))
  # Zero the decoder's output layer: the reconstruction is 0 and the energy is mean(x²).
  params = jax.tree.map(lambda p: p, variables['params'])
  last = sorted(k for k in params if k.startswith('Dense'))[-1]
  params[last] = jax.tree.map(jnp.zeros_like, params[last])
  np.testing.assert_allclose(d.apply({'params': params}, x), jnp.mean(x ** 2, axis=1), rtol=1e-6)


def test_batchnorm_uses_running_averages_when_not_training():
  g = models.MLPGenerator(data_shape=(2,), hidden=(8,), norm='batch')
  z = jax.random.normal(jax.random.key(0), (16, 4))
  variables = g.init(jax.random.key(1), z, train=False)
  one = g.apply(variables, z[:1], train=False)
  many = g.apply(variables, z, train=False)[:1]
  np.testing.assert_allclose(one, many, rtol=1e-6)  # no batch dependence in inference


def test_unknown_activation_is_named():
  g = models.MLPGenerator(data_shape=(2,), activation='swish2')
  with pytest.raises(ValueError, match="unknown activation 'swish2'; valid choices: elu"):
    g.init(jax.random.key(0), jnp.zeros((1, 4)))

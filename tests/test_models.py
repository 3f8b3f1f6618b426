"""Shape, dtype and range contracts of every registered architecture, from the registries.

Every entry of models.GENERATORS and models.DISCRIMINATORS is tested on the data it takes: toy
vectors for the MLPs (which have `hidden` widths), images for the image models (which have
`channels`), so a new entry is covered as soon as it is registered.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import biggan, configs, image_models, models

NORMS = list(models.NORMS)
VECTOR_SHAPES = [(1,), (2,), (3, 4)]
# Image shapes per architecture (CIFAR's 32×32×3 for any entry not listed), and the entries that
# take no labels (every other conditioning must be refused by name).
G_IMAGE_SHAPES = {'dcgan': [(28, 28, 1), (32, 32, 3), (64, 64, 3)]}
D_IMAGE_SHAPES = {'dcgan': [(28, 28, 1), (32, 32, 3), (64, 64, 3)],
                  'resnet': [(32, 32, 3), (64, 64, 3)],
                  'dcgan_autoencoder': [(28, 28, 1)]}
# The conditionings an entry takes where it is not image_models' G_CONDITIONING / D_CONDITIONING
# (every other one must be refused by name).
G_SUPPORTED = {'biggan': biggan.G_CONDITIONING}
D_SUPPORTED = {'dcgan_autoencoder': ('none',), 'biggan': biggan.D_CONDITIONING}
# Entries with no options to tell their kind by, and the file that tests their contract.
OTHER = {'identity': 'tests/test_mmd.py', 'stylegan2': 'tests/test_stylegan2.py'}
B, C = 4, 10
LABELS = jnp.arange(B) % C


def _kind(cls) -> str:
  fields = getattr(cls, '__dataclass_fields__', {})
  return 'vector' if 'hidden' in fields else 'image' if 'channels' in fields else 'unknown'


def _names(registry, kind):
  return [name for name in sorted(registry) if _kind(registry[name]) == kind]


def _image_cases(registry, shapes, conditionings):
  return [pytest.param(name, shape, cond, id=f'{name}-{"x".join(map(str, shape))}-{cond}')
          for name in _names(registry, 'image')
          for shape in shapes.get(name, [(32, 32, 3)]) for cond in conditionings]


def _init_apply(module, x, labels):
  variables = module.init(jax.random.key(0), x, labels, train=False)
  out, _ = module.apply(variables, x, labels, train=True, mutable=['batch_stats'])
  return variables, out


def _perturbed(variables):
  leaves, tree = jax.tree.flatten(variables['params'])
  keys = jax.random.split(jax.random.key(9), len(leaves))
  noisy = [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  return {**variables, 'params': jax.tree.unflatten(tree, noisy)}


@pytest.mark.parametrize('registry', ['GENERATORS', 'DISCRIMINATORS'])
def test_every_entry_has_a_contract_test(registry):
  entries = getattr(models, registry)
  assert all(_kind(cls) != 'unknown' for name, cls in entries.items() if name not in OTHER), entries
  assert _names(entries, 'vector') and _names(entries, 'image')
  for shapes in (G_IMAGE_SHAPES, D_IMAGE_SHAPES):
    assert set(shapes) <= set(models.GENERATORS) | set(models.DISCRIMINATORS)


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('data_shape', VECTOR_SHAPES)
@pytest.mark.parametrize('name', _names(models.GENERATORS, 'vector'))
def test_vector_generators(name, norm, data_shape):
  g = models.GENERATORS[name](data_shape=data_shape, hidden=(16, 16), norm=norm,
                              output_activation='tanh')
  z = jax.random.normal(jax.random.key(0), (5, 7))
  variables = g.init(jax.random.key(1), z, train=False)
  assert ('batch_stats' in variables) == (norm == 'batch'), name
  x, _ = g.apply(variables, z, train=True, mutable=['batch_stats'])
  chex.assert_shape(x, (5,) + data_shape)
  chex.assert_type(x, jnp.float32)
  assert float(jnp.max(jnp.abs(x))) <= 1.0  # tanh output


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('name', _names(models.DISCRIMINATORS, 'vector'))
def test_vector_discriminators(name, norm):
  d = models.DISCRIMINATORS[name](hidden=(16, 8), norm=norm)
  x = jax.random.normal(jax.random.key(0), (6, 2))
  variables = d.init(jax.random.key(1), x, train=False)
  out = d.apply(variables, x, train=False)
  chex.assert_shape(out, (6,))
  chex.assert_tree_all_finite(out)


@pytest.mark.parametrize('name,shape,conditioning',
                         _image_cases(models.GENERATORS, G_IMAGE_SHAPES,
                                      image_models.G_CONDITIONING))
def test_image_generators(name, shape, conditioning):
  extra = {'num_classes': C} if conditioning != 'none' else {}
  g = models.GENERATORS[name](data_shape=shape, channels=8, conditioning=conditioning, **extra)
  z = jax.random.normal(jax.random.key(1), (B, 16))
  labels = LABELS if conditioning != 'none' else None
  if conditioning not in G_SUPPORTED.get(name, image_models.G_CONDITIONING):
    with pytest.raises(ValueError, match=f"unknown (G )?conditioning '{conditioning}'"):
      g.init(jax.random.key(0), z, labels, train=False)
    return
  variables, x = _init_apply(g, z, labels)
  chex.assert_shape(x, (B,) + shape)
  chex.assert_type(x, jnp.float32)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  x_eval = g.apply(variables, z, labels, train=False)
  chex.assert_shape(x_eval, (B,) + shape)
  if conditioning != 'none':  # the label changes the sample for the same z (cbn starts at γ=1,
    variables = _perturbed(variables)  # β=0 for every class, so perturb the parameters first)
    same = g.apply(variables, z, labels, train=False)
    other = g.apply(variables, z, (labels + 1) % C, train=False)
    assert not np.allclose(same, other)


@pytest.mark.parametrize('name,shape,conditioning',
                         _image_cases(models.DISCRIMINATORS, D_IMAGE_SHAPES,
                                      image_models.D_CONDITIONING))
def test_image_discriminators(name, shape, conditioning):
  extra = {'num_classes': C} if conditioning != 'none' else {}
  d = models.DISCRIMINATORS[name](channels=8, conditioning=conditioning, **extra)
  x = jax.random.uniform(jax.random.key(2), (B,) + shape, minval=-1, maxval=1)
  labels = LABELS if conditioning != 'none' else None
  if conditioning not in D_SUPPORTED.get(name, image_models.D_CONDITIONING):
    with pytest.raises(ValueError, match=f"unknown (D )?conditioning '{conditioning}'"):
      d.init(jax.random.key(0), x, labels, train=False)
    return
  variables, out = _init_apply(d, x, labels)
  chex.assert_shape(out, (B, 1 + C) if conditioning == 'acgan' else (B,))
  chex.assert_tree_all_finite(out)
  if name.endswith('_autoencoder'):  # an energy: a reconstruction error
    assert bool(jnp.all(out >= 0))
  if conditioning in ('concat', 'projection'):
    other = d.apply(variables, x, (labels + 1) % C, train=False)
    assert not np.allclose(d.apply(variables, x, labels, train=False), other)


def test_check_choice_names_the_kind_value_and_choices():
  configs.check_choice('norm', 'batch', models.NORMS)  # a valid choice: no error
  with pytest.raises(ValueError,
                     match=r"^unknown norm 'group'; valid choices: none, batch, layer$"):
    configs.check_choice('norm', 'group', models.NORMS)
  with pytest.raises(ValueError, match=r"^unknown receptive_field 5; valid choices: 1, 16, 70$"):
    configs.check_choice('receptive_field', 5, (1, 16, 70))


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

"""Shape contracts of every image architecture, per resolution and conditioning mode."""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import image_models, layers, models

B, C = 4, 10
LABELS = jnp.arange(B) % C


def _init_apply(module, x, labels):
  variables = module.init(jax.random.key(0), x, labels, train=False)
  out, _ = module.apply(variables, x, labels, train=True, mutable=['batch_stats'])
  return variables, out


def _perturbed(variables):
  leaves, tree = jax.tree.flatten(variables['params'])
  keys = jax.random.split(jax.random.key(9), len(leaves))
  noisy = [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  return {**variables, 'params': jax.tree.unflatten(tree, noisy)}


GENERATOR_CASES = [('dcgan', s) for s in ((28, 28, 1), (32, 32, 3), (64, 64, 3))] + [
    ('resnet', (32, 32, 3))]


@pytest.mark.parametrize('name,shape', GENERATOR_CASES)
@pytest.mark.parametrize('conditioning', image_models.G_CONDITIONING)
def test_generator_contract(name, shape, conditioning):
  extra = {'num_classes': C} if conditioning != 'none' else {}
  g = models.GENERATORS[name](data_shape=shape, channels=8, conditioning=conditioning, **extra)
  z = jax.random.normal(jax.random.key(1), (B, 16))
  labels = LABELS if conditioning != 'none' else None
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


DISCRIMINATOR_CASES = [('dcgan', s) for s in ((28, 28, 1), (32, 32, 3), (64, 64, 3))] + [
    ('resnet', (32, 32, 3)), ('resnet', (64, 64, 3))]


@pytest.mark.parametrize('name,shape', DISCRIMINATOR_CASES)
@pytest.mark.parametrize('conditioning', image_models.D_CONDITIONING)
def test_discriminator_contract(name, shape, conditioning):
  extra = {'num_classes': C} if conditioning != 'none' else {}
  d = models.DISCRIMINATORS[name](channels=8, conditioning=conditioning, **extra)
  x = jax.random.uniform(jax.random.key(2), (B,) + shape, minval=-1, maxval=1)
  labels = LABELS if conditioning != 'none' else None
  variables, out = _init_apply(d, x, labels)
  chex.assert_shape(out, (B, 1 + C) if conditioning == 'acgan' else (B,))
  chex.assert_tree_all_finite(out)
  if conditioning in ('concat', 'projection'):
    other = d.apply(variables, x, (labels + 1) % C, train=False)
    assert not np.allclose(d.apply(variables, x, labels, train=False), other)


@pytest.mark.parametrize('option', [{'spectral_norm': True}, {'minibatch_std': True},
                                    {'minibatch_discrimination': 5}, {'norm': 'layer'},
                                    {'norm': 'none'}, {'initializer': 'orthogonal'}])
def test_dcgan_discriminator_options(option):
  d = models.DISCRIMINATORS['dcgan'](channels=8, **option)
  x = jax.random.uniform(jax.random.key(3), (B, 32, 32, 3), minval=-1, maxval=1)
  variables, out = _init_apply(d, x, None)
  chex.assert_shape(out, (B,))
  if option.get('spectral_norm'):  # power-iteration vectors live in batch_stats
    assert 'batch_stats' in variables


def test_resnet_discriminator_with_spectral_norm_updates_its_vectors():
  d = models.DISCRIMINATORS['resnet'](channels=8, spectral_norm=True)
  x = jax.random.uniform(jax.random.key(4), (B, 32, 32, 3))
  variables = d.init(jax.random.key(0), x, None, train=False)
  _, updates = d.apply(variables, x, None, train=True, mutable=['batch_stats'])
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables['batch_stats'],
                         updates['batch_stats'])
  assert any(jax.tree.leaves(changed))


def test_autoencoder_energy():
  d = models.DISCRIMINATORS['dcgan_autoencoder'](channels=8)
  x = jax.random.uniform(jax.random.key(5), (B, 28, 28, 1), minval=-1, maxval=1)
  _, energy = _init_apply(d, x, None)
  chex.assert_shape(energy, (B,))
  assert bool(jnp.all(energy >= 0))


def test_conditional_batchnorm_scales_per_class():
  cbn = image_models.ConditionalBatchNorm(num_classes=3)
  x = jax.random.normal(jax.random.key(6), (6, 2, 2, 4))
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  variables = cbn.init(jax.random.key(0), x, labels, train=True)
  params = jax.tree.map(lambda p: p, variables['params'])
  params['Embed_0']['embedding'] = params['Embed_0']['embedding'].at[1].set(2.0)  # γ for class 1
  out, _ = cbn.apply({**variables, 'params': params}, x, labels, train=True,
                     mutable=['batch_stats'])
  normalised = (x - x.mean((0, 1, 2))) / jnp.sqrt(x.var((0, 1, 2)) + 1e-5)
  np.testing.assert_allclose(out[labels == 0], normalised[labels == 0], atol=1e-4)
  np.testing.assert_allclose(out[labels == 1], 2 * normalised[labels == 1], atol=1e-4)


def test_bad_conditioning_is_named():
  g = models.GENERATORS['dcgan'](data_shape=(32, 32, 3), conditioning='projection')
  with pytest.raises(ValueError, match="unknown conditioning 'projection'; valid choices: "
                                       'none, concat, cbn'):
    g.init(jax.random.key(0), jnp.zeros((1, 4)), None)


class _PlainGBlock(nn.Module):
  """The ResNet G block as written in the papers, with flax convs: upsample, then conv."""
  features: int

  @nn.compact
  def __call__(self, x, labels, train):
    norm = functools.partial(image_models._GeneratorNorm, 'batch', 0)  # pylint: disable=protected-access
    up = layers.upsample
    h = nn.Conv(self.features, (3, 3), padding='SAME', name='Conv_0')(
        up(nn.relu(norm()(x, labels, train))))
    h = nn.Conv(self.features, (3, 3), padding='SAME', name='Conv_1')(
        nn.relu(norm()(h, labels, train)))
    return h + nn.Dense(self.features)(up(x))


class _PlainDBlock(nn.Module):
  """The ResNet D down block (not the first) as written: shortcut conv1 then average pooling."""
  features: int

  @nn.compact
  def __call__(self, x, train):
    pool = layers.avg_pool
    conv = lambda name: nn.Conv(self.features, (3, 3), padding='SAME', name=name)
    h = pool(conv('Conv_0')(nn.relu(conv('Conv_1')(nn.relu(x)))))  # _DBlock's names
    return h + pool(nn.Dense(self.features)(x))


@pytest.mark.parametrize('block', ['generator', 'discriminator'])
def test_resnet_block_rewrites_equal_the_plain_blocks(block):
  """UpsampleConv, PooledConv and the 1×1 conv moved past upsampling / pooling: same outputs and
  gradients."""
  x = jax.random.normal(jax.random.key(3), (2, 4, 4, 6))
  init = nn.initializers.normal(0.3)
  if block == 'generator':
    fast = image_models._GBlock(5, 'batch', 0, init)  # pylint: disable=protected-access
    plain = _PlainGBlock(5)
    run = lambda m, v, x: m.apply(v, x, None, True, mutable=['batch_stats'])[0]
  else:
    fast = image_models._DBlock(5, True, False, False, init)  # pylint: disable=protected-access
    plain = _PlainDBlock(5)
    run = lambda m, v, x: m.apply(v, x, True)
  variables = _perturbed(fast.init(jax.random.key(4), x, *([None] if block == 'generator' else
                                                              []), True))
  r = jax.random.normal(jax.random.key(5), run(fast, variables, x).shape)

  def derivatives(module, variables, x):
    loss = lambda params, x: jnp.sum(r * jnp.tanh(run(module, {**variables, 'params': params}, x)))
    return run(module, variables, x), jax.grad(loss, (0, 1))(variables['params'], x)

  for a, e in zip(jax.tree.leaves(derivatives(fast, variables, x)),
                  jax.tree.leaves(derivatives(plain, variables, x))):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * max(1.0, float(jnp.max(jnp.abs(e)))))

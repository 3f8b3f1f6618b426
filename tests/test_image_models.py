"""The image architectures' options and parts (their shape contracts per resolution and
conditioning mode are in test_models.py, driven by the registries)."""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import image_models, layers, models
from test_models import _init_apply, _perturbed  # tests/ is on sys.path

B = 4




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


# --- conv_impl: the rewrites and XLA's own convolutions are one network --------------------------

_WITH_IMPL = lambda registry: sorted(k for k, cls in registry.items()
                                     if 'conv_impl' in cls.__dataclass_fields__)


def _close(a, b, what):
  """Each array equal to float32 rounding: ‖a - b‖ ≤ 1e-3 ‖b‖ (summation orders differ; a bias
  gradient sums 512 cancelling terms, which differ by ~2e-4 relative here)."""
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert float(jnp.linalg.norm(x - y)) <= 1e-3 * float(jnp.linalg.norm(y)) + 1e-7, what


# Each entry's smallest image size and narrow widths (16×16 and 8 channels unless listed).
_SIZE = {'biggan': 32}
_WIDTH = {'stylegan2': {'channel_base': 64, 'channel_max': 8}}
_width = lambda name: _WIDTH.get(name, {'channels': 8})


@pytest.mark.parametrize('name', _WITH_IMPL(models.GENERATORS))
def test_generator_conv_impls_agree(name):
  """Same parameters, same outputs and parameter gradients under 'rewrite' and 'xla'."""
  size = _SIZE.get(name, 16)
  make = lambda impl: models.GENERATORS[name](data_shape=(size, size, 3), conv_impl=impl,
                                              **_width(name))
  z = jax.random.normal(jax.random.key(0), (2, 16))
  variables = jax.jit(lambda z: make('rewrite').init(jax.random.key(1), z, None, train=False))(z)

  def loss(params, impl):
    out = make(impl).apply({**variables, 'params': params}, z, None, train=False)
    return jnp.sum(out * jnp.linspace(-1, 1, out.size).reshape(out.shape)), out

  value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
  (_, out_r), grad_r = value_and_grad(variables['params'], 'rewrite')
  (_, out_x), grad_x = value_and_grad(variables['params'], 'xla')
  _close(out_r, out_x, 'outputs')
  _close(grad_r, grad_x, 'gradients')


@pytest.mark.parametrize('name', _WITH_IMPL(models.DISCRIMINATORS))
def test_discriminator_conv_impls_agree_through_the_gradient_penalty(name):
  """D's output, its parameter gradient and the gradient penalty's double backward
  ∇θ E(‖∇x D(x)‖ - 1)² are the same under 'rewrite' and 'xla'."""
  norm = {'norm': 'layer'} if name == 'dcgan' else {}  # no batch statistics in the penalty
  make = lambda impl: models.DISCRIMINATORS[name](conv_impl=impl, **_width(name), **norm)
  size = _SIZE.get(name, 16)
  x = jax.random.uniform(jax.random.key(2), (2, size, size, 3), minval=-1, maxval=1)
  variables = jax.jit(lambda x: make('rewrite').init(jax.random.key(3), x, None, train=False))(x)

  def d(params, impl, inputs):
    return make(impl).apply({**variables, 'params': params}, inputs, None, train=False)

  def penalty(params, impl):
    grads = jax.vmap(jax.grad(lambda xi: d(params, impl, xi[None])[0]))(x)
    return jnp.mean((jnp.sqrt(jnp.sum(grads ** 2, axis=(1, 2, 3)) + 1e-12) - 1) ** 2)

  @functools.partial(jax.jit, static_argnums=1)
  def everything(params, impl):  # one compile per impl (op-by-op autodiff would take minutes)
    return (d(params, impl, x), jax.grad(lambda p: jnp.sum(d(p, impl, x)))(params),
            jax.grad(penalty)(params, impl))

  for a, b, what in zip(everything(variables['params'], 'rewrite'),
                        everything(variables['params'], 'xla'),
                        ('outputs', 'gradients', 'penalty gradients')):
    _close(a, b, what)


def test_auto_conv_impl_resolves_per_backend(monkeypatch):
  assert layers.resolve_impl('auto', 'cpu') == 'rewrite'
  assert layers.resolve_impl('auto', 'gpu') == 'xla' and layers.resolve_impl('auto', 'tpu') == 'xla'
  assert layers.resolve_impl('rewrite', 'gpu') == 'rewrite' and layers.resolve_impl('xla', 'cpu') == 'xla'
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert layers.resolve_impl('auto') == 'xla'
  with pytest.raises(ValueError, match="unknown conv_impl 'cudnn'; valid choices: auto, rewrite, xla"):
    layers.resolve_impl('cudnn')


def test_build_gan_passes_the_resolved_conv_impl(monkeypatch):
  from gan_jax import configs, steps
  c = configs.image_config('mnist5k', 32)
  monkeypatch.setattr(jax, 'default_backend', lambda: 'tpu')
  gan = steps.build_gan(c, (32, 32, 1))
  assert gan.generator.conv_impl == 'xla' and gan.discriminator.conv_impl == 'xla'
  c.model.conv_impl = 'rewrite'
  assert steps.build_gan(c, (32, 32, 1)).generator.conv_impl == 'rewrite'
  c.model.conv_impl = 'winograd'
  with pytest.raises(configs.ConfigError, match=r"config.model.conv_impl: unknown conv_impl "
                                                r"'winograd'"):
    steps.build_gan(c, (32, 32, 1))

"""BigGAN / SAGAN (gan_jax.biggan): self-attention against numpy, hierarchical latents, the
conditional BatchNorm, StudioGAN's parameter counts, output contracts.

Small widths, and XLA's backend optimisation off (`_run`): these graphs are compile-bound on CPU.
"""
import math

import chex
import jax
import numpy as np
import pytest

from gan_jax import biggan

B = 4
RNG = np.random.default_rng(0)
FAST_COMPILE = {'xla_backend_optimization_level': 0}


def _run(fn, *args):
  """jit(fn)(*args), compiled without XLA's backend optimisations (the same values, ~3× less
  compile time for these one-shot calls)."""
  return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def _normal(*shape):
  return RNG.standard_normal(shape).astype(np.float32)


def _init(module, *args):
  """module.init(key 1, *args, train=False), compiled (eager init compiles op by op)."""
  return _run(lambda *a: module.init(jax.random.key(1), *a, train=False), *args)


def _apply(module, variables, *args, train=True, mutable=('batch_stats',)):
  """module.apply(variables, *args, train, mutable): (output, updated collections)."""
  return _run(lambda v, *a: module.apply(v, *a, train=train, mutable=list(mutable)),
              variables, *args)


def _shapes(module, *args):
  """module.init's variables as shapes (nothing compiled)."""
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *args, train=False))


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _np_self_attention(x, wt, wp, wg, wo, gamma):
  """SAGAN's block written out: θ, φ, g 1×1 projections, φ and g 2×2 max-pooled, softmax over
  the pooled positions, o projection, x + γ·o."""
  b, h, w, c = x.shape
  def pool(a):
    return np.stack([np.stack([a[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
                               for j in range(w // 2)], 1) for i in range(h // 2)], 1)
  theta = (x @ wt).reshape(b, h * w, -1)
  phi = pool(x @ wp).reshape(b, h * w // 4, -1)
  g = pool(x @ wg).reshape(b, h * w // 4, -1)
  out = np.empty((b, h * w, wg.shape[1]))
  for n in range(b):
    logits = theta[n] @ phi[n].T
    beta = np.exp(logits - logits.max(1, keepdims=True))
    out[n] = (beta / beta.sum(1, keepdims=True)) @ g[n]
  return x + gamma * out.reshape(b, h, w, -1) @ wo


def test_self_attention_is_the_identity_at_init_and_matches_numpy():
  x = _normal(2, 8, 6, 16)
  block = biggan.SelfAttention(spectral_norm=True)
  variables = _init(block, x)
  params = variables['params']
  assert params['gamma'] == 0
  assert [params[n]['kernel'].shape for n in ('theta', 'phi', 'g', 'o')] == [
      (16, 2), (16, 2), (16, 8), (8, 16)]
  assert all(set(params[n]) == {'kernel'} for n in ('theta', 'phi', 'g', 'o'))  # no biases
  run = jax.jit(lambda v: block.apply(v, x, mutable=['batch_stats']))
  out, _ = run(variables)
  np.testing.assert_array_equal(out, x)  # γ = 0: exactly x
  out, state = run({**variables, 'params': {**params, 'gamma': np.float32(0.7)}})
  stats = state['batch_stats']  # each kernel enters as W / σ(W), σ its power-iteration estimate
  kernel = lambda i, n: (np.asarray(params[n]['kernel'], np.float64)
                        / float(stats[f'SpectralNorm_{i}'][f'{n}/kernel/sigma']))
  want = _np_self_attention(np.asarray(x, np.float64), *(kernel(i, n) for i, n in enumerate(
      ('theta', 'phi', 'g', 'o'))), 0.7)
  assert np.abs(want - np.asarray(x)).max() > 0.1
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_conditional_batchnorm_is_batchnorm_with_gain_and_bias_linear_in_c():
  x = _normal(6, 3, 3, 5) * 2 + 1
  c = _normal(6, 7)
  cbn = biggan.ConditionalBatchNorm(spectral_norm=False)
  variables = _init(cbn, x, c)
  params = variables['params']
  assert set(params) == {'gain', 'bias'} and all(set(p) == {'kernel'} for p in params.values())
  apply = jax.jit(lambda c: cbn.apply(variables, x, c, mutable=['batch_stats'])[0])
  x_hat = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + biggan.BN_EPS)
  np.testing.assert_allclose(apply(np.zeros_like(c)), x_hat, atol=1e-5)  # gain 1, bias 0
  gain = 1 + c @ np.asarray(params['gain']['kernel'])
  bias = c @ np.asarray(params['bias']['kernel'])
  np.testing.assert_allclose(apply(c), x_hat * gain[:, None, None] + bias[:, None, None],
                             rtol=1e-5, atol=1e-5)


def _generator(size=32, **kwargs):
  options = dict(channels=8, shared_dim=4, conditioning='cbn', num_classes=3,
                 attention_resolution=16)
  return biggan.BigGANGenerator((size, size, 3), **{**options, **kwargs})


@pytest.fixture(scope='module')
def generator():
  """A small conditional 32×32 G (3 blocks: z = 4 chunks of 3), SN on, and its variables."""
  g = _generator()
  z = _normal(B, 12)
  labels = np.arange(B, dtype=np.int32) % 3
  return g, _init(g, z, labels)


def test_generator_feeds_each_latent_chunk_to_its_own_block(generator):
  g, variables = generator
  z = _normal(12)
  # Row 0: z; row k + 1: z with chunk k perturbed. Same label: a row equal to row 0 would mean the
  # chunk is unused (BatchNorm maps equal rows of one batch to equal outputs).
  z = np.stack([z] + [z + np.repeat(np.eye(4, dtype=np.float32)[k], 3) for k in range(4)])
  labels = np.ones(5, np.int32)
  out, state = _apply(g, variables, z, labels, mutable=['batch_stats', 'intermediates'])
  chex.assert_shape(out, (5, 32, 32, 3))
  assert np.all(np.abs(out) <= 1)
  shared = np.asarray(variables['params']['shared']['embedding'])[labels]
  for i in range(3):  # block i's CBNs see [shared(y), z chunk i + 1] and nothing else
    (c,) = state['intermediates'][f'block{i}']['conditioning']
    np.testing.assert_array_equal(c, np.concatenate([shared, z[:, 3 * (i + 1):3 * (i + 2)]], 1))
  assert all(not np.allclose(out[k], out[0], atol=1e-6) for k in range(1, 5))  # every chunk used


def test_generator_structure(generator):
  g, variables = generator
  params = variables['params']
  assert set(params) == {'shared', 'linear', 'block0', 'block1', 'block2', 'attention',
                         'bn_out', 'conv_out'}
  assert params['linear']['kernel'].shape == (3, 16 * 32)  # chunk 0 → 4×4×(4·8)
  assert params['attention']['theta']['kernel'].shape == (32, 4)  # after block1
  assert params['block0']['bn1']['gain']['kernel'].shape == (4 + 3, 32)
  assert params['shared']['embedding'].shape == (3, 4)  # not spectral-normed: no u vector
  assert not any('shared' in str(k) for k in jax.tree_util.tree_flatten_with_path(
      variables['batch_stats'])[0])
  assert params['attention']['gamma'] == 0
  # Orthogonal init: a kernel as a (fan-in, out) matrix has orthonormal columns.
  k = np.asarray(params['block1']['conv2']['kernel']).reshape(-1, 32)
  np.testing.assert_allclose(k.T @ k, np.eye(32), atol=1e-5)


def test_unconditional_generator_conditions_its_blocks_on_the_chunks_alone():
  g = _generator(conditioning='none', num_classes=0)
  z = np.zeros((B, 8), np.float32)
  variables = _shapes(g, z, None)
  assert 'shared' not in variables['params']
  assert variables['params']['block0']['bn1']['gain']['kernel'].shape == (2, 32)
  out, state = jax.eval_shape(
      lambda v: g.apply(v, z, None, mutable=['batch_stats', 'intermediates']), variables)
  assert out.shape == (B, 32, 32, 3)
  assert [c.shape for i in range(3) for c in state['intermediates'][f'block{i}']['conditioning']
          ] == [(B, 2)] * 3


def test_generator_options_are_checked():
  labels = np.zeros((1,), np.int32)
  with pytest.raises(ValueError, match=r'z_dim=10 does not split into 4 equal chunks \(3 blocks'):
    _shapes(_generator(), np.zeros((1, 10), np.float32), labels)
  with pytest.raises(ValueError, match='attention_resolution=4 is no block output resolution'):
    _shapes(_generator(attention_resolution=4), np.zeros((1, 12), np.float32), labels)
  with pytest.raises(ValueError, match="G conditioning 'cbn' needs num_classes >= 1"):
    _shapes(_generator(num_classes=0), np.zeros((1, 12), np.float32), labels)
  with pytest.raises(ValueError, match='no architecture for 48×48 images'):
    _shapes(_generator(48), np.zeros((1, 12), np.float32), labels)
  z = np.zeros((1, 12), np.float32)
  assert 'attention' not in _shapes(_generator(attention_resolution=0), z, labels)['params']


@pytest.mark.parametrize('size, z_dim', [(64, 10), (128, 12)])
def test_generator_shapes_at_64_and_128(size, z_dim):
  g = _generator(size, attention_resolution=size // 2)
  z, labels = np.zeros((2, z_dim), np.float32), np.zeros((2,), np.int32)
  variables = _shapes(g, z, labels)
  out = jax.eval_shape(lambda v: g.apply(v, z, labels, train=False), variables)
  assert out.shape == (2, size, size, 3)
  assert variables['params']['attention']['o']['kernel'].shape[-1] == 16  # 2·channels
  assert len([k for k in variables['params'] if k.startswith('block')]) == z_dim // 2 - 1


def test_discriminator_outputs_one_logit_per_class_and_sows_features():
  d = biggan.BigGANDiscriminator(channels=8, conditioning='projection', num_classes=3)
  x = RNG.uniform(-1, 1, (B, 32, 32, 3)).astype(np.float32)
  labels = np.arange(B, dtype=np.int32) % 3
  variables = _init(d, x, labels)
  params = variables['params']
  assert params['attention']['g']['kernel'].shape == (16, 8)  # after block0: 16×16, 16 ch
  assert params['embed']['embedding'].shape == (3, 16)
  assert any('embed' in str(path) for path, _ in  # the projection's embedding is spectral-normed
             jax.tree_util.tree_flatten_with_path(variables['batch_stats'])[0])
  run = jax.vmap(lambda v, x, y: d.apply(v, x, y, mutable=['batch_stats', 'intermediates']),
                 in_axes=(None, None, 0))  # two label sets in one call
  out, state = _run(run, variables, x, np.stack([labels, (labels + 1) % 3]))
  chex.assert_shape(out, (2, B))
  (h,) = state['intermediates']['features']
  chex.assert_shape(h, (2, B, 16))
  np.testing.assert_array_equal(h[0], h[1])
  assert np.all(h >= 0)  # sum pooling of ReLUs
  # Projection: the logits differ by ⟨embed(y) − embed(y'), h⟩, embed = E / σ(E) (spectral norm).
  sigma = float(state['batch_stats']['SpectralNorm_1']['embed/embedding/sigma'][0])
  e = np.asarray(params['embed']['embedding']) / sigma
  want = np.sum((e[labels] - e[(labels + 1) % 3]) * h[0], axis=-1)
  np.testing.assert_allclose(out[0] - out[1], want, rtol=1e-4, atol=1e-4)
  assert np.abs(want).min() > 0


def test_discriminator_unconditional_embedding_and_sizes():
  x = np.zeros((2, 32, 32, 3), np.float32)
  d = biggan.BigGANDiscriminator(channels=8)
  variables = _shapes(d, x, None)
  assert 'embed' not in variables['params']
  out, state = jax.eval_shape(
      lambda v: d.apply(v, x, mutable=['batch_stats', 'intermediates']), variables)
  assert out.shape == (2,) and state['intermediates']['features'][0].shape == (2, 16)
  d = biggan.BigGANDiscriminator(channels=8, embedding=5)
  out = jax.eval_shape(lambda v: d.apply(v, x, train=False), _shapes(d, x, None))
  assert out.shape == (2, 5)
  for size, blocks in ((64, 5), (128, 6)):
    d = biggan.BigGANDiscriminator(channels=8, conditioning='projection', num_classes=3,
                                   attention_resolution=size // 2)
    x, labels = np.zeros((2, size, size, 3), np.float32), np.zeros((2,), np.int32)
    variables = _shapes(d, x, labels)
    out = jax.eval_shape(lambda v: d.apply(v, x, labels, train=False), variables)
    assert out.shape == (2,)
    assert variables['params']['embed']['embedding'].shape == (3, 128)  # 16 × channels
    assert variables['params']['attention']['g']['kernel'].shape == (8, 4)  # after block0
    assert len([k for k in variables['params'] if k.startswith('block')]) == blocks
  with pytest.raises(ValueError, match='attention_resolution=32 is no block output resolution'):
    _shapes(biggan.BigGANDiscriminator(8, attention_resolution=32),
            np.zeros((1, 32, 32, 3), np.float32), None)


# Trainable parameters of StudioGAN's BigGAN (POSTECH-CVLab/PyTorch-StudioGAN at HEAD 947b35e,
# src/models/big_resnet.py): its Generator and Discriminator built with torch 2.14 (CPU) and
# counted as sum(p.numel() for p in m.parameters() if p.requires_grad), so without the spectral
# norm's u/v buffers and BatchNorm's running stats. (size, channels, z_dim, num_classes; 0 =
# 'W/O'): (G, D); shared_dim 128, SN on, attention at H/2, as in the named configs.
STUDIOGAN_PARAMS = {
    (32, 96, 80, 10): (9_416_196, 2_415_170),      # CIFAR10/BigGAN.yaml
    (32, 96, 80, 0): (8_825_092, 2_413_250),       # CIFAR10/BigGAN-Uncond.yaml
    (64, 80, 100, 100): (17_322_404, 30_668_722),  # Baby_ImageNet/BigGAN.yaml
    (128, 80, 120, 200): (49_226_404, 60_290_482),  # CUB200/BigGAN.yaml
    (128, 96, 120, 1000): (70_433_988, 87_982_370),  # ImageNet/BigGAN-256.yaml
}


@pytest.mark.parametrize('setting', list(STUDIOGAN_PARAMS))
def test_parameter_counts_equal_studiogans(setting):
  size, channels, z_dim, num_classes = setting
  g = biggan.BigGANGenerator((size, size, 3), channels, 128, 'cbn' if num_classes else 'none',
                             num_classes, attention_resolution=size // 2)
  d = biggan.BigGANDiscriminator(channels, 'projection' if num_classes else 'none', num_classes,
                                 attention_resolution=size // 2)
  labels = np.zeros((1,), np.int32) if num_classes else None
  g_vars = _shapes(g, np.zeros((1, z_dim), np.float32), labels)
  d_vars = _shapes(d, np.zeros((1, size, size, 3), np.float32), labels)
  assert (_count(g_vars['params']), _count(d_vars['params'])) == STUDIOGAN_PARAMS[setting]
  assert biggan.REFERENCE_PARAMS[setting] == STUDIOGAN_PARAMS[setting]

"""The fast convs equal the reference convs to second order; spectral norm; minibatch statistics."""
import functools
from typing import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import layers

FAST = {'conv': layers.Conv, 'strided': layers.StridedConv, 'up': layers.UpConv}
REFERENCE = {  # the Flax modules each fast layer must equal, with the same parameters
    'conv': lambda f: nn.Conv(f, (3, 3), padding='SAME'),
    'strided': lambda f: nn.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1))),
    'up': lambda f: nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2))),
}
OUT_SIZE = {'conv': lambda n: n, 'strided': lambda n: n // 2, 'up': lambda n: 2 * n}
# B, H, W, C, F: the narrow-channel paths, sizes that are not whole Winograd tiles, and (last)
# UpConv's Winograd path (F >= 16) at an even and an odd size.
SHAPES = [(1, 4, 4, 3, 5), (3, 8, 8, 1, 7), (3, 32, 32, 3, 4), (3, 5, 6, 2, 3), (2, 6, 5, 16, 17)]


def _init(name, shape, seed=0):
  b, h, w, c, f = shape
  kx, kp, kr = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.normal(kx, (b, h, w, c))
  layer = FAST[name](f, kernel_init=nn.initializers.normal(0.3),
                     bias_init=nn.initializers.normal(0.1))
  params = layer.init(kp, x)['params']
  r = jax.random.normal(kr, (b, OUT_SIZE[name](h), OUT_SIZE[name](w), f))
  return x, params, r


@functools.partial(jax.jit, static_argnums=0)
def _derivatives(apply, params, x, r):
  """y, ∇_(x, params) of a critic-like D = Σ r·tanh(y), and ∇_params ‖∇_x D‖² (WGAN-GP)."""
  def critic(x, params):
    return jnp.sum(r * jnp.tanh(apply({'params': params}, x)))

  def penalty(params):
    return jnp.sum(jax.grad(critic)(x, params) ** 2)

  y = apply({'params': params}, x)
  return y, jax.grad(critic, (0, 1))(x, params), jax.grad(penalty)(params)


def _assert_close(actual, expected):
  """|a - e| <= 1e-4 |e| + 1e-5 max|e| per leaf: the double-backprop sums cancel terms ~1e3."""
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5 * max(1.0, float(jnp.max(jnp.abs(e)))))


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('name', sorted(FAST))
def test_fast_equals_reference_to_second_order(name, shape):
  x, params, r = _init(name, shape)
  fast = _derivatives(FAST[name](shape[-1]).apply, params, x, r)
  ref = _derivatives(REFERENCE[name](shape[-1]).apply, params, x, r)
  chex.assert_shape(fast[0], r.shape)
  chex.assert_trees_all_equal_structs(fast, ref)
  _assert_close(fast, ref)


# (B, H, W, C, F, k): each branch of conv_same / conv_weight_grad (native conv and k·k matmuls
# for C, F >= 16; matmul + shifted sum and shifted-g matmul for F < 16; im2col for C < 16).
CONV_PAIR_SHAPES = [(2, 5, 6, 16, 17, 3), (2, 6, 5, 20, 3, 3), (2, 5, 5, 3, 18, 3),
                    (2, 6, 6, 17, 16, 4), (1, 4, 5, 2, 3, 1)]


@pytest.mark.parametrize('shape', CONV_PAIR_SHAPES)
def test_conv_pair_equals_lax_conv_to_second_order(shape):
  """conv_same and its custom VJPs (through conv_weight_grad's) equal lax's conv autodiff."""
  b, h, w, c, f, k = shape
  lo = (k - 1) // 2
  kx, kk, kr = jax.random.split(jax.random.key(1), 3)
  x, kernel = jax.random.normal(kx, (b, h, w, c)), 0.3 * jax.random.normal(kk, (k, k, c, f))
  r = jax.random.normal(kr, (b, h, w, f))
  lax_conv = lambda x, kernel, lo: jax.lax.conv_general_dilated(
      x, kernel, (1, 1), ((lo, k - 1 - lo),) * 2, dimension_numbers=layers.DIMENSION_NUMBERS)

  @functools.partial(jax.jit, static_argnums=0)
  def derivatives(conv, x, kernel):
    critic = lambda x, kernel: jnp.sum(r * jnp.tanh(conv(x, kernel, lo)))
    grad_x_norm = lambda x, kernel: jnp.sum(jax.grad(critic)(x, kernel) ** 2)  # WGAN-GP-like
    grad_k_norm = lambda x, kernel: jnp.sum(jax.grad(critic, 1)(x, kernel) ** 2)
    return (conv(x, kernel, lo), jax.grad(critic, (0, 1))(x, kernel),
            jax.grad(grad_x_norm, (0, 1))(x, kernel), jax.grad(grad_k_norm, (0, 1))(x, kernel))

  _assert_close(derivatives(layers.conv_same, x, kernel), derivatives(lax_conv, x, kernel))


def _pooled(y):
  """2×2 average pooling by hand (an odd last row or column dropped)."""
  b, h, w, f = y.shape
  return y[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, f).mean((2, 4))


# The layers whose fast path is a 4×4 conv with a kernel summed from their 3×3 one: (layer, its
# plain form around a 3×3 'SAME' conv (input map, output map), output size).
SUMMED_KERNEL = {
    'upsample': (layers.UpsampleConv, layers.upsample, lambda y: y, lambda n: 2 * n),
    'pooled': (layers.PooledConv, lambda x: x, _pooled, lambda n: n // 2),
}


@pytest.mark.parametrize('shape', [SHAPES[0], SHAPES[3], SHAPES[4]])
@pytest.mark.parametrize('name', sorted(SUMMED_KERNEL))
def test_summed_kernel_layers_equal_their_plain_form_to_second_order(name, shape):
  layer_cls, before, after, out_size = SUMMED_KERNEL[name]
  b, h, w, c, f = shape
  kx, kp, kr = jax.random.split(jax.random.key(2), 3)
  x = jax.random.normal(kx, (b, h, w, c))
  layer = layer_cls(f, kernel_init=nn.initializers.normal(0.3),
                    bias_init=nn.initializers.normal(0.1))
  params = layer.init(kp, x)['params']
  r = jax.random.normal(kr, (b, out_size(h), out_size(w), f))
  plain = lambda variables, x: after(nn.Conv(f, (3, 3), padding='SAME').apply(variables,
                                                                               before(x)))
  fast = _derivatives(layer.apply, params, x, r)
  chex.assert_shape(fast[0], r.shape)
  _assert_close(fast, _derivatives(plain, params, x, r))
  reference = layer_cls(f, impl='xla').apply({'params': params}, x)
  np.testing.assert_allclose(reference, plain({'params': params}, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name', sorted(FAST))
def test_reference_impl_is_the_flax_module(name):
  x, params, _ = _init(name, SHAPES[-1])
  own = FAST[name](SHAPES[-1][-1], impl='xla').apply({'params': params}, x)
  np.testing.assert_allclose(own, REFERENCE[name](SHAPES[-1][-1]).apply({'params': params}, x),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name', sorted(FAST))
def test_parameters(name):
  x = jnp.ones((2, 8, 8, 3))
  params = FAST[name](5).init(jax.random.key(0), x)['params']
  k = 3 if name == 'conv' else 4
  chex.assert_trees_all_equal_shapes(params, {'kernel': jnp.ones((k, k, 3, 5)),
                                              'bias': jnp.ones(5)})
  assert abs(float(jnp.std(params['kernel'])) - 0.02) < 0.005  # DCGAN init
  assert set(FAST[name](5, use_bias=False).init(jax.random.key(0), x)['params']) == {'kernel'}
  with pytest.raises(ValueError, match='impl'):
    FAST[name](5, impl='direct').init(jax.random.key(0), x)


def _torch_conv_transpose(x, weight):
  """PyTorch ConvTranspose2d(k=4, s=2, p=1) as its scatter: y[2i + k - 1] += x[i] w[k]."""
  b, h, w, _ = x.shape
  y = np.zeros((b, 2 * h + 2, 2 * w + 2, weight.shape[1]))  # uncropped, offset by p = 1
  for i in range(h):
    for j in range(w):
      y[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum('bc,cfkl->bklf', x[:, i, j], weight)
  return y[:, 1:-1, 1:-1]


def _torch_conv(x, weight):
  """PyTorch Conv2d(k=4, s=2, p=1): y[i] = Σ_k x̃[2i + k] w[k], weight (out, in, 4, 4)."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1] // 2, x.shape[2] // 2
  window = lambda i, j: xp[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4]
  return np.stack([np.stack([np.einsum('bklc,fckl->bf', window(i, j), weight) for j in range(w)], 1)
                   for i in range(h)], 1)


def test_pytorch_semantics():
  x, params, _ = _init('up', (2, 3, 4, 2, 3))
  kernel = np.asarray(params['kernel'], np.float64)
  y = layers.UpConv(3, use_bias=False).apply({'params': {'kernel': params['kernel']}}, x)
  torch_weight = kernel[::-1, ::-1].transpose(2, 3, 0, 1)  # (in, out, 4, 4), flipped
  expected = _torch_conv_transpose(np.asarray(x, np.float64), torch_weight)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
  # Flax's transpose_kernel=True layout (PyTorch's, spatially flipped back) with the same padding.
  flax_t = nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            transpose_kernel=True, use_bias=False)
  y_t = flax_t.apply({'params': {'kernel': kernel[::-1, ::-1].swapaxes(2, 3)}}, x)
  np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-5)

  x, params, _ = _init('strided', (2, 6, 4, 2, 3))
  y = layers.StridedConv(3, use_bias=False).apply({'params': {'kernel': params['kernel']}}, x)
  torch_weight = np.asarray(params['kernel']).transpose(3, 2, 0, 1)  # (out, in, 4, 4)
  expected = _torch_conv(np.asarray(x, np.float64), torch_weight)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('features', [3, 17])  # UpConv's col2im and Winograd paths
def test_up_conv_is_the_adjoint_of_strided_conv(features):
  ku, kv, kk = jax.random.split(jax.random.key(0), 3)
  u, v = jax.random.normal(ku, (2, 6, 10, features)), jax.random.normal(kv, (2, 3, 5, 4))
  kernel = jax.random.normal(kk, (4, 4, 4, features))  # UpConv: 4 -> features channels
  up = layers.UpConv(features, use_bias=False).apply({'params': {'kernel': kernel}}, v)
  down = layers.StridedConv(4, use_bias=False).apply(
      {'params': {'kernel': kernel[::-1, ::-1].swapaxes(2, 3)}}, u)
  np.testing.assert_allclose(jnp.vdot(u, up), jnp.vdot(down, v), rtol=1e-5)


class _SpectralNormed(nn.Module):
  make_layer: Callable[[], nn.Module]

  @nn.compact
  def __call__(self, x, train):
    return layers.spectral_norm(self.make_layer())(x, train)


@pytest.mark.parametrize('make_layer, x_shape', [
    (lambda: nn.Dense(8, use_bias=False), (4, 24)),
    (lambda: layers.StridedConv(8), (2, 8, 8, 3)),
    (lambda: layers.UpConv(6), (2, 4, 4, 5)),
])
def test_spectral_norm_sigma_converges_to_largest_singular_value(make_layer, x_shape):
  net = _SpectralNormed(make_layer)
  x = jax.random.normal(jax.random.key(0), x_shape)
  variables = net.init(jax.random.key(1), x, train=False)
  step = jax.jit(lambda v: net.apply(v, x, train=True, mutable=['batch_stats'])[1])
  for _ in range(50):  # one power iteration per call
    variables = {'params': variables['params'], **step(variables)}
  (kernel,) = [v for p, v in jax.tree_util.tree_leaves_with_path(variables['params'])
               if p[-1].key == 'kernel']
  stats = variables['batch_stats']['SpectralNorm_0']
  (sigma,) = [v for k, v in stats.items() if k.endswith('kernel/sigma')]
  expected = np.linalg.svd(np.asarray(kernel).reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  np.testing.assert_allclose(sigma, expected, rtol=1e-3)
  if len(x_shape) == 2:  # the normalised Dense kernel (x = I, no bias) has spectral norm 1
    w_sn = net.apply(variables, jnp.eye(x_shape[1]), train=False)
    np.testing.assert_allclose(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, rtol=1e-3)


def test_spectral_norm_disabled_is_the_plain_layer():
  net = _SpectralNormed(lambda: nn.Dense(3))
  plain = functools.partial(layers.spectral_norm, enabled=False)
  x = jnp.ones((2, 4))

  class Plain(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      return plain(nn.Dense(3))(x, train)

  assert 'batch_stats' in net.init(jax.random.key(0), x, train=False)
  assert set(Plain().init(jax.random.key(0), x, train=False)) == {'params'}


def test_minibatch_stddev_by_hand():
  # One group {1, 3}: biased variance 1, std sqrt(1 + 1e-8).
  out = layers.MinibatchStdDev(group_size=2)(jnp.array([[1.0], [3.0]]))
  np.testing.assert_allclose(out, [[1.0, 1.0], [3.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize('group_size, groups', [(2, 3), (3, 2), (None, 1), (16, 1)])
def test_minibatch_stddev_numpy(group_size, groups):
  x = jax.random.normal(jax.random.key(0), (6, 4, 5, 3))
  out = jax.jit(layers.MinibatchStdDev(group_size=group_size))(x)
  chex.assert_shape(out, (6, 4, 5, 4))
  np.testing.assert_array_equal(out[..., :3], x)
  xn = np.asarray(x, np.float64)
  for n in range(6):  # example n is in group n % groups
    members = xn[n % groups::groups]
    expected = np.mean(np.sqrt(np.var(members, axis=0) + 1e-8))
    np.testing.assert_allclose(out[n, ..., 3], expected, rtol=1e-5)


def test_minibatch_stddev_identical_examples():
  x = jnp.tile(jax.random.normal(jax.random.key(0), (1, 4, 4, 2)), (8, 1, 1, 1))
  np.testing.assert_array_equal(layers.MinibatchStdDev(epsilon=0.0)(x)[..., -1], 0.0)
  np.testing.assert_allclose(layers.MinibatchStdDev()(x)[..., -1], 1e-4, rtol=1e-3)  # sqrt(ε)
  with pytest.raises(ValueError, match='multiple'):
    layers.MinibatchStdDev(group_size=4)(x[:6])


def test_minibatch_discrimination_numpy():
  x = jax.random.normal(jax.random.key(0), (3, 2, 2))  # N = 3, A = 4
  layer = layers.MinibatchDiscrimination(num_kernels=2, kernel_dim=3)
  params = layer.init(jax.random.key(1), x)
  out = jax.jit(layer.apply)(params, x)
  chex.assert_shape(out, (3, 4 + 2))
  f = np.asarray(x, np.float64).reshape(3, 4)
  m = np.einsum('na,abc->nbc', f, np.asarray(params['params']['kernel']))
  o = np.array([[sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(3)) for b in range(2)]
                for i in range(3)])
  np.testing.assert_allclose(out, np.concatenate([f, o], 1), rtol=1e-5)
  no_self = layers.MinibatchDiscrimination(num_kernels=2, kernel_dim=3, include_self=False)
  np.testing.assert_allclose(no_self.apply(params, x)[:, 4:], o - 1, rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_limits():
  layer = layers.MinibatchDiscrimination(num_kernels=4, kernel_dim=2)
  same = jnp.ones((5, 3))
  params = layer.init(jax.random.key(0), same)
  np.testing.assert_allclose(layer.apply(params, same)[:, 3:], 5.0)  # c_b = 1 for all j
  far = 1e3 * jax.random.normal(jax.random.key(1), (5, 3))
  np.testing.assert_allclose(layer.apply(params, far)[:, 3:], 1.0)  # only j = i

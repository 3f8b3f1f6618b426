"""StyleGAN2's parts against direct references: upfirdn2d against numpy resampling, the resampling
convs against numpy and (to second order) against lax, modulated convs against per-example convs,
the path-length penalty against its closed form, style mixing, truncation, equalized lr; the
networks' shapes, finite double backward, and the reference's parameter counts."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs, layers, penalties, sampling, steps
from gan_jax import stylegan2 as sg

# Trainable parameters of stylegan2-ada-pytorch's `cifar` config (train.py: cfg_specs['cifar'],
# fmaps=1 -> channel_base 32768, channel_max 512, map=2, mbstd=32, conv_clamp 256, D architecture
# 'orig'; z_dim = w_dim = 512, c_dim 10, 32×32×3), obtained by instantiating the reference's
# training.networks.Generator / Discriminator with torch (CPU) and summing p.numel() over
# parameters() (buffers — noise_const, w_avg, resample_filter — excluded). RESNET_D: the same D
# with architecture='resnet' (StyleGAN2's default).
CIFAR_G_PARAMS = 20_215_315   # mapping 793,088 + synthesis 19,422,227
CIFAR_D_PARAMS = 23_089_664   # of which the label mapping network 2,106,880
CIFAR_RESNET_D_PARAMS = 23_876_096

CIFAR_G = dict(data_shape=(32, 32, 3), mapping_layers=2, conditioning='mapping', num_classes=10)
CIFAR_D = dict(conditioning='projection', num_classes=10, architecture='orig', mbstd_group=32)
# The same networks unconditional (conditioning 'none': num_classes ignored), from the same run.
UNCONDITIONAL_G_PARAMS, UNCONDITIONAL_D_PARAMS = 19_947_539, 20_720_641
# Tiny networks for real forward and backward passes: channels 8, 8, 4, 2 at 4, 8, 16, 32.
TINY = dict(channel_base=64, channel_max=8)
B = 4
# Keys of XLA's RngBitGenerator: a threefry call site costs XLA:CPU ~1 s to compile (each
# parameter's init is one), these a fraction of it.
key = functools.partial(jax.random.key, impl='rbg')
_normal = lambda seed, shape: jnp.asarray(np.random.default_rng(seed).normal(size=shape),
                                          jnp.float32)


def _count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


# ------------------------------------------------------------------------------------------------
# upfirdn2d


def _np_upfirdn2d(x, f, up, down, padding):
  """The reference's definition, NHWC, per channel: zero insertion, pad (negative: crop), 2-D
  convolution (correlation with the flipped filter, valid part), every down-th sample."""
  f = np.asarray(f, np.float64)
  f = np.outer(f, f) if f.ndim == 1 else f
  px0, px1, py0, py1 = padding
  b, h, w, c = x.shape
  u = np.zeros((b, h * up, w * up, c))
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
  u = u[:, max(-py0, 0):u.shape[1] - max(-py1, 0), max(-px0, 0):u.shape[2] - max(-px1, 0)]
  g = f[::-1, ::-1]
  fh, fw = g.shape
  oh, ow = u.shape[1] - fh + 1, u.shape[2] - fw + 1
  y = np.zeros((b, oh, ow, c))
  for i in range(oh):
    for j in range(ow):
      y[:, i, j] = np.einsum('bpqc,pq->bc', u[:, i:i + fh, j:j + fw], g)
  return y[:, ::down, ::down]


FILTER = sg.setup_filter()                                   # [1, 3, 3, 1] / 8, separable
FILTER_2D = sg.setup_filter(separable=False)                 # its 4×4 outer product
ASYMMETRIC = np.arange(1.0, 13.0).reshape(3, 4) ** 1.5       # a 2-D filter where the flip matters


@pytest.mark.parametrize('f, up, down, padding', [
    (FILTER, 2, 1, (2, 1, 2, 1)),              # upsample2d's
    (FILTER, 1, 2, (1, 1, 1, 1)),              # downsample2d's
    (FILTER_2D, 2, 1, (2, 1, 2, 1)),
    (FILTER_2D, 1, 2, (2, 2, 2, 2)),           # the down conv's
    (ASYMMETRIC, 2, 2, (3, -1, 0, 2)),         # both, asymmetric and negative padding
    (ASYMMETRIC, 1, 1, (1, 2, 3, 0)),
])
def test_upfirdn2d_matches_numpy_resampling(f, up, down, padding):
  x = np.random.default_rng(0).normal(size=(2, 7, 6, 3))
  out = sg.upfirdn2d(jnp.asarray(x, jnp.float32), f, up=up, down=down, padding=padding)
  np.testing.assert_allclose(out, _np_upfirdn2d(x, f, up, down, padding), rtol=1e-5, atol=1e-5)


def test_resampling_keeps_a_constant_image_and_halves_or_doubles_the_size():
  x = jnp.full((1, 8, 8, 2), 3.0)
  up, down = sg.upsample2d(x), sg.downsample2d(x)
  chex.assert_shape(up, (1, 16, 16, 2))
  chex.assert_shape(down, (1, 4, 4, 2))
  np.testing.assert_allclose(up[:, 2:-2, 2:-2], 3.0, rtol=1e-6)  # away from the zero border
  np.testing.assert_allclose(down[:, 1:-1, 1:-1], 3.0, rtol=1e-6)
  np.testing.assert_allclose(FILTER_2D, np.outer(FILTER, FILTER), rtol=1e-6)
  np.testing.assert_allclose(FILTER_2D.sum(), 1.0, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Resampling convs and modulated convs


def _np_up_conv(x, w, f=FILTER):
  """The reference's up conv by its definition: t[2i + k] += x[i] w[k] (stride-2 transposed conv,
  no padding), then the FIR filter ×4 with padding 1."""
  b, h, wd, _ = x.shape
  k = w.shape[0]
  t = np.zeros((b, 2 * h + k - 2, 2 * wd + k - 2, w.shape[3]))
  for i in range(k):
    for j in range(k):
      t[:, i:i + 2 * h:2, j:j + 2 * wd:2] += np.einsum('bhwc,cf->bhwf', x, w[i, j])
  return 4 * _np_upfirdn2d(t, f, 1, 1, (1, 1, 1, 1))


def _np_down_conv(x, w, f=FILTER):
  """The reference's down conv: the filter with padding 2, then the 3×3 correlation, stride 2."""
  z = _np_upfirdn2d(x, f, 1, 1, (2, 2, 2, 2))
  n = (z.shape[1] - 3) // 2 + 1
  y = np.zeros((x.shape[0], n, n, w.shape[3]))
  for i in range(3):
    for j in range(3):
      y += np.einsum('bhwc,cf->bhwf', z[:, i:i + 2 * n - 1:2, j:j + 2 * n - 1:2], w[i, j])
  return y


# (impl, C, F): layers' narrow-channel and Winograd paths, and lax's.
@pytest.mark.parametrize('impl, c, f', [('rewrite', 3, 5), ('rewrite', 16, 17), ('xla', 3, 5)])
def test_resampling_convs_match_numpy(impl, c, f):
  rng = np.random.default_rng(1)
  x, w = rng.normal(size=(2, 6, 6, c)), rng.normal(size=(3, 3, c, f))
  up, down = jax.jit(lambda x, w: (sg.conv2d_resample(x, w, up=2, impl=impl),
                                   sg.conv2d_resample(x, w, down=2, impl=impl)))(
      jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
  np.testing.assert_allclose(up, _np_up_conv(x, w), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(down, _np_down_conv(x, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('up, down', [(2, 1), (1, 2)])  # (1, 1): layers.conv_same's tests
def test_resampling_convs_rewrite_equals_xla_to_second_order(up, down):
  """The fast path's derivatives, incl. a gradient penalty's gradient of a gradient, equal lax's."""
  x, w = _normal(0, (2, 4, 4, 16)), 0.3 * _normal(1, (3, 3, 16, 17))
  size = 4 * up // down
  r = _normal(2, (2, size, size, 17))

  @functools.partial(jax.jit, static_argnums=0)
  def derivatives(impl, x, w):
    critic = lambda x, w: jnp.sum(r * jnp.tanh(sg.conv2d_resample(x, w, up, down, impl=impl)))
    penalty = lambda x, w: jnp.sum(jax.grad(critic)(x, w) ** 2)
    return jax.grad(critic, (0, 1))(x, w), jax.grad(penalty, (0, 1))(x, w)

  fast, ref = derivatives('rewrite', x, w), derivatives('xla', x, w)
  for a, e in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(e))))


def _modulated_kernels(w, s, demodulate=True):
  """The per-example kernels w'_b[..., c, f] = w[..., c, f] s[b, c], divided by their norm per f."""
  wb = w[None] * s[:, None, None, :, None]
  if demodulate:
    wb = wb / np.sqrt(np.sum(wb ** 2, axis=(1, 2, 3), keepdims=True) + 1e-8)
  return wb


@pytest.mark.parametrize('impl, up, c, f', [('rewrite', 1, 5, 7), ('rewrite', 2, 16, 17),
                                           ('rewrite', 2, 5, 7), ('xla', 1, 16, 17)])
def test_modulated_conv_equals_per_example_conv(impl, up, c, f):
  rng = np.random.default_rng(3)
  x, w, s = rng.normal(size=(3, 5, 5, c)), rng.normal(size=(3, 3, c, f)), rng.normal(size=(3, c))
  out = jax.jit(functools.partial(sg.modulated_conv, up=up, impl=impl))(
      *(jnp.asarray(a, jnp.float32) for a in (x, w, s)))
  kernels = _modulated_kernels(w, s)
  for b in range(3):
    if up == 1:
      ref = jax.lax.conv_general_dilated(x[b:b + 1], kernels[b], (1, 1), 'SAME',
                                         dimension_numbers=layers.DIMENSION_NUMBERS)
    else:
      ref = _np_up_conv(x[b:b + 1], kernels[b])
    np.testing.assert_allclose(out[b:b + 1], ref, rtol=1e-4, atol=1e-4)


def test_modulated_1x1_without_demodulation_is_the_modulated_matmul():
  rng = np.random.default_rng(4)
  x, w, s = rng.normal(size=(2, 3, 3, 6)), rng.normal(size=(1, 1, 6, 3)), rng.normal(size=(2, 6))
  out = sg.modulated_conv(*(jnp.asarray(a, jnp.float32) for a in (x, w, s)), demodulate=False)
  ref = np.einsum('bhwc,bcf->bhwf', x, _modulated_kernels(w, s, False)[:, 0, 0])
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_demodulation_makes_each_output_channel_unit_norm():
  w, s = _normal(3, (3, 3, 6, 4)), 3.0 * _normal(4, (5, 6))
  d = jax.jit(sg.demodulation)(w, s)
  effective = w[None] * s[:, None, None, :, None] * d[:, None, None, None, :]  # (B, k, k, C, F)
  np.testing.assert_allclose(jnp.sum(effective ** 2, axis=(1, 2, 3)), 1.0, rtol=1e-5)
  # So the output ignores the scale of the style and of the kernel.
  x = _normal(5, (5, 4, 4, 6))
  conv = jax.jit(sg.modulated_conv)
  np.testing.assert_allclose(conv(x, 7.0 * w, 0.1 * s), conv(x, w, s), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Equalized learning rate


def test_equalized_dense_scales_its_weights_at_run_time():
  fan_in, lr_mul = 256, 0.01
  layer = sg.EqualizedDense(128, lr_mul=lr_mul, bias_init=0.5)
  x = _normal(6, (3, fan_in))
  params = jax.jit(layer.init)(key(7), x)['params']
  kernel, bias = params['kernel'], params['bias']
  # Stored N(0, 1)/lr_mul; used × lr_mul/√fan_in: effective std (1/lr_mul)·lr_mul/√fan_in.
  np.testing.assert_allclose(jnp.std(kernel), 1 / lr_mul, rtol=0.03)
  effective = kernel * lr_mul / math.sqrt(fan_in)
  np.testing.assert_allclose(jnp.std(effective), 1 / math.sqrt(fan_in), rtol=0.03)
  np.testing.assert_allclose(bias, 0.5)  # stored as its initial value, used × lr_mul
  np.testing.assert_allclose(jax.jit(layer.apply)({'params': params}, x),
                             x @ effective + 0.5 * lr_mul, rtol=1e-5, atol=1e-6)
  lrelu = sg.EqualizedDense(128, lr_mul=lr_mul, activation='lrelu')
  y = jax.jit(lrelu.apply)({'params': {'kernel': kernel, 'bias': jnp.zeros(128)}}, x)
  np.testing.assert_allclose(y, math.sqrt(2) * jax.nn.leaky_relu(x @ effective, 0.2), rtol=1e-5,
                             atol=1e-6)


def test_equalized_conv_scales_by_the_fan_in():
  c, k = 32, 3
  layer = sg.EqualizedConv(64, kernel_size=k)
  x = _normal(8, (2, 5, 5, c))
  params = jax.jit(layer.init)(key(9), x)['params']
  np.testing.assert_allclose(jnp.std(params['kernel']), 1.0, rtol=0.03)
  ref = jax.lax.conv_general_dilated(x, params['kernel'] / math.sqrt(c * k * k), (1, 1), 'SAME',
                                     dimension_numbers=layers.DIMENSION_NUMBERS)
  np.testing.assert_allclose(jax.jit(layer.apply)({'params': params}, x), ref, rtol=1e-4,
                             atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Path length


def test_path_length_penalty_of_a_linear_synthesis_is_its_closed_form():
  n, w_dim, h, c = 3, 4, 2, 2
  a, ws, kn = _normal(10, (n, w_dim, h * h * c)), _normal(11, (B, n, w_dim)), key(10)
  synthesis = lambda ws: jnp.einsum('bnw,nwp->bp', ws, a).reshape(-1, h, h, c)
  pl_mean, decay = 0.7, 0.1
  penalty, mean, lengths = jax.jit(lambda ws: sg.path_length_penalty(synthesis, ws, kn, pl_mean,
                                                                     decay))(ws)
  u = np.asarray(jax.random.normal(kn, (B, h, h, c))).reshape(B, -1) / h  # / √(H·W)
  grads = np.einsum('bp,nwp->bnw', u, np.asarray(a))  # J_wᵀu of the linear map
  expected_lengths = np.sqrt(np.mean(np.sum(grads ** 2, axis=2), axis=1))
  expected_mean = pl_mean + decay * (expected_lengths.mean() - pl_mean)
  np.testing.assert_allclose(lengths, expected_lengths, rtol=1e-5)
  np.testing.assert_allclose(mean, expected_mean, rtol=1e-5)
  np.testing.assert_allclose(penalty, np.mean((expected_lengths - expected_mean) ** 2), rtol=1e-4)
  # Differentiable in what the synthesis closes over (here a): a gradient of a gradient.
  grad_a = jax.jit(jax.grad(lambda a: sg.path_length_penalty(
      lambda ws: jnp.einsum('bnw,nwp->bp', ws, a).reshape(-1, h, h, c), ws, kn, pl_mean)[0]))(a)
  assert bool(jnp.all(jnp.isfinite(grad_a))) and float(jnp.max(jnp.abs(grad_a))) > 0


# ------------------------------------------------------------------------------------------------
# Generator: mapping, mixing, truncation, noise


def _tiny_g(size=32, num_classes=0, **kw):
  kw.setdefault('conditioning', 'mapping' if num_classes else 'none')
  return sg.StyleGAN2Generator(data_shape=(size, size, 3), w_dim=8, mapping_layers=2, **TINY,
                               num_classes=num_classes, **kw)


@functools.lru_cache(maxsize=None)
def _tiny_g_variables(size=32, num_classes=0, method='mapping'):
  """The tiny G's variables: all of them, or (method='mapping') the mapping network's only (the
  same for either conv_impl; lax's convs compile faster)."""
  z = jnp.zeros((B, 16))
  labels = jnp.zeros((B,), jnp.int32) if num_classes else None
  init = functools.partial(_tiny_g(size, num_classes=num_classes, conv_impl='xla').init,
                           method=None if method == 'all' else method)
  return jax.jit(init)(key(11), z, labels)


def test_style_mixing_switches_to_the_second_latent_at_the_cutoff():
  g = _tiny_g(mixing_prob=1.0)
  variables = _tiny_g_variables()
  n, batch = g.num_ws, 64
  z = _normal(12, (batch, 16))
  styles = jax.jit(lambda prob, key: _tiny_g(mixing_prob=prob).apply(
      variables, z, train=True, method='styles', rngs={'mixing': key}, mutable=['batch_stats']),
      static_argnums=0)
  ws1 = jax.jit(functools.partial(g.apply, method='mapping'))(variables, z)
  mixed, updates = styles(1.0, key(13))
  chex.assert_shape(mixed, (batch, n, 8))
  cutoffs = []
  for b in range(batch):
    same = np.all(np.isclose(mixed[b], ws1[b]), axis=-1)  # (num_ws,)
    cutoff = int(np.argmin(same))
    assert 1 <= cutoff < n and same[:cutoff].all() and not same[cutoff:].any()
    later = np.asarray(mixed[b, cutoff:])
    np.testing.assert_allclose(later, np.broadcast_to(later[0], later.shape), rtol=1e-6)
    cutoffs.append(cutoff)
  assert set(cutoffs) == set(range(1, n))  # U{1, ..., num_ws - 1}, per example
  # w_avg moves with the first latents' w only (the mixing latents' mapping leaves it alone).
  w_avg = updates['batch_stats']['mapping_network']['w_avg']
  np.testing.assert_allclose(w_avg, 0.005 * ws1[:, 0].mean(0), rtol=1e-5, atol=1e-7)
  # With probability 1/2, about half the examples mix; without training or mixing, no rng needed.
  half = styles(0.5, key(14))[0]
  mixed_fraction = np.mean(np.any(~np.isclose(half, ws1).all(-1), axis=1))
  assert 0.25 < mixed_fraction < 0.75
  without_rngs = jax.jit(lambda prob, train: _tiny_g(mixing_prob=prob).apply(
      variables, z, train=train, method='styles', mutable=['batch_stats'])[0],
      static_argnums=(0, 1))
  np.testing.assert_allclose(without_rngs(1.0, False), ws1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(without_rngs(0.0, True), ws1, rtol=1e-5, atol=1e-6)


def test_truncation_interpolates_toward_w_avg():
  g = _tiny_g(num_classes=3)
  variables = _tiny_g_variables(num_classes=3)
  w_avg = _normal(15, (8,))
  variables = {**variables, 'batch_stats': {'mapping_network': {'w_avg': w_avg}}}
  z, labels = _normal(16, (B, 16)), jnp.array([0, 1, 2, 0])
  mapping = jax.jit(lambda psi, labels=labels: g.apply(variables, z, labels, truncation_psi=psi,
                                                       method='mapping'), static_argnums=0)
  ws = mapping(1.0)
  chex.assert_shape(ws, (B, g.num_ws, 8))
  np.testing.assert_allclose(mapping(0.0), jnp.broadcast_to(w_avg, ws.shape), rtol=1e-6)
  np.testing.assert_allclose(mapping(0.5), 0.5 * (ws + w_avg), rtol=1e-5, atol=1e-6)
  assert not np.allclose(ws[0], ws[3])  # the latents matter (same label)
  ws_labels = mapping(1.0, jnp.array([1, 1, 2, 0]))
  assert not np.allclose(ws[0], ws_labels[0]) and np.allclose(ws[1:], ws_labels[1:])


def test_noise_modes_and_rngs():
  g = _tiny_g(8, num_classes=3)  # the fast convs (the other tests' networks run lax's)
  variables = _tiny_g_variables(8, 3, 'all')
  params = jax.tree.map(lambda x: x, variables['params'])
  for layer in params['synthesis_network'].values():  # noise strengths start at 0: make them 1
    if isinstance(layer, dict) and 'noise_strength' in layer:
      layer['noise_strength'] = jnp.ones(())
  variables = {**variables, 'params': params}
  z, labels = _normal(17, (B, 16)), jnp.array([0, 1, 2, 1])

  @functools.partial(jax.jit, static_argnums=(0, 1))
  def run(noise_mode, train, key=None):
    rngs = None if key is None else {'noise': key}
    return g.apply(variables, z, labels, train=train, noise_mode=noise_mode, rngs=rngs,
                   mutable=['batch_stats'] if train else False)

  const, none = run('const', False), run('none', False)
  # No 'noise' rng and train=False: the fixed buffers.
  np.testing.assert_allclose(run(None, False), const, rtol=1e-5, atol=1e-6)
  r1, r2 = run(None, False, key(1)), run(None, False, key(2))
  assert not np.allclose(r1, r2) and not np.allclose(const, none) and not np.allclose(r1, const)
  # Training draws fresh noise and updates w_avg; without the 'noise' rng it is an error.
  out, updates = run(None, True, key(1))
  np.testing.assert_allclose(out, r1, rtol=1e-5, atol=1e-6)
  assert not np.allclose(updates['batch_stats']['mapping_network']['w_avg'], 0.0)
  with pytest.raises(Exception, match='noise'):
    run(None, True)
  with pytest.raises(ValueError, match="unknown noise_mode 'fixed'"):
    run('fixed', False)


# ------------------------------------------------------------------------------------------------
# Full networks


def test_cifar_parameter_counts_equal_the_reference():
  z, labels, x = jnp.zeros((2, 512)), jnp.zeros((2,), jnp.int32), jnp.zeros((2, 32, 32, 3))
  g = sg.StyleGAN2Generator(**CIFAR_G)
  g_vars = jax.eval_shape(lambda: g.init(key(0), z, labels, train=False))
  assert _count(g_vars['params']) == CIFAR_G_PARAMS
  assert _count(g_vars['params']['mapping_network']) == 793_088
  for arch, expected in (('orig', CIFAR_D_PARAMS), ('resnet', CIFAR_RESNET_D_PARAMS)):
    d = sg.StyleGAN2Discriminator(**{**CIFAR_D, 'architecture': arch})
    d_vars = jax.eval_shape(lambda: d.init(key(0), x, labels))
    assert _count(d_vars['params']) == expected, arch
    assert _count(d_vars['params']['mapping']) == 2_106_880
  unconditional = lambda net: {**net, 'conditioning': 'none'}  # num_classes=10 ignored
  g = sg.StyleGAN2Generator(**unconditional(CIFAR_G))
  assert _count(jax.eval_shape(lambda: g.init(key(0), z, None, train=False))['params']) == (
      UNCONDITIONAL_G_PARAMS)
  d = sg.StyleGAN2Discriminator(**unconditional(CIFAR_D))
  assert _count(jax.eval_shape(lambda: d.init(key(0), x, None))['params']) == (
      UNCONDITIONAL_D_PARAMS)


def test_cifar_output_shapes():
  z, labels = jnp.zeros((B, 512)), jnp.zeros((B,), jnp.int32)
  g, d = sg.StyleGAN2Generator(**CIFAR_G), sg.StyleGAN2Discriminator(**CIFAR_D)
  assert g.num_ws == 8
  g_vars = jax.eval_shape(lambda: g.init(key(0), z, labels, train=False))
  rngs = {'noise': key(1)}
  img = jax.eval_shape(lambda v: g.apply(v, z, labels, rngs=rngs, mutable=['batch_stats'])[0],
                       g_vars)
  img = jnp.zeros(img.shape, img.dtype)
  ws = jax.eval_shape(lambda v: g.apply(v, z, labels, method='mapping'), g_vars)
  assert img.shape == (B, 32, 32, 3) and ws.shape == (B, 8, 512)
  d_vars = jax.eval_shape(lambda: d.init(key(0), img, labels))
  assert jax.eval_shape(lambda v, x: d.apply(v, x, labels), d_vars, img).shape == (B,)


def _tiny_d(num_classes=0, **kw):
  kw.setdefault('conditioning', 'projection' if num_classes else 'none')
  return sg.StyleGAN2Discriminator(mbstd_group=2, mapping_layers=2, **TINY,
                                   num_classes=num_classes, **kw)


def test_tiny_networks_train_finite_with_r1_double_backward():
  size = 8  # every layer kind: G's const, conv, up conv, toRGB skips; D's fromRGB, block, epilogue
  # The 'resnet' D (with the skips) on the fast convs: R1's double backward; G on lax's.
  g, d = _tiny_g(size, num_classes=3, conv_impl='xla'), _tiny_d(num_classes=3)
  g_vars = _tiny_g_variables(size, 3, 'all')
  z = _normal(18, (B, 16))
  labels = jnp.array([0, 1, 2, 1])
  rngs = {'noise': key(19)}
  fake = jnp.tanh(_normal(20, (B, size, size, 3)))
  d_params = jax.jit(_tiny_d(num_classes=3, conv_impl='xla').init)(key(20), fake, labels)['params']
  r = _normal(21, (B, size, size, 3))

  @jax.jit
  def grads(g_params, d_params, real):
    def g_loss(g_params):
      img = g.apply({**g_vars, 'params': g_params}, z, labels, rngs=rngs,
                    mutable=['batch_stats'])[0]
      return jnp.mean(r * img), img

    def r1(d_params):  # R1: a gradient of ∇ₓD, through D only
      return penalties.r1_penalty(lambda x: d.apply({'params': d_params}, x, labels), real)

    g_grads, img = jax.grad(g_loss, has_aux=True)(g_params)
    logits, state = d.apply({'params': d_params}, img, labels, mutable=['intermediates'])
    return (g_grads, img, logits, state['intermediates']), jax.value_and_grad(r1)(d_params)

  (g_grads, img, logits, inter), (r1_value, d_grads) = grads(g_vars['params'], d_params, fake)
  chex.assert_shape(img, (B, size, size, 3))
  chex.assert_shape(logits, (B,))
  chex.assert_shape(inter['features'][0], (B, 8))
  assert float(r1_value) > 0
  for tree in (g_grads, d_grads):
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))
    assert float(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(tree))) > 0


def test_discriminator_embedding_and_errors():
  x = _normal(21, (B, 8, 8, 3))
  d = _tiny_d(embedding=5, architecture='orig', conv_impl='xla')
  out, variables = jax.jit(d.init_with_output)(key(0), x)
  chex.assert_shape(out, (B, 5))
  assert 'b8_skip' not in variables['params'] and 'b8_conv1' in variables['params']
  assert bool(jnp.all(jnp.isfinite(out)))
  with pytest.raises(ValueError, match='embedding=5 does not compose with'):
    _tiny_d(embedding=5, num_classes=3).init(key(0), x, jnp.zeros((B,), jnp.int32))
  with pytest.raises(ValueError, match="unknown architecture 'skip'"):
    _tiny_d(architecture='skip').init(key(0), x)
  with pytest.raises(ValueError, match="unknown conditioning 'concat'"):
    _tiny_d(conditioning='concat').init(key(0), x)
  with pytest.raises(ValueError, match='needs num_classes >= 1'):
    _tiny_d(conditioning='projection').init(key(0), x)
  with pytest.raises(ValueError, match='needs labels'):
    _tiny_d(num_classes=3).init(key(0), x)
  with pytest.raises(ValueError, match='power-of-two size'):
    _tiny_d().init(key(0), jnp.zeros((B, 12, 12, 3)))


def _tiny_gan(**tricks):
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = B
  c.model.update(generator='stylegan2', discriminator='stylegan2', z_dim=8)
  c.model.g = dict(TINY, w_dim=8, mapping_layers=2, mixing_prob=0.9)
  c.model.d = dict(TINY, mbstd_group=2)
  c.penalty.update(name='r1', weight=0.5, every=2)
  c.tricks.path_length.update(tricks)
  gan = steps.build_gan(c, (16, 16, 1))
  return gan, jax.jit(functools.partial(steps.create_state, gan))(jax.random.key(0))


def test_path_length_term_is_lazy_and_its_mean_lives_in_the_state():
  """In the G step: every · the penalty on its iterations (the running mean moved), 0 and the
  mean untouched between them; G's noise is fresh per key in training, fixed in inference."""
  gan, state = _tiny_gan(weight=2.0, every=2, batch_shrink=2)
  assert float(state.aux['pl_mean']) == 0.0
  batch = {'x': _normal(1, (B, 16, 16, 1))}
  g_step = jax.jit(lambda s, k: steps.g_step(gan, s, batch, k))
  on, m_on = g_step(state, jax.random.key(1))
  assert float(m_on['g_path_length']) > 0 and float(on.aux['pl_mean']) > 0
  off, m_off = g_step(on.replace(step=on.step + 1), jax.random.key(2))
  assert float(m_off['g_path_length']) == 0.0
  assert float(off.aux['pl_mean']) == float(on.aux['pl_mean'])
  z = jax.random.normal(jax.random.key(3), (B, 8))
  sample = jax.jit(lambda k: steps.apply_net(gan.generator, state.g.params, state.g.batch_stats,
                                             z, None, True, key=k)[0])
  assert not np.allclose(sample(jax.random.key(4)), sample(jax.random.key(5)))
  generate = jax.jit(lambda z: steps.generate(gan, state.g.params, state.g.batch_stats, z))
  np.testing.assert_array_equal(generate(z), generate(z))


def test_path_length_needs_a_style_generator():
  c = configs.image_config('mnist5k', 16)
  c.tricks.path_length.weight = 2.0
  with pytest.raises(configs.ConfigError, match="path_length.weight=2.0 needs a generator"):
    steps.build_gan(c, (16, 16, 1))


def test_sampling_truncates_a_style_generator_in_w_and_others_in_z():
  """eval.truncation / generate(truncation=ψ) is the family's trick: for StyleGAN2, z untouched
  and w ← w_avg + ψ (w − w_avg) (ψ = 1: the plain sample; ψ → 0: every latent gives the average
  w's image); for a DCGAN G, |z_i| ≤ ψ and G unchanged."""
  gan, state = _tiny_gan()
  assert gan.w_truncation
  w_avg = _normal(20, (8,))
  stats = {**state.g.batch_stats, 'mapping_network': {'w_avg': w_avg}}
  key, indices = jax.random.key(7), jnp.arange(B, dtype=jnp.uint32)
  sample = jax.jit(lambda psi: sampling.sample(gan, state.g.params, stats, key, indices, None,
                                               psi), static_argnums=0)
  z = sampling.latents(key, indices, gan.z_dim)
  g = gan.generator
  by_hand = g.apply({'params': state.g.params, 'batch_stats': stats}, z, None, train=False,
                    method=lambda m, z, y, train: m.synthesis(
                        m.mapping(z, y, 0.5, train=train), train=train))
  np.testing.assert_allclose(sample(0.5), by_hand, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(sample(1.0), sample(None), rtol=1e-6, atol=1e-6)
  assert not np.allclose(sample(0.5), sample(None), atol=1e-3)
  tiny = sample(1e-4)
  assert np.abs(tiny - tiny[:1]).max() < 1e-3 < np.abs(sample(None) - sample(None)[:1]).max()
  # A generator without w: its z truncated, the same G.
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = B
  dcgan = steps.build_gan(c, (16, 16, 1))
  assert not dcgan.w_truncation
  d_state = steps.create_state(dcgan, jax.random.key(0))
  z_psi = sampling.latents(key, indices, dcgan.z_dim, 0.5)
  np.testing.assert_allclose(
      sampling.sample(dcgan, d_state.g.params, d_state.g.batch_stats, key, indices, None, 0.5),
      steps.generate(dcgan, d_state.g.params, d_state.g.batch_stats, z_psi), rtol=1e-6)
  with pytest.raises(ValueError, match='no w space'):
    steps.generate(dcgan, d_state.g.params, d_state.g.batch_stats, z_psi, None, 0.5)

"""pix2pix: U-Net and PatchGAN shapes, receptive fields by gradient support, λ_GAN = 0 equals L1
regression, 8 devices equal 1, paired data (offline and tfds under mock data), the image
statistics in closed form, and the loop end to end with resume."""
import functools
import json
import os

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds
from jax import lax

from gan_jax import configs, layers, logs, paired_data, pix2pix, tasks

# Patch grid sides computed by hand (4×4 convs pad 1: stride 2 gives floor(H/2), stride 1 H - 1):
#   1×1:   the image side.
#   16×16: C64 s2, C128 s1, out s1: 32 -> 16 -> 15 -> 14;  28 -> 14 -> 13 -> 12.
#   70×70: C64, C128, C256 s2, C512 s1, out s1: 32 -> 16 -> 8 -> 4 -> 3 -> 2;
#                                               28 -> 14 -> 7 -> 3 -> 2 -> 1.
GRID = {(32, 1): 32, (32, 16): 14, (32, 70): 2, (28, 1): 28, (28, 16): 12, (28, 70): 1}


def tiny_config(**pix):
  """8×8 inpainting on mnist5k, a 2-level U-Net and a 16×16 PatchGAN (a 2×2 grid) of width 4,
  plain SGD (its update is linear in the gradient, so equal gradients give equal parameters)."""
  c = pix2pix.base_config('mnist5k', 'inpaint', 8)
  c.data.batch_size = 16
  c.model.g.update(channels=4, depth=2, dropout_layers=1)
  c.model.d.update(channels=4, receptive_field=16)
  c.optim.update(g_optimizer='sgd', d_optimizer='sgd', g_lr=0.1, d_lr=0.1)
  c.pix2pix.update(**pix)
  c.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=2)
  c.eval.update(metrics=('fid', 'kid', 'c2st'), features='identity', num_samples=40,
                batch_size=40, num_plot=4)
  return c


@pytest.fixture(scope='module')
def pairs():
  data = paired_data.get('mnist5k', 'inpaint', 'train', image_size=8)
  return data.read(np.arange(32))


# --- networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize('out_channels', [1, 3])
def test_unet_shapes(out_channels):
  unet = pix2pix.UNet(out_channels=out_channels, channels=4, depth=5)
  x = jnp.zeros((2, 32, 32, 1))
  variables = jax.eval_shape(unet.init, jax.random.key(1), x)
  y = jax.eval_shape(lambda v, k: unet.apply(v, x, k, train=True, mutable=['batch_stats'])[0],
                     variables, jax.random.key(2))
  chex.assert_shape(y, (2, 32, 32, out_channels))
  # The encoder widths: channels·min(2^i, 8) (C64-C128-C256-C512-C512 at channels=64).
  widths = [variables['params'][f'StridedConv_{i}']['kernel'].shape[-1] for i in range(5)]
  assert widths == [4, 8, 16, 32, 32]
  with pytest.raises(ValueError, match='multiples of 2'):
    jax.eval_shape(unet.init, jax.random.key(1), jnp.zeros((1, 28, 28, 1)))


def test_unet_dropout_is_the_noise():
  unet = pix2pix.UNet(out_channels=1, channels=4, depth=2)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))

  @jax.jit
  def outputs():  # one compilation: training with keys 2 and 3, inference with keys 2 and 3
    variables = unet.init(jax.random.key(1), x)
    train = lambda k: unet.apply(variables, x, jax.random.key(k), train=True,
                                 mutable=['batch_stats'])[0]
    return [f(k) for f in (train, lambda k: unet.apply(variables, x, jax.random.key(k)))
            for k in (2, 3)]

  train_2, train_3, infer_2, infer_3 = outputs()
  assert 0 < float(jnp.max(jnp.abs(train_2))) <= 1.0  # tanh
  assert float(jnp.max(jnp.abs(train_2 - train_3))) > 1e-4  # dropout masks differ by key
  chex.assert_trees_all_equal(infer_2, infer_3)  # inference ignores the key


@pytest.mark.parametrize('size,rf', sorted(GRID))
def test_patchgan_grid_size(size, rf):
  d = pix2pix.PatchGAN(receptive_field=rf, channels=4)
  x = jnp.zeros((2, size, size, 2))
  out = jax.eval_shape(lambda x: d.init_with_output(jax.random.key(0), x)[0], x)
  assert out.shape == (2, GRID[size, rf], GRID[size, rf])
  assert pix2pix.patch_grid_size(size, rf) == GRID[size, rf]


def test_receptive_field_formula():
  assert [pix2pix.receptive_field(n) for n in range(1, 6)] == [16, 34, 70, 142, 286]
  assert all(pix2pix.receptive_field(n) == rf for rf, n in pix2pix.RECEPTIVE_FIELDS.items() if n)


@pytest.mark.parametrize('rf', [1, 16, 70])
def test_patchgan_receptive_field_by_gradient(rf):
  """The support of ∂(one central logit)/∂(input) is an rf×rf square (80×80 input: 70 fits)."""
  d = pix2pix.PatchGAN(receptive_field=rf, channels=4)
  x = jax.random.normal(jax.random.key(0), (1, 80, 80, 2))
  variables = jax.jit(d.init)(jax.random.key(1), x)
  g = pix2pix.patch_grid_size(80, rf)
  grad = jax.jit(jax.grad(lambda x: d.apply(variables, x)[0, g // 2, g // 2]))(x)
  support = np.asarray(jnp.any(grad[0] != 0, axis=-1))
  rows, cols = np.flatnonzero(support.any(1)), np.flatnonzero(support.any(0))
  assert rows[-1] - rows[0] + 1 == rf and cols[-1] - cols[0] + 1 == rf
  assert support.sum() == rf * rf  # every pixel of the square, nothing outside it
  assert 0 < rows[0] and rows[-1] < 79  # not clipped by the border


def test_stride1_conv_is_pytorch_padding_1():
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  module = layers.Conv(5, kernel_size=4)
  params = module.init(jax.random.key(1), x)
  kernel, bias = params['params']['kernel'], params['params']['bias']
  ours = nn_apply(lambda x: pix2pix.networks._conv4_pad1(5)(x), params, x)
  ref = lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + bias
  chex.assert_shape(ours, (2, 8, 8, 5))
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def nn_apply(fn, params, x):
  """Applies `fn` (which builds Flax layers) as a module with `params`."""

  class Wrapper(nn.Module):
    @nn.compact
    def __call__(self, x):
      return fn(x)

  return Wrapper().apply({'params': {'Conv_0': params['params']}}, x)


# --- the steps ---------------------------------------------------------------------------------


def _spec_and_state(config, pairs):
  spec = pix2pix.build(config, pairs['input'].shape[1:], pairs['target'].shape[1:])
  return spec, pix2pix.create_state(spec, jax.random.key(0))


def _l1_regression(config, state, batches, loop_key, steps):
  """Plain L1 regression, written independently: SGD on λ_L1·mean|G(x) - y| with G's dropout
  key of each iteration (pix2pix.step_keys) and its BatchNorm statistics carried along."""
  unet = pix2pix.UNet(out_channels=1, **config.model.g)
  tx = optax.sgd(config.optim.g_lr)
  params, stats = state.g.params, state.g.batch_stats
  opt_state = tx.init(params)

  @jax.jit
  def step(params, stats, opt_state, x, y, key):
    def loss(p):
      out, new = unet.apply({'params': p, 'batch_stats': stats}, x, key, train=True,
                            mutable=['batch_stats'])
      return config.pix2pix.lambda_l1 * jnp.mean(jnp.abs(out - y)), new['batch_stats']
    grads, stats = jax.grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state

  for s in range(steps):
    params, stats, opt_state = step(params, stats, opt_state, batches['input'][s],
                                    batches['target'][s], pix2pix.step_keys(loop_key, s)[0])
  return params, stats


@pytest.mark.parametrize('lambda_gan', [0.0, 1.0])
def test_lambda_zero_equals_l1_regression(pairs, lambda_gan):
  config = tiny_config(lambda_gan=lambda_gan)
  spec, state0 = _spec_and_state(config, pairs)
  batches = {k: pairs[k].reshape((2, 16) + pairs[k].shape[1:]) for k in ('input', 'target')}
  loop_key = jax.random.key(7)
  call = jax.jit(functools.partial(pix2pix.train_call, spec, num_steps=2))
  state, metrics = call(jax.tree.map(jnp.copy, state0), loop_key, batches)
  params, stats = _l1_regression(config, state0, batches, loop_key, 2)
  chex.assert_tree_all_finite(metrics)
  if lambda_gan == 0:
    chex.assert_trees_all_close(state.g.params, params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state.g.batch_stats, stats, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(state.d, state0.d)  # D is not trained
    assert all(float(jnp.max(jnp.abs(metrics[k]))) == 0 for k in pix2pix.D_METRICS)
    np.testing.assert_allclose(metrics['g_loss'], 100 * metrics['g_l1'], rtol=1e-6)
  else:  # the GAN term moves G away from the regression (so the equality above can fail)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(state.g.params), jax.tree.leaves(params)))
    assert diff > 1e-4
    assert float(jnp.max(jnp.abs(state.d.params['Conv_0']['kernel'] -
                                 state0.d.params['Conv_0']['kernel']))) > 0
    np.testing.assert_allclose(metrics['g_loss'], metrics['g_gan'] + 100 * metrics['g_l1'],
                               rtol=1e-5)


def test_one_iteration_on_eight_devices_equals_one(pairs):
  config = tiny_config()
  one = pix2pix.Pix2PixExperiment(config, jax.devices()[:1])
  eight = pix2pix.Pix2PixExperiment(config, jax.devices())
  assert eight.mesh.size == 8
  results = []
  for exp in (one, eight):
    state, metrics = exp.train_fn(1)(exp.init_state(), exp.loop_key, exp.batch_stream(0)(1))
    results.append(jax.device_get((state, metrics)))
  chex.assert_trees_all_close(results[0], results[1], rtol=1e-4, atol=1e-6)
  assert int(results[1][0].step) == 1 and float(results[1][1]['d_loss'][0]) > 0


# --- data ----------------------------------------------------------------------------------


def test_inpaint_pairs(pairs):
  x, y = pairs['input'], pairs['target']
  chex.assert_shape([x, y], [(32, 8, 8, 1)] * 2)
  np.testing.assert_array_equal(x[:, :4], y[:, :4])            # the visible top half
  np.testing.assert_array_equal(x[:, 4:], np.zeros_like(x[:, 4:]))  # the hole is mid-grey
  assert y[:, 4:].min() == -1.0 and y[:, 4:].max() > 0.5          # digits reach the bottom half
  right = paired_data.inpaint_input(y, 'right')
  np.testing.assert_array_equal(right[:, :, 4:], 0 * right[:, :, 4:])
  np.testing.assert_array_equal(right[:, :, :4], y[:, :, :4])


def test_colorize_pairs_and_stream_resume():
  data = paired_data.get('stacked_mnist', 'colorize', 'test', image_size=32, num_examples=64)
  assert data.input_shape == (32, 32, 1) and data.target_shape == (32, 32, 3)
  batch = data.read(np.arange(8))
  rgb = batch['target']
  np.testing.assert_allclose(batch['input'][..., 0],
                             0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2],
                             rtol=1e-6, atol=1e-6)
  assert rgb.min() == -1.0 and batch['input'].max() <= 1.0
  stream = data.batches(8, seed=3, prefetch=0)
  third = [next(stream) for _ in range(3)][2]
  resumed = next(data.batches(8, seed=3, start_step=2, prefetch=0))
  chex.assert_trees_all_equal(third, resumed)


def test_bad_data_options_are_config_errors():
  c = tiny_config()
  c.data.pairs = 'outpaint'
  with pytest.raises(configs.ConfigError, match='data.pairs.*colorize, inpaint, native'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.data.pairs = 'colorize'  # mnist5k is grey
  with pytest.raises(configs.ConfigError, match='colorize needs RGB'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.data.mask = 'diagonal'
  with pytest.raises(configs.ConfigError, match='mask.*bottom, top, left, right'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.model.d.receptive_field = 40
  with pytest.raises(configs.ConfigError,
                     match=r'config\.model.*receptive_field 40.*1, 16, 34, 70'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.optim.n_critic = 5
  with pytest.raises(configs.ConfigError, match='n_critic'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.eval.metrics = ('modes',)
  with pytest.raises(configs.ConfigError, match='eval.metrics.*c2st, fid, kid'):
    pix2pix.Pix2PixExperiment(c)
  c = tiny_config()
  c.optim.ema_standing_stats = 10
  with pytest.raises(configs.ConfigError, match=r'optim.ema_standing_stats=10: pix2pix keeps'):
    pix2pix.Pix2PixExperiment(c)
  setters = {'pack': lambda t: t.update(pack=2),
             'label_smoothing': lambda t: t.update(label_smoothing=0.9),
             'instance_noise.std': lambda t: t.instance_noise.update(std=0.1),
             'top_k.enabled': lambda t: t.top_k.update(enabled=True),
             'consistency.bcr_real': lambda t: t.consistency.update(bcr_real=1.0)}
  for field, set_trick in setters.items():  # the GAN tricks are refused by name, not ignored
    c = tiny_config()
    set_trick(c.tricks)
    with pytest.raises(configs.ConfigError, match=rf'^config\.tricks\.{field}: pix2pix uses '
                                                  'none of the GAN tricks'):
      pix2pix.Pix2PixExperiment(c)


def test_tfds_pairs_under_mock_data():
  """Derived pairs of a tfds dataset (cifar10 colourised) and native pairs (two image features)."""
  with tfds.testing.mock_data(num_examples=8):
    data = paired_data.get('cifar10', 'colorize', 'train', image_size=32)
    batch = data.read(np.arange(4))
    chex.assert_shape([batch['input'], batch['target']], [(4, 32, 32, 1), (4, 32, 32, 3)])
    native = paired_data.get('cityscapes', 'native', 'train', input_key='segmentation_label',
                             target_key='image_left', image_size=32)
    assert native.input_shape == (32, 32, 1) and native.target_shape == (32, 32, 3)
    batch = native.read(np.arange(2))
    chex.assert_shape([batch['input'], batch['target']], [(2, 32, 32, 1), (2, 32, 32, 3)])
    assert -1.0 <= batch['target'].min() and batch['target'].max() <= 1.0
    with pytest.raises(ValueError, match="no feature 'photo'"):
      paired_data.get('cityscapes', 'native', 'train', input_key='segmentation_label',
                      target_key='photo')


# --- image statistics ------------------------------------------------------------------------


def test_image_statistics_closed_form():
  y = -jnp.ones((2, 8, 10, 1))
  x = y + 0.5  # |difference| 0.5 on [-1, 1] = 0.25 on [0, 1]
  np.testing.assert_allclose(pix2pix.l1_error(x, y), [0.5, 0.5])
  np.testing.assert_allclose(pix2pix.psnr(x, y), [10 * np.log10(1 / 0.25 ** 2)] * 2, rtol=1e-6)
  def columns(values):  # (1, 8, 10, 1) images whose every row is `values` on the [0, 1] scale
    return jnp.broadcast_to(2 * jnp.asarray(values, jnp.float32)[:, None] - 1, (1, 8, 10, 1))

  sharpness = lambda values: pix2pix.mean_gradient_magnitude(columns(values))
  # A vertical edge 0 -> 1: ∂x = 1 at one of the 9 differenced columns, ∂y = 0.
  np.testing.assert_allclose(sharpness([0] * 5 + [1] * 5), [1 / 9], rtol=1e-6)
  # Blur keeps a monotone edge's total rise (0, 1/2, 1: the same 1/9) but lowers a thin line's
  # peak: a 1-px line 0-1-0 rises and falls by 1 (2/9); spread over 2 px at 1/2, by 1/2 (1/9).
  np.testing.assert_allclose(sharpness([0] * 5 + [0.5] + [1] * 4), [1 / 9], rtol=1e-6)
  np.testing.assert_allclose(sharpness([0] * 5 + [1] + [0] * 4), [2 / 9], rtol=1e-6)
  np.testing.assert_allclose(sharpness([0] * 4 + [0.5] * 2 + [0] * 4), [1 / 9], rtol=1e-6)
  diagonal = jnp.zeros((1, 3, 3, 1)).at[0, 0, 0, 0].set(1.0)  # ∂x = ∂y = -1/2 at one of 4 pixels
  np.testing.assert_allclose(pix2pix.mean_gradient_magnitude(diagonal), [np.sqrt(0.5) / 4],
                             rtol=1e-6)


# --- the loop --------------------------------------------------------------------------------


def test_loop_end_to_end_with_resume(tmp_path):
  config = tiny_config()
  result = tasks.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1],
                                    log=lambda m: None)
  assert result['train']['step'] == 4
  (record,) = result['eval']
  for name in ('l1', 'psnr', 'sharpness_output', 'sharpness_target', 'fid', 'kid',
               'c2st_accuracy'):
    assert np.isfinite(record[name]), name
  assert record['protocol']['num_samples'] == 40 and record['protocol']['split'] == 'test'
  assert 0 < record['l1'] < 2 and record['sharpness_target'] > 0
  assert os.path.exists(tmp_path / 'samples' / 'step_0000004.png')
  config.train.steps = 6
  result = tasks.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1],
                                    log=lambda m: None)
  assert result['train']['step'] == 6
  steps = [r['step'] for r in logs.read_metrics(str(tmp_path)) if r['split'] == 'train']
  assert steps == [2, 4, 6]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4', '6']
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['task'] == 'pix2pix'


@pytest.mark.parametrize('net', ['unet', 'patchgan'])
def test_conv_impls_agree(net):
  """config.model.conv_impl: the rewrites and XLA's convolutions give pix2pix's networks the
  same outputs and parameter gradients on the same parameters."""
  from gan_jax.pix2pix import networks
  from test_image_models import _close  # tests/ is on sys.path
  make = {'unet': lambda impl: networks.UNet(3, channels=8, depth=3, conv_impl=impl),
          'patchgan': lambda impl: networks.PatchGAN(16, channels=8, conv_impl=impl)}[net]
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  variables = make('rewrite').init(jax.random.key(1), x)

  @functools.partial(jax.jit, static_argnums=1)
  def out_and_grad(params, impl):
    f = lambda p: make(impl).apply({**variables, 'params': p}, x)
    return f(params), jax.grad(lambda p: jnp.sum(f(p) * jnp.cos(f(p))))(params)

  for a, b in zip(out_and_grad(variables['params'], 'rewrite'),
                  out_and_grad(variables['params'], 'xla')):
    _close(a, b, net)

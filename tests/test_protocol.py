"""The evaluation protocol: quantisation, the three resizes against PIL and NumPy references, the
input scalings, the presets and their stamps, IS's variants and KID's seed by hand."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax import configs, evaluation
from gan_jax.metrics import inception_score, kernel_inception_distance
from gan_jax.metrics import protocol as P


def _resize(x, size, method):
  return np.asarray(P.resize(jnp.asarray(x, jnp.float32)[None, :, :, None], size, method))[0, ..., 0]


def test_quantize_is_the_uint8_a_png_holds():
  x = np.array([-1.5, -1, -0.99, -1 + 0.7 / 127.5, 0, 0.5, 1 - 1e-7, 1, 2], np.float32)
  expected = np.clip(np.floor((x.astype(np.float64) + 1) * 127.5 + 0.5), 0, 255)
  np.testing.assert_array_equal(np.asarray(P.quantize(x)), expected)
  # A uint8 image mapped to [-1, 1] quantizes back to itself.
  u = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(np.asarray(P.quantize(u / 127.5 - 1)), u)
  np.testing.assert_allclose(np.asarray(P.to_pixels(x, False)), (x + 1) * 127.5, rtol=1e-6)


def _bilinear_reference(img, out, half_pixel):
  """A direct loop: each output pixel from its two nearest input pixels per axis."""
  h, w = img.shape
  result = np.zeros(out)
  for i in range(out[0]):
    for j in range(out[1]):
      value = 0.0
      if half_pixel:  # F.interpolate(align_corners=False): source clamped at 0
        sy, sx = max((i + 0.5) * h / out[0] - 0.5, 0), max((j + 0.5) * w / out[1] - 0.5, 0)
      else:  # TF1 ResizeBilinear(align_corners=False)
        sy, sx = i * h / out[0], j * w / out[1]
      y0, x0 = min(int(math.floor(sy)), h - 1), min(int(math.floor(sx)), w - 1)
      y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
      fy, fx = sy - y0, sx - x0
      value = ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x1]) +
               fy * ((1 - fx) * img[y1, x0] + fx * img[y1, x1]))
      result[i, j] = value
  return result


@pytest.mark.parametrize('shape,out', [((5, 7), (12, 9)), ((13, 11), (4, 6)), ((6, 6), (6, 6))])
@pytest.mark.parametrize('method', ['pytorch_fid', 'tf'])
def test_bilinear_resizes_equal_a_direct_loop(shape, out, method):
  img = np.random.default_rng(0).uniform(0, 255, shape)
  np.testing.assert_allclose(_resize(img, out, method),
                             _bilinear_reference(img, out, method == 'pytorch_fid'), atol=2e-4)


def test_pytorch_fid_resize_is_jax_image_resize_bilinear():
  """pytorch-fid's resize is jax.image.resize's bilinear without antialias (whose float32
  weights err by ~5e-4 of 255 here; ours, from float64 weights, by ~4e-5: the loop test)."""
  x = np.random.default_rng(1).uniform(0, 255, (2, 32, 20, 3)).astype(np.float32)
  for size in ((299, 299), (11, 7)):
    ref = jax.image.resize(x, (2, *size, 3), 'bilinear', antialias=False)
    np.testing.assert_allclose(np.asarray(P.resize(x, size, 'pytorch_fid')), ref, atol=1e-3)


@pytest.mark.parametrize('shape', [(32, 32), (28, 28), (600, 450), (7, 300), (299, 299)])
def test_clean_resize_equals_pil_bicubic_on_floats(shape):
  """clean-fid's resize: PIL mode 'F' bicubic to 299 × 299, clipped to [0, 255]."""
  img = np.random.default_rng(2).integers(0, 256, shape).astype(np.float32)
  ref = np.asarray(Image.fromarray(img, mode='F').resize((299, 299), Image.BICUBIC)).clip(0, 255)
  np.testing.assert_allclose(_resize(img, (299, 299), 'clean'), ref, atol=1e-4)  # of 255


def test_resize_rows_sum_to_one_and_the_methods_differ():
  for method in P.RESIZES:
    for n_in, n_out in ((32, 299), (500, 299), (3, 3)):
      np.testing.assert_allclose(P.resize_matrix(n_in, n_out, method).sum(1), 1, atol=1e-12)
  img = np.random.default_rng(3).uniform(0, 255, (32, 32))
  outs = [_resize(img, (299, 299), m) for m in P.RESIZES]
  assert min(np.abs(a - b).max() for i, a in enumerate(outs) for b in outs[i + 1:]) > 1
  with pytest.raises(ValueError, match="resize method 'nearest'"):
    P.resize_matrix(4, 8, 'nearest')


def test_input_scales():
  p = np.array([0, 127.5, 128, 255], np.float32)
  np.testing.assert_allclose(np.asarray(P.scale(p, 'pytorch_fid')), 2 * p / 255 - 1, atol=1e-7)
  np.testing.assert_allclose(np.asarray(P.scale(p, 'tf')), (p - 128) / 128, atol=1e-7)
  with pytest.raises(ValueError, match="input scaling 'imagenet'"):
    P.scale(p, 'imagenet')


# --- presets ------------------------------------------------------------------------------------


def _eval(**fields):
  e = configs.toy_config().eval
  e.update(fields)
  return e


def test_presets_and_overrides():
  assert evaluation.protocol_settings(_eval()) == dict(evaluation.PROTOCOLS['pytorch_fid'],
                                                       protocol='pytorch_fid')
  for name, preset in evaluation.PROTOCOLS.items():
    assert evaluation.protocol_settings(_eval(protocol=name)) == dict(preset, protocol=name)
  tf = evaluation.protocol_settings(_eval(protocol='torch_fidelity'))
  assert (tf['resize'], tf['input_scale'], tf['metric_seed'], tf['is_shuffle']) == \
      ('tf', 'tf', 2020, True)
  clean = evaluation.protocol_settings(_eval(protocol='clean_fid'))
  assert (clean['resize'], clean['input_scale']) == ('clean', 'tf')
  changed = evaluation.protocol_settings(_eval(protocol='clean_fid', quantize=False,
                                               resize='clean'))
  assert changed['quantize'] is False and changed['protocol'] == 'clean_fid (with quantize changed)'
  with pytest.raises(configs.ConfigError, match=r"config.eval.protocol='clean' is not known; "
                                                r'valid choices: clean_fid, pytorch_fid'):
    evaluation.protocol_settings(_eval(protocol='clean'))
  with pytest.raises(configs.ConfigError, match=r"config.eval.resize='bicubic' is not known; "
                                                r'valid choices: pytorch_fid, tf, clean'):
    evaluation.protocol_settings(_eval(resize='bicubic'))
  with pytest.raises(configs.ConfigError, match=r"config.eval.is_logits='raw'"):
    evaluation.protocol_settings(_eval(is_logits='raw'))


def test_every_preset_is_stamped_in_the_record():
  """The stamp names the preset and what it sets (KID's seed, IS's shuffle)."""
  for name, preset in evaluation.PROTOCOLS.items():
    counts = {'n': 100, 'n_real': 100, 'pair': 100, 'seed': preset['metric_seed'],
              'shuffle': preset['is_shuffle'], 'is_logits': preset['is_logits']}
    stamp = evaluation.stamp(('fid', 'kid', 'inception_score'), {'protocol': name}, counts)
    assert stamp['protocol'] == name
    assert f'RandomState({preset["metric_seed"]})' in stamp['kid']
    assert ('permutation' in stamp['inception_score']) == preset['is_shuffle']
    assert 'unbiased logits' in stamp['inception_score']


# --- IS and KID options -------------------------------------------------------------------------


def _is_by_hand(probs, splits):
  scores = []
  for part in np.array_split(probs, splits):  # equal chunks here (n divisible by splits)
    marginal = part.mean(0)
    scores.append(math.exp(np.mean([sum(p * math.log(p / q) for p, q in zip(row, marginal)
                                        if p > 0) for row in part])))
  return np.mean(scores), np.std(scores)


def test_inception_score_shuffle_and_unbiased_logits_by_hand():
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(40, 6)) * 3
  bias = rng.normal(size=6)
  softmax = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
  probs = softmax(logits)
  np.testing.assert_allclose(inception_score(probs, 4), _is_by_hand(probs, 4), rtol=1e-12)
  shuffled = probs[np.random.RandomState(2020).permutation(40)]
  np.testing.assert_allclose(inception_score(probs, 4, shuffle_seed=2020),
                             _is_by_hand(shuffled, 4), rtol=1e-12)
  assert inception_score(probs, 4, shuffle_seed=2020) != inception_score(probs, 4)
  # The biased and unbiased logits give different scores (the bias shifts every p(y|x)).
  assert abs(inception_score(softmax(logits + bias * 5), 4)[0] - inception_score(probs, 4)[0]) > 1e-3


def test_kid_seed_draws_the_subsets():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) + 0.3
  m, seed = 20, 2020
  draws = np.random.RandomState(seed)
  by_hand = []
  for _ in range(5):
    x, y = a[draws.choice(50, m, replace=False)], b[draws.choice(60, m, replace=False)]
    k = lambda u, v: (u @ v.T / 4 + 1) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    by_hand.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                   - 2 * kxy.mean())
  kid, std = kernel_inception_distance(a, b, 5, m, seed=seed)
  np.testing.assert_allclose([kid, std], [np.mean(by_hand), np.std(by_hand)], rtol=1e-10)
  assert kernel_inception_distance(a, b, 5, m, seed=0)[0] != kid

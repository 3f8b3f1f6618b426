"""Evaluation in the loop (gan_jax/evaluation.py): metrics from fixed-noise, sharded generation,
real statistics cached once, the protocol in every record, clear errors for bad combinations."""
import math
import os
import urllib.error
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs, evaluation, gan, sharding, toy_data
from gan_jax.metrics import digit_classifier as dc
from gan_jax.metrics import frechet_distance, inception
from gan_jax.metrics.protocol import quantize

TOY_METRICS = ('modes', 'fid', 'kid', 'precision_recall', 'density_coverage', 'mmd', 'c2st')


def draw(sampler, key, indices):
  """Sample j of `sampler(key, n)` drawn alone from fold_in(key, j), as the eval's generators."""
  return jax.vmap(lambda j: sampler(jax.random.fold_in(key, j), 1)[0])(indices)


def toy_evaluator(sampler, metrics=TOY_METRICS, **eval_fields):
  """An Evaluator of the ring whose 'generator' is `sampler(key, n)` (params are ignored)."""
  config = configs.toy_config()
  config.eval.metrics = metrics
  config.eval.update(eval_fields)
  config.eval.batch_size = 500
  data = toy_data.get('ring')
  mesh = sharding.make_mesh(jax.devices()[:1])
  generate = jax.jit(lambda params, stats, key, indices, labels: draw(sampler, key, indices))
  return evaluation.Evaluator(config, data, None, generate, 0, sharding.batch_sharded(mesh),
                              jax.random.key(0), log=lambda m: None)


def test_perfect_and_collapsed_samplers_on_the_ring():
  data = toy_data.get('ring')
  perfect, protocol = toy_evaluator(data.sample)(None, None, 1000)
  assert perfect['modes'] == 8 and perfect['reverse_kl'] < 0.01
  assert perfect['hq_fraction'] == pytest.approx(0.989, abs=0.01)  # P(chi_2 < 3²) = 1 - e^-4.5
  # Sampling noise alone: E|μ̂₁ - μ̂₂|² = 2 tr(Σ)/n ≈ 0.008 for the ring (tr Σ ≈ 4), n = 1000.
  assert perfect['fid'] < 0.03
  assert perfect['precision'] > 0.9 and perfect['recall'] > 0.9
  assert perfect['c2st_p_value'] > 0.001 and perfect['mmd2_p_value'] > 0.001
  assert protocol['num_real'] == 1000 and protocol['real'] == 'fresh draws'
  assert protocol['num_modes'] == 8 and protocol['features'].startswith('identity')

  one_mode = lambda key, n: data.centers[0] + data.std * jax.random.normal(key, (n, 2))
  collapsed, _ = toy_evaluator(one_mode)(None, None, 1000)
  assert collapsed['modes'] == 1 and collapsed['reverse_kl'] == pytest.approx(math.log(8))
  assert collapsed['c2st_accuracy'] > 0.85 and collapsed['c2st_p_value'] < 1e-6
  assert collapsed['mmd2_p_value'] == pytest.approx(1 / 201)  # no permutation beats it
  assert collapsed['recall'] < 0.2 and collapsed['coverage'] < 0.2 and collapsed['fid'] > 0.5
  assert abs(perfect['kid']) < 0.02 * collapsed['kid']


def test_fixed_noise_and_fid_from_the_streaming_statistics():
  """Same draws at every call; the FID equals the closed form on the same samples."""
  sampler = lambda key, n: jax.random.normal(key, (n, 2)) + 1.0
  ev = toy_evaluator(sampler, metrics=('fid',))
  first, _ = ev(None, None, 1200)
  second, _ = ev(None, None, 1200)
  assert first == second
  fake = np.asarray(draw(sampler, ev.eval_key, jnp.arange(1200, dtype=jnp.uint32)), np.float64)
  real = ev.real_reference(1200)['features'].astype(np.float64)
  expected = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0),
                              np.cov(fake, rowvar=False))
  assert first['fid'] == pytest.approx(expected, rel=1e-7)


def tiny_image_config(tmp_path, **eval_fields):
  c = configs.image_config('mnist5k', 28)
  c.model.g.channels = c.model.d.channels = 8
  c.data.batch_size = 16
  c.eval.update({'num_samples': 96, 'batch_size': 48, 'cache_dir': str(tmp_path / 'cache'),
                 **eval_fields})
  return c


def fresh_evaluator(exp, config, log, real_data=None):
  """A new Evaluator for `exp`'s data and generator, as a new run would build (no cache in memory)."""
  return evaluation.Evaluator(config, exp.data, real_data or exp.data, exp._sample, 0,
                              sharding.batch_sharded(exp.mesh), exp.eval_key, log=log)


def test_image_eval_caches_the_real_statistics(tmp_path):
  config = tiny_image_config(tmp_path, features='identity',
                             metrics=('fid', 'kid', 'precision_recall', 'density_coverage'))
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  messages = []
  exp.evaluator.log = messages.append
  state = exp.init_state()
  (kind, metrics, protocol), _ = exp.evaluate(state, 96)
  assert kind == 'ema' and set(metrics) >= {'fid', 'kid', 'precision', 'recall', 'density'}
  assert protocol['num_real'] == 96 and protocol['real'] == 'train'
  cached = os.listdir(tmp_path / 'cache' / 'real_stats')
  assert len(cached) == 1 and 'mnist5k' in cached[0]
  assert '-train-28x28x1-identity-u8-perm0-n96' in cached[0]
  with np.load(tmp_path / 'cache' / 'real_stats' / cached[0]) as f:  # no D×D covariance on disk
    assert sorted(f.files) == ['features', 'labels'] and f['features'].shape == (96, 784)
  assert sum('computing the real statistics' in m for m in messages) == 1  # once for both
  # The cached statistics are those of a fixed random 96 of the training images, flattened (the
  # first 96 would all be zeros: the file is sorted by class).
  chosen = np.random.RandomState(0).permutation(len(exp.data))[:96]
  real = exp.data.read(chosen)['image'].reshape(96, -1).astype(np.float64)
  assert len(set(exp.data.read(chosen)['label'])) == 10
  ref = exp.evaluator.real_reference(96)
  np.testing.assert_allclose(ref['mu'], real.mean(0), atol=1e-6)
  np.testing.assert_allclose(ref['sigma'], np.cov(real, rowvar=False), atol=1e-5)
  # A new run loads them (no recomputation) and gets the same numbers; FID = the closed form.
  again = fresh_evaluator(exp, config, messages.append)
  metrics_again, _ = again(state.g_ema, state.g.batch_stats, 96)
  assert metrics_again == metrics and len(messages) == 1
  fake = np.asarray(exp._sample(state.g_ema, state.g.batch_stats, exp.eval_key,
                                jnp.arange(96, dtype=jnp.uint32), None))
  fake = (np.asarray(quantize(fake)) / 127.5 - 1).reshape(96, -1).astype(np.float64)  # uint8
  expected = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0),
                              np.cov(fake, rowvar=False))
  assert metrics['fid'] == pytest.approx(expected, rel=1e-6)
  # Another reference split is another cache entry.
  config.eval.real_split = 'test'
  fresh_evaluator(exp, config, messages.append, exp._real_data())(state.g_ema,
                                                                  state.g.batch_stats, 96)
  assert len(os.listdir(tmp_path / 'cache' / 'real_stats')) == 2 and len(messages) == 2
  # Without a Fréchet distance no covariance is computed, of the reals or of the fakes.
  config.eval.update(real_split='train', metrics=('kid', 'precision_recall'))
  no_fid = fresh_evaluator(exp, config, messages.append)
  assert no_fid(state.g_ema, state.g.batch_stats, 96)[0]['kid'] == metrics['kid']
  assert 'mu' not in no_fid.real_reference(96, with_moments=False) and len(messages) == 2
  assert no_fid.fake_features(state.g_ema, state.g.batch_stats, 96, keep=False,
                              with_moments=False)[2] is None


def test_eval_on_eight_devices_equals_one_device():
  config = configs.toy_config()
  config.eval.update(metrics=('modes', 'fid', 'precision_recall'), generators=('ema',),
                     batch_size=400)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    exp = gan.GANExperiment(config, devices=devices)
    assert exp.evaluator.batch_size == 400
    results.append(exp.evaluate(exp.init_state(), 1000)[0][1])
  assert results[0]['modes'] == results[1]['modes']
  assert results[0]['precision'] == results[1]['precision']
  assert results[0]['fid'] == pytest.approx(results[1]['fid'], rel=1e-5)


def test_digit_features_read_stacked_digits_channel_by_channel(monkeypatch):
  """Joint class probabilities of 3 channels: argmax = predict_stacked; features concatenated."""
  params = dc.DigitCNN().init(jax.random.key(1), jnp.zeros((1, 28, 28, 1)))['params']
  clf = dc.DigitClassifier(params, {'params_sha256': 'ab' * 32, 'test_accuracy': 0.1, 'seed': 0})
  monkeypatch.setattr(dc, 'load_or_train', lambda *a, **k: clf)
  ext = evaluation.digit_extractor()
  x = np.asarray(jax.random.uniform(jax.random.key(2), (6, 32, 32, 3), minval=-1, maxval=1))
  feats, probs = ext.apply(jnp.asarray(x))
  assert feats.shape == (6, 384) and probs.shape == (6, 1000)
  np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(np.argmax(probs, axis=1), clf.predict_stacked(x))
  np.testing.assert_allclose(feats[:, 128:256], clf.features(x[..., 1]), rtol=1e-5, atol=1e-5)
  assert ext.protocol['classifier_sha256'] == 'ab' * 32


@pytest.mark.parametrize('fields, words', [
    (dict(metrics=('fidd',)), ["'fidd'", 'valid choices', 'fid', 'kid']),
    (dict(metrics=('modes',)), ["'modes'", 'mixture', 'mnist5k']),
    (dict(metrics=('inception_score',), features='identity'), ['inception_score', 'probabilities']),
    (dict(metrics=('stacked_modes',)), ['stacked_mnist']),
    (dict(features='vgg'), ['eval.features', 'inception', 'digit_classifier']),
])
def test_bad_eval_configs_name_the_field(tmp_path, fields, words):
  with pytest.raises(configs.ConfigError) as e:
    gan.GANExperiment(tiny_image_config(tmp_path, **fields), devices=jax.devices()[:1])
  assert all(w in str(e.value) for w in words), str(e.value)


def test_inception_weights_download_failure_is_one_sentence(tmp_path, monkeypatch):
  def offline(*args, **kwargs):
    raise urllib.error.URLError('no network')
  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  config = tiny_image_config(tmp_path, features='inception')
  with pytest.raises(configs.ConfigError) as e:
    gan.GANExperiment(config, devices=jax.devices()[:1])
  message = str(e.value)
  assert 'could not download' in message and '--config.eval.inception_weights=PATH' in message
  assert inception.FID_WEIGHTS_URL in message and '\n' not in message
  assert not os.listdir(tmp_path / 'cache' / 'inception')  # no partial file left behind
  # A file already in the cache is used without the network.
  cached = tmp_path / 'cache' / 'inception' / os.path.basename(inception.FID_WEIGHTS_URL)
  cached.write_bytes(b'weights')
  assert inception.fetch_weights(str(tmp_path / 'cache')) == str(cached)


def test_eval_samples_and_fid_do_not_depend_on_the_batch_size(tmp_path):
  """Sample j comes from the noise of (eval_key, j): batches of 7 (the last one padded), 20
  and 64 (one padded batch) score the same samples; the FIDs agree to summation order."""
  config = tiny_image_config(tmp_path, features='identity', metrics=('fid',))
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  state = exp.init_state()
  fids = []
  for batch in (7, 20, 64):
    config.eval.batch_size = batch
    fids.append(fresh_evaluator(exp, config, lambda m: None)(state.g_ema, state.g.batch_stats,
                                                              20)[0]['fid'])
  np.testing.assert_allclose(fids, fids[0], rtol=1e-6)


def test_intra_fid_is_the_mean_of_per_class_fids(tmp_path):
  """On a conditional G: fakes j have label j mod 10, the reference its own labels; the metric is
  the mean over classes of the FID between the two sets' class-c features (computed here)."""
  config = tiny_image_config(tmp_path, features='identity', metrics=('intra_fid', 'fid'),
                             num_samples=60, batch_size=30)
  config.model.g.conditioning = config.model.d.conditioning = 'concat'
  config.data.image_size = 8  # 64-d features: cheap covariances
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  state = exp.init_state()
  metrics, protocol = exp.evaluator(state.g_ema, state.g.batch_stats, 60)
  real = exp.evaluator.real_reference(60)
  fake = np.asarray(exp._sample(state.g_ema, state.g.batch_stats, exp.eval_key,
                                jnp.arange(60, dtype=jnp.uint32),
                                jnp.asarray(np.arange(60) % 10, jnp.int32)))
  fake = (np.asarray(quantize(fake)) / 127.5 - 1).reshape(60, -1).astype(np.float64)
  fids = []
  for c in range(10):
    r, f = real['features'][real['labels'] == c].astype(np.float64), fake[np.arange(60) % 10 == c]
    fids.append(frechet_distance(r.mean(0), np.cov(r, rowvar=False), f.mean(0),
                                 np.cov(f, rowvar=False)))
  assert metrics['intra_fid'] == pytest.approx(np.mean(fids), rel=1e-5)
  assert metrics['intra_fid'] > metrics['fid']  # few samples a class: more bias
  assert 'mean over classes' in protocol['intra_fid']
  with pytest.raises(ValueError, match=r'intra_fid: class 3 has 1 reference and 6 generated'):
    evaluation.intra_fid(np.zeros((11, 2)), np.r_[np.zeros(10), 3], np.zeros((12, 2)),
                         np.r_[np.zeros(6), np.full(6, 3)])


def test_intra_fid_needs_a_conditional_generator(tmp_path):
  config = tiny_image_config(tmp_path, features='identity', metrics=('intra_fid',))
  with pytest.raises(configs.ConfigError, match="'intra_fid' compares each class's fakes"):
    gan.GANExperiment(config, devices=jax.devices()[:1])


def test_dinov2_features_are_wired_with_clear_errors(tmp_path, monkeypatch):
  """eval.features='dinov2': no download is one sentence naming the field and the URL; a bad
  file is one line; metrics needing class probabilities are refused (DINOv2 has none)."""
  from gan_jax.metrics import dinov2

  def offline(*args, **kwargs):
    raise urllib.error.URLError('no network')
  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  config = tiny_image_config(tmp_path, features='dinov2', metrics=('fid',))
  with pytest.raises(configs.ConfigError) as e:
    gan.GANExperiment(config, devices=jax.devices()[:1])
  assert str(e.value).startswith('config.eval.dinov2_weights: ')
  assert dinov2.DINOV2_WEIGHTS_URL in str(e.value) and '\n' not in str(e.value)
  (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
  config.eval.dinov2_weights = str(tmp_path / 'bad.pth')
  with pytest.raises(configs.ConfigError, match=r'config.eval.dinov2_weights: .*bad.pth could '
                                                r'not be read as the DINOv2'):
    gan.GANExperiment(config, devices=jax.devices()[:1])
  config.eval.metrics = ('inception_score',)
  with pytest.raises(configs.ConfigError, match=r"need class probabilities, which "
                                                r"config.eval.features='dinov2' has not"):
    gan.GANExperiment(config, devices=jax.devices()[:1])


def test_stylegan2_ada_covariances_divide_by_n():
  """cov_ddof=0 (the stylegan2_ada preset): FID of the 1/N covariances, as StyleGAN2-ADA's."""
  sampler = lambda key, n: jax.random.normal(key, (n, 2)) * 1.3 + 0.5
  fids = {}
  for ddof in (1, 0):
    ev = toy_evaluator(sampler, metrics=('fid',), cov_ddof=ddof)
    metrics, protocol = ev(None, None, 50)
    fake = np.asarray(draw(sampler, ev.eval_key, jnp.arange(50, dtype=jnp.uint32)), np.float64)
    real = ev.real_reference(50)['features'].astype(np.float64)
    expected = frechet_distance(real.mean(0), np.cov(real, rowvar=False, ddof=ddof),
                                fake.mean(0), np.cov(fake, rowvar=False, ddof=ddof))
    assert metrics['fid'] == pytest.approx(expected, rel=1e-7)
    assert protocol['fid_covariance'] == ('1/N' if ddof == 0 else '1/(N-1)')
    fids[ddof] = metrics['fid']
  assert fids[0] != fids[1]
  assert evaluation.PROTOCOLS['stylegan2_ada']['cov_ddof'] == 0

"""The digit classifier trained by gan_jax: accuracy, cache, features, Stacked MNIST modes, FD floors.

Trains once per test session (module-scoped fixture, a temporary cache directory); about a minute
on a 2-core CPU.
"""
import json
import math
import os
import shutil
import threading
import time
import warnings

import chex
import jax
import numpy as np
import pytest
import scipy.linalg

from gan_jax import input_pipeline as ip
from gan_jax.metrics import digit_classifier as dc
from gan_jax.metrics import fid, kid


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  cache_dir = str(tmp_path_factory.mktemp('digit_classifier'))
  logs = []
  start = time.perf_counter()
  clf = dc.load_or_train(cache_dir, seed=0, log=logs.append)
  seconds = time.perf_counter() - start
  # Shared with the later tests (conftest's session cache) so that none trains it again; under
  # the cache's lock, which every reader takes, as another worker may be loading or training it.
  with dc.cache_lock():
    if not os.path.exists(dc.cache_paths()[1]):
      for src, dst in zip(dc.cache_paths(cache_dir), dc.cache_paths()):
        shutil.copyfile(src, dst)
  return clf, cache_dir, logs, seconds


@pytest.fixture(scope='module')
def mnist_test():
  return ip.mnist5k('test').arrays()


def test_trains_to_97_percent_and_loads_from_cache(trained, mnist_test):
  clf, cache_dir, logs, train_seconds = trained
  assert clf.trained
  accuracy = float(np.mean(clf.predict(mnist_test['image']) == mnist_test['label']))
  print(f'digit classifier: test accuracy {accuracy:.4f}, trained in {train_seconds:.1f} s')
  assert accuracy >= 0.97
  assert clf.test_accuracy == pytest.approx(accuracy)
  assert len(logs) == 1 and f'{accuracy:.4f}' in logs[0]  # logged once, with the accuracy

  params_path, info_path = dc.cache_paths(cache_dir, seed=0)
  with open(info_path) as f:
    info = json.load(f)
  assert info['data'] == 'mnist5k' and info['seed'] == 0 and info['num_train'] == 4500
  assert info['num_test'] == 500 and info['test_accuracy'] == pytest.approx(accuracy)

  later_logs = []
  start = time.perf_counter()
  loaded = dc.load_or_train(cache_dir, seed=0, log=later_logs.append)
  load_seconds = time.perf_counter() - start
  assert not loaded.trained and not later_logs
  assert load_seconds < train_seconds / 5
  chex.assert_trees_all_equal(jax.device_get(loaded.params), jax.device_get(clf.params))
  np.testing.assert_array_equal(loaded.predict(mnist_test['image']),
                                clf.predict(mnist_test['image']))


def test_features_probs_predict(trained, mnist_test):
  clf = trained[0]
  x = mnist_test['image'][:250]
  feats = clf.features(x)
  chex.assert_shape(feats, (250, dc.FEATURE_DIM))
  chex.assert_tree_all_finite(feats)
  assert np.all(feats.std(0) > 0)  # pre-ReLU: every unit varies
  probs = clf.probs(x)
  chex.assert_shape(probs, (250, 10))
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  assert np.all(probs >= 0)
  np.testing.assert_array_equal(clf.predict(x), probs.argmax(-1))
  # Chunking and batch composition do not change the result.
  small = dc.DigitClassifier(clf.params, clf.info, chunk_size=64)
  np.testing.assert_allclose(small.features(x), feats, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(clf.features(x[:7]), feats[:7], rtol=1e-5, atol=1e-5)
  # (N, H, W) works, and 32×32 MNIST (padded by input_pipeline) maps back to the same 28×28.
  np.testing.assert_array_equal(clf.predict(x[..., 0]), clf.predict(x))
  x32 = ip.mnist5k('test', image_size=32).arrays(250)['image']
  np.testing.assert_allclose(clf.features(x32), feats, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError):
    clf.features(np.zeros((2, 28, 28, 3), np.float32))
  with pytest.raises(ValueError):
    clf.predict_stacked(np.zeros((2, 28, 28, 1), np.float32))


def test_sklearn_digits_are_mapped_to_mnist_framing(trained):
  clf = trained[0]
  d = ip.digits('test').arrays()
  accuracy = float(np.mean(clf.predict(d['image']) == d['label']))
  print(f'sklearn digits (8×8 -> 20×20 in 28×28) accuracy: {accuracy:.3f}')
  assert accuracy > 0.5  # another dataset's style: well above chance (0.1), not MNIST-level


@pytest.mark.parametrize('damage', ['truncate', 'flip_byte', 'bad_json', 'missing_params'])
def test_corrupt_cache_retrains_with_a_warning(trained, tmp_path, monkeypatch, damage):
  clf, cache_dir = trained[:2]
  for path in dc.cache_paths(cache_dir, seed=0):
    shutil.copy(path, tmp_path)
  params_path, info_path = dc.cache_paths(str(tmp_path), seed=0)
  if damage == 'truncate':
    with open(params_path, 'r+b') as f:
      f.truncate(os.path.getsize(params_path) // 2)
  elif damage == 'flip_byte':
    with open(params_path, 'r+b') as f:
      f.seek(os.path.getsize(params_path) // 2)
      b = f.read(1)
      f.seek(-1, os.SEEK_CUR)
      f.write(bytes([b[0] ^ 0xFF]))
  elif damage == 'bad_json':
    with open(info_path, 'w') as f:
      f.write('{"version": 1, "seed"')
  else:
    os.remove(params_path)
  # The real retraining is the fixture's (deterministic, a minute); here it is stubbed.
  calls = []

  def fake_train(seed, log):
    calls.append(seed)
    log('trained')
    return clf.params, {k: v for k, v in clf.info.items() if k != 'params_sha256'}

  monkeypatch.setattr(dc, 'train', fake_train)
  logs = []
  with pytest.warns(RuntimeWarning, match='retraining'):
    retrained = dc.load_or_train(str(tmp_path), seed=0, log=logs.append)
  assert retrained.trained and calls == [0] and logs == ['trained']
  reloaded = dc.load_or_train(str(tmp_path), seed=0, log=logs.append)  # the cache is whole again
  assert not reloaded.trained and calls == [0]
  chex.assert_trees_all_equal(jax.device_get(reloaded.params), jax.device_get(clf.params))


def test_predict_stacked_on_real_stacked_mnist(trained):
  clf = trained[0]
  data = ip.stacked_mnist('test', num_examples=2000).arrays()
  pred = clf.predict_stacked(data['image'])
  assert pred.dtype == np.int32 and pred.shape == (2000,)
  accuracy = float(np.mean(pred == data['label']))
  print(f'stacked MNIST label accuracy: {accuracy:.4f}')
  assert accuracy >= 0.90
  # Channel c of a stacked image is the digit of channel c alone.
  x = data['image'][:50]
  for c, weight in enumerate((100, 10, 1)):
    np.testing.assert_array_equal(clf.predict(x[..., c:c + 1]), pred[:50] // weight % 10)


def test_stacked_mnist_modes_real_and_collapsed(trained):
  clf = trained[0]
  real = ip.stacked_mnist('test', num_examples=10_000).arrays()['image']
  result = dc.stacked_mnist_modes(real, clf)
  print(f'real stacked MNIST (10k): {result}')
  assert set(result) == {'modes', 'reverse_kl'}
  assert result['modes'] > 950 and 0.0 <= result['reverse_kl'] < 0.1
  collapsed = np.repeat(real[:1], 500, axis=0)
  result = dc.stacked_mnist_modes(collapsed, clf)
  assert result['modes'] == 1
  assert result['reverse_kl'] == pytest.approx(math.log(1000), rel=1e-12)


def _fd(feats_a, feats_b):
  stats = [fid.StreamingStats.init(dc.FEATURE_DIM) for _ in range(2)]
  for i in range(0, len(feats_a), 1000):  # streamed in batches, as over generated samples
    stats[0] = stats[0].update(feats_a[i:i + 1000])
  stats[1] = stats[1].update(feats_b)
  return fid.frechet_distance(*stats[0].finalize(), *stats[1].finalize())


def test_frechet_distance_sanity_ordering(trained):
  clf = trained[0]
  data = ip.mnist5k('all').arrays()
  order = np.random.default_rng(0).permutation(len(data['label']))
  half_a, half_b = data['image'][order[:2500]], data['image'][order[2500:]]
  feats_a, feats_b = clf.features(half_a), clf.features(half_b)
  pixels = np.random.default_rng(1).permutation(28 * 28)
  shuffled = half_b.reshape(2500, -1)[:, pixels].reshape(half_b.shape)
  ones = data['image'][data['label'] == 1]
  with warnings.catch_warnings():  # pre-ReLU features: full-rank covariances, no singular sqrtm
    warnings.simplefilter('error', scipy.linalg.LinAlgWarning)
    fd_real = _fd(feats_a, feats_b)
    fd_shuffled = _fd(feats_a, clf.features(shuffled))
    fd_ones = _fd(feats_a, clf.features(ones))
  kid_real = kid.kernel_inception_distance(feats_a, feats_b, num_subsets=20)[0]
  kid_ones = kid.kernel_inception_distance(feats_a, clf.features(ones), num_subsets=20)[0]
  print(f'FD real/real {fd_real:.3f}, real/pixel-shuffled {fd_shuffled:.2f}, real/ones '
        f'{fd_ones:.2f}; KID real/real {kid_real:.5f}, real/ones {kid_ones:.4f}')
  assert 0.0 <= fd_real < 0.1 * min(fd_shuffled, fd_ones)
  assert abs(kid_real) < 0.1 * kid_ones


def test_concurrent_callers_train_once(trained, tmp_path, monkeypatch):
  """Two callers sharing an empty cache (two threads here; two processes lock alike): the first
  trains under the cache's lock, the second waits and loads what it wrote, never a half-written
  entry (the parameters and their record are two files)."""
  clf = trained[0]
  calls, started = [], threading.Event()

  def slow_train(seed, log):
    calls.append(seed)
    started.set()
    time.sleep(0.5)  # the other caller arrives while the entry is being trained
    return clf.params, {k: v for k, v in clf.info.items() if k != 'params_sha256'}

  monkeypatch.setattr(dc, 'train', slow_train)
  results = {}
  first = threading.Thread(target=lambda: results.update(
      first=dc.load_or_train(str(tmp_path), seed=0, log=lambda _: None)))
  first.start()
  started.wait()
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # a torn read would warn and retrain
    second = dc.load_or_train(str(tmp_path), seed=0, log=lambda _: None)
  first.join()
  assert calls == [0] and results['first'].trained and not second.trained
  chex.assert_trees_all_equal(jax.device_get(second.params), jax.device_get(clf.params))

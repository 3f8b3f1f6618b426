"""Image data: offline sources, tfds under mock data, the sharded resumable stream, clear errors."""
import socket
import threading
import time
from unittest import mock

import numpy as np
import pytest

from gan_jax import input_pipeline as ip

TFDS_SHAPES = {
    'cifar10': (32, 32, 3),
    'mnist': (28, 28, 1),
    'fashion_mnist': (28, 28, 1),
    'svhn_cropped': (32, 32, 3),
    'celeb_a': (64, 64, 3),
}


def _assert_images(x, shape, hit_ends=True):
  assert x.dtype == np.float32 and x.shape[1:] == shape
  assert x.min() >= -1.0 and x.max() <= 1.0
  if hit_ends:
    assert x.min() == -1.0 and x.max() == 1.0


def _rows(x):
  return {r.tobytes() for r in x.reshape(len(x), -1)}


def test_mnist5k_shapes_range_balance_and_holdout():
  full = ip.get('mnist5k', split='all').arrays()
  _assert_images(full['image'], (28, 28, 1))
  assert full['label'].dtype == np.int32
  np.testing.assert_array_equal(np.bincount(full['label']), [500] * 10)
  train, test = ip.mnist5k('train').arrays(), ip.mnist5k('test').arrays()
  np.testing.assert_array_equal(np.bincount(train['label']), [450] * 10)
  np.testing.assert_array_equal(np.bincount(test['label']), [50] * 10)
  assert not _rows(train['image']) & _rows(test['image'])  # held-out digits are unseen
  assert _rows(train['image']) | _rows(test['image']) == _rows(full['image'])


def test_digits_shapes_range_and_balance():
  data = ip.get('digits', split='all')
  assert (data.num_examples, data.image_shape, data.num_classes) == (1797, (8, 8, 1), 10)
  full = data.arrays()
  _assert_images(full['image'], (8, 8, 1))
  counts = np.bincount(full['label'])
  assert len(counts) == 10 and counts.min() >= 174 and counts.max() <= 183
  np.testing.assert_allclose((full['image'] + 1) * 8, np.round((full['image'] + 1) * 8), atol=1e-5)
  assert ip.digits('train').num_examples + ip.digits('test').num_examples == 1797
  assert np.bincount(ip.digits('test').arrays()['label']).min() >= 17


def test_stacked_mnist_channels_are_the_source_digits():
  data = ip.get('stacked_mnist', split='test')
  assert (data.num_examples, data.image_shape, data.num_classes) == (10_000, (28, 28, 3), 1000)
  idx = np.arange(0, 10_000, 37)
  ex = data.read(idx)
  _assert_images(ex['image'], (28, 28, 3))
  source = ip.mnist5k('test')
  triples = data.source.triples[idx]
  digit = [source.read(triples[:, c]) for c in range(3)]
  for c in range(3):
    np.testing.assert_array_equal(ex['image'][..., c], digit[c]['image'][..., 0])
  np.testing.assert_array_equal(
      ex['label'], 100 * digit[0]['label'] + 10 * digit[1]['label'] + digit[2]['label'])
  labels = data.source.read(np.arange(10_000))[1]
  assert labels.min() >= 0 and labels.max() < 1000
  assert len(np.unique(labels)) > 990  # ~1000 equally likely modes in 10,000 draws
  same = ip.stacked_mnist('test', seed=0).source.triples
  other = ip.stacked_mnist('test', seed=1).source.triples
  np.testing.assert_array_equal(same, data.source.triples)
  assert not np.array_equal(same, other)
  assert ip.stacked_mnist('train', num_examples=123).num_examples == 123


def test_resize_pads_mnist_and_resamples_the_rest():
  small = ip.mnist5k('test').read(np.arange(5))['image']
  padded = ip.mnist5k('test', image_size=32).read(np.arange(5))['image']
  assert padded.shape == (5, 32, 32, 1)
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], small)  # 2-pixel background border
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert np.all(padded[:, border] == -1.0)
  up = ip.digits('test', image_size=32).read(np.arange(5))['image']
  _assert_images(up, (32, 32, 1), hit_ends=False)
  np.testing.assert_allclose(up.mean(axis=(1, 2, 3)),
                             ip.digits('test').read(np.arange(5))['image'].mean(axis=(1, 2, 3)),
                             atol=0.05)  # bilinear keeps the mean
  down = ip.mnist5k('test', image_size=14, resize='area').read(np.arange(5))['image']
  np.testing.assert_allclose(down, small.reshape(5, 14, 2, 14, 2, 1).mean(axis=(2, 4)), atol=1e-5)
  cropped = ip.mnist5k('test', crop=20).read(np.arange(5))['image']
  np.testing.assert_array_equal(cropped, small[:, 4:24, 4:24])
  with pytest.raises(ValueError, match='resize'):
    ip.mnist5k(resize='nearest')


@pytest.mark.parametrize('name', sorted(TFDS_SHAPES))
def test_tfds_sources_under_mock_data(name, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=24):
    data = ip.get(name, split='train', data_dir=str(tmp_path))
    assert data.num_examples == 24 and data.image_shape == TFDS_SHAPES[name]
    batches = data.batches(8, seed=0, num_epochs=1)
    got = list(batches)
  assert len(got) == 3
  images = np.concatenate([b['image'] for b in got])
  labels = np.concatenate([b['label'] for b in got])
  _assert_images(images, TFDS_SHAPES[name], hit_ends=False)
  assert labels.dtype == np.int32
  assert data.num_classes == ip.DATASETS[name].num_classes  # the declared fact
  if name == 'celeb_a':
    assert data.num_classes == 1 and np.all(labels == 0)
  else:
    assert data.num_classes == 10 and labels.min() >= 0 and labels.max() < 10
    assert images.min() == -1.0 and images.max() > 0.99  # random uint8 pixels span the range


def test_cifar10_mock_end_to_end_is_the_raw_pixels(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=10):
    raw = tfds.data_source('cifar10', split='test', data_dir=str(tmp_path), download=False)
    expected = np.stack([raw[i]['image'] for i in range(10)]).astype(np.float32) / 127.5 - 1
    labels = np.array([raw[i]['label'] for i in range(10)])
    data = ip.cifar10('test', data_dir=str(tmp_path))
    got = data.arrays()
  np.testing.assert_allclose(got['image'], expected, atol=1e-6)
  np.testing.assert_array_equal(got['label'], labels)


def test_download_true_prepares_the_dataset(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=4):
    with mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare') as prepare:
      ip.cifar10(data_dir=str(tmp_path), download=True)
  prepare.assert_called_once()


def test_missing_tfds_dataset_is_one_clear_sentence_without_network(tmp_path, monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  connects = []

  def no_network(*args, **kwargs):
    connects.append(args)
    raise OSError('network used in a test')

  monkeypatch.setattr(socket.socket, 'connect', no_network)
  monkeypatch.setattr(socket, 'create_connection', no_network)
  data_dir = str(tmp_path / 'tfds')
  start = time.time()
  with mock.patch.object(tfds.core.DatasetBuilder, 'download_and_prepare',
                         side_effect=AssertionError('download attempted')) as prepare:
    with pytest.raises(ip.DatasetUnavailable) as info:
      ip.get('cifar10', data_dir=data_dir)
  assert time.time() - start < 5
  assert not prepare.called and not connects
  msg = str(info.value)
  assert isinstance(info.value, ValueError)
  assert "'cifar10'" in msg and data_dir in msg
  assert f'tfds build cifar10 --data_dir={data_dir}' in msg and 'data_dir' in msg
  assert 'mnist5k' in msg and '\n' not in msg
  assert msg.endswith('.') and msg.count('. ') == 0  # one sentence (dotted names aside)


def test_dataset_facts_are_declared_once_on_each_dataset():
  assert ip.OFFLINE == ip.offline_names() == ('mnist5k', 'digits', 'stacked_mnist')
  assert [n for n in ip.DATASETS if ip.is_digits(n)] == ['mnist5k', 'digits', 'stacked_mnist',
                                                          'mnist']
  # OFFLINE: the sources that run with no files of yours (an image folder needs your folder)
  assert all(ip.is_offline(n) == (n in ip.OFFLINE) for n in ip.DATASETS if n != 'image_folder')
  assert ip.is_offline('image_folder') and 'image_folder' not in ip.OFFLINE
  assert not ip.is_digits('ring') and not ip.is_offline('imagenet64')  # not image datasets
  for name in ip.offline_names():  # the declared number of classes is the data's
    assert ip.get(name, split='test').num_classes == ip.DATASETS[name].num_classes
  assert ip.DATASETS['digits']('test').num_examples == 179  # an entry still builds its dataset


def test_get_lists_valid_names_and_options():
  with pytest.raises(ValueError, match='mnist5k') as info:
    ip.get('imagenet64')
  for name in ip.DATASETS:
    assert name in str(info.value)
  with pytest.raises(ValueError, match='does not take'):
    ip.get('digits', data_dir='/tmp')
  with pytest.raises(ValueError, match='split'):
    ip.get('mnist5k', split='validation')


def _take(it, n):
  return [next(it) for _ in range(n)]


@pytest.mark.parametrize('process_count', [2, 4])
def test_hosts_read_disjoint_shards_of_the_global_batch(process_count):
  data = ip.digits('train')  # 1,618 examples: 3 batches of 512 per epoch, so 5 cross an epoch
  whole = _take(data.batches(512, seed=3), 5)
  hosts = [_take(data.batches(512, seed=3, process_index=p, process_count=process_count), 5)
           for p in range(process_count)]
  for step in range(5):
    for key in ('image', 'label'):
      assert hosts[0][step][key].shape[0] == 512 // process_count
      joined = np.concatenate([hosts[p][step][key] for p in range(process_count)])
      np.testing.assert_array_equal(joined, whole[step][key])


def test_stream_is_deterministic_per_seed_and_reshuffles_epochs():
  data = ip.digits('train')
  a = _take(data.batches(256, seed=0), 7)
  b = _take(data.batches(256, seed=0, prefetch=0), 7)
  c = _take(data.batches(256, seed=1), 7)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
  assert not np.array_equal(a[0]['image'], c[0]['image'])
  steps = data.steps_per_epoch(256)
  assert steps == 6
  epoch0 = np.concatenate([data.batch_indices(s, 256, seed=0) for s in range(steps)])
  epoch1 = np.concatenate([data.batch_indices(s, 256, seed=0) for s in range(steps, 2 * steps)])
  assert len(np.unique(epoch0)) == len(epoch0) == steps * 256  # without replacement
  assert not np.array_equal(epoch0, epoch1)


@pytest.mark.parametrize('k', [1, 4, 9])
def test_resume_from_start_step_continues_the_stream(k):
  data = ip.mnist5k('train')  # 4,500 examples: 4 batches of 1,024 per epoch
  fresh = _take(data.batches(1024, seed=5, process_index=1, process_count=2), k + 2)
  resumed = _take(data.batches(1024, seed=5, start_step=k, process_index=1, process_count=2), 2)
  for x, y in zip(fresh[k:], resumed):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])


def test_finite_epochs_and_bad_arguments():
  data = ip.digits('test')  # 179 examples
  assert len(list(data.batches(50, num_epochs=2))) == 6
  last = list(data.batches(50, shuffle=False, num_epochs=1, drop_remainder=False))
  assert [len(b['label']) for b in last] == [50, 50, 50, 29]
  np.testing.assert_array_equal(np.concatenate([b['image'] for b in last]),
                                data.arrays()['image'])
  with pytest.raises(ValueError, match='multiple'):
    data.batches(50, process_count=3)
  with pytest.raises(ValueError, match='larger'):
    data.batches(500)


def _prefetch_threads():
  return [t for t in threading.enumerate() if t.name == 'gan_jax-prefetch']


def test_prefetch_thread_stops_and_forwards_errors():
  data = ip.digits('train')
  before = len(_prefetch_threads())
  it = data.batches(32, prefetch=2)
  next(it)
  it.close()
  deadline = time.time() + 2
  while len(_prefetch_threads()) > before and time.time() < deadline:
    time.sleep(0.01)
  assert len(_prefetch_threads()) == before

  class Broken(ip.ArraySource):
    def read(self, indices):
      raise RuntimeError('disk on fire')

  src = data.source
  broken = ip.ImageDataset('broken', Broken(src.pixels, src.labels, src.max_value, 10))
  with pytest.raises(RuntimeError, match='disk on fire'):
    next(broken.batches(32))


@pytest.mark.parametrize('workers', [1, 3])
def test_worker_processes_give_the_same_stream(workers):
  """Batches read by worker processes are those of the loop's thread, in order, across an
  epoch's end, for one host's share of a resumed stream."""
  data = ip.mnist5k('train', image_size=32)  # 4,500 examples: 70 steps of 64 per epoch
  options = dict(seed=5, start_step=66, process_index=1, process_count=2)
  plain = _take(data.batches(64, **options), 8)
  parallel = data.batches(64, workers=workers, **options)
  read = _take(parallel, 8)
  parallel.close()
  for a, b in zip(plain, read):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


def test_a_worker_process_error_reaches_the_consumer():
  src = ip.digits('train').source
  short = ip.ArraySource(src.pixels[:10], src.labels, src.max_value, 10)  # rows 10+ missing
  with pytest.raises(IndexError):
    _take(ip.ImageDataset('short', short).batches(32, workers=1, shuffle=False), 2)
  with pytest.raises(ValueError, match='workers=-1'):
    next(ip.digits('train').batches(32, workers=-1))


def test_a_memory_mapped_source_goes_to_workers_by_file_name(tmp_path):
  import pickle  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'pixels.npy')
  np.save(path, np.arange(200 * 8 * 8, dtype=np.uint8).reshape(200, 8, 8, 1))
  source = ip.ArraySource(np.load(path, mmap_mode='r'), np.arange(200) % 2, 255., 2)
  copy = pickle.loads(pickle.dumps(source))
  assert len(pickle.dumps(source)) < 4_000 < source.pixels.nbytes
  assert isinstance(copy.pixels, np.memmap)
  np.testing.assert_array_equal(copy.read([3, 150])[0], source.read([3, 150])[0])
  in_memory = ip.ArraySource(np.asarray(source.pixels), source.labels, 255., 2)
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(in_memory)).pixels, source.pixels)


def test_workers_unset_read_in_the_thread_on_cpu_only():
  assert ip.resolve_workers(None, 'cpu') == 0
  with mock.patch('os.cpu_count', return_value=16):
    assert ip.resolve_workers(None, 'gpu') == ip.resolve_workers(None, 'tpu') == 8
  with mock.patch('os.cpu_count', return_value=2):
    assert ip.resolve_workers(None, 'gpu') == 1
  assert ip.resolve_workers(3, 'cpu') == 3 and ip.resolve_workers(0, 'gpu') == 0


def test_host_batches_become_the_sharded_global_batch():
  from gan_jax import distributed, sharding  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh()
  batch = next(ip.mnist5k('test').batches(16))
  arrays = {k: distributed.from_process_local(v, sharding.batch_sharded(mesh))
            for k, v in batch.items()}
  assert arrays['image'].shape == (16, 28, 28, 1)
  assert arrays['image'].sharding == sharding.batch_sharded(mesh)
  np.testing.assert_array_equal(np.asarray(arrays['label']), batch['label'])


def test_fraction_is_a_seeded_subset_in_file_order_with_the_same_preprocessing():
  full = ip.get('mnist5k', image_size=32)
  tenth = ip.get('mnist5k', image_size=32, fraction=0.1)
  assert tenth.num_examples == 450 and tenth.image_shape == full.image_shape == (32, 32, 1)
  rows = _rows(full.arrays()['image'])
  sub = tenth.arrays()
  assert _rows(sub['image']) <= rows and len(_rows(sub['image'])) == 450
  again = ip.get('mnist5k', image_size=32, fraction=0.1).arrays()
  np.testing.assert_array_equal(sub['image'], again['image'])  # the same digits every time
  order = [full.arrays()['image'].reshape(4500, -1).tolist().index(r.tolist())
           for r in sub['image'][:20].reshape(20, -1)]
  assert order == sorted(order)
  assert ip.get('mnist5k', fraction=1.0).num_examples == 4500
  assert ip.get('mnist5k', fraction=0.2001).num_examples == 901  # ⌈0.2001 · 4500⌉
  with pytest.raises(ValueError, match=r'fraction 1.5 must be in \(0, 1\]'):
    ip.get('mnist5k', fraction=1.5)


def test_limited_data_runs_train_on_the_fraction_and_score_against_the_whole_split():
  import jax
  from gan_jax import configs, gan
  c = configs.image_config('mnist5k', 16)
  c.data.fraction = 0.1
  c.model.g.channels = c.model.d.channels = 4
  exp = gan.GANExperiment(c, devices=jax.devices()[:1])
  assert exp.data.num_examples == 450 and exp.evaluator.real_data.num_examples == 4500

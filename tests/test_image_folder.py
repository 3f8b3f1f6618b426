"""Your own data: image folders (cache, labels, resize, errors, the stream), 'tfds:NAME', and
reference statistics in pytorch-fid's .npz layout."""
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from gan_jax import evaluation
from gan_jax import input_pipeline as ip
from gan_jax.metrics import frechet_distance


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('GAN_JAX_CACHE', str(tmp_path / 'cache'))


def _image(rng, size, mode='RGB'):
  w, h = size
  shape = (h, w) if mode == 'L' else (h, w, 3)
  return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _folder(root, classes=('cat', 'dog'), per_class=10, size=(37, 29), seed=0):
  """PNGs (even i) and JPEGs (odd i) in one sub-folder per class; returns the images written."""
  rng = np.random.default_rng(seed)
  written = {}
  for c in classes:
    os.makedirs(root / c, exist_ok=True)
    for i in range(per_class):
      rel = f'{c}/{i:03d}.' + ('png' if i % 2 == 0 else 'jpg')
      _image(rng, size).save(root / rel)
      written[rel] = Image.open(root / rel).convert('RGB')
  return written


def _fit(img):
  """The PIL reference for 37×29 → 16: the shorter side to 16 (20×16, bicubic), the centre."""
  assert img.size == (37, 29)
  return np.asarray(img.resize((20, 16), Image.BICUBIC).crop((2, 0, 18, 16)))


def test_classes_resize_crop_and_splits_match_pil(tmp_path):
  written = _folder(tmp_path / 'pets')
  data = ip.get('image_folder', path=str(tmp_path / 'pets'), split='all', image_size=16)
  assert (data.num_examples, data.image_shape, data.num_classes) == (20, (16, 16, 3), 2)
  got = data.arrays()
  np.testing.assert_array_equal(got['label'], [0] * 10 + [1] * 10)  # sorted class names
  expected = np.stack([_fit(written[rel]) for rel in sorted(written)])
  np.testing.assert_allclose(got['image'], expected / 127.5 - 1, atol=1e-6)
  train = ip.get('image_folder', path=str(tmp_path / 'pets'), image_size=16)
  test = ip.get('image_folder', path=str(tmp_path / 'pets'), split='test', image_size=16)
  assert (train.num_examples, test.num_examples) == (18, 2)  # the last 10% of each class
  np.testing.assert_array_equal(test.arrays()['image'], got['image'][[9, 19]])
  np.testing.assert_array_equal(test.arrays()['label'], [0, 1])
  assert ip.is_offline('image_folder') and not ip.is_digits('image_folder')
  assert ip.DATASETS['image_folder'].num_classes is None  # determined from the folder


def test_root_images_are_one_class_and_greyscale_stays_one_channel(tmp_path):
  rng = np.random.default_rng(1)
  for i in range(4):
    _image(rng, (8, 8), 'L').save(tmp_path / f'{i}.png')
  data = ip.image_folder(str(tmp_path), split='all')
  assert (data.image_shape, data.num_classes) == ((8, 8, 1), 1)
  got = data.arrays()
  assert np.all(got['label'] == 0)
  np.testing.assert_allclose(got['image'][2, ..., 0],
                             np.asarray(Image.open(tmp_path / '2.png')) / 127.5 - 1, atol=1e-6)
  rgb = ip.image_folder(str(tmp_path), split='all', channels=3)
  assert rgb.image_shape == (8, 8, 3)
  np.testing.assert_array_equal(rgb.arrays()['image'][..., 1], got['image'][..., 0])
  _image(rng, (8, 8)).save(tmp_path / 'colour.jpg')  # one RGB image: all become RGB
  assert ip.image_folder(str(tmp_path), split='all').image_shape == (8, 8, 3)


def test_cache_is_reused_and_keyed_by_the_contents(tmp_path, monkeypatch):
  root = tmp_path / 'pets'
  _folder(root, per_class=3, size=(12, 12))
  first = ip.image_folder(str(root), split='all').arrays()
  cache = tmp_path / 'cache' / 'image_folders'
  indices = sorted(cache.glob('*.json'))
  assert len(indices) == 1 and not list(cache.glob('*.tmp*'))
  assert json.loads(indices[0].read_text())['classes'] == ['cat', 'dog']
  assert isinstance(ip.image_folder(str(root)).source.base.pixels, np.memmap)

  def no_decoding(*args, **kwargs):
    raise AssertionError('decoded again')

  with monkeypatch.context() as m:
    m.setattr(Image, 'open', no_decoding)
    again = ip.image_folder(str(root), split='all').arrays()
  np.testing.assert_array_equal(again['image'], first['image'])
  _image(np.random.default_rng(9), (12, 12)).save(root / 'dog' / '001.jpg')  # an edit
  os.utime(root / 'dog' / '001.jpg', ns=(1, 1))
  changed = ip.image_folder(str(root), split='all').arrays()
  assert len(sorted(cache.glob('*.json'))) == 2
  assert not np.array_equal(changed['image'], first['image'])
  ip.image_folder(str(root), split='all', image_size=8)  # another size: another key
  assert len(sorted(cache.glob('*.json'))) == 3


def test_stream_is_deterministic_resumable_and_host_sharded(tmp_path):
  _folder(tmp_path / 'pets', per_class=12, size=(10, 14))
  data = ip.image_folder(str(tmp_path / 'pets'), split='all', image_size=8)  # 24 examples
  take = lambda it, n: [next(it) for _ in range(n)]
  whole = take(data.batches(8, seed=3), 7)  # 3 steps per epoch: crosses two epochs
  again = take(data.batches(8, seed=3, prefetch=0), 7)
  other = take(data.batches(8, seed=4), 1)
  assert not np.array_equal(whole[0]['image'], other[0]['image'])
  hosts = [take(data.batches(8, seed=3, process_index=p, process_count=2), 7) for p in (0, 1)]
  resumed = take(data.batches(8, seed=3, start_step=4), 3)
  for step in range(7):
    for key in ('image', 'label'):
      np.testing.assert_array_equal(again[step][key], whole[step][key])
      joined = np.concatenate([hosts[0][step][key], hosts[1][step][key]])
      np.testing.assert_array_equal(joined, whole[step][key])
      if step >= 4:
        np.testing.assert_array_equal(resumed[step - 4][key], whole[step][key])


def test_clear_errors(tmp_path):
  with pytest.raises(ValueError, match='does not exist'):
    ip.get('image_folder', path=str(tmp_path / 'nowhere'))
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
  with pytest.raises(ValueError, match='no PNG or JPEG'):
    ip.image_folder(str(tmp_path / 'empty'))
  rng = np.random.default_rng(0)
  mixed = tmp_path / 'mixed'
  mixed.mkdir()
  _image(rng, (10, 10)).save(mixed / 'a.png')
  _image(rng, (12, 9)).save(mixed / 'b.png')
  with pytest.raises(ValueError, match=r'10×10.*12×9.*data\.image_size'):
    ip.image_folder(str(mixed))
  assert ip.image_folder(str(mixed), split='all', image_size=6).image_shape == (6, 6, 3)
  (mixed / 'c.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(ValueError, match='c.jpg'):
    ip.image_folder(str(mixed), image_size=6)
  (mixed / 'c.jpg').unlink()
  (mixed / 'sub').mkdir()
  _image(rng, (10, 10)).save(mixed / 'sub' / 'd.png')
  with pytest.raises(ValueError, match='sub-folder'):
    ip.image_folder(str(mixed), image_size=6)
  with pytest.raises(ValueError, match='channels'):
    ip.image_folder(str(mixed), channels=2)
  with pytest.raises(ValueError, match='does not take'):
    ip.get('image_folder', path=str(mixed), data_dir='/tmp')


def test_any_tfds_dataset_by_name_under_mock_data(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  assert not ip.is_offline('tfds:oxford_flowers102') and not ip.is_digits('tfds:mnist')
  with tfds.testing.mock_data(num_examples=12):
    flowers = ip.get('tfds:oxford_flowers102', data_dir=str(tmp_path), image_size=16)
    assert (flowers.num_examples, flowers.image_shape, flowers.num_classes) == (12, (16, 16, 3),
                                                                                102)
    batch = next(flowers.batches(4, seed=0))
    assert batch['image'].shape == (4, 16, 16, 3) and batch['label'].max() < 102
    unlabelled = ip.get('tfds:cifar10', split='test', data_dir=str(tmp_path), label_key=None,
                        image_key='image')
    assert unlabelled.num_classes == 1 and np.all(unlabelled.arrays()['label'] == 0)
    with pytest.raises(ValueError, match='image_size'):  # varying sizes need one
      ip.get('tfds:oxford_flowers102', data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no feature 'picture'"):
      ip.get('tfds:cifar10', data_dir=str(tmp_path), image_key='picture')
  with pytest.raises(ValueError, match='tfds:NAME'):
    ip.get('tfds:')


def test_stats_round_trip_in_pytorch_fid_layout(tmp_path):
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(50, 4)), rng.normal(1.0, 2.0, size=(60, 4))
  stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
  evaluation.save_stats(tmp_path / 'a.npz', *stats[0])
  evaluation.save_stats(str(tmp_path / 'b'), *stats[1])  # .npz appended, as np.savez does
  with np.load(tmp_path / 'a.npz') as f:  # what pytorch-fid reads
    assert sorted(f.files) == ['mu', 'sigma'] and f['sigma'].dtype == np.float64
  mu, sigma = evaluation.load_stats(tmp_path / 'a.npz')
  np.testing.assert_array_equal(mu, stats[0][0])
  np.testing.assert_array_equal(sigma, stats[0][1])
  assert frechet_distance(*evaluation.load_stats(tmp_path / 'a.npz'),
                          *evaluation.load_stats(tmp_path / 'b.npz')) == \
      frechet_distance(*stats[0], *stats[1])
  np.savez(tmp_path / 'bad.npz', mean=mu, cov=sigma)
  with pytest.raises(ValueError, match=r"\['cov', 'mean'\]"):
    evaluation.load_stats(tmp_path / 'bad.npz')


def test_offline_sources_and_folders_need_no_tfds(tmp_path, monkeypatch):
  """tensorflow-datasets is an extra: without it the offline digits and image folders load, and
  a tfds dataset is one sentence naming the extra."""
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # `import` raises ImportError
  assert ip.get('mnist5k', split='test').num_examples == 500
  for i in range(3):
    Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f'{i}.png')
  assert ip.get('image_folder', path=str(tmp_path), split='all').num_examples == 3
  with pytest.raises(ip.DatasetUnavailable, match=r"pip install 'gan_jax\[tfds\]'"):
    ip.get('cifar10')


def test_round_trip_folder_train_sample_npz_eval_equals_the_loop(tmp_path):
  """Train on a folder; --mode=sample --eval_noise to .npz; --mode=eval --samples of that file
  gives the FID and KID the loop logged for the same step and generator (uint8 on both paths)."""
  import jax
  from gan_jax import configs, sampling, tasks
  _folder(tmp_path / 'images', per_class=12, size=(20, 20))
  c = configs.image_config('image_folder', 16)
  c.data.update(path=str(tmp_path / 'images'), batch_size=8)
  c.model.g.channels = c.model.d.channels = 8
  c.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=4)
  c.eval.update(metrics=('fid', 'kid'), features='identity', num_samples=20, batch_size=8,
                generators=('ema',))
  workdir = str(tmp_path / 'run')
  tasks.train_and_evaluate(c, workdir, devices=jax.devices()[:1], log=lambda m: None)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logged = [r for r in map(json.loads, f) if r.get('split') == 'eval'][-1]
  assert logged['step'] == 4 and logged['protocol']['quantize'] is True
  record = sampling.sample_workdir(None, workdir, num_samples=20, seed='eval', log=lambda m: None)
  assert record['seed'] == 'eval'
  path = os.path.join(workdir, 'samples_0000004.npz')
  with np.load(path) as f:
    assert f['images'].dtype == np.uint8 and f['images'].shape == (20, 16, 16, 3)
  result = sampling.evaluate_samples(None, workdir, path, log=lambda m: None)
  assert result['metrics']['fid'] == logged['fid'] and result['metrics']['kid'] == logged['kid']
  assert result['protocol']['eval_noise'] == 'given samples'
  with open(os.path.join(workdir, 'eval_samples_0000004.json')) as f:
    assert json.load(f) == result

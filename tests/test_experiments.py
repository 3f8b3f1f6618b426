"""Every experiment config loads, resolves its names, and trains a few steps (tfds datasets under
`tfds.testing.mock_data`); the headline WGAN-GP CIFAR config runs end to end on 8 devices."""
import contextlib
import functools
import glob
import importlib.util
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gan_jax import evaluation, gan, input_pipeline, logs, tasks, toy_data, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# phenomenon_*.py configs are measurements (task='phenomenon'), run by tests/test_phenomena.py.
EXPERIMENTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'experiments', '*.py'))
                     if not os.path.basename(p).startswith('phenomenon_'))


def load(name):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(ROOT, 'experiments', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def shrink(config, batch_size=8):
  """The same experiment, small enough for a test: few steps, narrow networks, small batches."""
  config.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=4)
  config.eval.num_samples = 200
  config.eval.generators = config.eval.generators[:1]  # one eval: the raw one is the same code
  offline_eval(config)
  if config.data.name not in toy_data.DATASETS:
    config.data.batch_size = batch_size
    for net in ('g', 'd'):
      if 'channels' in config.model[net]:
        config.model[net].channels = 8
      if 'channel_base' in config.model[net]:  # StyleGAN2: min(base / resolution, max)
        config.model[net].update(channel_base=256, channel_max=8)
      if 'w_dim' in config.model[net]:
        config.model[net].w_dim = 16
      if 'shared_dim' in config.model[net]:
        config.model[net].shared_dim = 8
  return config


def offline_eval(config):
  """Inception's weights cannot be downloaded here: such configs are evaluated on pixels, without
  the FID (a Fréchet distance in 3,072 or 12,288 dimensions needs a matrix square root of that
  size: minutes) and without the metrics that need class probabilities."""
  name = evaluation.resolve_features(config.eval, config.data.name,
                                     config.data.name in toy_data.DATASETS)
  if name == 'inception':
    config.eval.features = 'identity'
    config.eval.metrics = tuple(m for m in config.eval.metrics
                                if 'probs' not in evaluation.METRICS[m].needs and m != 'fid')
  return config


def assert_finite_record(record):
  values = [v for v in record.values() if isinstance(v, (int, float))]
  assert len(values) > 3 and np.all(np.isfinite(values)), record


def is_tfds(config):
  return config.data.name not in toy_data.DATASETS and config.data.name not in input_pipeline.OFFLINE


def test_the_issue_experiments_exist():
  assert {'default.py', 'gan_ring.py', 'gan_grid.py', 'minimax_ring.py', 'wgan_ring.py',
          'wgan_gp_ring.py', 'ebgan_ring.py', 'hinge_grid.py', 'wgan_cifar.py', 'sngan_cifar.py',
          'dcgan_cifar.py', 'dcgan_mnist.py', 'cgan_mnist.py', 'ebgan_mnist.py',
          'wgan_clip_mnist.py', 'dcgan_celeba64.py'} <= set(EXPERIMENTS)


# Experiments whose architecture, objective and regularisers another experiment's few-steps run
# already compiles and runs (two minutes of CI each): traced instead, at their own full sizes.
TRACED = {'biggan_cifar.py': 'biggan_mnist5k.py', 'stylegan2_cifar.py': 'stylegan2_mnist5k.py'}


@pytest.mark.parametrize('name', [e for e in EXPERIMENTS if e not in TRACED])
def test_experiment_runs_a_few_steps(name, tmp_path):
  config = load(name)
  assert config.train.steps >= 1000  # the real budget, before the override below
  shrink(config)
  if config.data.name == 'image_folder':  # your own images: a folder of PNGs the test writes
    config.data.path = str(tmp_path / 'images')
    for c in range(2):
      os.makedirs(tmp_path / 'images' / f'class_{c}')
      for i in range(32):
        Image.fromarray(np.random.default_rng(32 * c + i).integers(0, 256, (40, 36, 3), np.uint8)
                        ).save(tmp_path / 'images' / f'class_{c}' / f'{i}.png')
  mock = tfds.testing.mock_data(num_examples=64) if is_tfds(config) else contextlib.nullcontext()
  with mock:
    result = tasks.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1],
                                      log=lambda m: None)
  assert_finite_record(result['train'])
  assert result['train']['step'] == 4
  if config.eval.metrics:  # every configured metric was computed, with its protocol
    assert len(result['eval']) == len(config.eval.generators)
    for record in result['eval']:
      assert record['protocol']['num_samples'] == 200
      assert all(np.isfinite(v) for v in record.values() if isinstance(v, float)), record
  assert os.path.exists(tmp_path / 'samples' / 'step_0000004.png')


@pytest.mark.parametrize('name', sorted(TRACED))
def test_experiment_traces_at_its_own_size(name):
  """The config builds (data under mock_data, names, model), and one training call traces
  abstractly (`jax.eval_shape`: no XLA compile) at the config's own networks and batch, keeping
  the state's shapes and returning per-iteration metrics (ADA's p exactly when ADA is on). Its
  sibling, whose few-steps run trains, has the same generator, discriminator, objective and
  penalty."""
  config, sibling = offline_eval(load(name)), load(TRACED[name])
  assert config.train.steps >= 1000
  for field in ('generator', 'discriminator'):
    assert config.model[field] == sibling.model[field]
  assert (config.objective.name, config.penalty.name) == (sibling.objective.name,
                                                          sibling.penalty.name)
  with tfds.testing.mock_data(num_examples=64):
    exp = tasks.make_experiment(config, devices=jax.devices()[:1])
    n = config.train.steps_per_call
    batches = exp.batch_stream(0)(n)
  state = jax.eval_shape(exp.create_state, exp.init_key)
  new_state, metrics = jax.eval_shape(functools.partial(exp.train_call, num_steps=n), state,
                                      exp.loop_key, batches)
  shapes = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
  assert shapes(new_state) == shapes(state)
  assert {'d_loss', 'g_loss', 'd_penalty'} <= set(metrics)
  assert ('ada_p' in metrics) == config.tricks.ada.enabled  # what the sibling may not have
  assert all(m.shape[0] == n for m in jax.tree.leaves(metrics))


def test_wgan_cifar_end_to_end_on_eight_devices(tmp_path):
  """The tfds pipeline under mock data: two iterations of wgan_cifar.py sharded over 8 devices,
  then a resume that continues the same data stream."""
  config = load('wgan_cifar.py')
  config.train.update(steps=2, steps_per_call=1, log_every=1, eval_every=2, checkpoint_every=1)
  config.data.batch_size = 16
  config.model.g.channels = config.model.d.channels = 8
  config.eval.num_samples = 64
  offline_eval(config)
  assert config.optim.n_critic == 5 and config.penalty.name == 'wgan_gp'
  with tfds.testing.mock_data(num_examples=200):
    result = tasks.train_and_evaluate(config, str(tmp_path), log=lambda m: None)
    assert jax.device_count() == 8
    assert_finite_record(result['train'])
    assert result['train']['examples_per_sec'] > 0
    records = logs.read_metrics(str(tmp_path))
    assert [r['step'] for r in records if r['split'] == 'train'] == [1, 2]
    config.train.steps = 3
    result = tasks.train_and_evaluate(config, str(tmp_path), log=lambda m: None)
    assert result['train']['step'] == 3
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['1', '2', '3']


def test_missing_tfds_dataset_is_one_clear_sentence(tmp_path):
  config = load('wgan_cifar.py')
  config.data.data_dir = str(tmp_path / 'no_data')
  with pytest.raises(train.configs.ConfigError) as e:
    gan.GANExperiment(config)
  message = str(e.value)
  assert "'cifar10'" in message and str(tmp_path / 'no_data') in message
  assert 'tfds build cifar10' in message and '--config.data.data_dir' in message
  assert 'mnist5k' in message and '\n' not in message

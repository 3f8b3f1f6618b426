"""FID reference statistics in pytorch-fid's layout: written by --mode=stats, read back by
eval.reference_stats, giving the FID the run computes from its own real statistics."""
import jax
import numpy as np
import pytest

from gan_jax import configs, evaluation, gan


def tiny_image_config(tmp_path, **eval_fields):
  c = configs.image_config('mnist5k', 28)
  c.model.g.channels = c.model.d.channels = 8
  c.data.batch_size = 16
  c.eval.update(**{'num_samples': 96, 'batch_size': 48, 'cache_dir': str(tmp_path / 'cache'),
                   'features': 'identity', 'metrics': ('fid',), **eval_fields})
  return c


def test_stats_file_round_trip_gives_the_same_fid(tmp_path):
  exp = gan.GANExperiment(tiny_image_config(tmp_path), devices=jax.devices()[:1])
  path = str(tmp_path / 'mnist5k_train.npz')
  mu, sigma = evaluation.write_reference_stats(exp.evaluator, path, 96)
  ref = exp.evaluator.real_reference(96)
  np.testing.assert_array_equal(mu, ref['mu'])
  np.testing.assert_array_equal(evaluation.load_stats(path)[1], ref['sigma'])
  state = exp.init_state()
  own, _ = exp.evaluator(state.g_ema, state.g.batch_stats, 96)
  with_file = gan.GANExperiment(tiny_image_config(tmp_path, reference_stats=path),
                                devices=jax.devices()[:1])
  from_file, protocol = with_file.evaluator(state.g_ema, state.g.batch_stats, 96)
  assert from_file['fid'] == own['fid'] and protocol['real'] == f'statistics file {path}'


def test_stats_file_serves_only_the_fid(tmp_path):
  path = str(tmp_path / 'stats.npz')
  evaluation.save_stats(path, np.zeros(784), np.eye(784))
  with pytest.raises(configs.ConfigError, match='holds only mu and sigma, which kid cannot use'):
    gan.GANExperiment(tiny_image_config(tmp_path, reference_stats=path, metrics=('fid', 'kid')),
                      devices=jax.devices()[:1])
  with pytest.raises(configs.ConfigError, match='config.eval.reference_stats: .*no_such'):
    gan.GANExperiment(tiny_image_config(tmp_path, reference_stats=str(tmp_path / 'no_such.npz')),
                      devices=jax.devices()[:1])


def test_stats_mode_on_the_command_line(tmp_path):
  import os, subprocess, sys  # pylint: disable=import-outside-toplevel,multiple-imports
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  done = subprocess.run([sys.executable, '-m', 'gan_jax.main', '--config=experiments/dcgan_mnist.py',
                         f'--workdir={tmp_path}/stats', '--mode=stats', '--num_samples=64',
                         '--config.eval.features=identity',
                         f'--config.eval.cache_dir={tmp_path}/cache'],
                        cwd=root, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  mu, sigma = evaluation.load_stats(str(tmp_path / 'stats' / 'fid_stats_mnist5k_train_n64.npz'))
  assert mu.shape == (784,) and sigma.shape == (784, 784)

"""--mode=sample and gan_jax.load: the files, their layout, the seed semantics (the npz equals
load().generate), truncation, slerp, conditional labels, the CLI, and the refusals."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import checkpoints, configs, gan, sampling, tasks
from gan_jax import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = lambda message: None  # noqa: E731


def _train(config, workdir):
  tasks.train_and_evaluate(config, str(workdir), devices=jax.devices()[:1], log=QUIET)
  return str(workdir)


@pytest.fixture(scope='module')
def image_run(tmp_path_factory):
  c = configs.image_config('mnist5k', 28)
  c.data.batch_size = 16
  c.model.g.channels = c.model.d.channels = 8
  c.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=2)
  c.eval.update(metrics=(), num_samples=16, batch_size=16)
  return _train(c, tmp_path_factory.mktemp('image_run'))


@pytest.fixture(scope='module')
def toy_run(tmp_path_factory):
  c = configs.toy_config()
  c.data.batch_size = 32
  c.model.g.hidden = c.model.d.hidden = (16,)
  c.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=4)
  c.eval.update(num_samples=64, batch_size=32)
  return _train(c, tmp_path_factory.mktemp('toy_run'))


def test_npz_layout_and_load_generate_equal(image_run):
  record = sampling.sample_workdir(None, image_run, num_samples=21, seed=3, log=QUIET)
  assert record['step'] == 4 and record['generator'] == 'ema' and record['seed'] == 3
  with np.load(os.path.join(image_run, 'samples_0000004.npz')) as f:
    images = f['images']
    assert set(f.files) == {'images'}  # unconditional: no labels
  assert images.dtype == np.uint8 and images.shape == (21, 28, 28, 1)
  with open(os.path.join(image_run, 'samples_0000004.json')) as f:
    assert json.load(f) == record
  assert record['data'] == 'mnist5k' and record['num_samples'] == 21

  import gan_jax
  g = gan_jax.load(image_run)
  assert (g.step, g.num_classes, g.image_shape) == (4, 0, (28, 28, 1))
  assert g.config.data.name == 'mnist5k'
  np.testing.assert_array_equal(g.generate(21, seed=3), images)
  np.testing.assert_array_equal(g.generate(5, seed=3), images[:5])  # a prefix: batch-invariant
  assert not np.array_equal(g.generate(5, seed=4), images[:5])
  x = g.generate(4, seed=3, output='float')
  assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
  d = g.discriminate(images[:4])
  assert d.shape == (4,) and np.all(np.isfinite(d))
  np.testing.assert_allclose(d, g.discriminate(images[:4].astype(np.float32) / 127.5 - 1),
                             rtol=1e-5, atol=1e-5)
  # An older step and the raw generator are other samples.
  older = gan_jax.load(image_run, step=2, generator='raw')
  assert older.step == 2 and not np.array_equal(older.generate(4, seed=3), images[:4])


def test_truncation_bounds_z_and_none_is_plain_normal():
  key, idx = jax.random.key(0), np.arange(64)
  plain = np.asarray(sampling.latents(key, idx, 16))
  expected = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, j), (16,)))
                       for j in range(3)])
  np.testing.assert_array_equal(plain[:3], expected)
  for psi in (0.05, 1.0):
    z = np.asarray(sampling.latents(key, idx, 16, psi))
    assert np.all(np.abs(z) <= psi)
    inside = np.abs(plain) <= psi  # only the components out of range are resampled
    np.testing.assert_array_equal(z[inside], plain[inside])
    assert np.std(z) > psi / 4  # resampled, not clipped to the bound
  # Each row depends on its index alone.
  np.testing.assert_array_equal(np.asarray(sampling.latents(key, idx[10:20], 16, 0.5)),
                                np.asarray(sampling.latents(key, idx, 16, 0.5))[10:20])


def test_slerp_endpoints_and_norms():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=128), rng.normal(size=128)
  path = sampling.slerp(a, b, np.linspace(0, 1, 8))
  np.testing.assert_allclose(path[0], a, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(path[-1], b, rtol=1e-5, atol=1e-5)
  norms = np.linalg.norm(path, axis=1)
  lo, hi = sorted([np.linalg.norm(a), np.linalg.norm(b)])
  assert np.all(norms > 0.95 * lo) and np.all(norms < 1.05 * hi)
  linear = np.linalg.norm((a + b) / 2)  # the straight line's midpoint falls inside the sphere
  assert linear < 0.8 * lo
  np.testing.assert_allclose(sampling.slerp(a, a, [0, 0.5, 1]), np.stack([a] * 3), rtol=1e-5)


def test_toy_samples_are_float_vectors(toy_run):
  sampling.sample_workdir(None, toy_run, num_samples=40, seed=1, log=QUIET)
  with np.load(os.path.join(toy_run, 'samples_0000004.npz')) as f:
    assert set(f.files) == {'samples'}
    samples = f['samples']
  assert samples.dtype == np.float32 and samples.shape == (40, 2)
  g = sampling.load(toy_run)
  assert g.image_shape is None and g.data_shape == (2,)
  np.testing.assert_array_equal(g.generate(40, seed=1), samples)
  assert g.discriminate(samples).shape == (40,)
  with pytest.raises(configs.ConfigError, match='toy data'):
    sampling.sample_workdir(None, toy_run, num_samples=4, sample_format='png', log=QUIET)


def test_missing_step_names_the_saved_ones(toy_run):
  with pytest.raises(configs.ConfigError, match=r'--step=3: .*saved steps are 4'):
    sampling.load(toy_run, step=3)


def test_pix2pix_and_phenomenon_runs_are_refused(tmp_path):
  for task in ('pix2pix', 'phenomenon'):
    workdir = tmp_path / task
    workdir.mkdir()
    (workdir / 'config.json').write_text(json.dumps({'task': task, 'seed': 0}))
    with pytest.raises(configs.ConfigError, match='--mode=sample is for GAN runs'):
      sampling.sample_workdir(None, str(workdir), num_samples=4, log=QUIET)
    assert not os.path.exists(workdir / '.lock')


def test_conditional_counts_and_labels(tmp_path):
  c = configs.image_config('mnist5k', 28)
  c.data.batch_size = 16
  c.model.g.update(channels=8, conditioning='concat')
  c.model.d.update(channels=8, conditioning='concat')
  c.eval.update(metrics=(), num_samples=16, batch_size=16)
  # Its initial state as the checkpoint of step 0 (labels and counts need no training).
  exp = gan.GANExperiment(c, devices=jax.devices()[:1])
  workdir = str(tmp_path)
  workdir_lib.prepare(workdir, c, None, overwrite=False)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), 3)
  ckpts.save(exp.init_state())
  ckpts.close()
  record = sampling.sample_workdir(None, workdir, num_samples=25, sample_format='both',
                                   interpolate=2, log=QUIET)
  assert record['class_counts'] == {str(k): 3 if k < 5 else 2 for k in range(10)}
  with np.load(os.path.join(workdir, 'samples_0000000.npz')) as f:
    np.testing.assert_array_equal(f['labels'], np.arange(25) % 10)
    assert f['images'].shape == (25, 28, 28, 1)
  from PIL import Image
  first = Image.open(os.path.join(workdir, 'samples_0000000', '000000.png'))
  assert first.mode == 'L' and first.size == (28, 28)
  assert len(os.listdir(os.path.join(workdir, 'samples_0000000'))) == 25
  grid = Image.open(os.path.join(workdir, 'interpolation_0000000.png'))
  assert grid.size == (8 * 29 + 1, 2 * 29 + 1)
  one = sampling.sample_workdir(None, workdir, num_samples=6, labels=[3], log=QUIET)
  assert one['class_counts']['3'] == 6 and sum(one['class_counts'].values()) == 6
  g = sampling.load(workdir)
  assert g.num_classes == 10
  assert g.discriminate(g.generate(4, labels=3), labels=3).shape == (4,)
  with pytest.raises(configs.ConfigError, match='classes 0..9'):
    g.generate(2, labels=10)


def _cli(*args):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_sample(image_run):
  out = _cli(f'--workdir={image_run}', '--mode=sample', '--num_samples=10', '--step=2',
             '--generator=raw', '--sample_seed=1', '--truncation=0.7', '--sample_format=both',
             '--interpolate=2')
  assert out.returncode == 0, out.stderr
  for name in ('samples_0000002.npz', 'samples_0000002.json', 'interpolation_0000002.png',
               'samples_0000002/000009.png'):
    assert os.path.exists(os.path.join(image_run, name)), name
  with open(os.path.join(image_run, 'samples_0000002.json')) as f:
    record = json.load(f)
  assert (record['generator'], record['seed'], record['truncation']) == ('raw', 1, 0.7)
  bad = _cli(f'--workdir={image_run}', '--mode=sample', '--step=3')
  assert bad.returncode != 0
  lines = bad.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error:') and '2, 4' in lines[0], bad.stderr


@pytest.mark.parametrize('args, message', [
    (['--truncation=-1'], '--truncation=-1 must be > 0'),
    (['--interpolate=0'], '--interpolate=0 must be >= 1'),
    (['--generator=best'], 'generator'),
    (['--labels=a'], '--labels=a'),
    (['--step=-2'], '--step=-2 must be >= 0'),
])
def test_cli_flag_errors(args, message, tmp_path):
  from gan_jax import main
  from absl import flags
  argv = ['gan_jax.main', f'--workdir={tmp_path}', '--mode=sample', *args]
  try:
    with pytest.raises(SystemExit) as e:
      main.parse_flags(argv)
  finally:
    flags.FLAGS.unparse_flags()
  text = str(e.value.code)
  assert text.startswith('error:') and message in text and '\n' not in text


def test_print_config_touches_nothing(tmp_path):
  out = _cli('--mode=print_config', '--config=experiments/dcgan_mnist.py',
             '--config.train.steps=7')
  assert out.returncode == 0, out.stderr
  printed = json.loads(out.stdout)
  assert printed['train']['steps'] == 7 and printed['data']['name'] == 'mnist5k'
  (tmp_path / 'config.json').write_text(out.stdout)
  again = _cli('--mode=print_config', f'--workdir={tmp_path}')
  assert again.returncode == 0 and json.loads(again.stdout) == printed
  assert sorted(os.listdir(tmp_path)) == ['config.json']


def test_read_samples_refuses_what_is_not_this_runs_samples(tmp_path):
  good = np.zeros((3, 4, 4, 1), np.uint8)
  cases = {
      'other.npz': ({'x': good}, r"needs an array images \(N, H, W, C\) uint8 or samples "
                                 r"\(N, D\); found \['x'\]"),
      'shape.npz': ({'images': np.zeros((3, 5, 4, 1), np.uint8)},
                    r"images has shape \(3, 5, 4, 1\); this run's samples are \(N, 4, 4, 1\)"),
      'range.npz': ({'images': np.full((3, 4, 4, 1), 2.0, np.float32)},
                    r'images must be uint8 or floats in \[-1, 1\]; found float32 in \[2.0, 2.0\]'),
  }
  for name, (arrays, message) in cases.items():
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(configs.ConfigError, match=message):
      sampling.read_samples(str(tmp_path / name), (4, 4, 1))
  (tmp_path / 'text.npz').write_text('not a zip')
  with pytest.raises(configs.ConfigError, match=r'text.npz: not a readable .npz'):
    sampling.read_samples(str(tmp_path / 'text.npz'), (4, 4, 1))
  np.savez(tmp_path / 'ok.npz', images=good, labels=np.arange(3))
  x, labels = sampling.read_samples(str(tmp_path / 'ok.npz'), (4, 4, 1))
  assert x.dtype == np.uint8 and list(labels) == [0, 1, 2]


def test_eval_samples_are_the_eval_noise_samples(image_run):
  """load().eval_samples(n) is the CLI's --eval_noise file, and unlike seed 0's."""
  import gan_jax
  g = gan_jax.load(image_run)
  record = sampling.sample_workdir(None, image_run, num_samples=10, seed='eval', log=QUIET)
  assert record['seed'] == 'eval'
  with np.load(os.path.join(image_run, 'samples_0000004.npz')) as f:
    np.testing.assert_array_equal(f['images'], g.eval_samples(10))
  assert not np.array_equal(g.eval_samples(10), g.generate(10, seed=0))
  with pytest.raises(configs.ConfigError, match=r"seed='x': an integer >= 0, or 'eval'"):
    g.generate(2, seed='x')


def test_eval_truncation_is_the_evals_noise_recorded_in_its_protocol(tmp_path):
  """eval.truncation ψ: the loop scores G on latents with every |z_i| <= ψ, says so in the
  protocol, and load().eval_samples(n) draws the same truncated noise (its metrics reproduce)."""
  import gan_jax
  c = configs.toy_config()
  c.data.batch_size = 32
  c.model.g.hidden = c.model.d.hidden = (16,)
  c.train.update(steps=2, steps_per_call=2, log_every=2, eval_every=2, checkpoint_every=2)
  c.eval.update(num_samples=64, batch_size=32, truncation=0.5)
  workdir = _train(c, tmp_path / 'run')
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logged = [r for r in map(json.loads, f) if r.get('split') == 'eval']
  assert logged and all(r['protocol']['truncation'] == 'each |z_i| <= 0.5 (components redrawn)'
                        for r in logged)
  g = gan_jax.load(workdir)
  exp = gan.GANExperiment(c, devices=jax.devices()[:1])
  z = sampling.latents(exp.eval_key, np.arange(64), c.model.z_dim, 0.5)
  assert float(np.abs(z).max()) <= 0.5
  np.testing.assert_array_equal(g.eval_samples(64), g.generate(64, seed='eval', truncation=0.5))
  assert not np.array_equal(g.eval_samples(64), g.generate(64, seed='eval'))

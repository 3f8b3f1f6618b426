"""The phenomena experiments: every phenomenon_*.py config runs (shrunk) and shows its effect; the
numerics behind them (JSD by quadrature, mode histograms, the Gaussian generator) by hand."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import configs, logs, phenomena, steps
from gan_jax.metrics import mode_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Per config: overrides that shrink it to a few steps, and what its results must show even then.
SHRINK = {
    'optimal_discriminator': {'q_means': (2.0, 0.0), 'plot_means': (2.0,), 'd_steps': 200},
    'vanishing_gradients': {'g_stages': (0,), 'd_steps': 200, 'measure_every': 100,
                            'num_samples': 1024},
    'critic_vs_discriminator': {'d_steps': 300},
    'mode_collapse': {'snapshot_every': 250, 'num_shown': 3},
}


def load_experiment(stem):
  spec = importlib.util.spec_from_file_location(stem, os.path.join(ROOT, 'experiments',
                                                                   f'{stem}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def load(name):
  return load_experiment(f'phenomenon_{name}')


def shrink(name):
  config = load(name)
  assert config.task == 'phenomenon' and config.phenomenon.name == name
  config.phenomenon.update(SHRINK[name])
  if name == 'mode_collapse':
    config.train.steps = 500
    config.eval.num_samples = 1000
    config.phenomenon.compare.r1.train.steps = 250
  return config


def test_every_config_is_tested():
  names = {p[len('phenomenon_'):-3] for p in os.listdir(os.path.join(ROOT, 'experiments'))
           if p.startswith('phenomenon_')}
  assert names == set(SHRINK) == set(phenomena.PHENOMENA)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  """Each shrunk config run once: {name: (results, workdir)}."""
  out = {}
  for name in SHRINK:
    workdir = tmp_path_factory.mktemp(name)
    out[name] = (phenomena.run(shrink(name), str(workdir)), workdir)
  return out


@pytest.mark.parametrize('name', sorted(SHRINK))
def test_config_runs_and_writes_its_outputs(name, results):
  result, workdir = results[name]
  assert result['phenomenon'] == name
  with open(workdir / 'results.json') as f:
    assert json.load(f) == result
  assert json.load(open(workdir / 'config.json'))['phenomenon']['name'] == name
  for plot in result['plots']:
    assert plot.endswith('.png') and (workdir / plot).stat().st_size > 10_000
  numbers = [v for v in jax.tree.leaves(result) if isinstance(v, float)]
  assert len(numbers) > 5 and np.all(np.isfinite(numbers))


def test_optimal_discriminator_loss_is_bounded_by_the_jsd(results):
  result, _ = results['optimal_discriminator']
  far, same = result['q']
  assert same['jsd'] == 0.0 and same['optimal_loss'] == pytest.approx(math.log(4))
  assert 0.3 < far['jsd'] < math.log(2)
  for q in (far, same):  # the BCE of any D is at least its value at D*, log 4 - 2·JSD
    assert q['d_loss_quadrature'] >= q['optimal_loss'] - 1e-4
    assert q['d_loss_quadrature'] < q['optimal_loss'] + 0.05  # 200 steps get close
  assert same['max_abs_d_error'] < 0.05  # D* = 1/2 everywhere when q = p


def test_saturating_gradient_vanishes_as_d_rejects_the_fakes(results):
  stage, = results['vanishing_gradients'][0]['stages']
  assert stage['d_step'] == [0, 100, 200]
  assert stage['d_fake'][-1] < stage['d_fake'][0] / 30  # D got much better
  sat, ns = stage['saturating_grad_norm'], stage['non_saturating_grad_norm']
  assert sat[-1] < sat[0] / 3  # vanishes with D(G(z)) ...
  assert ns[-1] > ns[0]        # ... while the non-saturating gradient grows
  assert stage['final_ratio'] < 0.03


def test_discriminator_saturates_where_the_critic_does_not(results):
  models = results['critic_vs_discriminator'][0]['models']
  d, gp, clip = models['discriminator'], models['wgan_gp'], models['wgan_clip']
  assert d['output_at_fake_mean'] < 0.01 and d['output_at_real_mean'] > 0.99
  assert d['grad_at_fake_over_max'] < 0.01  # flat where the fakes are
  for critic in (gp, clip):                  # a usable slope where the fakes are
    assert critic['grad_at_fake_over_max'] > 0.2
  assert 0.5 < gp['mean_abs_grad_at_fake'] < 1.5  # the penalty holds the slope near 1


def test_mode_collapse_records_every_snapshot(results):
  result, workdir = results['mode_collapse']
  gan, r1 = result['runs']['GAN'], result['runs']['r1']
  assert gan['step'] == [0, 250, 500] and r1['step'] == [0, 250]
  for run in (gan, r1):
    assert all(m == int(np.sum(np.asarray(h) > 0)) for m, h in zip(run['modes'], run['hq']))
    np.testing.assert_allclose(np.sum(run['mass'], axis=1), 1.0, rtol=1e-6)
  # A generator that learns 10× faster than D puts most samples on one mode, then on another.
  assert gan['collapsed_snapshots'] == 2 and gan['hops'] == 1
  assert r1['collapsed_snapshots'] <= 1  # R1 spreads its samples
  records = logs.read_metrics(str(workdir))
  assert [(r['protocol']['run'], r['step']) for r in records] == [
      ('GAN', 0), ('GAN', 250), ('GAN', 500), ('r1', 0), ('r1', 250)]
  assert all(r['split'] == 'eval' and r['protocol']['num_samples'] == 1000 for r in records)


def test_jsd_by_quadrature():
  xs = np.linspace(-1.0, 2.5, 350_001)
  p = ((xs >= 0) & (xs <= 1)).astype(float)
  q = ((xs >= 0.5) & (xs <= 1.5)).astype(float)
  # U[0,1] vs U[0.5,1.5]: half of each lies where m = p/2, so JSD = ½ log 2.
  assert phenomena.jsd(p, q, xs) == pytest.approx(0.5 * math.log(2), abs=1e-4)
  assert phenomena.jsd(p, p, xs) == 0.0
  disjoint = ((xs >= 1.25) & (xs <= 2.25)).astype(float)
  assert phenomena.jsd(p, disjoint, xs) == pytest.approx(math.log(2), abs=1e-4)
  g1, g2 = phenomena.normal_pdf(xs, 0.5, 0.3), phenomena.normal_pdf(xs, 1.0, 0.4)
  assert phenomena.jsd(g1, g2, xs) == pytest.approx(phenomena.jsd(g2, g1, xs), rel=1e-12)


def test_mode_histograms_agree_with_mode_metrics():
  rng = np.random.default_rng(0)
  centers = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  x = centers[rng.choice([0, 0, 0, 1], 500)] + 0.05 * rng.normal(size=(500, 2))
  mass, hq = phenomena.mode_histograms(x, centers, std=0.02)
  m = mode_metrics(x, centers, 0.02)
  assert m['modes'] == np.sum(hq > 0) == 2
  assert m['hq_fraction'] == pytest.approx(hq.sum() / 500)
  np.testing.assert_allclose(mass, [0.75, 0.25, 0, 0], atol=0.05)


def test_hopping_summary_by_hand():
  mass = np.array([[0.4, 0.3, 0.3], [1.0, 0.0, 0.0], [0.0, 0.9, 0.1], [0.0, 0.8, 0.2],
                   [0.6, 0.0, 0.4]])
  h = phenomena._hopping(mass)
  assert h['dominant_mode'] == [0, 0, 1, 1, 0]
  assert h['collapsed_snapshots'] == 4 and h['modes_collapsed_onto'] == 2
  assert h['hops'] == 2  # 0 → 1 and 1 → 0; the first snapshot is not collapsed
  np.testing.assert_allclose(h['mass_tv_between_snapshots'], [0.6, 1.0, 0.1, 0.8])


def test_gaussian_generator_samples_its_gaussian():
  gan, _ = phenomena.setup(load('optimal_discriminator'))
  state = phenomena.gaussian_generator(steps.create_state(gan, jax.random.key(0)), 1.5, 0.7)
  x = np.asarray(steps.generate(gan, state.g.params, {}, steps.sample_z(gan, jax.random.key(1),
                                                                        100_000)))
  assert x.shape == (100_000, 1)
  assert abs(x.mean() - 1.5) < 0.01 and abs(x.std() - 0.7) < 0.01


def test_bad_phenomenon_config_names_the_choices(tmp_path):
  config = load('optimal_discriminator')
  config.phenomenon.name = 'mode_colapse'
  with pytest.raises(configs.ConfigError, match="config.phenomenon.name='mode_colapse' is not "
                     'known; valid choices: critic_vs_discriminator, mode_collapse, '
                     'optimal_discriminator, vanishing_gradients'):
    phenomena.run(config, str(tmp_path))
  config = load('optimal_discriminator')
  config.phenomenon.d_step = 5
  with pytest.raises(configs.ConfigError, match='optimal_discriminator has no option d_step; its '
                     'options: q_means, q_std, d_steps, plot_means'):
    phenomena.run(config, str(tmp_path))
  config = load('optimal_discriminator')
  config.model.g.hidden = (8,)
  with pytest.raises(configs.ConfigError, match='needs the linear one'):
    phenomena.run(config, str(tmp_path / 'linear'))
  (tmp_path / 'train').mkdir()  # a training run's workdir is not overwritten by a phenomenon
  (tmp_path / 'train' / 'config.json').write_text(json.dumps(configs.to_dict(load_experiment('gan_ring'))))
  with pytest.raises(configs.ConfigError, match=f'workdir {tmp_path}/train holds a run of another '
                     'config'):
    phenomena.run(load('optimal_discriminator'), str(tmp_path / 'train'))
  assert os.listdir(tmp_path / 'train') == ['config.json']


def test_command_line(tmp_path):
  """The entry point dispatches task='phenomenon'; a bad name is one error line."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  cmd = [sys.executable, '-m', 'gan_jax.main',
         '--config=experiments/phenomenon_optimal_discriminator.py',
         f'--workdir={tmp_path}', '--config.phenomenon.d_steps=5',
         '--config.phenomenon.q_means=(1.0,0.0)', '--config.phenomenon.plot_means=(1.0,)']
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert json.load(open(tmp_path / 'results.json'))['d_steps'] == 5
  assert (tmp_path / 'optimal_discriminator.png').exists()

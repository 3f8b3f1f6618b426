"""Every experiment config loads, resolves its names, and trains a few steps."""
import glob
import importlib.util
import os

import chex
import jax
import pytest

from gan_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'experiments', '*.py')))


def load(name):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(ROOT, 'experiments', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_the_issue_experiments_exist():
  assert {'default.py', 'gan_ring.py', 'gan_grid.py', 'minimax_ring.py', 'wgan_ring.py',
          'wgan_gp_ring.py', 'ebgan_ring.py', 'hinge_grid.py'} <= set(EXPERIMENTS)


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_experiment_runs_a_few_steps(name, tmp_path):
  config = load(name)
  assert config.train.steps >= 1000  # the real budget, before the override below
  config.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=4)
  config.eval.num_samples = 200
  result = train.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1],
                                    log=lambda m: None)
  chex.assert_tree_all_finite(result['train'])
  assert result['train']['step'] == 4
  assert os.path.exists(tmp_path / 'samples' / 'step_0000004.png')

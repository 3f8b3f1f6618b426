"""The task registry: every task dispatches from config.task and runs; the loop knows no task."""
import ast
import os

import jax
import pytest

from gan_jax import configs, experiment, logs, tasks
from test_phenomena import load_experiment  # tests/ is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_gan():
  c = load_experiment('gan_ring')
  c.data.batch_size = 32
  c.model.g.hidden = c.model.d.hidden = (16,)
  c.train.update(steps=4, steps_per_call=2, log_every=2, eval_every=4, checkpoint_every=4)
  c.eval.num_samples = 200
  return c


def tiny_pix2pix():
  c = load_experiment('pix2pix_inpaint_mnist')
  c.data.batch_size = 8
  c.model.g.update(channels=4, depth=2)
  c.model.d.update(channels=4, receptive_field=1)
  c.train.update(steps=2, steps_per_call=1, log_every=1, eval_every=2, checkpoint_every=2)
  c.eval.update(metrics=('fid',), features='identity', num_samples=32, batch_size=16,
                num_plot=2)
  return c


def tiny_phenomenon():
  c = load_experiment('phenomenon_optimal_discriminator')
  c.phenomenon.update(d_steps=5, q_means=(1.0, 0.0), plot_means=(1.0,))
  return c


# One small config per task: a new entry of tasks.TASKS needs one here (checked below).
TINY = {'gan': tiny_gan, 'pix2pix': tiny_pix2pix, 'phenomenon': tiny_phenomenon}


def test_every_task_has_a_tiny_config():
  assert set(TINY) == set(tasks.TASKS)


@pytest.mark.parametrize('name', sorted(tasks.TASKS))
def test_every_task_runs_from_its_config(name, tmp_path):
  config = TINY[name]()
  assert tasks.get(config) is tasks.TASKS[name]
  result = tasks.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1],
                                    log=lambda m: None)
  assert os.path.exists(tmp_path / 'config.json')
  if tasks.TASKS[name].experiment is None:  # a measurement: its numbers
    assert os.path.exists(tmp_path / 'results.json') and result
    return
  exp = tasks.make_experiment(config, devices=jax.devices()[:1])
  assert isinstance(exp, experiment.Experiment)
  records = logs.read_metrics(str(tmp_path))
  last = config.train.steps
  assert result['train']['step'] == last and {'g_lr', 'd_lr'} <= set(result['train'])
  assert [r['step'] for r in records if r['split'] == 'eval'] == [last] * len(
      config.eval.generators)
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == [str(last)]
  assert os.listdir(tmp_path / 'samples') == [f'step_{last:07d}.png']
  # --mode=eval through the same dispatch, from the workdir's config.json alone
  evaluated = tasks.evaluate_workdir(None, str(tmp_path), log=lambda m: None)
  assert [r['step'] for r in evaluated] == [last] * len(config.eval.generators)


def test_unknown_task_names_the_choices():
  config = tiny_gan()
  with config.unlocked():
    config.task = 'gann'
  with pytest.raises(configs.ConfigError, match="config.task='gann' is not known; valid "
                                                'choices: gan, phenomenon, pix2pix'):
    tasks.make_experiment(config)


def test_the_loop_and_the_shared_experiment_import_no_task():
  task_modules = {'gan', 'pix2pix', 'phenomena', 'tasks', 'steps', 'toy_data', 'input_pipeline',
                  'paired_data'}
  for module in ('train', 'experiment'):
    tree = ast.parse(open(os.path.join(ROOT, 'gan_jax', f'{module}.py')).read())
    imported = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('gan_jax'):
        imported |= {a.name for a in node.names} | {node.module.split('.')[-1]}
      elif isinstance(node, ast.Import):
        imported |= {a.name.split('.')[-1] for a in node.names}
    assert not imported & task_modules, (module, imported & task_modules)

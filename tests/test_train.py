"""The loop: the workdir contract, resume = uninterrupted (bit for bit), SIGTERM, divergence,
corrupt checkpoints, and a workdir that holds another run."""
import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from gan_jax import checkpoints, configs, gan, logs, steps, tasks, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE = None  # set per test to the first device


def tiny_config(total=40):
  c = configs.toy_config()
  c.data.batch_size = 32
  c.model.g.hidden = (32, 32)
  c.model.d.hidden = (32, 32)
  c.train.update(steps=total, steps_per_call=5, log_every=10, eval_every=20, checkpoint_every=20,
                 keep=3)
  c.eval.num_samples = 400
  return c


def run(config, workdir, **kwargs):
  messages = []
  result = tasks.train_and_evaluate(config, str(workdir), devices=jax.devices()[:1],
                                    log=messages.append, **kwargs)
  return result, messages


def final_state(config, workdir):
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), 3)
  state = ckpts.restore_latest(exp.init_state())
  ckpts.close()
  return jax.device_get(state)


def test_workdir_contract(tmp_path):
  config = tiny_config()
  result, _ = run(config, tmp_path)
  with open(tmp_path / 'config.json') as f:
    assert json.load(f) == configs.to_dict(config)
  records = logs.read_metrics(str(tmp_path))
  train_records = [r for r in records if r['split'] == 'train']
  eval_records = [r for r in records if r['split'] == 'eval']
  assert [r['step'] for r in train_records] == [10, 20, 30, 40]
  for r in train_records:
    assert {'d_loss', 'g_loss', 'd_real', 'd_fake', 'steps_per_sec'} <= set(r)
  assert [(r['step'], r['protocol']['generator']) for r in eval_records] == [
      (20, 'ema'), (20, 'raw'), (40, 'ema'), (40, 'raw')]
  for r in eval_records:
    assert {'modes', 'hq_fraction', 'reverse_kl'} <= set(r)
    assert r['protocol']['num_samples'] == 400 and r['protocol']['num_modes'] == 8
  assert result['eval'][0] == eval_records[-2]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['20', '40']
  assert sorted(os.listdir(tmp_path / 'samples')) == ['step_0000020.png', 'step_0000040.png']
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(tmp_path))


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path):
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  run(tiny_config(40), straight)
  run(tiny_config(20), resumed)
  _, messages = run(tiny_config(40), resumed)  # train.steps may grow between runs
  assert any('resuming from the checkpoint of step 20' in m for m in messages)
  chex.assert_trees_all_equal(final_state(tiny_config(), str(straight)),
                              final_state(tiny_config(), str(resumed)))


def augmented_config(total):
  """A tiny image GAN with every stateful switch on: ADA (p tuned every 2 iterations, fast),
  DiffAugment, LeCam, top-k (k decaying with the step) and the EMA's warm-up (the stateless
  switches are the plain step at strength 0: tests/test_tricks.py)."""
  c = configs.image_config('mnist5k', 16)
  c.data.batch_size = 8
  c.model.z_dim = 8
  c.model.g.channels = c.model.d.channels = 4
  c.tricks.diffaugment = 'color,translation,cutout'
  c.tricks.ada.update(enabled=True, interval=2, speed_images=200, target=0.0, p_init=0.2)
  c.tricks.lecam.weight = 0.3
  c.tricks.top_k.update(enabled=True, gamma=0.5, decay_every=3, min_fraction=0.5)
  c.optim.ema_start = 3
  c.train.update(steps=total, steps_per_call=2, log_every=2, eval_every=100, checkpoint_every=4)
  c.eval.metrics = ()
  return c


def test_resume_with_every_stateful_switch_on_equals_uninterrupted(tmp_path):
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  run(augmented_config(8), straight)
  run(augmented_config(4), resumed)
  run(augmented_config(8), resumed)
  a = final_state(augmented_config(8), str(straight))
  chex.assert_trees_all_equal(a, final_state(augmented_config(8), str(resumed)))
  assert float(a.aux['ada_p']) != 0.2 and float(a.aux['lecam_real']) != 0  # they moved alike
  records = [r for r in logs.read_metrics(str(straight)) if r['split'] == 'train']
  assert [r['step'] for r in records] == [2, 4, 6, 8] and all('ada_p' in r for r in records)
  # k = max(⌊8 · 0.5^⌊t/3⌋⌋, 4) at t = 0..7, each record the mean over its two iterations
  assert [r['g_top_k'] for r in records] == [8, 6, 4, 4]


def test_async_save_holds_the_state_saved_while_later_calls_donate_it(tmp_path):
  """`save` returns before the write ends and the loop's next calls donate the state's buffers
  meanwhile (on CPU the host copy could alias them): the checkpoint holds the saved state."""
  config = tiny_config()
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  call = exp.train_fn(5)
  state, _ = call(exp.init_state(), exp.loop_key)
  saved = jax.device_get(state)
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints'), 3)
  ckpts.save(state)
  for _ in range(4):  # dispatched (and their inputs donated) while the write is in flight
    state, _ = call(state, exp.loop_key)
  assert ckpts.manager.is_saving_in_progress() and ckpts.steps() == [5]
  ckpts.close()
  assert int(state.step) == 25
  chex.assert_trees_all_equal(final_state(config, str(tmp_path)), saved)


def test_checkpoints_from_before_the_augmentation_state_restore(tmp_path):
  """A checkpoint of the state as it was before GANState.aux (no such node) restores into
  today's state (aux = {} without ADA); one lacking a real array is still refused."""
  import flax.struct  # pylint: disable=g-import-not-at-top

  class Before(flax.struct.PyTreeNode):  # GANState's fields before `aux`
    step: jax.Array
    g: object
    d: object
    g_ema: object

  exp = gan.GANExperiment(tiny_config(), devices=jax.devices()[:1])
  state, _ = exp.train_fn(5)(exp.init_state(), exp.loop_key)
  saved = jax.device_get(state)
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints'), 3)
  ckpts.save(Before(state.step, state.g, state.d, state.g_ema))
  ckpts.close()
  chex.assert_trees_all_equal(final_state(tiny_config(), str(tmp_path)), saved)
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints'), 3)
  with pytest.raises(configs.ConfigError, match='aux.ada_p is missing from the checkpoint'):
    ckpts.restore(5, state.replace(aux={'ada_p': jnp.float32(0)}))
  ckpts.close()


def test_checkpoints_of_earlier_versions_restore(tmp_path):
  """Checkpoints written by orbax's standard handler (with sharding files; gan_jax before
  asynchronous saves) restore unchanged."""
  exp = gan.GANExperiment(tiny_config(), devices=jax.devices()[:1])
  state, _ = exp.train_fn(5)(exp.init_state(), exp.loop_key)
  saved = jax.device_get(state)
  with ocp.CheckpointManager(str(tmp_path / 'checkpoints')) as manager:
    manager.save(5, args=ocp.args.StandardSave(state))
  chex.assert_trees_all_equal(final_state(tiny_config(), str(tmp_path)), saved)


def test_sigterm_saves_then_resume_equals_uninterrupted(tmp_path):
  workdir = tmp_path / 'preempted'
  overrides = ['--config.data.batch_size=32', '--config.model.g.hidden=(32,32)',
               '--config.model.d.hidden=(32,32)', '--config.train.steps_per_call=5',
               '--config.train.log_every=5', '--config.train.eval_every=1000000',
               '--config.train.checkpoint_every=1000000', '--config.eval.num_samples=400']
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  cmd = [sys.executable, '-m', 'gan_jax.main', '--config=experiments/gan_ring.py',
         f'--workdir={workdir}', '--config.train.steps=1000000'] + overrides
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.read_text().count('\n') >= 2):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=60)[0]
  assert proc.returncode == 0, out
  assert 'SIGTERM: saved the checkpoint of step' in out
  saved = int(os.listdir(workdir / 'checkpoints')[0])
  assert saved >= 10 and saved % 5 == 0

  total = saved + 10
  cmd[-len(overrides) - 1] = f'--config.train.steps={total}'
  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  c = tiny_config(total)
  c.train.update(log_every=5, eval_every=1000000, checkpoint_every=1000000)
  run(c, tmp_path / 'straight')
  chex.assert_trees_all_equal(final_state(c, str(workdir)), final_state(c, str(tmp_path / 'straight')))


def test_non_finite_loss_stops_naming_the_step(tmp_path, monkeypatch):
  g_step = steps.g_step

  def poisoned(gan, state, real, key):  # the loss turns NaN from iteration 23 on
    state, metrics = g_step(gan, state, real, key)
    metrics['g_loss'] = metrics['g_loss'] * jnp.where(state.step >= 22, jnp.nan, 1.0)
    return state, metrics

  monkeypatch.setattr(steps, 'g_step', poisoned)
  with pytest.raises(train.TrainingDiverged) as e:
    run(tiny_config(40), tmp_path)
  assert str(e.value).startswith('training stopped: g_loss is nan at step 23; the last good '
                                 'checkpoint (step 20) is kept in')
  assert os.listdir(tmp_path / 'checkpoints') == ['20']


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
  run(tiny_config(40), tmp_path / 'clean')
  run(tiny_config(40), tmp_path / 'damaged')
  latest = tmp_path / 'damaged' / 'checkpoints' / '40'
  for root, _, files in os.walk(latest):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  _, messages = run(tiny_config(40), tmp_path / 'damaged')
  assert any(m.startswith('warning: the checkpoint of step 40') and 'unreadable' in m and
             'falling back to the previous one' in m for m in messages), messages
  assert any('resuming from the checkpoint of step 20' in m for m in messages)
  assert (tmp_path / 'damaged' / 'checkpoints_unreadable' / '40').exists()
  chex.assert_trees_all_equal(final_state(tiny_config(), str(tmp_path / 'clean')),
                              final_state(tiny_config(), str(tmp_path / 'damaged')))


def test_workdir_of_another_config_is_refused_unless_overwritten(tmp_path):
  run(tiny_config(20), tmp_path)
  other = tiny_config(20)
  other.objective.name = 'hinge'
  with pytest.raises(configs.ConfigError,
                     match=r'holds a run of another config \(it differs in objective.name\); use '
                           r'another --workdir, or pass --overwrite'):
    run(other, tmp_path)
  run(other, tmp_path, overwrite=True)
  records = logs.read_metrics(str(tmp_path))
  assert records[0]['step'] == 10  # the old run's records are gone, the new run's are there
  assert len([r for r in records if r['split'] == 'train']) == 2
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['objective']['name'] == 'hinge'


def test_eval_mode_writes_eval_json(tmp_path):
  config = tiny_config(20)
  run(config, tmp_path)
  records = tasks.evaluate_workdir(config, str(tmp_path), num_samples=600, log=lambda m: None)
  assert records[0]['protocol'] == {**records[0]['protocol'], 'num_samples': 600,
                                    'generator': 'ema'}
  with open(tmp_path / 'eval_0000020.json') as f:
    assert json.load(f) == records

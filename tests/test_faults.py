"""Faults and misuse never lose a checkpoint or a metrics record, and end in one clear message.

Each test injects one fault: a config that differs from the run's, unreadable or foreign
checkpoints, a second process on the workdir, a torn metrics.jsonl, a failing eval, a full disk
(a real tmpfs where this machine lets us mount one, and a patched writer everywhere), Ctrl-C,
a longer run on a decaying schedule, another device count, a bad workdir or config.json.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import pytest

from gan_jax import checkpoints, configs, gan, logs, tasks, workdir as workdir_lib
from test_train import tiny_config  # tests/ is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(config, workdir, devices=1, **kwargs):
  messages = []
  result = tasks.train_and_evaluate(config, str(workdir), devices=jax.devices()[:devices],
                                    log=messages.append, **kwargs)
  return result, messages


def restore(config, workdir):
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), 3)
  try:
    return jax.device_get(ckpts.restore_latest(exp.init_state()))
  finally:
    ckpts.close()


def listing(path):
  """Every file under `path` with its size: what a fault must leave as it was."""
  return sorted((os.path.relpath(os.path.join(r, n), path), os.path.getsize(os.path.join(r, n)))
                for r, _, names in os.walk(path) for n in names if n != '.lock')


def cli(*args, workdir, env=None):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1', **(env or {}))
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


# --- the run's identity -----------------------------------------------------------------------


def test_eval_with_another_config_is_an_error_and_moves_nothing(tmp_path):
  run(tiny_config(20), tmp_path)
  before = listing(tmp_path)
  other = tiny_config(20)
  other.model.d.hidden = (64, 64)
  with pytest.raises(configs.ConfigError, match=r'differs in model\.d\.hidden\); evaluate it '
                                                r'with the config it was trained with'):
    tasks.evaluate_workdir(other, str(tmp_path), log=lambda m: None)
  assert listing(tmp_path) == before and not (tmp_path / 'checkpoints_unreadable').exists()
  # config.json alone is enough to evaluate a run; eval.* may differ
  records = tasks.evaluate_workdir(None, str(tmp_path), num_samples=300, log=lambda m: None)
  assert records[0]['step'] == 20 and records[0]['protocol']['num_samples'] == 300


def test_checkpoint_that_does_not_fit_is_an_error_not_a_quarantine(tmp_path):
  run(tiny_config(20), tmp_path)
  before = listing(tmp_path)
  other = tiny_config(20)
  other.model.g.hidden = (32, 48)
  with pytest.raises(configs.ConfigError) as e:
    restore(other, str(tmp_path))
  assert 'the checkpoint of step 20' in str(e.value) and 'does not fit this config' in str(e.value)
  assert 'has shape (32, 32) in the checkpoint, (32, 48) in this config' in str(e.value)
  assert listing(tmp_path) == before and not (tmp_path / 'checkpoints_unreadable').exists()


def _damage(step_dir):
  for root, _, files in os.walk(step_dir):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')


def test_all_checkpoints_unreadable_stops_instead_of_restarting(tmp_path):
  run(tiny_config(40), tmp_path)
  records = logs.read_metrics(str(tmp_path))
  for step in ('20', '40'):
    _damage(tmp_path / 'checkpoints' / step)
  with pytest.raises(configs.ConfigError, match='every checkpoint in .* is unreadable .*nothing '
                                                'to resume from; pass --overwrite'):
    run(tiny_config(60), tmp_path)
  assert logs.read_metrics(str(tmp_path)) == records  # no second series from step 0
  assert sorted(os.listdir(tmp_path / 'checkpoints_unreadable')) == ['20', '40']
  _, messages = run(tiny_config(20), tmp_path, overwrite=True)  # starting over is explicit
  assert sorted(os.listdir(tmp_path / 'checkpoints_unreadable')) == ['20', '40']  # still kept


def test_a_quarantined_copy_is_never_deleted(tmp_path):
  run(tiny_config(40), tmp_path)
  aside = tmp_path / 'checkpoints_unreadable' / '40'
  aside.mkdir(parents=True)
  (aside / 'earlier').write_text('an earlier unreadable copy')
  _damage(tmp_path / 'checkpoints' / '40')
  _, messages = run(tiny_config(40), tmp_path)
  assert (aside / 'earlier').read_text() == 'an earlier unreadable copy'
  assert (tmp_path / 'checkpoints_unreadable' / '40.1').is_dir()
  assert any('moved it to' in m and m.rstrip().endswith('falling back to the previous one') and
             '40.1' in m for m in messages), messages


def test_corrupt_config_json_is_an_error_that_touches_nothing(tmp_path):
  run(tiny_config(20), tmp_path)
  (tmp_path / 'config.json').write_text('{"seed": 0, "obj')
  before = listing(tmp_path)
  for call in (lambda: run(tiny_config(40), tmp_path),
               lambda: tasks.evaluate_workdir(None, str(tmp_path), log=lambda m: None)):
    with pytest.raises(configs.ConfigError, match=r'config.json is unreadable .*nothing was '
                                                  r'touched; restore it, or pass --overwrite'):
      call()
  assert listing(tmp_path) == before


def test_workdir_that_is_a_file_or_unwritable(tmp_path, monkeypatch):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(configs.ConfigError, match=r'--workdir=.*file is a file, not a directory'):
    run(tiny_config(20), tmp_path / 'file')

  def refuse(*args, **kwargs):
    raise OSError(errno.EROFS, 'Read-only file system')

  monkeypatch.setattr(os, 'makedirs', refuse)
  with pytest.raises(configs.ConfigError, match=r'Read-only file system \(the filesystem is '
                                                r'read-only .*give a writable --workdir'):
    run(tiny_config(20), tmp_path / 'new')


# --- one process per workdir ------------------------------------------------------------------


HOLD = textwrap.dedent('''
    import sys, time
    from gan_jax import workdir
    with workdir.Lock(sys.argv[1], 'train'):
      print('locked', flush=True)
      time.sleep(60)
''')


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
  run(tiny_config(20), tmp_path)
  before = listing(tmp_path)
  holder = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    pattern = rf'workdir {tmp_path} is in use by process {holder.pid} on .* \(--mode=train, since'
    for call in (lambda: run(tiny_config(40), tmp_path),
                 lambda: run(tiny_config(40), tmp_path, overwrite=True),
                 lambda: tasks.evaluate_workdir(None, str(tmp_path), log=lambda m: None)):
      with pytest.raises(configs.ConfigError, match=pattern):
        call()
    assert listing(tmp_path) == before  # --overwrite deleted nothing of the holder's run
  finally:
    holder.kill()
    holder.wait()
  run(tiny_config(40), tmp_path)  # the kernel released the dead holder's lock


# --- metrics.jsonl ----------------------------------------------------------------------------


def test_resume_cuts_metrics_back_to_the_restored_step(tmp_path):
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  run(tiny_config(40), straight)
  run(tiny_config(20), resumed)
  first = (resumed / 'metrics.jsonl').read_text().splitlines()[0]
  with open(resumed / 'metrics.jsonl', 'a') as f:  # a run killed after step 30's record
    f.write(first + '\n')                            # a second copy of a record
    f.write(json.dumps({'step': 30, 'split': 'train', 'd_loss': 1.0}) + '\n')
    f.write('{"step": 35, "split": "tr')             # torn mid-write
  _, messages = run(tiny_config(40), resumed)
  assert any('metrics.jsonl: dropped 3 line(s)' in m for m in messages), messages
  text = (resumed / 'metrics.jsonl').read_text()
  records = [json.loads(line) for line in text.splitlines()]  # every line is valid JSON
  key = lambda r: (r['step'], r['split'], r.get('protocol', {}).get('generator'))
  assert [key(r) for r in records] == [key(r) for r in logs.read_metrics(str(straight))]


def test_metrics_write_on_a_full_disk_is_one_clear_error(tmp_path, monkeypatch):
  writer = logs.MetricWriter(str(tmp_path))
  writer.write(10, 'train', {'d_loss': 1.0})

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr('builtins.open', full)
  with pytest.raises(workdir_lib.RunError, match=r'writing the train record of step 20 to .*'
                                                 r'metrics.jsonl failed: No space left on device '
                                                 r'\(free space there: .* MiB\)'):
    writer.write(20, 'train', {'d_loss': 1.0})
  monkeypatch.undo()
  assert logs.read_metrics(str(tmp_path)) == [{'step': 10, 'split': 'train', 'd_loss': 1.0}]
  writer.close()


def test_a_failing_eval_keeps_the_checkpoint_of_its_step(tmp_path, monkeypatch):
  def broken(self, state, n):
    raise RuntimeError('eval broke')

  monkeypatch.setattr(gan.GANExperiment, 'evaluate', broken)
  with pytest.raises(RuntimeError, match='eval broke'):
    run(tiny_config(40), tmp_path)
  assert os.listdir(tmp_path / 'checkpoints') == ['20']


# --- a failed background checkpoint write -----------------------------------------------------


def test_failed_background_write_is_reported_at_the_next_boundary(tmp_path, monkeypatch):
  """A patched writer: the write of step 40 fails in orbax's background thread."""
  real_wait = checkpoints.ocp.CheckpointManager.wait_until_finished
  calls = []

  def failing_save(self, step, *args, **kwargs):
    calls.append(step)
    if step == 40:  # leave what a half-done write leaves, then fail in the background
      os.makedirs(os.path.join(self.directory, '40.orbax-checkpoint-tmp'))
      self._test_failed = True
      return True
    return type(self)._real_save(self, step, *args, **kwargs)

  def wait(self):
    real_wait(self)
    if getattr(self, '_test_failed', False):
      raise ValueError('RESOURCE_EXHAUSTED: Failed to write 350622 bytes to file 11: No space '
                       'left on device [os_error_code=28]')

  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, '_real_save',
                      checkpoints.ocp.CheckpointManager.save, raising=False)
  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, 'save', failing_save)
  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, 'wait_until_finished', wait)
  config = tiny_config(60)
  with pytest.raises(workdir_lib.RunError) as e:
    run(config, tmp_path)
  message = str(e.value)
  assert message.startswith(f'writing the checkpoint of step 40 to {tmp_path}/checkpoints '
                            'failed (no space left on the disk; free space there: ')
  assert message.endswith('its partial files were removed and the checkpoint of step 20 is kept. '
                          'Free space, then rerun the same command to resume')
  assert os.listdir(tmp_path / 'checkpoints') == ['20']  # the partial directory is gone
  steps = [r['step'] for r in logs.read_metrics(str(tmp_path)) if r['split'] == 'train']
  assert steps[-1] <= 50  # stopped at the boundary after the failure, not at the end


def _tmpfs(path, size):
  path.mkdir()
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                        capture_output=True)
  if done.returncode:
    pytest.skip('this machine lets no test mount a tmpfs')
  return path


def test_full_disk_on_a_real_tmpfs(tmp_path):
  """The real thing where mounting is allowed: ENOSPC inside orbax's background write."""
  disk = _tmpfs(tmp_path / 'disk', '300k')
  try:
    # (128, 128) MLPs: ~0.5 MB of state per checkpoint, more than the disk holds
    result = cli('--config=experiments/gan_ring.py', '--config.train.steps=40',
                 '--config.train.steps_per_call=5', '--config.train.log_every=10',
                 '--config.train.eval_every=1000', '--config.train.checkpoint_every=20',
                 '--config.eval.num_samples=100', '--config.model.g.hidden=(128,128)',
                 '--config.model.d.hidden=(128,128)', workdir=disk / 'run')
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: writing the checkpoint of step 20 to {disk}/run/checkpoints '
                           'failed (no space left on the disk; free space there: '), last
    assert not [n for n in os.listdir(disk / 'run' / 'checkpoints') if 'tmp' in n]
    assert all(json.loads(line) for line in (disk / 'run' / 'metrics.jsonl').read_text()
               .splitlines())
  finally:
    subprocess.run(['umount', str(disk)])


def test_orbax_task_errors_are_dropped_and_others_kept(caplog):
  """asyncio logs a failed write's sibling tasks whenever they are garbage collected (in CI: after
  the error line); those are the failure already raised once. Other asyncio errors still show."""
  import logging
  with caplog.at_level(logging.ERROR):
    logging.getLogger('asyncio').error(
        'Task exception was never retrieved\nfuture: <Task finished coro=<async_serialize() '
        f'defined at {os.sep}venv{os.sep}orbax{os.sep}checkpoint{os.sep}serialization.py:126>>')
    logging.getLogger('asyncio').error('Task exception was never retrieved\nfuture: <Task mine>')
  assert [r.getMessage().splitlines()[-1] for r in caplog.records] == ['future: <Task mine>']


# --- interrupts -------------------------------------------------------------------------------


def _start(workdir):
  cmd = [sys.executable, '-m', 'gan_jax.main', '--config=experiments/gan_ring.py',
         f'--workdir={workdir}', '--config.train.steps=1000000', '--config.data.batch_size=32',
         '--config.model.g.hidden=(32,32)', '--config.model.d.hidden=(32,32)',
         '--config.train.steps_per_call=5', '--config.train.log_every=5',
         '--config.train.eval_every=1000000', '--config.train.checkpoint_every=1000000',
         '--config.eval.num_samples=400']
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.read_text().count('\n') >= 2):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.2)
  return proc


def test_ctrl_c_saves_like_sigterm(tmp_path):
  proc = _start(tmp_path)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0 and 'Traceback' not in err, err
  assert 'SIGINT: saved the checkpoint of step' in out + err
  saved = int(os.listdir(tmp_path / 'checkpoints')[0])
  assert saved >= 10
  assert max(r['step'] for r in logs.read_metrics(str(tmp_path))) == saved


def test_a_second_ctrl_c_stops_at_once_keeping_what_was_saved(tmp_path, monkeypatch):
  """The first Ctrl-C comes with step 10's record, the second while the loop saves step 10."""
  write, save = logs.MetricWriter.write, checkpoints.Checkpoints.save
  pressed = []
  before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under a test runner

  def write_then_press(self, step, split, *args, **kwargs):
    record = write(self, step, split, *args, **kwargs)
    if (step, split) == (10, 'train'):
      pressed.append(step)
      os.kill(os.getpid(), signal.SIGINT)
    return record

  def press_while_saving(self, state):
    if pressed:
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)  # the handler runs here
    return save(self, state)

  monkeypatch.setattr(logs.MetricWriter, 'write', write_then_press)
  monkeypatch.setattr(checkpoints.Checkpoints, 'save', press_while_saving)
  config = tiny_config(1000)
  config.train.checkpoint_every = 5
  with pytest.raises(workdir_lib.RunError, match=r'^stopped at once by a second Ctrl-C at step '
                                                 r'10; the checkpoint of step 5 is kept in'):
    run(config, tmp_path)
  assert os.listdir(tmp_path / 'checkpoints') == ['5']
  assert signal.getsignal(signal.SIGINT) is before  # handlers restored


# --- resume: the schedule and the devices -----------------------------------------------------


def test_longer_resume_keeps_the_lr_schedule_of_the_first_start(tmp_path):
  def linear(total, decay=None):
    c = tiny_config(total)
    c.optim.lr_schedule = 'linear'
    c.optim.decay_steps = decay
    return c

  run(linear(20), tmp_path / 'short')
  recorded = json.loads((tmp_path / 'short' / 'config.json').read_text())
  assert recorded['optim']['decay_steps'] == 20
  _, messages = run(linear(40), tmp_path / 'short')
  assert any('the lr schedule ends at step 20' in m for m in messages), messages
  lrs = {r['step']: r['g_lr'] for r in logs.read_metrics(str(tmp_path / 'short'))
         if r['split'] == 'train'}
  assert lrs[10] == pytest.approx(0.5e-4) and lrs[20] == lrs[40] == 0.0
  with pytest.raises(configs.ConfigError, match=r'differs in optim\.decay_steps'):
    run(linear(60, decay=60), tmp_path / 'short')
  # A run planned at 40 from the start, stopped at 20 and resumed, equals the straight run.
  run(linear(40, decay=40), tmp_path / 'straight')
  run(linear(20, decay=40), tmp_path / 'resumed')
  run(linear(40), tmp_path / 'resumed')  # decay_steps None: the recorded 40 is kept
  chex.assert_trees_all_equal(restore(linear(40, 40), str(tmp_path / 'straight')),
                              restore(linear(40, 40), str(tmp_path / 'resumed')))


def test_resume_on_another_device_count_says_so(tmp_path):
  run(tiny_config(20), tmp_path, devices=1)
  assert json.loads((tmp_path / 'run.json').read_text())['device_count'] == 1
  _, messages = run(tiny_config(40), tmp_path, devices=2)
  assert sum('trained on 1 device(s) and resumes on 2' in m for m in messages) == 1, messages
  assert json.loads((tmp_path / 'run.json').read_text())['device_count'] == 2
  _, messages = run(tiny_config(60), tmp_path, devices=2)
  assert not any('resumes on' in m for m in messages)


def test_download_without_its_extra_is_one_sentence():
  from gan_jax import input_pipeline

  class Builder:
    name = 'cifar10'

    def download_and_prepare(self):
      raise ModuleNotFoundError("No module named 'importlib_resources'", name='importlib_resources')

  with pytest.raises(input_pipeline.DatasetUnavailable,
                     match=r"^preparing the tfds dataset 'cifar10' needs importlib_resources, "
                           r"which is not installed: pip install 'gan_jax\[tfds-build\]'"):
    input_pipeline.download_and_prepare(Builder())

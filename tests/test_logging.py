"""What a run logs: learning rates, hparams and images in TensorBoard, --mode=eval under its own
tag, Weights & Biases when asked (wandb faked here), and the best checkpoint kept (keep_best)."""
import os
import struct
import sys
import types

import jax
import numpy as np
import pytest

import gan_jax
from gan_jax import checkpoints, configs, evaluation, gan, logs, tasks
from test_train import tiny_config  # tests/ is on sys.path


def run(config, workdir):
  return tasks.train_and_evaluate(config, str(workdir), devices=jax.devices()[:1],
                                  log=lambda m: None)


def events(workdir):
  """{tag: [(step, value)]} of the scalars, and the set of image and hparams tags, read from the
  TensorBoard event files (TFRecord framing: length, crc, Event proto, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  scalars, images, plugins = {}, set(), set()
  for name in sorted(os.listdir(workdir)):
    if not name.startswith('events.out.tfevents'):
      continue
    data = open(os.path.join(workdir, name), 'rb').read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        if v.HasField('image'):
          images.add(v.tag)
        elif v.metadata.plugin_data.plugin_name:
          plugins.add(v.metadata.plugin_data.plugin_name)
        if v.HasField('simple_value'):
          scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
  return scalars, images, plugins


def test_tensorboard_holds_lrs_hparams_toy_plots_and_eval_mode_apart(tmp_path):
  config = tiny_config(40)
  config.optim.lr_schedule = 'linear'
  run(config, tmp_path)
  tasks.evaluate_workdir(None, str(tmp_path), num_samples=300, log=lambda m: None)
  scalars, images, plugins = events(tmp_path)
  assert [s for s, _ in scalars['train/g_lr']] == [10, 20, 30, 40]
  assert scalars['train/g_lr'][0][1] == pytest.approx(0.75e-4) and scalars['train/d_lr'][-1][1] == 0
  assert 'hparams' in plugins and 'samples' in images  # the toy's scatter plot, as an image
  assert [s for s, _ in scalars['eval/modes']] == [20, 40]  # the training curve
  assert [s for s, _ in scalars['eval_mode/modes']] == [40]  # --mode=eval, apart from it


def test_no_event_file_from_a_run_that_did_nothing(tmp_path):
  run(tiny_config(20), tmp_path)
  before = sorted(n for n in os.listdir(tmp_path) if n.startswith('events'))
  run(tiny_config(20), tmp_path)  # already complete: nothing trained, nothing logged
  assert sorted(n for n in os.listdir(tmp_path) if n.startswith('events')) == before


class FakeWandb(types.ModuleType):
  """Records what gan_jax sends to Weights & Biases."""

  def __init__(self):
    super().__init__('wandb')
    self.inits, self.logged, self.finished = [], [], 0
    self.Image = lambda array: ('image', np.asarray(array).shape)

  def init(self, **kwargs):
    self.inits.append(kwargs)
    return self

  def log(self, values, step):
    self.logged.append((step, values))

  def finish(self):
    self.finished += 1


def test_wandb_gets_every_record_when_a_project_is_named(tmp_path, monkeypatch):
  fake = FakeWandb()
  monkeypatch.setitem(sys.modules, 'wandb', fake)
  config = tiny_config(20)
  config.logging.wandb.project = 'gans'
  run(config, tmp_path)
  (init,) = fake.inits
  assert init['project'] == 'gans' and init['resume'] == 'allow' and init['dir'] == str(tmp_path)
  assert init['config']['logging']['wandb']['project'] == 'gans'
  steps = [s for s, values in fake.logged if 'train/d_loss' in values]
  assert steps == [10, 20] and fake.finished == 1
  assert any('eval/modes' in values for _, values in fake.logged)
  assert any(values.get('samples', (None,))[0] == 'image' for _, values in fake.logged)


def test_a_missing_wandb_is_one_clear_error(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'wandb', None)  # import wandb raises ImportError
  config = tiny_config(20)
  config.logging.wandb.project = 'gans'
  with pytest.raises(configs.ConfigError, match=r"config.logging.wandb.project='gans' needs "
                                                r"wandb: pip install 'gan_jax\[wandb\]'"):
    run(config, tmp_path)


def test_keep_best_keeps_the_best_checkpoint_and_names_it(tmp_path):
  config = tiny_config(60)
  config.train.update(eval_every=10, checkpoint_every=10, keep=1, keep_best='reverse_kl')
  config.eval.generators = ('ema',)
  run(config, tmp_path)
  records = logs.read_metrics(str(tmp_path))
  evals = {r['step']: r['reverse_kl'] for r in records if r['split'] == 'eval'}
  bests = [r for r in records if r['split'] == 'best']
  # Each best record improves on all evals before it; the last names the overall minimum.
  running = np.minimum.accumulate([evals[s] for s in sorted(evals)])
  assert [b['step'] for b in bests] == [s for s, m, prev in zip(
      sorted(evals), running, [np.inf] + list(running[:-1])) if m < prev]
  best = bests[-1]
  assert best['value'] == min(evals.values()) and best['metric'] == 'reverse_kl'
  assert os.listdir(tmp_path / 'checkpoints_best') == [str(best['step'])]
  assert os.listdir(tmp_path / 'checkpoints') == ['60']
  exp = gan.GANExperiment(config, devices=jax.devices()[:1])
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints_best'), 1)
  state = ckpts.restore_latest(exp.init_state())
  ckpts.close()
  assert int(state.step) == best['step']
  # eval and sampling can pick it
  (record, *_) = tasks.evaluate_workdir(None, str(tmp_path), num_samples=300, best=True,
                                        log=lambda m: None)
  assert record['step'] == best['step']
  assert gan_jax.load(str(tmp_path), best=True).step == best['step']
  with pytest.raises(configs.ConfigError, match="which way 'sharpness' improves is not known; "
                                                "write 'min:sharpness' or 'max:sharpness'"):
    evaluation.best_rule('sharpness')
  assert evaluation.best_rule('max:sharpness') == ('sharpness', 'max')

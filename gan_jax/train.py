"""The training loop: the only impure code. Builds the run from a config, then repeats
`state, metrics = train_call(state, loop_key)` with logging, evaluation, plots and checkpoints.

Host syncs happen only at log/eval/checkpoint boundaries: between them the loop only enqueues
jitted calls. A run is resumable (same workdir → continue from the latest checkpoint), SIGTERM
saves and exits cleanly, and a non-finite loss stops the run naming the step, keeping the last
good checkpoint.
"""
import contextlib
import functools
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gan_jax import checkpoints, configs, distributed, evaluation, input_pipeline, logs, plots
from gan_jax import sharding, steps, workdir as workdir_lib
from gan_jax import pix2pix, toy_data

GENERATOR_KINDS = ('ema', 'raw')


class TrainingDiverged(workdir_lib.RunError):
  """A loss became NaN or infinite; the message names the step and the checkpoint kept."""


class _Preemption:
  """Turns SIGTERM (preemption) and a first Ctrl-C (SIGINT) into a flag the loop checks between
  calls (then it saves and exits cleanly); a second Ctrl-C stops at once (KeyboardInterrupt)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, log=print):
    self.requested = None  # the name of the signal received
    self.log = log
    self._previous = {}

  def __enter__(self):
    for sig in self.SIGNALS:
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: no handler, the loop runs to the end
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.requested:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name
    if signum == signal.SIGINT:
      self.log('Ctrl-C: saving a checkpoint after the call in flight, then exiting '
               '(Ctrl-C again to stop at once)')

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    self._previous = {}


def load_data(data_config):
  """The dataset named by config.data: a toy distribution (sampled in-jit) or an image dataset."""
  name = data_config.name
  if name in toy_data.DATASETS:
    return configs.choose(toy_data.get, 'data', data_config, skip=('batch_size',))
  valid = dict.fromkeys(list(toy_data.DATASETS) + list(input_pipeline.DATASETS))
  configs.lookup(valid, 'data.name', name)
  options = {k: v for k, v in data_config.items() if k not in ('name', 'batch_size')}
  try:
    return input_pipeline.get(name, **options)
  except input_pipeline.DatasetUnavailable as e:  # already one sentence saying what to do
    raise configs.ConfigError(str(e)) from None
  except (ValueError, TypeError) as e:
    raise configs.ConfigError(f'config.data: {e}') from None


class Experiment:
  """A config resolved into data, mesh, GAN spec, keys and jitted functions."""

  def __init__(self, config, devices=None):
    configs.check(config)
    self.config = config
    self.data = load_data(config.data)
    self.is_toy = isinstance(self.data, toy_data.ToyDataset)
    self.mesh = sharding.make_mesh(devices)
    configs.check_batch_split(config.data.batch_size, self.mesh.size)
    for kind in config.eval.generators:
      configs.lookup(dict.fromkeys(GENERATOR_KINDS), 'eval.generators', kind)
    if self.is_toy:
      self.gan = steps.build_gan(config, (self.data.dim,), self.data.sample,
                                 sharding.batch_constraint(self.mesh))
    else:
      self.gan = steps.build_gan(config, self.data.image_shape, None,
                                 sharding.batch_constraint(self.mesh), self.data.num_classes)
    self.repl = sharding.replicated(self.mesh)
    # Host-fed batches (num_steps, n_critic, B, ...) are split along B.
    self.batch_sharding = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec(None, None, sharding.DATA_AXIS))
    self.init_key, self.loop_key, self.eval_key = jax.random.split(jax.random.key(config.seed), 3)
    configs.call(lambda: jax.eval_shape(functools.partial(steps.create_state, self.gan),
                                        self.init_key), 'model')
    self._train_fns = {}
    self.evaluator = evaluation.Evaluator(
        config, self.data, self._real_data(), self._sample, self.gan.num_classes,
        sharding.batch_sharded(self.mesh), self.eval_key, self.is_toy, log=tqdm.write)

  def _real_data(self):
    """The reference images of the eval metrics: config.eval.real_split of the data (or None)."""
    split = self.config.eval.get('real_split')
    if self.is_toy or not split or split == self.config.data.get('split'):
      return None if self.is_toy else self.data
    data_config = self.config.data.copy_and_resolve_references()
    data_config.split = split
    return load_data(data_config)

  def init_state(self):
    create = jax.jit(functools.partial(steps.create_state, self.gan), out_shardings=self.repl)
    return create(self.init_key)

  def learning_rates(self, step: int) -> dict:
    """{'g_lr', 'd_lr'} after `step` iterations (n_critic D updates and one G update each; under
    the adaptive schedule, as if each loop ran to its cap)."""
    return steps.learning_rates(self.gan, self.config, step)

  def train_fn(self, num_steps: int):
    """The jitted `train_call` for `num_steps` iterations: state replicated and donated.

    Called as fn(state, loop_key) for toy data, fn(state, loop_key, batches) for host-fed data.
    """
    if num_steps not in self._train_fns:
      in_shardings = (self.repl, self.repl) + (() if self.is_toy else (self.batch_sharding,))
      self._train_fns[num_steps] = jax.jit(
          functools.partial(steps.train_call, self.gan, num_steps=num_steps),
          in_shardings=in_shardings, out_shardings=(self.repl, self.repl), donate_argnums=0)
    return self._train_fns[num_steps]

  def batch_stream(self, start_step: int):
    """`take(n)`: the real batches of the next n iterations, from iteration `start_step` on.

    None for toy data (drawn in-jit). For images, each call reads this host's share of the
    stream and returns the global {'x': (n, n_critic, B, H, W, C), 'label': (n, n_critic, B)}
    arrays, sharded along B; jitted calls run asynchronously, so reading overlaps compute.
    """
    if self.is_toy:
      return None
    n_critic = self.config.optim.n_critic
    stream = self.data.batches(self.config.data.batch_size, seed=self.config.seed,
                               start_step=start_step * n_critic,
                               process_index=jax.process_index(),
                               process_count=jax.process_count())

    def take(n):
      local = [next(stream) for _ in range(n * n_critic)]
      stack = lambda k: np.stack([b[k] for b in local]).reshape(
          (n, n_critic) + local[0][k].shape)
      batch = {'x': stack('image'), 'label': stack('label')}
      return {k: jax.make_array_from_process_local_data(self.batch_sharding, v)
              for k, v in batch.items()}

    return take

  @functools.cached_property
  def _sample(self):
    gan = self.gan

    def sample(params, stats, key, labels, n):
      return steps.generate(gan, params, stats, steps.sample_z(gan, key, n), labels)

    return jax.jit(sample, static_argnums=4)

  @functools.cached_property
  def _discriminate(self):
    gan = self.gan
    return jax.jit(lambda d, x: steps.discriminate(gan, d.params, d.batch_stats, x, None,
                                                   train=False)[0])

  def samples(self, state, kind: str, n: int, labels=None):
    """n samples of the `kind` ('ema' or 'raw') generator from the fixed eval noise."""
    params = state.g_ema if kind == 'ema' else state.g.params
    if self.gan.num_classes and labels is None:
      labels = np.arange(n) % self.gan.num_classes
    labels = None if labels is None else jnp.asarray(labels, jnp.int32)
    return distributed.to_host(self._sample(params, state.g.batch_stats, self.eval_key, labels, n))

  def evaluate(self, state, n: int) -> list:
    """[(kind, metrics, protocol)] for each generator in config.eval.generators."""
    results = []
    for kind in self.config.eval.generators:
      params = state.g_ema if kind == 'ema' else state.g.params
      metrics, protocol = self.evaluator(params, state.g.batch_stats, n, kind)
      results.append((kind, metrics, protocol))
    return results

  def plot(self, state, path: str, title: str):
    """Writes the eval figure to `path` (process 0); returns the image grid (for TensorBoard).

    Every process calls it (sampling is a collective); only process 0 draws and writes.
    """
    if not self.is_toy:
      return self._plot_images(state, path, title)
    n = self.config.eval.num_samples
    kind = self.config.eval.generators[0] if self.config.eval.generators else 'ema'
    fake = self.samples(state, kind, n)
    if not distributed.is_main():
      return None
    real = np.asarray(self.data.sample(jax.random.fold_in(self.eval_key, 1), n))
    d_local = jax.device_get(state.d)  # a host copy: D's contour is drawn by this process alone
    d_fn = lambda x: self._discriminate(d_local, jnp.asarray(x))
    plots.plot_toy(path, real, fake, d_fn, f'{title} ({kind} generator)')
    return None

  def _plot_images(self, state, path: str, title: str):
    """A fixed-noise sample grid per generator (EMA beside raw); conditional: a row per class."""
    classes = self.gan.num_classes
    rows = classes if 0 < classes <= 20 else 8
    labels = np.repeat(np.arange(rows), 8) % classes if classes else None
    grids = [(kind, plots.image_grid(self.samples(state, kind, rows * 8, labels), 8))
             for kind in (self.config.eval.generators or ('ema',))]
    if distributed.is_main():
      plots.save_image_panels(path, grids, title)
    return grids[0][1]


def make_experiment(config, devices=None):
  """The experiment object for config.task: 'gan' (the default) or 'pix2pix'."""
  task = config.get('task', 'gan')
  experiments = {'gan': Experiment, 'pix2pix': pix2pix.Pix2PixExperiment}
  return configs.lookup(experiments, 'task', task)(config, devices)


def _write_eval(writer, step: int, results: list, log) -> list:
  """Writes and prints the eval records [(generator kind, metrics, protocol)] that have metrics."""
  records = []
  for kind, metrics, protocol in results:
    if metrics:
      prefix = 'eval' if kind == 'ema' else f'eval_{kind}'
      records.append(writer.write(step, 'eval', metrics, protocol, tb_prefix=prefix))
      log(f'step {step} eval ({kind}): ' + ', '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
  return records


def _first_nonfinite(records: list):
  """(step, name, value) of the first non-finite metric in host records, or None."""
  for step, metrics in records:
    for name, value in metrics.items():
      if not np.isfinite(value):
        return step, name, value
  return None


def _resume_point(ckpts, state, workdir: str, log):
  """(state, step, restored): the latest readable checkpoint's state, or the initial one."""
  restored = ckpts.restore_latest(state, log)
  state = state if restored is None else restored
  step = int(jax.device_get(state.step))
  if restored is not None:
    log(f'resuming from the checkpoint of step {step} in {ckpts.directory}')
  return state, step, restored is not None


def train_and_evaluate(config, workdir: str, overwrite: bool = False, devices=None,
                       log=tqdm.write) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint); returns the last records.

  The workdir is locked for the whole run. Returns {'train': last train record, 'eval': [last
  eval records], 'preempted': bool}.
  """
  main = distributed.is_main()
  log = log if main else (lambda message: None)
  with workdir_lib.Lock(workdir, 'train') if main else contextlib.nullcontext():
    recorded = None if overwrite else workdir_lib.recorded_config(workdir)
    config = workdir_lib.resolve(config, recorded)
    exp = make_experiment(config, devices)
    if main:
      workdir_lib.prepare(workdir, config, recorded, overwrite, log)
    distributed.barrier('workdir prepared')
    return _train(exp, config, workdir, log)


def _train(exp, config, workdir: str, log) -> dict:
  """The loop of `train_and_evaluate`, in a prepared and locked workdir."""
  main = distributed.is_main()
  t = config.train
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), t.keep)
  try:
    state, step, resumed = _resume_point(ckpts, exp.init_state(), workdir, log)
  except BaseException:
    ckpts.close()
    raise
  if main:
    workdir_lib.check_devices(workdir, exp.mesh.size, jax.process_count(), resumed, log)
    dropped = logs.truncate(workdir, step)
    if dropped:
      log(f'metrics.jsonl: dropped {dropped} line(s) written after step {step} (where this run '
          'resumes) or torn by a kill')
  if step >= t.steps:
    log(f'the run in {workdir} is already complete (step {step}, config.train.steps={t.steps}); '
        'raise --config.train.steps to train on, or pass --overwrite to start over')
  decay = config.optim.get('decay_steps')
  if (config.optim.get('lr_schedule', 'constant') != 'constant' and decay is not None and
      t.steps > decay):
    log(f'note: the lr schedule ends at step {decay} (config.optim.decay_steps, fixed at the '
        f'run\'s first start); steps past it train at its final lr')
  writer = logs.MetricWriter(workdir, enabled=main)
  take_batches = exp.batch_stream(step)
  examples_per_step = config.data.batch_size * config.optim.n_critic
  result = {'train': None, 'eval': [], 'preempted': False}
  pending = []  # (first step, device metrics) of calls not yet read back
  window = []   # host records (step, metrics) since the last train log
  window_start, window_time = step, time.perf_counter()

  def call_size(start):
    """Iterations in the call that starts at iteration `start` (calls end on multiples)."""
    return min(t.steps_per_call - start % t.steps_per_call, t.steps - start)

  def next_batches(start):
    """The data of the call that starts at `start`: () for toy data (drawn in-jit) or past the end."""
    return () if take_batches is None or start >= t.steps else (take_batches(call_size(start)),)

  def read_back():
    """Device → host for the pending calls (the only sync), with the divergence check."""
    records = []
    for first, metrics in jax.device_get(pending):
      n = len(next(iter(metrics.values())))
      records += [(first + i + 1, {k: float(v[i]) for k, v in metrics.items()}) for i in range(n)]
    pending.clear()
    window.extend(records)
    bad = _first_nonfinite(records)
    if bad:
      ckpts.wait()
      last = ckpts.steps()[-1] if ckpts.steps() else None
      kept = (f'the last good checkpoint (step {last}) is kept in {ckpts.directory}'
              if last is not None else 'no checkpoint had been saved yet')
      raise TrainingDiverged(f'training stopped: {bad[1]} is {bad[2]} at step {bad[0]}; {kept}. '
                             f'Lower the learning rates or add a penalty, then rerun.')

  def log_train():
    nonlocal window_start, window_time
    now = time.perf_counter()
    means = {k: float(np.mean([m[k] for _, m in window])) for k in window[-1][1]}
    window.clear()
    means.update(exp.learning_rates(step))
    means['steps_per_sec'] = (step - window_start) / max(now - window_time, 1e-9)
    means['examples_per_sec'] = means['steps_per_sec'] * examples_per_step
    window_start, window_time = step, now
    result['train'] = writer.write(step, 'train', means)
    bar.set_postfix(d_loss=f'{means["d_loss"]:.3f}', g_loss=f'{means["g_loss"]:.3f}',
                    ex_per_s=f'{means["examples_per_sec"]:.0f}')

  def run_eval():
    result['eval'] = _write_eval(writer, step, exp.evaluate(state, config.eval.num_samples), log)
    grid = exp.plot(state, os.path.join(workdir, 'samples', f'step_{step:07d}.png'), f'step {step}')
    if grid is not None:
      writer.image(step, 'samples', grid)

  with _Preemption(log) as preemption, tqdm(total=t.steps, initial=step, unit='it',
                                            dynamic_ncols=True, mininterval=1.0,
                                            disable=not main) as bar:
    try:
      batches = next_batches(step)
      while step < t.steps:
        n = call_size(step)
        state, metrics = exp.train_fn(n)(state, exp.loop_key, *batches)
        pending.append((step, metrics))
        step += n
        batches = next_batches(step)  # read and sent while the call runs, before any sync below
        bar.update(n)
        ckpts.poll()  # a failed background write stops the run here, at the next boundary
        done = step >= t.steps
        # Read once (a signal may arrive during this block); all hosts stop if any was told to.
        # One host reads its flag after every call; several agree at the logging steps, where
        # the loop reads back anyway (an all-gather after every call would stall the pipeline).
        agree_now = jax.process_count() == 1 or step % t.log_every == 0 or done
        signal_name = preemption.requested
        stop = agree_now and distributed.any_process(bool(signal_name))
        eval_now = step % t.eval_every == 0 or done
        save_now = step % t.checkpoint_every == 0 or done or stop
        if step % t.log_every == 0 or eval_now or save_now:
          read_back()  # never evaluate or save a state that went non-finite
        if step % t.log_every == 0 or done or stop:
          log_train()
        if save_now:  # before eval and plots: a failing eval never costs the checkpoint
          ckpts.save(state)
        if eval_now:
          run_eval()
        if stop:
          ckpts.wait()
          bar.close()
          log(f'{signal_name or "SIGTERM"}: saved the checkpoint of step {step} in '
              f'{ckpts.directory}; exiting')
          result['preempted'] = True
          break
      else:
        if result['train'] is not None:
          log(f'finished at step {step}: metrics.jsonl, samples/ and checkpoints/ are in {workdir}')
    except KeyboardInterrupt:
      ckpts.wait()
      last = ckpts.steps()[-1] if ckpts.steps() else None
      raise workdir_lib.RunError(
          f'stopped at once by a second Ctrl-C at step {step}; '
          f'{f"the checkpoint of step {last} is kept" if last is not None else "no checkpoint was saved"}'
          f' in {ckpts.directory}') from None
    except OSError as e:  # a plot or an event file on a full or read-only disk
      raise workdir_lib.RunError(
          workdir_lib.os_error(e, 'writing to', getattr(e, 'filename', None) or workdir) +
          '; the checkpoints written so far are kept: free space, then rerun the same command '
          'to resume') from None
    finally:
      writer.close()
      ckpts.close()
  return result


def evaluate_workdir(config, workdir: str, num_samples: int = None, log=tqdm.write) -> list:
  """--mode=eval: evaluates the latest checkpoint of `workdir` and writes eval_STEP.json.

  The run's config.json says what was trained; `config` (None: config.json alone) may change
  only the fields a resume may change (eval.*, train intervals). The workdir is locked meanwhile.
  """
  main = distributed.is_main()
  log = log if main else (lambda message: None)
  with workdir_lib.Lock(workdir, 'eval', create=False) if main else contextlib.nullcontext():
    recorded = workdir_lib.recorded_config(workdir)
    if recorded is None:
      raise configs.ConfigError(f'workdir {workdir} holds no run (it has no config.json); '
                                'train first')
    if config is None:
      config = workdir_lib.from_json(recorded)
    workdir_lib.refuse_other_run(
        workdir, recorded, config,
        what='evaluate it with the config it was trained with (its config.json): the same '
             '--config and overrides, or leave out --config')
    config = workdir_lib.resolve(config, recorded)
    exp = make_experiment(config)
    ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), config.train.keep)
    try:
      state = ckpts.restore_latest(exp.init_state(), log)
    finally:
      ckpts.close()
    if state is None:
      raise configs.ConfigError(f'workdir {workdir} has no checkpoint to evaluate; train first')
    step = int(jax.device_get(state.step))
    n = num_samples or config.eval.num_samples
    writer = logs.MetricWriter(workdir, enabled=main)
    try:
      records = _write_eval(writer, step, exp.evaluate(state, n), log)
    finally:
      writer.close()
    if main:
      workdir_lib.write_atomic(os.path.join(workdir, f'eval_{step:07d}.json'),
                               json.dumps(records, indent=2))
    return records

"""The training loop: the only impure code, and it knows no task. Given a config and a factory
of experiments (gan_jax/tasks.py: `make_experiment`, the one dispatch on config.task), it builds
the run, then repeats `state, metrics = train_fn(n)(state, loop_key, *batches)` with logging,
evaluation, plots and checkpoints, through the interface of gan_jax/experiment.py.

Host syncs happen only at log/eval/checkpoint boundaries: between them the loop only enqueues
jitted calls. A run is resumable (same workdir → continue from the latest checkpoint), SIGTERM
saves and exits cleanly, and a non-finite loss stops the run naming the step, keeping the last
good checkpoint.
"""
import contextlib
import json
import os
import signal
import time

import jax
import numpy as np
from tqdm import tqdm

from gan_jax import checkpoints, configs, distributed, evaluation, logs, workdir as workdir_lib

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


def _write_eval(writer, step: int, results: list, log, tag: str = 'eval') -> list:
  """Writes and prints the eval records [(generator kind, metrics, protocol)] that have metrics;
  TensorBoard tags `tag`/... for the EMA generator, `tag`_raw/... for the raw one."""
  records = []
  for kind, metrics, protocol in results:
    if metrics:
      prefix = tag if kind == 'ema' else f'{tag}_{kind}'
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


class _Best:
  """train.keep_best: the checkpoint of the best eval of the first generator in
  config.eval.generators, kept in checkpoints_best/ beside the last train.keep, and named in
  metrics.jsonl by a {"step", "split": "best", "metric", "value", "checkpoint"} record (read
  back on resume)."""

  def __init__(self, config, workdir: str):
    self.metric, self.direction = evaluation.best_rule(config.train.keep_best)
    self.kind = (config.eval.generators or ('ema',))[0]
    self.ckpts = checkpoints.Checkpoints(os.path.join(workdir, checkpoints.BEST_DIR), 1)
    previous = [r for r in (logs.read_metrics(workdir) if os.path.exists(
        os.path.join(workdir, 'metrics.jsonl')) else []) if r.get('split') == 'best' and
                r.get('metric') == self.metric]
    self.value = previous[-1]['value'] if previous else None

  def update(self, step: int, state, records: list, writer, log) -> None:
    """Saves `state` if the eval `records` of this step hold a better value of the metric."""
    values = [r[self.metric] for r in records
              if r.get('protocol', {}).get('generator') == self.kind and self.metric in r]
    if not values:
      raise configs.ConfigError(f'config.train.keep_best={self.metric!r} is not among the eval '
                                f'metrics of the {self.kind} generator; add its metric to '
                                'config.eval.metrics')
    value = values[0]
    better = (self.value is None or (value < self.value if self.direction == 'min' else
                                     value > self.value))
    if better and np.isfinite(value):
      self.ckpts.save(state)
      self.value = value
      writer.write(step, 'best', {'metric': self.metric, 'value': value,
                                  'checkpoint': os.path.join(checkpoints.BEST_DIR, str(step))})
      log(f'step {step}: best {self.metric} so far ({value:.4g}); kept in checkpoints_best/')


def _resume_point(exp, config, ckpts, workdir: str, log):
  """(state, step): the latest readable checkpoint's state, or the initial one; on process 0,
  the workdir brought to that step (run.json's device counts, metrics.jsonl cut back), with a
  line for each thing the user should know before training starts."""
  initial = exp.init_state()
  restored = ckpts.restore_latest(initial, log)
  state = initial if restored is None else restored
  step = int(jax.device_get(state.step))
  if restored is not None:
    log(f'resuming from the checkpoint of step {step} in {ckpts.directory}')
  if distributed.is_main():
    workdir_lib.check_devices(workdir, exp.mesh.size, jax.process_count(), restored is not None,
                              log)
    dropped = logs.truncate(workdir, step)
    if dropped:
      log(f'metrics.jsonl: dropped {dropped} line(s) written after step {step} (where this run '
          'resumes) or torn by a kill')
  t, decay = config.train, config.optim.get('decay_steps')
  if step >= t.steps:
    log(f'the run in {workdir} is already complete (step {step}, config.train.steps={t.steps}); '
        'raise --config.train.steps to train on, or pass --overwrite to start over')
  if (config.optim.get('lr_schedule', 'constant') != 'constant' and decay is not None and
      t.steps > decay):
    log(f'note: the lr schedule ends at step {decay} (config.optim.decay_steps, fixed at the '
        f'run\'s first start); steps past it train at its final lr')
  return state, step


def train_and_evaluate(config, workdir: str, make_experiment, overwrite: bool = False,
                       devices=None, log=tqdm.write) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint); returns the last records.

  `make_experiment(config, devices)` builds the task's experiment (gan_jax/experiment.py). The
  workdir is locked for the whole run. Returns {'train': last train record, 'eval': [last
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
    state, step = _resume_point(exp, config, ckpts, workdir, log)
  except BaseException:
    ckpts.close()
    raise
  writer = logs.MetricWriter(workdir, enabled=main, config=config)
  if step == 0:
    writer.hparams(config, config.eval.metrics)
  best = _Best(config, workdir) if t.get('keep_best') else None
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
    if best is not None:
      best.update(step, state, result['eval'], writer, log)
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
      if best is not None:
        best.ckpts.close()
  return result


def evaluate_workdir(config, workdir: str, make_experiment, num_samples: int = None,
                     log=tqdm.write, best: bool = False) -> list:
  """--mode=eval: evaluates the latest checkpoint of `workdir` and writes eval_STEP.json.

  The run's config.json says what was trained; `config` (None: config.json alone) may change
  only the fields a resume may change (eval.*, train intervals). The workdir is locked meanwhile.
  `best`: the checkpoint kept by config.train.keep_best (checkpoints_best/) instead.
  """
  main = distributed.is_main()
  log = log if main else (lambda message: None)
  with workdir_lib.Lock(workdir, 'eval', create=False) if main else contextlib.nullcontext():
    config = workdir_lib.run_config(workdir, config, 'evaluate')
    exp = make_experiment(config)
    ckpts = checkpoints.Checkpoints(
        os.path.join(workdir, checkpoints.BEST_DIR if best else 'checkpoints'), config.train.keep)
    try:
      state = ckpts.restore_latest(exp.init_state(), log)
    finally:
      ckpts.close()
    if state is None:
      raise configs.ConfigError(f'workdir {workdir} has no checkpoint to evaluate; train first')
    step = int(jax.device_get(state.step))
    n = num_samples or config.eval.num_samples
    writer = logs.MetricWriter(workdir, enabled=main, config=config)
    try:  # TensorBoard: under eval_mode/, apart from the training curve's eval/
      records = _write_eval(writer, step, exp.evaluate(state, n), log, tag='eval_mode')
    finally:
      writer.close()
    if main:
      workdir_lib.write_atomic(os.path.join(workdir, f'eval_{step:07d}.json'),
                               json.dumps(records, indent=2))
    return records

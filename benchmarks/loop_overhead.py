"""The whole training loop against the bare jitted iteration: the loop's overhead in percent.

The loop is `train.train_and_evaluate` (data stream, device transfer, metrics read-back, tqdm,
metrics.jsonl + TensorBoard logging, orbax checkpoints), eval off (eval_every past the end; the
final eval after the last log is outside the timed windows). It is timed per logging window, from
one train record to the next (the writer's `write` is wrapped to stamp wall and process CPU time;
train.py is untouched), leaving out the first window (compile). The bare iteration is the same
experiment's jitted `train_fn(steps_per_call)` on batches fetched beforehand, called back to back,
timed before and after the loop (its mean is the baseline), so slow drifts of background load
fall on both. Overhead = loop seconds per iteration / bare seconds per iteration - 1, in wall
time and in process CPU time (all threads: the data thread's work included).

  python benchmarks/loop_overhead.py [--workload dcgan_ns] [--steps 100] [--log-every 20]
      [--checkpoint-every 50] [--no-write]
"""
import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

import jax
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import machine, write_section  # pylint: disable=g-bad-import-order,wrong-import-position
from gan_jax import logs, train  # pylint: disable=wrong-import-position
import vs_pytorch  # pylint: disable=wrong-import-position

BEGIN, END = '<!-- loop_overhead:begin -->', '<!-- loop_overhead:end -->'


def bare_seconds(config, steps):
  """(wall, cpu) seconds per iteration of the bare jitted call, batches fetched beforehand."""
  exp = train.Experiment(config)
  n = config.train.steps_per_call
  fn = exp.train_fn(n)
  take = exp.batch_stream(0)
  state = exp.init_state()
  state, _ = fn(state, exp.loop_key, take(n))  # compile + warm-up
  jax.block_until_ready(state)
  batches = [take(n) for _ in range(max(steps // n, 1))]
  jax.block_until_ready(batches)
  wall, cpu = time.perf_counter(), time.process_time()
  for b in batches:
    state, _ = fn(state, exp.loop_key, b)
  jax.block_until_ready(state)
  steps = len(batches) * n
  return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def loop_seconds(config, workdir):
  """(wall, cpu) seconds per iteration of train_and_evaluate over its logging windows after the
  first, and the number of iterations timed."""
  stamps = []
  write = logs.MetricWriter.write

  def stamped(self, step, split, *args, **kwargs):
    if split == 'train':
      stamps.append((step, time.perf_counter(), time.process_time()))
    return write(self, step, split, *args, **kwargs)

  logs.MetricWriter.write = stamped
  try:
    train.train_and_evaluate(config, workdir, overwrite=True, log=lambda *_: None)
  finally:
    logs.MetricWriter.write = write
  (s0, w0, c0), (s1, w1, c1) = stamps[0], stamps[-1]
  return (w1 - w0) / (s1 - s0), (c1 - c0) / (s1 - s0), s1 - s0


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workload', default='dcgan_ns', choices=sorted(vs_pytorch.WORKLOADS))
  parser.add_argument('--steps', type=int, default=100)
  parser.add_argument('--log-every', type=int, default=20)
  parser.add_argument('--checkpoint-every', type=int, default=50)
  parser.add_argument('--no-write', action='store_true', help='do not update RESULTS.md')
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  config = vs_pytorch.jax_config(args.workload)
  config.train.update(steps=args.steps, log_every=args.log_every,
                      checkpoint_every=args.checkpoint_every,
                      eval_every=args.steps * config.train.steps_per_call)
  config.eval.update(metrics=(), num_samples=64)  # eval off (the final one is outside the timing)
  timed = args.steps - args.log_every
  workdir = tempfile.mkdtemp(prefix='loop_overhead_')
  try:
    before = bare_seconds(config, timed)
    print(f'bare (before): {before[0]:.3f} s/it wall, {before[1]:.3f} s/it cpu', flush=True)
    loop = loop_seconds(config, workdir)
    print(f'loop: {loop[0]:.3f} s/it wall, {loop[1]:.3f} s/it cpu over {loop[2]} it', flush=True)
    after = bare_seconds(config, timed)
    print(f'bare (after): {after[0]:.3f} s/it wall, {after[1]:.3f} s/it cpu', flush=True)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  bare = [(b + a) / 2 for b, a in zip(before, after)]
  overhead = [100 * (l / b - 1) for l, b in zip(loop[:2], bare)]
  load = os.getloadavg()
  t = config.train
  table = '\n'.join([
      BEGIN,
      '## The training loop against the bare jitted iteration',
      '',
      f'`python benchmarks/loop_overhead.py --workload {args.workload} --steps {args.steps} '
      f'--log-every {args.log_every} --checkpoint-every {args.checkpoint_every}` '
      f'({datetime.date.today()}; {machine()}; load average {load[0]:.1f} at the end). '
      f'{vs_pytorch.WORKLOADS[args.workload][0]}, steps_per_call {t.steps_per_call}; the loop '
      f'(`train_and_evaluate`: data, transfers, read-back every {args.log_every} iterations, '
      f'metrics.jsonl + TensorBoard, an orbax checkpoint every {args.checkpoint_every}, eval '
      f'off) over its logging windows after the first ({loop[2]} iterations), against the bare '
      f'jitted call on prefetched batches ({timed} iterations before and after the loop).',
      '',
      '| | bare, before | loop | bare, after | loop overhead |',
      '|---|---:|---:|---:|---:|',
      f'| wall s / iteration | {before[0]:.4f} | {loop[0]:.4f} | {after[0]:.4f} | '
      f'**{overhead[0]:+.1f}%** |',
      f'| process CPU s / iteration | {before[1]:.4f} | {loop[1]:.4f} | {after[1]:.4f} | '
      f'**{overhead[1]:+.1f}%** |',
      END])
  print(table)
  if not args.no_write:
    write_section(BEGIN, END, table)


if __name__ == '__main__':
  main()

"""The whole training loop against the bare jitted iteration: the loop's overhead in percent.

The loop is `tasks.train_and_evaluate` (data stream, device transfer, metrics read-back, tqdm,
metrics.jsonl + TensorBoard logging, orbax checkpoints), eval off (eval_every past the end; the
final eval after the last log is outside the timed windows). It is timed per logging window
(the writer's `write` is wrapped to stamp wall and process CPU time; train.py is untouched),
leaving out the first window (compile). The bare iteration is a twin experiment's jitted
`train_fn(steps_per_call)` on batches fetched beforehand, called back to back: after each train
record, it runs as many iterations as a logging window holds, and the loop's next window is timed
from its end, so drifts of the machine's speed fall on both alike (the loop's data thread may fill
its 2-batch prefetch queue meanwhile: 2 of the window's 20 × 64 images). Overhead = loop seconds
per iteration / bare seconds per iteration - 1, in wall time and in process CPU time (all
threads: the data thread's work included).

  python benchmarks/loop_overhead.py [--workload dcgan_ns] [--steps 200] [--log-every 20]
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
from gan_jax import gan, logs, tasks  # pylint: disable=wrong-import-position
import vs_pytorch  # pylint: disable=wrong-import-position

BEGIN, END = '<!-- loop_overhead:begin -->', '<!-- loop_overhead:end -->'


def interleaved_seconds(config, workdir):
  """Loop windows and bare chunks, alternating: ((wall, cpu) seconds per iteration of the loop
  over its logging windows after the first, the same of the bare call, loop iterations timed).

  At each train record (the end of a logging window, after the loop's read-back), the bare jitted
  call of a twin experiment runs `log_every` iterations on batches fetched beforehand; the next
  loop window is timed from the end of that bare chunk. Slow drifts of the machine's speed (this
  VM's varies by ±10% within a minute) then fall on both alike.
  """
  twin = gan.GANExperiment(config)
  n = config.train.steps_per_call
  fn, take = twin.train_fn(n), twin.batch_stream(0)
  bare_state = twin.init_state()
  bare_state, _ = fn(bare_state, twin.loop_key, take(n))  # compile + warm-up
  jax.block_until_ready(bare_state)
  marks, bare = [], []  # marks: (step, wall, cpu) when the loop wrote a record, and resumed
  write = logs.MetricWriter.write

  def bare_chunk():
    nonlocal bare_state
    batches = [take(n) for _ in range(max(config.train.log_every // n, 1))]
    jax.block_until_ready(batches)
    wall, cpu = time.perf_counter(), time.process_time()
    for b in batches:
      bare_state, _ = fn(bare_state, twin.loop_key, b)
    jax.block_until_ready(bare_state)
    bare.append((len(batches) * n, time.perf_counter() - wall, time.process_time() - cpu))

  def stamped(self, step, split, *args, **kwargs):
    out = write(self, step, split, *args, **kwargs)
    if split == 'train':
      written = (time.perf_counter(), time.process_time())
      bare_chunk()
      marks.append((step, written, (time.perf_counter(), time.process_time())))
    return out

  logs.MetricWriter.write = stamped
  try:
    tasks.train_and_evaluate(config, workdir, overwrite=True, log=lambda *_: None)
  finally:
    logs.MetricWriter.write = write
  windows = [(s1 - s0, w1[0] - r0[0], w1[1] - r0[1])
             for (s0, _, r0), (s1, w1, _) in zip(marks, marks[1:])]
  steps = sum(w[0] for w in windows)
  loop = (sum(w[1] for w in windows) / steps, sum(w[2] for w in windows) / steps)
  bare_steps = sum(b[0] for b in bare)
  return loop, (sum(b[1] for b in bare) / bare_steps, sum(b[2] for b in bare) / bare_steps), steps


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workload', default='dcgan_ns', choices=sorted(vs_pytorch.WORKLOADS))
  parser.add_argument('--steps', type=int, default=200)
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
  workdir = tempfile.mkdtemp(prefix='loop_overhead_')
  try:
    loop, bare, timed = interleaved_seconds(config, workdir)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  print(f'loop: {loop[0]:.3f} s/it wall, {loop[1]:.3f} s/it cpu; bare: {bare[0]:.3f}, '
        f'{bare[1]:.3f}', flush=True)
  overhead = [100 * (l / b - 1) for l, b in zip(loop, bare)]
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
      'metrics.jsonl + TensorBoard, an asynchronous orbax checkpoint every '
      f'{args.checkpoint_every}, eval off) over its logging windows after the first ({timed} '
      'iterations), against the bare jitted call on batches fetched beforehand, run for as many '
      'iterations after each logging window (interleaved, so that drifts of the machine\'s speed '
      'hit both alike).',
      '',
      '| | bare | loop | loop overhead |',
      '|---|---:|---:|---:|',
      f'| wall s / iteration | {bare[0]:.4f} | {loop[0]:.4f} | **{overhead[0]:+.1f}%** |',
      f'| process CPU s / iteration | {bare[1]:.4f} | {loop[1]:.4f} | **{overhead[1]:+.1f}%** |',
      END])
  print(table)
  if not args.no_write:
    write_section(BEGIN, END, table)


if __name__ == '__main__':
  main()

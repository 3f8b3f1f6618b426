"""Training iterations per second on the ring: steps_per_call = 1 vs 100 (one lax.scan per call).

Measures the bare jitted `train_call` (no logging, eval or checkpoints) of experiments/default.py
on all local devices, median of repeated timings, both settings in one run; writes the table to
benchmarks/RESULTS.md between its markers.

  python benchmarks/steps_per_call.py [--iterations 3000] [--repeats 5]
"""
import argparse
import datetime
import os
import statistics
import time

import jax
from absl import logging

from common import RESULTS, load_config, machine, write_section  # pylint: disable=g-bad-import-order
from gan_jax import gan

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = '<!-- steps_per_call:begin -->', '<!-- steps_per_call:end -->'


def iterations_per_second(exp, steps_per_call, iterations, repeats):
  fn = exp.train_fn(steps_per_call)
  state = exp.init_state()
  state, _ = fn(state, exp.loop_key)  # compile and warm up
  jax.block_until_ready(state)
  calls = max(iterations // steps_per_call, 1)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      state, _ = fn(state, exp.loop_key)
    jax.block_until_ready(state)
    rates.append(calls * steps_per_call / (time.perf_counter() - start))
  return statistics.median(rates), rates


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--config', default=os.path.join(ROOT, 'experiments', 'default.py'))
  parser.add_argument('--iterations', type=int, default=3000)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  exp = gan.GANExperiment(load_config(args.config))
  rows = {}
  for k in (1, 100):
    rows[k] = iterations_per_second(exp, k, args.iterations, args.repeats)
    print(f'steps_per_call={k}: {rows[k][0]:.0f} it/s (runs: '
          f'{", ".join(f"{r:.0f}" for r in rows[k][1])})')
  ratio = rows[100][0] / rows[1][0]
  print(f'ratio 100 vs 1: {ratio:.2f}x')
  c = exp.config
  table = '\n'.join([
      BEGIN,
      '## Iterations per second on the ring: steps_per_call = 1 vs 100',
      '',
      f'`python benchmarks/steps_per_call.py` ({datetime.date.today()}; {machine()}).',
      f'Config `{os.path.relpath(args.config, ROOT)}`: batch {c.data.batch_size}, G '
      f'{tuple(c.model.g.hidden)}, D {tuple(c.model.d.hidden)}, {c.objective.name} + '
      f'{c.penalty.name}, n_critic {c.optim.n_critic}. Bare jitted iteration (1 D step + 1 G '
      f'step + EMA), median of {args.repeats} timings of {args.iterations} iterations each, '
      'after a warm-up call.',
      '',
      '| steps_per_call | iterations/s (median) | runs |',
      '|---:|---:|---|',
      *(f'| {k} | {rows[k][0]:.0f} | {", ".join(f"{r:.0f}" for r in rows[k][1])} |' for k in rows),
      '',
      f'Fusing 100 iterations in one `lax.scan` runs **{ratio:.2f}×** the iterations per second '
      'of one dispatch per iteration.',
      END])
  write_section(BEGIN, END, table)
  print(f'wrote {RESULTS}')


if __name__ == '__main__':
  main()

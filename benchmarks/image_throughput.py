"""Images per second of the bare jitted training iteration for the image workloads of issue 3.

Workloads (32×32×3, batch 64): DCGAN non-saturating; DCGAN WGAN-GP with n_critic 5; the CIFAR
ResNet of wgan_cifar.py (WGAN-GP, n_critic 5, 128 channels) and sngan_cifar.py (hinge + spectral
norm). The networks and losses are those of the experiment files; the data is the offline
stacked_mnist padded to 32×32×3 (the same shapes as CIFAR-10, no download). "Images/s" counts real
images through D: batch × n_critic per iteration. Median of repeated timings after a warm-up call;
all workloads in one run; writes the table into benchmarks/RESULTS.md.

  python benchmarks/image_throughput.py [--repeats 3] [--iterations 5]
  python benchmarks/image_throughput.py --dtypes float32 bfloat16 --section image_throughput_bf16

With several --dtypes (config.train.dtype) each workload is timed in each, in the same run, and the
table gives their ratio to the first.
"""
import argparse
import datetime
import os
import statistics
import time

import jax
from absl import logging

from common import load_config, machine, write_section  # pylint: disable=g-bad-import-order
from gan_jax import gan

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def workloads():
  def on_offline_data(name, **changes):
    c = load_config(os.path.join(ROOT, 'experiments', name))
    c.data = {'name': 'stacked_mnist', 'batch_size': 64, 'split': 'train', 'image_size': 32,
              'num_examples': 2048}
    for key, value in changes.items():
      section, field = key.split('__')
      c[section][field] = value
    return c
  return {
      'DCGAN, non-saturating (dcgan_cifar.py)': on_offline_data('dcgan_cifar.py'),
      'DCGAN, WGAN-GP, n_critic 5': on_offline_data(
          'dcgan_cifar.py', objective__name='wasserstein', penalty__name='wgan_gp',
          penalty__weight=10.0, optim__n_critic=5),
      'ResNet, WGAN-GP, n_critic 5 (wgan_cifar.py)': on_offline_data('wgan_cifar.py'),
      'ResNet, hinge + SN, n_critic 5 (sngan_cifar.py)': on_offline_data('sngan_cifar.py'),
  }


def images_per_second(config, iterations, repeats):
  config.train.update(steps_per_call=iterations, log_every=iterations, eval_every=iterations,
                      checkpoint_every=iterations)
  exp = gan.GANExperiment(config)
  fn = exp.train_fn(iterations)
  take = exp.batch_stream(0)
  state = exp.init_state()
  start = time.perf_counter()
  state, _ = fn(state, exp.loop_key, take(iterations))
  jax.block_until_ready(state)
  compile_and_first = time.perf_counter() - start
  rates = []
  for _ in range(repeats):
    batches = take(iterations)
    jax.block_until_ready(batches)
    start = time.perf_counter()
    state, _ = fn(state, exp.loop_key, batches)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    rates.append(iterations * config.data.batch_size * config.optim.n_critic / seconds)
  return statistics.median(rates), rates, compile_and_first


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--iterations', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--dtypes', nargs='+', default=['float32'], choices=['float32', 'bfloat16'])
  parser.add_argument('--workloads', nargs='+', default=None, help='substrings of their names')
  parser.add_argument('--section', default='image_throughput', help='RESULTS.md section name')
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  rows = []
  for name, config in workloads().items():
    if args.workloads and not any(w in name for w in args.workloads):
      continue
    for dtype in args.dtypes:
      config.train.dtype = dtype
      median, rates, first = images_per_second(config, args.iterations, args.repeats)
      rows.append((name, dtype, median, rates, first, config.optim.n_critic))
      print(f'{name}, {dtype}: {median:.0f} images/s (runs '
            f'{", ".join(f"{r:.0f}" for r in rates)}); compile + first call {first:.1f} s',
            flush=True)
  base = {n: m for n, d, m, *_ in rows if d == args.dtypes[0]}
  flags = ''.join([f' --dtypes {" ".join(args.dtypes)}' if args.dtypes != ['float32'] else '',
                   f' --workloads {" ".join(args.workloads)}' if args.workloads else '',
                   f' --section {args.section}' if args.section != 'image_throughput' else ''])
  begin, end = f'<!-- {args.section}:begin -->', f'<!-- {args.section}:end -->'
  title = '## Images per second of the jitted training iteration (32×32×3, batch 64)'
  if len(args.dtypes) > 1:
    title += ': ' + ' vs '.join(args.dtypes)
  table = '\n'.join([
      begin, title, '',
      f'`python benchmarks/image_throughput.py --iterations {args.iterations} --repeats '
      f'{args.repeats}{flags}` ({datetime.date.today()}; {machine()}). Bare jitted iteration '
      f'({args.iterations} per call, in one `lax.scan`), median of '
      f'{args.repeats} calls after a warm-up call; images/s = real images through D per second '
      '(batch × n_critic per iteration). Conv layers: the fast rewrites of `gan_jax/layers.py`. '
      'train.dtype: the arithmetic of the networks (bfloat16: float32 parameters, optimizer '
      'state and losses).',
      '',
      f'| workload | train.dtype | n_critic | images/s (median) | vs {args.dtypes[0]} | runs | '
      'compile + first call, s |',
      '|---|---|---:|---:|---:|---|---:|',
      *(f'| {n} | {d} | {k} | {m:.0f} | {m / base[n]:.2f}× | '
        f'{", ".join(f"{r:.0f}" for r in rs)} | {f:.1f} |' for n, d, m, rs, f, k in rows),
      end])
  write_section(begin, end, table)
  print(table)


if __name__ == '__main__':
  main()

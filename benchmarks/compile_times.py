"""Compile time of every training experiment's first jitted call, at the experiment's own sizes.

For each experiments/*.py that trains (phenomenon_*.py are measurements, not training runs):
build the experiment, initialise its state, then time the trace + XLA compile of its training
call (`train.steps_per_call` iterations fused in one `lax.scan`), its first run, and a second
run on fresh batches (the steady speed: examples through D per second, batch × n_critic ×
iterations over that call's time; images/s for the image experiments). tfds datasets
are replaced by the offline Stacked MNIST at the same image shape (the compiled program depends
on shapes, not pixels). Each experiment runs in a fresh process, so XLA's in-memory caches do not
carry over, and that process's peak RSS is reported too. Writes a table into RESULTS.md.

  python benchmarks/compile_times.py [--only dcgan_cifar.py sngan_cifar.py --section NAME]

--only with --section writes its own table (compile_times_NAME), leaving the full one as it is.
"""
import argparse
import datetime
import glob
import json
import os
import resource
import subprocess
import sys
import time

from common import HERE, load_config, machine, write_section  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(HERE)
BEGIN, END = '<!-- compile_times:begin -->', '<!-- compile_times:end -->'


def experiments():
  return sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'experiments', '*.py'))
                if not os.path.basename(p).startswith('phenomenon_'))


def measure(name: str) -> dict:
  """In this process: build, init, then time the first training call of experiments/`name`."""
  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from gan_jax import input_pipeline, tasks, toy_data  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  config = load_config(os.path.join(ROOT, 'experiments', name))
  data = config.data.name
  if data not in toy_data.DATASETS and data not in input_pipeline.OFFLINE:
    config.data = {'name': 'stacked_mnist', 'batch_size': config.data.batch_size,
                   'split': 'train', 'image_size': config.data.image_size, 'num_examples': 2048}
  exp = tasks.make_experiment(config)
  state = exp.init_state()
  jax.block_until_ready(state)
  n = config.train.steps_per_call
  take = exp.batch_stream(0)
  args = (state, exp.loop_key) + (() if take is None else (take(n),))
  jax.block_until_ready(args)
  fn = exp.train_fn(n)
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  state, _ = jax.block_until_ready(compiled(*args))
  first_s = time.perf_counter() - start
  args = (state, exp.loop_key) + (() if take is None else (take(n),))
  jax.block_until_ready(args)
  start = time.perf_counter()
  jax.block_until_ready(compiled(*args))
  second_s = time.perf_counter() - start
  examples = n * int(config.data.batch_size) * int(config.optim.get('n_critic', 1))
  return {'experiment': name, 'data': data, 'steps_per_call': n, 'compile_s': compile_s,
          'first_call_s': first_s, 'examples_per_s': examples / second_s,
          'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--only', nargs='+', default=None, help='experiment file names')
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  parser.add_argument('--no-write', action='store_true')
  parser.add_argument('--section', default=None, help='with --only: its own RESULTS.md table')
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(measure(args.worker)))
    return
  rows = []
  for name in args.only or experiments():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([sys.executable, __file__, '--worker', name], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=False)
    if out.returncode:
      print(f'{name}: failed\n{out.stderr[-2000:]}', flush=True)
      continue
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    r = rows[-1]
    print(f'{name}: compile {r["compile_s"]:.1f} s, first call {r["first_call_s"]:.2f} s, '
          f'{r["examples_per_s"]:.1f} examples/s, peak RSS {r["peak_rss_mb"]:.0f} MB', flush=True)
  begin, end = BEGIN, END
  if args.section:
    begin, end = (f'<!-- compile_times_{args.section}:begin -->',
                  f'<!-- compile_times_{args.section}:end -->')
  command = 'python benchmarks/compile_times.py' + (
      f' --only {" ".join(args.only)} --section {args.section}' if args.section else '')
  table = '\n'.join([
      begin,
      ('## Compile time of every experiment\'s first training call, and its steady speed'
       if not args.section else '## Compile time and steady speed: ' +
       ', '.join(f'`{n}`' for n in args.only)),
      '',
      f'`{command}` ({datetime.date.today()}; {machine()}). Each '
      'experiment in a fresh process at its own sizes: trace + XLA compile of the jitted training '
      'call (`train.steps_per_call` iterations in one `lax.scan`), then its first run, then a '
      'second run on fresh batches (examples/s = batch × n_critic × iterations, real examples '
      'through D, over that call); peak RSS of that process. tfds datasets are replaced by '
      'offline Stacked MNIST of the same shape.',
      '',
      '| experiment | data | iterations per call | compile s | first call s | examples/s | '
      'peak RSS MB |',
      '|---|---|---:|---:|---:|---:|---:|',
      *(f'| `{r["experiment"]}` | {r["data"]} | {r["steps_per_call"]} | {r["compile_s"]:.1f} | '
        f'{r["first_call_s"]:.2f} | {r["examples_per_s"]:,.1f} | {r["peak_rss_mb"]:,.0f} |'
        for r in rows),
      end])
  print(table)
  if not args.no_write:
    write_section(begin, end, table)


if __name__ == '__main__':
  main()

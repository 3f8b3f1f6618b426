"""PacGAN's toy benchmark: the toolkit's methods on the ring and the grid, over seeds.

Every method is one base recipe plus its own switches (METHODS), trained for the same number of
iterations; each run is a full `train_and_evaluate` whose final eval of the EMA generator (2,500
samples) gives PacGAN's mode metrics (Lin et al. 2018, arXiv:1712.04086). Runs go to `--workers` single-threaded
processes pinned to cores; finished runs are appended to `--out`/runs.jsonl, so an interrupted
table resumes where it stopped. Writes benchmarks/toy_table.json (every run) and its section of
benchmarks/RESULTS.md.

  python benchmarks/toy_table.py --seeds 10 --workers 2            # the table in RESULTS.md
  python benchmarks/toy_table.py --seeds 1 --steps 500 --methods gan pacgan4 --no-write
"""
import argparse
import datetime
import json
import multiprocessing as mp
import os
import time

import common

DATASETS = {'ring': 8, 'grid': 25}
# The iteration budget of every method: what the best recipe needs (RESULTS.md says how found).
STEPS = {'ring': 5_000, 'grid': 10_000}

# The base: experiments/default.py's networks without its penalty (3×64 MLPs for G and D, z 16,
# batch 256, Adam β = (0.5, 0.999), EMA 0.999, non-saturating loss), the learning rate at 3e-3
# decaying linearly to 0 (experiments/r1_grid.py). Only what a method changes is listed below.
BASE = {
    'data.batch_size': 256, 'model.g.hidden': (64, 64, 64), 'model.d.hidden': (64, 64, 64),
    'optim.g_lr': 3e-3, 'optim.d_lr': 3e-3, 'optim.lr_schedule': 'linear',
}

# key: (label, {dotted field: value}); a value may be {'ring': ..., 'grid': ...}.
METHODS = {
    'gan': ('GAN (non-saturating)', {}),
    'r1': ('GAN + R1 (γ/2 = 1): experiments/r1_grid.py',
           {'penalty.name': 'r1', 'penalty.weight': 1.0}),
    'pacgan2': ('PacGAN2', {'tricks.pack': 2}),
    'pacgan4': ('PacGAN4: experiments/pacgan_grid.py', {'tricks.pack': 4}),
    'minibatch': ('Minibatch discrimination (4 kernels × 5)',
                  {'model.d.minibatch_discrimination': 4}),
    'wgan_gp': ('WGAN-GP (λ = 0.1, n_critic 5, β = (0.5, 0.9))',
                {'objective.name': 'wasserstein', 'penalty.name': 'wgan_gp',
                 'penalty.weight': 0.1, 'optim.n_critic': 5, 'optim.betas': (0.5, 0.9)}),
    'noise': ('Instance noise (σ₀ = 0.1, annealed to 0 at ½ the run)',
              {'tricks.instance_noise.std': 0.1, 'tricks.instance_noise.anneal_steps': 'half'}),
    'ensemble': ('Ensemble of 3 D (1×16, 2×32, 3×64): experiments/ensemble_ring.py',
                 {'tricks.ensemble': ((16,), (32, 32), (64, 64, 64))}),
    'unrolled': ('Unrolled GAN (k = 5) at the shared rates',
                 {'tricks.unroll_steps': 5}),
    'adaptive': ('Adaptive D/G loops (c1 1.2, c2 1.4, caps 5): experiments/adaptive_ring.py',
                 {'tricks.adaptive.enabled': True, 'tricks.adaptive.c1': 1.2,
                  'tricks.adaptive.c2': 1.4}),
    # In the toolkit and tested, left out of the default table for its time budget:
    'ragan': ('Relativistic average GAN', {'objective.name': 'relativistic_average'}),
    'dragan': ('DRAGAN (λ = 1)', {'penalty.name': 'dragan', 'penalty.weight': 1.0}),
    'smoothing': ('One-sided label smoothing (0.9)', {'tricks.label_smoothing': 0.9}),
    'feature_matching': ('Feature matching (replaces G loss)',
                         {'tricks.feature_matching.mode': 'replace'}),
}
COSTLY = ('unrolled', 'wgan_gp', 'adaptive')  # 5–10× a GAN iteration: fewer seeds (--costly-seeds)
TABLE = ('gan', 'r1', 'pacgan2', 'pacgan4', 'minibatch', 'wgan_gp', 'noise', 'ensemble',
         'unrolled', 'adaptive')


def method_config(method: str, dataset: str, steps: int, seed: int = 0):
  """The config of `method` on `dataset` for `steps` iterations, final eval only."""
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  c = configs.toy_config()
  c.seed = seed
  c.data.name = dataset
  for key, value in {**BASE, **METHODS[method][1]}.items():
    if isinstance(value, dict):
      value = value[dataset]
    if value == 'half':
      value = steps // 2
    node, *path = [c] + key.split('.')
    for field in path[:-1]:
      node = node[field]
    node[path[-1]] = value
  c.train.update(steps=steps, steps_per_call=100, log_every=steps, eval_every=steps,
                 checkpoint_every=steps)
  c.eval.generators = ('ema',)
  return c


def _init_worker(counter, cores, cache_dir):
  """One core per worker; XLA's persistent cache, so seeds 1.. of a method reuse its compile."""
  with counter.get_lock():
    core = counter.value % cores
    counter.value += 1
  common.single_threaded(core if cores > 1 else None)
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_compilation_cache_dir', cache_dir)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def _run(job):
  method, dataset, seed, steps, root = job
  config = method_config(method, dataset, steps, seed)
  cpu = time.process_time()
  workdir = os.path.join(root, f'{dataset}_{method}_{seed}')
  first, seconds = common.train_toy(config, workdir, overwrite=True)  # never a stale run
  return {'method': method, 'dataset': dataset, 'seed': seed, 'steps': steps,
          'seconds': round(seconds, 1), 'cpu_seconds': round(time.process_time() - cpu, 1),
          **{k: first[k] for k in ('modes', 'hq_fraction', 'reverse_kl')}}


def _fmt(values, scale=1.0, digits=1):
  m, se = common.mean_se([scale * v for v in values])
  return f'{m:.{digits}f} ± {se:.{digits}f}'


def render(rows, steps, seeds, costly_seeds, workers, methods) -> str:
  begin, end = '<!-- toy_table:begin -->', '<!-- toy_table:end -->'
  budget = ', '.join(f'{d} {steps[d]:,}' for d in DATASETS)
  lines = [begin, f'## Toy benchmark: the toolkit on the ring and the grid ({seeds} seeds)', '',
           f'`python benchmarks/toy_table.py --seeds {seeds} --costly-seeds {costly_seeds} '
           f'--workers {workers}` '
           f'({datetime.date.today()}; {common.machine()}; {workers} runs side by side, each '
           f'single-threaded on one core). Budget, the same for every method: {budget} '
           'iterations (1 G update and n_critic D updates each); then the EMA generator, 2,500 '
           'samples, PacGAN protocol. Base recipe (all methods): 3×64 MLPs, z 16, batch 256, '
           'Adam β = (0.5, 0.999) at 3e-3 decaying linearly to 0, EMA 0.999, non-saturating '
           'loss; the method column says what each changes. Mean ± standard error over seeds '
           f'({seeds} per method; {", ".join(COSTLY)} cost 5–10× a GAN iteration and ran on '
           f'fewer, at least {costly_seeds}); "all" = seeds with every mode / seeds run; wall s '
           'and CPU s = one run (compile, from XLA\'s persistent cache after the first seed, '
           'and eval included). Wall s depends on what else shared the 2 cores (the runs were '
           'resumed over two sessions, some under heavy load): compare methods by CPU s.', '']
  for dataset, k in DATASETS.items():
    if not any(r['dataset'] == dataset for r in rows):
      continue
    lines += [f'### {dataset} ({k} modes, {steps[dataset]:,} iterations)', '',
              '| method | modes | all | HQ % | reverse KL | wall s | CPU s |',
              '|---|---:|---:|---:|---:|---:|---:|']
    for method in methods:
      rs = [r for r in rows if r['method'] == method and r['dataset'] == dataset]
      if not rs:
        continue
      full = sum(r['modes'] == k for r in rs)
      lines.append(
          f'| {METHODS[method][0]} | {_fmt([r["modes"] for r in rs])} | {full}/{len(rs)} | '
          f'{_fmt([r["hq_fraction"] for r in rs], 100)} | '
          f'{_fmt([r["reverse_kl"] for r in rs], digits=3)} | '
          f'{_fmt([r["seconds"] for r in rs], digits=0)} | '
          f'{_fmt([r["cpu_seconds"] for r in rs], digits=0)} |')
    lines.append('')
  lines.append(end)
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--seeds', type=int, default=10)
  parser.add_argument('--costly-seeds', type=int, default=3,
                      help=f'seeds for {", ".join(COSTLY)} (at most --seeds)')
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--steps', type=int, default=None, help='for every dataset (default STEPS)')
  parser.add_argument('--methods', nargs='+', default=list(TABLE), choices=list(METHODS))
  parser.add_argument('--datasets', nargs='+', default=list(DATASETS), choices=list(DATASETS))
  parser.add_argument('--out', default='/tmp/toy_table')
  parser.add_argument('--no-write', action='store_true', help='print; leave RESULTS.md alone')
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  log_path = os.path.join(args.out, 'runs.jsonl')
  done = []
  if os.path.exists(log_path):
    with open(log_path) as f:
      done = [json.loads(line) for line in f if line.strip()]
  steps = {d: args.steps or STEPS[d] for d in DATASETS}
  done = [r for r in done if r['steps'] == steps[r['dataset']]]
  seen = {(r['method'], r['dataset'], r['seed']) for r in done}
  # The costly methods last: an interrupted table has the others (rerun to resume).
  order = sorted(args.methods, key=lambda m: m in COSTLY)
  seeds = {m: min(args.seeds, args.costly_seeds) if m in COSTLY else args.seeds for m in order}
  jobs = [(m, d, s, steps[d], args.out) for m in order for d in args.datasets
          for s in range(seeds[m]) if (m, d, s) not in seen]
  cores = os.cpu_count() or 1
  start = time.perf_counter()
  ctx = mp.get_context('spawn')
  counter = ctx.Value('i', 0)
  init_args = (counter, cores if args.workers > 1 else 1, os.path.join(args.out, 'jax_cache'))
  with ctx.Pool(args.workers, _init_worker, init_args) as pool:
    for row in pool.imap_unordered(_run, jobs):
      print(json.dumps(row), flush=True)
      done.append(row)
      with open(log_path, 'a') as f:
        f.write(json.dumps(row) + '\n')
  print(f'{len(jobs)} runs in {time.perf_counter() - start:.0f} s', flush=True)
  rows = [r for r in done if r['method'] in args.methods and r['dataset'] in args.datasets
          and r['seed'] < args.seeds]
  table = render(rows, steps, args.seeds, args.costly_seeds, args.workers, args.methods)
  print(table)
  if not args.no_write:
    with open(os.path.join(common.HERE, 'toy_table.json'), 'w') as f:
      json.dump(sorted(rows, key=lambda r: (r['dataset'], r['method'], r['seed'])), f, indent=0)
    common.write_section('<!-- toy_table:begin -->', '<!-- toy_table:end -->', table)


if __name__ == '__main__':
  main()

"""gan_jax's jitted training iteration side by side with the same iteration in eager PyTorch.

Workloads (32×32×3, batch 64, the experiment files' networks, objectives and optimizers):
  dcgan_ns         DCGAN, non-saturating (experiments/dcgan_cifar.py)
  dcgan_wgan_gp    the same DCGAN, WGAN-GP (λ 10), n_critic 5, no BatchNorm in the critic
                   (Gulrajani et al.'s advice: the per-example gradient needs it)
  resnet_hinge_sn  the CIFAR ResNet with hinge loss + spectral norm, n_critic 5
                   (experiments/sngan_cifar.py: G 256 channels, D 128)
  resnet_wgan_gp   the CIFAR ResNet with WGAN-GP, n_critic 5 (experiments/wgan_cifar.py); not run
                   unless named in --workloads
  biggan_hinge     BigGAN as StudioGAN's CIFAR-10 config (experiments/biggan_cifar.py): hinge,
                   n_critic 5, Adam 2e-4 β (0.5, 0.999), SN in G and D, hierarchical z, shared
                   class embedding + conditional BatchNorm, self-attention at 16×16, projection
                   D, EMA of G; not run unless named
  stylegan2        StyleGAN2 as stylegan2-ada-pytorch's `cifar` config
                   (experiments/stylegan2_cifar.py): mapping 2 layers, w 512, channel_base 32768
                   (512 channels), conditional mapping and projection D ('orig', mbstd group
                   32), non-saturating loss, R1 lazily every 16 iterations (× 16), G EMA; ADA off
                   (tricks.ada.enabled=False: its augmentation pipeline has no twin), style mixing
                   and path length off as in the config (the twin has both). 16 iterations per
                   timed repeat: one full lazy cycle, so each repeat holds exactly one R1 step in
                   both frameworks. Not run unless named
The conditional two train on the harness's data, stacked_mnist, whose labels have 1,000 classes
(100·d_R + 10·d_G + d_B): gan_jax then builds their class embeddings with 1,000 rows, and so do
the twins (G 9,542,916 / D 2,605,250 for BigGAN, 20,722,195 / 23,596,544 for StyleGAN2, where
CIFAR-10's 10 classes give 9,416,196 / 2,415,170 and 20,215,315 / 23,089,664). Real labels: the
data's (JAX) and random ints (PyTorch); fakes' labels uniform in both.

The PyTorch twin of each is benchmarks/torch_models.py (same layer shapes and parameter counts,
checked here; same objective, penalty, Adam, batch, n_critic, spectral norm, EMA). Each workload
runs as two subprocesses, one per framework, alive side by side: after both are set up, the
orchestrator asks them in turn (the order alternating) for one timed repeat of `iterations`
training iterations, so background load on the machine hits both alike; what counts is the ratio
of the medians. Each process reports its peak RSS (getrusage) at the end. Both frameworks get the
machine's cores: XLA:CPU uses all of them by default, torch is given torch.set_num_threads(cores).
With --cores N both processes are pinned to the first N cores (sched_setaffinity) and torch gets
N threads: on a machine shared with other jobs, eager PyTorch's 2-thread OpenMP regions collapse
under oversubscription (each op waits for the slowest thread), so a 1-core run compares the
frameworks' per-core efficiency more fairly.

  JAX     the jitted `Experiment.train_fn` the training loop runs (iterations in one lax.scan),
          real batches (offline stacked_mnist at 32×32×3) put on the device before the clock
          starts. Compile time = trace + lower + XLA compile of that function. FLOPs per iteration
          from XLA's cost analysis of the compiled d_step and g_step (n_critic × D + G: the
          analysis counts a while loop's body once).
  PyTorch eager, NCHW, random real batches (and labels) made before the clock starts; its first
          iteration (allocation, oneDNN primitive creation) is reported in the compile column.
          FLOPs per iteration from torch.utils.flop_counter over one more iteration (direct
          convolutions, where gan_jax's Winograd convolutions do fewer multiplies: the counts
          differ).
  Lazy terms (R1 every k iterations, path length): both FLOP counts are the mean over a lazy
          cycle, (k - 1)/k of an iteration without the term and 1/k of one with it: gan_jax's
          from its steps compiled with and without the term (XLA's cost analysis counts a
          lax.cond's branch as if always taken), PyTorch's from one counted iteration of each
          kind.
  peak    the machine's matmul peak: best of 2048³ float32 matmuls in both frameworks.

Setup (torch is never a dependency of gan_jax; any venv with torch and numpy will do):
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.14.1 numpy
  (or `pip install -e '.[bench]'` to have torch in the project's own venv)
Run from the repository root:
  python benchmarks/vs_pytorch.py [--torch-python /tmp/torchvenv/bin/python] [--repeats 5]
      [--workloads dcgan_ns,dcgan_wgan_gp,resnet_hinge_sn] [--cores N --section NAME] [--no-write]
      [--iterations N]  (e.g. --workloads biggan_hinge,stylegan2 --iterations 1: StyleGAN2's
      16-iteration lazy cycle is about 10 minutes a repeat per framework on a 2-core CPU)
"""
import argparse
import collections
import datetime
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = '<!-- vs_pytorch:begin -->', '<!-- vs_pytorch:end -->'
MARK = '@@'  # prefixes the workers' JSON replies on stdout

# name: (description, experiment file, config changes, iterations per timed repeat)
WORKLOADS = {
    'dcgan_ns': ('DCGAN, non-saturating (dcgan_cifar.py)', 'dcgan_cifar.py', {}, 6),
    'dcgan_wgan_gp': ('DCGAN, WGAN-GP, n_critic 5', 'dcgan_cifar.py',
                      {'objective.name': 'wasserstein', 'penalty.name': 'wgan_gp',
                       'penalty.weight': 10.0, 'optim.n_critic': 5, 'model.d.norm': 'none'}, 2),
    'resnet_hinge_sn': ('ResNet, hinge + SN, n_critic 5 (sngan_cifar.py)', 'sngan_cifar.py', {}, 1),
    'resnet_wgan_gp': ('ResNet, WGAN-GP, n_critic 5 (wgan_cifar.py)', 'wgan_cifar.py', {}, 1),
    'biggan_hinge': ('BigGAN, hinge + SN, n_critic 5, 1,000 classes (biggan_cifar.py)',
                     'biggan_cifar.py', {}, 1),
    'stylegan2': ('StyleGAN2, non-saturating + lazy R1, ADA off, 1,000 classes '
                  '(stylegan2_cifar.py)', 'stylegan2_cifar.py', {'tricks.ada.enabled': False}, 16),
}
DEFAULT_WORKLOADS = 'dcgan_ns,dcgan_wgan_gp,resnet_hinge_sn'
MATMUL_N = 2048


def reply(obj):
  print(MARK + json.dumps(obj), flush=True)


def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_matmul_gflops(run, n=MATMUL_N, repeats=8):
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


# ------------------------------------------------------------------------------------------------
# The JAX worker (the project's venv).

def jax_config(name):
  sys.path.insert(0, ROOT)
  from common import load_config  # pylint: disable=import-outside-toplevel
  _, path, changes, _ = WORKLOADS[name]
  c = load_config(os.path.join(ROOT, 'experiments', path))
  c.data = {'name': 'stacked_mnist', 'batch_size': 64, 'split': 'train', 'image_size': 32,
            'num_examples': 2048}
  for key, value in changes.items():
    *sections, field = key.split('.')
    node = c
    for s in sections:
      node = node[s]
    node[field] = value
  return c


def _module_fields(cls, overrides):
  """A gan_jax network's fields, its defaults updated by config.model.g / .d: the ones that JSON
  carries (sizes, switches, names; not initializers)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  fields = {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING and
            f.name not in ('parent', 'name', 'num_classes')}  # the spec's num_classes: the data's
  fields.update(overrides)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()
          if v is None or isinstance(v, (bool, int, float, str, tuple, list))}


def torch_spec(config):
  """The workload as the plain dict torch_models.Trainer takes. 'arch': the gan_jax G's and D's
  fields (defaults and the config's), which the BigGAN and StyleGAN2 twins read their sizes
  from; 'num_classes': the data's classes when G or D is conditional, else 0."""
  from gan_jax import input_pipeline, models  # pylint: disable=import-outside-toplevel
  m, o = config.model, config.optim
  conditional = any(m[net].get('conditioning', 'none') != 'none' for net in ('g', 'd'))
  classes = input_pipeline.DATASETS[config.data.name].num_classes if conditional else 0
  pl = config.tricks.get('path_length', None) or {}
  path_length = None
  if float(pl.get('weight', 0.0)) > 0:
    path_length = {'weight': float(pl.weight), 'every': int(pl.get('every', 4)),
                   'decay': float(pl.get('decay', 0.01)),
                   'batch_shrink': int(pl.get('batch_shrink', 2))}
  return {'generator': m.generator, 'discriminator': m.discriminator, 'z_dim': int(m.z_dim),
          'g_channels': int(m.g.get('channels', 0)), 'd_channels': int(m.d.get('channels', 0)),
          'd_norm': m.d.get('norm', 'none'), 'spectral_norm': bool(m.d.get('spectral_norm')),
          'arch': {'g': _module_fields(models.GENERATORS[m.generator], dict(m.g)),
                   'd': _module_fields(models.DISCRIMINATORS[m.discriminator], dict(m.d))},
          'num_classes': int(classes), 'image_size': int(config.data.image_size),
          'objective': config.objective.name, 'penalty': config.penalty.name,
          'penalty_weight': float(config.penalty.weight),
          'penalty_every': int(config.penalty.get('every', 1)), 'path_length': path_length,
          'n_critic': int(o.n_critic), 'lr': float(o.d_lr), 'betas': list(o.betas),
          'g_lr': float(o.g_lr), 'd_lr': float(o.d_lr),
          'g_betas': list(o.get('g_betas') or o.betas),
          'd_betas': list(o.get('d_betas') or o.betas), 'lr_schedule': o.lr_schedule,
          'steps': int(config.train.steps), 'ema_decay': float(o.ema_decay),
          'ema_start': int(o.get('ema_start', 0)), 'ema_rampup': float(o.get('ema_rampup', 0.0)),
          'batch_size': int(config.data.batch_size)}


def jax_worker(name):
  import functools  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  from gan_jax import gan, penalties, steps  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)
  config = jax_config(name)
  iterations = WORKLOADS[name][3]
  config.train.update(steps_per_call=iterations, log_every=iterations, eval_every=iterations,
                      checkpoint_every=iterations)
  exp = gan.GANExperiment(config)
  state = exp.init_state()
  take = exp.batch_stream(0)
  batches = take(iterations)
  start = time.perf_counter()
  compiled = exp.train_fn(iterations).lower(state, exp.loop_key, batches).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  state, _ = compiled(state, exp.loop_key, batches)
  jax.block_until_ready(state)
  first_s = time.perf_counter() - start

  def flops(fn, spec, *args):
    cost = jax.jit(functools.partial(fn, spec)).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost['flops'])

  one = jax.tree.map(lambda b: b[0, 0], batches)
  key = jax.random.key(0)

  def lazy_mean(fn, every, with_term, without_term):
    """FLOPs of a step whose term runs every `every` iterations, over a lazy cycle (XLA's cost
    analysis counts the lax.cond's branch as if always taken)."""
    if every == 1:
      return flops(fn, exp.gan, state, one, key)
    on, off = (flops(fn, spec, state, one, key) for spec in (with_term, without_term))
    return off + (on - off) / every

  g, pl = exp.gan, exp.gan.tricks.path_length
  d_flops = lazy_mean(steps.d_step, g.penalty_every if g.penalty_weight else 1,
                      g._replace(penalty_every=1),
                      g._replace(penalty=penalties.get('none'), penalty_every=1))
  g_flops = lazy_mean(steps.g_step, 1 if pl is None else pl.every,
                      g._replace(tricks=g.tricks._replace(path_length=pl and pl._replace(every=1))),
                      g._replace(tricks=g.tricks._replace(path_length=None)))
  iteration_flops = config.optim.n_critic * d_flops + g_flops
  count = lambda tree: int(sum(x.size for x in jax.tree.leaves(tree)))
  a = jnp.ones((MATMUL_N, MATMUL_N), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  reply({'params_g': count(state.g.params), 'params_d': count(state.d.params),
         'compile_s': compile_s, 'first_s': first_s, 'flops': iteration_flops,
         'device': str(jax.devices()[0]), 'version': f'jax {jax.__version__}'})
  for line in sys.stdin:
    command = line.split()
    if command[0] == 'time':
      batches = take(iterations)
      jax.block_until_ready(batches)
      start, cpu = time.perf_counter(), time.process_time()
      state, _ = compiled(state, exp.loop_key, batches)
      jax.block_until_ready(state)
      reply({'seconds': time.perf_counter() - start, 'cpu': time.process_time() - cpu})
    elif command[0] == 'matmul':
      reply({'gflops': best_matmul_gflops(lambda: matmul(a).block_until_ready())})
    else:
      reply({'peak_rss_mb': peak_rss_mb()})
      return


# ------------------------------------------------------------------------------------------------
# The PyTorch worker (any venv with torch; imports neither jax nor gan_jax).

def pin(cores):
  """Restricts this process to the first `cores` CPUs (before jax or torch start threads)."""
  if cores:
    os.sched_setaffinity(0, set(range(cores)))


def torch_worker(spec_json, threads):
  import torch  # pylint: disable=import-outside-toplevel
  import torch.utils.flop_counter  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, HERE)
  import torch_models  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(threads)
  spec = json.loads(spec_json)
  iterations = spec['iterations']
  trainer = torch_models.Trainer(spec)
  gen = torch.Generator().manual_seed(1)
  shape, classes = (spec['n_critic'], spec['batch_size']), spec.get('num_classes', 0)
  reals = [torch.rand(shape + (3, 32, 32), generator=gen) * 2 - 1 for _ in range(iterations)]
  labels = [torch.randint(0, classes, shape, generator=gen) if classes else None
            for _ in range(iterations)]
  start = time.perf_counter()
  trainer.iteration(reals[0], labels[0])
  first_s = time.perf_counter() - start
  counter = torch.utils.flop_counter.FlopCounterMode(display=False)
  # Its per-module tracker fails under autograd.grad (the gradient penalty), and only the total
  # is wanted: attribute every op to 'Global'.
  counter.mod_tracker = types.SimpleNamespace(parents={'Global'}, __enter__=lambda: None,
                                              __exit__=lambda: None)
  # Lazy terms: one counted iteration per set of terms due, weighted by its share of the cycle.
  intervals = list(trainer.lazy_intervals().values())
  cycle = math.lcm(*intervals) if intervals else 1
  kinds = collections.Counter(tuple(s % k == 0 for k in intervals) for s in range(cycle))
  done, iteration_flops = trainer.step, 0.0
  for due, count in kinds.items():
    if intervals:
      trainer.step = next(s for s in range(cycle) if tuple(s % k == 0 for k in intervals) == due)
    with counter:
      trainer.iteration(reals[0], labels[0])
    iteration_flops += count / cycle * float(counter.get_total_flops())
  trainer.step = done + len(kinds)
  a = torch.ones(MATMUL_N, MATMUL_N)
  reply({'params_g': torch_models.num_params(trainer.g),
         'params_d': torch_models.num_params(trainer.d), 'compile_s': 0.0, 'first_s': first_s,
         'flops': iteration_flops,
         'device': f'cpu, {torch.get_num_threads()} threads',
         'version': f'torch {torch.__version__}'})
  for line in sys.stdin:
    command = line.split()
    if command[0] == 'time':
      start, cpu = time.perf_counter(), time.process_time()
      for real, label in zip(reals, labels):
        trainer.iteration(real, label)
      reply({'seconds': time.perf_counter() - start, 'cpu': time.process_time() - cpu})
    elif command[0] == 'matmul':
      reply({'gflops': best_matmul_gflops(lambda: a @ a)})
    else:
      reply({'peak_rss_mb': peak_rss_mb()})
      return


# ------------------------------------------------------------------------------------------------
# The orchestrator.

class Worker:
  """A worker subprocess: send a command, read its JSON reply."""

  def __init__(self, argv, env=None):
    self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=ROOT, env=env)
    self.ready = self._read()

  def _read(self):
    for line in self.proc.stdout:
      if line.startswith(MARK):
        return json.loads(line[len(MARK):])
    raise RuntimeError(f'worker {self.proc.args} exited with {self.proc.wait()}')

  def ask(self, command):
    self.proc.stdin.write(command + '\n')
    self.proc.stdin.flush()
    return self._read()

  def close(self):
    out = self.ask('exit')
    self.proc.wait()
    return out


def run_workload(name, args, log):
  config = jax_config(name)
  spec = torch_spec(config) | {'iterations': WORKLOADS[name][3]}
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  me = os.path.abspath(__file__)
  cores = ['--cores', str(args.cores)] if args.cores else []
  jx = Worker([sys.executable, me, '--worker', 'jax', '--workloads', name,
               '--iterations', str(WORKLOADS[name][3])] + cores, env)
  log(f'  jax   ready: {jx.ready}')
  tc = Worker([args.torch_python, me, '--worker', 'torch', '--spec', json.dumps(spec),
               '--threads', str(args.cores or args.threads)] + cores)
  log(f'  torch ready: {tc.ready}')
  if (jx.ready['params_g'], jx.ready['params_d']) != (tc.ready['params_g'], tc.ready['params_d']):
    raise RuntimeError(f'{name}: parameter counts differ: jax {jx.ready}, torch {tc.ready}')
  seconds, cpu, loads = {'jax': [], 'torch': []}, {'jax': [], 'torch': []}, []
  peaks = [w.ask('matmul')['gflops'] for w in (jx, tc)]
  for r in range(args.repeats):
    order = [('jax', jx), ('torch', tc)]
    for kind, worker in (order if r % 2 == 0 else order[::-1]):
      timing = worker.ask('time')
      seconds[kind].append(timing['seconds'])
      cpu[kind].append(timing['cpu'])
    loads.append(os.getloadavg()[0])
    log(f'  repeat {r}: jax {seconds["jax"][-1]:.2f} s, torch {seconds["torch"][-1]:.2f} s '
        f'(CPU {cpu["jax"][-1]:.2f} s, {cpu["torch"][-1]:.2f} s; load {loads[-1]:.1f})')
  peaks += [w.ask('matmul')['gflops'] for w in (jx, tc)]
  images = WORKLOADS[name][3] * spec['batch_size'] * spec['n_critic']
  result = {'name': name, 'description': WORKLOADS[name][0], 'n_critic': spec['n_critic'],
            'iterations': WORKLOADS[name][3], 'params': (jx.ready['params_g'],
                                                         jx.ready['params_d']),
            'flops': {k: w.ready['flops'] for k, w in (('jax', jx), ('torch', tc))},
            'matmul_gflops': peaks, 'versions': {}, 'loads': loads}
  for kind, worker in (('jax', jx), ('torch', tc)):
    median = statistics.median(seconds[kind])
    result[kind] = {'seconds': seconds[kind], 'images_per_s': images / median,
                    'cpu_s_per_image': statistics.median(cpu[kind]) / images,
                    'runs': [images / s for s in seconds[kind]],
                    'gflops': worker.ready['flops'] * WORKLOADS[name][3] / median / 1e9,
                    'compile_s': worker.ready['compile_s'], 'first_s': worker.ready['first_s'],
                    'peak_rss_mb': worker.close()['peak_rss_mb']}
    result['versions'][kind] = worker.ready['version'] + ', ' + worker.ready['device']
  result['ratio'] = result['jax']['images_per_s'] / result['torch']['images_per_s']
  result['cpu_ratio'] = result['torch']['cpu_s_per_image'] / result['jax']['cpu_s_per_image']
  return result


def _rate(x):
  """Images/s for the tables: whole numbers, two decimals below 10 (BigGAN, StyleGAN2 on CPU)."""
  return f'{x:.0f}' if x >= 10 else f'{x:.2f}'


def table(results, args):
  sys.path.insert(0, HERE)
  from common import machine  # pylint: disable=import-outside-toplevel
  peak = max(p for r in results for p in r['matmul_gflops'])
  rows = []
  for r in results:
    j, t = r['jax'], r['torch']
    rows.append(
        f'| {r["description"]} | {r["n_critic"]} | {_rate(j["images_per_s"])} | '
        f'{_rate(t["images_per_s"])} | **{r["ratio"]:.2f}×** | {r["cpu_ratio"]:.2f}× | '
        f'{min(r["loads"]):.1f}–{max(r["loads"]):.1f} | '
        f'{r["flops"]["jax"] / 1e9:.1f} / {r["flops"]["torch"] / 1e9:.1f} | '
        f'{j["gflops"]:.0f} ({100 * j["gflops"] / peak:.0f}%) | '
        f'{t["gflops"]:.0f} ({100 * t["gflops"] / peak:.0f}%) | '
        f'{j["compile_s"]:.1f} + {j["first_s"]:.1f} | {t["first_s"]:.1f} | '
        f'{j["peak_rss_mb"]:.0f} / {t["peak_rss_mb"]:.0f} |')
  runs = [f'- {r["description"]}: jax {", ".join(_rate(x) for x in r["jax"]["runs"])}; '
          f'torch {", ".join(_rate(x) for x in r["torch"]["runs"])} images/s '
          f'({r["iterations"]} iteration(s) per repeat); parameters G {r["params"][0]:,}, '
          f'D {r["params"][1]:,} in both' for r in results]
  versions = results[0]['versions']
  return '\n'.join([
      BEGIN,
      '## gan_jax vs eager PyTorch: the training iteration (32×32×3, batch 64)',
      '',
      f'`python benchmarks/vs_pytorch.py --repeats {args.repeats} --workloads '
      f'{args.workloads}{f" --cores {args.cores}" if args.cores else ""}'
      f'{f" --iterations {args.iterations}" if args.iterations else ""}` '
      f'({datetime.date.today()}; {machine()}; {versions["jax"]}; '
      f'{versions["torch"]}). Each workload: one JAX and one PyTorch process side by side, '
      f'timed in turn ({args.repeats} repeats each, order alternating); medians. Images/s = real '
      'images through D per second (batch × n_critic per iteration). GFLOP per iteration: the '
      "work each framework does, gan_jax's from XLA's cost analysis of its compiled steps "
      "(elementwise ops included), PyTorch's from torch's FlopCounterMode over one iteration "
      '(matmuls and convolutions). They differ because gan_jax computes its stride-2 and '
      'transposed convolutions by Winograd F(2×2, 2×2) (9 matmuls per output tile instead of '
      "16; gan_jax/layers.py), the ResNet generator's upsample + 3×3 conv as one transposed "
      "4×4 conv and the ResNet discriminator's 3×3 conv + average pooling as one stride-2 4×4 "
      "conv (BigGAN's blocks too, whose G shortcut also runs its 1×1 conv before the "
      "upsampling), where PyTorch convolves directly. Lazy terms (StyleGAN2's R1): both counts "
      "are the mean over a lazy cycle. GFLOP/s: each framework's own count over its "
      f'own time; % of the machine\'s measured matmul peak, {peak:.0f} GFLOP/s (best 2048³ '
      'float32 matmul of '
      'either framework during the run). Compile: trace + XLA compile of the jitted call, + its '
      "first run; PyTorch's first iteration. Peak RSS per process, JAX / PyTorch. CPU-time "
      'ratio: PyTorch process CPU seconds per image / gan_jax\'s (all threads; spin-waiting '
      'counts), less sensitive to other jobs than wall time; load average: of the machine '
      'during the repeats (2 cores: above 2, other jobs shared them).',
      '',
      '| workload | n_critic | gan_jax images/s | PyTorch images/s | ratio | CPU-time ratio | '
      'load average | GFLOP/it, gan_jax / PyTorch | '
      'gan_jax GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) | gan_jax compile + first, s | '
      'PyTorch first it., s | peak RSS MB |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      *rows,
      '',
      'Per-repeat images/s:',
      '',
      *runs,
      END])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--worker', choices=('jax', 'torch'))
  parser.add_argument('--spec')
  parser.add_argument('--workloads', default=DEFAULT_WORKLOADS)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--cores', type=int, default=0,
                      help='pin both frameworks to the first N cores (torch: N threads); 0: all')
  parser.add_argument('--torch-python',
                      default=os.environ.get('TORCH_PYTHON', '/tmp/torchvenv/bin/python'))
  parser.add_argument('--json', help='also write the raw results here')
  parser.add_argument('--no-write', action='store_true', help='do not update RESULTS.md')
  parser.add_argument('--iterations', type=int, default=0,
                      help='iterations per timed repeat for every workload (0: each one\'s own; '
                      'fewer than a lazy cycle times the iterations without the lazy term)')
  parser.add_argument('--section', default='vs_pytorch',
                      help='the RESULTS.md markers to write between (<!-- NAME:begin/end -->)')
  args = parser.parse_args()
  if args.iterations:
    for name, (description, path, changes, _) in WORKLOADS.items():
      WORKLOADS[name] = (description, path, changes, args.iterations)
  if args.worker:
    pin(args.cores)
  if args.worker == 'jax':
    return jax_worker(args.workloads)
  if args.worker == 'torch':
    return torch_worker(args.spec, args.threads)
  if not os.path.exists(args.torch_python):
    sys.exit(f'no PyTorch interpreter at {args.torch_python}: make one with\n  python3 -m venv '
             '/tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.14.1 numpy\nor pass '
             '--torch-python (or TORCH_PYTHON) naming a python that has torch.')
  results = []
  for name in args.workloads.split(','):
    if name not in WORKLOADS:
      sys.exit(f'unknown workload {name!r}; valid choices: {", ".join(WORKLOADS)}')
    print(f'{name}:', flush=True)
    results.append(run_workload(name, args, lambda s: print(s, flush=True)))
    r = results[-1]
    print(f'{name}: jax {r["jax"]["images_per_s"]:.1f} images/s, torch '
          f'{r["torch"]["images_per_s"]:.1f} images/s, ratio {r["ratio"]:.2f}', flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
  text = table(results, args)
  print(text)
  if not args.no_write:
    sys.path.insert(0, HERE)
    from common import write_section  # pylint: disable=import-outside-toplevel
    write_section(f'<!-- {args.section}:begin -->', f'<!-- {args.section}:end -->',
                  text.replace(BEGIN, f'<!-- {args.section}:begin -->').replace(
                      END, f'<!-- {args.section}:end -->'))


if __name__ == '__main__':
  main()

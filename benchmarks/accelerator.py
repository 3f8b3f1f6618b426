"""The image experiments on whatever backend is present: one command, one section of RESULTS.md.

  python benchmarks/accelerator.py                 # every measurement, at the defaults below
  python benchmarks/accelerator.py --workloads DCGAN --dtypes float32 --impls rewrite

For each image experiment (DCGAN, the CIFAR ResNets of wgan_cifar.py and sngan_cifar.py, DCGAN at
64×64, pix2pix), in each train.dtype × model.conv_impl × device count asked for:
  * images/s of the bare jitted training iteration (real images through D: batch × n_critic per
    iteration; `--iterations` per call in one lax.scan, median of `--repeats` calls);
  * compile seconds (lower + compile) and the compiled call's memory (arguments + outputs +
    temporaries, XLA's memory analysis; on GPU/TPU also the device's peak bytes in use);
  * the share of the device's peak: the iteration's matmul and convolution FLOPs (counted on its
    jaxpr, each scan's body times its length: XLA's cost analysis counts a loop's body once, so a
    10-step scan of a matmul reports the FLOPs of one) over its time, against the peak of a large
    matmul measured in the same dtype on the same device;
  * data-parallel scaling: all local devices against one (efficiency = images/s ratio / devices).
Then, for the float32 default of each GAN workload:
  * the whole loop (`tasks.train_and_evaluate`: the data read from mock tfds ArrayRecord files this
    script writes (PNG-encoded, as tfds prepares CIFAR-10), device transfer, logging, orbax
    checkpoints): the median of its logged images/s, leaving out the first window (compile);
  * evaluation: FID at `--eval-samples` samples through the run's Evaluator (Inception-V3 with
    random weights written in pytorch-fid's layout: the cost does not depend on the values), the
    reference cached as in training;
  * the input pipeline's host throughput alone (CIFAR-shaped, 64 and 128 px ArrayRecord, and an
    image folder), for data.workers 0, 1, 2, 4, ..., against what the model consumes;
  * whether bfloat16 WGAN-GP (DCGAN and the ResNet of wgan_cifar.py) stays finite over its first
    `--finite-iterations` iterations (losses and parameters).

A workload name filter (--workloads) and the lists (--dtypes, --impls) choose what runs; the
section is named after the backend (accelerator_cpu, accelerator_gpu, ...).
"""
import argparse
import datetime
import functools
import io
import os
import shlex
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import load_config, machine, write_section  # pylint: disable=g-bad-import-order,wrong-import-position

from gan_jax import input_pipeline, layers, logs, tasks  # pylint: disable=wrong-import-position
from gan_jax.metrics import inception  # pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = 'gan_jax_bench'  # the tfds name of the mock datasets (configs px32, px64, px128)
BENCH_SIZES = {32: 4_096, 64: 2_048, 128: 1_024}  # side: examples


# --- data this script writes -------------------------------------------------------------------


class GanJaxBench(tfds.core.GeneratorBasedBuilder):
  """BENCH/px{32,64,128}: PNG-encoded RGB images of 4×4 blocks of noise, 10 labels."""
  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f'px{s}') for s in BENCH_SIZES]

  def _side(self):
    return int(self.builder_config.name[2:])

  def _info(self):
    s = self._side()
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(s, s, 3)),
        'label': tfds.features.ClassLabel(num_classes=10)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    s, rng = self._side(), np.random.default_rng(0)
    for i in range(BENCH_SIZES[s]):
      img = rng.integers(0, 256, (s // 4, s // 4, 3), np.uint8).repeat(4, 0).repeat(4, 1)
      buf = io.BytesIO()
      PIL.Image.fromarray(img).save(buf, format='PNG')
      yield i, {'image': buf.getvalue(), 'label': i % 10}


def mock_tfds(data_dir: str) -> None:
  """Prepares BENCH/px{32,64,128} in `data_dir`: ArrayRecord files written by tfds' own builder
  (no TensorFlow: PIL encodes), read back as tfds prepares CIFAR-10."""
  tfds.disable_progress_bar()
  for side in BENCH_SIZES:
    tfds.builder(f'{BENCH}/px{side}', data_dir=data_dir,
                 file_format='array_record').download_and_prepare()


def image_folder(root: str, n: int = 1_024, side: int = 32) -> str:
  rng = np.random.default_rng(1)
  for i in range(n):
    os.makedirs(os.path.join(root, str(i % 10)), exist_ok=True)
    PIL.Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)).save(
        os.path.join(root, str(i % 10), f'{i}.png'))
  return root


def random_inception_weights(path: str) -> str:
  """Random weights in pytorch-fid's state_dict layout (.npz): He-scaled convolutions, unit BN."""
  rng, arrays = np.random.default_rng(0), {}
  for name, shape in inception.torch_shapes().items():
    if name.endswith(('running_var', '.weight')) and len(shape) == 1:
      arrays[name] = np.ones(shape, np.float32)
    elif len(shape) > 1:
      fan_in = int(np.prod(shape[1:]))
      arrays[name] = rng.normal(0, (2 / fan_in) ** 0.5, shape).astype(np.float32)
    else:
      arrays[name] = np.zeros(shape, np.float32)
  np.savez(path, **arrays)
  return path


# --- the workloads -----------------------------------------------------------------------------


def workloads(data_dir: str) -> dict:
  def on_mock(name, side, **changes):
    c = load_config(os.path.join(ROOT, 'experiments', name))
    c.data.update(name=f'tfds:{BENCH}/px{side}', data_dir=data_dir, image_size=side)
    for key in ('crop',):
      if key in c.data:
        del c.data[key]
    for key, value in changes.items():
      section, field = key.split('__')
      c[section][field] = value
    return no_eval(c)

  def no_eval(c):  # the training measurements build no feature network
    c.eval.metrics = ()
    return c
  return {
      'DCGAN (dcgan_cifar.py)': on_mock('dcgan_cifar.py', 32),
      'DCGAN, WGAN-GP, n_critic 5': on_mock(
          'dcgan_cifar.py', 32, objective__name='wasserstein', penalty__name='wgan_gp',
          penalty__weight=10.0, optim__n_critic=5),
      'ResNet, WGAN-GP (wgan_cifar.py)': on_mock('wgan_cifar.py', 32),
      'ResNet, hinge + SN (sngan_cifar.py)': on_mock('sngan_cifar.py', 32),
      'DCGAN 64×64, batch 128 (dcgan_celeba64.py)': on_mock('dcgan_celeba64.py', 64),
      'pix2pix colourisation (pix2pix_colorize_mnist.py)':
          no_eval(load_config(os.path.join(ROOT, 'experiments', 'pix2pix_colorize_mnist.py'))),
  }


def images_per_iteration(config) -> int:
  return config.data.batch_size * config.optim.get('n_critic', 1)


# --- FLOPs and the peak ------------------------------------------------------------------------


def _conv_flops(eqn) -> float:
  rhs = eqn.invars[1].aval.shape
  spec = eqn.params['dimension_numbers'].rhs_spec  # (out features, in features, spatial...)
  per_output = rhs[spec[1]] * np.prod([rhs[d] for d in spec[2:]])
  return 2.0 * np.prod(eqn.outvars[0].aval.shape) * per_output


def _dot_flops(eqn) -> float:
  (contract, _), _ = eqn.params['dimension_numbers']
  lhs = eqn.invars[0].aval.shape
  return 2.0 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs[d] for d in contract])


def jaxpr_flops(jaxpr) -> float:
  """Matmul and convolution FLOPs of a (closed) jaxpr: scans' bodies times their length, the
  larger branch of a cond, every other sub-jaxpr once."""
  jaxpr = getattr(jaxpr, 'jaxpr', jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      total += _dot_flops(eqn)
    elif name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name == 'scan':
      total += eqn.params['length'] * jaxpr_flops(eqn.params['jaxpr'])
    elif name == 'cond':
      total += max(jaxpr_flops(b) for b in eqn.params['branches'])
    else:
      for value in eqn.params.values():
        for sub in (value if isinstance(value, (tuple, list)) else (value,)):
          if hasattr(sub, 'eqns') or hasattr(getattr(sub, 'jaxpr', None), 'eqns'):
            total += jaxpr_flops(sub)
  return total


def matmul_peak(dtype, n: int, repeats: int = 5) -> float:
  """FLOP/s of an n×n matmul in `dtype` (float32 accumulation for bfloat16), best of `repeats`
  calls of 10 chained matmuls."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype) / n ** 0.5
  fn = jax.jit(lambda x: jax.lax.fori_loop(0, 10, lambda _, y: (y @ a).astype(dtype), x))
  jax.block_until_ready(fn(a))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(a))
    best = min(best, time.perf_counter() - start)
  return 10 * 2.0 * n ** 3 / best


# --- the bare iteration ------------------------------------------------------------------------


def measure_iteration(config, devices, iterations: int, repeats: int) -> dict:
  config.train.update(steps_per_call=iterations, log_every=iterations, eval_every=iterations,
                      checkpoint_every=iterations)
  exp = tasks.make_experiment(config, devices=devices)
  fn = exp.train_fn(iterations)
  take = exp.batch_stream(0)
  state = exp.init_state()
  batches = take(iterations)
  start = time.perf_counter()
  compiled = fn.lower(state, exp.loop_key, batches).compile()
  compile_s = time.perf_counter() - start
  call = functools.partial(exp.train_call, num_steps=iterations)  # the function fn jits
  flops = jaxpr_flops(jax.make_jaxpr(call)(state, exp.loop_key, batches)) / iterations
  mem = compiled.memory_analysis()
  memory = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes +
            mem.temp_size_in_bytes) if mem is not None else None
  state, _ = compiled(state, exp.loop_key, batches)
  jax.block_until_ready(state)
  seconds = []
  for _ in range(repeats):
    batches = take(iterations)
    jax.block_until_ready(batches)
    start = time.perf_counter()
    state, metrics = compiled(state, exp.loop_key, batches)
    jax.block_until_ready((state, metrics))
    seconds.append((time.perf_counter() - start) / iterations)
  stats = devices[0].memory_stats() or {}
  per_iteration = statistics.median(seconds)
  return {'images_per_s': images_per_iteration(config) / per_iteration,
          'flops_per_s': flops / per_iteration, 'compile_s': compile_s, 'memory': memory,
          'peak_bytes': stats.get('peak_bytes_in_use')}


# --- the whole loop, evaluation, the pipeline, bf16 finiteness ---------------------------------


def measure_loop(config, workdir: str, steps: int, log_every: int) -> float:
  """Median logged images/s of train_and_evaluate, without the first window (compile)."""
  config.train.update(steps=steps, steps_per_call=min(10, log_every), log_every=log_every,
                      eval_every=10 * steps, checkpoint_every=steps // 2)
  config.eval.metrics = ()
  tasks.train_and_evaluate(config, workdir, log=lambda m: None)
  rates = [r['examples_per_sec'] for r in logs.read_metrics(workdir) if r['split'] == 'train']
  return statistics.median(rates[1:]) if len(rates) > 1 else rates[0]


def measure_eval(config, weights: str, cache: str, n: int) -> dict:
  """Seconds of FID at n samples with the reference cached (the second call), and of the
  first call (which also builds the reference)."""
  config.eval.update(metrics=('fid',), num_samples=n, features='inception',
                     inception_weights=weights, cache_dir=cache, generators=('ema',),
                     num_real=min(n, BENCH_SIZES[config.data.image_size]))
  exp = tasks.make_experiment(config)
  state = exp.init_state()
  times = []
  for _ in range(2):
    start = time.perf_counter()
    exp.evaluate(state, n)
    times.append(time.perf_counter() - start)
  return {'first_s': times[0], 'cached_s': times[1], 'images_per_s': n / times[1]}


def pipeline_rate(data, batch: int, workers: int, batches: int) -> float:
  it = data.batches(batch, workers=workers)
  next(it)
  for _ in range(2 * max(1, workers)):  # the workers' start-up
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  rate = batches * batch / (time.perf_counter() - start)
  it.close()
  return rate


def stays_finite(config, iterations: int, chunk: int = 50) -> dict:
  """Trains `iterations` iterations of the bare loop; the first iteration whose losses are not
  finite (None if none), and whether the parameters end finite."""
  config.train.update(steps_per_call=chunk, log_every=chunk, eval_every=chunk,
                      checkpoint_every=chunk)
  exp = tasks.make_experiment(config)
  fn, take, state = exp.train_fn(chunk), exp.batch_stream(0), exp.init_state()
  start, first_bad, worst = time.perf_counter(), None, 0.0
  for done in range(0, iterations, chunk):
    state, metrics = fn(state, exp.loop_key, take(chunk))
    losses = np.stack([np.asarray(v) for k, v in metrics.items() if k.endswith('loss')])
    worst = max(worst, float(np.nanmax(np.abs(losses))) if np.isfinite(losses).any() else 0.)
    bad = np.where(~np.isfinite(losses).all(0))[0]
    if len(bad):
      first_bad = done + int(bad[0]) + 1
      break
  params_finite = all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(
      (state.g.params, state.d.params)))
  return {'first_nonfinite': first_bad, 'params_finite': params_finite, 'max_abs_loss': worst,
          'seconds': time.perf_counter() - start}


# --- the report --------------------------------------------------------------------------------


def _mib(b):
  return '–' if b is None else f'{b / 2 ** 20:,.0f}'


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workloads', nargs='+', default=None, help='substrings of their names')
  parser.add_argument('--dtypes', nargs='+', default=['float32', 'bfloat16'])
  parser.add_argument('--impls', nargs='+', default=['xla', 'rewrite'])
  parser.add_argument('--iterations', type=int, default=10)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--loop-steps', type=int, default=200)
  parser.add_argument('--eval-samples', type=int, default=10_000)
  parser.add_argument('--pipeline-batches', type=int, default=40)
  parser.add_argument('--workers', nargs='+', type=int, default=[0, 1, 2, 4, 8])
  parser.add_argument('--eval-workloads', nargs='+', default=[''], help='substrings')
  parser.add_argument('--finite-iterations', type=int, default=1_000)
  parser.add_argument('--finite-workloads', nargs='+', default=['DCGAN, WGAN-GP',
                                                                 'ResNet, WGAN-GP'])
  parser.add_argument('--matmul', type=int, default=None, help='side of the peak matmul')
  parser.add_argument('--skip', nargs='*', default=[],
                      choices=['iteration', 'loop', 'eval', 'pipeline', 'finite'])
  parser.add_argument('--section', default=None)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  backend = jax.default_backend()
  section = args.section or f'accelerator_{backend}'
  tmp = tempfile.mkdtemp(prefix='gan_jax_accelerator_')
  data_dir = os.path.join(tmp, 'tfds')
  mock_tfds(data_dir)
  chosen = {n: c for n, c in workloads(data_dir).items()
            if not args.workloads or any(w in n for w in args.workloads)}
  side = args.matmul or (1024 if backend == 'cpu' else 8192)
  peaks = {d: matmul_peak(jnp.dtype(d), side) for d in args.dtypes}
  print('matmul peak:', {d: f'{p / 1e12:.3f} TFLOP/s' for d, p in peaks.items()}, flush=True)
  device_sets = [jax.local_devices()[:1]] + ([jax.local_devices()]
                                             if jax.local_device_count() > 1 else [])
  lines = []

  # The bare iteration.
  rows, consumed = [], {}
  for name, config in ([] if 'iteration' in args.skip else chosen.items()):
    for dtype in args.dtypes:
      for impl in args.impls:
        for devices in device_sets:
          c = config.copy_and_resolve_references()
          c.train.dtype, c.model.conv_impl = dtype, impl
          r = measure_iteration(c, devices, args.iterations, args.repeats)
          r.update(name=name, dtype=dtype, impl=impl, devices=len(devices),
                   share=r['flops_per_s'] / peaks[dtype])
          rows.append(r)
          side_px = c.data.get('image_size', 32)
          consumed[side_px] = max(consumed.get(side_px, 0), r['images_per_s'])
          print(f'{name} | {dtype} | {impl} | {len(devices)} device(s): '
                f'{r["images_per_s"]:,.0f} images/s, {r["share"]:.1%} of peak, compile '
                f'{r["compile_s"]:.1f} s', flush=True)
  if rows:
    one = {(r['name'], r['dtype'], r['impl']): r['images_per_s'] for r in rows
           if r['devices'] == 1}
    lines += ['### The jitted training iteration', '',
              f'{args.iterations} iterations per call (one `lax.scan`), median of {args.repeats} '
              'calls after the compile; images/s = real images through D (batch × n_critic per '
              'iteration); share of peak = matmul + convolution FLOPs per second over the '
              f'measured {side}×{side} matmul peak in the same dtype '
              f'({", ".join(f"{d} {p / 1e12:.3f} TFLOP/s" for d, p in peaks.items())}); '
              'memory = arguments + outputs + temporaries of the compiled call (XLA); '
              '`auto` resolves to '
              f'`{layers.resolve_impl("auto", backend)}` here.', '',
              '| workload | train.dtype | conv_impl | devices | images/s | share of peak | '
              'compile, s | memory, MiB | device peak, MiB | scaling efficiency |',
              '|---|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
      base = one[r['name'], r['dtype'], r['impl']]
      eff = ('–' if r['devices'] == 1 else
             f'{r["images_per_s"] / base / r["devices"]:.0%}')
      lines.append(f'| {r["name"]} | {r["dtype"]} | {r["impl"]} | {r["devices"]} | '
                   f'{r["images_per_s"]:,.0f} | {r["share"]:.1%} | {r["compile_s"]:.1f} | '
                   f'{_mib(r["memory"])} | {_mib(r["peak_bytes"])} | {eff} |')
    lines.append('')

  gan_workloads = {n: c for n, c in chosen.items() if 'pix2pix' not in n}
  # The whole loop and evaluation, float32 and conv_impl auto.
  loop_rows = []
  for name, config in gan_workloads.items():
    row = {'name': name}
    if 'loop' not in args.skip:
      row['loop'] = measure_loop(config.copy_and_resolve_references(),
                                 os.path.join(tmp, f'run{len(loop_rows)}'), args.loop_steps,
                                 max(10, args.loop_steps // 10))
      print(f'{name}: whole loop {row["loop"]:,.0f} images/s', flush=True)
    if 'eval' not in args.skip and any(w in name for w in args.eval_workloads):
      weights = random_inception_weights(os.path.join(tmp, 'inception.npz'))
      row.update(measure_eval(config.copy_and_resolve_references(), weights,
                              os.path.join(tmp, 'cache'), args.eval_samples))
      print(f'{name}: FID at {args.eval_samples:,}: {row["cached_s"]:.1f} s', flush=True)
    loop_rows.append(row)
  if loop_rows and not {'loop', 'eval'} <= set(args.skip):
    bare = {r['name']: r['images_per_s'] for r in rows
            if r['dtype'] == 'float32' and r['devices'] == len(device_sets[-1]) and
            r['impl'] == layers.resolve_impl('auto', backend)}
    lines += ['### The whole loop and evaluation (float32, conv_impl auto, all local devices)', '',
              f'Loop: `tasks.train_and_evaluate` for {args.loop_steps} iterations on the mock '
              'ArrayRecord data (PNG decode, data.workers unset = '
              f'{input_pipeline.resolve_workers(None, backend)} here), logging every '
              f'{max(10, args.loop_steps // 10)}, two orbax checkpoints; the median logged '
              f'images/s without the first window. Eval: FID at {args.eval_samples:,} samples '
              '(generation, Inception-V3 at 299×299, statistics, Fréchet distance) with the '
              'reference cached; the first call also computes it.', '',
              '| workload | bare iteration, images/s | whole loop, images/s | loop / bare | '
              f'FID at {args.eval_samples:,}, s | eval images/s | first eval (with the '
              'reference), s |', '|---|---:|---:|---:|---:|---:|---:|']
    for r in loop_rows:
      b, loop = bare.get(r['name']), r.get('loop')
      lines.append(
          f'| {r["name"]} | {"–" if b is None else f"{b:,.0f}"} | '
          f'{"–" if loop is None else f"{loop:,.0f}"} | '
          f'{"–" if None in (b, loop) else f"{loop / b:.0%}"} | '
          + (f'{r["cached_s"]:.1f} | {r["images_per_s"]:,.0f} | {r["first_s"]:.1f} |'
             if 'cached_s' in r else '– | – | – |'))
    lines.append('')

  # The input pipeline alone.
  if 'pipeline' not in args.skip:
    sources = {f'{BENCH}/px{s} (ArrayRecord, PNG)': (s, input_pipeline.get(
        f'tfds:{BENCH}/px{s}', data_dir=data_dir)) for s in BENCH_SIZES}
    os.environ.setdefault('GAN_JAX_CACHE', os.path.join(tmp, 'cache'))
    sources['image folder, 32 px (cached uint8 array)'] = (32, input_pipeline.image_folder(
        image_folder(os.path.join(tmp, 'folder')), split='all'))
    header = ' | '.join(f'workers {w}' for w in args.workers)
    lines += ['### The input pipeline alone (host images/s, batch 64)', '',
              f'`ImageDataset.batches(64, workers=W)` on this host ({os.cpu_count()} cores), '
              f'{args.pipeline_batches} batches after the workers start; workers 0 = the loop\'s '
              'one prefetch thread. "Consumed" = the fastest bare iteration above at that '
              'resolution.', '',
              f'| source | {header} | consumed by the model |',
              '|---|' + '---:|' * (len(args.workers) + 1)]
    for name, (px, data) in sources.items():
      rates = [pipeline_rate(data, 64, w, args.pipeline_batches) for w in args.workers]
      print(name, [f'{r:,.0f}' for r in rates], flush=True)
      eats = f'{consumed[px]:,.0f}' if px in consumed else '–'
      lines.append(f'| {name} | ' + ' | '.join(f'{r:,.0f}' for r in rates) + f' | {eats} |')
    lines.append('')

  # bfloat16 WGAN-GP.
  if 'finite' not in args.skip:
    lines += [f'### bfloat16 WGAN-GP: finite over the first {args.finite_iterations:,} iterations',
              '', '| workload | first non-finite loss | parameters finite | max abs loss | '
              'seconds |', '|---|---|---|---:|---:|']
    for name, config in workloads(data_dir).items():
      if not any(w in name for w in args.finite_workloads):
        continue
      c = config.copy_and_resolve_references()
      c.train.dtype = 'bfloat16'
      r = stays_finite(c, args.finite_iterations)
      print(name, r, flush=True)
      lines.append(f'| {name} | {r["first_nonfinite"] or "none"} | '
                   f'{"yes" if r["params_finite"] else "no"} | {r["max_abs_loss"]:.3g} | '
                   f'{r["seconds"]:.0f} |')
    lines.append('')

  flags = shlex.join(sys.argv[1:])
  begin, end = f'<!-- {section}:begin -->', f'<!-- {section}:end -->'
  table = '\n'.join([begin, f'## The image experiments on {backend}: '
                     f'{jax.devices()[0].device_kind}', '',
                     f'`python benchmarks/accelerator.py{" " + flags if flags else ""}` '
                     f'({datetime.date.today()}; {machine()}).', '', *lines, end])
  write_section(begin, end, table)
  print(table)


if __name__ == '__main__':
  main()

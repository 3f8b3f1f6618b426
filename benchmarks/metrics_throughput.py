"""Throughput of feature extraction and of each metric at 10k (or --num) vs as many samples.

Feature networks: the offline digit CNN (28×28 digits, jitted batches of 500) and the FID
Inception-V3 (random weights: the cost does not depend on them; resize to 299×299, batches of
`--inception-batch`). Metrics: gan_jax.evaluation's computations on (10k, D) real and fake
feature sets, D = 128 (digit CNN) and 2048 (Inception), drawn from two Gaussians so nothing is
degenerate; one timed run each after a warm-up on small inputs (compiles excluded). MMD and
C2ST run on the evaluator's `eval.two_sample_size` (2,500) of each set, as in the loop. The
protocol's image steps (uint8, each resize to 299, scaling) are timed apart from the network.
Writes a table per --num into benchmarks/RESULTS.md.

  python benchmarks/metrics_throughput.py [--num 10000] [--inception-images 64]
  python benchmarks/metrics_throughput.py --num 50000 --dims 2048 --no-features \
      --metrics fid kid intra_fid fid_infinity inception_score is_infinity
"""
import argparse
import datetime
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from common import machine, write_section  # pylint: disable=g-bad-import-order
from gan_jax import evaluation
from gan_jax.metrics import (StreamingStats, c2st, density_coverage, frechet_distance, inception,
                             inception_score, infinity, kernel_inception_distance, mmd2,
                             precision_recall, protocol)

PAIR = 2_500  # config.eval.two_sample_size: MMD and C2ST use this many of each set


def timed(fn, *args):
  start = time.perf_counter()
  out = fn(*args)
  jax.block_until_ready(out)
  return out, time.perf_counter() - start


def extractor_rate(apply, images, batch: int) -> float:
  """Images per second of jitted `apply` over `images` in batches (after one warm-up batch)."""
  fn = jax.jit(apply)
  jax.block_until_ready(fn(jnp.asarray(images[:batch])))
  start = time.perf_counter()
  for i in range(0, len(images), batch):
    jax.block_until_ready(fn(jnp.asarray(images[i:i + batch])))
  return len(images) / (time.perf_counter() - start)


def fid_from_batches(real, fake, batch=500):
  stats = []
  for feats in (real, fake):
    s = StreamingStats.init(feats.shape[1])
    for i in range(0, len(feats), batch):
      s = s.update(feats[i:i + batch])
    stats.append(s.finalize())
  return frechet_distance(*stats[0], *stats[1])


def fid_infinity(real, fake):
  mu, sigma = StreamingStats.init(real.shape[1]).update(real).finalize()
  return infinity.fid_infinity(fake, mu, sigma)['fid_infinity']


def intra_fid(real, fake, classes=10):
  labels = np.arange(len(real)) % classes
  return evaluation.intra_fid(real, labels, fake, labels)


METRICS = {
    'fid (streaming stats + eigh)': fid_from_batches,
    'kid (100 subsets of 1000)': kernel_inception_distance,
    'precision_recall (k=3)': precision_recall,
    'density_coverage (k=5)': density_coverage,
    f'mmd (200 permutations, {PAIR:,} a side)': lambda r, f: mmd2(r[:PAIR], f[:PAIR]),
    f'c2st (k-NN, {PAIR:,} a side)': lambda r, f: c2st(r[:PAIR], f[:PAIR]),
    'intra_fid (10 classes)': intra_fid,
    'fid_infinity (15 counts)': fid_infinity,
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--num', type=int, default=10_000)
  parser.add_argument('--inception-images', type=int, default=64)
  parser.add_argument('--inception-batch', type=int, default=32)
  parser.add_argument('--dims', type=int, nargs='+', default=[128, 2048])
  parser.add_argument('--no-features', dest='features', action='store_false',
                      help='only the metrics (the feature rates do not depend on --num)')
  parser.add_argument('--metrics', nargs='+', default=None,
                      help='the first word of each METRICS entry to time (default: all)')
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  n = args.num
  rows = []
  if args.features:
    rows += feature_rows(args)
  rng = np.random.default_rng(0)
  for dim in args.dims:
    real = rng.normal(size=(n, dim)).astype(np.float32)
    fake = (0.9 * rng.normal(size=(n, dim)) + 0.1).astype(np.float32)
    for name, fn in METRICS.items():
      if args.metrics and name.split()[0] not in args.metrics:
        continue
      fn(real[:200], fake[:200])  # compiles the jitted k-NN kernels at small sizes
      _, seconds = timed(fn, real, fake)
      rows.append((f'{name}, {dim}-d', f'{n:,} vs {n:,}', f'{seconds:.1f} s'))
      print(rows[-1], flush=True)
  probs = np.asarray(jax.nn.softmax(jnp.asarray(rng.normal(size=(n, 1008)) * 3), axis=-1))
  if not args.metrics or 'inception_score' in args.metrics:
    _, seconds = timed(inception_score, probs)
    rows.append(('inception_score (10 splits), 1008 classes', f'{n:,}', f'{seconds:.2f} s'))
  if not args.metrics or 'is_infinity' in args.metrics:
    _, seconds = timed(lambda p: infinity.is_infinity(p)['is_infinity'], probs)
    rows.append(('is_infinity (15 counts), 1008 classes', f'{n:,}', f'{seconds:.2f} s'))

  begin, end = f'<!-- metrics_throughput_{n}:begin -->', f'<!-- metrics_throughput_{n}:end -->'
  command = ' '.join(['python benchmarks/metrics_throughput.py', f'--num {n}'] +
                     ([f'--dims {" ".join(map(str, args.dims))}'] if args.dims != [128, 2048]
                      else []) + ([] if args.features else ['--no-features']) +
                     ([f'--metrics {" ".join(args.metrics)}'] if args.metrics else []))
  table = '\n'.join([
      begin,
      f'## Evaluation throughput: feature networks, and each metric at {n:,} vs {n:,} samples',
      '',
      f'`{command}` ({datetime.date.today()}; '
      f'{machine()}). One timed run per line after a warm-up (compiles excluded); feature sets '
      'are Gaussian (the cost does not depend on the values). Inception runs at 299×299 on the '
      'CPU, so few images are timed: on an accelerator it is the cheap part.',
      '',
      '| what | samples | time / throughput |',
      '|---|---|---:|',
      *[f'| {a} | {b} | {c} |' for a, b, c in rows],
      end,
  ])
  write_section(begin, end, table)
  print(table)


def feature_rows(args) -> list:
  """Images per second of the digit CNN, of the protocol's image steps and of Inception-V3."""
  rows = []
  n = args.num
  digits = digit_extractor_images(n)
  ext = evaluation.digit_extractor(log=print)
  rate = extractor_rate(ext.apply, digits, 500)
  rows.append(('features: digit CNN (28×28 → 128-d)', f'{n:,} images', f'{rate:,.0f} images/s'))
  print(rows[-1], flush=True)
  model = inception.FIDInceptionV3()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
  images = np.asarray(jax.random.uniform(jax.random.key(1), (args.inception_images, 32, 32, 3),
                                         minval=-1, maxval=1))
  rate = extractor_rate(lambda x: model.apply(variables, x)['pool'], images, args.inception_batch)
  rows.append(('features: Inception-V3 (32×32 → 299×299 → 2048-d)',
               f'{args.inception_images} images', f'{rate:,.1f} images/s'))
  print(rows[-1], flush=True)
  for method in protocol.RESIZES:  # the protocol's steps before the network, on the same images
    steps = lambda x, m=method: protocol.scale(
        protocol.resize(protocol.to_pixels(x, True), (299, 299), m), 'tf')
    rate = extractor_rate(steps, images, args.inception_batch)
    rows.append((f'protocol: uint8 + {method} resize 32×32 → 299×299 + scaling',
                 f'{args.inception_images} images', f'{rate:,.0f} images/s'))
    print(rows[-1], flush=True)
  return rows


def digit_extractor_images(n: int) -> np.ndarray:
  """n digit images: mnist5k's 5,000 repeated (the rate does not depend on the values)."""
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  images = input_pipeline.mnist5k('all').arrays()['image']
  return np.resize(images, (n,) + images.shape[1:])


if __name__ == '__main__':
  main()

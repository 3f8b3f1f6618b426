"""Throughput of feature extraction and of each metric at 10k vs 10k samples.

Feature networks: the offline digit CNN (28×28 digits, jitted batches of 500) and the FID
Inception-V3 (random weights: the cost does not depend on them; resize to 299×299, batches of
`--inception-batch`). Metrics: gan_jax.evaluation's computations on (10k, D) real and fake
feature sets, D = 128 (digit CNN) and 2048 (Inception), drawn from two Gaussians so nothing is
degenerate; one timed run each after a warm-up on small inputs (compiles excluded). Writes a
table into benchmarks/RESULTS.md.

  python benchmarks/metrics_throughput.py [--num 10000] [--inception-images 64]
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
                             inception_score, kernel_inception_distance, mmd2, precision_recall)

BEGIN, END = '<!-- metrics_throughput:begin -->', '<!-- metrics_throughput:end -->'


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


METRICS = {
    'fid (streaming stats + sqrtm)': fid_from_batches,
    'kid (100 subsets of 1000)': kernel_inception_distance,
    'precision_recall (k=3)': precision_recall,
    'density_coverage (k=5)': density_coverage,
    'mmd (200 permutations)': mmd2,
    'c2st (k-NN)': c2st,
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--num', type=int, default=10_000)
  parser.add_argument('--inception-images', type=int, default=64)
  parser.add_argument('--inception-batch', type=int, default=32)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  n = args.num
  rows = []

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

  rng = np.random.default_rng(0)
  for dim in (128, 2048):
    real = rng.normal(size=(n, dim)).astype(np.float32)
    fake = (0.9 * rng.normal(size=(n, dim)) + 0.1).astype(np.float32)
    for name, fn in METRICS.items():
      fn(real[:50], fake[:50])  # compiles the jitted k-NN kernels at small sizes
      _, seconds = timed(fn, real, fake)
      rows.append((f'{name}, {dim}-d', f'{n:,} vs {n:,}', f'{seconds:.1f} s'))
      print(rows[-1], flush=True)
  probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(n, 1008)) * 3), axis=-1)
  _, seconds = timed(inception_score, np.asarray(probs))
  rows.append(('inception_score (10 splits), 1008 classes', f'{n:,}', f'{seconds:.2f} s'))

  table = '\n'.join([
      BEGIN,
      '## Evaluation throughput: feature networks, and each metric at 10k vs 10k samples',
      '',
      f'`python benchmarks/metrics_throughput.py --num {n}` ({datetime.date.today()}; '
      f'{machine()}). One timed run per line after a warm-up (compiles excluded); feature sets '
      'are Gaussian (the cost does not depend on the values). Inception runs at 299×299 on the '
      'CPU, so few images are timed: on an accelerator it is the cheap part.',
      '',
      '| what | samples | time / throughput |',
      '|---|---|---:|',
      *[f'| {a} | {b} | {c} |' for a, b, c in rows],
      END,
  ])
  write_section(BEGIN, END, table)
  print(table)


def digit_extractor_images(n: int) -> np.ndarray:
  """n digit images: mnist5k's 5,000 repeated (the rate does not depend on the values)."""
  from gan_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  images = input_pipeline.mnist5k('all').arrays()['image']
  return np.resize(images, (n,) + images.shape[1:])


if __name__ == '__main__':
  main()

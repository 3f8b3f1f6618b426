"""The digit metrics' real-vs-real floors beside the scores of a trained `dcgan_mnist.py` run.

Floor: mnist5k's 5,000 digits in two disjoint halves of 2,500 (a seeded permutation), one half as
"real", the other as "fake", through the same features (the offline digit CNN) and the same
computations as the training loop (`evaluation.compute_metrics`). Two references for scale: the
real half shuffled pixel-wise (noise with the digits' pixel histogram) and a collapse to one
digit (2,500 copies of the 1s drawn with repetition). Run: `--mode=eval` of the workdir's latest
checkpoint, 2,500 fixed-noise samples against the first 2,500 training digits, EMA and raw G.

  python -m gan_jax.main --config=experiments/dcgan_mnist.py --workdir=runs/dcgan_mnist
  python benchmarks/eval_floors.py --workdir runs/dcgan_mnist
"""
import argparse
import datetime
import os

import numpy as np
from absl import logging

from common import load_config, write_section  # pylint: disable=g-bad-import-order
from gan_jax import evaluation, input_pipeline, tasks

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = '<!-- eval_floors:begin -->', '<!-- eval_floors:end -->'
METRICS = ('fid', 'kid', 'inception_score', 'precision_recall', 'density_coverage', 'mmd', 'c2st')
COLUMNS = ('fid', 'kid', 'inception_score', 'precision', 'recall', 'density', 'coverage',
           'mmd2', 'c2st_accuracy')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workdir', default=os.path.join(ROOT, 'runs', 'dcgan_mnist'))
  parser.add_argument('--num', type=int, default=2500)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  n = args.num
  ext = evaluation.digit_extractor(log=print)
  features = lambda images: np.concatenate(
      [np.asarray(x) for x in (ext.apply(images[i:i + 500])[0] for i in range(0, len(images), 500))])
  probs = lambda images: np.concatenate(
      [np.asarray(x) for x in (ext.apply(images[i:i + 500])[1] for i in range(0, len(images), 500))])

  data = input_pipeline.mnist5k('all').arrays()
  order = np.random.default_rng(0).permutation(len(data['image']))
  half_a, half_b = data['image'][order[:n]], data['image'][order[n:2 * n]]
  real = evaluation.reference(features(half_a))
  rng = np.random.default_rng(1)
  shuffled = np.stack([rng.permutation(x.reshape(-1)).reshape(x.shape) for x in half_b])
  ones = data['image'][data['label'] == 1]
  one_digit = ones[rng.integers(0, len(ones), n)]
  rows = []
  for name, images in (('real vs real (disjoint halves): the floor', half_b),
                       ('pixels shuffled within each image', shuffled),
                       ('only 1s (collapse to one digit)', one_digit)):
    metrics = evaluation.compute_metrics(METRICS, real, features(images), probs(images))
    rows.append((name, metrics))
    print(name, metrics, flush=True)

  config = load_config(os.path.join(ROOT, 'experiments', 'dcgan_mnist.py'))
  config.eval.metrics = METRICS
  records = tasks.evaluate_workdir(config, args.workdir, num_samples=n, log=print)
  for record in records:
    rows.append((f'`dcgan_mnist.py` step {record["step"]}, {record["protocol"]["generator"]} '
                 'generator', record))

  fmt = lambda v: f'{v:.3g}' if abs(v) < 1000 else f'{v:,.0f}'
  table = '\n'.join([
      BEGIN,
      '## Digit metrics: real-vs-real floors beside a trained `dcgan_mnist.py`',
      '',
      f'`python benchmarks/eval_floors.py --workdir {os.path.relpath(args.workdir, ROOT)}` '
      f'({datetime.date.today()}). Features: the offline digit CNN (128-d, test accuracy '
      f'{ext.protocol["classifier_test_accuracy"]:.3f}); {n:,} vs {n:,} samples; the loop\'s '
      'computations (KID: 100 subsets of 1,000; PR k = 3; DC k = 5; MMD Gaussian kernel with '
      'the median heuristic; C2ST k-NN, 50/50 split). "Real" is one half of mnist5k for the '
      'first three rows and the first 2,500 training digits for the run (`--mode=eval`, fixed '
      'noise). Inception score here is the digit CNN\'s (10 classes: at most 10).',
      '',
      '| samples | ' + ' | '.join(COLUMNS) + ' |',
      '|---|' + '---:|' * len(COLUMNS),
      *[f'| {name} | ' + ' | '.join(fmt(m[c]) for c in COLUMNS) + ' |' for name, m in rows],
      END,
  ])
  write_section(BEGIN, END, table)
  print(table)


if __name__ == '__main__':
  main()

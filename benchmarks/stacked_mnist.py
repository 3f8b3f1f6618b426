"""Modes of Stacked MNIST (PacGAN's Table 2 protocol) for experiments/*stacked_mnist*.py.

Each run is `python -m gan_jax.main --config=experiments/NAME` with one seed (benchmarks/digits.py
runs it, and reads back a finished run in --root rather than repeating it); its last eval scores
26,000 samples of the EMA generator (and of the raw G): each channel classified by the offline
digit CNN, modes = the distinct (d_R, d_G, d_B) of the 1,000 seen, reverse KL(p_fake ‖ uniform).
PacGAN (Lin et al. 2018, arXiv:1712.04086, Table 2) reports 99 modes / KL 3.40 for its DCGAN and
1,000 / 0.06 at best for PacDCGAN.

  python benchmarks/stacked_mnist.py --experiments dcgan_stacked_mnist.py \\
      pacdcgan_stacked_mnist.py --seeds 0 1 2
"""
import argparse
import datetime
import os
import statistics

from common import cell, machine, write_section  # pylint: disable=g-bad-import-order
from digits import ROOT, run_one  # pylint: disable=g-bad-import-order


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--experiments', nargs='+', default=['dcgan_stacked_mnist.py',
                                                           'pacdcgan_stacked_mnist.py'])
  parser.add_argument('--seeds', nargs='+', type=int, default=[0])
  parser.add_argument('--section', default=None, help='default: the experiments\' names')
  parser.add_argument('--root', default=os.path.join(ROOT, 'runs', 'stacked_mnist'))
  parser.add_argument('--fresh', action='store_true')
  args = parser.parse_args()
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  rows = []
  for name in args.experiments:
    path = os.path.join(ROOT, 'experiments', name)
    config = configs.load_file(path)
    runs = [run_one(args.root, 'baseline', s, 1.0, None, args.fresh, path) for s in args.seeds]
    cells = [cell([r[g][k] for r in runs], fmt) for g in ('ema', 'raw')
             for k, fmt in (('modes', '.0f'), ('reverse_kl', '.3f'))]
    rows.append(f'| `{name}` | {config.train.steps:,} × {config.data.batch_size} | '
                f'{" | ".join(cells)} | '
                f'{statistics.mean(r["wall"] for r in runs) / 60:.1f} |')
    print(rows[-1], flush=True)
  section = args.section or '_'.join(os.path.splitext(n)[0] for n in args.experiments)
  begin, end = f'<!-- stacked_mnist_{section}:begin -->', f'<!-- stacked_mnist_{section}:end -->'
  table = '\n'.join([
      begin,
      f'## Stacked MNIST modes: {", ".join(args.experiments)} ({datetime.date.today()})',
      '',
      f'`python benchmarks/stacked_mnist.py --experiments {" ".join(args.experiments)} --seeds '
      f'{" ".join(map(str, args.seeds))}` on {machine()}. Seeds '
      f'{", ".join(map(str, args.seeds))} (mean ± s.e. over seeds). The last eval: 26,000 '
      'samples (a conditional G: labels cycling through the 1,000 classes), each channel '
      'classified by the offline digit CNN; modes of 1,000 seen, reverse KL(p_fake ‖ uniform). '
      'PacGAN\'s Table 2: DCGAN 99 modes, KL 3.40; PacDCGAN2 1,000, 0.06.',
      '',
      '| experiment | iterations × batch | modes (EMA) | reverse KL (EMA) | modes (raw) | '
      'reverse KL (raw) | minutes per run |',
      '|---|---:|---:|---:|---:|---:|---:|',
      *rows,
      end])
  write_section(begin, end, table)


if __name__ == '__main__':
  main()

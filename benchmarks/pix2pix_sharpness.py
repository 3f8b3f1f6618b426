"""pix2pix vs its L1-only baseline: are the GAN-augmented outputs sharper, closer to the targets?

For each task (inpaint, colorize) trains experiments/pix2pix_<task>_mnist.py (L_GAN + 100·L1) and
pix2pix_<task>_mnist_l1.py (λ_GAN = 0) at their default settings, one after the other, timing
each run, then compares them on the held-out pairs (mnist5k / Stacked MNIST 'test'):

  sharpness     mean gradient magnitude (pix2pix.mean_gradient_magnitude) of outputs vs targets;
                per image, which model's sharpness is closer to its target's (a paired sign
                test gives the p-value);
  l1, psnr      the reconstruction metrics (L1 regression is expected to win these);
  fid, kid, c2st_accuracy   outputs vs targets on digit-classifier features.

Writes a PNG per task (input | L1-only | GAN+L1 | target) to benchmarks/pix2pix/ and a section of
benchmarks/RESULTS.md between <!-- pix2pix:begin --> and <!-- pix2pix:end -->.

  python benchmarks/pix2pix_sharpness.py [--tasks inpaint colorize] [--workdir runs/pix2pix_bench]
"""
import argparse
import datetime
import os
import time

import numpy as np
import scipy.stats

import common

ROOT = os.path.dirname(common.HERE)
PNG_DIR = os.path.join(common.HERE, 'pix2pix')
KEYS = ('l1', 'psnr', 'sharpness_output', 'sharpness_target', 'sharpness_ratio', 'fid', 'kid',
        'c2st_accuracy')


def _experiment(task, variant):
  return os.path.join(ROOT, 'experiments', f'pix2pix_{task}_mnist{variant}.py')


def _run(task, variant, root):
  """Trains one config to its end (fresh workdir); returns (config, workdir, eval record, s)."""
  from gan_jax import tasks  # pylint: disable=g-import-not-at-top
  config = common.load_config(_experiment(task, variant))
  workdir = os.path.join(root, f'{task}{variant or "_gan"}')
  start = time.perf_counter()
  result = tasks.train_and_evaluate(config, workdir, overwrite=True, log=lambda m: None)
  seconds = time.perf_counter() - start
  print(f'{task}{variant or "_gan"}: {seconds:.0f} s, {result["eval"][0]}', flush=True)
  return config, workdir, result['eval'][0], seconds


def _final_model(config, workdir):
  """(experiment, G params, G batch stats) of a run's last checkpoint."""
  from gan_jax import checkpoints, tasks  # pylint: disable=g-import-not-at-top
  exp = tasks.make_experiment(config)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), config.train.keep)
  state = ckpts.restore_latest(exp.init_state())
  ckpts.close()
  params = state.g_ema if config.eval.generators[0] == 'ema' else state.g.params
  return exp, params, state.g.batch_stats


def _save_png(path, grid, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  h, w = grid.shape[:2]
  fig, ax = plt.subplots(figsize=(w / 50, h / 50 + 0.5))
  ax.imshow(grid, interpolation='nearest')
  ax.set_title(title)
  ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def compare(task, root, num_plot=12):
  """Both runs of `task`, their per-image sharpness against the targets', and the PNG."""
  from gan_jax import pix2pix  # pylint: disable=g-import-not-at-top
  runs = {v: _run(task, v, root) for v in ('_l1', '')}
  models = {v: _final_model(runs[v][0], runs[v][1]) for v in runs}
  n = runs[''][0].eval.num_samples
  sharp, shown = {}, {}
  for v, (exp, params, stats) in models.items():
    _, outputs, targets = exp.outputs(params, stats, n)
    sharp[v] = np.asarray(pix2pix.mean_gradient_magnitude(outputs))
    sharp['target'] = np.asarray(pix2pix.mean_gradient_magnitude(targets))
    shown[v] = exp.outputs(params, stats, num_plot)  # evenly spaced over the split
  n = len(sharp['target'])
  gap = {v: np.abs(sharp[v] - sharp['target']) for v in runs}
  closer = int(np.sum(gap[''] < gap['_l1']))
  p_value = float(scipy.stats.binomtest(closer, n, 0.5, alternative='greater').pvalue)
  os.makedirs(PNG_DIR, exist_ok=True)
  png = os.path.join(PNG_DIR, f'{task}.png')
  inputs, _, targets = shown['']
  grid = pix2pix.triplet_grid([inputs, shown['_l1'][1], shown[''][1], targets], per_row=2)
  _save_png(png, grid, f'{task}, held-out pairs: input | L1 only | GAN + L1 | target')
  return {'task': task, 'runs': {v: (runs[v][2], runs[v][3], runs[v][1]) for v in runs},
          'closer': closer, 'n': n, 'p_value': p_value, 'png': os.path.relpath(png, ROOT),
          'gap': {v: float(np.mean(gap[v])) for v in runs}}


def _fmt(value, digits=3):
  return '–' if value is None else f'{value:.{digits}f}'


def table(results, machine):
  lines = [
      '<!-- pix2pix:begin -->',
      '## pix2pix: the GAN term sharpens what L1 blurs',
      '',
      f'`python benchmarks/pix2pix_sharpness.py` ({datetime.date.today()}; {machine}; the runs '
      'one after the other, each a fresh `train_and_evaluate` at the experiment\'s defaults, '
      'wall time including compilation and evals; the machine was shared with other jobs). '
      'Held-out pairs: the 500 mnist5k test digits (inpaint), 500 evenly spaced of the 10,000 '
      'Stacked MNIST test triples (colorize). Sharpness = mean gradient magnitude on [0, 1]; "closer" = images '
      'whose output sharpness is nearer the target\'s for GAN + L1 than for L1 only (one-sided '
      'sign test). FID/KID/C2ST: outputs vs targets on the digit classifier\'s features '
      '(per channel for RGB).',
      '',
      '| task | model | wall s | sharpness out / target (ratio) | mean \\|S_out − S_target\\| | '
      'L1 | PSNR dB | FID | KID | C2ST acc |',
      '|---|---|---:|---|---:|---:|---:|---:|---:|---:|',
  ]
  for r in results:
    for v, name in (('_l1', 'L1 only (λ_GAN = 0)'), ('', 'GAN + L1')):
      rec, seconds, _ = r['runs'][v]
      lines.append(
          f'| {r["task"]} | {name} | {seconds:.0f} | {_fmt(rec["sharpness_output"], 4)} / '
          f'{_fmt(rec["sharpness_target"], 4)} ({rec["sharpness_ratio"]:.3f}) | '
          f'{r["gap"][v]:.4f} | {_fmt(rec["l1"])} | {rec["psnr"]:.2f} | '
          f'{_fmt(rec.get("fid"), 1)} | {_fmt(rec.get("kid"), 1)} | '
          f'{_fmt(rec.get("c2st_accuracy"))} |')
  lines.append('')
  for r in results:
    total = sum(s for _, s, _ in r['runs'].values())
    lines.append(
        f'- **{r["task"]}**: GAN + L1 is closer to the target\'s sharpness on {r["closer"]} of '
        f'{r["n"]} held-out images (sign test p = {r["p_value"]:.2g}); both runs together '
        f'{total:.0f} s. Triplets: `{r["png"]}` (input | L1 only | GAN + L1 | target); each '
        f'run\'s own samples in `{os.path.relpath(r["runs"][""][2], ROOT)}/samples/`.')
  lines.append('<!-- pix2pix:end -->')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--tasks', nargs='+', default=['inpaint', 'colorize'])
  parser.add_argument('--workdir', default=os.path.join(ROOT, 'runs', 'pix2pix_bench'))
  parser.add_argument('--no-write', action='store_true', help='print, do not touch RESULTS.md')
  args = parser.parse_args()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from gan_jax.metrics import digit_classifier  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  digit_classifier.load_or_train()  # trained once and cached; not part of the runs' times
  print(f'digit classifier ready in {time.perf_counter() - start:.0f} s', flush=True)
  results = [compare(task, args.workdir) for task in args.tasks]
  text = table(results, common.machine())
  print(text)
  if not args.no_write:
    common.write_section('<!-- pix2pix:begin -->', '<!-- pix2pix:end -->', text)


if __name__ == '__main__':
  main()

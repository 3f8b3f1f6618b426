"""The digits recipe, its ablation and the limited-data table (issue 16), on mnist5k.

Each run is `python -m gan_jax.main --config=experiments/dcgan_mnist5k_recipe.py` (or another
--experiments file) with one variant's overrides, one seed and one data fraction
(`data.fraction`: a fixed seeded subset of the 4,500 training digits; the metrics still compare
with all 4,500, as DiffAugment's and ADA's limited-data protocol). Its last eval (2,500 fixed-noise samples of the EMA generator, and of
the raw G, in the offline digit CNN's features) is read back from metrics.jsonl; the wall time is
the whole command's (compile, evals and checkpoints included). Runs already finished in
--root are read, not repeated (--fresh redoes them).

  python benchmarks/digits.py --section ablation --variants baseline diffaugment ada lecam ...
  python benchmarks/digits.py --section limited --fractions 1.0 0.2 0.1 --seeds 0 1 2 \\
      --variants baseline diffaugment ada lecam best
  python benchmarks/digits.py --section architectures --variants baseline --experiments \\
      experiments/dcgan_mnist5k_recipe.py experiments/biggan_mnist5k.py \\
      experiments/stylegan2_mnist5k.py    (issue 17: each family at its own CPU-sized config)

The targets (issue 16): FID ≤ 3× the real-vs-real floor (6.42, benchmarks/eval_floors.py),
precision and recall ≥ 0.8, C2ST accuracy ≤ 0.65, each seed, within 15 minutes.
"""
import argparse
import datetime
import itertools
import os
import statistics
import subprocess
import sys
import time

from common import cell, machine, write_section  # pylint: disable=g-bad-import-order

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECIPE = os.path.join(ROOT, 'experiments', 'dcgan_mnist5k_recipe.py')
FLOOR_FID = 6.42  # real vs real, disjoint halves of mnist5k (benchmarks/eval_floors.py)

# Each switch at the strength its paper uses (or the closest that fits digits), on the recipe.
VARIANTS = {
    'baseline': {},
    'diffaugment': {'tricks.diffaugment': 'translation,cutout'},
    'ada': {'tricks.ada.enabled': True},
    'lecam': {'tricks.lecam.weight': 0.3},
    'bcr': {'tricks.consistency.bcr_real': 10.0, 'tricks.consistency.bcr_fake': 10.0},
    'zcr': {'tricks.consistency.zcr_dis': 5.0, 'tricks.consistency.zcr_gen': 0.5},
    'top_k': {'tricks.top_k.enabled': True, 'tricks.top_k.decay_every': 70},  # an epoch
    'orthogonal': {'tricks.orthogonal': 1e-4},
    'd_weight_decay': {'optim.d_weight_decay': 1e-4},
    'lazy_r1': {'penalty.name': 'r1', 'penalty.weight': 1.0, 'penalty.every': 16},
    'r2': {'penalty.name': 'r2', 'penalty.weight': 1.0},
    'no_standing_stats': {'optim.ema_standing_stats': 0},
    'no_ema_warmup': {'optim.ema_start': 0},
    'best': {'tricks.diffaugment': 'translation,cutout', 'tricks.lecam.weight': 0.3},
}
COLUMNS = ('fid', 'precision', 'recall', 'c2st_accuracy')


def _flag(value) -> str:
  return str(value).lower() if isinstance(value, bool) else str(value)


def run_one(root: str, variant: str, seed: int, fraction: float, steps, fresh: bool,
            experiment: str = RECIPE) -> dict:
  """The last eval records {'ema': ..., 'raw': ...} and the wall time of one run."""
  from gan_jax import logs  # pylint: disable=g-import-not-at-top
  name = f'{variant}-f{fraction:g}-s{seed}' + (f'-n{steps}' if steps else '')
  if experiment != RECIPE:
    name = f'{os.path.splitext(os.path.basename(experiment))[0]}-{name}'
  workdir = os.path.join(root, name)
  done = os.path.join(workdir, 'wall_seconds.txt')
  if fresh or not os.path.exists(done):
    overrides = {'seed': seed, **VARIANTS[variant]}
    if fraction != 1.0:
      overrides['data.fraction'] = fraction
    if steps:
      overrides['train.steps'] = steps
    cmd = [sys.executable, '-m', 'gan_jax.main', f'--config={experiment}', f'--workdir={workdir}']
    cmd += [f'--config.{k}={_flag(v)}' for k, v in overrides.items()]
    print(' '.join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(done, 'w') as f:
      f.write(f'{time.perf_counter() - start:.1f}\n')
  evals = [r for r in logs.read_metrics(workdir) if r['split'] == 'eval']
  last = max(r['step'] for r in evals)
  out = {r['protocol']['generator']: r for r in evals if r['step'] == last}
  out['wall'] = float(open(done).read())
  out['step'] = last
  out['workdir'] = workdir
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--section', default='ablation', help='names the RESULTS.md section')
  parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument('--seeds', nargs='+', type=int, default=[0])
  parser.add_argument('--fractions', nargs='+', type=float, default=[1.0])
  parser.add_argument('--steps', type=int, default=None, help="default: the recipe's")
  parser.add_argument('--experiments', nargs='+', default=[RECIPE],
                      help='config files (the architectures table: experiments/biggan_mnist5k.py '
                      '...); the variants apply to each')
  parser.add_argument('--root', default=os.path.join(ROOT, 'runs', 'digits'))
  parser.add_argument('--fresh', action='store_true')
  args = parser.parse_args()
  rows = []
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  for experiment, fraction, variant in itertools.product(args.experiments, args.fractions,
                                                         args.variants):
    experiment = os.path.abspath(experiment)
    config = configs.load_file(experiment)
    runs = [run_one(args.root, variant, s, fraction, args.steps, args.fresh, experiment)
            for s in args.seeds]
    ema = {c: [r['ema'][c] for r in runs] for c in COLUMNS}
    raw_fid = [r['raw']['fid'] for r in runs]
    met = sum(all((r['ema']['fid'] <= 3 * FLOOR_FID, r['ema']['precision'] >= 0.8,
                   r['ema']['recall'] >= 0.8, r['ema']['c2st_accuracy'] <= 0.65,
                   r['wall'] <= 900)) for r in runs)
    rows.append(f'| `{os.path.basename(experiment)}` | {args.steps or config.train.steps:,} × '
                f'{config.data.batch_size} | {variant} | {fraction:g} | '
                f'{round(fraction * 4500)} | '
                f'{cell(ema["fid"], ".1f")} | {cell(raw_fid, ".1f")} | '
                f'{cell(ema["precision"], ".3f")} | {cell(ema["recall"], ".3f")} | '
                f'{cell(ema["c2st_accuracy"], ".3f")} | '
                f'{statistics.mean(r["wall"] for r in runs) / 60:.1f} | {met}/{len(runs)} |')
    print(rows[-1], flush=True)
  begin, end = f'<!-- digits_{args.section}:begin -->', f'<!-- digits_{args.section}:end -->'
  table = '\n'.join([
      begin,
      f'## Digits on mnist5k: {args.section} ({datetime.date.today().isoformat()})',
      '',
      f'`python benchmarks/digits.py --section {args.section} --variants '
      f'{" ".join(args.variants)} --seeds {" ".join(map(str, args.seeds))} --fractions '
      f'{" ".join(f"{f:g}" for f in args.fractions)}'
      + ('' if args.experiments == [RECIPE] else ' --experiments ' + ' '.join(
          os.path.relpath(os.path.abspath(e), ROOT) for e in args.experiments))
      + f'` on {machine()}. Each experiment for its iterations × batch; seeds '
      f'{", ".join(map(str, args.seeds))} (mean ± s.e. over seeds). Scores of the last eval: '
      '2,500 fixed-noise samples against the 4,500 training digits in the digit CNN\'s features '
      f'(EMA generator with standing statistics; raw G\'s FID beside it). Floor (real vs real) '
      f'FID {FLOOR_FID}; targets FID ≤ {3 * FLOOR_FID:.1f}, precision and recall ≥ 0.8, C2ST '
      '≤ 0.65 within 15 minutes ("targets met": runs meeting all of them).',
      '',
      '| experiment | iterations × batch | variant | fraction | training digits | FID (EMA) | '
      'FID (raw) | precision | recall | C2ST accuracy | minutes per run | targets met |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      *rows,
      end])
  write_section(begin, end, table)


if __name__ == '__main__':
  main()

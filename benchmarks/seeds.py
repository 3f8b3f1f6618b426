"""Final mode metrics of an experiment over many seeds (PacGAN's protocol), and its wall time.

Each seed is a full `train_and_evaluate` run in its own workdir; `--workers` processes run side by
side, each on one core with single-threaded XLA (the toy models gain nothing from a second
thread). Writes a markdown table into benchmarks/RESULTS.md between markers named after the config.

  python benchmarks/seeds.py --config experiments/default.py --seeds 10 --workers 2
"""
import argparse
import datetime
import json
import multiprocessing as mp
import os
import statistics
import tempfile

import common



def _run(args):
  config_path, seed, workdir, core = args
  common.single_threaded(core)
  config = common.load_config(config_path)
  config.seed = seed
  first, seconds = common.train_toy(config, workdir)
  return {'seed': seed, 'seconds': seconds, 'generator': first['protocol']['generator'],
          'num_modes': first['protocol']['num_modes'],
          **{k: first[k] for k in ('modes', 'hq_fraction', 'reverse_kl')}}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--config', required=True)
  parser.add_argument('--seeds', type=int, default=10)
  parser.add_argument('--workers', type=int, default=2)
  args = parser.parse_args()
  name = os.path.splitext(os.path.basename(args.config))[0]
  root = tempfile.mkdtemp(prefix=f'seeds_{name}_')
  cores = os.cpu_count() or 1
  jobs = [(os.path.abspath(args.config), s, os.path.join(root, str(s)),
           s % cores if args.workers > 1 else None) for s in range(args.seeds)]
  with mp.get_context('spawn').Pool(args.workers) as pool:
    rows = []
    for row in pool.imap(_run, jobs):
      print(json.dumps(row), flush=True)
      rows.append(row)
  modes, hq, kl, secs = ([r[k] for r in rows] for k in ('modes', 'hq_fraction', 'reverse_kl',
                                                         'seconds'))
  (mm, ms), (hm, hs), (km, ks) = common.mean_se(modes), common.mean_se(hq), common.mean_se(kl)
  begin, end = f'<!-- seeds:{name}:begin -->', f'<!-- seeds:{name}:end -->'
  table = '\n'.join([
      begin,
      f'## `{name}` over {args.seeds} seeds',
      '',
      f'`python benchmarks/seeds.py --config experiments/{name}.py --seeds {args.seeds} '
      f'--workers {args.workers}` ({datetime.date.today()}, {cores}-core CPU, {args.workers} '
      f'runs side by side, each on one core). Final eval of the {rows[0]["generator"]} generator, '
      '2,500 samples, PacGAN protocol.',
      '',
      '| seed | modes | HQ % | reverse KL | wall s |',
      '|---:|---:|---:|---:|---:|',
      *(f'| {r["seed"]} | {r["modes"]} | {100 * r["hq_fraction"]:.1f} | {r["reverse_kl"]:.4f} | '
        f'{r["seconds"]:.0f} |' for r in rows),
      f'| **mean ± s.e.** | **{mm:.1f} ± {ms:.1f}** | **{100 * hm:.1f} ± {100 * hs:.1f}** | '
      f'**{km:.3f} ± {ks:.3f}** | {statistics.mean(secs):.0f} |',
      '',
      f'Seeds with all {rows[0]["num_modes"]} modes: '
      f'{sum(m == rows[0]["num_modes"] for m in modes)}/{len(rows)}; lowest HQ: '
      f'{100 * min(hq):.1f}%.',
      end])
  common.write_section(begin, end, table)
  print(table)


if __name__ == '__main__':
  main()

"""Command line: flags only. `python -m gan_jax.main --config=experiments/default.py --workdir=runs/x`.

Any config field can be overridden: `--config.optim.d_lr=2e-4 --config.train.steps=5000`.
Every user mistake ends in one line starting with `error:`, not a traceback: a config file that is
missing, not Python, broken (its line is named) or without get_config(); an unknown field, a
group given a value, a value of the wrong type; a number out of range (configs.check, before
anything trains); a workdir of another run, or in use by another process; a full disk. The
checks themselves live in configs.py and workdir.py. `--mode=eval` and `--mode=sample` need no
--config: the run's config.json says what was trained.

Modes:
  train         train (resuming from the latest checkpoint)
  eval          evaluate the latest checkpoint (--num_samples), writes eval_STEP.json; with
                --samples=FILE.npz the images of that file instead (uint8 NHWC `images`, as
                --mode=sample, clean-fid and torch-fidelity write), writes eval_FILE.json
  sample        N samples (--num_samples, default 10000) of a GAN run's checkpoint (--step,
                default the latest) and generator (--generator=ema|raw), noise seed
                --sample_seed (default 0; sample j's noise is a function of (seed, j) alone, so
                gan_jax.load(workdir).generate(N, seed=s) gives the same), --truncation=PSI,
                --labels=C[,C...] (classes of a conditional G; default: 0..C-1 in turn),
                --sample_format=npz|png|both, --interpolate=K (a K x 8 slerp grid): writes
                samples_STEP.npz (uint8 NHWC `images`, `labels`; toy data: float32 `samples`),
                samples_STEP/*.png, samples_STEP.json, interpolation_STEP.png in the workdir;
                --eval_noise: the samples the training loop's evaluation scores instead
  stats         FID reference statistics of the config's real data (eval.real_split, its
                feature network, --num_samples images, default eval.num_real or
                eval.num_samples) in pytorch-fid's .npz layout (mu, sigma), written to
                WORKDIR/fid_stats_DATA_SPLIT_N.npz; read back with --config.eval.reference_stats
  print_config  print the resolved config as JSON (--config and overrides, else the workdir's
                config.json) and exit; touches nothing
"""
import ast
import glob
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (experiments/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory of the run: checkpoints, metrics, samples.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'sample', 'stats', 'print_config'],
                  'train: train (resuming from the latest checkpoint); eval: evaluate the latest '
                  'checkpoint; sample: write samples of a GAN run\'s checkpoint; stats: write '
                  'FID reference statistics of the data; print_config: print the resolved '
                  'config as JSON.')
flags.DEFINE_bool('overwrite', False, 'Delete the run already in --workdir and start over.')
flags.DEFINE_integer('num_samples', None, 'With --mode=eval: samples to evaluate on; with '
                     '--mode=sample: samples to write (default 10000).')
flags.DEFINE_integer('step', None, 'With --mode=sample: the checkpoint step (default: the '
                     'latest).')
flags.DEFINE_enum('generator', 'ema', ['ema', 'raw'], 'With --mode=sample: the EMA of G\'s '
                  'parameters or G itself.')
flags.DEFINE_integer('sample_seed', 0, 'With --mode=sample: the noise seed (sample j\'s noise is '
                     'drawn from (seed, j)).')
flags.DEFINE_float('truncation', None, 'With --mode=sample: the truncation trick\'s psi > 0 '
                   '(each |z| component resampled until <= psi, Brock et al. 2019; a StyleGAN2 '
                   'G: w moved toward the average w, w_avg + psi (w - w_avg), Karras et al.).')
flags.DEFINE_enum('sample_format', 'npz', ['npz', 'png', 'both'], 'With --mode=sample: one '
                  'samples_STEP.npz, PNGs in samples_STEP/, or both.')
flags.DEFINE_integer('interpolate', None, 'With --mode=sample: K >= 1, also write '
                     'interpolation_STEP.png, K rows x 8 columns of latent slerps.')
flags.DEFINE_list('labels', None, 'With --mode=sample, a conditional G: the classes to sample, in '
                  'turn (e.g. 3, or 0,1); default: every class in turn.')
flags.DEFINE_bool('eval_noise', False, 'With --mode=sample: the noise of the in-loop evaluation '
                  '(the samples its FID was computed on) instead of --sample_seed\'s.')
flags.DEFINE_string('samples', None, 'With --mode=eval: an .npz of samples to evaluate (uint8 '
                    '`images` (N, H, W, C)) instead of a checkpoint\'s generator.')
flags.DEFINE_bool('best', False, 'With --mode=eval or --mode=sample: the checkpoint kept by '
                  'train.keep_best (checkpoints_best/) instead of the latest.')
SAMPLE_FLAGS = ('step', 'generator', 'sample_seed', 'truncation', 'sample_format', 'interpolate',
                'labels', 'eval_noise')

# The top-level fields of every config (gan_jax/configs.py), for --help.
CONFIG_FIELDS = {
    'seed': 'the run\'s seed: initialisation, training noise, data order, eval noise',
    'task': 'gan (default), pix2pix or phenomenon (gan_jax/tasks.py)',
    'objective': 'the GAN loss pair by name (gan_jax/losses.py), e.g. non_saturating, wasserstein, hinge',
    'penalty': 'a D penalty by name and weight (gan_jax/penalties.py): gp, r1, dragan, clip',
    'data': 'the dataset (name, batch_size, split, image_size, data_dir)',
    'model': 'G and D architectures (model.g, model.d), z_dim, conditioning',
    'optim': 'optimizers, learning rates, betas, lr schedule, n_critic, EMA decay',
    'train': 'steps, steps_per_call, log/eval/checkpoint intervals, keep, dtype',
    'eval': 'metrics, num_samples, generators, feature network, batch_size',
    'tricks': 'stabilisation tricks (instance noise, packing, feature matching, ...)',
    'distributed': 'multi-host start-up (coordinator_address, num_processes, process_id)',
}


def _help_text(root='experiments') -> str:
  """The experiments in ./experiments (first docstring line each) and the config fields."""
  lines = []
  files = sorted(glob.glob(os.path.join(root, '*.py')))
  if files:
    lines.append(f'\nExperiments (--config={root}/NAME.py):')
    for path in files:
      try:
        with open(path) as f:
          doc = ast.get_docstring(ast.parse(f.read())) or ''
      except (OSError, SyntaxError, ValueError):
        doc = ''
      first = doc.strip().splitlines()[0] if doc.strip() else ''
      lines.append(f'  {os.path.basename(path)[:-3]:36s} {first}')
  lines.append('\nConfig fields (--config.FIELD.SUBFIELD=VALUE):')
  lines += [f'  {k:12s} {v}' for k, v in CONFIG_FIELDS.items()]
  return '\n'.join(lines).replace('%', '%%') + '\n'

def _config_spec(argv):
  """The value of --config: PATH, or PATH:ARG (passed to get_config); None when not given."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _overrides(argv):
  """(field, value) of each --config.FIELD=VALUE."""
  return [tuple(arg[len('--config.'):].split('=', 1)) for arg in argv
          if arg.startswith('--config.') and '=' in arg]


def _unknown_field(argv, error):
  """The --config.a.b override that names the missing field in `error`, as one sentence."""
  text = str(error).replace('\\', '')
  match = re.search(r"'([A-Za-z0-9_]+)'", text)
  hint = re.search(r'Did you mean "([^"]+)"', text)
  key = match.group(1) if match else None
  for arg in argv:
    if arg.startswith('--config.'):
      path = arg[len('--config.'):].split('=', 1)[0]
      if key is None or key in path.split('.'):
        suggestion = f' (did you mean "{hint.group(1)}"?)' if hint else ''
        return f'error: --config.{path}: the config has no field {key!r}{suggestion}'
  return f'error: bad config override: {error}'


def _flag_error(config, error):
  """absl's error about a flag's value (e.g. `--config.train.steps abc`), as one clear line."""
  from gan_jax import configs
  text = str(error)
  match = re.match(r'flag --([\w.\[\]]+)=(.*?): ', text)
  if match and match.group(1).startswith('config.') and config is not None:
    try:
      configs.check_override(config, match.group(1)[len('config.'):], match.group(2))
    except configs.ConfigError as e:
      return f'error: {e}'
  if match and 'invalid literal for int()' in text:
    return f'error: --{match.group(1)}={match.group(2)}: expected an integer'
  if match and 'could not convert string to float' in text:
    return f'error: --{match.group(1)}={match.group(2)}: expected a number'
  return f'error: {text}'.splitlines()[0]


def _check_mode_flags():
  """Each mode's own flags: given in another mode, or out of range, is one error line."""
  mode = FLAGS.mode
  if FLAGS.num_samples is not None:
    if mode not in ('eval', 'sample', 'stats'):
      # (tests/test_cli.py expects this line word for word; --mode=sample takes it too)
      sys.exit('error: --num_samples is for --mode=eval; the training evals use '
               '--config.eval.num_samples')
    if FLAGS.num_samples < 1:
      sys.exit(f'error: --num_samples={FLAGS.num_samples} must be >= 1 (the samples to '
               f'{"evaluate on" if mode == "eval" else "write"})')
  if FLAGS.best and mode not in ('eval', 'sample'):
    sys.exit(f'error: --best is for --mode=eval and --mode=sample (this is --mode={mode})')
  if FLAGS.samples is not None and mode != 'eval':
    sys.exit(f'error: --samples is for --mode=eval (this is --mode={mode})')
  if FLAGS.samples is not None and (FLAGS.best or FLAGS.num_samples is not None):
    sys.exit(f'error: --samples={FLAGS.samples} evaluates a file\'s samples, all of them; '
             f'--{"best" if FLAGS.best else "num_samples"} does not apply')
  if FLAGS.eval_noise and FLAGS['sample_seed'].present:
    sys.exit('error: --eval_noise and --sample_seed both choose the noise; give one of them')
  if FLAGS.best and FLAGS.step is not None:
    sys.exit('error: --best and --step both choose the checkpoint; give one of them')
  given = [name for name in SAMPLE_FLAGS if FLAGS[name].present]
  if given and mode != 'sample':
    sys.exit(f'error: --{given[0]} is for --mode=sample (this is --mode={mode})')
  if FLAGS.step is not None and FLAGS.step < 0:
    sys.exit(f'error: --step={FLAGS.step} must be >= 0 (a checkpoint step)')
  if FLAGS.sample_seed < 0:
    sys.exit(f'error: --sample_seed={FLAGS.sample_seed} must be >= 0')
  if FLAGS.truncation is not None and not FLAGS.truncation > 0:
    sys.exit(f'error: --truncation={FLAGS.truncation:g} must be > 0 (the truncation trick\'s psi; '
             'smaller: less varied, more typical samples)')
  if FLAGS.interpolate is not None and FLAGS.interpolate < 1:
    sys.exit(f'error: --interpolate={FLAGS.interpolate} must be >= 1 (the rows of the grid)')
  if FLAGS.labels is not None:
    if not FLAGS.labels or not all(re.fullmatch(r'\d+', c.strip()) for c in FLAGS.labels):
      sys.exit(f'error: --labels={",".join(FLAGS.labels)}: expected class numbers >= 0, e.g. '
               '--labels=3 or --labels=0,1')


def parse_flags(argv):
  """absl flag parsing, with config-file and override errors turned into one line."""
  from gan_jax import configs  # no JAX: that starts after flag parsing
  spec, config = _config_spec(argv), None
  if spec is not None:  # the file and the overrides, checked before absl and ml_collections
    try:
      config = configs.load_file(spec)
      for field, value in _overrides(argv):
        configs.check_override(config, field, value)
    except configs.ConfigError as e:
      sys.exit(f'error: {e}')
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    sys.exit(_flag_error(config, e))
  except (AttributeError, KeyError) as e:
    sys.exit(_unknown_field(argv, e))
  except Exception as e:  # an override that ml_collections could not apply
    sys.exit(f'error: bad config override: {e}'.splitlines()[0])
  if spec is None and FLAGS.mode in ('train', 'stats'):  # eval, sample: the run's config.json
    sys.exit('error: --config is required, e.g. --config=experiments/default.py')
  if FLAGS.workdir is None and not (FLAGS.mode == 'print_config' and spec is not None):
    sys.exit('error: --workdir is required, e.g. --workdir=runs/my_run')
  _check_mode_flags()
  if spec is None:
    return rest
  try:
    FLAGS.config  # loads the file and applies the overrides
  except (AttributeError, KeyError) as e:
    sys.exit(_unknown_field(argv, e))
  except Exception as e:  # the config file itself failed to import or run
    sys.exit(f'error: could not load the config file {spec.split(":")[0]}: {e}'.splitlines()[0])
  return rest


def _resolved_config_json(config, workdir_path) -> str:
  """--mode=print_config: the config (None: the workdir's config.json) resolved, as JSON."""
  import json
  from gan_jax import configs, workdir
  recorded = workdir.recorded_config(workdir_path) if workdir_path else None
  if config is None:
    if recorded is None:
      raise configs.ConfigError(f'workdir {workdir_path} holds no run (it has no config.json); '
                                'give --config')
    config = workdir.from_json(recorded)
  return json.dumps(configs.to_dict(workdir.resolve(config, recorded)), indent=2)


def main(argv):
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}; fields are set with --config.FIELD=VALUE')
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv):
    logging.set_verbosity(logging.WARNING)
  from gan_jax import configs, distributed, tasks, workdir  # after flag parsing: JAX starts here
  config = FLAGS.config  # None: --mode=eval/sample/print_config on the workdir's config.json
  try:
    if config is not None:
      configs.check(config)  # every number in range before anything is built
    if FLAGS.mode == 'print_config':
      print(_resolved_config_json(config, FLAGS.workdir))
      return
    distributed.initialize(config or {})  # multi-host, if configured or detected
    if FLAGS.mode == 'train':
      tasks.train_and_evaluate(config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    elif FLAGS.mode == 'eval' and FLAGS.samples is not None:
      from gan_jax import sampling
      sampling.evaluate_samples(config, FLAGS.workdir, FLAGS.samples)
    elif FLAGS.mode == 'eval':
      tasks.evaluate_workdir(config, FLAGS.workdir, FLAGS.num_samples, best=FLAGS.best)
    elif FLAGS.mode == 'stats':
      from gan_jax import sampling
      sampling.write_stats(config, FLAGS.workdir, FLAGS.num_samples)
    else:
      from gan_jax import sampling
      sampling.sample_workdir(
          config, FLAGS.workdir, num_samples=FLAGS.num_samples, step=FLAGS.step,
          generator=FLAGS.generator, seed='eval' if FLAGS.eval_noise else FLAGS.sample_seed,
          truncation=FLAGS.truncation,
          sample_format=FLAGS.sample_format, interpolate=FLAGS.interpolate,
          labels=None if FLAGS.labels is None else [int(c) for c in FLAGS.labels],
          best=FLAGS.best)
  except (configs.ConfigError, workdir.RunError) as e:  # RunError: a full disk, a divergence
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (which saves first)
    sys.exit('error: interrupted by Ctrl-C; the checkpoints written so far are kept')


if __name__ == '__main__':
  __doc__ += _help_text()  # what --help prints (absl's usage is __main__'s docstring)
  app.run(main, flags_parser=parse_flags)

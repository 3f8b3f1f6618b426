"""Command line: flags only. `python -m gan_jax.main --config=experiments/default.py --workdir=runs/x`.

Any config field can be overridden: `--config.optim.d_lr=2e-4 --config.train.steps=5000`.
Every user mistake ends in one line starting with `error:`, not a traceback: a config file that is
missing, not Python, broken (its line is named) or without get_config(); an unknown field, a
group given a value, a value of the wrong type; a number out of range (configs.check, before
anything trains); a workdir of another run, or in use by another process; a full disk. The
checks themselves live in configs.py and workdir.py. `--mode=eval` needs no --config: the run's
config.json says what was trained.
"""
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (experiments/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory of the run: checkpoints, metrics, samples.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train: train (resuming from the latest checkpoint); eval: evaluate the latest '
                  'checkpoint.')
flags.DEFINE_bool('overwrite', False, 'Delete the run already in --workdir and start over.')
flags.DEFINE_integer('num_samples', None, 'With --mode=eval: samples to evaluate on.')


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
  return f'error: {text}'.splitlines()[0]


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
  if spec is None and FLAGS.mode != 'eval':  # an eval reads the run's own config.json
    sys.exit('error: --config is required, e.g. --config=experiments/default.py')
  if FLAGS.workdir is None:
    sys.exit('error: --workdir is required, e.g. --workdir=runs/my_run')
  if FLAGS.num_samples is not None:
    if FLAGS.mode != 'eval':
      sys.exit('error: --num_samples is for --mode=eval; the training evals use '
               '--config.eval.num_samples')
    if FLAGS.num_samples < 1:
      sys.exit(f'error: --num_samples={FLAGS.num_samples} must be >= 1 (the samples to '
               'evaluate on)')
  if spec is None:
    return rest
  try:
    FLAGS.config  # loads the file and applies the overrides
  except (AttributeError, KeyError) as e:
    sys.exit(_unknown_field(argv, e))
  except Exception as e:  # the config file itself failed to import or run
    sys.exit(f'error: could not load the config file {spec.split(":")[0]}: {e}'.splitlines()[0])
  return rest


def main(argv):
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}; fields are set with --config.FIELD=VALUE')
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv):
    logging.set_verbosity(logging.WARNING)
  from gan_jax import configs, distributed, tasks, workdir  # after flag parsing: JAX starts here
  config = FLAGS.config  # None: --mode=eval on the workdir's config.json
  try:
    if config is not None:
      configs.check(config)  # every number in range before anything is built
    distributed.initialize(config or {})  # multi-host, if configured or detected
    if FLAGS.mode == 'train':
      tasks.train_and_evaluate(config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    else:
      tasks.evaluate_workdir(config, FLAGS.workdir, FLAGS.num_samples)
  except (configs.ConfigError, workdir.RunError) as e:  # RunError: a full disk, a divergence
    sys.exit(f'error: {e}')
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (which saves first)
    sys.exit('error: interrupted by Ctrl-C; the checkpoints written so far are kept')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)

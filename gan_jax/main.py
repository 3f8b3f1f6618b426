"""Command line: flags only. `python -m gan_jax.main --config=experiments/default.py --workdir=runs/x`.

Any config field can be overridden: `--config.optim.d_lr=2e-4 --config.train.steps=5000`.
Every user mistake (a bad name, an unknown field, a missing file, a workdir of another run) ends
in one line starting with `error:`, not a traceback.
"""
import os
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


def _config_path(argv):
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1].split(':')[0]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1].split(':')[0]
  return None


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


def parse_flags(argv):
  """absl flag parsing, with config-file and override errors turned into one line."""
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'error: {e}')
  except (AttributeError, KeyError) as e:
    sys.exit(_unknown_field(argv, e))
  path = _config_path(argv)
  if path is None:
    sys.exit('error: --config is required, e.g. --config=experiments/default.py')
  if not os.path.isfile(path):
    sys.exit(f'error: the config file {path} does not exist; the experiments are in experiments/')
  if FLAGS.workdir is None:
    sys.exit('error: --workdir is required, e.g. --workdir=runs/my_run')
  try:
    FLAGS.config  # loads the file and applies the overrides
  except (AttributeError, KeyError) as e:
    sys.exit(_unknown_field(argv, e))
  except Exception as e:  # the config file itself failed to import or run
    sys.exit(f'error: could not load the config file {path}: {e}'.splitlines()[0])
  return rest


def main(argv):
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}; fields are set with --config.FIELD=VALUE')
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv):
    logging.set_verbosity(logging.WARNING)
  from gan_jax import configs, distributed, train  # after flag parsing: JAX starts here
  try:
    distributed.initialize(FLAGS.config)  # multi-host, if configured or detected
    if FLAGS.config.get('task', 'gan') == 'phenomenon':  # a measurement: experiments/phenomenon_*
      from gan_jax import phenomena
      phenomena.run(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    elif FLAGS.mode == 'train':
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    else:
      train.evaluate_workdir(FLAGS.config, FLAGS.workdir, FLAGS.num_samples)
  except (configs.ConfigError, train.TrainingDiverged) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)

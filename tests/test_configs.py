"""configs.check: every numeric field range-checked before training, each failure one sentence
naming the field, the bad value and what is valid; and every experiment passes it unchanged."""
import glob
import importlib.util
import os

import pytest

from gan_jax import configs, pix2pix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*.py')))


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def with_value(config, field, value):
  """`config` with the dotted `field` set to `value`, of any type (as a config file could)."""
  *parents, name = field.split('.')
  node = config
  for parent in parents:
    node = node[parent]
  with node.ignore_type():
    node[name] = value
  return config


@pytest.mark.parametrize('path', EXPERIMENTS, ids=os.path.basename)
def test_every_experiment_passes(path):
  configs.check(load(path))


TOY = {
    'optim.d_lr': (-1e-3, 'config.optim.d_lr=-0.001 must be > 0'),
    'optim.g_lr': (0.0, 'config.optim.g_lr=0.0 must be > 0'),
    'optim.g_lr ': (float('nan'), 'config.optim.g_lr=nan must be a finite number > 0'),
    'optim.d_lr ': ('fast', "config.optim.d_lr='fast' must be a number > 0"),
    'optim.betas': ((0.5, 1.5), 'config.optim.betas=(0.5, 1.5) must be a pair (β1, β2), each in '
                                '[0, 1), e.g. (0.5, 0.999)'),
    'optim.betas ': ((0.5,), 'config.optim.betas=(0.5,) must be a pair'),
    'optim.betas  ': (('a', 0.9), "config.optim.betas=('a', 0.9) must be a pair"),
    'optim.ema_decay': (1.5, 'config.optim.ema_decay=1.5 must be in [0, 1)'),
    'optim.ema_start': (-1, 'config.optim.ema_start=-1 must be an integer >= 0'),
    'penalty.every': (0, 'config.penalty.every=0 must be an integer >= 1'),
    'optim.ema_decay ': (-0.1, 'config.optim.ema_decay=-0.1 must be in [0, 1)'),
    'optim.lr_schedule': ('cosine', "config.optim.lr_schedule='cosine' is not known; valid "
                                    'choices: constant, linear'),
    'optim.g_optimizer': ('adamw', "config.optim.g_optimizer: unknown optimizer 'adamw'; valid "
                                   'optimizers: adam, rmsprop, sgd'),
    'optim.n_critic': (0, 'config.optim.n_critic=0 must be an integer >= 1'),
    'penalty.weight': (-10.0, 'config.penalty.weight=-10.0 must be >= 0'),
    'penalty.weight ': (float('inf'), 'config.penalty.weight=inf must be a finite number >= 0'),
    'model.z_dim': (0, 'config.model.z_dim=0 must be an integer >= 1'),
    'model.z_dim ': (1.5, 'config.model.z_dim=1.5 must be an integer >= 1'),
    'model.d.hidden': ((-1, 32), 'config.model.d.hidden=(-1, 32) must be a tuple of integers >= 1 '
                                 '(the widths of the hidden layers), e.g. (128, 128)'),
    'model.g.hidden': ((0,), 'config.model.g.hidden=(0,) must be a tuple of integers >= 1'),
    'model.g.hidden ': ('abc', "config.model.g.hidden='abc' must be a tuple of integers >= 1"),
    'eval.num_samples': (0, 'config.eval.num_samples=0 must be an integer >= 1'),
    'eval.batch_size': (0, 'config.eval.batch_size=0 must be an integer >= 1'),
    'eval.num_real': (0, 'config.eval.num_real=0 must be an integer >= 1'),
    'eval.two_sample_size': (-5, 'config.eval.two_sample_size=-5 must be an integer >= 1'),
    'data.batch_size': (0, 'config.data.batch_size=0 must be an integer >= 1'),
    'data.batch_size ': ('16', "config.data.batch_size='16' must be an integer >= 1"),
    'train.steps': (0, 'config.train.steps=0 must be an integer >= 1'),
    'train.log_every': (150, 'config.train.log_every=150 must be a multiple of '
                             'config.train.steps_per_call=100'),
    'seed': ('zero', "config.seed='zero' must be an integer"),
    'tricks.ensemble': (((16,), (-1,)), 'config.tricks.ensemble=((16,), (-1,)) must be the hidden '
                                        'widths of each member D, tuples of integers >= 1'),
}
IMAGE = {
    'model.g.channels': (0, 'config.model.g.channels=0 must be an integer >= 1'),
    'model.d.channels': (-64, 'config.model.d.channels=-64 must be an integer >= 1'),
    'data.image_size': (0, 'config.data.image_size=0 must be an integer >= 1'),
    'data.workers': (-2, 'config.data.workers=-2 must be an integer >= 0'),
    'model.z_dim': (0, 'config.model.z_dim=0 must be an integer >= 1'),
    'optim.d_lr': (-2e-4, 'config.optim.d_lr=-0.0002 must be > 0'),
}
PIX2PIX = {
    'pix2pix.lambda_l1': (-1.0, 'config.pix2pix.lambda_l1=-1.0 must be >= 0'),
    'model.g.dropout': (1.0, 'config.model.g.dropout=1.0 must be in [0, 1)'),
    'model.g.depth': (0, 'config.model.g.depth=0 must be an integer >= 1'),
    'eval.num_plot': (0, 'config.eval.num_plot=0 must be an integer >= 1'),
}
BASES = {'toy': (configs.toy_config, TOY), 'image': (configs.image_config, IMAGE),
         'pix2pix': (lambda: pix2pix.base_config('mnist5k', 'inpaint'), PIX2PIX)}
CASES = [(base, field) for base, (_, cases) in BASES.items() for field in cases]


@pytest.mark.parametrize('base,field', CASES, ids=[f'{b}:{f}' for b, f in CASES])
def test_bad_value_is_one_clear_sentence(base, field):
  make, cases = BASES[base]
  value, message = cases[field]
  config = make()
  configs.check(config)  # the base passes: the error below is the field's
  with pytest.raises(configs.ConfigError) as e:
    configs.check(with_value(config, field.strip(), value))
  assert str(e.value).startswith(message), str(e.value)
  assert '\n' not in str(e.value)


def test_absent_fields_are_skipped():
  config = configs.toy_config()
  config.unlock()
  for section, field in (('eval', 'two_sample_size'), ('optim', 'ema_decay'), ('model', 'z_dim'),
                         ('penalty', 'weight'), ('optim', 'betas')):
    del config[section][field]
  configs.check(config)


def test_phenomenon_variants_are_checked():
  config = load(os.path.join(ROOT, 'experiments', 'phenomenon_mode_collapse.py'))
  config.phenomenon.compare.r1.optim.d_lr = -2e-3
  with pytest.raises(configs.ConfigError,
                     match=r'^config\.phenomenon\.compare\.r1\.optim\.d_lr=-0\.002 must be > 0$'):
    configs.check(config)


def test_load_file(tmp_path):
  assert configs.load_file('experiments/gan_ring.py').data.name == 'ring'
  with pytest.raises(configs.ConfigError,
                     match=r'^--config=README\.md: a config is a Python file defining get_config'):
    configs.load_file('README.md')
  path = tmp_path / 'broken.py'
  path.write_text('def get_config():\n  return {\n')
  with pytest.raises(configs.ConfigError,
                     match=rf'^could not load the config file {path}: SyntaxError: .* at line 2$'):
    configs.load_file(str(path))
  path.write_text('def get_config(name):\n  return None\n')
  with pytest.raises(configs.ConfigError, match=r'takes an argument: get_config\(name\); pass '
                                                rf'it as --config={path}:VALUE$'):
    configs.load_file(str(path))
  with pytest.raises(configs.ConfigError, match='returned NoneType, not an ml_collections'):
    configs.load_file(f'{path}:x')


OVERRIDES = {  # field, value: message (None: accepted; an unknown field is left to the parser)
    ('train.steps', '1_000'): None,
    ('optim.d_lr', '2e-4'): None,
    ('objective', "{'name': 'hinge'}"): None,
    ('optim.dlr', '1'): None,
    ('model.g.hidden', '(64, 64)'): None,
    ('eval.num_real', 'lots'): '--config.eval.num_real=lots: expected an integer',
    ('optim.betas[1]', '0.9'): "--config.optim.betas[1]: a tuple is set whole, e.g. "
                               "--config.optim.betas='(0.5, 0.999)'",
    ('optim.d_lr.x', '1'): '--config.optim.d_lr.x: config.optim.d_lr is a value, not a group '
                           'of fields; set it as --config.optim.d_lr=VALUE',
    ('model', 'mlp'): '--config.model is a group of fields; set one of them, e.g. '
                      '--config.model.discriminator=mlp',
}


@pytest.mark.parametrize('field,value', sorted(OVERRIDES))
def test_check_override(field, value):
  message = OVERRIDES[field, value]
  if message is None:
    configs.check_override(configs.toy_config(), field, value)
  else:
    with pytest.raises(configs.ConfigError) as e:
      configs.check_override(configs.toy_config(), field, value)
    assert str(e.value) == message

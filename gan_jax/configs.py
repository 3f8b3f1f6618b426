"""Config helpers: the base toy config, name resolution with clear errors, and run checks.

Every user mistake in a config becomes a `ConfigError` whose message names the field and, for a
name, the valid choices. main.py prints it as one line instead of a traceback.
"""
import json
import os
from typing import Mapping

import ml_collections
from ml_collections.config_dict import placeholder


class ConfigError(ValueError):
  """A bad config or workdir; the message names the field and what would be valid."""


def cache_dir(name: str, root=None) -> str:
  """Where gan_jax caches `name` (trained classifiers, weights, real statistics): under `root`,
  else $GAN_JAX_CACHE, else ~/.cache/gan_jax."""
  root = root or os.environ.get('GAN_JAX_CACHE') or os.path.join(os.path.expanduser('~'),
                                                                  '.cache', 'gan_jax')
  return os.path.join(root, name)


def lookup(registry: Mapping, field: str, name: str):
  """registry[name], or a ConfigError listing the valid names of config.<field>."""
  if name not in registry:
    raise ConfigError(f'config.{field}={name!r} is not known; valid choices: '
                      f'{", ".join(sorted(registry))}')
  return registry[name]


def call(fn, field: str, *args, **kwargs):
  """fn(*args, **kwargs); a ValueError or TypeError becomes a ConfigError naming config.<field>."""
  try:
    return fn(*args, **kwargs)
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.{field}: {e}') from None


def choose(get_fn, field: str, section, skip=()):
  """get_fn(section.name, **other fields of section), e.g. losses.get on config.objective."""
  options = {k: v for k, v in section.items() if k != 'name' and k not in skip}
  return call(get_fn, f'{field}.name', section.name, **options)


def construct(cls, field: str, **kwargs):
  """cls(**kwargs) for a module; an unknown option names config.<field> and the valid ones."""
  valid = set(getattr(cls, '__dataclass_fields__', {})) - {'parent', 'name'}
  unknown = sorted(set(kwargs) - valid)
  if unknown:
    raise ConfigError(f'config.{field}: {cls.__name__} has no option {", ".join(unknown)}; '
                      f'its options: {", ".join(sorted(valid - {"data_shape"}))}')
  return cls(**kwargs)


def toy_config() -> ml_collections.ConfigDict:
  """The base config of the low-dimensional experiments: a plain non-saturating MLP GAN on the ring.

  Experiment files start from it and override what they change.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.objective = ml_collections.ConfigDict({'name': 'non_saturating'})
  c.penalty = ml_collections.ConfigDict({'name': 'none', 'weight': 0.0})
  c.data = ml_collections.ConfigDict({'name': 'ring', 'batch_size': 128})
  c.model = ml_collections.ConfigDict({
      'generator': 'mlp',
      'discriminator': 'mlp',
      'z_dim': 16,
      'g': {'hidden': (128, 128, 128), 'activation': 'relu', 'norm': 'none'},
      'd': {'hidden': (128, 128, 128), 'activation': 'leaky_relu', 'norm': 'none'},
  })
  c.optim = ml_collections.ConfigDict({
      'g_optimizer': 'adam', 'd_optimizer': 'adam',
      'g_lr': 1e-4, 'd_lr': 1e-4, 'betas': (0.5, 0.999),
      'lr_schedule': 'constant',
      'n_critic': 1,
      'ema_decay': 0.999,
  })
  c.train = ml_collections.ConfigDict({
      'steps': 20_000, 'steps_per_call': 100, 'log_every': 500, 'eval_every': 5_000,
      'checkpoint_every': 5_000, 'keep': 3,
      # The networks' arithmetic: 'float32', or 'bfloat16' (mixed precision: params, optimizer
      # state, BatchNorm statistics, losses and updates stay float32; for GPUs and TPUs).
      'dtype': 'float32',
  })
  # Evaluation (gan_jax/evaluation.py): metrics, samples, generators, the feature network
  # ('auto': identity for toys, the digit CNN for digits, else Inception with its weights file),
  # the reference images (real_split None: data.split; num_real None: num_samples), the batch
  # of generation and features, the sample cap of MMD/C2ST, the cache of real statistics.
  c.eval = ml_collections.ConfigDict({
      'metrics': ('modes',), 'num_samples': 2_500, 'generators': ('ema', 'raw'),
      'features': 'auto', 'inception_weights': placeholder(str),
      'real_split': placeholder(str), 'num_real': placeholder(int),
      'batch_size': 500, 'two_sample_size': 2_500, 'cache_dir': placeholder(str),
  })
  # Multi-host (gan_jax/distributed.py): unset = single host, or what the environment says.
  c.distributed = ml_collections.ConfigDict({
      'coordinator_address': placeholder(str), 'num_processes': placeholder(int),
      'process_id': placeholder(int), 'local_device_ids': placeholder(tuple),
  })
  c.tricks = tricks_config()
  return c


def tricks_config() -> ml_collections.ConfigDict:
  """config.tricks, every switch off (gan_jax/tricks.py says what each does).

  instance_noise: std σ₀ of Gaussian noise on D's inputs, decaying linearly to 0 over
  anneal_steps iterations (0: constant). label_smoothing: the real target (1.0 = off; cross-entropy
  objectives only). feature_matching: mode 'none' | 'replace' | 'auxiliary', and its weight.
  pack: PacGAN's m. unroll_steps: unrolled GAN's k. ensemble: hidden widths of each member D, e.g.
  ((16,), (64, 64), (128, 128, 128)). adaptive: seed 002's loops (D while its loss > c1, then G
  while it is < c2), capped at max_d_steps / max_g_steps.
  """
  return ml_collections.ConfigDict({
      'instance_noise': {'std': 0.0, 'anneal_steps': 0},
      'label_smoothing': 1.0,
      'feature_matching': {'mode': 'none', 'weight': 1.0},
      'pack': 1,
      'unroll_steps': 0,
      'ensemble': (),
      'adaptive': {'enabled': False, 'c1': 1.0, 'c2': 1.3, 'max_d_steps': 5, 'max_g_steps': 5},
  })


def image_config(dataset: str = 'mnist5k', image_size: int = 28) -> ml_collections.ConfigDict:
  """The base config of image experiments: a DCGAN (Radford et al. 2016, arXiv:1511.06434) with
  the non-saturating loss, Adam 2e-4, β = (0.5, 0.999), batch 64, on `dataset`.

  Offline datasets take data.name, batch_size, split, image_size; tfds ones also data_dir (None:
  tfds' default, ~/tensorflow_datasets or $TFDS_DATA_DIR) and download (False: never download).
  """
  c = toy_config()
  c.data = ml_collections.ConfigDict({'name': dataset, 'batch_size': 64, 'split': 'train',
                                      'image_size': image_size})
  c.model = ml_collections.ConfigDict({
      'generator': 'dcgan',
      'discriminator': 'dcgan',
      'z_dim': 100,
      'g': {'channels': 64, 'norm': 'batch', 'conditioning': 'none'},
      'd': {'channels': 64, 'norm': 'batch', 'conditioning': 'none', 'spectral_norm': False},
  })
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999))
  c.train.update(steps=10_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=1_000)
  # FID etc. on the digit CNN's features for the offline digits, on Inception's otherwise (its
  # weights are downloaded once, or given as eval.inception_weights); 10k samples as most GAN
  # papers' in-training FID, 2,500 for the offline digits (mnist5k has 4,500 training images).
  c.eval.metrics = ('fid', 'kid', 'inception_score', 'precision_recall', 'density_coverage')
  c.eval.num_samples = 2_500 if dataset in ('mnist5k', 'digits', 'stacked_mnist') else 10_000
  if dataset == 'stacked_mnist':
    c.eval.metrics += ('stacked_modes',)
  return c


def add_tfds_fields(c) -> ml_collections.ConfigDict:
  """data.data_dir and data.download, the options of tfds datasets."""
  c.data.data_dir = placeholder(str)
  c.data.download = False
  return c


# Fields that may change between the runs of one workdir: they change how long or how often,
# not what is computed (steps_per_call = k equals k single calls).
RESUMABLE_FIELDS = ('train.steps', 'train.steps_per_call', 'train.log_every', 'train.eval_every',
                    'train.checkpoint_every', 'train.keep', 'train.dtype', 'eval.',
                    'distributed.')


def check(config) -> None:
  """Checks the run-shape fields the loop relies on."""
  t = config.train
  for field in ('steps', 'steps_per_call', 'log_every', 'eval_every', 'checkpoint_every', 'keep'):
    if int(t[field]) < 1:
      raise ConfigError(f'config.train.{field}={t[field]} must be a positive integer')
  for field in ('log_every', 'eval_every', 'checkpoint_every'):
    if t[field] % t.steps_per_call:
      raise ConfigError(f'config.train.{field}={t[field]} must be a multiple of '
                        f'config.train.steps_per_call={t.steps_per_call}')
  if config.optim.n_critic < 1:
    raise ConfigError(f'config.optim.n_critic={config.optim.n_critic} must be at least 1')
  if config.data.batch_size < 1:
    raise ConfigError(f'config.data.batch_size={config.data.batch_size} must be positive')


def to_dict(config) -> dict:
  """The config as plain JSON types (tuples become lists)."""
  return json.loads(config.to_json())


def _flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def differences(old: dict, new: dict) -> list:
  """Dotted names of the fields that differ, ignoring RESUMABLE_FIELDS."""
  a, b = _flatten(old), _flatten(new)
  keys = sorted(set(a) | set(b))
  return [k for k in keys
          if a.get(k) != b.get(k) and not any(k == f or (f.endswith('.') and k.startswith(f))
                                               for f in RESUMABLE_FIELDS)]


def refuse_other_run(workdir: str, config) -> None:
  """A ConfigError if `workdir` holds a run whose config.json differs from `config` in more than
  RESUMABLE_FIELDS (the caller then starts afresh only when told to overwrite)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    diff = differences(json.load(f), to_dict(config))
  if diff:
    raise ConfigError(
        f'workdir {workdir} holds a run of another config (it differs in '
        f'{", ".join(diff[:5])}{" ..." if len(diff) > 5 else ""}); use another --workdir, '
        f'or pass --overwrite to delete that run and start over')


def check_batch_split(batch_size: int, num_devices: int) -> None:
  """A ConfigError unless config.data.batch_size splits evenly over the devices."""
  if batch_size % num_devices:
    raise ConfigError(f'config.data.batch_size={batch_size} must be divisible by the number of '
                      f'devices ({num_devices})')

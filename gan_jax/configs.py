"""Config helpers: the base configs, name resolution with clear errors, and run checks.

Every user mistake in a config becomes a `ConfigError` whose message names the field and, for a
name, the valid choices, for a number, its valid range (`check`, before anything is built). The
command line's checks live here too: `load_file` (a --config file) and `check_override` (a
--config.a.b=value). main.py prints each as one line instead of a traceback.
"""
import ast
import copy
import importlib.util
import inspect
import json
import math
import numbers
import os
import re
import sys
import traceback
from typing import Mapping

import ml_collections
from absl import flags as absl_flags
from ml_collections.config_dict import placeholder
from ml_collections.config_flags import config_path


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


def check_choice(kind: str, value, choices) -> None:
  """A ValueError naming `kind`, the bad value and the valid choices (in the given order), e.g.
  "unknown norm 'group'; valid choices: none, batch, layer", unless `value` is one of them."""
  if value not in choices:
    raise ValueError(f'unknown {kind} {value!r}; valid choices: {", ".join(map(str, choices))}')


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
  # every: lazy regularisation (StyleGAN2): the penalty every k iterations, times k.
  c.penalty = ml_collections.ConfigDict({'name': 'none', 'weight': 0.0, 'every': 1})
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
      # Per-network Adam betas (StyleGAN2's lazy intervals adjust each network's apart);
      # unset: `betas` for both.
      'g_betas': placeholder(tuple), 'd_betas': placeholder(tuple),
      'lr_schedule': 'constant',
      # Iterations a decaying schedule runs over; None: train.steps at the run's first start,
      # then recorded in config.json (a resume with more train.steps keeps the schedule).
      'decay_steps': placeholder(int),
      'n_critic': 1,
      # L2 weight decay of D's parameters, added to its gradient (0: off).
      'd_weight_decay': 0.0,
      'ema_decay': 0.999,
      # EMA warm-up: before this iteration the EMA is G's parameters themselves (0: none).
      'ema_start': 0,
      # EMA ramp-up (Karras et al. 2020, ADA): its half-life capped at ema_rampup × the
      # iterations done (0: off; stylegan2-ada uses 0.05).
      'ema_rampup': 0.0,
      # Standing statistics: batches of G in training mode that recompute the EMA generator's
      # BatchNorm statistics for its own parameters before it samples (0: off, G's own used).
      'ema_standing_stats': 0,
  })
  c.train = ml_collections.ConfigDict({
      'steps': 20_000, 'steps_per_call': 100, 'log_every': 500, 'eval_every': 5_000,
      'checkpoint_every': 5_000, 'keep': 3,
      # An eval metric whose best value's checkpoint is kept beside the last `keep` (in
      # checkpoints_best/), e.g. 'fid'; 'min:NAME' / 'max:NAME' for a metric of no known direction.
      'keep_best': placeholder(str),
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
      'dinov2_weights': placeholder(str),  # features='dinov2': dinov2_vitl14_pretrain.pth
      # The truncation trick ψ in the eval samples and plots (recorded in the protocol); unset:
      # none. Brock et al. 2019: each latent component with |z| > ψ redrawn; a StyleGAN2 G
      # (Karras et al.): w ← w_avg + ψ (w − w_avg) instead.
      'truncation': placeholder(float),
      'real_split': placeholder(str), 'num_real': placeholder(int),
      'batch_size': 500, 'two_sample_size': 2_500, 'cache_dir': placeholder(str),
      # FID against statistics written elsewhere (pytorch-fid's .npz: mu, sigma; --mode=stats
      # writes them) instead of the real_split's: only 'fid' can use them.
      'reference_stats': placeholder(str),
      # The protocol around the feature network (evaluation.PROTOCOLS): a preset matching one
      # library ('pytorch_fid', 'clean_fid', 'torch_fidelity', 'stylegan2_ada'); each field
      # below, when set, overrides the preset's: uint8 quantisation of the images, the resize
      # to 299 ('pytorch_fid', 'tf', 'clean'), Inception's input scaling ('pytorch_fid', 'tf'),
      # IS logits ('unbiased': without fc's bias, as improved-gan; or 'biased'), a seeded
      # shuffle before IS's splits, and the seed of KID's subsets (and of that shuffle).
      'protocol': 'pytorch_fid', 'quantize': placeholder(bool), 'resize': placeholder(str),
      'input_scale': placeholder(str), 'is_logits': placeholder(str),
      'is_shuffle': placeholder(bool), 'metric_seed': placeholder(int),
      'cov_ddof': placeholder(int),  # FID's covariances over N - 1 (1) or N (0, StyleGAN2-ADA)
  })
  # Multi-host (gan_jax/distributed.py): unset = single host, or what the environment says.
  c.distributed = ml_collections.ConfigDict({
      'coordinator_address': placeholder(str), 'num_processes': placeholder(int),
      'process_id': placeholder(int), 'local_device_ids': placeholder(tuple),
  })
  # Where the numbers go besides metrics.jsonl and TensorBoard: Weights & Biases when a project
  # is named (pip install 'gan_jax[wandb]').
  c.logging = ml_collections.ConfigDict({
      'wandb': {'project': placeholder(str), 'entity': placeholder(str)}})
  c.tricks = tricks_config()
  return c


def tricks_config() -> ml_collections.ConfigDict:
  """config.tricks, every switch off (gan_jax/tricks.py says what each does).

  instance_noise: std σ₀ of Gaussian noise on D's inputs, decaying linearly to 0 over
  anneal_steps iterations (0: constant). label_smoothing: the real target (1.0 = off; cross-entropy
  objectives only). feature_matching: mode 'none' | 'replace' | 'auxiliary', and its weight.
  pack: PacGAN's m. unroll_steps: unrolled GAN's k. ensemble: hidden widths of each member D, e.g.
  ((16,), (64, 64), (128, 128, 128)). adaptive: the adaptive schedule of M. Borisyak's GAN
  lecture (HSE): D while its loss > c1, then G while it is < c2, capped at max_d_steps /
  max_g_steps. diffaugment: DiffAugment's policies on every image D sees, e.g.
  'color,translation,cutout' ('' = off). ada: adaptive discriminator augmentation, its p tuned
  toward E[sign D(x_real)] = target every `interval` iterations (p 0 → 1 in speed_images reals).
  lecam: LeCam regularisation of D's outputs toward the moving averages of the other side's,
  its weight (0 = off) and the averages' decay. consistency: bCR's weights on real and fake
  images under the DiffAugment policies bcr_augment, zCR's on D and G under latent noise of std
  zcr_sigma (0 = off). top_k: G learns from the k fakes D rates highest, k decaying by gamma every
  decay_every iterations down to min_fraction of the batch. orthogonal: BigGAN's β on G's kernels.
  pulling_away: EBGAN's weight of the pulling-away term (autoencoder discriminators).
  path_length: StyleGAN2's path-length regularisation of G, its weight (0 = off; the paper's 2),
  lazy interval, running-mean decay and batch shrink (StyleGAN2 generators).
  """
  return ml_collections.ConfigDict({
      'instance_noise': {'std': 0.0, 'anneal_steps': 0},
      'label_smoothing': 1.0,
      'feature_matching': {'mode': 'none', 'weight': 1.0},
      'pack': 1,
      'unroll_steps': 0,
      'ensemble': (),
      'adaptive': {'enabled': False, 'c1': 1.0, 'c2': 1.3, 'max_d_steps': 5, 'max_g_steps': 5},
      'diffaugment': '',
      'ada': {'enabled': False, 'target': 0.6, 'interval': 4, 'speed_images': 500_000,
              'p_init': 0.0},
      'lecam': {'weight': 0.0, 'decay': 0.99},
      'consistency': {'bcr_real': 0.0, 'bcr_fake': 0.0, 'bcr_augment': 'translation',
                      'zcr_dis': 0.0, 'zcr_gen': 0.0, 'zcr_sigma': 0.03},
      'top_k': {'enabled': False, 'gamma': 0.99, 'min_fraction': 0.5, 'decay_every': 1_000},
      'orthogonal': 0.0,
      'pulling_away': 0.0,
      'path_length': {'weight': 0.0, 'every': 4, 'decay': 0.01, 'batch_shrink': 2},
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
  # Worker processes that read and decode the batches (input_pipeline.resolve_workers); unset:
  # none on CPU, min(8, cores / 2) on an accelerator's host.
  c.data.workers = placeholder(int)
  # Train on this fraction of the split (a fixed seeded subset; limited-data experiments); the
  # eval metrics still compare with the whole split. Unset: all of it.
  c.data.fraction = placeholder(float)
  c.model = ml_collections.ConfigDict({
      'generator': 'dcgan',
      'discriminator': 'dcgan',
      'z_dim': 100,
      'g': {'channels': 64, 'norm': 'batch', 'conditioning': 'none'},
      'd': {'channels': 64, 'norm': 'batch', 'conditioning': 'none', 'spectral_norm': False},
      # The convolutions (gan_jax/layers.py): 'auto' = the exact rewrites on CPU, XLA's own
      # (cuDNN, the TPU's) elsewhere; 'rewrite' or 'xla' to force one. Same parameters, so a
      # checkpoint moves between them.
      'conv_impl': 'auto',
  })
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999))
  c.train.update(steps=10_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=1_000)
  # FID etc. on the digit CNN's features for the offline digits, on Inception's otherwise (its
  # weights are downloaded once, or given as eval.inception_weights); 10k samples as most GAN
  # papers' in-training FID, 2,500 for the offline digits (mnist5k has 4,500 training images).
  c.eval.metrics = ('fid', 'kid', 'inception_score', 'precision_recall', 'density_coverage')
  from gan_jax import input_pipeline  # numpy: only once an image config is built
  offline_digits = input_pipeline.is_offline(dataset) and input_pipeline.is_digits(dataset)
  c.eval.num_samples = 2_500 if offline_digits else 10_000
  if dataset == 'stacked_mnist':
    c.eval.metrics += ('stacked_modes',)
  return c


def add_tfds_fields(c) -> ml_collections.ConfigDict:
  """data.data_dir and data.download, the options of tfds datasets."""
  c.data.data_dir = placeholder(str)
  c.data.download = False
  return c


def check(config) -> None:
  """Range-checks every numeric field before anything is built or trained, and the optimizer and
  schedule names: each failure is a ConfigError naming the field, its value and the valid range,
  e.g. `config.optim.d_lr=-0.001 must be > 0`.

  Absent fields are skipped (old configs may lack them); of config.tricks, only the widths of
  tricks.ensemble (tricks.from_config checks the rest). With task='phenomenon', each variant of config.phenomenon (an option such
  as compare: {label: overrides}) is checked too, named config.phenomenon.<option>.<label>.
  """
  _check_values(config, 'config')
  if config.get('task', None) == 'phenomenon':
    section = config.get('phenomenon', None) or {}
    for option in section:
      if _is_variants(config, section[option]):
        for label, overrides in section[option].items():
          prefix = f'config.phenomenon.{option}.{label}'
          _check_values(_variant(config, overrides, prefix), prefix)


# The ranges of config.check: (text of the range, test of a value).
_GT0 = ('> 0', lambda v: v > 0)
_GE0 = ('>= 0', lambda v: v >= 0)
_GE1 = ('>= 1', lambda v: v >= 1)
_UNIT = ('in [0, 1)', lambda v: 0 <= v < 1)
_ANY = ('', lambda v: True)

# (field, 'int' | 'number', range) of the fields that exist in some config.
_RANGES = (
    ('seed', 'int', _ANY),
    ('data.batch_size', 'int', _GE1), ('data.image_size', 'int', _GE1),
    ('data.workers', 'int', _GE0),
    ('data.num_modes', 'int', _GE1), ('data.side', 'int', _GE1),  # toy data
    ('data.std', 'number', _GT0), ('data.radius', 'number', _GT0),
    ('data.spacing', 'number', _GT0),
    ('model.z_dim', 'int', _GE1),
    *((f'model.{net}.{field}', kind, rng) for net in ('g', 'd') for field, kind, rng in (
        ('channels', 'int', _GE1), ('code_dim', 'int', _GE1), ('depth', 'int', _GE1),
        ('minibatch_discrimination', 'int', _GE0), ('dropout', 'number', _UNIT),
        ('dropout_layers', 'int', _GE0))),
    ('optim.g_lr', 'number', _GT0), ('optim.d_lr', 'number', _GT0),
    ('optim.ema_decay', 'number', _UNIT), ('optim.n_critic', 'int', _GE1),
    ('optim.decay_steps', 'int', _GE1),
    ('penalty.weight', 'number', _GE0), ('penalty.every', 'int', _GE1),
    ('optim.ema_start', 'int', _GE0), ('optim.ema_standing_stats', 'int', _GE0),
    ('optim.ema_rampup', 'number', _GE0),
    ('optim.d_weight_decay', 'number', _GE0),
    *((f'train.{field}', 'int', _GE1)
      for field in ('steps', 'steps_per_call', 'log_every', 'eval_every', 'checkpoint_every',
                    'keep')),
    ('data.fraction', 'number', ('in (0, 1]', lambda v: 0 < v <= 1)),
    ('eval.truncation', 'number', _GT0),
    ('eval.num_samples', 'int', _GE1), ('eval.batch_size', 'int', _GE1),
    ('eval.num_real', 'int', _GE1), ('eval.two_sample_size', 'int', _GE1),
    ('eval.num_plot', 'int', _GE1),
    ('pix2pix.lambda_gan', 'number', _GE0), ('pix2pix.lambda_l1', 'number', _GE0),
    ('pix2pix.d_loss_scale', 'number', _GE0),
    ('distributed.num_processes', 'int', _GE1), ('distributed.process_id', 'int', _GE0),
)

_MISSING = object()


def _get(config, field: str):
  """The value of the dotted `field`, or _MISSING; None (an unset placeholder) counts as absent."""
  node = config
  for key in field.split('.'):
    if not hasattr(node, 'keys') or key not in node:
      return _MISSING
    node = node[key]
  return _MISSING if node is None else node


def _show(value) -> str:
  """repr of a config value, numpy scalars as Python ones."""
  if isinstance(value, (tuple, list)):
    return repr(type(value)(_plain(v) for v in value))
  return repr(_plain(value))


def _plain(value):
  return value.item() if hasattr(value, 'item') and hasattr(value, 'dtype') else value


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value(name: str, value, kind: str, rng) -> None:
  text, ok = rng
  if kind == 'int':
    if not (_is_int(value) and ok(value)):
      raise ConfigError(f'{name}={_show(value)} must be an integer {text}'.rstrip())
  elif not _is_number(value):
    raise ConfigError(f'{name}={_show(value)} must be a number {text}')
  elif not math.isfinite(value):
    raise ConfigError(f'{name}={_show(value)} must be a finite number {text}')
  elif not ok(value):
    raise ConfigError(f'{name}={_show(value)} must be {text}')


def _check_values(config, prefix: str) -> None:
  """The checks of `check` on one config; messages name the fields as `prefix`.field."""
  from gan_jax import state as state_lib  # jax: only once a run is being set up
  for field, kind, rng in _RANGES:
    value = _get(config, field)
    if value is not _MISSING:
      _check_value(f'{prefix}.{field}', value, kind, rng)
  for net in ('g', 'd'):
    hidden = _get(config, f'model.{net}.hidden')
    if hidden is not _MISSING and not (
        isinstance(hidden, (tuple, list)) and all(_is_int(w) and w >= 1 for w in hidden)):
      raise ConfigError(f'{prefix}.model.{net}.hidden={_show(hidden)} must be a tuple of integers '
                        '>= 1 (the widths of the hidden layers), e.g. (128, 128)')
  ensemble = _get(config, 'tricks.ensemble')  # its other checks: tricks.from_config
  if ensemble is not _MISSING and not (
      isinstance(ensemble, (tuple, list)) and
      all(isinstance(h, (tuple, list)) and all(_is_int(w) and w >= 1 for w in h)
          for h in ensemble)):
    raise ConfigError(f'{prefix}.tricks.ensemble={_show(ensemble)} must be the hidden widths of '
                      'each member D, tuples of integers >= 1, e.g. ((16,), (64, 64))')
  for field in ('betas', 'g_betas', 'd_betas'):
    betas = _get(config, f'optim.{field}')
    if betas is not _MISSING and (betas is not None or field == 'betas') and not (
        isinstance(betas, (tuple, list)) and len(betas) == 2 and
        all(_is_number(b) and 0 <= b < 1 for b in betas)):
      raise ConfigError(f'{prefix}.optim.{field}={_show(betas)} must be a pair (β1, β2), each '
                        'in [0, 1), e.g. (0.5, 0.999)')
  for field in ('g_optimizer', 'd_optimizer'):
    name = _get(config, f'optim.{field}')
    if name is not _MISSING and name not in state_lib.OPTIMIZERS:
      raise ConfigError(f'{prefix}.optim.{field}: unknown optimizer {_show(name)}; valid '
                        f'optimizers: {", ".join(sorted(state_lib.OPTIMIZERS))}')
  schedule = _get(config, 'optim.lr_schedule')
  if schedule is not _MISSING and schedule not in state_lib.LR_SCHEDULES:
    raise ConfigError(f'{prefix}.optim.lr_schedule={_show(schedule)} is not known; valid '
                      f'choices: {", ".join(state_lib.LR_SCHEDULES)}')
  per_call = _get(config, 'train.steps_per_call')
  for field in ('log_every', 'eval_every', 'checkpoint_every'):
    every = _get(config, f'train.{field}')
    if per_call is not _MISSING and every is not _MISSING and every % per_call:
      raise ConfigError(f'{prefix}.train.{field}={every} must be a multiple of '
                        f'{prefix}.train.steps_per_call={per_call}')


def _is_variants(config, value) -> bool:
  """Whether a phenomenon option is {label: overrides of config sections} (e.g. compare)."""
  return (hasattr(value, 'items') and len(value) > 0 and
          all(hasattr(o, 'keys') and len(o) > 0 and all(k in config for k in o)
              for o in value.values()))


def _variant(config, overrides, prefix: str):
  """An unlocked copy of `config` with `overrides` merged in (as phenomena.variant)."""
  c = copy.deepcopy(config)
  c.unlock()
  try:
    c.update(overrides.to_dict() if hasattr(overrides, 'to_dict') else overrides)
  except (TypeError, ValueError, AttributeError, KeyError) as e:
    raise ConfigError(f'{prefix}: {e}'.splitlines()[0]) from None
  return c


CONFIG_FILE = ('a config is a Python file defining get_config() (the experiments are in '
               'experiments/)')


def load_file(spec: str):
  """get_config() of the --config value `spec`, 'PATH' or 'PATH:ARG' (then get_config(ARG)).

  Every failure is a ConfigError of one line naming the file: not a Python file, missing, a
  syntax or other error at a line of it, no get_config, an argument get_config does not take.
  """
  path, has_arg, arg = spec.partition(':')
  if os.path.isdir(path) or (os.path.exists(path) and not path.endswith('.py')):
    raise ConfigError(f'--config={spec}: {CONFIG_FILE}')
  if not os.path.isfile(path):
    raise ConfigError(f'the config file {path} does not exist; the experiments are in '
                      'experiments/')
  failed = f'could not load the config file {path}'
  name = '_gan_jax_config_' + re.sub(r'\W', '_', os.path.splitext(os.path.basename(path))[0])
  module_spec = importlib.util.spec_from_file_location(name, path)
  if module_spec is None:
    raise ConfigError(f'--config={spec}: {CONFIG_FILE}')
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[name] = module  # as for an import (dataclasses in the file look it up)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    same = os.path.abspath(e.filename or path) == os.path.abspath(path)
    where = '' if same else f' in {e.filename}'
    raise ConfigError(f'{failed}: {type(e).__name__}{where}: {e.msg} at line {e.lineno}') from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'{failed}: {_error_at(e, path)}') from None
  finally:
    sys.modules.pop(name, None)
  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ConfigError(f'the config file {path} defines no get_config(); {CONFIG_FILE}')
  args = (arg,) if has_arg else ()
  try:
    inspect.signature(get_config).bind(*args)
  except TypeError:
    if has_arg:
      raise ConfigError(f'--config={spec}: the config {path} takes no argument; use '
                        f'--config={path}') from None
    raise ConfigError(f'--config={spec}: the config {path} takes an argument: '
                      f'get_config{inspect.signature(get_config)}; pass it as '
                      f'--config={path}:VALUE') from None
  except ValueError:  # no signature (a builtin): let the call say
    pass
  try:
    config = get_config(*args)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f'{failed}: get_config() raised {_error_at(e, path)}') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'{failed}: get_config() returned {type(config).__name__}, not an '
                      'ml_collections.ConfigDict')
  return config


def _error_at(error: Exception, path: str) -> str:
  """'Type: message (line N)', N the last line of `path` in the traceback (message: 1st line)."""
  lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(f.filename) == os.path.abspath(path)]
  message = (str(error).splitlines() or [''])[0]
  text = f'{type(error).__name__}: {message}' if message else type(error).__name__
  return f'{text} (line {lines[-1]})' if lines else text


_FIELD_PATH = re.compile(r'[A-Za-z_]\w*(\.[A-Za-z_]\w*)*')


def check_override(config, field: str, text: str) -> None:
  """A ConfigError if `--config.<field>=<text>` cannot set `field` of `config`: a group of fields
  given a value, an element of a tuple, a value that does not parse as the field's type.

  A field the config lacks is left to the flag parser (its error names the field and a
  suggestion); ranges are checked later, by `check`, on the whole config.
  """
  flag = f'--config.{field}'
  if not _FIELD_PATH.fullmatch(field):
    prefix = _FIELD_PATH.match(field)
    value = _get(config, prefix.group(0)) if prefix else _MISSING
    if isinstance(value, tuple):
      raise ConfigError(f'{flag}: a tuple is set whole, e.g. '
                        f'--config.{prefix.group(0)}=\'{_show(value)}\'')
    raise ConfigError(f'{flag}: not a field name; a field is set as --config.SECTION.FIELD=VALUE, '
                      'e.g. --config.optim.d_lr=2e-4')
  keys = field.split('.')
  for i in range(1, len(keys)):
    value = _get(config, '.'.join(keys[:i]))
    if value is not _MISSING and not hasattr(value, 'keys'):
      raise ConfigError(f'{flag}: config.{".".join(keys[:i])} is a value, not a group of fields; '
                        f'set it as --config.{".".join(keys[:i])}=VALUE')
  try:
    kind = config_path.get_type(field, config)
  except (AttributeError, KeyError, IndexError, TypeError, ValueError):
    return
  if isinstance(kind, type) and issubclass(kind, ml_collections.ConfigDict):
    try:
      value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
      value = None
    if not isinstance(value, dict):  # a dict literal replaces the group: ml_collections' way
      group = _get(config, field)
      leaves = [k for k in group if not hasattr(group[k], 'keys')] if group is not _MISSING else []
      example = 'name' if 'name' in leaves else (leaves[0] if leaves else None)
      hint = f', e.g. {flag}.{example}={text}' if example else ''
      raise ConfigError(f'{flag} is a group of fields; set one of them{hint}')
    return
  expected = {int: (absl_flags.IntegerParser(), 'an integer'),
              float: (absl_flags.FloatParser(), 'a number'),
              bool: (absl_flags.BooleanParser(), 'true or false')}
  if kind in expected:
    parser, what = expected[kind]
    try:
      parser.parse(text)
    except (TypeError, ValueError):
      raise ConfigError(f'{flag}={text}: expected {what}') from None


def to_dict(config) -> dict:
  """The config as plain JSON types (tuples become lists)."""
  return json.loads(config.to_json())


def check_batch_split(batch_size: int, num_devices: int) -> None:
  """A ConfigError unless config.data.batch_size splits evenly over the devices."""
  if batch_size % num_devices:
    raise ConfigError(f'config.data.batch_size={batch_size} must be divisible by the number of '
                      f'devices ({num_devices})')


def decay_steps(config) -> int:
  """Iterations over which a decaying lr schedule runs: config.optim.decay_steps, which the loop
  fixes at the run's first start (so a resume with more train.steps keeps the schedule), else
  config.train.steps."""
  return int(config.optim.get('decay_steps', None) or config.train.steps)

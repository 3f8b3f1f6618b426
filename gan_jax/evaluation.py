"""Evaluation of a generator: samples → features → metrics, with the protocol beside the numbers.

`Evaluator(config.eval, ...)` is built once per run. Each call generates `n` samples from fixed
eval noise (batch i uses fold_in(eval_key, i), so successive evals compare like with like) in
jitted batches sharded over the mesh, maps them to features on device, and computes the metrics
of `config.eval.metrics`:

  modes              modes, hq_fraction, reverse_kl   mixtures of Gaussians (PacGAN protocol)
  stacked_modes      modes, reverse_kl                Stacked MNIST, the digit classifier per channel
  fid                fid                              Fréchet distance of the features (float64)
  kid                kid, kid_std                     KID, 100 subsets of ≤ 1000
  inception_score    inception_score, ..._std        10 splits, on the extractor's class probs
  precision_recall   precision, recall                k = 3, inclusive balls
  density_coverage   density, coverage                k = 5, strict balls
  mmd                mmd2, mmd2_p_value               Gaussian kernel, median heuristic, 200 perms
  c2st               c2st_accuracy, c2st_p_value      k-NN classifier two-sample test

Features (`config.eval.features`):
  identity           the samples themselves, flattened (toy data; pixel space for images)
  digit_classifier   the offline digit CNN (metrics/digit_classifier.py; 128-d, 384-d for the
                     three channels of Stacked MNIST, whose class probabilities are then the
                     product of the channels' over the 1,000 labels 100·R + 10·G + B)
  inception          the FID Inception-V3 (metrics/inception.py; 2048-d pool3, 1008-way logits),
                     weights from `config.eval.inception_weights`
  auto               identity for toy data, digit_classifier for digit datasets, else inception

Real statistics (features, mean and covariance of `num_real` images of `real_split`) are computed
once per (dataset and its options, split, image shape, extractor and weights, count) and cached
as .npz under `cache_dir` ($GAN_JAX_CACHE or ~/.cache/gan_jax by default). FID comes from
streaming statistics of the fakes; their features are kept in memory only when a metric needs
them (KID, PR/DC, MMD, C2ST, modes).
"""
import hashlib
import json
import os
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import configs, distributed, input_pipeline
from gan_jax.metrics import (StreamingStats, c2st, density_coverage, digit_classifier,
                             frechet_distance, inception, inception_score,
                             kernel_inception_distance, mmd2, mode_metrics, precision_recall)

FEATURES = ('auto', 'identity', 'digit_classifier', 'inception')
KID_SUBSETS, KID_SUBSET_SIZE, PR_K, DC_K, IS_SPLITS = 100, 1000, 3, 5, 10


class Inputs(NamedTuple):
  """What the metrics are computed from (a metric reads only what its `needs` name).

  real: {'features' (N, D), 'mu', 'sigma'} of the reference; fake: (M, D) fake features;
  probs: (M, C) class probabilities of the fakes; fake_stats: their streamed (mu, sigma);
  centers, std: the mixture's ('modes'); two_sample_size: MMD and C2ST use the first this many
  of each set.
  """
  real: Optional[dict] = None
  fake: Optional[np.ndarray] = None
  probs: Optional[np.ndarray] = None
  fake_stats: Optional[tuple] = None
  centers: Optional[np.ndarray] = None
  std: Optional[float] = None
  two_sample_size: int = 2500


class Metric(NamedTuple):
  """An eval metric: what it needs ('real' features, all 'fake' features, 'probs', 'centers' of a
  mixture), the function computing its numbers from `Inputs`, and its part of the protocol
  stamp as a function of the eval's counts {'n', 'n_real', 'pair', 'centers', 'std'}."""
  needs: tuple
  compute: Callable[[Inputs], dict]
  protocol: Callable[[dict], dict] = lambda counts: {}


def _fid(i: Inputs) -> dict:
  stats = i.fake_stats or StreamingStats.init(i.fake.shape[1]).update(i.fake).finalize()
  return {'fid': frechet_distance(i.real['mu'], i.real['sigma'], *stats)}


def _kid(i: Inputs) -> dict:
  kid, std = kernel_inception_distance(i.real['features'], i.fake, KID_SUBSETS, KID_SUBSET_SIZE)
  return {'kid': kid, 'kid_std': std}


def _inception_score(i: Inputs) -> dict:
  score, std = inception_score(i.probs, IS_SPLITS)
  return {'inception_score': score, 'inception_score_std': std}


def _mmd(i: Inputs) -> dict:
  result = mmd2(i.real['features'][:i.two_sample_size], i.fake[:i.two_sample_size])
  return {'mmd2': result['mmd2'], 'mmd2_p_value': result['p_value']}


def _c2st(i: Inputs) -> dict:
  result = c2st(i.real['features'][:i.two_sample_size], i.fake[:i.two_sample_size])
  return {'c2st_accuracy': result['accuracy'], 'c2st_p_value': result['p_value']}


def _two_sample_size(counts: dict) -> dict:
  return {'two_sample_size': min(counts['pair'], counts['n'], counts['n_real'])}


METRICS = {
    'modes': Metric(('fake', 'centers'), lambda i: mode_metrics(i.fake, i.centers, i.std),
                    lambda c: {'modes': 'PacGAN: nearest mean by std-normalised distance, HQ if '
                                        '< 3 std',
                               'num_modes': int(c['centers'].shape[0]), 'std': c['std']}),
    'stacked_modes': Metric(('probs',), lambda i: digit_classifier.label_modes(
        np.argmax(i.probs, axis=1), i.probs.shape[1])),
    'fid': Metric(('real',), _fid),
    'kid': Metric(('real', 'fake'), _kid, lambda c: {
        'kid': f'{KID_SUBSETS} subsets of min({KID_SUBSET_SIZE}, n), cubic kernel'}),
    'inception_score': Metric(('probs',), _inception_score),
    'precision_recall': Metric(('real', 'fake'),
                               lambda i: precision_recall(i.real['features'], i.fake, PR_K),
                               lambda c: {'prdc_k': {'precision_recall': PR_K}}),
    'density_coverage': Metric(('real', 'fake'),
                               lambda i: density_coverage(i.real['features'], i.fake, DC_K),
                               lambda c: {'prdc_k': {'density_coverage': DC_K}}),
    'mmd': Metric(('real', 'fake'), _mmd, _two_sample_size),
    'c2st': Metric(('real', 'fake'), _c2st, _two_sample_size),
}


# Which way each eval metric improves (for train.keep_best); others need 'min:' or 'max:'.
LOWER_IS_BETTER = ('fid', 'kid', 'reverse_kl', 'mmd2', 'c2st_accuracy', 'l1')
HIGHER_IS_BETTER = ('modes', 'hq_fraction', 'inception_score', 'precision', 'recall', 'density',
                    'coverage', 'psnr')


def best_rule(spec: str) -> tuple:
  """(metric, 'min' | 'max') of config.train.keep_best ('fid', or 'min:NAME' / 'max:NAME')."""
  direction, _, name = spec.rpartition(':')
  if direction not in ('', 'min', 'max'):
    raise configs.ConfigError(f'config.train.keep_best={spec!r}: the direction before ":" must '
                              "be 'min' or 'max'")
  if not direction:
    if name not in LOWER_IS_BETTER + HIGHER_IS_BETTER:
      raise configs.ConfigError(
          f'config.train.keep_best={spec!r}: which way {name!r} improves is not known; write '
          f"'min:{name}' or 'max:{name}' (known: {', '.join(LOWER_IS_BETTER + HIGHER_IS_BETTER)})")
    direction = 'min' if name in LOWER_IS_BETTER else 'max'
  return name, direction


def needs(names) -> set:
  """What the metrics `names` need together."""
  return {x for name in names for x in METRICS[name].needs}


def compute_metrics(names, real: Optional[dict], fake, probs=None, fake_stats=None,
                    centers=None, std=None, two_sample_size: int = 2500) -> dict:
  """The metrics `names` (keys of METRICS) of fake features against the real reference; the
  arguments are those of `Inputs`."""
  inputs = Inputs(real, fake, probs, fake_stats, centers, std, two_sample_size)
  metrics = {}
  for name in names:
    metrics.update(configs.lookup(METRICS, 'eval.metrics', name).compute(inputs))
  return metrics


def stamp(names, fields: dict, counts: dict) -> dict:
  """The protocol of an eval record: `fields` (generator, sample counts, data, feature network,
  reference), then each metric's part, in METRICS order (parts naming one key merge)."""
  protocol = dict(fields)
  for name, metric in METRICS.items():
    if name in names:
      for key, value in metric.protocol(counts).items():
        protocol[key] = ({**protocol[key], **value} if isinstance(value, dict) and key in protocol
                         else value)
  return protocol


def reference(features) -> dict:
  """{'features', 'mu', 'sigma'} of a real feature set (float64 statistics)."""
  mu, sigma = StreamingStats.init(features.shape[1]).update(features).finalize()
  return {'features': features, 'mu': mu, 'sigma': sigma}


class Extractor(NamedTuple):
  """Features (and class probabilities) of images, as a function traced inside jit.

  `apply(x)` maps (B, *sample_shape) in [-1, 1] to (features (B, D), probs (B, C) or None).
  `key` names the network and its weights in cache file names; `protocol` goes in eval records.
  """
  name: str
  apply: Callable
  key: str
  protocol: dict


def identity_extractor() -> Extractor:
  return Extractor('identity', lambda x: (x.reshape(x.shape[0], -1), None), 'identity',
                   {'features': 'identity (the samples, flattened)'})


def digit_extractor(cache_dir: Optional[str] = None, log=print) -> Extractor:
  """The offline digit CNN: 128-d features and 10 class probs; channels are classified apart."""
  clf = digit_classifier.load_or_train(configs.cache_dir('digit_classifier', cache_dir),
                                       log=log)

  def apply(x):
    b, c = x.shape[0], x.shape[-1]
    channels = jnp.moveaxis(x, -1, 0).reshape((c * b,) + x.shape[1:3] + (1,))
    logits, feats = clf.outputs(channels)
    probs = jax.nn.softmax(logits.reshape(c, b, -1), axis=-1)
    joint = probs[0]
    for p in probs[1:]:  # P(100·R + 10·G + B) = P(R) P(G) P(B): channels classified apart
      joint = (joint[:, :, None] * p[:, None, :]).reshape(b, -1)
    return jnp.moveaxis(feats.reshape(c, b, -1), 0, 1).reshape(b, -1), joint

  sha = clf.info['params_sha256']
  return Extractor('digit_classifier', apply, f'digitcnn{digit_classifier.VERSION}-{sha[:12]}',
                   {'features': 'digit_classifier (128-d pre-ReLU, per channel)',
                    'classifier_sha256': sha, 'classifier_test_accuracy': clf.test_accuracy})


def inception_extractor(weights_path: Optional[str], cache_root: Optional[str] = None) -> Extractor:
  """pytorch-fid's Inception-V3: 2048-d pool3 features, softmax of the 1008 logits.

  Without `weights_path`, pytorch-fid's file is downloaded once into the cache.
  """
  try:
    weights_path = weights_path or inception.fetch_weights(cache_root)
    variables = inception.load_params(weights_path)
  except (ValueError, OSError) as e:
    raise configs.ConfigError(f'config.eval.inception_weights: {e}') from None
  model = inception.FIDInceptionV3()

  def apply(x):
    if x.shape[-1] == 1:
      x = jnp.tile(x, (1, 1, 1, 3))
    out = model.apply(variables, x)
    return out['pool'], jax.nn.softmax(out['logits'], axis=-1)

  sha = inception.weights_sha256(weights_path)
  return Extractor('inception', apply, f'inception-{sha[:12]}',
                   {'features': 'FID Inception-V3 pool3 (pytorch-fid port)', 'weights_sha256': sha,
                    'resize': 'bilinear to 299×299, grey images tiled to RGB'})


def make_extractor(features: str, eval_config, log=print) -> Extractor:
  """The feature network `features` ('identity', 'digit_classifier', 'inception') with the
  options of config.eval (its cache_dir, inception_weights: downloaded once when not given)."""
  if features == 'identity':
    return identity_extractor()
  if features == 'digit_classifier':
    return digit_extractor(eval_config.get('cache_dir'), log)
  return inception_extractor(eval_config.get('inception_weights'), eval_config.get('cache_dir'))


def resolve_features(eval_config, data_name: str, samples: bool) -> str:
  """The extractor `config.eval.features` names, with 'auto' resolved (`samples`: the data are
  low-dimensional samples, compared as they are)."""
  name = eval_config.get('features', 'auto')
  configs.lookup(dict.fromkeys(FEATURES), 'eval.features', name)
  if name == 'auto':
    return ('identity' if samples else
            'digit_classifier' if input_pipeline.is_digits(data_name) else 'inception')
  return name


def _data_key(data_config) -> str:
  """A short hash of the data options that change the images (not batch size or paths)."""
  options = {k: v for k, v in configs.to_dict(data_config).items()
             if k not in ('batch_size', 'split', 'data_dir', 'download')}
  return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]


class Evaluator:
  """Computes config.eval.metrics for a generator; see the module docstring.

  Args:
    config: the run's config (eval, data fields are read).
    data: the training dataset (a ToyDataset or an ImageDataset).
    real_data: the dataset of the reference images (the `real_split` of `data`), or None: the
      reference is then fresh draws of `data`'s distribution (`data.sample`, the toys).
    generate: jitted (g_params, g_batch_stats, key, labels, n) -> (n, *sample_shape) samples.
    num_classes: > 0 for a conditional generator (eval labels cycle through the classes).
    batch_sharding: the sharding of a (batch, ...) array over the mesh.
    eval_key: the run's eval key (fixed noise).
  """

  def __init__(self, config, data, real_data, generate, num_classes: int, batch_sharding,
               eval_key, log=print):
    e = config.eval
    self.config, self.data, self.real_data, self.log = config, data, real_data, log
    self.generate, self.num_classes, self.eval_key = generate, num_classes, eval_key
    self.batch_sharding = batch_sharding
    self.fresh = real_data is None  # the reference: fresh draws, not images read and cached
    self.centers, self.std = getattr(data, 'centers', None), getattr(data, 'std', None)
    self.metrics = tuple(e.metrics)
    for metric in self.metrics:
      configs.lookup(METRICS, 'eval.metrics', metric)
    self.features = resolve_features(e, data.name, self.fresh)
    devices = batch_sharding.mesh.size
    self.batch_size = max(devices, e.get('batch_size', 500) // devices * devices)
    self._real = {}
    self._check()
    self._stats_file = None
    if e.get('reference_stats'):
      try:
        self._stats_file = load_stats(e.reference_stats)
      except (OSError, ValueError) as err:
        raise configs.ConfigError(f'config.eval.reference_stats: {err}') from None
      others = [m for m in self.metrics if 'real' in METRICS[m].needs and m != 'fid']
      if others:
        raise configs.ConfigError(
            f'config.eval.reference_stats holds only mu and sigma, which {", ".join(others)} '
            'cannot use; keep only fid (and metrics of the fakes alone) in config.eval.metrics')
    # The feature network, built (the digit CNN: trained, once, then cached on disk) now.
    self.extractor = make_extractor(self.features, e, log) if self.metrics else None
    self._apply = jax.jit(self.extractor.apply) if self.extractor else None

  def _check(self):
    """Every metric/feature/data combination that cannot work, as a ConfigError now."""
    need = needs(self.metrics)
    if 'centers' in need and self.centers is None:
      raise configs.ConfigError(f"config.eval.metrics: 'modes' needs a mixture dataset, and "
                                f'{self.data.name!r} has no modes; remove it from eval.metrics')
    if 'modes' in self.metrics and self.features != 'identity':
      raise configs.ConfigError("config.eval.metrics: 'modes' counts samples near the mixture's "
                                "means, so it needs config.eval.features='identity' (or 'auto')")
    if 'probs' in need and self.features == 'identity':
      raise configs.ConfigError(
          f'config.eval.metrics: '
          f'{", ".join(m for m in self.metrics if "probs" in METRICS[m].needs)} '
          f'need class probabilities, which config.eval.features={self.features!r} has not; '
          "use 'digit_classifier' (digits) or 'inception'")
    if 'stacked_modes' in self.metrics and not (self.features == 'digit_classifier' and
                                                self.data.name == 'stacked_mnist'):
      raise configs.ConfigError("config.eval.metrics: 'stacked_modes' is for data.name="
                                "'stacked_mnist' with eval.features='digit_classifier'")
    if self.features == 'digit_classifier' and self.fresh:
      raise configs.ConfigError("config.eval.features='digit_classifier' needs image data")

  def _extract(self, x):
    """(features, probs) on host for a device batch x."""
    feats, probs = self._apply(x)
    return distributed.to_host(feats), None if probs is None else distributed.to_host(probs)

  # --- real data ---------------------------------------------------------------------------

  def _real_path(self, n: int) -> str:
    e, d = self.config.eval, self.config.data
    split = e.get('real_split') or d.get('split', 'train')
    shape = 'x'.join(map(str, self.real_data.image_shape))
    contents = getattr(self.real_data, 'contents_key', None)  # an image folder's files
    data = f'{d.name}-{_data_key(d)}' + (f'-{contents}' if contents else '')
    name = f'{data}-{split}-{shape}-{self.extractor.key}-n{n}.npz'
    return os.path.join(configs.cache_dir('real_stats', e.get('cache_dir')), name)

  def real_reference(self, n: int) -> dict:
    """{'features' (n, D) float32, 'mu', 'sigma' (float64)} of n reference samples (cached)."""
    if n in self._real:
      return self._real[n]
    if self.fresh:  # fresh draws from the true distribution: no features to cache
      x = np.asarray(self.data.sample(jax.random.fold_in(self.eval_key, 1 << 20), n))
      self._real[n] = reference(x.reshape(n, -1))
      return self._real[n]
    path = self._real_path(n)
    if distributed.agreed(os.path.exists(path)):  # every process takes the same branch
      try:
        with np.load(path, allow_pickle=False) as f:
          self._real[n] = {k: f[k] for k in ('features', 'mu', 'sigma')}
        return self._real[n]
      except (OSError, ValueError, KeyError) as err:
        self.log(f'real statistics cache {path} is unreadable ({err}); recomputing')
    self.log(f'computing the real statistics of {n} {self.config.data.name} images '
             f'({self.extractor.name} features); cached in {path}')
    feats, stats = [], None
    for start in range(0, n, self.batch_size):
      m = min(self.batch_size, n - start)
      idx = np.arange(start, start + self.batch_size) % len(self.real_data)
      x = distributed.put_global(self.real_data.read(idx)['image'], self.batch_sharding)
      f_batch = self._extract(x)[0][:m]
      stats = (stats or StreamingStats.init(f_batch.shape[1])).update(f_batch)
      feats.append(f_batch.astype(np.float32))
    mu, sigma = stats.finalize()
    ref = {'features': np.concatenate(feats), 'mu': mu, 'sigma': sigma}
    if distributed.is_main():
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f'{path}.tmp{os.getpid()}.npz'
      np.savez(tmp, **ref)
      os.replace(tmp, path)
    self._real[n] = ref
    return ref

  # --- fakes -------------------------------------------------------------------------------

  def fake_features(self, g_params, g_batch_stats, n: int, keep: bool):
    """(features (n, D) or None, probs (n, C) or None, (mu, sigma)) of n fixed-noise samples."""
    feats, probs, stats = [], [], None
    for i, start in enumerate(range(0, n, self.batch_size)):
      m = min(self.batch_size, n - start)
      labels = None
      if self.num_classes:
        labels = jnp.asarray(np.arange(start, start + self.batch_size) % self.num_classes,
                             jnp.int32)
      x = self.generate(g_params, g_batch_stats, jax.random.fold_in(self.eval_key, i), labels,
                        self.batch_size)
      f_batch, p_batch = self._extract(x)
      f_batch = f_batch[:m]
      stats = (stats or StreamingStats.init(f_batch.shape[1])).update(f_batch)
      if keep:
        feats.append(f_batch.astype(np.float32))
      if p_batch is not None:
        probs.append(p_batch[:m])
    return (np.concatenate(feats) if keep else None, np.concatenate(probs) if probs else None,
            stats.finalize())

  def __call__(self, g_params, g_batch_stats, n: int, generator: str = 'ema'):
    """(metrics, protocol) of n samples of the generator with these parameters."""
    e = self.config.eval
    if not self.metrics:
      return {}, {}
    need = needs(self.metrics)
    fake, probs, (mu_f, sigma_f) = self.fake_features(g_params, g_batch_stats, n,
                                                      keep='fake' in need)
    n_real, real = None, None
    stats_file = e.get('reference_stats')
    if 'real' in need and stats_file:  # only 'fid' (checked at construction)
      mu, sigma = self._stats_file
      real = {'mu': mu, 'sigma': sigma}
    elif 'real' in need:
      n_real = int(e.get('num_real') or n)
      if not self.fresh:
        n_real = min(n_real, len(self.real_data))
      real = self.real_reference(n_real)
    pair = int(e.get('two_sample_size', 2500))
    metrics = compute_metrics(self.metrics, real, fake, probs, (mu_f, sigma_f), self.centers,
                              self.std, pair)
    fields = {'generator': generator, 'num_samples': n, 'data': self.config.data.name,
              'eval_noise': 'fixed: batch i from fold_in(eval_key, i)', **self.extractor.protocol}
    if stats_file:
      fields.update(real=f'statistics file {stats_file}')
    if n_real is not None:
      fields.update(num_real=n_real, real=('fresh draws' if self.fresh else
                                           e.get('real_split') or
                                           self.config.data.get('split', 'train')))
    return metrics, stamp(self.metrics, fields, {'n': n, 'n_real': n_real, 'pair': pair,
                                                 'centers': self.centers, 'std': self.std})


# --- reference statistics as files -------------------------------------------------------------


def save_stats(path: str, mu, sigma) -> None:
  """Writes (mu, sigma) as an .npz with float64 arrays `mu` (D,) and `sigma` (D, D): the layout
  pytorch-fid's `--save-stats` writes and its `calculate_frechet_distance` reads, so either
  tool's statistics can be compared with the other's. '.npz' is appended if missing (as
  np.savez does); written to a temp file, then moved into place."""
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  if mu.ndim != 1 or sigma.shape != mu.shape * 2:
    raise ValueError(f'mu must be (D,) and sigma (D, D); got {mu.shape} and {sigma.shape}')
  path = os.fspath(path)
  if not path.endswith('.npz'):  # np.savez would append it
    path += '.npz'
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path[:-4]}.tmp{os.getpid()}.npz'
  np.savez(tmp, mu=mu, sigma=sigma)
  os.replace(tmp, path)


def load_stats(path: str):
  """(mu, sigma) as float64 from an .npz of pytorch-fid's layout (keys `mu` and `sigma`)."""
  f = np.load(path, allow_pickle=False)
  if not isinstance(f, np.lib.npyio.NpzFile):
    raise ValueError(f'{path}: FID statistics need an .npz with arrays mu and sigma; found a '
                     f'single array')
  with f:
    if not {'mu', 'sigma'} <= set(f.files):
      raise ValueError(f'{path}: FID statistics need arrays mu and sigma; found '
                       f'{sorted(f.files)}')
    return np.asarray(f['mu'], np.float64), np.asarray(f['sigma'], np.float64)


def write_reference_stats(evaluator: 'Evaluator', path: str, n: int) -> tuple:
  """--mode=stats: (mu, sigma) of n reference images (the evaluator's real_split and feature
  network), saved to `path` in pytorch-fid's layout; returns them."""
  ref = evaluator.real_reference(min(n, len(evaluator.real_data)) if evaluator.real_data is not
                                 None else n)
  save_stats(path, ref['mu'], ref['sigma'])
  return ref['mu'], ref['sigma']

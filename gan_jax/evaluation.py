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
  intra_fid          intra_fid                        FID per class (fakes of label c against the
                                                      reals of label c), averaged: conditional G
  fid_infinity       fid_infinity                     FID extrapolated to N → ∞ (Chong & Forsyth)
  is_infinity        is_infinity                      IS extrapolated to N → ∞ (one split each)
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
  dinov2             DINOv2 ViT-L/14's CLS token (metrics/dinov2.py; 1024-d; no class probs):
                     'fid' on it is FD_DINOv2 (Stein et al. 2023), weights from
                     `config.eval.dinov2_weights`, dgm-eval's preprocessing
  auto               identity for toy data, digit_classifier for digit datasets, else inception

Real statistics (features, mean and covariance of `num_real` images of `real_split`: a fixed
random subset, the first num_real of RandomState(0)'s permutation of the split, since files are
often sorted by class) are computed
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

from gan_jax import configs, distributed, input_pipeline, models
from gan_jax.metrics import (StreamingStats, c2st, density_coverage, digit_classifier,
                             dinov2, frechet_distance, inception, inception_score,
                             infinity, kernel_inception_distance, mmd2, mode_metrics,
                             precision_recall, protocol as image_protocol)

FEATURES = ('auto', 'identity', 'digit_classifier', 'inception', 'dinov2')
KID_SUBSETS, KID_SUBSET_SIZE, PR_K, DC_K, IS_SPLITS = 100, 1000, 3, 5, 10
REAL_SEED = 0  # the reference images: the first num_real of RandomState(0)'s permutation

# What each reference library does around the feature network and in its metrics (the fields of
# config.eval that a preset sets; metrics/protocol.py describes the image steps). All four feed
# the 2015 Inception graph's weights; FID is the same Fréchet distance in each, IS has 10 splits,
# KID 100 subsets of 1,000 with the cubic kernel, fake subsets drawn first.
#   pytorch_fid     pytorch-fid on PNG files (uint8), F.interpolate bilinear, 2p/255 - 1.
#                   pytorch-fid has no IS or KID: improved-gan's unbiased IS, KID seed 0.
#   clean_fid       clean-fid's default mode 'clean': PIL bicubic with antialias on float pixels,
#                   clipped, the TF graph's (p - 128)/128 (its TorchScript Inception). uint8 as
#                   its folder path (image files); its `compute_fid(gen=G)` feeds G's floats
#                   unrounded: quantize=False matches that. Its KID draws from NumPy's global
#                   RNG (unseeded): seed 0 here.
#   torch_fidelity  torch-fidelity: uint8 input, TF1 bilinear, (p - 128)/128; IS on the
#                   unbiased logits after a permutation from RandomState(2020); KID's subsets
#                   from RandomState(2020).
#   stylegan2_ada   StyleGAN2-ADA's metrics (and StudioGAN's, which reuse its network): uint8,
#                   the TF1 bilinear its grid_sample reproduces, (p - 128)/128, IS on the
#                   unbiased logits, no shuffle; its KID is unseeded too; its FID's covariances
#                   divide by N (`FeatureStats.get_mean_cov`), not N - 1 (cov_ddof=0).
PROTOCOLS = {
    'pytorch_fid': dict(quantize=True, resize='pytorch_fid', input_scale='pytorch_fid',
                        is_logits='unbiased', is_shuffle=False, metric_seed=0, cov_ddof=1),
    'clean_fid': dict(quantize=True, resize='clean', input_scale='tf', is_logits='unbiased',
                      is_shuffle=False, metric_seed=0, cov_ddof=1),
    'torch_fidelity': dict(quantize=True, resize='tf', input_scale='tf', is_logits='unbiased',
                           is_shuffle=True, metric_seed=2020, cov_ddof=1),
    'stylegan2_ada': dict(quantize=True, resize='tf', input_scale='tf', is_logits='unbiased',
                          is_shuffle=False, metric_seed=0, cov_ddof=0),
}
IS_LOGITS = ('unbiased', 'biased')
_CHOICES = {'resize': image_protocol.RESIZES, 'input_scale': image_protocol.SCALES,
            'is_logits': IS_LOGITS, 'cov_ddof': (0, 1)}


def protocol_settings(eval_config) -> dict:
  """{'protocol', 'quantize', 'resize', 'input_scale', 'is_logits', 'is_shuffle',
  'metric_seed', 'cov_ddof'} of config.eval: its preset (eval.protocol), each field set there overriding it
  ('protocol' then names the preset and the overridden fields)."""
  name = eval_config.get('protocol') or 'pytorch_fid'
  settings = dict(configs.lookup(PROTOCOLS, 'eval.protocol', name))
  changed = []
  for field, default in list(settings.items()):
    value = eval_config.get(field)
    if value is None:
      continue
    if field in _CHOICES and value not in _CHOICES[field]:
      raise configs.ConfigError(f'config.eval.{field}={value!r} is not known; valid choices: '
                                f'{", ".join(_CHOICES[field])}')
    if value != default:
      settings[field] = value
      changed.append(field)
  settings['protocol'] = name + (f' (with {", ".join(changed)} changed)' if changed else '')
  return settings


class Inputs(NamedTuple):
  """What the metrics are computed from (a metric reads only what its `needs` name).

  real: {'features' (N, D), 'labels', and with 'moments' 'mu', 'sigma'} of the reference; fake:
  (M, D) fake features; probs: (M, C) class probabilities of the fakes; fake_stats: their
  streamed (mu, sigma) (with 'moments');
  centers, std: the mixture's ('modes'); two_sample_size: MMD and C2ST use the first this many
  of each set; seed: of KID's subsets, FID∞'s and IS∞'s draws and, with `shuffle`, of the
  permutation before IS's splits; fake_labels: (M,) classes of the fakes, real['labels'] those of
  the reference (intra-FID).
  """
  real: Optional[dict] = None
  fake: Optional[np.ndarray] = None
  probs: Optional[np.ndarray] = None
  fake_stats: Optional[tuple] = None
  centers: Optional[np.ndarray] = None
  std: Optional[float] = None
  two_sample_size: int = 2500
  seed: int = 0
  shuffle: bool = False
  fake_labels: Optional[np.ndarray] = None


class Metric(NamedTuple):
  """An eval metric: what it needs ('real' features, all 'fake' features, the 'moments' (μ, Σ) of
  both sides, 'probs', 'centers' of a mixture), the function computing its numbers from
  `Inputs`, and its part of the protocol
  stamp as a function of the eval's counts {'n', 'n_real', 'pair', 'centers', 'std'}."""
  needs: tuple
  compute: Callable[[Inputs], dict]
  protocol: Callable[[dict], dict] = lambda counts: {}


def _fid(i: Inputs) -> dict:
  stats = i.fake_stats or moments(i.fake)
  return {'fid': frechet_distance(i.real['mu'], i.real['sigma'], *stats)}


def _kid(i: Inputs) -> dict:
  kid, std = kernel_inception_distance(i.fake, i.real['features'], KID_SUBSETS, KID_SUBSET_SIZE,
                                       seed=i.seed)
  return {'kid': kid, 'kid_std': std}


def _inception_score(i: Inputs) -> dict:
  score, std = inception_score(i.probs, IS_SPLITS, shuffle_seed=i.seed if i.shuffle else None)
  return {'inception_score': score, 'inception_score_std': std}


def _intra_fid(i: Inputs) -> dict:
  return {'intra_fid': intra_fid(i.real['features'], i.real['labels'], i.fake, i.fake_labels)}


def intra_fid(real, real_labels, fake, fake_labels) -> float:
  """Intra-class FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator",
  arXiv:1802.05637): the mean over classes c of FID(reals of class c, fakes of class c)."""
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  fids = []
  for c in np.unique(np.concatenate([real_labels, fake_labels])):
    r, f = real[real_labels == c], fake[fake_labels == c]
    if min(len(r), len(f)) < 2:
      raise ValueError(f'intra_fid: class {int(c)} has {len(r)} reference and {len(f)} generated '
                       'samples; each class needs at least 2 of each (raise eval.num_samples '
                       'and eval.num_real)')
    stats = [moments(x) for x in (r, f)]
    fids.append(frechet_distance(*stats[0], *stats[1]))
  return float(np.mean(fids))


def _mmd(i: Inputs) -> dict:
  result = mmd2(i.real['features'][:i.two_sample_size], i.fake[:i.two_sample_size])
  return {'mmd2': result['mmd2'], 'mmd2_p_value': result['p_value']}


def _c2st(i: Inputs) -> dict:
  result = c2st(i.real['features'][:i.two_sample_size], i.fake[:i.two_sample_size])
  return {'c2st_accuracy': result['accuracy'], 'c2st_p_value': result['p_value']}


def _infinity_protocol(counts: dict) -> str:
  n = counts['n']
  return (f'least-squares a + b/N over {infinity.NUM_POINTS} N from {min(5000, n // 2)} to {n}, '
          f'subsets from RandomState({counts.get("seed", 0)})')


def _two_sample_size(counts: dict) -> dict:
  return {'two_sample_size': min(counts['pair'], counts['n'], counts['n_real'])}


METRICS = {
    'modes': Metric(('fake', 'centers'), lambda i: mode_metrics(i.fake, i.centers, i.std),
                    lambda c: {'modes': 'PacGAN: nearest mean by std-normalised distance, HQ if '
                                        '< 3 std',
                               'num_modes': int(c['centers'].shape[0]), 'std': c['std']}),
    'stacked_modes': Metric(('probs',), lambda i: digit_classifier.label_modes(
        np.argmax(i.probs, axis=1), i.probs.shape[1])),
    'fid': Metric(('moments',), _fid),
    'kid': Metric(('real', 'fake'), _kid, lambda c: {
        'kid': f'{KID_SUBSETS} subsets of min({KID_SUBSET_SIZE}, n), cubic kernel, fake subset '
               f'first, RandomState({c.get("seed", 0)})'}),
    'inception_score': Metric(('probs',), _inception_score, lambda c: {
        'inception_score': f'{IS_SPLITS} splits' + (f' after a RandomState({c.get("seed", 0)}) '
                                                    'permutation' if c.get('shuffle') else '')
                           + (f', {c["is_logits"]} logits' if c.get('is_logits') else '')}),
    'intra_fid': Metric(('real', 'fake', 'labels'), _intra_fid,
                        lambda c: {'intra_fid': 'mean over classes of FID(class c reals, class c '
                                                'fakes)'}),
    'fid_infinity': Metric(('moments', 'fake'), lambda i: {'fid_infinity': infinity.fid_infinity(
        i.fake, i.real['mu'], i.real['sigma'], seed=i.seed)['fid_infinity']},
        lambda c: {'fid_infinity': _infinity_protocol(c)}),
    'is_infinity': Metric(('probs',), lambda i: {'is_infinity': infinity.is_infinity(
        i.probs, seed=i.seed)['is_infinity']}, lambda c: {'is_infinity': _infinity_protocol(c)}),
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
LOWER_IS_BETTER = ('fid', 'kid', 'intra_fid', 'fid_infinity', 'reverse_kl', 'mmd2',
                   'c2st_accuracy', 'l1')
HIGHER_IS_BETTER = ('modes', 'hq_fraction', 'inception_score', 'is_infinity', 'precision',
                    'recall', 'density', 'coverage', 'psnr')


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
                    centers=None, std=None, two_sample_size: int = 2500, seed: int = 0,
                    shuffle: bool = False, fake_labels=None) -> dict:
  """The metrics `names` (keys of METRICS) of fake features against the real reference; the
  arguments are those of `Inputs`."""
  inputs = Inputs(real, fake, probs, fake_stats, centers, std, two_sample_size, seed, shuffle,
                  fake_labels)
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


def moments(features, chunk: int = 8192) -> tuple:
  """(mu, sigma) of (N, D) features in float64 (unbiased Σ), streamed `chunk` rows at a time so
  that the float64 copy stays small."""
  stats = StreamingStats.init(features.shape[1])
  for start in range(0, len(features), chunk):
    stats = stats.update(features[start:start + chunk])
  return stats.finalize()


def reference(features, with_moments: bool = True) -> dict:
  """{'features'} of a real feature set, with `with_moments` also 'mu' and 'sigma' (float64)."""
  if not with_moments:
    return {'features': features}
  mu, sigma = moments(features)
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


def _weights(network, path: Optional[str], cache_root: Optional[str], field: str) -> tuple:
  """(path, variables) of a feature network module's weights (`network.fetch_weights` into
  the cache when no path is given); any failure is one ConfigError naming config.eval.<field>."""
  try:
    path = path or network.fetch_weights(cache_root)
    return path, network.load_params(path)
  except (ValueError, OSError) as e:
    raise configs.ConfigError(f'config.eval.{field}: {e}') from None


def inception_extractor(weights_path: Optional[str], cache_root: Optional[str] = None,
                        settings: Optional[dict] = None) -> Extractor:
  """pytorch-fid's Inception-V3: 2048-d pool3 features, softmax of the 1008 logits.

  `settings` (`protocol_settings`; None: the pytorch_fid preset) say how images in [-1, 1]
  become the network's input: uint8 quantisation, the resize to 299 × 299 and the input
  scaling (metrics/protocol.py), and whether IS's logits keep fc's bias. Grey images are tiled
  to RGB. Without `weights_path`, pytorch-fid's file is downloaded once into the cache.
  """
  settings = settings or dict(PROTOCOLS['pytorch_fid'], protocol='pytorch_fid')
  weights_path, variables = _weights(inception, weights_path, cache_root, 'inception_weights')
  model = inception.FIDInceptionV3(image_size=None)
  size = (299, 299)
  fc = variables['params']['fc']

  def apply(x):
    if x.shape[-1] == 1:
      x = jnp.tile(x, (1, 1, 1, 3))
    pixels = image_protocol.to_pixels(x, settings['quantize'])
    pixels = image_protocol.resize(pixels, size, settings['resize'])
    out = model.apply(variables, image_protocol.scale(pixels, settings['input_scale']))
    logits = out['logits']
    if settings['is_logits'] == 'unbiased':  # improved-gan's softmax(pool3 · W)
      logits = jnp.dot(out['pool'], fc['kernel'], precision=jax.lax.Precision.HIGHEST)
    return out['pool'], jax.nn.softmax(logits, axis=-1)

  sha = inception.weights_sha256(weights_path)
  resize = {'pytorch_fid': 'bilinear, half-pixel (F.interpolate)', 'tf': 'TF1 bilinear',
            'clean': 'PIL bicubic, antialiased, clipped'}[settings['resize']]
  scale = {'pytorch_fid': '2p/255 - 1', 'tf': '(p - 128)/128'}[settings['input_scale']]
  key = f'inception-{sha[:12]}-q{int(settings["quantize"])}-{settings["resize"]}-' \
        f'{settings["input_scale"]}'
  return Extractor('inception', apply, key,
                   {'features': 'FID Inception-V3 pool3 (pytorch-fid port)', 'weights_sha256': sha,
                    'resize': f'{resize} to 299×299, grey images tiled to RGB',
                    'input_scale': scale})


def dinov2_extractor(weights_path: Optional[str], cache_root: Optional[str] = None,
                     settings: Optional[dict] = None) -> Extractor:
  """DINOv2 ViT-L/14: the 1024-d CLS token (Stein et al. 2023's FD_DINOv2 feature), images
  resized to 224 as dgm-eval does (PIL's bicubic on the uint8 image; float PIL bicubic when the
  protocol does not quantize). Without `weights_path`, the official file is downloaded once."""
  settings = settings or dict(PROTOCOLS['pytorch_fid'], protocol='pytorch_fid')
  weights_path, variables = _weights(dinov2, weights_path, cache_root, 'dinov2_weights')
  quantize = bool(settings['quantize'])
  resize = 'pil' if quantize else 'clean'
  model = dinov2.vit_large_14()
  apply = lambda x: (dinov2.extract_features(variables, x, model, resize, quantize), None)
  sha = dinov2.weights_sha256(weights_path)
  return Extractor('dinov2', apply, f'dinov2-{sha[:12]}-q{int(quantize)}-{resize}',
                   {'features': 'DINOv2 ViT-L/14 CLS token (FD_DINOv2, dgm-eval)',
                    'weights_sha256': sha,
                    'resize': {'pil': 'PIL bicubic (uint8) to 224×224',
                               'clean': 'PIL bicubic on floats to 224×224, clipped'}[resize],
                    'input_scale': 'ImageNet mean and std'})


def make_extractor(features: str, eval_config, log=print) -> Extractor:
  """The feature network `features` ('identity', 'digit_classifier', 'inception') with the
  options of config.eval (its cache_dir, inception_weights: downloaded once when not given, and
  the protocol's image steps)."""
  if features == 'identity':
    return identity_extractor()
  if features == 'digit_classifier':
    return digit_extractor(eval_config.get('cache_dir'), log)
  if features == 'dinov2':
    return dinov2_extractor(eval_config.get('dinov2_weights'), eval_config.get('cache_dir'),
                            protocol_settings(eval_config))
  return inception_extractor(eval_config.get('inception_weights'), eval_config.get('cache_dir'),
                             protocol_settings(eval_config))


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
    generate: jitted (g_params, g_batch_stats, key, indices, labels) -> (len(indices),
      *sample_shape) samples, sample j drawn from the noise of (key, j) alone (the eval's
      samples are then the first n of one fixed sequence, whatever the batch or device count).
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
    self.settings = protocol_settings(e)
    # Images (fakes and the reference alike) go through uint8 first when the protocol says so.
    self.quantize = bool(self.settings['quantize']) and not self.fresh
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
      others = [m for m in self.metrics if 'real' in METRICS[m].needs]
      if others:
        raise configs.ConfigError(
            f'config.eval.reference_stats holds only mu and sigma, which {", ".join(others)} '
            'cannot use; keep only fid, fid_infinity and metrics of the fakes alone in '
            'config.eval.metrics')
    # The feature network, built (the digit CNN: trained, once, then cached on disk) now.
    self.extractor = make_extractor(self.features, e, log) if self.metrics else None
    self._apply = None
    if self.extractor:
      prepare = ((lambda x: image_protocol.quantize(x) / 127.5 - 1) if self.quantize else
                 (lambda x: x))
      self._apply = jax.jit(lambda x: self.extractor.apply(prepare(x)))

  def _check(self):
    """Every metric/feature/data combination that cannot work, as a ConfigError now."""
    need = needs(self.metrics)
    if 'labels' in need and not self.num_classes:
      raise configs.ConfigError("config.eval.metrics: 'intra_fid' compares each class's fakes "
                                'with its reals, so it needs a class-conditional generator '
                                '(labelled data and a conditional model)')
    if 'centers' in need and self.centers is None:
      raise configs.ConfigError(f"config.eval.metrics: 'modes' needs a mixture dataset, and "
                                f'{self.data.name!r} has no modes; remove it from eval.metrics')
    if 'modes' in self.metrics and self.features != 'identity':
      raise configs.ConfigError("config.eval.metrics: 'modes' counts samples near the mixture's "
                                "means, so it needs config.eval.features='identity' (or 'auto')")
    if 'probs' in need and self.features in ('identity', 'dinov2'):
      raise configs.ConfigError(
          f'config.eval.metrics: '
          f'{", ".join(m for m in self.metrics if "probs" in METRICS[m].needs)} '
          f'need class probabilities, which config.eval.features={self.features!r} has not; '
          "use 'digit_classifier' (digits) or 'inception'")
    if self.features == 'dinov2' and self.fresh:
      raise configs.ConfigError("config.eval.features='dinov2' needs image data")
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
    quantized = '-u8' if self.quantize else ''
    name = f'{data}-{split}-{shape}-{self.extractor.key}{quantized}-perm{REAL_SEED}-n{n}.npz'
    return os.path.join(configs.cache_dir('real_stats', e.get('cache_dir')), name)

  def real_reference(self, n: int, with_moments: bool = True) -> dict:
    """{'features' (n, D) float32, 'labels', and with `with_moments` 'mu', 'sigma' (float64)} of
    n reference samples. The features are cached on disk and the moments computed from them
    when asked: a D×D covariance can dwarf the features (64×64×3 pixels: 1.2 GB for 64
    images' 3 MB), and only the Fréchet distances use it."""
    if n not in self._real:
      self._real[n] = self._real_features(n)
    ref = self._real[n]
    if with_moments and 'mu' not in ref:
      ref['mu'], ref['sigma'] = moments(ref['features'])
    return ref

  def _real_features(self, n: int) -> dict:
    if self.fresh:  # fresh draws from the true distribution: no features to cache
      x = np.asarray(self.data.sample(jax.random.fold_in(self.eval_key, 1 << 20), n))
      return reference(x.reshape(n, -1), with_moments=False)
    path = self._real_path(n)
    if distributed.agreed(os.path.exists(path)):  # every process takes the same branch
      try:
        with np.load(path, allow_pickle=False) as f:
          return {k: f[k] for k in ('features', 'labels')}
      except (OSError, ValueError, KeyError) as err:
        self.log(f'real statistics cache {path} is unreadable ({err}); recomputing')
    self.log(f'computing the real statistics of {n} {self.config.data.name} images '
             f'({self.extractor.name} features); cached in {path}')
    feats, labels = [], []
    order = np.random.RandomState(REAL_SEED).permutation(len(self.real_data))
    for start in range(0, n, self.batch_size):
      m = min(self.batch_size, n - start)
      idx = order[np.arange(start, start + self.batch_size) % len(order)]
      batch = self.real_data.read(idx)
      x = distributed.put_global(batch['image'], self.batch_sharding)
      feats.append(self._extract(x)[0][:m].astype(np.float32))
      labels.append(np.asarray(batch['label'][:m], np.int32))
    ref = {'features': np.concatenate(feats), 'labels': np.concatenate(labels)}
    if distributed.is_main():
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f'{path}.tmp{os.getpid()}.npz'
      np.savez(tmp, **ref)
      os.replace(tmp, path)
    return ref

  # --- fakes -------------------------------------------------------------------------------

  def _generated(self, g_params, g_batch_stats, n: int):
    """Device batches of the first n eval samples (padded to whole batches): sample j from the
    noise of (eval_key, j), label j mod C for a conditional G."""
    for start in range(0, n, self.batch_size):
      indices = np.arange(start, start + self.batch_size)
      labels = (jnp.asarray(indices % self.num_classes, jnp.int32) if self.num_classes else
                None)
      yield self.generate(g_params, g_batch_stats, self.eval_key,
                          jnp.asarray(indices, jnp.uint32), labels)

  def _from_array(self, samples):
    """Device batches of host samples (uint8 images, or floats in [-1, 1]), the last padded."""
    for start in range(0, len(samples), self.batch_size):
      x = np.asarray(samples[start:start + self.batch_size])
      x = x.astype(np.float32) / 127.5 - 1 if x.dtype == np.uint8 else x.astype(np.float32)
      pad = self.batch_size - x.shape[0]
      if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
      yield distributed.put_global(x, self.batch_sharding)

  def fake_features(self, g_params, g_batch_stats, n: int, keep: bool, samples=None,
                    with_moments: bool = True):
    """(features (n, D) or None, probs (n, C) or None, (mu, sigma) or None) of the first n eval
    samples of the generator, or of `samples` (n = len(samples)) when given: the features when
    `keep`, the moments (streamed) when `with_moments`."""
    batches = (self._generated(g_params, g_batch_stats, n) if samples is None else
               self._from_array(samples))
    feats, probs, stats = [], [], None
    for start, x in zip(range(0, n, self.batch_size), batches):
      m = min(self.batch_size, n - start)
      f_batch, p_batch = self._extract(x)
      f_batch = f_batch[:m]
      if with_moments:
        stats = (stats or StreamingStats.init(f_batch.shape[1])).update(f_batch)
      if keep:
        feats.append(f_batch.astype(np.float32))
      if p_batch is not None:
        probs.append(p_batch[:m])
    return (np.concatenate(feats) if keep else None, np.concatenate(probs) if probs else None,
            stats.finalize() if with_moments else None)

  def __call__(self, g_params, g_batch_stats, n: int, generator: str = 'ema', samples=None,
               labels=None):
    """(metrics, protocol) of n samples of the generator with these parameters, or of the given
    `samples` (N, *sample_shape) (uint8 images or floats in [-1, 1]; n = N; `generator` names
    where they come from) and their `labels` (N,) (intra_fid needs them)."""
    e = self.config.eval
    if not self.metrics:
      return {}, {}
    need = needs(self.metrics)
    fake_labels = np.arange(n) % self.num_classes if self.num_classes else None
    if samples is not None:
      n, fake_labels = len(samples), labels
      if 'labels' in need and labels is None:
        raise configs.ConfigError("config.eval.metrics: 'intra_fid' needs the samples' labels "
                                  '(an array labels beside images in the .npz)')
    with_moments = 'moments' in need
    fake, probs, fake_stats = self.fake_features(g_params, g_batch_stats, n, keep='fake' in need,
                                                 samples=samples, with_moments=with_moments)
    n_real, real = None, None
    stats_file = e.get('reference_stats')
    if stats_file and with_moments:  # nothing else needs the reals (checked at construction)
      mu, sigma = self._stats_file
      real = {'mu': mu, 'sigma': sigma}
    elif need & {'real', 'moments'}:
      n_real = int(e.get('num_real') or n)
      if not self.fresh:
        n_real = min(n_real, len(self.real_data))
      real = self.real_reference(n_real, with_moments)
    pair = int(e.get('two_sample_size', 2500))
    if with_moments and int(self.settings['cov_ddof']) == 0:  # Σ 1/N (StyleGAN2-ADA), not 1/(N-1)
      fake_stats = (fake_stats[0], fake_stats[1] * (n - 1) / n)
      if 'features' in real:
        n_r = len(real['features'])
        real = dict(real, sigma=real['sigma'] * (n_r - 1) / n_r)
    seed, shuffle = int(self.settings['metric_seed']), bool(self.settings['is_shuffle'])
    metrics = compute_metrics(self.metrics, real, fake, probs, fake_stats, self.centers,
                              self.std, pair, seed, shuffle, fake_labels)
    fields = {'generator': generator, 'num_samples': n, 'data': self.config.data.name,
              'eval_noise': ('fixed: sample j from fold_in(eval_key, j)' if samples is None else
                             'given samples'), **self.extractor.protocol}
    truncation = self.config.eval.get('truncation', None)
    if samples is None and truncation is not None:  # the truncation trick at sampling
      fields.update(truncation=(
          f'w <- w_avg + {truncation} (w - w_avg)'
          if self.config.model.generator in models.STYLE_GENERATORS else
          f'each |z_i| <= {truncation} (components redrawn)'))
    if not self.fresh:
      fields.update(quantize=self.quantize)
    if self.features == 'inception':
      fields.update(protocol=self.settings['protocol'])
    if any(m in self.metrics for m in ('fid', 'intra_fid', 'fid_infinity')):
      fields.update(fid_covariance='1/N' if int(self.settings['cov_ddof']) == 0 else '1/(N-1)')
    if stats_file:
      fields.update(real=f'statistics file {stats_file}')
    if n_real is not None:
      fields.update(num_real=n_real, real=('fresh draws' if self.fresh else
                                           e.get('real_split') or
                                           self.config.data.get('split', 'train')))
      if not self.fresh:
        fields.update(real_subset=f'the first {n_real} of RandomState({REAL_SEED})\'s '
                                  'permutation of the split')
    return metrics, stamp(self.metrics, fields, {
        'n': n, 'n_real': n_real, 'pair': pair, 'centers': self.centers, 'std': self.std,
        'seed': seed, 'shuffle': shuffle,
        'is_logits': self.settings['is_logits'] if self.features == 'inception' else None})


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

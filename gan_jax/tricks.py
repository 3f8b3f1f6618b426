"""Stabilisation tricks that are neither objectives nor penalties, and their config section.

Every trick is a switch under `config.tricks`; the defaults leave training exactly as without it.

  instance_noise.std, .anneal_steps   Gaussian noise on everything D sees, real and fake, its std
                                      decaying linearly to 0 over anneal_steps iterations (0: kept).
  label_smoothing                     the real label's target; 1.0 = off, 0.9 = Salimans et al.'s.
  feature_matching.mode, .weight      'none' | 'replace' (G matches D's features instead of its
                                      objective) | 'auxiliary' (objective + weight · matching).
  pack                                PacGAN: D judges packs of m samples; 1 = off.
  unroll_steps                        unrolled GAN: G's loss through k D updates; 0 = off.
  ensemble                            hidden widths of each D of an ensemble, e.g. ((16,), (64,));
                                      () = one D. G is trained against the sum of their losses.
  adaptive.enabled, .c1, .c2,         the adaptive schedule of Borisyak's GAN lecture (below): D
  .max_d_steps, .max_g_steps          steps while D's loss > c1, then G steps while D's loss < c2,
                                      each loop capped.
  diffaugment                         DiffAugment (Zhao et al. 2020): the policies applied to every
                                      image D sees, e.g. 'color,translation,cutout'; '' = off.
  lecam.weight, .decay                LeCam regularisation (Tseng et al. 2021): weight · R_LC added
                                      to D's loss, its anchors (EMAs of D's outputs) in the state;
                                      weight 0 = off.
  ada.enabled, .target, .interval,    ADA (Karras et al. 2020): every image D sees through the
  .speed_images, .p_init              'bgc' pipeline with probability p, p in the state, tuned
                                      every `interval` iterations toward E[sign D(x)] = target
                                      at a speed of 0 → 1 in speed_images real images.
  consistency.bcr_real, .bcr_fake,    consistency regularisation (Zhao et al. 2021): bCR's λ_real,
  .bcr_augment, .zcr_dis, .zcr_gen,   λ_fake on ‖D(x) - D(T(x))‖² with T the DiffAugment policies
  .zcr_sigma                          bcr_augment; zCR's λ_dis on ‖D(G(z)) - D(G(z + Δz))‖² and
                                      λ_gen on -‖G(z) - G(z + Δz)‖², Δz ~ N(0, σ²); 0 = off.
  top_k.enabled, .gamma,              top-k training (Sinha et al. 2020): G's loss on the k fakes D
  .min_fraction, .decay_every         rates most real, k = max(B·γ^⌊t/decay_every⌋, ν·B).
  orthogonal                          BigGAN's orthogonal regularisation of G's kernels, its β
                                      (0 = off).
  pulling_away                        EBGAN's pulling-away term (Zhao et al. 2017) on the codes of
                                      an autoencoder D's encoder for the fakes, its weight in G's
                                      loss (the paper's 0.1; 0 = off).
  path_length.weight, .every,         StyleGAN2's path-length regularisation of G (Karras et al.
  .decay, .batch_shrink               2020): weight · E[(‖J_wᵀy‖ - a)²], a the running mean of the
                                      lengths (decay), on batch/batch_shrink fakes, lazily every
                                      `every` iterations (times every); weight 0 = off; StyleGAN2
                                      generators only.

Where the others live: minibatch discrimination is a discriminator option
(`config.model.d.minibatch_discrimination`), DRAGAN and R1 are penalties (`config.penalty.name`),
the relativistic losses are objectives (`config.objective.name`), TTUR is `optim.d_lr` ≠
`optim.g_lr`, D's weight decay is `optim.d_weight_decay`, and the EMA generator is
`optim.ema_decay` (its warm-up `optim.ema_start`, its standing statistics
`optim.ema_standing_stats`).

The adaptive schedule (the discriminator stop criteria) and ensembles of discriminators are
training tricks of M. Borisyak, "Generative Adversarial Networks" (lecture, Machine Learning and
Data Mining course, HSE), which also restricts D early in training by noise on its samples
(here, instance noise); ensembles: cf. Durugkar et al. 2017, "Generative Multi-Adversarial
Networks" (arXiv:1611.01673).
"""
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from gan_jax import augment, configs

FEATURE_MATCHING_MODES = ('none', 'replace', 'auxiliary')


class Adaptive(NamedTuple):
  """The stop criteria on the game's value L (D's objective) of Borisyak's GAN lecture (HSE,
  training tricks): D trains until L <= c1, then G until L >= c2."""
  c1: float         # D trains while L > c1
  c2: float         # then G trains while L < c2
  max_d_steps: int  # caps on the two inner loops (each runs at least once)
  max_g_steps: int


class Ada(NamedTuple):
  """ADA's settings (Karras et al. 2020, "Training Generative Adversarial Networks with Limited
  Data", arXiv:2006.06676, sec. 3): p is adjusted every `interval` iterations by sign(r_t -
  target) · (real images seen since) / speed_images."""
  target: float = 0.6
  interval: int = 4
  speed_images: int = 500_000
  p_init: float = 0.0


class Consistency(NamedTuple):
  """The weights of consistency regularisation (Zhao et al. 2021, "Improved Consistency
  Regularization for GANs", arXiv:2002.04724): bCR on real and fake images under the DiffAugment
  policies `bcr_augment`, zCR on latents perturbed by N(0, zcr_sigma²); 0 switches a term off."""
  bcr_real: float = 0.0
  bcr_fake: float = 0.0
  bcr_augment: str = 'translation'
  zcr_dis: float = 0.0
  zcr_gen: float = 0.0
  zcr_sigma: float = 0.03


class TopK(NamedTuple):
  """Top-k training of G (Sinha et al. 2020, "Top-k Training of GANs: Improving GAN
  Performance by Throwing Away Bad Samples", arXiv:2002.06224): k = max(B·γ^⌊t/every⌋, ν·B)."""
  gamma: float = 0.99
  min_fraction: float = 0.5
  decay_every: int = 1_000


class PathLength(NamedTuple):
  """StyleGAN2's path-length regularisation (Karras et al. 2020, "Analyzing and Improving the
  Image Quality of StyleGAN", arXiv:1912.04958, sec. 3.2; the paper's weight 2, every 4
  minibatches, running-mean decay 0.01, on half the batch)."""
  weight: float = 2.0
  every: int = 4
  decay: float = 0.01
  batch_shrink: int = 2


class Tricks(NamedTuple):
  """The static trick settings a `steps.GAN` closes over; the defaults are all off."""
  instance_noise: float = 0.0     # σ₀ of the instance noise
  noise_anneal_steps: int = 0     # iterations over which σ decays linearly to 0 (0: constant)
  label_smoothing: float = 1.0    # real-label target
  feature_matching: str = 'none'  # one of FEATURE_MATCHING_MODES
  feature_matching_weight: float = 1.0
  pack: int = 1
  unroll_steps: int = 0
  ensemble: tuple = ()            # hidden widths of each member
  adaptive: Optional[Adaptive] = None
  diffaugment: str = ''           # DiffAugment policies, comma-separated ('' = off)
  ada: Optional[Ada] = None
  lecam_weight: float = 0.0       # LeCam's λ (0 = off)
  lecam_decay: float = 0.99       # of its anchors
  consistency: Consistency = Consistency()  # all weights 0: off
  top_k: Optional[TopK] = None
  orthogonal: float = 0.0         # BigGAN's β on G's kernels (0 = off)
  pulling_away: float = 0.0       # EBGAN's λ_PT (0 = off)
  path_length: Optional[PathLength] = None


def instance_noise_std(sigma: float, anneal_steps: int, step) -> jax.Array:
  """σ(t) = σ₀ · max(0, 1 - t / anneal_steps), or σ₀ when anneal_steps = 0.

  Instance noise: Sønderby et al. 2017, "Amortised MAP Inference for Image Super-resolution"
  (arXiv:1610.04490), sec. 3.2; Arjovsky & Bottou 2017 (arXiv:1701.04862), sec. 3.1. Noise on
  both distributions makes their supports overlap, so D cannot be perfect and G's gradient does
  not vanish; annealing σ to 0 recovers the original problem.
  """
  if not anneal_steps:
    return jnp.asarray(sigma, jnp.float32)
  t = jnp.asarray(step, jnp.float32)
  return sigma * jnp.maximum(0.0, 1.0 - t / anneal_steps)


def add_instance_noise(x: jax.Array, std, key: jax.Array) -> jax.Array:
  """x + std · ε, ε ~ N(0, I): what D sees of a real or a fake batch under instance noise."""
  return x + std * jax.random.normal(key, x.shape, x.dtype)


def pack(x: jax.Array, m: int) -> jax.Array:
  """PacGAN packing: (B, ..., C) → (B/m, ..., m·C), m consecutive samples concatenated on the
  last axis (coordinates for vectors, channels for images); m = 1 is the identity.

  Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks"
  (arXiv:1712.04086), sec. 2: D maps m samples, all real or all fake, to one decision.
  """
  if m == 1:
    return x
  b = x.shape[0]
  x = x.reshape((b // m, m) + x.shape[1:])
  x = jnp.moveaxis(x, 1, -2)  # (B/m, ..., m, C)
  return x.reshape(x.shape[:-2] + (m * x.shape[-1],))


def feature_matching_loss(real_features, fake_features) -> jax.Array:
  """‖E f(x) - E f(G(z))‖₂², summed over feature layers (lists of (B, ...) arrays).

  Salimans et al. 2016, "Improved Techniques for Training GANs" (arXiv:1606.03498), sec. 3.1:
  G matches the mean of an intermediate layer f of D on real data instead of maximising D's
  output; D is trained as usual.
  """
  total = jnp.zeros(())
  for r, f in zip(real_features, fake_features):
    r = jnp.mean(r.reshape(r.shape[0], -1), axis=0)
    f = jnp.mean(f.reshape(f.shape[0], -1), axis=0)
    total = total + jnp.sum((r - f) ** 2)
  return total


def top_k_count(batch_size: int, step, gamma: float, min_fraction: float, every: int):
  """k = max(⌊B·γ^⌊t/every⌋⌋, ⌈ν·B⌉) at iteration t, as int32: the fakes G learns from under
  top-k training (Sinha et al. 2020, arXiv:2002.06224, sec. 3; their γ = 0.99 per epoch, ν = 0.5
  or 0.75). k = B at t = 0: the first iterations are the plain G step."""
  decayed = jnp.floor(batch_size * gamma ** (jnp.asarray(step, jnp.float32) // every) + 1e-6)
  return jnp.maximum(decayed, math.ceil(min_fraction * batch_size - 1e-9)).astype(jnp.int32)


def top_k_weights(scores: jax.Array, k) -> jax.Array:
  """(B,) weights: 1 for the k fakes with the highest critic scores (the ones D rates most
  real), 0 for the rest; exactly k ones even under ties (the earlier index wins). Not
  differentiated: the selection is a constant of G's loss."""
  scores = jax.lax.stop_gradient(scores)
  ranks = jnp.argsort(jnp.argsort(-scores, stable=True), stable=True)
  return (ranks < k).astype(scores.dtype)


def consistency_loss(a: jax.Array, b: jax.Array) -> jax.Array:
  """E_i ‖a_i - b_i‖², the squared distance summed over every axis but the batch's, averaged
  over the batch: the consistency terms of bCR and zCR (Zhao et al. 2021, arXiv:2002.04724,
  eqs. 1-3) between D's outputs (or G's images) on an input and on its transformed copy."""
  d = (a - b).reshape(a.shape[0], -1)
  return jnp.mean(jnp.sum(d * d, axis=-1))


def _positive_int(value, field: str, minimum: int) -> int:
  if int(value) != value or value < minimum:
    raise configs.ConfigError(f'config.tricks.{field}={value!r} must be an integer >= {minimum}')
  return int(value)


def from_config(config) -> Tricks:
  """Reads and checks config.tricks (absent fields keep their defaults: old configs still work).

  Checks the values only; build_gan checks how they compose with the objective and networks.
  """
  t = config.get('tricks', None) or {}
  noise = t.get('instance_noise', None) or {}
  std = float(noise.get('std', 0.0))
  if std < 0:
    raise configs.ConfigError(f'config.tricks.instance_noise.std={std} must be >= 0')
  anneal = _positive_int(noise.get('anneal_steps', 0), 'instance_noise.anneal_steps', 0)
  smoothing = float(t.get('label_smoothing', 1.0))
  if not 0.0 < smoothing <= 1.0:
    raise configs.ConfigError(f'config.tricks.label_smoothing={smoothing} must be in (0, 1] '
                              '(the real target; 1.0 = off)')
  fm = t.get('feature_matching', None) or {}
  fm_mode = fm.get('mode', 'none')
  if fm_mode not in FEATURE_MATCHING_MODES:
    raise configs.ConfigError(f'config.tricks.feature_matching.mode={fm_mode!r} is not known; '
                              f'valid choices: {", ".join(FEATURE_MATCHING_MODES)}')
  ensemble = tuple(tuple(int(w) for w in hidden) for hidden in t.get('ensemble', ()))
  if any(not hidden for hidden in ensemble):
    raise configs.ConfigError(f'config.tricks.ensemble={ensemble}: each member needs at least one '
                              'hidden layer, e.g. ((16,), (64, 64), (128, 128, 128))')
  a = t.get('adaptive', None) or {}
  adaptive = None
  if a.get('enabled', False):
    adaptive = Adaptive(float(a.get('c1', 1.0)), float(a.get('c2', 1.3)),
                        _positive_int(a.get('max_d_steps', 5), 'adaptive.max_d_steps', 1),
                        _positive_int(a.get('max_g_steps', 5), 'adaptive.max_g_steps', 1))
  policy = str(t.get('diffaugment', '') or '')
  names = [n.strip() for n in policy.split(',') if n.strip()]
  for name in names:
    configs.lookup(augment.DIFFAUGMENT_POLICIES, 'tricks.diffaugment', name)
  ada_config = t.get('ada', None) or {}
  ada = None
  if ada_config.get('enabled', False):
    target, p_init = float(ada_config.get('target', 0.6)), float(ada_config.get('p_init', 0.0))
    if not 0.0 <= target < 1.0:
      raise configs.ConfigError(f'config.tricks.ada.target={target} must be in [0, 1) (the '
                                "paper's 0.6: E[sign D(x_real)] above it means D overfits)")
    if not 0.0 <= p_init <= 1.0:
      raise configs.ConfigError(f'config.tricks.ada.p_init={p_init} must be in [0, 1]')
    ada = Ada(target, _positive_int(ada_config.get('interval', 4), 'ada.interval', 1),
              _positive_int(ada_config.get('speed_images', 500_000), 'ada.speed_images', 1),
              p_init)
  lecam = t.get('lecam', None) or {}
  lecam_weight, lecam_decay = float(lecam.get('weight', 0.0)), float(lecam.get('decay', 0.99))
  if lecam_weight < 0:
    raise configs.ConfigError(f'config.tricks.lecam.weight={lecam_weight} must be >= 0 (0 = off)')
  if not 0.0 <= lecam_decay < 1.0:
    raise configs.ConfigError(f'config.tricks.lecam.decay={lecam_decay} must be in [0, 1)')
  c = t.get('consistency', None) or {}
  weights = {f: float(c.get(f, 0.0)) for f in ('bcr_real', 'bcr_fake', 'zcr_dis', 'zcr_gen')}
  for field, value in weights.items():
    if value < 0:
      raise configs.ConfigError(f'config.tricks.consistency.{field}={value} must be >= 0 '
                                '(0 = off)')
  sigma = float(c.get('zcr_sigma', 0.03))
  if sigma <= 0:
    raise configs.ConfigError(f'config.tricks.consistency.zcr_sigma={sigma} must be > 0')
  bcr_names = [p.strip() for p in str(c.get('bcr_augment', 'translation')).split(',') if p.strip()]
  for name in bcr_names:
    configs.lookup(augment.DIFFAUGMENT_POLICIES, 'tricks.consistency.bcr_augment', name)
  if (weights['bcr_real'] or weights['bcr_fake']) and not bcr_names:
    raise configs.ConfigError("config.tricks.consistency.bcr_augment='' : bCR needs a "
                              f'transformation; valid: {", ".join(augment.DIFFAUGMENT_POLICIES)}')
  consistency = Consistency(bcr_augment=','.join(bcr_names), zcr_sigma=sigma, **weights)
  tk = t.get('top_k', None) or {}
  top_k = None
  if tk.get('enabled', False):
    gamma, nu = float(tk.get('gamma', 0.99)), float(tk.get('min_fraction', 0.5))
    if not 0.0 < gamma <= 1.0:
      raise configs.ConfigError(f'config.tricks.top_k.gamma={gamma} must be in (0, 1]')
    if not 0.0 < nu <= 1.0:
      raise configs.ConfigError(f'config.tricks.top_k.min_fraction={nu} must be in (0, 1]')
    top_k = TopK(gamma, nu, _positive_int(tk.get('decay_every', 1_000), 'top_k.decay_every', 1))
  orthogonal, pulling = float(t.get('orthogonal', 0.0)), float(t.get('pulling_away', 0.0))
  for field, value in (('orthogonal', orthogonal), ('pulling_away', pulling)):
    if value < 0:
      raise configs.ConfigError(f'config.tricks.{field}={value} must be >= 0 (0 = off)')
  pl = t.get('path_length', None) or {}
  path_length = None
  if float(pl.get('weight', 0.0)) < 0:
    raise configs.ConfigError(f'config.tricks.path_length.weight={pl.get("weight")} must be >= 0 '
                              '(0 = off)')
  if float(pl.get('weight', 0.0)) > 0:
    decay = float(pl.get('decay', 0.01))
    if not 0.0 < decay <= 1.0:
      raise configs.ConfigError(f'config.tricks.path_length.decay={decay} must be in (0, 1]')
    path_length = PathLength(float(pl['weight']),
                             _positive_int(pl.get('every', 4), 'path_length.every', 1), decay,
                             _positive_int(pl.get('batch_shrink', 2), 'path_length.batch_shrink',
                                           1))
  return Tricks(
      instance_noise=std, noise_anneal_steps=anneal, label_smoothing=smoothing,
      feature_matching=fm_mode, feature_matching_weight=float(fm.get('weight', 1.0)),
      pack=_positive_int(t.get('pack', 1), 'pack', 1),
      unroll_steps=_positive_int(t.get('unroll_steps', 0), 'unroll_steps', 0),
      ensemble=ensemble, adaptive=adaptive, diffaugment=','.join(names), ada=ada,
      lecam_weight=lecam_weight, lecam_decay=lecam_decay, consistency=consistency,
      top_k=top_k, orthogonal=orthogonal, pulling_away=pulling, path_length=path_length)

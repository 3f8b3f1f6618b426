"""The training steps: pure functions of (state, batch, key), composed into one jitted call.

* `d_step`: one discriminator update on a real batch and a fresh fake batch (G frozen);
* `g_step`: one generator update against the current discriminator (D frozen);
* `train_iteration`: n_critic D steps, one G step, the EMA update; keys: fold_in(loop_key, step);
  under the adaptive schedule, `lax.while_loop`s of D steps then G steps instead;
* `train_call`: `num_steps` iterations fused in one `lax.scan`, so tiny models are not dominated by
  dispatch. This is the function the loop jits (with shardings and donation, in train.py).

Everything static (modules, optimizers, objective, penalty, sizes, tricks) is bound in a `GAN` spec.
The tricks of `gan_jax.tricks` enter here: what D sees of a batch (`d_inputs`: instance noise, then
PacGAN packing), ensembles (one loss per member, summed), feature matching and the unrolled
discriminator in G's loss. Their random draws use keys derived with `fold_in`, so with every trick
off the steps draw exactly what they drew before the tricks existed.
"""
import functools
import operator
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import augment, configs, experiment, layers, losses, models, penalties, precision
from gan_jax import stylegan2
from gan_jax import state as state_lib
from gan_jax import tricks as tricks_lib


G_NOISE = 5  # fold_in(step key, G_NOISE): the key of a G call's own draws (`g_rngs`)


class GAN(NamedTuple):
  """The static half of a GAN experiment: what the pure steps close over."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  objective: losses.Objective
  penalty: penalties.Penalty
  penalty_weight: float
  penalty_every: int    # lazy regularisation: the penalty every k iterations, times k
  z_dim: int
  num_classes: int      # > 0: G and D are class-conditional (labels sampled uniformly for fakes)
  acgan: bool           # D has an auxiliary classifier head: outputs (B, 1 + num_classes)
  batch_size: int       # global batch of one D (or G) update
  n_critic: int
  ema_decay: float
  ema_start: int        # the EMA copies G's parameters before this iteration (warm-up)
  data_shape: tuple
  sample_data: Optional[Callable[[jax.Array, int], jax.Array]]  # in-jit data source, or None
  shard_batch: Callable[[jax.Array], jax.Array] = lambda x: x     # batch-axis sharding constraint
  tricks: tricks_lib.Tricks = tricks_lib.Tricks()                 # all off by default
  d_mixes_examples: bool = False  # D has cross-example layers (minibatch discrimination)
  compute_dtype: jnp.dtype = jnp.float32  # of the networks' arithmetic (config.train.dtype)
  standing_stats: int = 0  # batches that recompute the EMA G's BatchNorm statistics (0: off)
  d_scalar: bool = True    # D gives one score per example (False: an embedding, as MMD-GAN's)
  w_truncation: bool = False  # the truncation trick acts on G's w (StyleGAN), not on z
  ema_rampup: float = 0.0  # the EMA's half-life capped at ema_rampup · step (0: off)


def build_gan(config, data_shape, sample_data=None, shard_batch=lambda x: x,
              num_classes: int = 0) -> GAN:
  """Resolves the names in `config` into a GAN spec; a bad name raises configs.ConfigError.

  `num_classes` is the data's; the networks get it when config.model.g/d ask for conditioning.
  """
  tricks = tricks_lib.from_config(config)
  parts = experiment.adversarial_parts(config, *_updates(tricks, config.optim.n_critic))
  if tricks.label_smoothing != 1.0:
    parts['objective'] = configs.call(
        losses.one_sided_label_smoothing,
        f'tricks.label_smoothing (with objective {config.objective.name!r})', parts['objective'],
        tricks.label_smoothing)
  m, o = config.model, config.optim
  g_cls = configs.lookup(models.GENERATORS, 'model.generator', m.generator)
  d_cls = configs.lookup(models.DISCRIMINATORS, 'model.discriminator', m.discriminator)
  conditional = any(m[net].get('conditioning', 'none') != 'none' for net in ('g', 'd'))
  if conditional and num_classes < 2:
    raise configs.ConfigError(f'config.model: conditioning needs a labelled dataset, and '
                              f'{config.data.name!r} has {num_classes} classes')
  num_classes = num_classes if conditional else 0
  acgan = m.d.get('conditioning', 'none') == 'acgan'
  _check_tricks(tricks, config, d_cls, conditional, acgan, tuple(data_shape), parts['objective'])
  if tricks.path_length is not None and m.generator not in models.STYLE_GENERATORS:
    raise configs.ConfigError(
        f'config.tricks.path_length.weight={tricks.path_length.weight} needs a generator with a '
        f'mapping network, not {m.generator!r}; valid choices: '
        f'{", ".join(models.STYLE_GENERATORS)}')
  extra = {'num_classes': num_classes} if conditional else {}
  impl = configs.call(layers.resolve_impl, 'model.conv_impl', m.get('conv_impl', 'auto'))
  conv = lambda cls: ({'conv_impl': impl} if 'conv_impl' in cls.__dataclass_fields__ else {})
  generator = configs.construct(g_cls, 'model.g', data_shape=tuple(data_shape), **extra,
                                **conv(g_cls), **m.g)
  discriminator = configs.construct(d_cls, 'model.d', **extra, **conv(d_cls), **m.d)
  if tricks.ensemble:  # members differ in their hidden widths (MLPs) or channels (image Ds)
    width = 'hidden' if 'hidden' in d_cls.__dataclass_fields__ else 'channels'
    discriminator = models.Ensemble(tuple(
        configs.construct(d_cls, 'model.d', **extra, **conv(d_cls),
                          **{**m.d, width: member if width == 'hidden' else member[0]})
        for member in tricks.ensemble))
  return GAN(
      generator=generator, discriminator=discriminator, z_dim=int(m.z_dim),
      num_classes=num_classes, acgan=acgan, batch_size=int(config.data.batch_size),
      n_critic=int(o.n_critic), data_shape=tuple(data_shape), sample_data=sample_data,
      shard_batch=shard_batch, tricks=tricks,
      d_mixes_examples=bool(m.d.get('minibatch_discrimination', 0)),
      standing_stats=int(o.get('ema_standing_stats', 0)), d_scalar=_d_scalar(config),
      w_truncation=m.generator in models.STYLE_GENERATORS, **parts)


def _d_scalar(config) -> bool:
  """Whether config.model's D gives one score per example (not the identity or an embedding)."""
  return not (config.model.discriminator == 'identity' or config.model.d.get('embedding', 0))


def _updates(tricks, n_critic: int) -> tuple:
  """(G updates, D updates) per iteration, at most (the adaptive loops run up to their caps)."""
  a = tricks.adaptive
  return (a.max_g_steps, a.max_d_steps) if a else (1, int(n_critic))


def learning_rates(gan: GAN, config, step: int) -> dict:
  """{'g_lr', 'd_lr'} of the optimizers after `step` iterations (n_critic D updates and one G
  update each; under the adaptive schedule, as if each loop ran to its cap), for the logs."""
  return experiment.learning_rates(config, step, *_updates(gan.tricks, gan.n_critic))


def _check_tricks(tricks, config, d_cls, conditional: bool, acgan: bool,
                  data_shape: tuple, objective: losses.Objective) -> None:
  """ConfigErrors for tricks that do not compose with the chosen networks, data or batch."""
  bcr = bool(tricks.consistency.bcr_real or tricks.consistency.bcr_fake)
  for name, on in (('diffaugment', bool(tricks.diffaugment)), ('ada', tricks.ada is not None),
                   ('consistency.bcr_real/bcr_fake', bcr)):
    if on and len(data_shape) != 3:
      raise configs.ConfigError(f'config.tricks.{name} augments images, and '
                                f'{config.data.name!r} is not an image dataset')
  if tricks.ada is not None and tricks.adaptive is not None:
    raise configs.ConfigError('config.tricks.ada does not compose with config.tricks.adaptive '
                              "(ADA counts D's updates per iteration); switch one off")
  if tricks.ada is not None and data_shape[-1] not in (1, 3):
    raise configs.ConfigError(f'config.tricks.ada: its colour group needs 1 or 3 channels, '
                              f'not {data_shape[-1]}')
  if tricks.pack > 1:
    if conditional:
      raise configs.ConfigError(f'config.tricks.pack={tricks.pack}: packing is for unconditional '
                                'GANs (a pack would mix labels); set config.tricks.pack=1')
    if config.data.batch_size % tricks.pack:
      raise configs.ConfigError(f'config.tricks.pack={tricks.pack} must divide '
                                f'config.data.batch_size={config.data.batch_size}')
  if tricks.ensemble:
    fields = getattr(d_cls, '__dataclass_fields__', {})
    if 'hidden' not in fields and 'channels' not in fields:
      names = [n for n, c in models.DISCRIMINATORS.items()
               if {'hidden', 'channels'} & set(getattr(c, '__dataclass_fields__', {}))]
      raise configs.ConfigError(
          f'config.tricks.ensemble needs a discriminator with hidden widths or channels, not '
          f'{config.model.discriminator!r}; valid choices: {", ".join(sorted(names))}')
    if 'hidden' not in fields and any(len(member) != 1 for member in tricks.ensemble):
      raise configs.ConfigError(
          f'config.tricks.ensemble={tricks.ensemble}: members of an image D are given by their '
          'channels, one number each, e.g. ((16,), (32,), (64,))')
    if acgan:
      raise configs.ConfigError('config.tricks.ensemble does not compose with AC-GAN '
                                "conditioning; set config.model.d.conditioning to another choice")
  if not _d_scalar(config):
    what = ('the identity' if config.model.discriminator == 'identity' else
            f'an embedding of {config.model.d.embedding}')
    if config.objective.name != 'mmd':
      raise configs.ConfigError(
          f'config.model: D outputs {what}, which only the mmd objective compares; set '
          'config.objective.name=mmd or config.model.d.embedding=0')
    on = [name for name, is_on in (
        ('tricks.ada', tricks.ada is not None), ('tricks.lecam.weight', tricks.lecam_weight > 0),
        ('tricks.top_k', tricks.top_k is not None), ('tricks.adaptive', tricks.adaptive is not None),
        ('tricks.ensemble', bool(tricks.ensemble)),
        ('tricks.label_smoothing', tricks.label_smoothing != 1.0)) if is_on]
    if config.penalty.name not in ('none', 'weight_clipping'):
      on.append(f'penalty.name={config.penalty.name!r}')
    if on:
      raise configs.ConfigError(
          f'config.{on[0]} needs one D score per example, and D outputs {what} (MMD-GAN); '
          'switch it off (of the penalties, none and weight_clipping apply)')
  if tricks.pulling_away and config.model.discriminator not in models.AUTOENCODER_DISCRIMINATORS:
    raise configs.ConfigError(
        f'config.tricks.pulling_away acts on the code of an autoencoder D, not on '
        f'{config.model.discriminator!r}; valid choices: '
        f'{", ".join(models.AUTOENCODER_DISCRIMINATORS)}')
  if tricks.top_k is not None and (config.objective.name == 'ebgan' or objective.g_uses_real):
    raise configs.ConfigError(
        f'config.tricks.top_k ranks the fakes by their own score and needs an objective whose G '
        f'loss is a mean over fakes where higher is more real, not {config.objective.name!r}; '
        'valid: minimax, non_saturating, wasserstein, hinge, least_squares')
  if (tricks.feature_matching != 'none' and
      config.model.discriminator not in models.FEATURE_DISCRIMINATORS):
    raise configs.ConfigError(
        f'config.tricks.feature_matching needs a discriminator that exposes its features, not '
        f'{config.model.discriminator!r}; valid choices: '
        f'{", ".join(models.FEATURE_DISCRIMINATORS)}')


def create_state(gan: GAN, key: jax.Array) -> state_lib.GANState:
  """Initialises both networks, their optimizers and the EMA copy of G."""
  labels = jnp.zeros((1,), jnp.int32) if gan.num_classes else None
  state = state_lib.init_gan_state(key, gan.generator, gan.g_tx, jnp.zeros((1, gan.z_dim)),
                                   gan.discriminator, gan.d_tx,
                                   jnp.zeros((1,) + d_input_shape(gan)), labels)
  aux = {}
  if gan.tricks.ada is not None:
    aux |= {'ada_p': jnp.float32(gan.tricks.ada.p_init), 'ada_sign_sum': jnp.float32(0),
            'ada_sign_count': jnp.int32(0)}
  if gan.tricks.lecam_weight:
    aux |= {'lecam_real': jnp.float32(0), 'lecam_fake': jnp.float32(0)}
  if gan.tricks.path_length is not None:
    aux |= {'pl_mean': jnp.float32(0)}
  return state.replace(aux=aux)


def apply_net(module, params, batch_stats, x, labels, train: bool, dtype=jnp.float32,
              key=None):
  """Runs `module` computing in `dtype` (gan_jax/precision.py); returns (float32 output,
  batch_stats), the statistics updated when training. `key` feeds the rng streams of a
  stochastic G (`g_rngs`); networks that draw nothing ignore it."""
  return precision.apply(module, params, batch_stats, x, labels, train, dtype,
                         rngs=None if key is None else g_rngs(key))[:2]


def g_rngs(key) -> dict:
  """The flax rng streams of a G's own randomness, from one key: StyleGAN2's per-pixel noise
  inputs ('noise') and style-mixing draws ('mixing'). In training every G call gets a fresh key;
  inference calls get none, and StyleGAN2 then uses its fixed noise buffers (as its reference's
  generate.py, noise_mode='const'), so a sample is a function of its latent alone."""
  return {'noise': jax.random.fold_in(key, 0), 'mixing': jax.random.fold_in(key, 1)}


def d_input_shape(gan: GAN) -> tuple:
  """The shape of one input of D: the data's, with m samples on the last axis under packing."""
  return gan.data_shape[:-1] + (gan.data_shape[-1] * gan.tricks.pack,)


def d_inputs(gan: GAN, x, step, key, ada_p=None) -> jax.Array:
  """What D sees of a batch x (B, *data_shape): ADA's augmentation at probability `ada_p`,
  DiffAugment's policies, instance noise at the step's σ, then packing."""
  t = gan.tricks
  if t.ada is not None:
    x = augment.ada_augment(jax.random.fold_in(key, 1), x, ada_p)
  if t.diffaugment:
    x = augment.diffaugment(jax.random.fold_in(key, 2), x, t.diffaugment)
  if t.instance_noise:
    std = tricks_lib.instance_noise_std(t.instance_noise, t.noise_anneal_steps, step)
    x = tricks_lib.add_instance_noise(x, std, key)
  return tricks_lib.pack(x, t.pack)


def run_d(gan: GAN, params, batch_stats, x, labels, train: bool, features: bool = False):
  """D on its inputs x (already through `d_inputs`): (out, class_logits, stats, features).

  out: (N,), or (N, K) for an ensemble of K; class_logits: (N, C) under AC-GAN, else None;
  stats: updated when training; features: the feature arrays D sows ([] unless asked).
  """
  out, stats, collected = precision.apply(gan.discriminator, params, batch_stats, x, labels,
                                          train, gan.compute_dtype,
                                          ('intermediates',) if features else ())
  feats = jax.tree.leaves(collected['intermediates']) if 'intermediates' in collected else []
  if gan.acgan:
    return out[:, 0], out[:, 1:], stats, feats
  return out, None, stats, feats


def discriminate(gan: GAN, params, batch_stats, x, labels, train: bool):
  """D's output for each example of x (B, *data_shape): (out (B,), class logits or None, stats).

  One value per example even where training judges batches: under packing an example is judged
  as a pack of m copies of itself, an ensemble's members are averaged, and a D that mixes
  examples (minibatch discrimination) judges each example alone (its stats are then not
  updated). With none of these tricks it is D on x. Used for plots of D.
  """
  m = gan.tricks.pack
  x = jnp.concatenate([x] * m, axis=-1) if m > 1 else x
  if gan.d_mixes_examples:
    def one(xi, li):
      li = None if li is None else li[None]
      out, cls, _, _ = run_d(gan, params, batch_stats, xi[None], li, train)
      return out[0], (None if cls is None else cls[0])
    (out, cls), stats = jax.vmap(one)(x, labels), batch_stats
  else:
    out, cls, stats, _ = run_d(gan, params, batch_stats, x, labels, train)
  if gan.tricks.ensemble:
    out = jnp.mean(out, axis=-1)
  return out, cls, stats


def _members(gan: GAN, out) -> list:
  """D's output as a list of one output per discriminator (one, unless D is an ensemble)."""
  if gan.tricks.ensemble:
    return [out[..., k] for k in range(len(gan.tricks.ensemble))]
  return [out]


def _member_fn(gan: GAN, d_fn, k: int):
  return (lambda x: d_fn(x)[..., k]) if gan.tricks.ensemble else d_fn


def _total(values):
  """The sum of a non-empty list of arrays (the one value itself when there is one)."""
  return functools.reduce(operator.add, values)


def sample_z(gan: GAN, key, n: int) -> jax.Array:
  return gan.shard_batch(jax.random.normal(key, (n, gan.z_dim)))


def sample_labels(gan: GAN, key, n: int):
  """Uniform class labels for the fakes of a conditional GAN, else None."""
  if not gan.num_classes:
    return None
  return gan.shard_batch(jax.random.randint(key, (n,), 0, gan.num_classes))


def generate(gan: GAN, g_params, g_batch_stats, z, labels=None, w_psi=None) -> jax.Array:
  """G(z, labels) in inference mode (BatchNorm uses running averages). `w_psi` (a G with
  gan.w_truncation only; None: none): the style G's truncation, w ← w_avg + ψ (w − w_avg)."""
  if w_psi is None:
    return apply_net(gan.generator, g_params, g_batch_stats, z, labels, False,
                     gan.compute_dtype)[0]
  if not gan.w_truncation:
    raise ValueError('w_psi: this generator has no w space to truncate')
  return precision.apply(gan.generator, g_params, g_batch_stats, z, labels, False,
                         gan.compute_dtype, truncation_psi=float(w_psi))[0]


def standing_stats(gan: GAN, g_params, g_batch_stats, key, num_batches: int):
  """G's BatchNorm statistics recomputed for `g_params` ("standing statistics", Brock et al.
  2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis", arXiv:1809.11096,
  Sec. 3.1 and App. C): `num_batches` forward passes in training mode over fresh latents (batch
  gan.batch_size, batch j from fold_in(key, j)), each folding that batch's moments into the
  running averages. The EMA of G's parameters otherwise meets the statistics of the raw G's
  activations, which it does not produce. A G without BatchNorm is returned as it is.
  """
  if not jax.tree.leaves(g_batch_stats):
    return g_batch_stats

  def one(stats, j):
    k_z, k_y = jax.random.split(jax.random.fold_in(key, j))
    z, labels = sample_z(gan, k_z, gan.batch_size), sample_labels(gan, k_y, gan.batch_size)
    return apply_net(gan.generator, g_params, stats, z, labels, True, gan.compute_dtype,
                     jax.random.fold_in(k_z, G_NOISE))[1], None

  return jax.lax.scan(one, g_batch_stats, jnp.arange(num_batches, dtype=jnp.uint32))[0]


def _class_loss(class_logits, labels):
  """AC-GAN's auxiliary classifier loss (Odena et al. 2017, arXiv:1610.09585): E[-log p(c|x)]."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def d_update(gan: GAN, d: state_lib.NetState, real, fake, real_labels, fake_labels,
             pen_key, noise_key, step, aux=None, fake_perturbed=None):
  """One optimizer step of D on a real and a fake batch: (new D state, metrics, new aux).

  Minimises Σ_members objective.d_loss(D(x), D(G(z))) + weight·penalty (+ λ·LeCam, + bCR's and
  zCR's consistency terms), on D's inputs (the augmentations' too: the penalties see what D
  sees). `aux` is the state's aux (ADA's p is read from it, LeCam's anchors updated in it);
  `fake_perturbed` is G(z + Δz) for zCR (None without it). Pure and differentiable in `fake`:
  d_step stops that gradient, the unrolled GAN follows it.
  """
  aux = {} if aux is None else aux
  real_key, fake_key = jax.random.split(noise_key)
  real_in = d_inputs(gan, real, step, real_key, aux.get('ada_p'))
  fake_in = d_inputs(gan, fake, step, fake_key, aux.get('ada_p'))
  t = gan.tricks

  def loss_fn(params):
    real_out, real_cls, stats, _ = run_d(gan, params, d.batch_stats, real_in, real_labels, True)
    fake_out, fake_cls, stats, _ = run_d(gan, params, stats, fake_in, fake_labels, True)

    def d_fn(x):  # D on a batch of its inputs (real, fake or interpolated), with the real labels
      return run_d(gan, params, stats, x, real_labels, True)[0]

    objectives = [gan.objective.d_loss(r, f)
                  for r, f in zip(_members(gan, real_out), _members(gan, fake_out))]
    objective = _total(objectives)
    penalty = penalties.lazy(
        lambda: _total([gan.penalty.term(_member_fn(gan, d_fn, k), real_in, fake_in, pen_key)
                        for k in range(len(objectives))]), step, gan.penalty_every)
    loss = objective + gan.penalty_weight * penalty
    new_aux = aux
    metrics = {'d_loss': loss, 'd_objective': objective, 'd_penalty': penalty,
               'd_real': jnp.mean(real_out), 'd_fake': jnp.mean(fake_out)}
    if t.lecam_weight:  # the anchors updated with this batch, then the penalty toward them
      anchors = penalties.lecam_anchors((aux['lecam_real'], aux['lecam_fake']), real_out,
                                        fake_out, t.lecam_decay)
      new_aux = aux | {'lecam_real': anchors[0], 'lecam_fake': anchors[1]}
      metrics['d_lecam'] = penalties.lecam_penalty(real_out, fake_out, anchors)
      loss = loss + t.lecam_weight * metrics['d_lecam']
    cr = t.consistency
    if cr.bcr_real or cr.bcr_fake:  # D consistent under bCR's transformation T of its inputs
      bcr_real, bcr_fake = jax.random.split(jax.random.fold_in(noise_key, 2))
      d_of_t = lambda x, key, labels: run_d(gan, params, stats, augment.diffaugment(
          key, x, cr.bcr_augment), labels, True)[0]
      metrics['d_bcr'] = (
          cr.bcr_real * tricks_lib.consistency_loss(real_out, d_of_t(real_in, bcr_real,
                                                                     real_labels)) +
          cr.bcr_fake * tricks_lib.consistency_loss(fake_out, d_of_t(fake_in, bcr_fake,
                                                                     fake_labels)))
      loss = loss + metrics['d_bcr']
    if cr.zcr_dis and fake_perturbed is not None:  # D consistent under zCR's latent noise
      perturbed_out = run_d(gan, params, stats, d_inputs(gan, fake_perturbed, step, fake_key,
                                                         aux.get('ada_p')), fake_labels, True)[0]
      metrics['d_zcr'] = tricks_lib.consistency_loss(fake_out, perturbed_out)
      loss = loss + cr.zcr_dis * metrics['d_zcr']
    metrics['d_loss'] = loss
    if gan.tricks.ensemble:  # d_objective is their sum: the ensemble's measure of progress
      metrics.update({f'd_objective_{k}': v for k, v in enumerate(objectives)})
    if gan.tricks.ada is not None:  # ADA's overfitting heuristic r_t, before the update
      metrics['ada_rt'] = augment.overfitting_heuristic(real_out)
    if gan.acgan:
      metrics['d_class_loss'] = (_class_loss(real_cls, real_labels) +
                                 _class_loss(fake_cls, fake_labels))
      loss = loss + metrics['d_class_loss']
      metrics['d_loss'] = loss
    return loss, (stats, metrics, new_aux)

  grads, (stats, metrics, aux) = jax.grad(loss_fn, has_aux=True)(d.params)
  d = d.apply_gradients(gan.d_tx, grads, stats)
  metrics['d_grad_norm'] = optax.tree.norm(grads)
  return d, metrics, aux


def d_step(gan: GAN, state: state_lib.GANState, batch: dict, key: jax.Array):
  """One D update: minimise objective.d_loss(D(x), D(G(z))) + weight·penalty, G frozen.

  `batch` holds 'x' (B, *data_shape) and, for a conditional GAN, 'label' (B,).
  """
  z_key, label_key, pen_key = jax.random.split(key, 3)
  real = gan.shard_batch(batch['x'])
  n = real.shape[0]
  real_labels = batch.get('label') if gan.num_classes else None
  fake_labels = sample_labels(gan, label_key, n)
  z = sample_z(gan, z_key, n)
  generate_fakes = lambda z: jax.lax.stop_gradient(apply_net(
      gan.generator, state.g.params, state.g.batch_stats, z, fake_labels, True,
      gan.compute_dtype, jax.random.fold_in(key, G_NOISE))[0])
  fake = generate_fakes(z)
  perturbed = None
  if gan.tricks.consistency.zcr_dis:  # zCR: G(z + Δz), Δz ~ N(0, σ²)
    perturbed = generate_fakes(zcr_latents(gan, z, jax.random.fold_in(key, 3)))
  d, metrics, aux = d_update(gan, state.d, real, fake, real_labels, fake_labels, pen_key,
                             jax.random.fold_in(key, 1), state.step, state.aux, perturbed)
  return state.replace(d=d, aux=aux), metrics


def unrolled_discriminator(gan: GAN, d: state_lib.NetState, g_params, g_batch_stats, real,
                           real_labels, key, step, num_steps: int,
                           aux=None) -> state_lib.NetState:
  """D after `num_steps` updates (optimizer state included) against G(g_params), as a
  differentiable function of g_params: the surrogate D of the unrolled GAN.

  Metz et al. 2017, "Unrolled Generative Adversarial Networks" (arXiv:1611.02163), eqs. 7-10:
  G minimises f(θ_G, θ_D^K(θ_G, θ_D)), where θ_D^K is K steps of D's optimizer, and the gradient
  flows through those steps (how D would react to G's move). Each step draws fresh z; the real
  batch is the G step's own. The surrogate's own aux updates (LeCam's anchors) are dropped.
  """
  n = real.shape[0]

  def body(d, key):
    z_key, label_key, pen_key, noise_key = jax.random.split(key, 4)
    labels = sample_labels(gan, label_key, n)
    fake, _ = apply_net(gan.generator, g_params, g_batch_stats, sample_z(gan, z_key, n), labels,
                        True, gan.compute_dtype, jax.random.fold_in(z_key, G_NOISE))
    d, _, _ = d_update(gan, d, real, fake, real_labels, labels, pen_key, noise_key, step, aux)
    return d, None

  d, _ = jax.lax.scan(body, d, jax.random.split(key, num_steps))
  return d


def g_step(gan: GAN, state: state_lib.GANState, batch: dict, key: jax.Array):
  """One G update: minimise objective.g_loss(D(G(z))), D frozen. `batch` sets the batch size and
  gives the real samples that relativistic losses, feature matching and unrolling compare with.

  Under feature matching the loss is (or gains) weight·‖E f(x) - E f(G(z))‖²; under unrolling D
  is the surrogate `unrolled_discriminator`; an ensemble's member losses are summed.
  """
  z_key, label_key = jax.random.split(key)
  n = batch['x'].shape[0]
  z, labels = sample_z(gan, z_key, n), sample_labels(gan, label_key, n)
  t = gan.tricks
  use_features = t.feature_matching != 'none'
  needs_real = (gan.objective.g_uses_real or use_features or t.unroll_steps > 0 or
                t.adaptive is not None)
  real_key, fake_key = jax.random.split(jax.random.fold_in(key, 1))
  ada_p = state.aux.get('ada_p')
  if needs_real:
    real = gan.shard_batch(batch['x'])
    real_labels = batch.get('label') if gan.num_classes else None
    real_in = d_inputs(gan, real, state.step, real_key, ada_p)

  def loss_fn(params):
    fake, stats = apply_net(gan.generator, params, state.g.batch_stats, z, labels, True,
                            gan.compute_dtype, jax.random.fold_in(key, G_NOISE))
    d = state.d
    if t.unroll_steps:
      d = unrolled_discriminator(gan, state.d, params, state.g.batch_stats, real, real_labels,
                                 jax.random.fold_in(key, 2), state.step, t.unroll_steps,
                                 state.aux)
    fake_out, fake_cls, _, fake_feats = run_d(gan, d.params, d.batch_stats,
                                              d_inputs(gan, fake, state.step, fake_key, ada_p),
                                              labels, True, use_features or t.pulling_away > 0)
    fake_members = _members(gan, fake_out)
    real_members = [None] * len(fake_members)
    if needs_real:
      real_out, _, _, real_feats = run_d(gan, d.params, d.batch_stats, real_in, real_labels,
                                         True, use_features)
      real_members = _members(gan, real_out)
    adversarial = _total([g_objective(gan, f, r, state.step)
                          for f, r in zip(fake_members, real_members)])
    loss, metrics = adversarial, {}
    if t.top_k is not None:
      metrics['g_top_k'] = top_k(gan, fake_members[0].shape[0], state.step)
    if use_features:
      matching = tricks_lib.feature_matching_loss(real_feats, fake_feats)
      weighted = t.feature_matching_weight * matching
      loss = weighted if t.feature_matching == 'replace' else adversarial + weighted
      metrics.update(g_adversarial=adversarial, g_feature_matching=matching)
    if t.adaptive is not None:  # the game's value, D's objective, on these fakes
      metrics['g_d_objective'] = _total([gan.objective.d_loss(r, f)
                                         for r, f in zip(real_members, fake_members)])
    if t.consistency.zcr_gen:  # zCR: G pushed to vary with its latent (a minus: diversity)
      perturbed, _ = apply_net(gan.generator, params, state.g.batch_stats,
                               zcr_latents(gan, z, jax.random.fold_in(key, 3)), labels, True,
                               gan.compute_dtype, jax.random.fold_in(key, G_NOISE))
      metrics['g_zcr'] = tricks_lib.consistency_loss(fake, perturbed)
      loss = loss - t.consistency.zcr_gen * metrics['g_zcr']
    if t.pulling_away:  # EBGAN's PT term on the encoder codes of the fakes
      metrics['g_pulling_away'] = losses.pulling_away(fake_feats[-1])
      loss = loss + t.pulling_away * metrics['g_pulling_away']
    if t.orthogonal:
      metrics['g_orthogonal'] = penalties.orthogonal_regularization(params)
      loss = loss + t.orthogonal * metrics['g_orthogonal']
    aux = state.aux
    if t.path_length is not None:
      penalty, aux = path_length_term(gan, params, state.g.batch_stats, z, labels,
                                      jax.random.fold_in(key, 6), state.step, state.aux)
      metrics['g_path_length'] = penalty
      metrics['g_pl_mean'] = aux['pl_mean']
      loss = loss + t.path_length.weight * penalty
    metrics['g_loss'] = loss
    if gan.acgan:
      metrics['g_class_loss'] = _class_loss(fake_cls, labels)
      loss = loss + metrics['g_class_loss']
      metrics['g_loss'] = loss
    return loss, (stats, metrics, aux)

  grads, (stats, metrics, aux) = jax.grad(loss_fn, has_aux=True)(state.g.params)
  g = state.g.apply_gradients(gan.g_tx, grads, stats)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  return state.replace(g=g, aux=aux), metrics


def path_length_term(gan: GAN, g_params, g_batch_stats, z, labels, key, step, aux):
  """StyleGAN2's lazy path-length penalty of G and the aux with its running mean:
  (every · E[(‖J_wᵀy‖ - a)²] at the iterations that are multiples of `every`, else 0; aux).

  On the first batch/batch_shrink latents: w = mapping(z) (style mixing included, as the
  reference's Greg phase), the images synthesis(w) with fresh noise, and
  `stylegan2.path_length_penalty` (Karras et al. 2020, arXiv:1912.04958, sec. 3.2) updating the
  running mean a (aux['pl_mean']) only on those iterations. Computed in float32.
  """
  pl = gan.tricks.path_length
  m = max(1, z.shape[0] // pl.batch_shrink)
  z, labels = z[:m], None if labels is None else labels[:m]
  variables = {'params': g_params, 'batch_stats': g_batch_stats} if g_batch_stats else {
      'params': g_params}
  rngs = g_rngs(key)

  def term():
    ws = gan.generator.apply(variables, z, labels, train=True, rngs=rngs, method='styles',
                             mutable=['batch_stats'])[0]  # w_avg's update is the main pass's
    synthesis = lambda ws: gan.generator.apply(variables, ws, rngs=rngs, method='synthesis')
    penalty, mean, _ = stylegan2.path_length_penalty(synthesis, ws, jax.random.fold_in(key, 2),
                                                     aux['pl_mean'], pl.decay)
    return pl.every * penalty, mean

  if pl.every == 1:
    penalty, mean = term()
  else:
    penalty, mean = jax.lax.cond(step % pl.every == 0, term,
                                 lambda: (jnp.zeros(()), aux['pl_mean']))
  return penalty, aux | {'pl_mean': mean}


def zcr_latents(gan: GAN, z, key) -> jax.Array:
  """z + Δz, Δz ~ N(0, σ²I): zCR's transformed latents (Zhao et al. 2021, arXiv:2002.04724)."""
  sigma = gan.tricks.consistency.zcr_sigma
  return gan.shard_batch(z + sigma * jax.random.normal(key, z.shape, z.dtype))


def top_k(gan: GAN, batch: int, step) -> jax.Array:
  """The k of top-k training at iteration `step` for a G batch of `batch` fakes."""
  tk = gan.tricks.top_k
  return tricks_lib.top_k_count(batch, step, tk.gamma, tk.min_fraction, tk.decay_every)


def g_objective(gan: GAN, fake_out, real_out, step) -> jax.Array:
  """objective.g_loss on D's outputs, or under top-k training its mean over the k fakes D rates
  most real (each fake's loss the objective's on that fake alone; Sinha et al. 2020)."""
  if gan.tricks.top_k is None:
    return losses.g_value(gan.objective, fake_out, real_out)
  k = top_k(gan, fake_out.shape[0], step)
  weights = tricks_lib.top_k_weights(fake_out, k)
  per_fake = jax.vmap(lambda o: losses.g_value(gan.objective, o[None], None))(fake_out)
  return jnp.sum(weights * per_fake) / k.astype(per_fake.dtype)


def ada_step(ada: tricks_lib.Ada, aux: dict, rt, images: int, step) -> dict:
  """`aux` with ADA's state after an iteration whose D updates measured r_t = `rt` (n_critic,) on
  `images` real images each: the signs accumulated, and every `ada.interval` iterations (when
  `step`, the count after this one, is a multiple) p moved by `augment.ada_update` and the sums
  reset (Karras et al. 2020, arXiv:2006.06676, sec. 3)."""
  total, count = aux['ada_sign_sum'] + jnp.sum(rt), aux['ada_sign_count'] + rt.shape[0]
  moved = augment.ada_update(aux['ada_p'], total / count, target=ada.target,
                             batch_size=images * rt.shape[0], interval=ada.interval,
                             speed_images=ada.speed_images)
  due = step % ada.interval == 0
  return aux | {'ada_p': jnp.where(due, moved, aux['ada_p']),
                'ada_sign_sum': jnp.where(due, 0.0, total),
                'ada_sign_count': jnp.where(due, 0, count).astype(jnp.int32)}


def _ema_and_count(gan: GAN, state: state_lib.GANState) -> state_lib.GANState:
  decay = state_lib.ema_decay_at(gan.ema_decay, state.step, gan.ema_start, gan.ema_rampup)
  g_ema = state_lib.ema_update(state.g_ema, state.g.params, decay)
  return state.replace(step=state.step + 1, g_ema=g_ema)


def train_iteration(gan: GAN, state: state_lib.GANState, batch: Optional[jax.Array],
                    loop_key: jax.Array):
  """n_critic D steps, then one G step and the EMA update (or the adaptive schedule's loops).

  `batch` holds n_critic real batches: {'x': (n_critic, batch_size, *data_shape), 'label':
  (n_critic, batch_size)}; with None, they are drawn in-jit from `gan.sample_data`. Returns
  (state, metrics); D's metrics are averaged over its n_critic steps.
  """
  key = jax.random.fold_in(loop_key, state.step)
  data_key, d_key, g_key = jax.random.split(key, 3)
  if gan.tricks.adaptive is not None:
    return adaptive_iteration(gan, state, batch, data_key, d_key, g_key)
  if batch is None:
    x = gan.sample_data(data_key, gan.n_critic * gan.batch_size)
    batch = {'x': x.reshape((gan.n_critic, gan.batch_size) + gan.data_shape)}

  def critic_update(state, inputs):
    real, key = inputs
    return d_step(gan, state, real, key)

  state, d_metrics = jax.lax.scan(critic_update, state,
                                  (batch, jax.random.split(d_key, gan.n_critic)))
  state, g_metrics = g_step(gan, state, jax.tree.map(lambda b: b[-1], batch), g_key)
  state = _ema_and_count(gan, state)
  metrics = {k: jnp.mean(v) for k, v in d_metrics.items()} | g_metrics
  if gan.tricks.ada is not None:
    metrics['ada_p'] = state.aux['ada_p']  # the p these updates used
    state = state.replace(aux=ada_step(gan.tricks.ada, state.aux, d_metrics['ada_rt'],
                                       gan.batch_size, state.step))
  return state, metrics


def adaptive_iteration(gan: GAN, state: state_lib.GANState, batch: Optional[dict], data_key,
                       d_key, g_key):
  """The adaptive schedule (M. Borisyak, "Generative Adversarial Networks", HSE lecture, training
  tricks) in one jitted iteration, with the game's value L = D's objective:

      do D step while L > c1 (at most max_d_steps);  then  do G step while L < c2 (at most
      max_g_steps);  then the EMA update.

  L is each step's value before its update (D's objective on that step's real and fake batch; for
  G, D's objective on the step's fakes). Each loop runs at least once, so every iteration trains
  both. Both loops are `lax.while_loop`s: no host round-trip. Real batches: drawn in-jit for toy
  data, else the n_critic given batches in turn. Metrics: the last step of each loop, and the
  counts `d_steps`, `g_steps`.
  """
  a = gan.tricks.adaptive

  def real_batch(i):
    if batch is None:
      return {'x': gan.sample_data(jax.random.fold_in(data_key, i), gan.batch_size)}
    return jax.tree.map(lambda b: b[i % b.shape[0]], batch)

  def d_body(carry):
    state, _, i = carry
    state, metrics = d_step(gan, state, real_batch(i), jax.random.fold_in(d_key, i))
    return state, metrics, i + 1

  def d_cond(carry):
    _, metrics, i = carry
    return (metrics['d_objective'] > a.c1) & (i < a.max_d_steps)

  state, d_metrics, d_steps = jax.lax.while_loop(d_cond, d_body,
                                                 d_body((state, None, jnp.int32(0))))
  g_real = real_batch(a.max_d_steps)  # for toy data, a batch the D loop did not see

  def g_body(carry):
    state, _, j = carry
    state, metrics = g_step(gan, state, g_real, jax.random.fold_in(g_key, j))
    return state, metrics, j + 1

  def g_cond(carry):
    _, metrics, j = carry
    return (metrics['g_d_objective'] < a.c2) & (j < a.max_g_steps)

  state, g_metrics, g_steps = jax.lax.while_loop(g_cond, g_body,
                                                 g_body((state, None, jnp.int32(0))))
  state = _ema_and_count(gan, state)
  counts = {'d_steps': d_steps.astype(jnp.float32), 'g_steps': g_steps.astype(jnp.float32)}
  return state, d_metrics | g_metrics | counts


def train_call(gan: GAN, state: state_lib.GANState, loop_key: jax.Array,
               batches: Optional[dict] = None, *, num_steps: int):
  """`num_steps` training iterations in one lax.scan; metrics come back stacked (num_steps,).

  `batches`: None (data drawn in-jit) or {'x': (num_steps, n_critic, B, ...), 'label': ...}.
  """
  def body(state, batch):
    return train_iteration(gan, state, batch, loop_key)

  return jax.lax.scan(body, state, batches, length=num_steps)

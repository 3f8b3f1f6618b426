"""pix2pix's pure training steps: G minimises λ_GAN · g_loss(D(x, G(x))) + λ_L1 · mean |G(x) - y|,
D minimises s · d_loss(D(x, y), D(x, G(x))) + penalty weight · penalty (Isola et al. 2017,
arXiv:1611.07004). Each iteration runs G forward once (`jax.vjp`), updates D on that output, then
pulls G's loss gradient back through the same forward pass, as the paper's code does.
"""
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import configs, experiment, layers, losses, penalties, precision
from gan_jax import state as state_lib
from gan_jax.pix2pix import networks


class Pix2Pix(NamedTuple):
  """The static half of a pix2pix experiment: what the pure steps close over."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  objective: losses.Objective
  penalty: penalties.Penalty
  penalty_weight: float
  penalty_every: int      # lazy regularisation: the penalty every k iterations, times k
  lambda_gan: float       # weight of G's GAN loss; 0: pure L1 regression, D unused
  lambda_l1: float        # weight of the L1 reconstruction loss
  d_loss_scale: float     # D's objective is multiplied by it (the paper halves it)
  ema_decay: float
  ema_start: int          # the EMA copies G's parameters before this iteration (warm-up)
  input_shape: tuple
  target_shape: tuple
  shard_batch: Callable[[jax.Array], jax.Array] = lambda x: x
  compute_dtype: jnp.dtype = jnp.float32  # of the networks' arithmetic (config.train.dtype)
  ema_rampup: float = 0.0  # the EMA's half-life capped at ema_rampup · step (0: off)


def build(config, input_shape, target_shape, shard_batch=lambda x: x) -> Pix2Pix:
  """Resolves the names of `config` into a Pix2Pix spec; a bad name raises configs.ConfigError."""
  parts = experiment.adversarial_parts(config)
  m, p = config.model, config.pix2pix
  g_cls = configs.lookup(networks.GENERATORS, 'model.generator', m.generator)
  d_cls = configs.lookup(networks.DISCRIMINATORS, 'model.discriminator', m.discriminator)
  impl = configs.call(layers.resolve_impl, 'model.conv_impl', m.get('conv_impl', 'auto'))
  generator = configs.construct(g_cls, 'model.g', **dict(m.g, out_channels=target_shape[-1]),
                                conv_impl=impl)
  discriminator = configs.construct(d_cls, 'model.d', **m.d, conv_impl=impl)
  for name in ('lambda_gan', 'lambda_l1', 'd_loss_scale'):
    if float(p[name]) < 0:
      raise configs.ConfigError(f'config.pix2pix.{name}={p[name]} must be >= 0')
  return Pix2Pix(
      generator=generator, discriminator=discriminator, lambda_gan=float(p.lambda_gan),
      lambda_l1=float(p.lambda_l1), d_loss_scale=float(p.d_loss_scale),
      input_shape=tuple(input_shape), target_shape=tuple(target_shape), shard_batch=shard_batch,
      **parts)


def create_state(spec: Pix2Pix, key: jax.Array) -> state_lib.GANState:
  """Initialises G (on the input shape), D (on input and target concatenated), their optimizers
  and the EMA copy of G."""
  x = jnp.zeros((1,) + spec.input_shape)
  xy = jnp.zeros((1,) + spec.input_shape[:-1] + (spec.input_shape[-1] + spec.target_shape[-1],))
  return state_lib.init_gan_state(key, spec.generator, spec.g_tx, x, spec.discriminator,
                                  spec.d_tx, xy)


def translate(spec: Pix2Pix, g_params, g_batch_stats, inputs) -> jax.Array:
  """G(x) in inference mode: no dropout, BatchNorm running averages."""
  return precision.apply(spec.generator, g_params, g_batch_stats, inputs, None, False,
                         spec.compute_dtype)[0]


def discriminate(spec: Pix2Pix, params, batch_stats, inputs, images, train: bool = True):
  """D's patch logits (B, G, G) on the pair (input, image) concatenated along channels."""
  return precision.apply(spec.discriminator, params, batch_stats,
                         jnp.concatenate([inputs, images], axis=-1), None, train,
                         spec.compute_dtype)[:2]


D_METRICS = ('d_loss', 'd_objective', 'd_penalty', 'd_real', 'd_fake', 'd_grad_norm')


def generate(spec: Pix2Pix, g_params, g_batch_stats, inputs, key):
  """G(x) in training mode (dropout from `key`, batch statistics): (outputs, new batch_stats)."""
  return precision.apply(spec.generator, g_params, g_batch_stats, inputs, key, True,
                         spec.compute_dtype)[:2]


def d_step(spec: Pix2Pix, state: state_lib.GANState, batch: dict, fake, key: jax.Array):
  """One D update on real pairs (x, y) and fake pairs (x, G(x)) (`fake` = G(x), a constant here):
  minimise d_loss_scale · d_loss(D(x, y), D(x, G(x))) + penalty weight · penalty(key)."""
  inputs, targets = spec.shard_batch(batch['input']), spec.shard_batch(batch['target'])
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_out, stats = discriminate(spec, params, state.d.batch_stats, inputs, targets)
    fake_out, stats = discriminate(spec, params, stats, inputs, fake)
    d_fn = lambda images: discriminate(spec, params, stats, inputs, images)[0]
    objective = spec.objective.d_loss(real_out, fake_out)
    penalty = penalties.lazy(lambda: spec.penalty.term(d_fn, targets, fake, key), state.step,
                             spec.penalty_every)
    loss = spec.d_loss_scale * objective + spec.penalty_weight * penalty
    metrics = {'d_loss': loss, 'd_objective': objective, 'd_penalty': penalty,
               'd_real': jnp.mean(real_out), 'd_fake': jnp.mean(fake_out)}
    return loss, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.d.params)
  d = state.d.apply_gradients(spec.d_tx, grads, stats)
  metrics['d_grad_norm'] = optax.tree.norm(grads)
  return state.replace(d=d), metrics


def g_step(spec: Pix2Pix, state: state_lib.GANState, batch: dict, fake, pullback, g_batch_stats):
  """One G update, D frozen: minimise λ_GAN · g_loss(D(x, G(x))) + λ_L1 · mean |G(x) - y|.

  G's forward pass is shared with the D step (as in the paper's code): `fake` = G(x) and
  `pullback` its VJP (from `jax.vjp` of `generate`), so ∇θ = pullback(∂loss/∂fake) is the chain
  rule through that same forward; `g_batch_stats` are its BatchNorm statistics. With λ_GAN = 0,
  D is not run: plain L1 regression.
  """
  inputs, targets = spec.shard_batch(batch['input']), spec.shard_batch(batch['target'])

  def loss_fn(fake):
    l1 = jnp.mean(jnp.abs(fake - targets))
    gan = jnp.zeros(())
    if spec.lambda_gan:
      gan = spec.objective.g_loss(discriminate(spec, state.d.params, state.d.batch_stats, inputs,
                                               fake)[0])
    loss = spec.lambda_gan * gan + spec.lambda_l1 * l1
    return loss, {'g_loss': loss, 'g_gan': gan, 'g_l1': l1}

  d_fake, metrics = jax.grad(loss_fn, has_aux=True)(fake)
  (grads,) = pullback(d_fake)
  g = state.g.apply_gradients(spec.g_tx, grads, g_batch_stats)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  return state.replace(g=g), metrics


def step_keys(loop_key: jax.Array, step) -> tuple:
  """(G dropout key, D penalty key) of iteration `step`: split(fold_in(loop_key, step))."""
  g_key, d_key = jax.random.split(jax.random.fold_in(loop_key, step))
  return g_key, d_key


def train_iteration(spec: Pix2Pix, state: state_lib.GANState, batch: dict, loop_key: jax.Array):
  """G's forward pass, one D step on it (skipped when λ_GAN = 0: its metrics are then 0), one G
  step through it, the EMA update. `batch`: {'input': (B, H, W, C_in), 'target': (B, H, W, C)}."""
  g_key, d_key = step_keys(loop_key, state.step)
  inputs = spec.shard_batch(batch['input'])
  fake, pullback, g_batch_stats = jax.vjp(
      lambda params: generate(spec, params, state.g.batch_stats, inputs, g_key), state.g.params,
      has_aux=True)
  if spec.lambda_gan:
    state, d_metrics = d_step(spec, state, batch, fake, d_key)
  else:
    d_metrics = {k: jnp.zeros(()) for k in D_METRICS}
  state, g_metrics = g_step(spec, state, batch, fake, pullback, g_batch_stats)
  g_ema = state_lib.ema_update(state.g_ema, state.g.params, state_lib.ema_decay_at(
      spec.ema_decay, state.step, spec.ema_start, spec.ema_rampup))
  return state.replace(step=state.step + 1, g_ema=g_ema), d_metrics | g_metrics


def train_call(spec: Pix2Pix, state: state_lib.GANState, loop_key: jax.Array, batches: dict, *,
               num_steps: int):
  """`num_steps` iterations in one lax.scan over batches {'input': (num_steps, B, ...),
  'target': ...}; metrics come back stacked (num_steps,)."""
  return jax.lax.scan(lambda s, b: train_iteration(spec, s, b, loop_key), state,
                      {k: batches[k] for k in ('input', 'target')}, length=num_steps)


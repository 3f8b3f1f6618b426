"""The training steps: pure functions of (state, batch, key), composed into one jitted call.

* `d_step`: one discriminator update on a real batch and a fresh fake batch (G frozen);
* `g_step`: one generator update against the current discriminator (D frozen);
* `train_iteration`: n_critic D steps, one G step, the EMA update; keys from fold_in(loop_key, step);
* `train_call`: `num_steps` iterations fused in one `lax.scan`, so tiny models are not dominated by
  dispatch. This is the function the loop jits (with shardings and donation, in train.py).

Everything static (modules, optimizers, objective, penalty, sizes) is bound in a `GAN` spec.
"""
import functools
from typing import Any, Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import configs, losses, models, penalties, state as state_lib


class GAN(NamedTuple):
  """The static half of a GAN experiment: what the pure steps close over."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  objective: losses.Objective
  penalty: penalties.Penalty
  penalty_weight: float
  z_dim: int
  batch_size: int       # global batch of one D (or G) update
  n_critic: int
  ema_decay: float
  data_shape: tuple
  sample_data: Optional[Callable[[jax.Array, int], jax.Array]]  # in-jit data source, or None
  shard_batch: Callable[[jax.Array], jax.Array] = lambda x: x     # batch-axis sharding constraint


def build_gan(config, data_shape, sample_data=None, shard_batch=lambda x: x) -> GAN:
  """Resolves the names in `config` into a GAN spec; a bad name raises configs.ConfigError."""
  objective = configs.choose(losses.get, 'objective', config.objective)
  penalty = configs.choose(penalties.get, 'penalty', config.penalty, skip=('weight',))
  m, o, t = config.model, config.optim, config.train
  g_cls = configs.lookup(models.GENERATORS, 'model.generator', m.generator)
  d_cls = configs.lookup(models.DISCRIMINATORS, 'model.discriminator', m.discriminator)
  generator = configs.construct(g_cls, 'model.g', data_shape=tuple(data_shape), **m.g)
  discriminator = configs.construct(d_cls, 'model.d', **m.d)
  g_tx = configs.call(state_lib.make_optimizer, 'optim.g_optimizer', o.g_optimizer, o.g_lr,
                      o.betas, o.lr_schedule, t.steps)
  d_tx = configs.call(state_lib.make_optimizer, 'optim.d_optimizer', o.d_optimizer, o.d_lr,
                      o.betas, o.lr_schedule, t.steps * o.n_critic)
  return GAN(
      generator=generator, discriminator=discriminator, g_tx=g_tx,
      d_tx=optax.chain(d_tx, penalty.d_transform), objective=objective, penalty=penalty,
      penalty_weight=float(config.penalty.weight), z_dim=int(m.z_dim),
      batch_size=int(config.data.batch_size), n_critic=int(o.n_critic),
      ema_decay=float(o.ema_decay), data_shape=tuple(data_shape), sample_data=sample_data,
      shard_batch=shard_batch)


def create_state(gan: GAN, key: jax.Array) -> state_lib.GANState:
  """Initialises both networks, their optimizers and the EMA copy of G."""
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, gan.z_dim))
  x = jnp.zeros((1,) + gan.data_shape)
  g = state_lib.init_net(gan.generator, gan.g_tx, g_key, z)
  d = state_lib.init_net(gan.discriminator, gan.d_tx, d_key, x)
  return state_lib.GANState(step=state_lib.zeros_step(), g=g, d=d,
                            g_ema=jax.tree.map(jnp.copy, g.params))


def apply_net(module, params, batch_stats, x, train: bool):
  """Runs `module`; returns (output, batch_stats), updated from the batch when training with BN."""
  variables = {'params': params}
  if batch_stats:
    variables['batch_stats'] = batch_stats
    if train:
      out, updates = module.apply(variables, x, train=True, mutable=['batch_stats'])
      return out, updates['batch_stats']
  return module.apply(variables, x, train=train), batch_stats


def sample_z(gan: GAN, key, n: int) -> jax.Array:
  return gan.shard_batch(jax.random.normal(key, (n, gan.z_dim)))


def generate(gan: GAN, g_params, g_batch_stats, z) -> jax.Array:
  """G(z) in inference mode (BatchNorm uses running averages)."""
  return apply_net(gan.generator, g_params, g_batch_stats, z, train=False)[0]


def d_step(gan: GAN, state: state_lib.GANState, real: jax.Array, key: jax.Array):
  """One D update: minimise objective.d_loss(D(x), D(G(z))) + weight·penalty, G frozen."""
  z_key, pen_key = jax.random.split(key)
  real = gan.shard_batch(real)
  fake, _ = apply_net(gan.generator, state.g.params, state.g.batch_stats,
                      sample_z(gan, z_key, real.shape[0]), train=True)
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_out, stats = apply_net(gan.discriminator, params, state.d.batch_stats, real, True)
    fake_out, stats = apply_net(gan.discriminator, params, stats, fake, True)
    d_fn = lambda x: apply_net(gan.discriminator, params, stats, x, True)[0]
    objective = gan.objective.d_loss(real_out, fake_out)
    penalty = gan.penalty.term(d_fn, real, fake, pen_key)
    loss = objective + gan.penalty_weight * penalty
    metrics = {'d_loss': loss, 'd_objective': objective, 'd_penalty': penalty,
               'd_real': jnp.mean(real_out), 'd_fake': jnp.mean(fake_out)}
    return loss, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.d.params)
  updates, opt_state = gan.d_tx.update(grads, state.d.opt_state, state.d.params)
  d = state_lib.NetState(optax.apply_updates(state.d.params, updates), stats, opt_state)
  metrics['d_grad_norm'] = optax.tree.norm(grads)
  return state.replace(d=d), metrics


def g_step(gan: GAN, state: state_lib.GANState, real: jax.Array, key: jax.Array):
  """One G update: minimise objective.g_loss(D(G(z))), D frozen. `real` sets the batch size."""
  z = sample_z(gan, key, real.shape[0])

  def loss_fn(params):
    fake, stats = apply_net(gan.generator, params, state.g.batch_stats, z, True)
    fake_out, _ = apply_net(gan.discriminator, state.d.params, state.d.batch_stats, fake, True)
    loss = gan.objective.g_loss(fake_out)
    return loss, (stats, {'g_loss': loss})

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.g.params)
  updates, opt_state = gan.g_tx.update(grads, state.g.opt_state, state.g.params)
  g = state_lib.NetState(optax.apply_updates(state.g.params, updates), stats, opt_state)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  return state.replace(g=g), metrics


def train_iteration(gan: GAN, state: state_lib.GANState, batch: Optional[jax.Array],
                    loop_key: jax.Array):
  """n_critic D steps, then one G step and the EMA update.

  `batch` holds n_critic real batches, shape (n_critic, batch_size, *data_shape); with None, they
  are drawn in-jit from `gan.sample_data`. Returns (state, metrics); D's metrics are averaged over
  its n_critic steps.
  """
  key = jax.random.fold_in(loop_key, state.step)
  data_key, d_key, g_key = jax.random.split(key, 3)
  if batch is None:
    batch = gan.sample_data(data_key, gan.n_critic * gan.batch_size)
    batch = batch.reshape((gan.n_critic, gan.batch_size) + gan.data_shape)

  def critic_update(state, inputs):
    real, key = inputs
    return d_step(gan, state, real, key)

  state, d_metrics = jax.lax.scan(critic_update, state,
                                  (batch, jax.random.split(d_key, gan.n_critic)))
  state, g_metrics = g_step(gan, state, batch[-1], g_key)
  decay = gan.ema_decay
  g_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.g_ema, state.g.params)
  state = state.replace(step=state.step + 1, g_ema=g_ema)
  metrics = {k: jnp.mean(v) for k, v in d_metrics.items()} | g_metrics
  return state, metrics


def train_call(gan: GAN, state: state_lib.GANState, loop_key: jax.Array,
               batches: Optional[jax.Array] = None, *, num_steps: int):
  """`num_steps` training iterations in one lax.scan; metrics come back stacked (num_steps,)."""
  def body(state, batch):
    return train_iteration(gan, state, batch, loop_key)

  return jax.lax.scan(body, state, batches, length=num_steps)

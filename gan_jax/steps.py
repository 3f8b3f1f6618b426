"""The training steps: pure functions of (state, batch, key), composed into one jitted call.

* `d_step`: one discriminator update on a real batch and a fresh fake batch (G frozen);
* `g_step`: one generator update against the current discriminator (D frozen);
* `train_iteration`: n_critic D steps, one G step, the EMA update; keys from fold_in(loop_key, step);
* `train_call`: `num_steps` iterations fused in one `lax.scan`, so tiny models are not dominated by
  dispatch. This is the function the loop jits (with shardings and donation, in train.py).

Everything static (modules, optimizers, objective, penalty, sizes) is bound in a `GAN` spec.
"""
from typing import Callable, NamedTuple, Optional

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
  num_classes: int      # > 0: G and D are class-conditional (labels sampled uniformly for fakes)
  acgan: bool           # D has an auxiliary classifier head: outputs (B, 1 + num_classes)
  batch_size: int       # global batch of one D (or G) update
  n_critic: int
  ema_decay: float
  data_shape: tuple
  sample_data: Optional[Callable[[jax.Array, int], jax.Array]]  # in-jit data source, or None
  shard_batch: Callable[[jax.Array], jax.Array] = lambda x: x     # batch-axis sharding constraint


def build_gan(config, data_shape, sample_data=None, shard_batch=lambda x: x,
              num_classes: int = 0) -> GAN:
  """Resolves the names in `config` into a GAN spec; a bad name raises configs.ConfigError.

  `num_classes` is the data's; the networks get it when config.model.g/d ask for conditioning.
  """
  objective = configs.choose(losses.get, 'objective', config.objective)
  penalty = configs.choose(penalties.get, 'penalty', config.penalty, skip=('weight',))
  m, o, t = config.model, config.optim, config.train
  g_cls = configs.lookup(models.GENERATORS, 'model.generator', m.generator)
  d_cls = configs.lookup(models.DISCRIMINATORS, 'model.discriminator', m.discriminator)
  conditional = any(m[net].get('conditioning', 'none') != 'none' for net in ('g', 'd'))
  if conditional and num_classes < 2:
    raise configs.ConfigError(f'config.model: conditioning needs a labelled dataset, and '
                              f'{config.data.name!r} has {num_classes} classes')
  num_classes = num_classes if conditional else 0
  extra = {'num_classes': num_classes} if conditional else {}
  generator = configs.construct(g_cls, 'model.g', data_shape=tuple(data_shape), **extra, **m.g)
  discriminator = configs.construct(d_cls, 'model.d', **extra, **m.d)
  g_tx = configs.call(state_lib.make_optimizer, 'optim.g_optimizer', o.g_optimizer, o.g_lr,
                      o.betas, o.lr_schedule, t.steps)
  d_tx = configs.call(state_lib.make_optimizer, 'optim.d_optimizer', o.d_optimizer, o.d_lr,
                      o.betas, o.lr_schedule, t.steps * o.n_critic)
  return GAN(
      generator=generator, discriminator=discriminator, g_tx=g_tx,
      d_tx=optax.chain(d_tx, penalty.d_transform), objective=objective, penalty=penalty,
      penalty_weight=float(config.penalty.weight), z_dim=int(m.z_dim), num_classes=num_classes,
      acgan=m.d.get('conditioning', 'none') == 'acgan',
      batch_size=int(config.data.batch_size), n_critic=int(o.n_critic),
      ema_decay=float(o.ema_decay), data_shape=tuple(data_shape), sample_data=sample_data,
      shard_batch=shard_batch)


def create_state(gan: GAN, key: jax.Array) -> state_lib.GANState:
  """Initialises both networks, their optimizers and the EMA copy of G."""
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((1, gan.z_dim))
  x = jnp.zeros((1,) + gan.data_shape)
  labels = jnp.zeros((1,), jnp.int32) if gan.num_classes else None
  g = state_lib.init_net(gan.generator, gan.g_tx, g_key, z, labels)
  d = state_lib.init_net(gan.discriminator, gan.d_tx, d_key, x, labels)
  return state_lib.GANState(step=state_lib.zeros_step(), g=g, d=d,
                            g_ema=jax.tree.map(jnp.copy, g.params))


def apply_net(module, params, batch_stats, x, labels, train: bool):
  """Runs `module`; returns (output, batch_stats), the statistics (BatchNorm's, spectral norm's
  power-iteration vectors) updated when training."""
  variables = {'params': params}
  if batch_stats:
    variables['batch_stats'] = batch_stats
    if train:
      out, updates = module.apply(variables, x, labels, train=True, mutable=['batch_stats'])
      return out, updates['batch_stats']
  return module.apply(variables, x, labels, train=train), batch_stats


def discriminate(gan: GAN, params, batch_stats, x, labels, train: bool):
  """D's adversarial output (B,), its class logits (B, C) under AC-GAN (else None), its stats."""
  out, stats = apply_net(gan.discriminator, params, batch_stats, x, labels, train)
  if gan.acgan:
    return out[:, 0], out[:, 1:], stats
  return out, None, stats


def sample_z(gan: GAN, key, n: int) -> jax.Array:
  return gan.shard_batch(jax.random.normal(key, (n, gan.z_dim)))


def sample_labels(gan: GAN, key, n: int):
  """Uniform class labels for the fakes of a conditional GAN, else None."""
  if not gan.num_classes:
    return None
  return gan.shard_batch(jax.random.randint(key, (n,), 0, gan.num_classes))


def generate(gan: GAN, g_params, g_batch_stats, z, labels=None) -> jax.Array:
  """G(z, labels) in inference mode (BatchNorm uses running averages)."""
  return apply_net(gan.generator, g_params, g_batch_stats, z, labels, train=False)[0]


def _class_loss(class_logits, labels):
  """AC-GAN's auxiliary classifier loss (Odena et al. 2017, arXiv:1610.09585): E[-log p(c|x)]."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def d_step(gan: GAN, state: state_lib.GANState, batch: dict, key: jax.Array):
  """One D update: minimise objective.d_loss(D(x), D(G(z))) + weight·penalty, G frozen.

  `batch` holds 'x' (B, *data_shape) and, for a conditional GAN, 'label' (B,).
  """
  z_key, label_key, pen_key = jax.random.split(key, 3)
  real = gan.shard_batch(batch['x'])
  n = real.shape[0]
  real_labels = batch.get('label') if gan.num_classes else None
  fake_labels = sample_labels(gan, label_key, n)
  fake, _ = apply_net(gan.generator, state.g.params, state.g.batch_stats, sample_z(gan, z_key, n),
                      fake_labels, train=True)
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_out, real_cls, stats = discriminate(gan, params, state.d.batch_stats, real, real_labels,
                                             True)
    fake_out, fake_cls, stats = discriminate(gan, params, stats, fake, fake_labels, True)

    def d_fn(x):  # D on a batch of real, fake or interpolated inputs, with the real labels
      return discriminate(gan, params, stats, x, real_labels, True)[0]

    objective = gan.objective.d_loss(real_out, fake_out)
    penalty = gan.penalty.term(d_fn, real, fake, pen_key)
    loss = objective + gan.penalty_weight * penalty
    metrics = {'d_loss': loss, 'd_objective': objective, 'd_penalty': penalty,
               'd_real': jnp.mean(real_out), 'd_fake': jnp.mean(fake_out)}
    if gan.acgan:
      metrics['d_class_loss'] = (_class_loss(real_cls, real_labels) +
                                 _class_loss(fake_cls, fake_labels))
      loss = loss + metrics['d_class_loss']
      metrics['d_loss'] = loss
    return loss, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.d.params)
  updates, opt_state = gan.d_tx.update(grads, state.d.opt_state, state.d.params)
  d = state_lib.NetState(optax.apply_updates(state.d.params, updates), stats, opt_state)
  metrics['d_grad_norm'] = optax.tree.norm(grads)
  return state.replace(d=d), metrics


def g_step(gan: GAN, state: state_lib.GANState, batch: dict, key: jax.Array):
  """One G update: minimise objective.g_loss(D(G(z))), D frozen. `batch` sets the batch size."""
  z_key, label_key = jax.random.split(key)
  n = batch['x'].shape[0]
  z, labels = sample_z(gan, z_key, n), sample_labels(gan, label_key, n)

  def loss_fn(params):
    fake, stats = apply_net(gan.generator, params, state.g.batch_stats, z, labels, True)
    fake_out, fake_cls, _ = discriminate(gan, state.d.params, state.d.batch_stats, fake, labels,
                                         True)
    loss = gan.objective.g_loss(fake_out)
    metrics = {'g_loss': loss}
    if gan.acgan:
      metrics['g_class_loss'] = _class_loss(fake_cls, labels)
      loss = loss + metrics['g_class_loss']
      metrics['g_loss'] = loss
    return loss, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.g.params)
  updates, opt_state = gan.g_tx.update(grads, state.g.opt_state, state.g.params)
  g = state_lib.NetState(optax.apply_updates(state.g.params, updates), stats, opt_state)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  return state.replace(g=g), metrics


def train_iteration(gan: GAN, state: state_lib.GANState, batch: Optional[jax.Array],
                    loop_key: jax.Array):
  """n_critic D steps, then one G step and the EMA update.

  `batch` holds n_critic real batches: {'x': (n_critic, batch_size, *data_shape), 'label':
  (n_critic, batch_size)}; with None, they are drawn in-jit from `gan.sample_data`. Returns
  (state, metrics); D's metrics are averaged over its n_critic steps.
  """
  key = jax.random.fold_in(loop_key, state.step)
  data_key, d_key, g_key = jax.random.split(key, 3)
  if batch is None:
    x = gan.sample_data(data_key, gan.n_critic * gan.batch_size)
    batch = {'x': x.reshape((gan.n_critic, gan.batch_size) + gan.data_shape)}

  def critic_update(state, inputs):
    real, key = inputs
    return d_step(gan, state, real, key)

  state, d_metrics = jax.lax.scan(critic_update, state,
                                  (batch, jax.random.split(d_key, gan.n_critic)))
  state, g_metrics = g_step(gan, state, jax.tree.map(lambda b: b[-1], batch), g_key)
  decay = gan.ema_decay
  g_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.g_ema, state.g.params)
  state = state.replace(step=state.step + 1, g_ema=g_ema)
  metrics = {k: jnp.mean(v) for k, v in d_metrics.items()} | g_metrics
  return state, metrics


def train_call(gan: GAN, state: state_lib.GANState, loop_key: jax.Array,
               batches: Optional[dict] = None, *, num_steps: int):
  """`num_steps` training iterations in one lax.scan; metrics come back stacked (num_steps,).

  `batches`: None (data drawn in-jit) or {'x': (num_steps, n_critic, B, ...), 'label': ...}.
  """
  def body(state, batch):
    return train_iteration(gan, state, batch, loop_key)

  return jax.lax.scan(body, state, batches, length=num_steps)

"""The training state: one pytree of arrays, donated to the jitted step and checkpointed whole.

Static things (modules, optimizers, the objective) live in `steps.GAN`, not here, so the state
holds nothing but arrays and orbax can save and restore it as it is.
"""
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class NetState(flax.struct.PyTreeNode):
  """One network's trainable parameters, BatchNorm statistics and optimizer state."""
  params: Any
  batch_stats: Any  # {} when the network has no BatchNorm
  opt_state: Any

  def apply_gradients(self, tx: optax.GradientTransformation, grads,
                      batch_stats=None) -> 'NetState':
    """One optimizer step: `tx`'s update of `grads` applied to the params, with the statistics
    of the forward pass that gave the gradients (`batch_stats`; None keeps the current ones)."""
    updates, opt_state = tx.update(grads, self.opt_state, self.params)
    return NetState(optax.apply_updates(self.params, updates),
                    self.batch_stats if batch_stats is None else batch_stats, opt_state)


def ema_update(ema, params, decay: float):
  """decay · ema + (1 - decay) · params, leaf by leaf: the EMA of a network's parameters
  (Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training",
  arXiv:1806.04498)."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def ema_decay_at(decay: float, step, start: int = 0, rampup: float = 0.0):
  """The EMA's decay at iteration `step` with a warm-up: 0 before `start` (the EMA is then G's
  parameters themselves, so a short run is not judged on an average of its first, noisy
  iterates), `decay` from then on; `start` = 0 is `decay` throughout.

  `rampup` r > 0 (Karras et al. 2020, "Training Generative Adversarial Networks with Limited
  Data", arXiv:2006.06676, appendix B.1, their `ema_rampup`): the EMA's half-life, h = ln ½ /
  ln decay iterations, is capped at r · step, so decay_t = ½^(1 / min(h, r · step)): 0 at step 0,
  the average of about the last r-th of the run's iterates until r · step reaches h, `decay`
  from then on."""
  out = decay
  if rampup:
    half_life = math.log(0.5) / math.log(decay) if decay > 0 else 0.0
    ramped = jnp.minimum(half_life, rampup * jnp.asarray(step, jnp.float32))
    out = jnp.where(ramped > 0, 0.5 ** (1.0 / jnp.maximum(ramped, 1e-8)), 0.0)
  if not start:
    return out
  return jnp.where(step < start, 0.0, out)


class GANState(flax.struct.PyTreeNode):
  """Everything that changes during training.

  step: training iterations done (each = n_critic D updates + 1 G update).
  g, d: generator and discriminator states.
  g_ema: exponential moving average of G's params (Yazıcı et al. 2019, arXiv:1806.04498).
  aux: the state of the switches that have one, {} when none is on: ADA's 'ada_p' (the
    augmentation probability), 'ada_sign_sum' (the sum over D updates since p last moved of
    each update's mean sign D(x_real)) and 'ada_sign_count' (those updates); LeCam's anchors
    'lecam_real', 'lecam_fake'.
  """
  step: jax.Array
  g: NetState
  d: NetState
  g_ema: Any
  aux: Any = flax.struct.field(default_factory=dict)


OPTIMIZERS = {
    'adam': lambda lr, b1, b2: optax.adam(lr, b1=b1, b2=b2),
    'rmsprop': lambda lr, b1, b2: optax.rmsprop(lr),
    'sgd': lambda lr, b1, b2: optax.sgd(lr),
}

LR_SCHEDULES = ('constant', 'linear')


def make_optimizer(name: str, lr: float, betas, schedule: str = 'constant',
                   decay_steps: int = 1, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """The optimizer called `name` (adam uses `betas`); 'linear' decays lr to 0 over decay_steps.

  weight_decay > 0 adds weight_decay · θ to the gradient before the optimizer (L2 weight decay,
  as PyTorch's Adam(weight_decay=...) that StudioGAN's d_weight_decay sets); 0 is the plain one.
  """
  if weight_decay < 0:
    raise ValueError(f'weight decay {weight_decay} must be >= 0 (0 = off)')
  if name not in OPTIMIZERS:
    raise ValueError(f'unknown optimizer {name!r}; valid optimizers: {", ".join(sorted(OPTIMIZERS))}')
  if schedule not in LR_SCHEDULES:
    raise ValueError(f'unknown lr schedule {schedule!r}; valid schedules: {", ".join(LR_SCHEDULES)}')
  if schedule == 'linear':
    lr = optax.linear_schedule(lr, 0.0, max(int(decay_steps), 1))
  b1, b2 = betas
  tx = OPTIMIZERS[name](lr, b1, b2)
  return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx


def learning_rate(lr: float, schedule: str, decay_steps: int, count: int) -> float:
  """The rate `make_optimizer(name, lr, betas, schedule, decay_steps)` applies at update `count`
  (on the host, in Python floats: for the logs)."""
  if schedule == 'linear':  # optax.linear_schedule(lr, 0, n): lr · (1 - clip(count, 0, n) / n)
    n = max(int(decay_steps), 1)
    return float(lr) * (1.0 - min(max(int(count), 0), n) / n)
  return float(lr)


def init_net(module, tx, key, example_input, example_labels=None) -> NetState:
  """Initialises `module` on `example_input` (and labels, if conditional) and its optimizer."""
  variables = module.init(key, example_input, example_labels, train=False)
  params = variables['params']
  return NetState(params=params, batch_stats=variables.get('batch_stats', {}),
                  opt_state=tx.init(params))


def init_gan_state(key, generator, g_tx, g_input, discriminator, d_tx, d_input,
                   labels=None) -> GANState:
  """Both networks initialised on example inputs (and labels, if conditional), their
  optimizers, and the EMA copy of G: the state at step 0."""
  g_key, d_key = jax.random.split(key)
  g = init_net(generator, g_tx, g_key, g_input, labels)
  d = init_net(discriminator, d_tx, d_key, d_input, labels)
  return GANState(step=zeros_step(), g=g, d=d, g_ema=jax.tree.map(jnp.copy, g.params))


def zeros_step() -> jax.Array:
  return jnp.zeros((), jnp.int32)

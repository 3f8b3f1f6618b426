"""What every task's experiment shares: the mesh, the keys, the one jit of a pure `train_call`
with shardings and donation, host batch stacking, the generator chosen by kind, and the parts
of an adversarial spec every task resolves alike (`adversarial_parts`, `learning_rates`).

A task (gan_jax/tasks.py) subclasses `Experiment` and provides the pure halves and its data:

  create_state(key) -> state                   a pure initialisation (jitted here)
  train_call(state, loop_key, *batches, num_steps) -> (state, metrics)
                                               `num_steps` iterations, pure (jitted here)
  host_stream(start_step) -> iterator          this host's examples of each update from
                                               iteration `start_step` on (when `host_fed`;
                                               else the data is drawn inside train_call)
  evaluate_params(params, batch_stats, n, kind) -> (metrics, protocol)
  plot(state, path, title) -> image or None
  learning_rates(step) -> {'g_lr', 'd_lr'}

The loop (gan_jax/train.py) drives only this interface: it knows no task.
"""
import abc
import functools
from typing import Optional

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from gan_jax import configs, distributed, losses, penalties, precision, sharding
from gan_jax import state as state_lib

def adversarial_parts(config, g_updates: int = 1, d_updates: int = 1) -> dict:
  """What every adversarial task resolves from its config the same way: the objective, the
  penalty and its weight, G's and D's optimizers (D's chained with the penalty's projection;
  a decaying lr runs over `configs.decay_steps` iterations of g_updates / d_updates updates),
  the lazy penalty's interval, the EMA decay and warm-up, and the compute dtype. Bad names are ConfigErrors naming the field."""
  o = config.optim
  objective = configs.choose(losses.get, 'objective', config.objective)
  penalty = configs.choose(penalties.get, 'penalty', config.penalty, skip=('weight', 'every'))
  g_tx = configs.call(state_lib.make_optimizer, 'optim.g_optimizer', o.g_optimizer, o.g_lr,
                      o.get('g_betas') or o.betas, o.lr_schedule,
                      configs.decay_steps(config) * g_updates)
  d_tx = configs.call(state_lib.make_optimizer, 'optim.d_optimizer', o.d_optimizer, o.d_lr,
                      o.get('d_betas') or o.betas, o.lr_schedule,
                      configs.decay_steps(config) * d_updates,
                      float(o.get('d_weight_decay', 0.0)))
  return dict(objective=objective, penalty=penalty, penalty_weight=float(config.penalty.weight),
              penalty_every=int(config.penalty.get('every', 1)), g_tx=g_tx,
              d_tx=optax.chain(d_tx, penalty.d_transform), ema_decay=float(o.ema_decay),
              ema_start=int(o.get('ema_start', 0)), ema_rampup=float(o.get('ema_rampup', 0.0)),
              compute_dtype=precision.compute_dtype(config))


def learning_rates(config, step: int, g_updates: int = 1, d_updates: int = 1) -> dict:
  """{'g_lr', 'd_lr'} of `adversarial_parts`' optimizers after `step` iterations, for the logs."""
  o, length = config.optim, configs.decay_steps(config)
  return {'g_lr': state_lib.learning_rate(o.g_lr, o.lr_schedule, length * g_updates,
                                          step * g_updates),
          'd_lr': state_lib.learning_rate(o.d_lr, o.lr_schedule, length * d_updates,
                                          step * d_updates)}


# Which generator of a state an eval or a sample uses: the EMA of G's parameters or G itself.
GENERATOR_KINDS = ('ema', 'raw')


def generator_params(state, kind: str):
  """G's parameters of `kind` ('ema' or 'raw') in a training state."""
  return state.g_ema if kind == 'ema' else state.g.params


class Experiment(abc.ABC):
  """A config resolved into a mesh, keys and the jitted functions the loop calls.

  Subclasses set `host_fed` (False: train_call draws its data in-jit) and `updates_per_step`
  (host batches consumed per iteration, n_critic for a GAN: a host-fed batch then has shape
  (num_steps, updates, B, ...); None: (num_steps, B, ...)).
  """
  host_fed: bool = True
  updates_per_step: Optional[int] = None

  def __init__(self, config, devices=None):
    configs.check(config)
    self.config = config
    self.mesh = sharding.make_mesh(devices)
    configs.check_batch_split(config.data.batch_size, self.mesh.size)
    for kind in config.eval.generators:
      configs.lookup(dict.fromkeys(GENERATOR_KINDS), 'eval.generators', kind)
    self.repl = sharding.replicated(self.mesh)
    self.eval_sharding = sharding.batch_sharded(self.mesh)
    self.init_key, self.loop_key, self.eval_key = jax.random.split(jax.random.key(config.seed), 3)
    self._train_fns = {}

  # --- what a task provides ------------------------------------------------------------------

  @abc.abstractmethod
  def create_state(self, key):
    """The initial training state (pure; jitted by `init_state`)."""

  @abc.abstractmethod
  def train_call(self, state, loop_key, *batches, num_steps: int):
    """`num_steps` training iterations (pure; jitted by `train_fn`): (state, stacked metrics)."""

  @abc.abstractmethod
  def evaluate_params(self, params, batch_stats, n: int, kind: str):
    """(metrics, protocol) of G with these parameters (`kind`: 'ema' or 'raw')."""

  @abc.abstractmethod
  def plot(self, state, path: str, title: str):
    """Writes the eval figure to `path` (process 0); returns an image for TensorBoard or None."""

  @abc.abstractmethod
  def learning_rates(self, step: int) -> dict:
    """{'g_lr', 'd_lr'} after `step` iterations, for the logs."""

  def host_stream(self, start_step: int):
    """This host's per-update batches {name: (b, ...)} from iteration `start_step` on."""
    raise TypeError(f'{type(self).__name__} draws its data in-jit (host_fed is False)')

  def compiler_options(self, run_once: bool = False):
    """XLA options of the jitted calls (None: XLA's defaults)."""
    del run_once
    return None

  # --- what every task shares ----------------------------------------------------------------

  def check_model(self) -> None:
    """Traces `create_state` abstractly: a bad model option is a ConfigError now, not later."""
    configs.call(lambda: jax.eval_shape(self.create_state, self.init_key), 'model')

  def init_state(self):
    """The initial state, replicated over the mesh."""
    create = jax.jit(self.create_state, out_shardings=self.repl,
                     compiler_options=self.compiler_options(run_once=True))
    return create(self.init_key)

  def _batch_sharding(self) -> NamedSharding:
    """Host-fed batches (num_steps, [updates,] B, ...) are split along B."""
    lead = (None, None) if self.updates_per_step else (None,)
    return NamedSharding(self.mesh, P(*lead, sharding.DATA_AXIS))

  def train_fn(self, num_steps: int):
    """The jitted `train_call` for `num_steps` iterations: fn(state, loop_key, *batches), the
    state replicated and donated, host-fed batches split along B. Compiled once per length."""
    if num_steps not in self._train_fns:
      fed = (self._batch_sharding(),) if self.host_fed else ()
      self._train_fns[num_steps] = jax.jit(
          functools.partial(self.train_call, num_steps=num_steps),
          in_shardings=(self.repl, self.repl) + fed, out_shardings=(self.repl, self.repl),
          donate_argnums=0, compiler_options=self.compiler_options())
    return self._train_fns[num_steps]

  def batch_stream(self, start_step: int):
    """`take(n)`: the global batches of the next n iterations from iteration `start_step` on
    (each host reads its share), or None when the data is drawn in-jit. Jitted calls run
    asynchronously, so reading overlaps compute."""
    if not self.host_fed:
      return None
    stream = self.host_stream(start_step)
    k = self.updates_per_step or 1
    lead = (k,) if self.updates_per_step else ()
    batch_sharding = self._batch_sharding()

    def take(n):
      local = [next(stream) for _ in range(n * k)]
      return {name: distributed.from_process_local(
          np.stack([b[name] for b in local]).reshape((n,) + lead + local[0][name].shape),
          batch_sharding) for name in local[0]}

    return take

  def evaluate(self, state, n: int) -> list:
    """[(kind, metrics, protocol)] for each generator in config.eval.generators."""
    return [(kind, *self.evaluate_params(*self.generator(state, kind), n, kind))
            for kind in self.config.eval.generators]

  def generator(self, state, kind: str):
    """(params, batch_stats) of G's `kind` ('ema' or 'raw') in a state, as sampled and evaluated:
    by default G's own BatchNorm statistics for both (a task may recompute the EMA's)."""
    return generator_params(state, kind), state.g.batch_stats

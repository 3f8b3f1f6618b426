"""The GAN task (config.task = 'gan', the default): an unconditional or class-conditional GAN on
a toy distribution (sampled inside jit) or an image dataset (fed by the host).

`GANExperiment` binds the pure steps of gan_jax/steps.py (a `steps.GAN` spec) to the shared
plumbing of gan_jax/experiment.py, and evaluates through gan_jax/evaluation.py: fixed-noise
samples of the EMA and/or raw generator (sample j from the latents of (eval_key, j): the same as
`gan_jax.load(workdir).eval_samples(n)`), their features, the metrics of config.eval.metrics.
Plots: samples over the data with D's contour behind them (toys), sample grids (images; one row
per class for a conditional G).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gan_jax import configs, distributed, evaluation, experiment, input_pipeline, plots
from gan_jax import sampling, sharding, steps, toy_data
from gan_jax.experiment import generator_params

# fold_in(eval_key, ·) of the latents that recompute the EMA G's BatchNorm statistics (the eval
# samples use eval_key itself, the toys' real samples fold_in(eval_key, 1)).
STANDING_STATS_KEY = 2


def load_data(data_config):
  """The dataset named by config.data: a toy distribution (sampled in-jit) or an image dataset."""
  name = data_config.name
  if name in toy_data.DATASETS:
    return configs.choose(toy_data.get, 'data', data_config, skip=('batch_size',))
  valid = dict.fromkeys(list(toy_data.DATASETS) + list(input_pipeline.DATASETS))
  if not name.startswith(input_pipeline.TFDS_PREFIX):  # 'tfds:NAME': any tfds image dataset
    configs.lookup(valid, 'data.name', name)
  options = {k: v for k, v in data_config.items() if k not in ('name', 'batch_size', 'workers')}
  try:
    return input_pipeline.get(name, **options)
  except input_pipeline.DatasetUnavailable as e:  # already one sentence saying what to do
    raise configs.ConfigError(str(e)) from None
  except (ValueError, TypeError) as e:
    raise configs.ConfigError(f'config.data: {e}') from None


class GANExperiment(experiment.Experiment):
  """A GAN config resolved into data, mesh, GAN spec, keys, jitted functions and an evaluator."""

  def __init__(self, config, devices=None):
    super().__init__(config, devices)
    self.data = load_data(config.data)
    # Toy data is drawn inside the jitted call; images come from the host, n_critic per step.
    self.host_fed = not isinstance(self.data, toy_data.ToyDataset)
    self.updates_per_step = int(config.optim.n_critic)
    shard = sharding.batch_constraint(self.mesh)
    if self.host_fed:
      self.gan = steps.build_gan(config, self.data.image_shape, None, shard,
                                 self.data.num_classes)
    else:
      self.gan = steps.build_gan(config, (self.data.dim,), self.data.sample, shard)
    self.check_model()
    self.evaluator = evaluation.Evaluator(
        config, self.data, self._real_data(), self._sample, self.gan.num_classes,
        self.eval_sharding, self.eval_key, log=tqdm.write)

  def _real_data(self):
    """The reference images of the eval metrics: config.eval.real_split of the data (or None), all
    of it when training on a data.fraction of it (DiffAugment's and ADA's protocol)."""
    split = self.config.eval.get('real_split')
    fraction = self.config.data.get('fraction', None)
    whole = fraction is None or fraction == 1.0
    if not self.host_fed or (whole and (not split or split == self.config.data.get('split'))):
      return self.data if self.host_fed else None
    data_config = self.config.data.copy_and_resolve_references()
    data_config.split = split or data_config.get('split', 'train')
    data_config.fraction = None  # limited data is scored against the whole split, as the papers
    return load_data(data_config)

  # --- the pure halves -----------------------------------------------------------------------

  def create_state(self, key):
    return steps.create_state(self.gan, key)

  def train_call(self, state, loop_key, *batches, num_steps: int):
    return steps.train_call(self.gan, state, loop_key, *batches, num_steps=num_steps)

  def host_stream(self, start_step: int):
    """This host's real batches {'x', 'label'} of each D update from iteration `start_step` on."""
    stream = self.data.batches(self.config.data.batch_size, seed=self.config.seed,
                               start_step=start_step * self.updates_per_step,
                               process_index=jax.process_index(),
                               process_count=jax.process_count(),
                               workers=input_pipeline.resolve_workers(
                                   self.config.data.get('workers'), jax.default_backend()))
    return ({'x': b['image'], 'label': b['label']} for b in stream)

  def learning_rates(self, step: int) -> dict:
    """{'g_lr', 'd_lr'} after `step` iterations (n_critic D updates and one G update each; under
    the adaptive schedule, as if each loop ran to its cap)."""
    return steps.learning_rates(self.gan, self.config, step)

  # --- sampling, evaluation, plots -----------------------------------------------------------

  @functools.cached_property
  def _sample(self):
    """G of the latents of (key, j) for each index j (sampling.latents): sample j is the same
    whatever the batch it is drawn in."""
    gan, truncation = self.gan, self.config.eval.get('truncation', None)
    return jax.jit(lambda params, stats, key, indices, labels: sampling.sample(
        gan, params, stats, key, indices, labels, truncation))

  @functools.cached_property
  def _discriminate(self):
    gan = self.gan
    return jax.jit(lambda d, x: steps.discriminate(gan, d.params, d.batch_stats, x, None,
                                                   train=False)[0])

  def samples(self, state, kind: str, n: int, labels=None):
    """n samples of the `kind` ('ema' or 'raw') generator from the fixed eval noise."""
    if self.gan.num_classes and labels is None:
      labels = np.arange(n) % self.gan.num_classes
    labels = None if labels is None else jnp.asarray(labels, jnp.int32)
    return distributed.to_host(self._sample(*self.generator(state, kind), self.eval_key, jnp.arange(n, dtype=jnp.uint32),
                                            labels))

  def generator(self, state, kind: str):
    """(params, batch_stats) of G's `kind`; the EMA's BatchNorm statistics recomputed for its
    parameters when config.optim.ema_standing_stats > 0 (steps.standing_stats, from a key of
    their own: the same statistics for the same state)."""
    params = generator_params(state, kind)
    if kind != 'ema' or not self.gan.standing_stats:
      return params, state.g.batch_stats
    key = jax.random.fold_in(self.eval_key, STANDING_STATS_KEY)
    return params, self._standing_stats(params, state.g.batch_stats, key)

  @functools.cached_property
  def _standing_stats(self):
    gan = self.gan
    return jax.jit(lambda params, stats, key: steps.standing_stats(
        gan, params, stats, key, gan.standing_stats))

  def evaluate_params(self, params, batch_stats, n: int, kind: str):
    return self.evaluator(params, batch_stats, n, kind)

  def plot(self, state, path: str, title: str):
    """Writes the eval figure to `path` (process 0); returns it as an image (for TensorBoard).

    Every process calls it (sampling is a collective); only process 0 draws and writes.
    """
    if self.host_fed:
      return self._plot_images(state, path, title)
    n = self.config.eval.num_samples
    kind = self.config.eval.generators[0] if self.config.eval.generators else 'ema'
    fake = self.samples(state, kind, n)
    if not distributed.is_main():
      return None
    real = np.asarray(self.data.sample(jax.random.fold_in(self.eval_key, 1), n))
    d_local = jax.device_get(state.d)  # a host copy: D's contour is drawn by this process alone
    d_fn = lambda x: self._discriminate(d_local, jnp.asarray(x))
    if not self.gan.d_scalar:  # an embedding (MMD-GAN) or the data itself (GMMN): no contour
      d_fn = None
    plots.plot_toy(path, real, fake, d_fn, f'{title} ({kind} generator)')
    return plots.read_png(path)

  def _plot_images(self, state, path: str, title: str):
    """A fixed-noise sample grid per generator (EMA beside raw); conditional: a row per class."""
    classes = self.gan.num_classes
    rows = classes if 0 < classes <= 20 else 8
    labels = np.repeat(np.arange(rows), 8) % classes if classes else None
    grids = [(kind, plots.image_grid(self.samples(state, kind, rows * 8, labels), 8))
             for kind in (self.config.eval.generators or ('ema',))]
    if distributed.is_main():
      names = [f'class {c}' for c in range(rows)] if classes else None
      plots.save_image_panels(path, grids, title, row_labels=names)
    return grids[0][1]

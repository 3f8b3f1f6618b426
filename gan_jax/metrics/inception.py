"""The FID Inception-v3 (the 2015 TensorFlow graph, as ported by pytorch-fid) as a Flax module.

Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision"
(arXiv:1512.00567); Heusel et al. 2017 (arXiv:1706.08500) take its 2048-d pool3 features for FID.
The network is torchvision's `Inception3` (94 BasicConv2d = conv (no bias) → BatchNorm(eps 1e-3)
→ ReLU, no aux head) with pytorch-fid's patches, which reproduce the TF graph:

  Mixed_5b..5d   FIDInceptionA   3×3 avg pool, stride 1, pad 1, count_include_pad=False
  Mixed_6b..6e   FIDInceptionC   same avg pool
  Mixed_7b       FIDInceptionE_1 same avg pool
  Mixed_7c       FIDInceptionE_2 3×3 MAX pool, stride 1, pad 1 (a quirk of the TF graph)
  fc             2048 → 1008 classes (the 2015 graph's label space)

Inputs are NHWC in [-1, 1], gan_jax's image range. pytorch-fid takes NCHW in [0, 1], resizes,
then maps x ↦ 2x - 1 (`normalize_input`); both steps are affine per pixel, so resizing a [-1, 1]
image gives the same network input (up to float rounding). The resize to 299×299 is
metrics/protocol.py's 'pytorch_fid' bilinear: half-pixel centres, an out-of-range tap
clamped to the edge pixel, which is what `F.interpolate(mode='bilinear', align_corners=False)`
computes (up- and downsampling; `antialias=False` matters only when downsampling, where
PyTorch's default does no antialiasing either). Padding follows PyTorch exactly: explicit
symmetric conv padding, max pools with no padding (floor mode) and -inf padding in Mixed_7c.

Weights: `load_params(path)` reads pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` without
torch (metrics/torch_weights.py: a restricted unpickler; zip and legacy formats) or an `.npz` of
the same state_dict, and converts names and layouts: conv (O, I, kh, kw) → kernel (kh, kw, I, O);
BN weight/bias/running_mean/running_var → scale/bias/mean/var; fc (1008, 2048) → kernel (2048,
1008). The file is untrusted input: names, shapes and sizes are checked against the network
before anything is decompressed or allocated, and any file that is not these weights raises one
ValueError.
"""
import functools
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from gan_jax.metrics import protocol
from gan_jax.metrics import torch_weights

FID_WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
NO_WEIGHTS_MESSAGE = (
    'FIDInceptionV3 features need the pytorch-fid weights file: download '
    f'{FID_WEIGHTS_URL} on a machine with network access and pass its path as '
    '--config.eval.inception_weights=PATH.')
FID_WEIGHTS_SHA256_PREFIX = '6726825d'  # torch.hub's name suffix: the first hex of the sha256
NUM_CLASSES = 1008
POOL_DIM = 2048


# ---------------------------------------------------------------------------------------------
# Network.

def resize_bilinear(x, size: tuple) -> jax.Array:
  """Resizes NHWC `x` to `size` = (H, W) as `F.interpolate(bilinear, align_corners=False)`.

  src = (dst + 0.5) · in/out - 0.5, linear between the two nearest pixels, clamped at the edges;
  no antialiasing, so downsampling also matches PyTorch's default.
  """
  return protocol.resize(x, size, 'pytorch_fid')


class BasicConv2d(nn.Module):
  """conv (no bias) → BatchNorm (eps 1e-3, running statistics) → ReLU, as torchvision's."""
  features: int
  kernel_size: tuple
  strides: tuple = (1, 1)
  padding: tuple = (0, 0)  # symmetric (ph, pw), as PyTorch's `padding=`
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    (ph, pw) = self.padding
    x = nn.Conv(self.features, self.kernel_size, self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=self.precision, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """TF's 3×3 stride-1 SAME average pool: the padded zeros are not counted."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  """PyTorch `MaxPool2d(3, stride=2)`: no padding, floor mode."""
  return nn.max_pool(x, (3, 3), (2, 2), 'VALID')


class FIDInceptionA(nn.Module):
  """Mixed_5b..5d: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool (no pad count)→1×1."""
  pool_features: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv2d, precision=self.precision)
    b1 = conv(64, (1, 1), name='branch1x1')(x)
    b5 = conv(48, (1, 1), name='branch5x5_1')(x)
    b5 = conv(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = conv(64, (1, 1), name='branch3x3dbl_1')(x)
    b3 = conv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = conv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = conv(self.pool_features, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (grid reduction 35 → 17): 3×3/2 | 1×1→3×3→3×3/2 | max pool 3×3/2."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv2d, precision=self.precision)
    b3 = conv(384, (3, 3), strides=(2, 2), name='branch3x3')(x)
    bd = conv(64, (1, 1), name='branch3x3dbl_1')(x)
    bd = conv(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = conv(96, (3, 3), strides=(2, 2), name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionC(nn.Module):
  """Mixed_6b..6e: factorised 7×7 (1×7, 7×1) branches | avg pool (no pad count)→1×1."""
  channels_7x7: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv2d, precision=self.precision)
    c7 = self.channels_7x7
    b1 = conv(192, (1, 1), name='branch1x1')(x)
    b7 = conv(c7, (1, 1), name='branch7x7_1')(x)
    b7 = conv(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = conv(c7, (1, 1), name='branch7x7dbl_1')(x)
    bd = conv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = conv(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = conv(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = conv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = conv(192, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (grid reduction 17 → 8): 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool 3×3/2."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv2d, precision=self.precision)
    b3 = conv(192, (1, 1), name='branch3x3_1')(x)
    b3 = conv(320, (3, 3), strides=(2, 2), name='branch3x3_2')(b3)
    b7 = conv(192, (1, 1), name='branch7x7x3_1')(x)
    b7 = conv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = conv(192, (3, 3), strides=(2, 2), name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class FIDInceptionE(nn.Module):
  """Mixed_7b (`pool='avg'`, FIDInceptionE_1) and Mixed_7c (`pool='max'`, FIDInceptionE_2)."""
  pool: str = 'avg'
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv2d, precision=self.precision)
    b1 = conv(320, (1, 1), name='branch1x1')(x)
    b3 = conv(384, (1, 1), name='branch3x3_1')(x)
    b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          conv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], axis=-1)
    bd = conv(448, (1, 1), name='branch3x3dbl_1')(x)
    bd = conv(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          conv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], axis=-1)
    if self.pool == 'avg':
      pooled = _avg_pool_3x3(x)
    elif self.pool == 'max':  # -inf padding, as F.max_pool2d
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
    bp = conv(192, (1, 1), name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """pytorch-fid's FID Inception-v3: NHWC images in [-1, 1] → {'pool': (B, 2048), 'logits'}.

  'pool' is pool3 (global average of Mixed_7c), the FID/KID/PR feature; 'logits' (B, 1008) is
  `fc(pool)` (dropout is the identity at inference), softmax of which is the IS input.
  `image_size` is the bilinear resize target (299 as pytorch-fid; None = no resize, the input
  must then be at least 75×75). Convs and fc run at `precision` (HIGHEST by default, so GPUs
  do not fall back to TF32).
  """
  image_size: Optional[int] = 299
  num_classes: int = NUM_CLASSES
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError(f'FIDInceptionV3 takes (B, H, W, C) images, got shape {x.shape}')
    if x.shape[-1] != 3:
      raise ValueError(f'expected NHWC RGB images, got shape {x.shape}')
    x = jnp.asarray(x, jnp.float32)
    if self.image_size is not None:
      x = resize_bilinear(x, (self.image_size, self.image_size))
    conv = functools.partial(BasicConv2d, precision=self.precision)
    p = self.precision
    x = conv(32, (3, 3), strides=(2, 2), name='Conv2d_1a_3x3')(x)
    x = conv(32, (3, 3), name='Conv2d_2a_3x3')(x)
    x = conv(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = conv(80, (1, 1), name='Conv2d_3b_1x1')(x)
    x = conv(192, (3, 3), name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3_s2(x)
    x = FIDInceptionA(32, p, name='Mixed_5b')(x)
    x = FIDInceptionA(64, p, name='Mixed_5c')(x)
    x = FIDInceptionA(64, p, name='Mixed_5d')(x)
    x = InceptionB(p, name='Mixed_6a')(x)
    x = FIDInceptionC(128, p, name='Mixed_6b')(x)
    x = FIDInceptionC(160, p, name='Mixed_6c')(x)
    x = FIDInceptionC(160, p, name='Mixed_6d')(x)
    x = FIDInceptionC(192, p, name='Mixed_6e')(x)
    x = InceptionD(p, name='Mixed_7a')(x)
    x = FIDInceptionE('avg', p, name='Mixed_7b')(x)
    x = FIDInceptionE('max', p, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, precision=p, name='fc')(pool)
    return {'pool': pool, 'logits': logits}


# ---------------------------------------------------------------------------------------------
# Reading PyTorch checkpoints without torch: metrics/torch_weights.py, given this network's
# layout (every variable's PyTorch name and shape, and BN's num_batches_tracked counters).

WEIGHTS_DESCRIPTION = "pytorch-fid's Inception weights"


def torch_shapes() -> dict:
  """{PyTorch name: PyTorch shape} of pytorch-fid's state_dict (the layout `load_params` reads)."""
  return {name: _torch_shape(shape) for name, (_, _, shape) in _torch_variables().items()}


@functools.lru_cache(maxsize=1)
def _layout() -> torch_weights.Layout:
  return torch_weights.Layout(torch_shapes(), counter_suffix='num_batches_tracked')


def _max_data_bytes() -> int:
  """The most tensor bytes a weights file may hold: every network variable as float64, + 1 MiB."""
  return _layout().max_data_bytes


def _refusals(path):
  """Any failure to read a weights file as one ValueError naming the file and what to do."""
  return torch_weights.refusals(path, WEIGHTS_DESCRIPTION, NO_WEIGHTS_MESSAGE)


def read_torch_state_dict(path) -> dict:
  """{name: np.ndarray} of the FID Inception's state_dict, `torch.save`d, without torch.

  Reads the zip format (torch ≥ 1.6) and the legacy one, with torch_weights' checks: a file that
  is not that state_dict (another network, a pickle naming any global other than OrderedDict,
  the tensor rebuild functions and storage types, or larger than the network) raises ValueError.
  """
  path = os.fspath(path)
  with _refusals(path):
    return torch_weights.read_torch(path, _layout())


# ---------------------------------------------------------------------------------------------
# State dict → Flax variables.

@functools.lru_cache(maxsize=1)
def _variable_shapes() -> dict:
  variables = jax.eval_shape(FIDInceptionV3(image_size=None).init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32))
  return {col: traverse_util.flatten_dict(variables[col]) for col in ('params', 'batch_stats')}


_TORCH_SUFFIX = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
                 ('params', 'bias'): 'bias', ('batch_stats', 'mean'): 'running_mean',
                 ('batch_stats', 'var'): 'running_var'}


def _to_flax(array: np.ndarray, flax_shape: tuple) -> np.ndarray:
  if len(flax_shape) == 4:  # conv (O, I, kh, kw) → (kh, kw, I, O)
    return array.transpose(2, 3, 1, 0)
  if len(flax_shape) == 2:  # linear (out, in) → (in, out)
    return array.T
  return array


def _torch_shape(flax_shape: tuple) -> tuple:
  if len(flax_shape) == 4:
    kh, kw, i, o = flax_shape
    return (o, i, kh, kw)
  return tuple(reversed(flax_shape))


@functools.lru_cache(maxsize=1)
def _torch_variables() -> dict:
  """{PyTorch name: (collection, Flax path, Flax shape)} of every variable of the network."""
  expected = {}
  for col, shapes in _variable_shapes().items():
    for path, leaf in shapes.items():
      expected['.'.join(path[:-1] + (_TORCH_SUFFIX[col, path[-1]],))] = (col, path, leaf.shape)
  return expected


def state_dict_to_variables(state_dict) -> dict:
  """Flax {'params', 'batch_stats'} (float32 numpy) from a pytorch-fid Inception state_dict.

  Every expected key must be present with its PyTorch shape and no other key may appear
  (BN `num_batches_tracked` counters are ignored); else `ValueError` naming the first offender.
  """
  expected, variables = _torch_variables(), {}
  for name, (col, path, shape) in expected.items():
    if name not in state_dict:
      raise ValueError(f'weights are missing {name!r} (expected shape {_torch_shape(shape)})')
    array = np.asarray(state_dict[name])
    if array.shape != _torch_shape(shape):
      raise ValueError(f'{name!r} has shape {array.shape}, expected {_torch_shape(shape)}')
    variables.setdefault(col, {})[path] = np.ascontiguousarray(
        _to_flax(array, shape), np.float32)
  for name in state_dict:
    if name not in expected and not name.endswith('num_batches_tracked'):
      raise ValueError(f'unexpected key {name!r} in the weights')
  return {col: traverse_util.unflatten_dict(v) for col, v in variables.items()}


def load_params(path) -> dict:
  """Flax variables for `FIDInceptionV3` from pytorch-fid's `.pth` or an `.npz` of its state_dict.

  The `.npz` holds the PyTorch names (e.g. 'Mixed_5b.branch1x1.conv.weight') and layouts.
  Without a path: `ValueError(NO_WEIGHTS_MESSAGE)`, a missing file: FileNotFoundError; weights
  are never downloaded. Any file that cannot be read as the network's weights: one ValueError.
  """
  path = torch_weights.existing_path(path, NO_WEIGHTS_MESSAGE)
  with _refusals(path):
    state_dict = torch_weights.read(path, _layout())
    return state_dict_to_variables(state_dict)


def fetch_weights(cache_root: Optional[str] = None, url: str = FID_WEIGHTS_URL,
                  timeout: float = 60.0) -> str:
  """The path of pytorch-fid's weights in the cache (`configs.cache_dir('inception')`),
  downloading them there first if they are missing; checks the sha256 prefix of the file.

  Raises OSError with one sentence saying what to do when the download fails (no network).
  """
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  return torch_weights.download(
      url, configs.cache_dir('inception', cache_root), 'the FID Inception weights',
      NO_WEIGHTS_MESSAGE, lambda tmp: weights_sha256(tmp).startswith(FID_WEIGHTS_SHA256_PREFIX),
      timeout)


def weights_sha256(path) -> str:
  """Hex SHA-256 of the weights file, for eval protocols to record which weights they used.

  (torch.hub names files `<name>-<first 8 hex of sha256>.pth`, so pytorch-fid's file should
  start with '6726825d'.)
  """
  return torch_weights.file_sha256(path)

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
`jax.image.resize(..., 'bilinear', antialias=False)`: half-pixel centres, an out-of-range tap
clamped to the edge pixel, which is what `F.interpolate(mode='bilinear', align_corners=False)`
computes (up- and downsampling; `antialias=False` matters only when downsampling, where
PyTorch's default does no antialiasing either). Padding follows PyTorch exactly: explicit
symmetric conv padding, max pools with no padding (floor mode) and -inf padding in Mixed_7c.

Weights: `load_params(path)` reads pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` without
torch (a restricted unpickler; zip and legacy formats) or an `.npz` of the same state_dict, and
converts names and layouts: conv (O, I, kh, kw) → kernel (kh, kw, I, O); BN weight/bias/
running_mean/running_var → scale/bias/mean/var; fc (1008, 2048) → kernel (2048, 1008). The file
is untrusted input: names, shapes and sizes are checked against the network before anything is
decompressed or allocated, and any file that is not these weights raises one ValueError.
"""
import collections
import contextlib
import functools
import hashlib
import io
import math
import os
import pickle
import re
import shutil
import struct
import urllib.request
import zipfile
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

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
  b, h, w, c = x.shape
  if (h, w) == tuple(size):
    return x
  return jax.image.resize(x, (b, *size, c), 'bilinear', antialias=False)


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
# Reading PyTorch checkpoints without torch.
#
# A weights file is untrusted input. Everything it makes the reader allocate is bounded by the
# network it must hold, and checked before it is allocated or decompressed: the zip entries by
# name and declared size, the pickle by what it may name (a flat state_dict of tensors), each
# tensor by its name, shape and extent, then only the storages those tensors use are read.

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
_MAX_PICKLE_BYTES = 2 << 20  # data.pkl, or the legacy pickles (pytorch-fid's: ~100 KB)
_MARGIN_BYTES = 1 << 20  # beyond the variables: num_batches_tracked counters, storage padding
_MAX_METADATA_BYTES = 64 << 10  # each of byteorder, version, .data/serialization_id, ...
_MAX_KEYS = 10_000  # state_dict entries (pytorch-fid's: 472 variables + 94 BN counters)
_MAX_NDIM = 8


@functools.lru_cache(maxsize=1)
def _max_data_bytes() -> int:
  """The most tensor bytes a weights file may hold: every network variable as float64, + 1 MiB."""
  return 8 * sum(math.prod(v[2]) for v in _torch_variables().values()) + _MARGIN_BYTES


class _Unbuildable:
  """The reader's own objects refuse pickle's BUILD, which could rewrite their checked fields."""
  __slots__ = ()

  def __setstate__(self, state):
    raise pickle.UnpicklingError('refusing to BUILD a storage, tensor or storage type')


class _StorageType(_Unbuildable, collections.namedtuple('_StorageType', 'name dtype')):
  """Marker for `torch.<Name>Storage`: only its element dtype matters."""
  __slots__ = ()


def _bfloat16():
  import ml_dtypes  # a jax dependency
  return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': _bfloat16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}


class _Storage(_Unbuildable):
  """One storage: its dtype, its declared element count, and its flat array once read."""
  __slots__ = ('dtype', 'numel', 'array')

  def __init__(self, dtype: np.dtype, numel: int):
    self.dtype, self.numel, self.array = dtype, numel, None


class _LazyTensor(_Unbuildable,
                  collections.namedtuple('_LazyTensor', 'storage offset size stride')):
  """A checked `_rebuild_tensor_v2` call, materialised once its storage has been read."""
  __slots__ = ()

  @property
  def nbytes(self) -> int:
    return math.prod(self.size) * self.storage.dtype.itemsize

  def materialize(self) -> np.ndarray:
    flat = self.storage.array
    if not isinstance(flat, np.ndarray):
      raise ValueError('checkpoint references a storage that was never written')
    if 0 in self.size:
      return np.zeros(self.size, flat.dtype)
    if self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) >= flat.size:
      raise ValueError(f'a tensor of size {self.size} runs past its storage')  # as_strided: never
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size, tuple(s * flat.itemsize for s in self.stride),
        writeable=False)
    return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """A `_LazyTensor`, refused unless it lies inside its storage and within `_max_data_bytes()`.

  Checked now, before anything is allocated: ≤ 8 dims, sizes, strides and offset ints in
  [0, 2**63) (torch's int64), at most the network's size in elements (a size of (2**40,) with
  stride 0 would otherwise make the copy in `materialize` allocate terabytes), and every
  element inside the storage's declared numel.
  """
  del requires_grad, backward_hooks, metadata
  if not isinstance(storage, _Storage):
    raise ValueError('_rebuild_tensor_v2 called without a storage')
  if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
          and len(size) == len(stride) <= _MAX_NDIM
          and all(type(n) is int and 0 <= n < 2**63  # pylint: disable=unidiomatic-typecheck
                  for n in (storage_offset, *size, *stride))):
    raise ValueError('bad tensor geometry (sizes, strides and offset must be ≤ 8 non-negative '
                     'int64s)')
  size, stride = tuple(size), tuple(stride)
  if math.prod(size) > _max_data_bytes() // storage.dtype.itemsize:
    raise ValueError(f'a tensor of {math.prod(size)} elements is larger than the whole network '
                     f'({_max_data_bytes()} bytes)')
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if 0 not in size and last >= storage.numel:
    raise ValueError(f'a tensor of size {size} runs past its storage of {storage.numel} elements')
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
  del requires_grad, backward_hooks, unused
  return data


def _refuse_bytearray8(unpickler):
  del unpickler
  raise pickle.UnpicklingError('refusing BYTEARRAY8: a state_dict holds no bytearrays')


class _RestrictedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
  """Unpickles a state_dict and nothing else: every other global is refused.

  Allowed: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`
  (rebuilt as checked `_LazyTensor`s) and `torch.<Dtype>Storage` (dtype markers). Persistent ids
  ('storage', storage_type, key: str, location, numel: int[, view]) go to
  `storage_fn(dtype, key, numel, view)`, which checks them against the file.

  The pure-Python unpickler, as the C one turns 9 bytes into gigabytes: its memo is an array
  zero-filled up to twice the largest index a PUT names (`LONG_BINPUT 2**31`: 32 GiB); this one's
  is a dict. Its one such opcode, BYTEARRAY8 (a zero-filled `bytearray(n)`), is refused. Input is
  ≤ 2 MiB (0.3 s per MiB at worst here; pytorch-fid's pickle loads in ~15 ms).
  """
  dispatch = {**pickle._Unpickler.dispatch,  # pylint: disable=protected-access
              pickle.BYTEARRAY8[0]: _refuse_bytearray8}

  def __init__(self, file, storage_fn: Optional[Callable] = None):
    super().__init__(file)
    self._storage_fn = storage_fn

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor_v2
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name in _STORAGE_DTYPES:
      dtype = _STORAGE_DTYPES[name]
      return _StorageType(name, np.dtype(_bfloat16() if dtype is _bfloat16 else dtype))
    raise pickle.UnpicklingError(
        f'refusing to unpickle {module}.{name}: a weights file may only hold a state_dict of '
        'tensors')

  def persistent_load(self, pid):
    if self._storage_fn is None:
      raise pickle.UnpicklingError('unexpected persistent id in this pickle')
    nonneg_int = lambda v: type(v) is int and v >= 0  # pylint: disable=unidiomatic-typecheck
    view = pid[5] if isinstance(pid, tuple) and len(pid) == 6 else None
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ('storage', b'storage')
            and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
            and nonneg_int(pid[4])
            and (view is None or (isinstance(view, tuple) and len(view) == 3 and
                                  isinstance(view[0], str) and all(map(nonneg_int, view[1:]))))):
      raise pickle.UnpicklingError("unsupported persistent id (expected ('storage', "
                                   'torch.<Type>Storage, key, location, numel[, view]))')
    return self._storage_fn(pid[1].dtype, pid[2], pid[4], view)


def _state_dict_tensors(obj) -> dict:
  """{name: _LazyTensor} of an unpickled state_dict, checked before any tensor data is read.

  A state_dict is flat: a dict or OrderedDict (possibly under a 'state_dict' key) of ≤ 10,000
  str → tensor. Nothing nested is walked, so objects that share references (2**40 leaves from a
  1 KB pickle) never expand, and torch's `_metadata` attribute is ignored. Each name must be a
  network variable with its exact shape or a BN `num_batches_tracked` counter (as
  `state_dict_to_variables`, so unknown keys are refused here already), and all tensors
  together at most `_max_data_bytes()`.
  """
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if type(obj) not in (dict, collections.OrderedDict):  # pylint: disable=unidiomatic-typecheck
    raise ValueError(f'expected a state_dict (a dict of name → tensor), got {type(obj).__name__}')
  if len(obj) > _MAX_KEYS:
    raise ValueError(f'{len(obj)} entries, more than the {_MAX_KEYS} a state_dict may hold')
  total = 0
  for name, tensor in obj.items():
    if not (isinstance(name, str) and isinstance(tensor, _LazyTensor)):
      raise ValueError('a state_dict maps names to tensors, this one maps '
                       f'{type(name).__name__} to {type(tensor).__name__}')
    total += tensor.nbytes
    if total > _max_data_bytes():
      raise ValueError(f'its tensors hold more than the whole network ({_max_data_bytes()} '
                       'bytes)')
    _check_entry(name, tensor.size)
  return dict(obj)


def _check_entry(name: str, shape: tuple):
  """Refuses a state_dict entry the network has no place for, or of the wrong shape."""
  expected = _torch_variables()
  if name in expected:
    if tuple(shape) != _torch_shape(expected[name][2]):
      raise ValueError(f'{name!r} has shape {tuple(shape)}, expected '
                       f'{_torch_shape(expected[name][2])}')
  elif name.endswith('num_batches_tracked'):
    if math.prod(shape) > 1:
      raise ValueError(f'{name!r} has shape {tuple(shape)}, expected ()')
  else:
    raise ValueError(f'unexpected key {name!r} in the weights')


_ZIP_METADATA = re.compile(r'byteorder|version|\.format_version|\.storage_alignment|'
                           r'\.data/\w[\w.-]*')
_ZIP_STORAGE = re.compile(r'data/(\w+)')


def _zip_layout(zf: zipfile.ZipFile) -> tuple:
  """(prefix, {storage key: ZipInfo}) of torch.save's layout, checked before any decompression.

  From the central directory alone: the entries must be one `<prefix>data.pkl` (≤ 2 MiB),
  storages `<prefix>data/<key>` (each and together ≤ `_max_data_bytes()` as declared), torch's
  small metadata (`byteorder`, `version`, `.format_version`, `.storage_alignment`, `.data/*`, each
  ≤ 64 KiB) or empty directories; any other name (`../evil`, `archive/other.bin`) is refused.
  """
  infos = zf.infolist()
  if len(infos) > _MAX_KEYS + 16:
    raise ValueError(f'the zip has {len(infos)} entries, more than a state_dict may hold')
  pkls = [i.filename for i in infos if re.fullmatch(r'([^/]+/)?data\.pkl', i.filename)]
  if len(pkls) != 1:
    raise ValueError(f'expected one data.pkl in the zip, found {len(pkls)}')
  prefix = pkls[0][:-len('data.pkl')]
  storages, total = {}, 0
  for info in infos:
    rest = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
    if rest == 'data.pkl':
      limit = _MAX_PICKLE_BYTES
    elif rest is not None and _ZIP_STORAGE.fullmatch(rest):
      storages[rest[len('data/'):]] = info
      total += info.file_size
      limit = _max_data_bytes()
    elif rest is not None and _ZIP_METADATA.fullmatch(rest):
      limit = _MAX_METADATA_BYTES
    elif rest in ('', 'data/', '.data/'):
      limit = 0  # directory entries, as some zip tools add
    else:
      raise ValueError(f"zip entry {info.filename!r} is not part of torch.save's layout")
    if info.file_size > limit:
      raise ValueError(f'zip entry {info.filename!r} declares {info.file_size} bytes, more than '
                       f'the network allows ({limit} bytes)')
  if total > _max_data_bytes():
    raise ValueError(f'the storages in the zip declare {total} bytes, more than the network '
                     f'allows ({_max_data_bytes()} bytes)')
  return prefix, storages


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
  """An entry's bytes, never decompressing more than its declared size + 1."""
  with zf.open(info) as f:
    data = f.read(info.file_size + 1)
  if len(data) != info.file_size:
    raise ValueError(f'zip entry {info.filename!r} does not decompress to its declared '
                     f'{info.file_size} bytes')
  return data


def _read_zip_checkpoint(path) -> dict:
  """torch.save's zip format: `<prefix>data.pkl` + raw storages `<prefix>data/<key>`.

  Each storage's entry must hold exactly the numel × itemsize bytes its persistent id declares;
  only the storages of the checked state_dict's tensors are decompressed.
  """
  with zipfile.ZipFile(path) as zf:
    prefix, entries = _zip_layout(zf)
    order = '<'
    if prefix + 'byteorder' in zf.namelist():
      text = _read_entry(zf, zf.getinfo(prefix + 'byteorder')).decode().strip()
      if text not in ('little', 'big'):
        raise ValueError(f'unknown byteorder {text!r}')
      order = '<' if text == 'little' else '>'
    storages = {}

    def storage_fn(dtype, key, numel, view):
      del view  # the zip format has no storage views
      if key not in entries:
        raise ValueError(f'missing storage {prefix}data/{key}')
      if entries[key].file_size != numel * dtype.itemsize:
        raise ValueError(f'storage {key} declares {numel} {dtype} elements but its entry holds '
                         f'{entries[key].file_size} bytes')
      storage = storages.setdefault(key, _Storage(dtype, numel))
      if storage.dtype != dtype:
        raise ValueError(f'storage {key} is referenced as both {storage.dtype} and {dtype}')
      return storage

    pkl = _read_entry(zf, zf.getinfo(prefix + 'data.pkl'))
    tensors = _state_dict_tensors(_RestrictedUnpickler(io.BytesIO(pkl), storage_fn).load())
    used = {id(t.storage) for t in tensors.values()}
    for key, storage in storages.items():
      if id(storage) in used:
        storage.array = np.frombuffer(_read_entry(zf, entries[key]),
                                      storage.dtype.newbyteorder(order))
  return {name: t.materialize() for name, t in tensors.items()}


def _read_legacy_checkpoint(path) -> dict:
  """torch.save's pre-1.6 format: magic, protocol, sys_info, data pickle, storage keys, storages.

  Each storage follows as an int64 element count and its little-endian bytes, in key order. The
  pickles must lie in the first 2 MiB; the storages they declare may hold at most
  `_max_data_bytes()` together (checked before any is read), and each count must be the numel
  its persistent id declared.
  """
  with open(path, 'rb') as f:
    head = io.BytesIO(f.read(_MAX_PICKLE_BYTES))  # the pickles (then the storages' bytes)
    try:
      magic = _RestrictedUnpickler(head).load()
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError('neither a zip nor a legacy PyTorch checkpoint; re-save it with '
                       'torch.save (zip format) or as .npz') from e
    if type(magic) is not int or magic != _LEGACY_MAGIC:  # pylint: disable=unidiomatic-typecheck
      raise ValueError('not a PyTorch checkpoint (bad magic number); re-save it with '
                       'torch.save (zip format) or as .npz')
    if _RestrictedUnpickler(head).load() != _LEGACY_PROTOCOL:
      raise ValueError('unsupported legacy PyTorch protocol version')
    _RestrictedUnpickler(head).load()  # sys_info
    roots, views, declared = {}, {}, [0]

    def storage_fn(dtype, key, numel, view):
      root = roots.get(key)
      if root is None:
        declared[0] += numel * dtype.itemsize
        if declared[0] > _max_data_bytes():
          raise ValueError(f'its storages declare more than the whole network '
                           f'({_max_data_bytes()} bytes)')
        root = roots[key] = _Storage(dtype, numel)
      elif (root.dtype, root.numel) != (dtype, numel):
        raise ValueError(f'storage {key} is referenced with two types or sizes')
      if view is None:
        return root
      view_key, offset, size = view  # a storage view: a slice of the root storage
      if offset + size > numel:
        raise ValueError(f'a view of {size} elements at {offset} runs past storage {key}')
      if view_key not in views:
        views[view_key] = (_Storage(dtype, size), key, offset)
      return views[view_key][0]

    tensors = _state_dict_tensors(_RestrictedUnpickler(head, storage_fn).load())
    keys = _RestrictedUnpickler(head).load()
    if not (isinstance(keys, list) and len(keys) <= _MAX_KEYS):
      raise ValueError('bad storage key list')
    f.seek(head.tell())
    for key in keys:
      root = roots.get(key) if isinstance(key, str) else None
      if root is None or root.array is not None:
        raise ValueError(f'the storage list names {key!r}, which the pickle did not reference '
                         'or which it lists twice')
      count = f.read(8)
      if len(count) != 8 or struct.unpack('<q', count)[0] != root.numel:
        raise ValueError(f'storage {key} does not hold the {root.numel} elements declared')
      data = f.read(root.numel * root.dtype.itemsize)
      if len(data) != root.numel * root.dtype.itemsize:
        raise ValueError(f'truncated storage {key}')
      root.array = np.frombuffer(data, root.dtype.newbyteorder('<'))
    for view, key, offset in views.values():
      if roots[key].array is not None:
        view.array = roots[key].array[offset:offset + view.numel]
  return {name: t.materialize() for name, t in tensors.items()}


def _read_npz(path) -> dict:
  """An `.npz` of the state_dict: a zip of `<name>.npy` arrays, never unpickled.

  Before any array is decompressed, the entries' declared sizes (each and together ≤
  `_max_data_bytes()`, ≤ 10,000 entries); then each entry (a bounded read) must have a .npy
  header whose shape is the network's for that name and whose data has exactly that size.
  """
  _check_file_size(path)
  with zipfile.ZipFile(path) as zf:
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if len(infos) > _MAX_KEYS or total > _max_data_bytes():
      raise ValueError(f'the npz declares {len(infos)} arrays of {total} bytes, more than the '
                       f'network allows ({_max_data_bytes()} bytes)')
    state_dict = {}
    for info in infos:
      if not info.filename.endswith('.npy'):
        raise ValueError(f'npz entry {info.filename!r} is not a .npy array')
      name, data = info.filename[:-len('.npy')], _read_entry(zf, info)
      buf = io.BytesIO(data)
      read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                     (2, 0): np.lib.format.read_array_header_2_0}.get(
                         np.lib.format.read_magic(buf))
      if read_header is None:
        raise ValueError(f'{name!r}: unsupported .npy version')
      shape, _, dtype = read_header(buf)
      if dtype.hasobject or math.prod(shape) * dtype.itemsize != len(data) - buf.tell():
        raise ValueError(f'{name!r}: its .npy header does not match its data')
      _check_entry(name, shape)
      buf.seek(0)
      state_dict[name] = np.lib.format.read_array(buf, allow_pickle=False)
  return state_dict


def _check_file_size(path):
  """A file larger than the network (as float64) + the pickle cap is not its weights: refused
  before it is parsed, which also bounds a zip's central directory and a legacy pickle."""
  size = os.path.getsize(path)
  if size > _max_data_bytes() + _MAX_PICKLE_BYTES:
    raise ValueError(f'{size} bytes, more than the network can take '
                     f'({_max_data_bytes() + _MAX_PICKLE_BYTES})')


def _read_torch(path) -> dict:
  _check_file_size(path)
  if zipfile.is_zipfile(path):
    return _read_zip_checkpoint(path)
  return _read_legacy_checkpoint(path)


@contextlib.contextmanager
def _refusals(path):
  """Any failure to read a weights file as one ValueError naming the file and what to do.

  A damaged or hostile file can make the parsers raise anything (pickle.UnpicklingError,
  zipfile.BadZipFile, EOFError, struct.error, KeyError, MemoryError, RecursionError, an OSError
  from a seek to a corrupt offset, ...); `evaluation.inception_extractor` turns the ValueError
  into a one-line `error:` of the CLI.
  """
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    reason = ' '.join((str(e) if type(e) is ValueError  # pylint: disable=unidiomatic-typecheck
                       else f'{type(e).__name__}: {e}').split())
    reason = reason if len(reason) <= 300 else reason[:300] + '…'
    raise ValueError(f"{path} could not be read as pytorch-fid's Inception weights: {reason}. "
                     f'{NO_WEIGHTS_MESSAGE}') from e


def read_torch_state_dict(path) -> dict:
  """{name: np.ndarray} of the FID Inception's state_dict, `torch.save`d, without torch.

  Reads the zip format (torch ≥ 1.6) and the legacy one, with the checks above: a file that is
  not that state_dict (another network, a pickle naming any global other than OrderedDict, the
  tensor rebuild functions and storage types, or larger than the network) raises ValueError.
  """
  path = os.fspath(path)
  with _refusals(path):
    return _read_torch(path)


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
  if not path:
    raise ValueError(NO_WEIGHTS_MESSAGE)
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist. {NO_WEIGHTS_MESSAGE}')
  with _refusals(path):
    state_dict = _read_npz(path) if path.endswith('.npz') else _read_torch(path)
    return state_dict_to_variables(state_dict)


def fetch_weights(cache_root: Optional[str] = None, url: str = FID_WEIGHTS_URL,
                  timeout: float = 60.0) -> str:
  """The path of pytorch-fid's weights in the cache (`configs.cache_dir('inception')`),
  downloading them there first if they are missing; checks the sha256 prefix of the file.

  Raises OSError with one sentence saying what to do when the download fails (no network).
  """
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  directory = configs.cache_dir('inception', cache_root)
  path = os.path.join(directory, os.path.basename(url))
  if os.path.exists(path):
    return path
  os.makedirs(directory, exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, 'wb') as f:
      shutil.copyfileobj(response, f)
  except OSError as e:  # URLError, timeouts and refused connections are OSErrors
    if os.path.exists(tmp):
      os.remove(tmp)
    raise OSError(f'could not download the FID Inception weights ({e}); '
                  f'{NO_WEIGHTS_MESSAGE}') from None
  if not weights_sha256(tmp).startswith(FID_WEIGHTS_SHA256_PREFIX):
    os.remove(tmp)
    raise OSError(f'the file downloaded from {url} is not the FID Inception weights (sha256 '
                  f'mismatch); {NO_WEIGHTS_MESSAGE}')
  os.replace(tmp, path)
  return path


def weights_sha256(path) -> str:
  """Hex SHA-256 of the weights file, for eval protocols to record which weights they used.

  (torch.hub names files `<name>-<first 8 hex of sha256>.pth`, so pytorch-fid's file should
  start with '6726825d'.)
  """
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()

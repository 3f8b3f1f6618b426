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
running_mean/running_var → scale/bias/mean/var; fc (1008, 2048) → kernel (2048, 1008).
"""
import collections
import functools
import hashlib
import os
import pickle
import shutil
import struct
import urllib.request
import zipfile
from typing import Any, Callable, Optional

import chex
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
    chex.assert_rank(x, 4)
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

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _StorageType(collections.namedtuple('_StorageType', 'name dtype')):
  """Marker for `torch.<Name>Storage`: only its element dtype matters."""


def _bfloat16():
  import ml_dtypes  # a jax dependency
  return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': _bfloat16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}


class _Storage:
  """One storage: its dtype, and its flat array once the bytes are known."""

  def __init__(self, dtype):
    self.dtype, self.array = dtype, None


class _LazyTensor(collections.namedtuple('_LazyTensor', 'storage offset size stride')):
  """A `_rebuild_tensor_v2` call, materialised once every storage has been read."""

  def materialize(self) -> np.ndarray:
    flat, size, stride = self.storage.array, tuple(self.size), tuple(self.stride)
    if flat is None:
      raise ValueError('checkpoint references a storage that was never written')
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or self.offset < 0:
      raise ValueError(f'bad tensor geometry: size {size}, stride {stride}')
    if 0 in size:
      return np.zeros(size, flat.dtype)
    last = self.offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
      raise ValueError(f'tensor of size {size} runs past its storage of {flat.size} elements')
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], size, tuple(s * flat.itemsize for s in stride), writeable=False)
    return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata
  if not isinstance(storage, _Storage):
    raise pickle.UnpicklingError('_rebuild_tensor_v2 called without a storage')
  return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
  del requires_grad, backward_hooks, unused
  return data


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles a state_dict and nothing else: every other global is refused.

  Allowed: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`
  (rebuilt as numpy arrays) and `torch.<Dtype>Storage` (dtype markers). Persistent ids
  ('storage', storage_type, key, location, numel[, view_metadata]) go to `storage_fn`.
  """

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
      return _StorageType(name, _bfloat16() if dtype is _bfloat16 else dtype)
    raise pickle.UnpicklingError(
        f'refusing to unpickle {module}.{name}: a weights file may only hold a state_dict of '
        'tensors')

  def persistent_load(self, pid):
    if self._storage_fn is None:
      raise pickle.UnpicklingError('unexpected persistent id in this pickle')
    if not isinstance(pid, tuple) or len(pid) < 5:
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
    kind = pid[0].decode('ascii') if isinstance(pid[0], bytes) else pid[0]
    if kind != 'storage' or not isinstance(pid[1], _StorageType):
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
    view = pid[5] if len(pid) > 5 else None
    return self._storage_fn(pid[1], str(pid[2]), int(pid[4]), view)


def _materialize(obj):
  if isinstance(obj, _LazyTensor):
    return obj.materialize()
  if isinstance(obj, dict):
    return {k: _materialize(v) for k, v in obj.items()}
  return obj


def _read_zip_checkpoint(path) -> dict:
  """torch.save's zip format: `<name>/data.pkl` + raw storages `<name>/data/<key>`."""
  with zipfile.ZipFile(path) as zf:
    pkls = [n for n in zf.namelist() if n == 'data.pkl' or n.endswith('/data.pkl')]
    if len(pkls) != 1:
      raise ValueError(f'{path}: expected one data.pkl in the zip, found {pkls}')
    prefix = pkls[0][:-len('data.pkl')]
    names = set(zf.namelist())
    order = '<'
    if prefix + 'byteorder' in names:
      order = {'little': '<', 'big': '>'}[zf.read(prefix + 'byteorder').decode().strip()]
    storages = {}

    def storage_fn(stype, key, numel, view):
      del numel, view  # the zip format has no views; the file's length is the truth
      if key not in storages:
        entry = f'{prefix}data/{key}'
        if entry not in names:
          raise ValueError(f'{path}: missing storage {entry}')
        storage = _Storage(stype.dtype)
        storage.array = np.frombuffer(zf.read(entry), np.dtype(stype.dtype).newbyteorder(order))
        storages[key] = storage
      return storages[key]

    with zf.open(pkls[0]) as f:
      obj = _RestrictedUnpickler(f, storage_fn).load()
  return _materialize(obj)


def _read_legacy_checkpoint(path) -> dict:
  """torch.save's pre-1.6 format: magic, protocol, sys_info, data pickle, storage keys, storages.

  Each storage follows as an int64 element count and its little-endian bytes, in key order.
  """
  with open(path, 'rb') as f:
    try:
      magic = _RestrictedUnpickler(f).load()
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'{path}: neither a zip nor a legacy PyTorch checkpoint; re-save it with '
                       'torch.save (zip format) or as .npz') from e
    if magic != _LEGACY_MAGIC:
      raise ValueError(f'{path}: not a PyTorch checkpoint (bad magic number); re-save it with '
                       'torch.save (zip format) or as .npz')
    if _RestrictedUnpickler(f).load() != _LEGACY_PROTOCOL:
      raise ValueError(f'{path}: unsupported legacy PyTorch protocol version')
    _RestrictedUnpickler(f).load()  # sys_info
    storages, views = {}, []

    def storage_fn(stype, key, numel, view):
      del numel
      storage = storages.setdefault(key, _Storage(stype.dtype))
      if view is None:
        return storage
      view_key, offset, view_size = view  # a storage view: a slice of the root storage
      if str(view_key) not in storages:
        storages[str(view_key)] = _Storage(stype.dtype)
        views.append((storages[str(view_key)], key, int(offset), int(view_size)))
      return storages[str(view_key)]

    obj = _RestrictedUnpickler(f, storage_fn).load()
    keys = _RestrictedUnpickler(f).load()
    for key in keys:
      storage = storages[str(key)]
      (numel,) = struct.unpack('<q', f.read(8))
      dtype = np.dtype(storage.dtype).newbyteorder('<')
      data = f.read(numel * dtype.itemsize)
      if len(data) != numel * dtype.itemsize:
        raise ValueError(f'{path}: truncated storage {key}')
      storage.array = np.frombuffer(data, dtype)
    for view_storage, key, offset, size in views:
      view_storage.array = storages[key].array[offset:offset + size]
  return _materialize(obj)


def read_torch_state_dict(path) -> dict:
  """{name: np.ndarray} from a `torch.save`d state_dict, without torch or arbitrary unpickling.

  Reads the zip format (torch ≥ 1.6) and the legacy one; a pickle naming any global other than
  OrderedDict, the tensor rebuild functions and storage types raises `pickle.UnpicklingError`.
  """
  path = os.fspath(path)
  if zipfile.is_zipfile(path):
    obj = _read_zip_checkpoint(path)
  else:
    obj = _read_legacy_checkpoint(path)
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise ValueError(f'{path}: expected a state_dict, got {type(obj).__name__}')
  return {str(k): v for k, v in obj.items()}


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


def state_dict_to_variables(state_dict) -> dict:
  """Flax {'params', 'batch_stats'} (float32 numpy) from a pytorch-fid Inception state_dict.

  Every expected key must be present with its PyTorch shape and no other key may appear
  (BN `num_batches_tracked` counters are ignored); else `ValueError` naming the first offender.
  """
  expected, variables = {}, {}
  for col, shapes in _variable_shapes().items():
    for path, leaf in shapes.items():
      expected['.'.join(path[:-1] + (_TORCH_SUFFIX[col, path[-1]],))] = (col, path, leaf.shape)
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
  Without a path: `ValueError(NO_WEIGHTS_MESSAGE)`; weights are never downloaded.
  """
  if not path:
    raise ValueError(NO_WEIGHTS_MESSAGE)
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist. {NO_WEIGHTS_MESSAGE}')
  if path.endswith('.npz'):
    with np.load(path, allow_pickle=False) as f:
      state_dict = {k: f[k] for k in f.files}
  else:
    state_dict = read_torch_state_dict(path)
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

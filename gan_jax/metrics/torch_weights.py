"""Reading a PyTorch state_dict (`torch.save`'s zip or legacy format, or an `.npz`) without torch.

The feature networks' weights (metrics/inception.py, metrics/dinov2.py) are published as
`torch.save`d state_dicts. A weights file is untrusted input: everything it makes the reader
allocate is bounded by the network it must hold, described by a `Layout` (every tensor's name
and shape), and checked before it is allocated or decompressed: the zip entries by name and
declared size, the pickle by what it may name (a flat state_dict of tensors), each tensor by its
name, shape and extent; then only the storages those tensors use are read.

  read_torch(path, layout)   {name: np.ndarray} of a zip (torch ≥ 1.6) or legacy checkpoint
  read_npz(path, layout)     the same from an `.npz` of the state_dict (never unpickled)
  read(path, layout)         either, by the file name's extension
  refusals(path, what, advice)   any failure to read as one ValueError naming the file
"""
import collections
import contextlib
import dataclasses
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
from typing import Callable, Mapping, Optional

import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
MAX_PICKLE_BYTES = 2 << 20  # data.pkl, or the legacy pickles (pytorch-fid's: ~100 KB)
_MARGIN_BYTES = 1 << 20  # beyond the variables: num_batches_tracked counters, storage padding
_MAX_METADATA_BYTES = 64 << 10  # each of byteorder, version, .data/serialization_id, ...
_MAX_KEYS = 10_000  # state_dict entries (pytorch-fid's: 472 variables + 94 BN counters)
_MAX_NDIM = 8


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
  """The state_dict a weights file must hold: exactly these tensors, with these shapes.

  `shapes`: every tensor the network needs, PyTorch name → shape. `optional`: tensors the file
  may also hold, which the network does not use (e.g. DINOv2's `mask_token`), name → shape.
  `counter_suffix`: names ending so with at most one element may also appear (BatchNorm's
  `num_batches_tracked`). Anything else is refused.
  """
  shapes: Mapping[str, tuple]
  optional: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
  counter_suffix: Optional[str] = None

  @functools.cached_property
  def max_data_bytes(self) -> int:
    """The most tensor bytes a weights file may hold: every tensor as float64, + 1 MiB."""
    return 8 * sum(math.prod(s) for s in (*self.shapes.values(), *self.optional.values())) + \
        _MARGIN_BYTES

  def check_entry(self, name: str, shape: tuple):
    """Refuses a state_dict entry the network has no place for, or of the wrong shape."""
    expected = self.shapes.get(name, self.optional.get(name))
    if expected is not None:
      if tuple(shape) != tuple(expected):
        raise ValueError(f'{name!r} has shape {tuple(shape)}, expected {tuple(expected)}')
    elif self.counter_suffix and name.endswith(self.counter_suffix):
      if math.prod(shape) > 1:
        raise ValueError(f'{name!r} has shape {tuple(shape)}, expected ()')
    else:
      raise ValueError(f'unexpected key {name!r} in the weights')


class _Unbuildable:
  """The reader's own objects refuse pickle's BUILD, which could rewrite their checked fields."""
  __slots__ = ()

  def __setstate__(self, state):
    raise pickle.UnpicklingError('refusing to BUILD a storage, tensor or storage type')


class _StorageType(_Unbuildable, collections.namedtuple('_StorageType', 'name dtype')):
  """Marker for `torch.<Name>Storage`: only its element dtype matters."""
  __slots__ = ()


def _bfloat16():
  import ml_dtypes  # pylint: disable=import-outside-toplevel  # a jax dependency
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
                       backward_hooks=None, metadata=None, *, max_bytes: int):
  """A `_LazyTensor`, refused unless it lies inside its storage and within `max_bytes`.

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
  if math.prod(size) > max_bytes // storage.dtype.itemsize:
    raise ValueError(f'a tensor of {math.prod(size)} elements is larger than the whole network '
                     f'({max_bytes} bytes)')
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

  def __init__(self, file, storage_fn: Optional[Callable] = None, max_bytes: int = 0):
    super().__init__(file)
    self._storage_fn = storage_fn
    self._max_bytes = max_bytes

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return functools.partial(_rebuild_tensor_v2, max_bytes=self._max_bytes)
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


def _state_dict_tensors(obj, layout: Layout) -> dict:
  """{name: _LazyTensor} of an unpickled state_dict, checked before any tensor data is read.

  A state_dict is flat: a dict or OrderedDict (possibly under a 'state_dict' key) of ≤ 10,000
  str → tensor. Nothing nested is walked, so objects that share references (2**40 leaves from a
  1 KB pickle) never expand, and torch's `_metadata` attribute is ignored. Each name must be one
  of `layout`'s with its exact shape (so unknown keys are refused here already), and all tensors
  together at most `layout.max_data_bytes`.
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
    if total > layout.max_data_bytes:
      raise ValueError(f'its tensors hold more than the whole network ({layout.max_data_bytes} '
                       'bytes)')
    layout.check_entry(name, tensor.size)
  return dict(obj)


_ZIP_METADATA = re.compile(r'byteorder|version|\.format_version|\.storage_alignment|'
                           r'\.data/\w[\w.-]*')
_ZIP_STORAGE = re.compile(r'data/(\w+)')


def _zip_layout(zf: zipfile.ZipFile, max_bytes: int) -> tuple:
  """(prefix, {storage key: ZipInfo}) of torch.save's layout, checked before any decompression.

  From the central directory alone: the entries must be one `<prefix>data.pkl` (≤ 2 MiB),
  storages `<prefix>data/<key>` (each and together ≤ `max_bytes` as declared), torch's small
  metadata (`byteorder`, `version`, `.format_version`, `.storage_alignment`, `.data/*`, each
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
      limit = MAX_PICKLE_BYTES
    elif rest is not None and _ZIP_STORAGE.fullmatch(rest):
      storages[rest[len('data/'):]] = info
      total += info.file_size
      limit = max_bytes
    elif rest is not None and _ZIP_METADATA.fullmatch(rest):
      limit = _MAX_METADATA_BYTES
    elif rest in ('', 'data/', '.data/'):
      limit = 0  # directory entries, as some zip tools add
    else:
      raise ValueError(f"zip entry {info.filename!r} is not part of torch.save's layout")
    if info.file_size > limit:
      raise ValueError(f'zip entry {info.filename!r} declares {info.file_size} bytes, more than '
                       f'the network allows ({limit} bytes)')
  if total > max_bytes:
    raise ValueError(f'the storages in the zip declare {total} bytes, more than the network '
                     f'allows ({max_bytes} bytes)')
  return prefix, storages


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
  """An entry's bytes, never decompressing more than its declared size + 1."""
  with zf.open(info) as f:
    data = f.read(info.file_size + 1)
  if len(data) != info.file_size:
    raise ValueError(f'zip entry {info.filename!r} does not decompress to its declared '
                     f'{info.file_size} bytes')
  return data


def _read_zip_checkpoint(path, layout: Layout, tensors: bool = True) -> dict:
  """torch.save's zip format: `<prefix>data.pkl` + raw storages `<prefix>data/<key>`.

  Each storage's entry must hold exactly the numel × itemsize bytes its persistent id declares;
  only the storages of the checked state_dict's tensors are decompressed (none when `tensors`
  is False: then {name: shape} from the pickle alone).
  """
  with zipfile.ZipFile(path) as zf:
    prefix, entries = _zip_layout(zf, layout.max_data_bytes)
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
    lazy = _state_dict_tensors(
        _RestrictedUnpickler(io.BytesIO(pkl), storage_fn, layout.max_data_bytes).load(), layout)
    if not tensors:
      return {name: t.size for name, t in lazy.items()}
    used = {id(t.storage) for t in lazy.values()}
    for key, storage in storages.items():
      if id(storage) in used:
        storage.array = np.frombuffer(_read_entry(zf, entries[key]),
                                      storage.dtype.newbyteorder(order))
  return {name: t.materialize() for name, t in lazy.items()}


def _read_legacy_checkpoint(path, layout: Layout, tensors: bool = True) -> dict:
  """torch.save's pre-1.6 format: magic, protocol, sys_info, data pickle, storage keys, storages.

  Each storage follows as an int64 element count and its little-endian bytes, in key order. The
  pickles must lie in the first 2 MiB; the storages they declare may hold at most
  `layout.max_data_bytes` together (checked before any is read), and each count must be the
  numel its persistent id declared.
  """
  max_bytes = layout.max_data_bytes
  with open(path, 'rb') as f:
    head = io.BytesIO(f.read(MAX_PICKLE_BYTES))  # the pickles (then the storages' bytes)
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
        if declared[0] > max_bytes:
          raise ValueError(f'its storages declare more than the whole network '
                           f'({max_bytes} bytes)')
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

    lazy = _state_dict_tensors(_RestrictedUnpickler(head, storage_fn, max_bytes).load(), layout)
    if not tensors:
      return {name: t.size for name, t in lazy.items()}
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
  return {name: t.materialize() for name, t in lazy.items()}


def check_file_size(path, layout: Layout):
  """A file larger than the network (as float64) + the pickle cap is not its weights: refused
  before it is parsed, which also bounds a zip's central directory and a legacy pickle."""
  size = os.path.getsize(path)
  if size > layout.max_data_bytes + MAX_PICKLE_BYTES:
    raise ValueError(f'{size} bytes, more than the network can take '
                     f'({layout.max_data_bytes + MAX_PICKLE_BYTES})')


def read_npz(path, layout: Layout) -> dict:
  """An `.npz` of the state_dict: a zip of `<name>.npy` arrays, never unpickled.

  Before any array is decompressed, the entries' declared sizes (each and together ≤
  `layout.max_data_bytes`, ≤ 10,000 entries); then each entry (a bounded read) must have a .npy
  header whose shape is the layout's for that name and whose data has exactly that size.
  """
  check_file_size(path, layout)
  with zipfile.ZipFile(path) as zf:
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if len(infos) > _MAX_KEYS or total > layout.max_data_bytes:
      raise ValueError(f'the npz declares {len(infos)} arrays of {total} bytes, more than the '
                       f'network allows ({layout.max_data_bytes} bytes)')
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
      layout.check_entry(name, shape)
      buf.seek(0)
      state_dict[name] = np.lib.format.read_array(buf, allow_pickle=False)
  return state_dict


def read_torch(path, layout: Layout, tensors: bool = True) -> dict:
  """{name: np.ndarray} of a `torch.save`d state_dict holding `layout`'s tensors, without torch.

  Reads the zip format (torch ≥ 1.6) and the legacy one, with the checks above: a file that is
  not that state_dict (another network, a pickle naming any global other than OrderedDict, the
  tensor rebuild functions and storage types, or larger than the network) raises ValueError
  (or another exception for damaged files: see `refusals`). `tensors=False`: {name: shape} from
  the pickle alone, no storage decompressed or read.
  """
  check_file_size(path, layout)
  if zipfile.is_zipfile(path):
    return _read_zip_checkpoint(path, layout, tensors)
  return _read_legacy_checkpoint(path, layout, tensors)


def read(path, layout: Layout) -> dict:
  """`read_npz` for a name ending in `.npz`, else `read_torch`."""
  path = os.fspath(path)
  return read_npz(path, layout) if path.endswith('.npz') else read_torch(path, layout)


@contextlib.contextmanager
def refusals(path, what: str, advice: str):
  """Any failure to read a weights file as one ValueError: '{path} could not be read as {what}:
  {reason}. {advice}', on one line.

  A damaged or hostile file can make the parsers raise anything (pickle.UnpicklingError,
  zipfile.BadZipFile, EOFError, struct.error, KeyError, MemoryError, RecursionError, an OSError
  from a seek to a corrupt offset, ...); `evaluation`'s extractors turn the ValueError into a
  one-line `error:` of the CLI.
  """
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    reason = ' '.join((str(e) if type(e) is ValueError  # pylint: disable=unidiomatic-typecheck
                       else f'{type(e).__name__}: {e}').split())
    reason = reason if len(reason) <= 300 else reason[:300] + '…'
    raise ValueError(f'{path} could not be read as {what}: {reason}. {advice}') from e


def file_sha256(path) -> str:
  """Hex SHA-256 of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def download(url: str, directory: str, what: str, instructions: str, check,
             timeout: float = 60.0) -> str:
  """The copy of `url` in `directory`, downloaded there first if missing: into a temp file,
  accepted if `check(temp path)` is true, then moved into place (a failed or rejected download
  leaves nothing behind). An OSError of one sentence (`what` failed, then `instructions`) when
  the download fails (no network) or the file is not `what`."""
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
    raise OSError(f'could not download {what} ({e}); {instructions}') from None
  if not check(tmp):
    os.remove(tmp)
    raise OSError(f'the file downloaded from {url} is not {what}; {instructions}')
  os.replace(tmp, path)
  return path


def existing_path(path, no_weights_message: str) -> str:
  """`path` as a str: ValueError(no_weights_message) when none is given, FileNotFoundError
  (naming it, then the message) when it does not exist."""
  if not path:
    raise ValueError(no_weights_message)
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist. {no_weights_message}')
  return path

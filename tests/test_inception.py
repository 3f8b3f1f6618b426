"""Tests for the FID Inception-v3 port: shapes, layer count, torch-free loading, resize."""
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gan_jax.metrics import inception

BATCH, SIZE = 2, 75  # 75×75 is the smallest input the network accepts


# --- A torch-free writer of torch.save's formats (the test builds its own checkpoints). ---

class _Global:
  """Pickles as the opcode GLOBAL `module.name`, without importing the module."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise NotImplementedError


class _StorageRef:
  def __init__(self, key, array, numel=None):
    self.key, self.array = key, array
    self.numel = array.size if numel is None else numel  # what the persistent id declares


class _Tensor:
  """Reduces as torch does: `torch._utils._rebuild_tensor_v2(storage, offset, size, stride…)`."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def __reduce__(self):
    return (_Global('torch._utils', '_rebuild_tensor_v2'),
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


_STORAGE_NAMES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.int64): 'LongStorage'}


class _TorchPickler(pickle._Pickler):  # pylint: disable=protected-access
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
  dispatch[_Global] = lambda self, obj: self.write(
      pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())

  def __init__(self, file, legacy=False):
    super().__init__(file, protocol=2)
    self.legacy = legacy

  def persistent_id(self, obj):
    if not isinstance(obj, _StorageRef):
      return None
    pid = ('storage', _Global('torch', _STORAGE_NAMES[obj.array.dtype]), obj.key, 'cpu',
           obj.numel)
    return pid + (None,) if self.legacy else pid


def _to_pickle_objects(state_dict):
  """Each array gets its own storage; 'strided' arrays are stored transposed (non-contiguous)."""
  objs, storages = collections.OrderedDict(), {}
  for i, (name, array) in enumerate(state_dict.items()):
    key = str(i)
    if array.ndim == 4:  # store (O, I, kh, kw) as a permuted view of an (kh, kw, I, O) storage
      base = np.ascontiguousarray(array.transpose(2, 3, 1, 0))
      kh, kw, ci, co = base.shape
      stride = (1, co, kw * ci * co, ci * co)
      storages[key] = base.ravel()
      objs[name] = _Tensor(_StorageRef(key, storages[key]), 0, array.shape, stride)
    else:  # contiguous, with a nonzero offset into a padded storage
      flat = np.concatenate([np.zeros(3, array.dtype), array.ravel()])
      storages[key] = flat
      stride = tuple(int(np.prod(array.shape[d + 1:])) for d in range(array.ndim))
      objs[name] = _Tensor(_StorageRef(key, flat), 3, array.shape, stride)
  return objs, storages


def write_torch_zip(path, state_dict):
  objs, storages = _to_pickle_objects(state_dict)
  buf = io.BytesIO()
  _TorchPickler(buf).dump(objs)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
    zf.writestr('archive/data.pkl', buf.getvalue())
    zf.writestr('archive/byteorder', 'little')
    for key, flat in storages.items():
      zf.writestr(f'archive/data/{key}', flat.astype(flat.dtype.newbyteorder('<')).tobytes())
    zf.writestr('archive/version', '3\n')


def write_torch_legacy(path, state_dict):
  objs, storages = _to_pickle_objects(state_dict)
  with open(path, 'wb') as f:
    for header in (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001, 'little_endian': True}):
      pickle.dump(header, f, protocol=2)
    _TorchPickler(f, legacy=True).dump(objs)
    pickle.dump(list(storages), f, protocol=2)
    for flat in storages.values():
      f.write(struct.pack('<q', flat.size) + flat.tobytes())


# --- Fixtures. ---

def _random_state_dict(seed=0):
  """A full pytorch-fid state_dict (PyTorch names and layouts) with random values."""
  rng = np.random.default_rng(seed)
  out = collections.OrderedDict()
  for col, shapes in inception._variable_shapes().items():  # pylint: disable=protected-access
    for path, leaf in shapes.items():
      suffix = inception._TORCH_SUFFIX[col, path[-1]]  # pylint: disable=protected-access
      shape = inception._torch_shape(leaf.shape)  # pylint: disable=protected-access
      if suffix == 'running_var':
        value = rng.uniform(0.5, 1.5, shape)
      elif suffix in ('running_mean', 'bias'):
        value = rng.normal(0, 0.1, shape)
      elif suffix == 'weight' and len(shape) == 1:
        value = rng.uniform(0.5, 1.5, shape)
      else:
        value = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
      out['.'.join(path[:-1] + (suffix,))] = value.astype(np.float32)
      if suffix == 'running_var':
        out['.'.join(path[:-2] + ('bn', 'num_batches_tracked'))] = np.array(7, np.int64)
  return out


@pytest.fixture(scope='module')
def state_dict():
  return _random_state_dict()


@pytest.fixture(scope='module')
def variables(state_dict):
  return inception.state_dict_to_variables(state_dict)


def _check_loaded(loaded, state_dict):
  """Every loaded array equals the original after the layout conversion."""
  for name, value in state_dict.items():
    if name.endswith('num_batches_tracked'):
      continue
    *path, leaf = name.split('.')
    col, key = {'weight': ('params', 'kernel' if value.ndim > 1 else 'scale'),
                'bias': ('params', 'bias'), 'running_mean': ('batch_stats', 'mean'),
                'running_var': ('batch_stats', 'var')}[leaf]
    node = loaded[col]
    for p in path:
      node = node[p]
    expected = {4: lambda a: a.transpose(2, 3, 1, 0), 2: lambda a: a.T}.get(value.ndim,
                                                                          lambda a: a)(value)
    np.testing.assert_array_equal(np.asarray(node[key]), expected, err_msg=name)


# --- Network. ---

def test_output_shapes_and_finite(variables):
  model = inception.FIDInceptionV3(image_size=SIZE)
  x = jax.random.uniform(jax.random.key(0), (BATCH, SIZE, SIZE, 3), minval=-1, maxval=1)
  out = jax.jit(model.apply)(variables, x)
  chex.assert_shape(out['pool'], (BATCH, inception.POOL_DIM))
  chex.assert_shape(out['logits'], (BATCH, inception.NUM_CLASSES))
  chex.assert_tree_all_finite(out)
  assert np.all(np.asarray(out['pool']) >= 0)  # mean of ReLU outputs
  assert not np.allclose(out['pool'][0], out['pool'][1])  # depends on the image
  # logits are fc(pool): the head is a plain Dense on the pooled features.
  fc = variables['params']['fc']
  np.testing.assert_allclose(out['logits'], out['pool'] @ fc['kernel'] + fc['bias'],
                             rtol=1e-4, atol=1e-4)


def test_default_resizes_any_input_to_299():
  model = inception.FIDInceptionV3()
  x = jax.ShapeDtypeStruct((BATCH, 32, 32, 3), jnp.float32)
  out = jax.eval_shape(lambda v, x: model.apply(v, x),
                       jax.eval_shape(model.init, jax.random.key(0), x), x)
  chex.assert_shape(out['pool'], (BATCH, 2048))
  chex.assert_shape(out['logits'], (BATCH, 1008))
  with pytest.raises(ValueError, match='NHWC RGB'):
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 3, 32, 32), jnp.float32))


def test_layer_counts():
  """94 BasicConv2d (conv + BN) as torchvision's Inception3 without aux head, and one fc."""
  shapes = inception._variable_shapes()  # pylint: disable=protected-access
  convs = {p[:-2] for p in shapes['params'] if p[-2:] == ('conv', 'kernel')}
  bns = {p[:-2] for p in shapes['params'] if p[-2:] == ('bn', 'scale')}
  stats = {p[:-2] for p in shapes['batch_stats'] if p[-1] == 'mean'}
  assert len(convs) == 94 and convs == bns == stats
  assert not any(p[-2] == 'conv' and p[-1] == 'bias' for p in shapes['params'])  # bias=False
  assert shapes['params'][('fc', 'kernel')].shape == (2048, 1008)
  # 23,834,568 torchvision Inception3 weights without AuxLogits, + 8 classes × 2049.
  assert sum(np.prod(s.shape) for s in shapes['params'].values()) == 23_850_960
  per_block = collections.Counter(p[0] for p in convs)
  assert per_block['Mixed_5b'] == 7 and per_block['Mixed_6a'] == 4
  assert per_block['Mixed_6e'] == 10 and per_block['Mixed_7a'] == 6 and per_block['Mixed_7c'] == 9


def test_basic_conv_matches_numpy_with_pytorch_weight(state_dict, variables):
  """Loaded 1×7 conv + BN + ReLU == NCHW cross-correlation with the (O, I, kh, kw) weight."""
  name = 'Mixed_6b.branch7x7_2'
  w = state_dict[f'{name}.conv.weight']  # (128, 128, 1, 7)
  gamma, beta, mean, var = (state_dict[f'{name}.bn.{k}']
                            for k in ('weight', 'bias', 'running_mean', 'running_var'))
  x = np.random.default_rng(1).normal(size=(1, w.shape[1], 4, 9)).astype(np.float32)  # NCHW
  xp = np.pad(x, ((0, 0), (0, 0), (0, 0), (3, 3)))
  ref = np.zeros((1, w.shape[0], 4, 9))
  for v in range(7):
    ref += np.einsum('bchw,oc->bohw', xp[:, :, :, v:v + 9], w[:, :, 0, v], optimize=True)
  ref = (ref - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
  ref = np.maximum(ref * gamma[:, None, None] + beta[:, None, None], 0)
  block = variables['params']['Mixed_6b']['branch7x7_2'], variables['batch_stats']['Mixed_6b']
  out = inception.BasicConv2d(128, (1, 7), padding=(0, 3)).apply(
      {'params': block[0], 'batch_stats': block[1]['branch7x7_2']}, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), ref, rtol=1e-4, atol=1e-4)


def test_fid_pools():
  """FIDInceptionA's avg pool ignores padding; E_2's max pool pads with -inf."""
  x = -jnp.ones((1, 3, 3, 1))
  avg = inception._avg_pool_3x3(x)  # pylint: disable=protected-access
  np.testing.assert_allclose(avg, -1.0)  # count_include_pad=True would give -4/9 at corners
  mx = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
  np.testing.assert_allclose(mx, -1.0)  # zero padding would give 0


# --- Loading. ---

def test_pth_zip_roundtrip(tmp_path, state_dict):
  path = tmp_path / 'pt_inception.pth'
  write_torch_zip(path, state_dict)
  raw = inception.read_torch_state_dict(path)
  assert list(raw) == list(state_dict)
  for name in state_dict:
    np.testing.assert_array_equal(raw[name], state_dict[name], err_msg=name)
  _check_loaded(inception.load_params(path), state_dict)


def test_pth_legacy_roundtrip(tmp_path, state_dict):
  path = tmp_path / 'legacy.pth'
  write_torch_legacy(path, state_dict)
  _check_loaded(inception.load_params(path), state_dict)


def test_npz(tmp_path, state_dict):
  path = tmp_path / 'weights.npz'
  np.savez(path, **state_dict)
  _check_loaded(inception.load_params(path), state_dict)


def test_shape_and_key_errors(state_dict):
  bad = dict(state_dict)
  bad['Mixed_5b.branch1x1.conv.weight'] = np.zeros((64, 192, 3, 3), np.float32)
  with pytest.raises(ValueError, match=r'Mixed_5b\.branch1x1\.conv\.weight.*\(64, 192, 1, 1\)'):
    inception.state_dict_to_variables(bad)
  missing = {k: v for k, v in state_dict.items() if k != 'fc.bias'}
  with pytest.raises(ValueError, match='missing.*fc.bias'):
    inception.state_dict_to_variables(missing)
  with pytest.raises(ValueError, match='unexpected.*AuxLogits'):
    inception.state_dict_to_variables({**state_dict, 'AuxLogits.fc.bias': np.zeros(1008)})


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_refuses_arbitrary_globals(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.pth'
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', pickle.dumps({'x': _Evil(marker)}, protocol=2))
  with pytest.raises(ValueError, match='refusing.*system'):
    inception.load_params(path)
  legacy = tmp_path / 'evil_legacy.pth'
  legacy.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
  with pytest.raises(ValueError, match='neither a zip nor a legacy'):
    inception.load_params(legacy)
  assert not marker.exists()


# --- Hostile weights files: each refused with a ValueError, before it costs time or memory. ---

def _pickle_bytes(obj, legacy=False):
  buf = io.BytesIO()
  _TorchPickler(buf, legacy=legacy).dump(obj)
  return buf.getvalue()


def _fc_bias(size=(1008,), stride=(1,), offset=0, numel=None, key='0'):
  """A one-tensor state_dict {'fc.bias': tensor over a 1008-float storage} and its storage."""
  flat = np.arange(1008, dtype=np.float32)
  return {'fc.bias': _Tensor(_StorageRef(key, flat, numel), offset, size, stride)}, {key: flat}


def _write_zip(path, objs, storages, declared=None, extra=()):
  """torch.save's zip layout; `declared` {entry: size} overrides central-directory sizes."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
    zf.writestr('archive/data.pkl', objs if isinstance(objs, bytes) else _pickle_bytes(objs))
    for key, flat in storages.items():
      zf.writestr(f'archive/data/{key}', flat if isinstance(flat, bytes) else flat.tobytes())
    for name, data in extra:
      zf.writestr(name, data)
    for info in zf.filelist:  # the central directory is written from these at close
      info.file_size = (declared or {}).get(info.filename, info.file_size)


def _write_legacy(path, objs, storages):
  with open(path, 'wb') as f:
    for header in (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001}):
      pickle.dump(header, f, protocol=2)
    f.write(objs if isinstance(objs, bytes) else _pickle_bytes(objs, legacy=True))
    pickle.dump(list(storages), f, protocol=2)
    for flat in storages.values():
      f.write(struct.pack('<q', flat.size) + flat.tobytes())


@pytest.fixture
def opened(monkeypatch):
  """The zip entries the loader opens (decompresses), in order."""
  names, real_open = [], zipfile.ZipFile.open

  def spy(self, name, mode='r', *args, **kwargs):
    if mode == 'r':  # not the test's own writes
      names.append(getattr(name, 'filename', name))
    return real_open(self, name, mode, *args, **kwargs)

  monkeypatch.setattr(zipfile.ZipFile, 'open', spy)
  return names


def _refused(load, path, match):
  """`load(path)` raises one ValueError matching `match`, within a second."""
  inception._max_data_bytes()  # pylint: disable=protected-access  # (builds the shapes once)
  start = time.perf_counter()
  with pytest.raises(ValueError, match=match) as e:
    load(path)
  assert time.perf_counter() - start < 1.0
  assert '\n' not in str(e.value) and inception.FID_WEIGHTS_URL in str(e.value)
  return e


@pytest.mark.parametrize('declared', [
    {'archive/data/0': 6_500_000_000},  # a 6.5 GB bomb
    {'archive/data/0': 100 << 20, 'archive/data/1': 100 << 20},  # together over the cap
    {'archive/data.pkl': 3 << 20}, {'archive/version': 1 << 20}])
def test_zip_bomb_refused_before_decompressing(tmp_path, opened, declared):
  objs, storages = _fc_bias()
  storages['1'] = np.zeros(4, np.float32)
  path = tmp_path / 'bomb.pth'
  _write_zip(path, objs, storages, declared, extra=[('archive/version', '3\n')])
  _refused(inception.load_params, path, 'declare.* bytes, more than the network allows')
  assert not opened  # nothing was decompressed


def test_zip_entry_longer_than_declared(tmp_path):
  """An entry whose stream runs past its declared size: read only that far, then refused."""
  objs, _ = _fc_bias()
  path = tmp_path / 'long.pth'
  _write_zip(path, objs, {'0': np.zeros(4 * 1008, np.float32).tobytes()},
             declared={'archive/data/0': 4 * 1008})
  _refused(inception.read_torch_state_dict, path, 'CRC|does not decompress')


@pytest.mark.parametrize('name', ['../evil', 'archive/other.bin', 'archive/data/../../evil',
                                  'other/data.pkl', '/etc/passwd'])
def test_zip_entry_outside_layout(tmp_path, opened, name):
  objs, storages = _fc_bias()
  path = tmp_path / 'odd.pth'
  _write_zip(path, objs, storages, extra=[(name, b'x')])
  _refused(inception.load_params, path, "not part of torch.save's layout|one data.pkl")
  assert not opened


def test_torch_zip_metadata_and_state_dict_attribute(tmp_path):
  """torch 2.x's extra entries and the OrderedDict's `_metadata` attribute are accepted."""

  class _StateDict(collections.OrderedDict):
    def __reduce__(self):
      return (collections.OrderedDict, (), {'_metadata': {'': {'version': 1}}}, None,
              iter(self.items()))

  objs, storages = _fc_bias()
  counter = np.array(7, np.int64)
  objs = _StateDict(**objs, **{'Conv2d_1a_3x3.bn.num_batches_tracked': _Tensor(
      _StorageRef('1', counter.ravel()), 0, (), ())})
  storages['1'] = counter.ravel()
  path = tmp_path / 'torch2.pth'
  _write_zip(path, objs, storages, extra=[
      ('archive/byteorder', 'little'), ('archive/version', '3\n'), ('archive/.format_version', '1'),
      ('archive/.storage_alignment', '64'), ('archive/.data/serialization_id', '0' * 40)])
  raw = inception.read_torch_state_dict(path)
  np.testing.assert_array_equal(raw['fc.bias'], np.arange(1008))
  assert raw['Conv2d_1a_3x3.bn.num_batches_tracked'] == 7


def _shared_reference_bomb(kind):
  """A ~1 KB pickle of 2**40 leaves once walked: each level holds the previous one twice."""
  obj = [] if kind == 'list' else {}
  for _ in range(40):
    obj = [obj, obj] if kind == 'list' else {'a': obj, 'b': obj}
  return {'state_dict': obj} if kind == 'wrapped' else obj


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
@pytest.mark.parametrize('kind', ['list', 'dict', 'wrapped'])
def test_shared_reference_pickle_bomb(tmp_path, fmt, kind):
  data = pickle.dumps(_shared_reference_bomb(kind), protocol=2)
  assert len(data) < 1024
  path = tmp_path / 'bomb.pth'
  (_write_zip if fmt == 'zip' else _write_legacy)(path, data, {})
  inception._max_data_bytes()  # pylint: disable=protected-access
  tracemalloc.start()
  try:
    _refused(inception.load_params, path, 'expected a state_dict|maps names to tensors')
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
  finally:
    tracemalloc.stop()


def _refused_in_little_memory(path, fmt, objs, storages, match):
  """The file written in `fmt` is refused (`match`) with a peak of < 4 MiB allocated."""
  (_write_zip if fmt == 'zip' else _write_legacy)(path, objs, storages)
  inception._max_data_bytes()  # pylint: disable=protected-access  # cached before measuring
  tracemalloc.start()
  try:
    _refused(inception.load_params, path, match)
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
  finally:
    tracemalloc.stop()


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
@pytest.mark.parametrize('data,match', [
    (b'\x80\x02}r\xff\xff\xff\x7f.', 'missing'),  # LONG_BINPUT 2**32-1: 64 GiB of C memo
    (b'\x80\x05\x96' + (2**40).to_bytes(8, 'little') + b'.', 'BYTEARRAY8'),  # bytearray(2**40)
    (b'\x80\x02ctorch\nFloatStorage\n}b.', 'refusing to BUILD')])  # rewriting a checked object
def test_pickle_opcodes_that_allocate_are_harmless(tmp_path, fmt, data, match):
  _refused_in_little_memory(tmp_path / 'memo.pth', fmt, data, {}, match)


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
@pytest.mark.parametrize('geometry,match', [
    (((2**40,), (0,), 0), 'larger than the whole network'),
    (((2**31, 2**31), (0, 0), 0), 'larger than the whole network'),
    (((1008,), (2**63,), 0), 'bad tensor geometry'),
    (((1008,), (2**62,), 0), 'runs past its storage'),
    (((1008,), (1,), -1), 'bad tensor geometry'),
    (((1008,), (1,), 1), 'runs past its storage'),
    (((1008,), (1,), 2**70), 'bad tensor geometry')])
def test_tensor_geometry_refused_before_allocation(tmp_path, fmt, geometry, match):
  size, stride, offset = geometry
  objs, storages = _fc_bias(size, stride, offset)
  _refused_in_little_memory(tmp_path / 'huge.pth', fmt, objs, storages, match)


def test_storage_sizes_must_match_their_declaration(tmp_path, opened):
  """A storage's bytes are the numel its persistent id declares; the legacy ones are capped."""
  objs, storages = _fc_bias(numel=1008)
  path = tmp_path / 'mismatch.pth'
  _write_zip(path, objs, {'0': np.zeros(2000, np.float32)})
  _refused(inception.load_params, path, r'storage 0 declares 1008 float32 elements but its entry')
  assert opened == ['archive/data.pkl']  # the storage itself was never decompressed
  legacy = tmp_path / 'huge_legacy.pth'
  _write_legacy(legacy, _fc_bias(numel=2**40)[0], storages)
  _refused(inception.load_params, legacy, 'storages declare more than the whole network')
  _write_legacy(legacy, objs, {'0': np.zeros(2000, np.float32)})
  _refused(inception.load_params, legacy, 'does not hold the 1008 elements declared')


@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'npz'])
def test_wrong_shape_or_key_refused_naming_it(tmp_path, fmt):
  for name, shape, match in [('fc.bias', (1000,), r"'fc\.bias' has shape \(1000,\), "
                                                  r'expected \(1008,\)'),
                             ('AuxLogits.fc.bias', (1000,), "unexpected key 'AuxLogits")]:
    path = tmp_path / f'w.{"npz" if fmt == "npz" else "pth"}'
    if fmt == 'npz':
      np.savez(path, **{name: np.zeros(shape, np.float32)})
    else:
      objs, storages = _fc_bias(shape)
      objs = {name: objs['fc.bias']}
      (_write_zip if fmt == 'zip' else _write_legacy)(path, objs, storages)
    _refused(inception.load_params, path, match)


def test_npz_refused_before_decompressing(tmp_path, opened):
  path = tmp_path / 'bomb.npz'
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
    zf.writestr('fc.bias.npy', b'\0' * 4096)
    zf.filelist[0].file_size = 6_500_000_000
  _refused(inception.load_params, path, 'more than the network allows')
  assert not opened
  header = io.BytesIO()  # a .npy whose header promises 2**40 floats over 16 bytes of data
  np.lib.format.write_array_header_1_0(
      header, {'descr': '<f4', 'fortran_order': False, 'shape': (2**40,)})
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('fc.bias.npy', header.getvalue() + b'\0' * 16)
  _refused(inception.load_params, path, 'header does not match its data')


def test_cli_refused_weights_end_in_one_error_line(tmp_path):
  objs, storages = _fc_bias()
  bad = tmp_path / 'bomb.pth'
  _write_zip(bad, objs, storages, {'archive/data/0': 6_500_000_000})
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  args = ['--config=experiments/gan_ring.py', f'--workdir={tmp_path / "run"}',
          '--config.eval.features=inception', "--config.eval.metrics=('fid',)",
          f'--config.eval.inception_weights={bad}', '--config.train.steps=1',
          '--config.train.steps_per_call=1', '--config.train.log_every=1',
          '--config.train.eval_every=1', '--config.train.checkpoint_every=1']
  result = subprocess.run(
      [sys.executable, '-m', 'gan_jax.main', *args], cwd=root, capture_output=True, text=True,
      env={**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}, timeout=120,
      check=False)
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f'error: config.eval.inception_weights: {bad}'), result.stderr
  assert 'more than the network allows' in last and inception.FID_WEIGHTS_URL in last


def test_no_weights_message(tmp_path):
  for path in (None, ''):
    with pytest.raises(ValueError, match='eval.inception_weights') as e:
      inception.load_params(path)
    assert inception.FID_WEIGHTS_URL in str(e.value)
  with pytest.raises(FileNotFoundError, match='eval.inception_weights'):
    inception.load_params(tmp_path / 'absent.pth')


def test_weights_sha256(tmp_path):
  path = tmp_path / 'w.bin'
  path.write_bytes(b'abc')
  assert inception.weights_sha256(path) == (
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')


# --- Resize. ---

def _torch_bilinear_reference(x, out_h, out_w):
  """F.interpolate(bilinear, align_corners=False) on an (H, W) array, as ATen computes it."""
  def taps(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0
  h0, h1, lh = taps(x.shape[0], out_h)
  w0, w1, lw = taps(x.shape[1], out_w)
  rows = x[h0] * (1 - lh)[:, None] + x[h1] * lh[:, None]
  return rows[:, w0] * (1 - lw) + rows[:, w1] * lw


@pytest.mark.parametrize('in_hw,out_hw', [((5, 7), (11, 3)), ((9, 4), (4, 10)), ((6, 6), (13, 13))])
def test_resize_matches_pytorch_bilinear(in_hw, out_hw):
  x = np.random.default_rng(2).normal(size=(2, *in_hw, 3))
  out = np.asarray(inception.resize_bilinear(jnp.asarray(x, jnp.float32), out_hw))
  for b in range(2):
    for c in range(3):
      np.testing.assert_allclose(out[b, :, :, c], _torch_bilinear_reference(x[b, :, :, c], *out_hw),
                                 rtol=1e-5, atol=1e-5)


def test_features_do_not_depend_on_the_batch(variables):
  """The same image's features in batches of 1, 7 and 64 (XLA may pick another convolution
  per batch shape): equal to float32 rounding. 75×75 inputs (no resize) keep it cheap."""
  model = jax.jit(inception.FIDInceptionV3(image_size=None).apply)
  x = np.asarray(jax.random.uniform(jax.random.key(1), (64, 75, 75, 3), minval=-1, maxval=1))
  full = np.asarray(model(variables, x)['pool'])
  seven = np.concatenate([np.asarray(model(variables, x[i:i + 7])['pool'])
                          for i in range(0, 63, 7)])
  ones = np.concatenate([np.asarray(model(variables, x[i:i + 1])['pool']) for i in range(5)])
  scale = np.abs(full).max()
  assert np.abs(seven - full[:63]).max() <= 1e-5 * scale
  assert np.abs(ones - full[:5]).max() <= 1e-5 * scale

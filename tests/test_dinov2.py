"""Tests for the DINOv2 ViT port: network, position-embedding interpolation, preprocessing, loading.

A tiny ViT (patch 4, width 32, 2 blocks, a 5 × 5 position table) stands in for ViT-L/14, whose
layout is checked with `jax.eval_shape` only (300M parameters are never materialised here).
"""
import collections
import hashlib
import io
import math
import urllib.error
import urllib.request
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from PIL import Image

from gan_jax.metrics import dinov2
from test_inception import (  # tests/ is on sys.path
    _StorageRef, _Tensor, _write_zip, write_torch_legacy, write_torch_zip)

TINY = dict(patch_size=4, embed_dim=32, depth=2, num_heads=4, mlp_ratio=4.0, pos_grid=5)
SIZE = 16  # a 4 × 4 grid: the 5 × 5 table is interpolated (with the hub's 0.1 offset)


@pytest.fixture(scope='module')
def model():
  return dinov2.DINOv2ViT(**TINY)


def _hub_names(depth: int, dim: int, patch: int, grid: int, hidden: int) -> dict:
  """The hub's `DinoVisionTransformer` state_dict (names and shapes), written out by hand."""
  names = {'cls_token': (1, 1, dim), 'pos_embed': (1, 1 + grid * grid, dim),
           'patch_embed.proj.weight': (dim, 3, patch, patch), 'patch_embed.proj.bias': (dim,),
           'norm.weight': (dim,), 'norm.bias': (dim,)}
  for i in range(depth):
    b = f'blocks.{i}.'
    names.update({
        b + 'norm1.weight': (dim,), b + 'norm1.bias': (dim,),
        b + 'attn.qkv.weight': (3 * dim, dim), b + 'attn.qkv.bias': (3 * dim,),
        b + 'attn.proj.weight': (dim, dim), b + 'attn.proj.bias': (dim,),
        b + 'ls1.gamma': (dim,), b + 'norm2.weight': (dim,), b + 'norm2.bias': (dim,),
        b + 'mlp.fc1.weight': (hidden, dim), b + 'mlp.fc1.bias': (hidden,),
        b + 'mlp.fc2.weight': (dim, hidden), b + 'mlp.fc2.bias': (dim,),
        b + 'ls2.gamma': (dim,)})
  return names


def _random_state_dict(seed=0, mask_token=True):
  """The tiny network's state_dict in the hub's names and PyTorch layouts, random values."""
  rng = np.random.default_rng(seed)
  out = collections.OrderedDict()
  for name, shape in _hub_names(2, 32, 4, 5, 128).items():
    if name.endswith('gamma') or (name.endswith('weight') and len(shape) == 1):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith('bias'):
      value = rng.normal(0, 0.1, shape)
    elif name in ('cls_token', 'pos_embed'):
      value = rng.normal(0, 0.5, shape)
    else:
      value = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
    out[name] = value.astype(np.float32)
  if mask_token:
    out['mask_token'] = np.zeros((1, 32), np.float32)  # in the official file, unused
  return out


@pytest.fixture(scope='module')
def state_dict():
  return _random_state_dict()


@pytest.fixture(scope='module')
def variables(state_dict, model):
  return dinov2.state_dict_to_variables(state_dict, model)


def _check_loaded(loaded, state_dict):
  """Every array sits where the hub's name says, in Flax's layout."""
  params = loaded['params']
  for name, value in state_dict.items():
    if name == 'mask_token':
      continue
    *path, leaf = name.split('.')
    if path[:1] == ['blocks']:
      path = [f'blocks_{path[1]}'] + path[2:]
    node = params
    for p in path:
      node = node[p]
    if leaf == 'weight':
      key = 'kernel' if value.ndim > 1 else 'scale'
      expected = {4: lambda a: a.transpose(2, 3, 1, 0), 2: lambda a: a.T}.get(
          value.ndim, lambda a: a)(value)
    else:
      key, expected = leaf, value
    got = node[key] if path else params[leaf]
    np.testing.assert_array_equal(np.asarray(got), expected, err_msg=name)
  n_loaded = sum(np.size(v) for v in jax.tree.leaves(params))
  assert n_loaded == sum(v.size for k, v in state_dict.items() if k != 'mask_token')


# --- Position-embedding interpolation: a pure-Python F.interpolate(bicubic). ---

def _keys_kernel(d, a=-0.75):
  """The Keys cubic convolution kernel at distance d (PyTorch's A = -0.75)."""
  d = abs(d)
  if d <= 1:
    return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
  if d < 2:
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
  return 0.0


def _bicubic_reference(table, out_hw, scales):
  """ATen's upsample_bicubic2d (align_corners=False) per output pixel over its 4 × 4 taps, in
  pure Python: src = (dst + 0.5) / scale - 0.5 with the given scale (None: in / out), taps
  clamped to the edge. `table`: nested lists [row][col][channel]."""
  m_h, m_w, channels = len(table), len(table[0]), len(table[0][0])

  def taps(dst, n_in, n_out, scale):
    src = (dst + 0.5) * (1 / scale if scale else n_in / n_out) - 0.5
    i = math.floor(src)
    t = min(max(src - i, 0.0), 1.0)
    return [(min(max(i + k, 0), n_in - 1), _keys_kernel(t - k)) for k in (-1, 0, 1, 2)]

  out = []
  for y in range(out_hw[0]):
    row = []
    for x in range(out_hw[1]):
      pixel = [0.0] * channels
      for iy, wy in taps(y, m_h, out_hw[0], scales[0]):
        for ix, wx in taps(x, m_w, out_hw[1], scales[1]):
          for c in range(channels):
            pixel[c] += wy * wx * table[iy][ix][c]
      row.append(pixel)
    out.append(row)
  return out


def _interpolate_reference(pos, grid, offset):
  m = math.isqrt(pos.shape[1] - 1)
  table = pos[0, 1:].reshape(m, m, -1).astype(np.float64).tolist()
  scales = [(g + offset) / m if offset else None for g in grid]
  resized = np.array(_bicubic_reference(table, grid, scales)).reshape(1, -1, pos.shape[-1])
  return np.concatenate([pos[:, :1], resized], axis=1)


@pytest.mark.parametrize('m,grid,offset', [
    (37, (16, 16), 0.1),  # ViT-L/14's table at dgm-eval's 224 px
    (37, (16, 16), 0.0),  # interpolate_offset=0: to a size, not a scale
    (5, (4, 4), 0.1), (5, (3, 7), 0.1), (6, (9, 8), 0.1), (4, (2, 8), 0.1)])
def test_pos_embed_interpolation_matches_pytorch_bicubic(m, grid, offset):
  pos = np.random.default_rng(m).normal(size=(1, 1 + m * m, 3)).astype(np.float32)
  image_hw = (grid[0] * 14, grid[1] * 14)
  out = np.asarray(dinov2.interpolate_pos_embed(pos, grid, image_hw, offset))
  assert out.shape == (1, 1 + grid[0] * grid[1], 3)
  np.testing.assert_allclose(out, _interpolate_reference(pos, grid, offset), rtol=0, atol=2e-6)


def test_pos_embed_offset_and_identity():
  pos = np.random.default_rng(0).normal(size=(1, 1 + 37 * 37, 4)).astype(np.float32)
  # 518 px: the table itself. 37 × 37 patches of a non-square image: interpolated (the hub
  # compares the pixel sides), and then the 0.1 offset makes it no identity.
  assert dinov2.interpolate_pos_embed(pos, (37, 37), (518, 518)) is pos
  moved = np.asarray(dinov2.interpolate_pos_embed(pos, (37, 37), (518, 524)))
  assert 1e-3 < np.abs(moved - pos).max()
  # The offset changes the sampling grid: the hub's 224 px embedding is not timm's size-based one.
  hub = np.asarray(dinov2.interpolate_pos_embed(pos, (16, 16), (224, 224), 0.1))
  by_size = np.asarray(dinov2.interpolate_pos_embed(pos, (16, 16), (224, 224), 0.0))
  assert np.abs(hub - by_size).max() > 1e-2
  np.testing.assert_array_equal(hub[:, 0], pos[:, 0])  # CLS position untouched
  np.testing.assert_allclose(dinov2.bicubic_matrix(37, 16, 16.1 / 37).sum(1), 1, atol=1e-12)


# --- Network. ---

def _layer_norm(x, w, b):
  mu = x.mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-6) * w + b


def _numpy_forward(sd, x, heads=4, patch=4):
  """The hub's forward in float64 NumPy from the PyTorch state_dict: NHWC x → CLS features."""
  sd = {k: v.astype(np.float64) for k, v in sd.items()}
  b, h, w, _ = x.shape
  gh, gw = h // patch, w // patch
  patches = x.reshape(b, gh, patch, gw, patch, 3)
  tokens = np.einsum('bhiwjc,dcij->bhwd', patches, sd['patch_embed.proj.weight'])
  tokens = tokens.reshape(b, gh * gw, -1) + sd['patch_embed.proj.bias']
  z = np.concatenate([np.broadcast_to(sd['cls_token'], (b, 1, tokens.shape[-1])), tokens], 1)
  pos = sd['pos_embed']
  if gh * gw != pos.shape[1] - 1 or h != w:  # the hub interpolates unless it has the table's grid
    pos = _interpolate_reference(pos, (gh, gw), 0.1)
  z = z + pos
  n, d = z.shape[1], z.shape[2]
  for i in range(2):
    p = lambda name, i=i: sd[f'blocks.{i}.{name}']
    y = _layer_norm(z, p('norm1.weight'), p('norm1.bias'))
    qkv = (y @ p('attn.qkv.weight').T + p('attn.qkv.bias')).reshape(b, n, 3, heads, d // heads)
    q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))  # (B, heads, N, d_head)
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    y = (attn @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    z = z + (y @ p('attn.proj.weight').T + p('attn.proj.bias')) * p('ls1.gamma')
    y = _layer_norm(z, p('norm2.weight'), p('norm2.bias'))
    y = y @ p('mlp.fc1.weight').T + p('mlp.fc1.bias')
    y = 0.5 * y * (1 + scipy.special.erf(y / np.sqrt(2)))
    z = z + (y @ p('mlp.fc2.weight').T + p('mlp.fc2.bias')) * p('ls2.gamma')
  return _layer_norm(z, sd['norm.weight'], sd['norm.bias'])


@pytest.mark.parametrize('hw', [(SIZE, SIZE), (20, 20), (12, 24)])
def test_forward_matches_numpy_reference(model, state_dict, variables, hw):
  """Shapes, and the tiny network against the hub's forward written in NumPy, at an
  interpolated grid, the table's own grid (20 px: no interpolation) and a non-square one."""
  x = np.random.default_rng(1).normal(size=(3, *hw, 3)).astype(np.float32)
  out = jax.jit(model.apply)(variables, x)
  n = (hw[0] // 4) * (hw[1] // 4)
  chex.assert_shape(out['cls'], (3, 32))
  chex.assert_shape(out['patch_tokens'], (3, n, 32))
  chex.assert_tree_all_finite(out)
  ref = _numpy_forward(state_dict, x.astype(np.float64))
  np.testing.assert_allclose(out['cls'], ref[:, 0], rtol=0, atol=2e-5)
  np.testing.assert_allclose(out['patch_tokens'], ref[:, 1:], rtol=0, atol=2e-5)
  assert np.abs(ref[0, 0] - ref[1, 0]).max() > 0.1  # the features depend on the image


def test_input_checks(model, variables):
  with pytest.raises(ValueError, match='multiples of the patch size 4'):
    model.apply(variables, jnp.zeros((1, 18, 16, 3)))
  with pytest.raises(ValueError, match='NHWC RGB'):
    model.apply(variables, jnp.zeros((1, 3, 16, 16)))


def test_vit_large_layout_by_eval_shape():
  """ViT-L/14's variables are the hub's state_dict, name for name and shape for shape
  (304,367,616 parameters + the unused mask_token), and 224 px images give 1024-d features."""
  model = dinov2.vit_large_14()
  assert dinov2.torch_state_dict_shapes() == _hub_names(24, 1024, 14, 37, 4096)
  assert sum(math.prod(s) for s in dinov2.torch_state_dict_shapes().values()) == 304_367_616
  x = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  chex.assert_shape(shapes['params']['pos_embed'], (1, 1370, 1024))
  chex.assert_shape(shapes['params']['blocks_23']['attn']['qkv']['kernel'], (1024, 3072))
  out = jax.eval_shape(model.apply, shapes, x)
  chex.assert_shape(out['cls'], (2, dinov2.FEATURE_DIM))
  chex.assert_shape(out['patch_tokens'], (2, 256, 1024))
  feats = jax.eval_shape(lambda v, im: dinov2.extract_features(v, im), shapes,
                         jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  chex.assert_shape(feats, (2, 1024))


# --- Preprocessing: dgm-eval's transform, against PIL. ---

def _dgm_eval_reference(u, resize):
  """dgm-eval's DINOv2Encoder.transform on uint8 HWC images, in NumPy + PIL, NHWC float32."""
  out = []
  for image in u:
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, -1)  # Image.convert('RGB')
    if resize == 'pil':  # TF.Resize((224, 224), BICUBIC) on the PIL image, then ToTensor
      pixels = np.asarray(Image.fromarray(image).resize((224, 224), Image.BICUBIC), np.float32)
    else:  # resizer.pil_resize: mode 'F' per channel, clipped
      pixels = np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode='F')
                                    .resize((224, 224), Image.BICUBIC)).clip(0, 255)
                         for c in range(3)], -1)
    out.append((pixels / np.float32(255) - np.float32(dinov2.IMAGENET_MEAN))
               / np.float32(dinov2.IMAGENET_STD))
  return np.stack(out)


@pytest.mark.parametrize('hw,channels', [((32, 32), 3), ((300, 260), 3), ((180, 250), 3),
                                         ((224, 224), 3), ((28, 28), 1)])
def test_preprocess_matches_dgm_eval(hw, channels):
  """The uint8 images a PNG holds, resized by PIL (bit for bit) and normalised: up, down (height
  first and width first) and identity, RGB and grey."""
  u = np.random.default_rng(hw[0]).integers(0, 256, (2, *hw, channels), dtype=np.uint8)
  u[0, : hw[0] // 3] = 255  # saturated edges: the resize overshoots and must clip
  x = u.astype(np.float32) / 127.5 - 1  # gan_jax's range; quantize gives u back exactly
  out = np.asarray(jax.jit(dinov2.preprocess)(x))
  ref = _dgm_eval_reference(u, 'pil')
  assert out.shape == (2, 224, 224, 3)
  np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
  pixels = np.asarray(dinov2.pil_resize(jnp.asarray(np.repeat(u, 3 // channels, -1)), (224, 224)))
  ref_pixels = np.stack([np.asarray(Image.fromarray(np.repeat(a, 3 // channels, -1))
                                    .resize((224, 224), Image.BICUBIC)) for a in u])
  np.testing.assert_array_equal(pixels, ref_pixels)


def test_preprocess_clean_resize():
  u = np.random.default_rng(3).integers(0, 256, (2, 40, 36, 3), dtype=np.uint8)
  out = np.asarray(dinov2.preprocess(u / 127.5 - 1, resize='clean'))
  np.testing.assert_allclose(out, _dgm_eval_reference(u, 'clean'), rtol=0, atol=2e-5)
  with pytest.raises(ValueError, match='needs quantize=True'):
    dinov2.preprocess(u / 127.5 - 1, quantize=False)
  with pytest.raises(ValueError, match="unknown DINOv2 resize 'bilinear'"):
    dinov2.preprocess(u / 127.5 - 1, resize='bilinear')


def test_extract_features(model, variables):
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3), minval=-1, maxval=1)
  fn = jax.jit(lambda v, im: dinov2.extract_features(v, im, model, size=SIZE))
  feats = fn(variables, x)
  chex.assert_shape(feats, (2, 32))
  pixels = jax.jit(dinov2.preprocess, static_argnames='size')(x, size=SIZE)
  direct = jax.jit(model.apply)(variables, pixels)['cls']
  np.testing.assert_allclose(feats, direct, rtol=1e-6, atol=1e-6)


# --- Loading and refusals. ---

def test_pth_zip_legacy_and_npz_load(tmp_path, model, state_dict):
  """The official layout (torch.save's zip, with the unused mask_token), the legacy format and
  an .npz without mask_token (timm's state_dict) all load, each array where it belongs."""
  path = tmp_path / 'dinov2_tiny.pth'
  write_torch_zip(path, state_dict)
  raw = dinov2.read_torch_state_dict(path, model)
  assert list(raw) == list(state_dict)
  for name in state_dict:
    np.testing.assert_array_equal(raw[name], state_dict[name], err_msg=name)
  _check_loaded(dinov2.load_params(path, model), state_dict)
  legacy = tmp_path / 'legacy.pth'
  write_torch_legacy(legacy, state_dict)
  _check_loaded(dinov2.load_params(legacy, model), state_dict)
  npz = tmp_path / 'timm.npz'
  np.savez(npz, **{k: v for k, v in state_dict.items() if k != 'mask_token'})
  _check_loaded(dinov2.load_params(npz, model), state_dict)


def _refused(path, match, model):
  with pytest.raises(ValueError, match=match) as e:
    dinov2.load_params(path, model)
  message = str(e.value)
  assert '\n' not in message and dinov2.DINOV2_WEIGHTS_URL in message
  assert message.startswith(f'{path} could not be read as the DINOv2 ViT-L/14 weights')


@pytest.mark.parametrize('fmt', ['zip', 'npz'])
def test_wrong_names_and_shapes_refused(tmp_path, model, state_dict, fmt):
  cases = [
      ({**state_dict, 'blocks.0.attn.qkv.weight': np.zeros((96, 31), np.float32)},
       r"'blocks\.0\.attn\.qkv\.weight' has shape \(96, 31\), expected \(96, 32\)"),
      ({**state_dict, 'register_tokens': np.zeros((1, 4, 32), np.float32)},
       "unexpected key 'register_tokens'"),
      ({k: v for k, v in state_dict.items() if k != 'norm.bias'}, r"missing 'norm\.bias'"),
      ({**state_dict, 'mask_token': np.zeros((1, 1, 32), np.float32)},
       r"'mask_token' has shape \(1, 1, 32\), expected \(1, 32\)")]
  for bad, match in cases:
    path = tmp_path / f'bad.{fmt if fmt == "npz" else "pth"}'
    if fmt == 'npz':
      np.savez(path, **bad)
    else:
      write_torch_zip(path, bad)
    _refused(path, match, model)
  # The full network's loader refuses the tiny weights by name and shape.
  with pytest.raises(ValueError, match=r"'cls_token' has shape \(1, 1, 32\), expected"):
    dinov2.load_params(path)


def test_not_a_checkpoint_refused(tmp_path, model):
  junk = tmp_path / 'junk.pth'
  junk.write_bytes(b'\x89PNG\r\n\x1a\n' + np.random.default_rng(0).bytes(4096))
  _refused(junk, 'neither a zip nor a legacy', model)
  text = tmp_path / 'weights.pth'
  text.write_text('not weights\n')
  _refused(text, 'neither a zip nor a legacy', model)
  other = tmp_path / 'other.zip'
  with zipfile.ZipFile(other, 'w') as zf:
    zf.writestr('readme.txt', 'hello')
  _refused(other, 'one data.pkl', model)


def test_zip_bomb_refused_before_decompressing(tmp_path, model, state_dict, monkeypatch):
  """A storage declaring 6.5 GB is refused from the central directory: nothing is opened."""
  opened, real_open = [], zipfile.ZipFile.open

  def spy(self, name, mode='r', *args, **kwargs):
    if mode == 'r':
      opened.append(getattr(name, 'filename', name))
    return real_open(self, name, mode, *args, **kwargs)

  path = tmp_path / 'bomb.pth'
  good = tmp_path / 'good.pth'
  write_torch_zip(good, state_dict)
  with zipfile.ZipFile(good) as zf:
    entries = {i.filename: zf.read(i) for i in zf.infolist()}
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
    for name, data in entries.items():
      zf.writestr(name, data)
    for info in zf.filelist:
      if info.filename == 'archive/data/0':
        info.file_size = 6_500_000_000
  monkeypatch.setattr(zipfile.ZipFile, 'open', spy)
  _refused(path, 'declares 6500000000 bytes, more than the network allows', model)
  assert not opened


def test_no_weights_message(tmp_path):
  for path in (None, ''):
    with pytest.raises(ValueError, match='eval.dinov2_weights') as e:
      dinov2.load_params(path)
    assert dinov2.DINOV2_WEIGHTS_URL in str(e.value)
  with pytest.raises(FileNotFoundError, match='eval.dinov2_weights'):
    dinov2.load_params(tmp_path / 'absent.pth')


class _Response(io.BytesIO):
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _layout_only_checkpoint():
  """ViT-L/14's torch.save zip with every storage's size declared but none written: what
  `fetch_weights` checks (the pickle's names and shapes) without 1.2 GB of data."""
  objs = collections.OrderedDict()
  storages, declared = {}, {}
  for i, (name, shape) in enumerate({**dinov2.torch_state_dict_shapes(),
                                     'mask_token': (1, 1024)}.items()):
    flat = np.zeros(0, np.float32)
    numel = math.prod(shape)
    stride = tuple(math.prod(shape[d + 1:]) for d in range(len(shape)))
    objs[name] = _Tensor(_StorageRef(str(i), flat, numel), 0, shape, stride)
    storages[str(i)] = flat
    declared[f'archive/data/{i}'] = 4 * numel
  buf = io.BytesIO()
  _write_zip(buf, objs, storages, declared)
  return buf.getvalue()


def test_fetch_weights(tmp_path, monkeypatch):
  """Offline: one sentence with the URL, nothing left behind. A cached file is used as it is; a
  download is kept only when it holds ViT-L/14's state_dict."""
  def offline(*args, **kwargs):
    raise urllib.error.URLError('no network')

  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  with pytest.raises(OSError) as e:
    dinov2.fetch_weights(str(tmp_path / 'cache'))
  message = str(e.value)
  assert dinov2.DINOV2_WEIGHTS_URL in message and '\n' not in message
  assert 'could not download the DINOv2 ViT-L/14 weights' in message
  directory = tmp_path / 'cache' / 'dinov2'
  assert not list(directory.iterdir())
  monkeypatch.setattr(urllib.request, 'urlopen',
                      lambda *a, **k: _Response(b'<html>not found</html>'))
  with pytest.raises(OSError, match='is not the DINOv2 ViT-L/14 weights'):
    dinov2.fetch_weights(str(tmp_path / 'cache'))
  assert not list(directory.iterdir())
  data = _layout_only_checkpoint()
  monkeypatch.setattr(urllib.request, 'urlopen', lambda *a, **k: _Response(data))
  path = dinov2.fetch_weights(str(tmp_path / 'cache'))
  assert path == str(directory / 'dinov2_vitl14_pretrain.pth')
  assert open(path, 'rb').read() == data and len(list(directory.iterdir())) == 1
  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  assert dinov2.fetch_weights(str(tmp_path / 'cache')) == path  # cached: no download
  assert dinov2.weights_sha256(path) == hashlib.sha256(data).hexdigest()

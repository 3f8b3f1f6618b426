"""DINOv2 ViT-L/14 as a Flax module: the feature network of FD_DINOv2.

Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"
(arXiv:2304.07193); Stein et al. 2023, "Exposing flaws of generative model evaluation metrics and
their unfair treatment of diffusion models" (arXiv:2306.04675) take its CLS token as the
representation for FD, KD, precision/recall, ... (their dgm-eval's `DINOv2Encoder`, which loads
`torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')`).

The network is the hub's `DinoVisionTransformer` as `dinov2_vitl14` builds it (`vit_large_14()`):
patch 14 (a stride-14 conv), width 1024, 24 pre-norm blocks of 16-head attention (qkv with bias,
q scaled by head_dim**-0.5) and a GELU (erf) MLP of ratio 4, each branch multiplied by its
LayerScale `gamma` (`init_values=1.0`); LayerNorms with eps 1e-6; one CLS token, no register
tokens; the final LayerNorm's CLS token (1024-d) is the feature (the hub's `forward`:
`x_norm_clstoken`, its head is the identity).

Position embedding. The learned table covers 518 px: 37 × 37 patches + CLS. For another grid
(224 px → 16 × 16) the hub's `interpolate_pos_encoding` resizes the patch part with
`F.interpolate(mode='bicubic', antialias=False, scale_factor=((h0 + 0.1) / 37, (w0 + 0.1) / 37))`
(`interpolate_offset=0.1`, "a historical kludge", facebookresearch/dino#8): PyTorch's bicubic
(A = -0.75, half-pixel centres, taps clamped to the edge) whose source coordinate uses the GIVEN
scale, src = (dst + 0.5) · 37 / (h0 + 0.1) - 0.5, not 37 / h0. It is skipped (the table used as
is) when the grid has 37 × 37 patches and the image is square. `interpolate_pos_embed` computes
exactly that. timm's `vit_large_patch14_dinov2` resamples differently (a size, with
`antialias=True`), so features of a timm model at 224 px are not dgm-eval's.

Preprocessing (`preprocess`, as dgm-eval's `DINOv2Encoder.transform`): images in [-1, 1] become
the uint8 a PNG of them holds (dgm-eval reads image files), are resized to 224 × 224 by PIL's
bicubic (torchvision's `Resize((224, 224), BICUBIC)` on a PIL image calls `Image.resize`), then
`ToTensor` (p / 255) and `Normalize` with ImageNet's mean and std. PIL resizes 8-bit images in
fixed point, one axis after the other, rounding to uint8 after each pass; `pil_resize` reproduces
that bit for bit inside jit (integer matmuls). `resize='clean'` is dgm-eval's `--clean_resize`:
PIL's bicubic on float32 pixels, clipped to [0, 255] (metrics/protocol.py's 'clean').

Weights: `load_params(path)` reads the official `dinov2_vitl14_pretrain.pth` (a flat state_dict:
`cls_token`, `pos_embed`, `mask_token` (unused), `patch_embed.proj.*`, `blocks.N.{norm1, attn.qkv,
attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}.*`, `norm.*`) without torch, through
metrics/torch_weights.py's checked reader (names, shapes and sizes checked before anything is
decompressed or allocated; one ValueError for any file that is not these weights), or an `.npz`
of the same state_dict (timm's `vit_large_patch14_dinov2` at its 518 px has the same names and
shapes, less `mask_token`). Layouts: conv (O, I, kh, kw) → (kh, kw, I, O), linear (out, in) → (in, out).
"""
import functools
import math
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from gan_jax.metrics import protocol
from gan_jax.metrics import torch_weights

DINOV2_WEIGHTS_URL = ('https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/'
                      'dinov2_vitl14_pretrain.pth')
NO_WEIGHTS_MESSAGE = (
    'DINOv2 features need the official ViT-L/14 weights file: download '
    f'{DINOV2_WEIGHTS_URL} on a machine with network access and pass its path as '
    '--config.eval.dinov2_weights=PATH.')
WEIGHTS_DESCRIPTION = 'the DINOv2 ViT-L/14 weights'
FEATURE_DIM = 1024
IMAGE_SIZE = 224  # dgm-eval's resize target
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZES = ('pil', 'clean')

_PIL_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c, 8 bits per channel


# ---------------------------------------------------------------------------------------------
# Position embedding.

def _cubic_weights(t: float, a: float = -0.75) -> tuple:
  """ATen's `get_cubic_upsample_coefficients`: the 4 taps at offsets -1, 0, 1, 2 of fraction t."""
  def near(x):  # |x| ≤ 1
    return ((a + 2) * x - (a + 3)) * x * x + 1

  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return far(t + 1), near(t), near(1 - t), far(2 - t)


@functools.lru_cache(maxsize=64)
def bicubic_matrix(size_in: int, size_out: int, scale: Optional[float] = None) -> np.ndarray:
  """(size_out, size_in) float64 weights of `F.interpolate(mode='bicubic', align_corners=False,
  antialias=False)` along one axis: `scale` is the scale_factor given (None: the size was
  given, and the scale is size_out / size_in).

  src = (dst + 0.5) / scale - 0.5 (ATen's `area_pixel_compute_source_index`, cubic: not clamped
  at 0), i = floor(src), t = src - i clamped to [0, 1]; taps i-1..i+2 clamped to [0, size_in).
  """
  ratio = 1.0 / scale if scale else size_in / size_out
  w = np.zeros((size_out, size_in))
  for dst in range(size_out):
    src = ratio * (dst + 0.5) - 0.5
    i = min(math.floor(src), size_in - 1)
    t = min(max(src - i, 0.0), 1.0)
    for j, c in enumerate(_cubic_weights(t)):
      w[dst, min(max(i - 1 + j, 0), size_in - 1)] += c
  return w


def interpolate_pos_embed(pos_embed, grid: tuple, image_hw: tuple, offset: float = 0.1):
  """The hub's `interpolate_pos_encoding`: (1, 1 + M², D) → (1, 1 + h0·w0, D) for `grid` =
  (h0, w0) patches of an image of `image_hw` pixels; unchanged when h0·w0 = M² and the image is
  square. The patch table is resized by `bicubic_matrix` with scale (h0 + offset) / M along the
  height and (w0 + offset) / M along the width (offset 0: to the size (h0, w0)), in float32."""
  n = pos_embed.shape[1] - 1
  m = math.isqrt(n)
  if m * m != n:
    raise ValueError(f'pos_embed holds {n} patch positions, not a square grid')
  h0, w0 = grid
  if h0 * w0 == n and image_hw[0] == image_hw[1]:
    return pos_embed
  pos = jnp.asarray(pos_embed, jnp.float32)
  table = pos[0, 1:].reshape(m, m, -1)
  mh, mw = (jnp.asarray(bicubic_matrix(m, s, (s + offset) / m if offset else None), jnp.float32)
            for s in (h0, w0))
  hi = jax.lax.Precision.HIGHEST
  table = jnp.einsum('ih,hwd->iwd', mh, table, precision=hi)
  table = jnp.einsum('jw,iwd->ijd', mw, table, precision=hi)
  return jnp.concatenate([pos[:, :1], table.reshape(1, h0 * w0, -1)], axis=1)


# ---------------------------------------------------------------------------------------------
# Network.

def _layer_norm(name):
  # Two-pass variance, as torch's LayerNorm (the fast E[x²] - E[x]² loses digits).
  return nn.LayerNorm(epsilon=1e-6, use_fast_variance=False, name=name)


class LayerScale(nn.Module):
  """x · gamma (per channel), as DINOv2's `LayerScale` (`ls1`, `ls2`)."""
  init_values: float = 1.0

  @nn.compact
  def __call__(self, x):
    gamma = self.param('gamma', nn.initializers.constant(self.init_values), (x.shape[-1],))
    return x * gamma


class Attention(nn.Module):
  """Multi-head self-attention: `qkv` (D → 3D, bias), softmax(q·kᵀ / √d_head) v, `proj`."""
  num_heads: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    h = self.num_heads
    qkv = nn.Dense(3 * d, precision=self.precision, name='qkv')(x).reshape(b, n, 3, h, d // h)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, heads, d_head), torch's order
    logits = jnp.einsum('bqhc,bkhc->bhqk', q * (d // h) ** -0.5, k, precision=self.precision)
    attn = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum('bhqk,bkhc->bqhc', attn, v, precision=self.precision).reshape(b, n, d)
    return nn.Dense(d, precision=self.precision, name='proj')(out)


class Mlp(nn.Module):
  """fc1 → GELU (exact erf, torch's default) → fc2."""
  hidden: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.hidden, precision=self.precision, name='fc1')(x)
    y = nn.gelu(y, approximate=False)
    return nn.Dense(x.shape[-1], precision=self.precision, name='fc2')(y)


class Block(nn.Module):
  """Pre-norm transformer block: x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(x)))."""
  num_heads: int
  mlp_ratio: float = 4.0
  layer_scale: bool = True
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    scale = (lambda name: LayerScale(name=name)) if self.layer_scale else (
        lambda name: lambda y: y)
    y = Attention(self.num_heads, self.precision, name='attn')(_layer_norm('norm1')(x))
    x = x + scale('ls1')(y)
    y = Mlp(int(x.shape[-1] * self.mlp_ratio), self.precision, name='mlp')(
        _layer_norm('norm2')(x))
    return x + scale('ls2')(y)


class PatchEmbed(nn.Module):
  """Non-overlapping patches: a conv of kernel and stride `patch_size` (`patch_embed.proj`)."""
  patch_size: int
  embed_dim: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    p = self.patch_size
    x = nn.Conv(self.embed_dim, (p, p), (p, p), padding='VALID', precision=self.precision,
                name='proj')(x)
    return x.reshape(x.shape[0], -1, self.embed_dim)  # row-major patches, as torch's flatten(2)


class DINOv2ViT(nn.Module):
  """DINOv2's ViT: NHWC network inputs (already normalised, see `preprocess`) whose sides are
  multiples of `patch_size` → {'cls': (B, D), 'patch_tokens': (B, N, D)} after the final norm.

  The defaults are ViT-L/14 (`vit_large_14()`); tests build small ones. `pos_grid`: the side of
  the learned position table (518 / 14 = 37), interpolated to the input's grid as the hub does
  (`interpolate_pos_embed`, `interpolate_offset`). Matmuls at `precision` (HIGHEST: no TF32).
  """
  patch_size: int = 14
  embed_dim: int = 1024
  depth: int = 24
  num_heads: int = 16
  mlp_ratio: float = 4.0
  pos_grid: int = 37
  layer_scale: bool = True
  interpolate_offset: float = 0.1
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'DINOv2ViT takes NHWC RGB images, got shape {x.shape}')
    _, h, w, _ = x.shape
    p, d = self.patch_size, self.embed_dim
    if h % p or w % p:
      raise ValueError(f'image sides {h}×{w} must be multiples of the patch size {p}')
    x = PatchEmbed(p, d, self.precision, name='patch_embed')(jnp.asarray(x, jnp.float32))
    cls = self.param('cls_token', nn.initializers.normal(1e-6), (1, 1, d))
    pos = self.param('pos_embed', nn.initializers.truncated_normal(0.02),
                     (1, 1 + self.pos_grid ** 2, d))
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, d)), x], axis=1)
    x = x + interpolate_pos_embed(pos, (h // p, w // p), (h, w), self.interpolate_offset)
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_ratio, self.layer_scale, self.precision,
                name=f'blocks_{i}')(x)
    x = _layer_norm('norm')(x)
    return {'cls': x[:, 0], 'patch_tokens': x[:, 1:]}


def vit_large_14(**overrides) -> DINOv2ViT:
  """`dinov2_vitl14`: patch 14, width 1024, depth 24, 16 heads, MLP ratio 4, LayerScale, one CLS
  token, no registers, a 37 × 37 position table (518 px) interpolated with offset 0.1."""
  config = dict(patch_size=14, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0,
                pos_grid=37, layer_scale=True, interpolate_offset=0.1)
  return DINOv2ViT(**{**config, **overrides})


# ---------------------------------------------------------------------------------------------
# Preprocessing.

def _pil_bicubic(x: float) -> float:
  """Pillow's `bicubic_filter` (a = -0.5)."""
  a, x = -0.5, abs(x)
  if x < 1.0:
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
  if x < 2.0:
    return (((x - 5) * x + 8) * x - 4) * a
  return 0.0


@functools.lru_cache(maxsize=64)
def pil_resize_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) int32 fixed-point weights of Pillow's 8-bit bicubic resize on one axis.

  Resample.c's `precompute_coeffs` (support 2, widened by the scale when downsampling, the taps
  normalised to sum to 1, in double precision and in its order), then `normalize_coeffs_8bpc`:
  each weight · 2**22 rounded half away from zero.
  """
  scale = size_in / size_out
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  ss = 1.0 / filterscale
  w = np.zeros((size_out, size_in), np.int32)
  for xx in range(size_out):
    center = (xx + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)
    xmax = min(int(center + support + 0.5), size_in) - xmin
    taps = [_pil_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
    total = 0.0
    for t in taps:
      total += t
    for x, t in enumerate(taps):
      k = t / total if total != 0.0 else t
      w[xx, xmin + x] = int((-0.5 if k < 0 else 0.5) + k * (1 << _PIL_PRECISION_BITS))
  return w


def _pil_pass(x, weights, spec):
  acc = jnp.einsum(spec, jnp.asarray(weights), x, preferred_element_type=jnp.int32)
  return jnp.clip((acc + (1 << (_PIL_PRECISION_BITS - 1))) >> _PIL_PRECISION_BITS, 0, 255)


def pil_resize(pixels, size: tuple) -> jax.Array:
  """NHWC uint8 pixel values (any int or float type holding integers in [0, 255]) resized to
  `size` = (H, W) exactly as Pillow's `Image.resize(size[::-1], BICUBIC)` of an 8-bit image.

  Two passes, each a fixed-point sum rounded and clipped to uint8 (Resample.c's
  `ImagingResampleHorizontal_8bpc` / `Vertical_8bpc`); a side already at its size is not
  resampled. Pillow 13 (checked bit for bit against it) resamples the height first when the
  image loses more than twice as many rows as columns (h > H and h - H > 2 (w - W)), else the
  width first; an older Resample.c that always starts with the width differs (by a level here
  and there) only in those cases, never for square images. Returns float32 integers.
  """
  _, h, w, _ = pixels.shape
  x = jnp.round(jnp.asarray(pixels, jnp.float32)).astype(jnp.int32)
  width = lambda x: _pil_pass(x, pil_resize_matrix(w, size[1]), 'ow,bhwc->bhoc')
  height = lambda x: _pil_pass(x, pil_resize_matrix(h, size[0]), 'oh,bhwc->bowc')
  passes = ([height] if h != size[0] else []) + ([width] if w != size[1] else [])
  if not (h > size[0] and h - size[0] > 2 * (w - size[1])):
    passes.reverse()
  for resample in passes:
    x = resample(x)
  return x.astype(jnp.float32)


def preprocess(images, size: int = IMAGE_SIZE, resize: str = 'pil',
               quantize: bool = True) -> jax.Array:
  """NHWC images in [-1, 1] (grey ones tiled to RGB) → DINOv2's input, as dgm-eval's transform.

  `quantize`: first round to the uint8 a PNG of the images holds (protocol.quantize; dgm-eval
  reads image files). `resize`: 'pil' (dgm-eval's default: torchvision's Resize on a PIL image,
  `pil_resize`; needs `quantize`) or 'clean' (its `--clean_resize`: PIL bicubic on float32
  pixels, clipped). Then (p / 255 - mean) / std with ImageNet's mean and std, per channel.
  """
  if resize not in RESIZES:
    raise ValueError(f'unknown DINOv2 resize {resize!r}; valid choices: {", ".join(RESIZES)}')
  if resize == 'pil' and not quantize:
    raise ValueError("resize='pil' is PIL's 8-bit resize: it needs quantize=True")
  x = jnp.asarray(images, jnp.float32)
  if x.shape[-1] == 1:  # PIL's convert('RGB') of a grey image
    x = jnp.tile(x, (1, 1, 1, 3))
  pixels = protocol.to_pixels(x, quantize)
  if resize == 'pil':
    pixels = pil_resize(pixels, (size, size))
  else:
    pixels = protocol.resize(pixels, (size, size), 'clean')
  mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
  std = jnp.asarray(IMAGENET_STD, jnp.float32)
  return (pixels / 255 - mean) / std


def extract_features(variables, images, model: Optional[DINOv2ViT] = None, resize: str = 'pil',
                     quantize: bool = True, size: int = IMAGE_SIZE) -> jax.Array:
  """(B, 1024) FD_DINOv2 features of NHWC images in [-1, 1]: `preprocess` (to `size` × `size`,
  dgm-eval's 224), then the CLS token of `model` (ViT-L/14 by default). Pure: jit it with
  `model`, `resize`, `quantize` and `size` static."""
  model = model or vit_large_14()
  x = preprocess(images, size=size, resize=resize, quantize=quantize)
  return model.apply(variables, x)['cls']


# ---------------------------------------------------------------------------------------------
# Weights.

def _config(model: Optional[DINOv2ViT]) -> tuple:
  m = model or vit_large_14()
  return (m.patch_size, m.embed_dim, m.depth, m.num_heads, m.mlp_ratio, m.pos_grid,
          m.layer_scale)


_FIELDS = ('patch_size', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'pos_grid',
           'layer_scale')


def _torch_name(path: tuple) -> str:
  """A Flax parameter path → its name in the hub's state_dict ('blocks_3' → 'blocks.3', kernel
  and LayerNorm scale → weight)."""
  parts = [f'blocks.{p[len("blocks_"):]}' if p.startswith('blocks_') else p for p in path[:-1]]
  leaf = {'kernel': 'weight', 'scale': 'weight'}.get(path[-1], path[-1])
  return '.'.join(parts + [leaf])


def _torch_shape(path: tuple, flax_shape: tuple) -> tuple:
  if path[-1] == 'kernel' and len(flax_shape) == 4:  # conv (kh, kw, I, O) → (O, I, kh, kw)
    kh, kw, i, o = flax_shape
    return (o, i, kh, kw)
  if path[-1] == 'kernel':  # linear (in, out) → (out, in)
    return tuple(reversed(flax_shape))
  return tuple(flax_shape)


@functools.lru_cache(maxsize=8)
def _variables(config: tuple) -> dict:
  """{PyTorch name: (Flax path, Flax shape)} of every parameter of the network `config`."""
  model = DINOv2ViT(**dict(zip(_FIELDS, config)))
  p = model.patch_size
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, p, p, 3), jnp.float32))['params']
  return {_torch_name(path): (path, leaf.shape)
          for path, leaf in traverse_util.flatten_dict(shapes).items()}


@functools.lru_cache(maxsize=8)
def _layout(config: tuple) -> torch_weights.Layout:
  return torch_weights.Layout(
      {name: _torch_shape(path, shape) for name, (path, shape) in _variables(config).items()},
      optional={'mask_token': (1, config[1])})  # the hub's, for masked training: unused


def torch_state_dict_shapes(model: Optional[DINOv2ViT] = None) -> dict:
  """{name: shape} of every tensor `model`'s (ViT-L/14's) state_dict must hold, in the hub's
  names and PyTorch layouts (without the optional, unused `mask_token`)."""
  return dict(_layout(_config(model)).shapes)


def _to_flax(array: np.ndarray, flax_shape: tuple) -> np.ndarray:
  if array.ndim == 4:  # conv (O, I, kh, kw) → (kh, kw, I, O)
    return array.transpose(2, 3, 1, 0)
  if array.ndim == 2 and len(flax_shape) == 2:  # linear (out, in) → (in, out)
    return array.T
  return array


def state_dict_to_variables(state_dict, model: Optional[DINOv2ViT] = None) -> dict:
  """Flax {'params'} (float32 numpy) for `model` (ViT-L/14) from a DINOv2 state_dict.

  Every expected key must be present with its PyTorch shape and no other key may appear
  (`mask_token` is ignored); else `ValueError` naming the first offender.
  """
  config = _config(model)
  layout, params = _layout(config), {}
  for name, (path, shape) in _variables(config).items():
    if name not in state_dict:
      raise ValueError(f'weights are missing {name!r} (expected shape {layout.shapes[name]})')
    array = np.asarray(state_dict[name])
    layout.check_entry(name, array.shape)
    params[path] = np.ascontiguousarray(_to_flax(array, shape), np.float32)
  for name in state_dict:
    layout.check_entry(name, np.shape(state_dict[name]))
  return {'params': traverse_util.unflatten_dict(params)}


def _refusals(path):
  return torch_weights.refusals(path, WEIGHTS_DESCRIPTION, NO_WEIGHTS_MESSAGE)


def read_torch_state_dict(path, model: Optional[DINOv2ViT] = None) -> dict:
  """{name: np.ndarray} of a `torch.save`d DINOv2 state_dict (zip or legacy format), without
  torch; any file that is not `model`'s (ViT-L/14's) weights: one ValueError."""
  path = os.fspath(path)
  with _refusals(path):
    return torch_weights.read_torch(path, _layout(_config(model)))


def load_params(path, model: Optional[DINOv2ViT] = None) -> dict:
  """Flax variables for `model` (ViT-L/14) from `dinov2_vitl14_pretrain.pth` or an `.npz` of
  its state_dict (the hub's names and PyTorch layouts).

  Without a path: `ValueError(NO_WEIGHTS_MESSAGE)`, a missing file: FileNotFoundError; weights
  are never downloaded here (`fetch_weights` does). Any file that cannot be read as the
  network's weights: one ValueError naming the file, the reason and the official URL.
  """
  path = torch_weights.existing_path(path, NO_WEIGHTS_MESSAGE)
  with _refusals(path):
    return state_dict_to_variables(torch_weights.read(path, _layout(_config(model))), model)


def fetch_weights(cache_root: Optional[str] = None, url: str = DINOV2_WEIGHTS_URL,
                  timeout: float = 60.0) -> str:
  """The path of the official ViT-L/14 weights in the cache (`configs.cache_dir('dinov2')`),
  downloading them there first if they are missing (1.2 GB); the download must hold ViT-L/14's
  state_dict (its names and shapes, checked from the pickle; no checksum is published).

  Raises OSError with one sentence saying what to do when the download fails (no network).
  """
  from gan_jax import configs  # pylint: disable=g-import-not-at-top

  def is_vit_l14(tmp) -> bool:
    try:
      with _refusals(tmp):
        torch_weights.read_torch(tmp, _layout(_config(None)), tensors=False)
      return True
    except ValueError:
      return False

  return torch_weights.download(url, configs.cache_dir('dinov2', cache_root),
                                'the DINOv2 ViT-L/14 weights', NO_WEIGHTS_MESSAGE, is_vit_l14,
                                timeout)


def weights_sha256(path) -> str:
  """Hex SHA-256 of the weights file, for eval protocols to record which weights they used."""
  return torch_weights.file_sha256(path)

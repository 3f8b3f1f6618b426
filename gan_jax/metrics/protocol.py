"""What happens to an image between the generator and a feature network, as each library does it.

FIDs from two libraries disagree mostly here, not in the network or the Fréchet distance
(Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation",
arXiv:2104.11222). An image in gan_jax's range [-1, 1] goes through three pure steps, all traced
inside jit, in pixel units p ∈ [0, 255]:

  quantize   p = clip(floor((x + 1) · 127.5 + 0.5), 0, 255): the uint8 a PNG file would hold
             (StyleGAN2-ADA's `(x · 127.5 + 128).clamp(0, 255).to(uint8)`); off: p = (x + 1) · 127.5
  resize     to the network's 299 × 299, one of RESIZES:
               pytorch_fid  bilinear, half-pixel centres, no antialias, edge clamped
                            (`F.interpolate(mode='bilinear', align_corners=False)`, pytorch-fid)
               tf           TF1's `ResizeBilinear(align_corners=False)`: src = dst · in / out, edge
                            clamped (torch-fidelity; StyleGAN2-ADA's Inception, whose grid_sample
                            is shifted to reproduce it; the original TF graph)
               clean        PIL's bicubic (a = -0.5) on float32 pixels with its antialias (the
                            kernel widened by the scale when downsampling), width then height,
                            then clipped to [0, 255] (clean-fid's `clean` mode)
  scale      the network's input: 'pytorch_fid' 2 · p / 255 - 1 (pytorch-fid's normalize_input),
             'tf' (p - 128) / 128 (the TF graph's Sub/Mul, as torch-fidelity, clean-fid and
             StyleGAN2-ADA feed it)

Each resize is a pair of (out, in) matrices applied along height and width, so one function
serves up- and downsampling and a test can compare it with PIL or numpy directly.
"""
import functools
import jax
import jax.numpy as jnp
import numpy as np

RESIZES = ('pytorch_fid', 'tf', 'clean')
SCALES = ('pytorch_fid', 'tf')


def quantize(x) -> jax.Array:
  """[-1, 1] images → the uint8 pixel values a PNG of them holds, as float32 in [0, 255]."""
  return jnp.clip(jnp.floor((jnp.asarray(x, jnp.float32) + 1) * 127.5 + 0.5), 0, 255)


def to_pixels(x, quantized: bool) -> jax.Array:
  """[-1, 1] images → float32 pixels in [0, 255]: quantized to uint8 values, or not."""
  return quantize(x) if quantized else (jnp.asarray(x, jnp.float32) + 1) * 127.5


def _bicubic(x, a=-0.5):
  x = np.abs(x)
  return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@functools.lru_cache(maxsize=64)
def resize_matrix(size_in: int, size_out: int, method: str) -> np.ndarray:
  """(size_out, size_in) float64 weights of a 1-D resize; each row sums to 1."""
  if method not in RESIZES:
    raise ValueError(f'resize method {method!r}: one of {", ".join(RESIZES)}')
  w = np.zeros((size_out, size_in))
  scale = size_in / size_out
  if method in ('pytorch_fid', 'tf'):
    dst = np.arange(size_out, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0) if method == 'pytorch_fid' else dst * scale
    lo = np.minimum(np.floor(src).astype(int), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    np.add.at(w, (np.arange(size_out), lo), 1 - frac)
    np.add.at(w, (np.arange(size_out), hi), frac)
    return w
  # PIL's precompute_coeffs (Resample.c) for BICUBIC: support 2, widened by the scale.
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  for i in range(size_out):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), size_in)
    taps = _bicubic((np.arange(lo, hi) - center + 0.5) / filterscale)
    total = taps.sum()
    w[i, lo:hi] = taps / total if total != 0 else taps
  return w


def resize(pixels, size: tuple, method: str) -> jax.Array:
  """NHWC float pixels resized to `size` = (H, W) by `method` (see the module docstring); the
  width is resized first (as PIL), each pass in the input's float type (float32 for integers) at
  the highest matmul precision, with weights computed in float64."""
  _, h, w, _ = pixels.shape
  x = jnp.asarray(pixels)
  x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
  if (h, w) == tuple(size):  # every method is the identity then (PIL copies the image)
    return x
  mw = jnp.asarray(resize_matrix(w, size[1], method), x.dtype)
  mh = jnp.asarray(resize_matrix(h, size[0], method), x.dtype)
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum('ow,bhwc->bhoc', mw, x, precision=hi)
  x = jnp.einsum('oh,bhwc->bowc', mh, x, precision=hi)
  return jnp.clip(x, 0, 255) if method == 'clean' else x


def scale(pixels, kind: str) -> jax.Array:
  """Pixels in [0, 255] → the feature network's input range (see the module docstring)."""
  if kind == 'pytorch_fid':
    return pixels * (2 / 255) - 1
  if kind == 'tf':
    return (pixels - 128) * (1 / 128)
  raise ValueError(f'input scaling {kind!r}: one of {", ".join(SCALES)}')

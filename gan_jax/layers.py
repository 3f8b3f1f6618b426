"""Flax Linen layers for image GANs (NHWC) that XLA:CPU runs, and differentiates to any order, fast.

On XLA:CPU, autodiff of a strided or transposed convolution, and the gradient penalty's double
backprop through it, lower to window-dilated convolutions, a slow path; so does the weight
gradient of a plain stride-1 convolution (a convolution whose window is the whole image). The
fast paths (`impl='rewrite'`) compute the same maps exactly, with the same parameters, from ops
XLA:CPU runs near its matmul speed:

* `Conv` (k×k, stride 1, 'SAME'): a pair of bilinear maps closed under differentiation, y =
  conv(x, K) and ∇K = weight_grad(x, ∂y), each with a custom VJP written in terms of the two
  (x̄ = conv(ȳ, flip(K)), K̄ = weight_grad(x, ȳ); and for weight_grad: conv(∂y, flip(Ḡ)),
  conv(x, Ḡ)), so derivatives of every order stay inside the pair. conv runs as XLA's own
  convolution when both channel counts are ≥ 16 (a forward convolution, which XLA:CPU runs at
  matmul speed) and otherwise as one matmul: im2col × kernel for few input channels,
  x × kernel-as-(C, k·k·F) then a shifted sum of the k·k taps for few output channels;
  weight_grad runs as k·k matmuls of shifted inputs with ∂y (or one im2col matmul, or x against
  the shifted ∂y, whichever channel count is small).
* `StridedConv` (4×4, stride 2): space-to-depth makes it a 2×2 stride-1 correlation over 4C
  channels, computed by Winograd's minimal filtering F(2×2, 2×2): each 2×2 output tile from 9
  matmuls over the channels instead of 16 (1.78× fewer multiply-adds). The input and output
  transforms are linear maps with hand-written adjoints as their custom VJPs, so the backward
  pass (and the gradient penalty's double backward) is Winograd again, with the same saving.
* `UpConv` (4×4 transposed, stride 2): the adjoint of `StridedConv`, i.e. the same Winograd steps
  in reverse order, each replaced by its adjoint. For few output channels (the RGB layer), one
  matmul x × kernel-as-(C, 16F), then each output phase is the sum of four shifted taps (col2im,
  split so its adjoint is one concatenate).
* `UpsampleConv` (3×3 conv of the 2× nearest-upsampled input, the ResNet generator's): `UpConv`
  with a 4×4 kernel summed from the 3×3 one, 2.25× fewer multiply-adds.
* `PooledConv` (3×3 conv, then 2×2 average pooling, the ResNet discriminator's): `StridedConv`
  with a 4×4 kernel summed from the 3×3 one, 2.25× fewer multiply-adds (4× with Winograd).

Measured at batch 64 on the 2-core CPU (process CPU time, min of repeats; forward / gradient
in x and kernel): the 3×3 conv 16×16, 256→256: 302 / 637 ms vs 427 / 798 ms as im2col autodiff
and 300 / 1336 ms as lax's conv autodiff; 32×32, 256→3: 39 / 191 ms vs 765 / 1240 and 204 / 248.
Wall ms, median: the stride-2 conv 16×16, 64→128: 5.7 / 16.5 ms by Winograd vs 21.6 / 31.5 as
space-to-depth + im2col + one matmul; the transposed conv 4×4, 256→128: 5.3 / 14.4 ms vs 6.5 / 23.2
as matmul + col2im (and 18 / 580 ms as lax's transposed conv, 8×8, 128→64).
`impl='xla'` runs lax convolutions (XLA's own: cuDNN on GPUs, the TPU's) on the same
parameters: `kernel` (kh, kw, in, out) and `bias` (out,), as `nn.Conv` / `nn.ConvTranspose`; a
checkpoint moves between the two. `config.model.conv_impl` chooses ('auto': `resolve_impl`).
"""
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ('rewrite', 'xla')
CONV_IMPLS = ('auto',) + IMPLS  # config.model.conv_impl
# What 'auto' picks per backend (jax.default_backend()): the rewrites where they were measured to
# win (XLA:CPU: 7-31x XLA's own convolutions in the training iteration, benchmarks/accelerator.py
# on 2 cores: DCGAN 306 vs 14 images/s, pix2pix 540 vs 75), XLA's own convolutions elsewhere
# (cuDNN, the TPU's MXU convolutions), until benchmarks/accelerator.py records otherwise.
AUTO_IMPL = {'cpu': 'rewrite'}


def resolve_impl(conv_impl: str, backend: str = None) -> str:
  """'rewrite' or 'xla' for config.model.conv_impl on `backend` (default: JAX's)."""
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f'unknown conv_impl {conv_impl!r}; valid choices: {", ".join(CONV_IMPLS)}')
  if conv_impl != 'auto':
    return conv_impl
  return AUTO_IMPL.get(backend or jax.default_backend(), 'xla')
DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
dcgan_init = nn.initializers.normal(0.02)  # Radford et al. 2016 (arXiv:1511.06434), sec. 4


def _pad(x, lo, hi):
  """Zero-pads the two spatial axes of NHWC `x` by (lo, hi) each."""
  return jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))


def _im2col(x, k, out_h, out_w):
  """im2col: the k×k windows of `x` at out_h×out_w positions, (B, out_h, out_w, (i, j, c))."""
  return jnp.concatenate([x[:, i:i + out_h, j:j + out_w] for i in range(k) for j in range(k)], -1)


def _space_to_depth(x):
  """(B, 2H, 2W, C) -> (B, H, W, 4C): z[a, b, (s, t, c)] = x[2a + s, 2b + t, c]."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


NARROW = 16  # channel counts below this take a matmul form of the stride-1 and transposed convs


def _flip(kernel):
  """The kernel of the adjoint of a stride-1 conv: K[::-1, ::-1] with in and out swapped."""
  return kernel[::-1, ::-1].swapaxes(2, 3)


def _shifted_sum(z, k, lo):
  """y[b, p, q] = Σ_ij z_ij[b, p + i - lo, q + j - lo] (zero outside), z (B, H, W, (i, j, f))."""
  b, h, w, _ = z.shape
  taps = lax.split(z, [z.shape[-1] // (k * k)] * (k * k), axis=3)  # adjoint: one concatenate
  shifted = (_pad(taps[i * k + j], lo, k - 1 - lo)[:, i:i + h, j:j + w]
             for i in range(k) for j in range(k))
  return functools.reduce(jnp.add, shifted)


def _conv(x, kernel, lo):
  """Stride-1 correlation y[p] = Σ_i x[p + i - lo] K[i] per axis (x zero outside), same size."""
  k, _, c, f = kernel.shape
  b, h, w, _ = x.shape
  if f >= NARROW and c >= NARROW:
    return lax.conv_general_dilated(x, kernel, (1, 1), ((lo, k - 1 - lo),) * 2,
                                    dimension_numbers=DIMENSION_NUMBERS)
  if f < NARROW:  # x × (C, k·k·F), then the shifted sum of the taps
    z = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, k * k * f)
    return _shifted_sum(z.reshape(b, h, w, k * k * f), k, lo)
  return _im2col(_pad(x, lo, k - 1 - lo), k, h, w) @ kernel.reshape(k * k * c, f)


def _weight_grad(x, g, lo, k):
  """∂/∂K of Σ g·conv(x, K): dK[i, j] = Σ_p x[p + (i, j) - lo]ᵀ g[p], (k, k, C, F)."""
  b, h, w, c = x.shape
  f = g.shape[-1]
  hi = k - 1 - lo
  if f < NARROW:  # x against the k·k shifts of g the other way: one (C, k·k·F) matmul
    shifts = _im2col(_pad(g, hi, lo), k, h, w).reshape(b, h, w, k, k, f)[:, :, :, ::-1, ::-1]
    dk = x.reshape(-1, c).T @ shifts.reshape(-1, k * k * f)
    return dk.reshape(c, k, k, f).transpose(1, 2, 0, 3)
  if c < NARROW:  # one im2col matmul
    dk = _im2col(_pad(x, lo, hi), k, h, w).reshape(-1, k * k * c).T @ g.reshape(-1, f)
    return dk.reshape(k, k, c, f)
  xp, g = _pad(x, lo, hi), g.reshape(-1, f)  # k·k matmuls: no k·k-times-larger buffer
  return jnp.stack([xp[:, i:i + h, j:j + w].reshape(-1, c).T @ g
                    for i in range(k) for j in range(k)]).reshape(k, k, c, f)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_same(x, kernel, lo):
  """The stride-1 conv of `Conv` (zero padding lo before, k - 1 - lo after): derivatives of every
  order are conv_same and conv_weight_grad again."""
  return _conv(x, kernel, lo)


def _conv_same_fwd(x, kernel, lo):
  return conv_same(x, kernel, lo), (x, kernel)


def _conv_same_bwd(lo, residuals, g):
  x, kernel = residuals
  k = kernel.shape[0]
  return conv_same(g, _flip(kernel), k - 1 - lo), conv_weight_grad(x, g, lo, k)


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_weight_grad(x, g, lo, k):
  """The kernel gradient of conv_same(x, ·, lo) for output cotangent g, (k, k, C, F)."""
  return _weight_grad(x, g, lo, k)


def _conv_weight_grad_fwd(x, g, lo, k):
  return conv_weight_grad(x, g, lo, k), (x, g)


def _conv_weight_grad_bwd(lo, k, residuals, dk):
  x, g = residuals
  return conv_same(g, _flip(dk), k - 1 - lo), conv_same(x, dk, lo)


conv_weight_grad.defvjp(_conv_weight_grad_fwd, _conv_weight_grad_bwd)


class _Conv(nn.Module):
  """Shared fields: a (k, k, in, features) kernel, an optional bias, the implementation."""
  features: int
  use_bias: bool = True
  kernel_init: Callable = dcgan_init
  bias_init: Callable = nn.initializers.zeros
  impl: str = 'rewrite'

  def _params(self, k, in_features):
    if self.impl not in IMPLS:
      raise ValueError(f'unknown impl {self.impl!r}; valid choices: {", ".join(IMPLS)}')
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features))
    bias = self.param('bias', self.bias_init, (self.features,)) if self.use_bias else 0.0
    return kernel, bias


class Conv(_Conv):
  """k×k conv, stride 1, 'SAME' padding: (B, H, W, C) -> (B, H, W, features).

  The same map and parameters as `nn.Conv(features, (k, k), padding='SAME')` (zero padding
  (k - 1) // 2 before, k // 2 after). Fast path: `conv_same` (see the module docstring).
  """
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel, bias = self._params(k, x.shape[-1])
    if self.impl == 'xla':
      y = lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=DIMENSION_NUMBERS)
    else:
      y = conv_same(x, kernel, (k - 1) // 2)
    return y + bias


class StridedConv(_Conv):
  """4×4 conv, stride 2, padding 1 (DCGAN's downsampling): (B, H, W, C) -> (B, H//2, W//2, F).

  y[i, j] = b + Σ_{p,q<4} x̃[2i + p, 2j + q] K[p, q], x̃ = x zero-padded by 1: the same map and
  parameters as `nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))`, and as
  PyTorch `Conv2d(C, features, 4, stride=2, padding=1)` with weight K.transpose(3, 2, 0, 1).
  Fast path: with p = 2u + s, x̃[2i + p] = z[i + u, s] for z = space_to_depth(x̃), so
  y[i, j] = Σ_{u,v<2} z[i + u, j + v] K'[u, v] with K'[u, v, (s, t, c)] = K[2u + s, 2v + t, c]:
  a 2×2 stride-1 correlation, computed by Winograd F(2×2, 2×2) (below) as 9 matmuls of
  (B·H/4·W/4, 4C) × (4C, features) instead of 16. For a size not a multiple of 4 the last tile
  is completed with zeros and its extra outputs dropped.
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(4, x.shape[-1])
    if self.impl == 'xla':
      y = lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                   dimension_numbers=DIMENSION_NUMBERS)
      return y + bias
    return _strided_conv(x, kernel) + bias


class UpConv(_Conv):
  """4×4 transposed conv, stride 2 (DCGAN's 2× upsampling): (B, H, W, C) -> (B, 2H, 2W, features).

  y[o] = b + Σ_{i,k: o = 2i + 2 - k} x[i] K[k] per spatial axis: the adjoint of `StridedConv` with
  kernel K[::-1, ::-1].swapaxes(2, 3). The same map and parameters as `nn.ConvTranspose(features,
  (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))` (= 'SAME'; lax pads k - 1 - p = 2 for
  PyTorch's p = 1) and `lax.conv_transpose` with that padding. PyTorch `ConvTranspose2d(C,
  features, 4, stride=2, padding=1)` (o = 2i + k' - 1) is this map with weight[c, f, k'] =
  K[3 - k', c, f], and Flax's `transpose_kernel=True` with the same padding takes kernel
  K[::-1, ::-1].swapaxes(2, 3).
  Fast path: the adjoint of `StridedConv`'s Winograd path, its steps in reverse order, each
  replaced by its adjoint (output transform, products with the kernel's transpose, input
  transform, depth-to-space, crop): 9 instead of 16 matmuls over the channels.
  With features < 16 (an RGB output), col2im instead: with Z[i, k] = x[i] K[k] for all 16 taps
  k = (p, q) — one matmul of x with K as (C, 16F) — and x̂ = x padded by 1, y[2a + r] =
  Σ_{t<2} x̂[a + r + t] K[2t + r] per axis is Σ_t Z[a + r + t - 1, 2t + r]: each output phase
  (r, s) sums four shifted taps of Z, and the phases interleave (depth-to-space). Z is split into
  its taps by one `lax.split`, whose adjoint is one concatenate.
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(4, x.shape[-1])
    if self.impl == 'xla':
      y = lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)),
                             dimension_numbers=DIMENSION_NUMBERS)
      return y + bias
    return _up_conv(x, kernel) + bias


# Winograd's minimal filtering F(2, 2) (Lavin & Gray 2016, "Fast Algorithms for Convolutional
# Neural Networks", arXiv:1509.09308): two outputs of a 2-tap correlation
# y_i = d_i g_0 + d_(i+1) g_1 from three products,
# y_0 = (d_0 - d_1) g_0 + d_1 (g_0 + g_1), y_1 = d_1 (g_0 + g_1) + (d_2 - d_1) g_1,
# i.e. y = Aᵀ[(G g) ⊙ (Bᵀ d)] with Bᵀ d = (d_0 - d_1, d_1, d_2 - d_1), G g = (g_0, g_0 + g_1, g_1),
# Aᵀ m = (m_0 + m_1, m_1 + m_2). Nested on both axes, a 2×2 output tile of a 2×2 correlation takes
# 9 products instead of 16; with channels, each product is one matmul over the input channels.


@jax.custom_vjp
def _winograd_input(z):
  """Bᵀ d B of the 3×3 tiles (stride 2) of z (B, 2n + 1, 2m + 1, C): (9, B·n·m, C). Linear; its
  VJP is `_winograd_input_adjoint` (and that one's is this), so derivatives of every order stay
  in the pair (autodiff of the strided slices would pad and add each one back)."""
  def transform(v, axis):
    n = (v.shape[axis] - 1) // 2
    d0, d1, d2 = (lax.slice_in_dim(v, j, j + 2 * n - 1, 2, axis) for j in range(3))
    return d0 - d1, d1, d2 - d1
  tiles = jnp.stack([t for rows in transform(z, 1) for t in transform(rows, 2)])
  return tiles.reshape(9, -1, z.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _winograd_input_adjoint(v, bnm):
  """The adjoint of `_winograd_input`: (9, B·n·m, C) -> (B, 2n + 1, 2m + 1, C), bnm = (B, n, m)."""
  def adjoint(v0, v1, v2, axis):  # z[2a] = v0[a] + v2[a - 1], z[2a + 1] = v1[a] - v0[a] - v2[a]
    def pad(u, lo, hi):
      return lax.pad(u, jnp.zeros((), u.dtype),
                     [(lo, hi, 0) if i == axis else (0, 0, 0) for i in range(u.ndim)])
    even = pad(v0, 0, 1) + pad(v2, 1, 0)
    odd = pad(v1 - v0 - v2, 0, 1)
    z = jnp.stack([even, odd], axis + 1)
    z = z.reshape(z.shape[:axis] + (-1,) + z.shape[axis + 2:])
    return lax.slice_in_dim(z, 0, z.shape[axis] - 1, axis=axis)
  v = v.reshape((3, 3) + bnm + (-1,))
  return adjoint(*(adjoint(*v[i], 2) for i in range(3)), 1)


def _tile_counts(shape):
  """(B, n, m) of an NHWC shape of whole 2×2 tiles (H = 2n or 2n + 1)."""
  return shape[0], shape[1] // 2, shape[2] // 2


_winograd_input.defvjp(lambda z: (_winograd_input(z), _tile_counts(z.shape)),
                       lambda bnm, g: (_winograd_input_adjoint(g, bnm),))
_winograd_input_adjoint.defvjp(lambda v, bnm: (_winograd_input_adjoint(v, bnm), None),
                               lambda bnm, _, g: (_winograd_input(g),))


def _winograd_kernel(k):
  """G g Gᵀ of a (2, 2, C, F) kernel: (9, C, F)."""
  transform = lambda g: (g[0], g[0] + g[1], g[1])
  return jnp.stack([t for rows in transform(k) for t in transform(rows)])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _winograd_output(p, bnm):
  """Aᵀ M A of the (9, B·n·m, F) products: the 2×2 output tiles, (B, 2n, 2m, F), bnm = (B, n, m)."""
  p = p.reshape((3, 3) + bnm + (-1,))
  rows = (p[0] + p[1], p[1] + p[2])
  y = jnp.stack([jnp.stack([r[0] + r[1], r[1] + r[2]], 3) for r in rows], 2)
  b, n, m = bnm
  return y.reshape(b, 2 * n, 2 * m, -1)


@jax.custom_vjp
def _winograd_output_adjoint(y):
  """The adjoint of `_winograd_output`: (B, 2n, 2m, F) -> (9, B·n·m, F)."""
  b, h, w, f = y.shape
  y = y.reshape(b, h // 2, 2, w // 2, 2, f)
  def spread(u, axis):
    u0, u1 = (lax.index_in_dim(u, i, axis, keepdims=False) for i in (0, 1))
    return u0, u0 + u1, u1
  tiles = jnp.stack([t for rows in spread(y, 2) for t in spread(rows, 3)])
  return tiles.reshape(9, -1, f)


_winograd_output.defvjp(lambda p, bnm: (_winograd_output(p, bnm), None),
                        lambda bnm, _, g: (_winograd_output_adjoint(g),))
_winograd_output_adjoint.defvjp(lambda y: (_winograd_output_adjoint(y), _tile_counts(y.shape)),
                                lambda bnm, g: (_winograd_output(g, bnm),))


def _kernel_phases(kernel):
  """K (4, 4, C, F) as (2, 2, 2, 2, C, F): [u, v, s, t] = K[2u + s, 2v + t], the 2×2 kernel of
  each input phase (s, t) after `_space_to_depth`."""
  c, f = kernel.shape[2:]
  return kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5)


def _depth_to_space(z):
  """The inverse of `_space_to_depth`: (B, H, W, 4C) -> (B, 2H, 2W, C)."""
  b, h, w, c4 = z.shape
  z = z.reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
  return z.reshape(b, 2 * h, 2 * w, c4 // 4)


def _even_tiles(size):
  """(output size of the stride-2 conv on `size`, that rounded up to even: whole 2×2 tiles)."""
  out = size // 2
  return out, out + out % 2


_PRODUCTS = (((2,), (1,)), ((0,), (0,)))  # dot_general: the 9 products, contracting channels


def _strided_conv(x, kernel):
  """`StridedConv`'s fast path without the bias (see its docstring)."""
  b, h, w, _ = x.shape
  (oh, th), (ow, tw) = _even_tiles(h), _even_tiles(w)
  # Zero-pad by 1 before and to 2·(tiles + 1) after: rows the reference never reads are zero.
  x = jnp.pad(x, ((0, 0), (1, 2 * th + 1 - h), (1, 2 * tw + 1 - w), (0, 0)))
  z = _space_to_depth(x)  # (B, th + 1, tw + 1, 4C)
  c, f = kernel.shape[2:]
  u = _winograd_kernel(_kernel_phases(kernel).reshape(2, 2, 4 * c, f))  # (9, 4C, F)
  p = lax.dot_general(_winograd_input(z), u, _PRODUCTS)
  return _winograd_output(p, (b, th // 2, tw // 2))[:, :oh, :ow]


def _up_conv(x, kernel):
  """`UpConv`'s fast path without the bias (see its docstring)."""
  b, h, w, c = x.shape
  f = kernel.shape[-1]
  if f < NARROW:  # col2im: one matmul x × K as (C, 16F), then each phase sums four shifted taps
    z = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, 16 * f)
    taps = lax.split(z.reshape(b, h, w, 16 * f), [f] * 16, axis=3)  # taps[4p + q]: Z[..., p, q]

    def phase(r, s):  # Σ_{t,u} Z[a + r + t - 1, b + s + u - 1, 2t + r, 2u + s]
      shifted = (_pad(taps[4 * (2 * t + r) + 2 * u + s], 1, 1)[:, r + t:r + t + h, s + u:s + u + w]
                 for t in (0, 1) for u in (0, 1))
      return functools.reduce(jnp.add, shifted)

    y = jnp.stack([jnp.stack([phase(r, s) for s in (0, 1)], 3) for r in (0, 1)], 2)
    return y.reshape(b, 2 * h, 2 * w, f)  # (b, h, r, w, s, f) -> (b, 2h, 2w, f)
  # Winograd: the adjoint of `_strided_conv` with kernel K[::-1, ::-1].swapaxes(2, 3), its steps
  # in reverse; the products' kernel is (9, C, 4F), the phases (s, t) beside F.
  th, tw = h + h % 2, w + w % 2
  x = jnp.pad(x, ((0, 0), (0, th - h), (0, tw - w), (0, 0)))
  phases = _kernel_phases(kernel[::-1, ::-1]).transpose(0, 1, 4, 2, 3, 5).reshape(2, 2, c, 4 * f)
  p = lax.dot_general(_winograd_output_adjoint(x), _winograd_kernel(phases), _PRODUCTS)
  z = _depth_to_space(_winograd_input_adjoint(p, (b, th // 2, tw // 2)))
  return z[:, 1:1 + 2 * h, 1:1 + 2 * w]


def upsample(x):
  """2× nearest-neighbour upsampling of NHWC x."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


# Row p of the 4-tap kernel that a 3-tap conv of a 2× nearest-upsampled input equals (see below),
# and, halved, the kernel of a 3-tap conv followed by 2-wide average pooling (`PooledConv`).
_UPSAMPLED_TAPS = ((1, 0, 0), (1, 1, 0), (0, 1, 1), (0, 0, 1))


class UpsampleConv(_Conv):
  """3×3 'SAME' conv of the 2× nearest-upsampled input: (B, H, W, C) -> (B, 2H, 2W, features).

  The same map and parameters as `Conv(features)(upsample(x))` (the ResNet generator's block).
  Fast path: per axis, y[2a + r] = Σ_i up(x)[2a + r + i - 1] K[i] reads only x[a - 1], x[a] (r = 0,
  weights K0, K1 + K2) or x[a], x[a + 1] (r = 1, weights K0 + K1, K2): this is `UpConv` with the
  4-tap kernel K4 = (K0, K0 + K1, K1 + K2, K2) per axis, 16 instead of 36 multiply-adds per input
  pixel and channel pair (2.25× fewer), on the small input.
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(3, x.shape[-1])
    if self.impl == 'xla':
      y = lax.conv_general_dilated(upsample(x), kernel, (1, 1), 'SAME',
                                   dimension_numbers=DIMENSION_NUMBERS)
      return y + bias
    m = jnp.asarray(_UPSAMPLED_TAPS, kernel.dtype)
    return _up_conv(x, jnp.einsum('pi,qj,ijcf->pqcf', m, m, kernel)) + bias


def avg_pool(x):
  """2×2 average pooling, stride 2, of NHWC x (an odd last row or column is dropped)."""
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class PooledConv(_Conv):
  """3×3 'SAME' conv, then 2×2 average pooling (the ResNet discriminator's downsampling):
  (B, H, W, C) -> (B, H//2, W//2, features).

  The same map and parameters as `avg_pool(Conv(features)(x))`. Fast path: per axis,
  ½ Σ_{a<2} Σ_{i<3} x[2I + a + i - 1] K[i] = Σ_{p<4} x[2I + p - 1] K4[p] with
  K4 = ½ (K0, K0 + K1, K1 + K2, K2): `StridedConv` with that 4×4 kernel, 2.25× fewer
  multiply-adds than the conv at full size (4× with StridedConv's Winograd products), and no
  full-size output to pool.
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(3, x.shape[-1])
    if self.impl == 'xla':
      y = lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=DIMENSION_NUMBERS)
      return avg_pool(y + bias)
    m = jnp.asarray(_UPSAMPLED_TAPS, kernel.dtype) / 2
    return _strided_conv(x, jnp.einsum('pi,qj,ijcf->pqcf', m, m, kernel)) + bias


def spectral_norm(layer: nn.Module, enabled: bool = True, n_steps: int = 1):
  """`layer` with every kernel W divided by its spectral norm σ(W), as `f(x, train)`.

  Miyato et al. 2018, "Spectral Normalization for GANs" (arXiv:1802.05957): W_SN = W / σ(W), σ
  estimated by power iteration on W as a (kh·kw·in, out) matrix: v = norm(u Wᵀ), u = norm(v W),
  σ = v W uᵀ, `n_steps` iterations per call. Wraps `nn.SpectralNorm`, which keeps u (and σ) in
  the 'batch_stats' collection and stores the new u only when `train` (apply with
  `mutable=['batch_stats']`). With `enabled=False`, returns the plain layer.
  """
  if not enabled:
    return lambda x, train: layer(x)
  sn = nn.SpectralNorm(layer, n_steps=n_steps)
  return lambda x, train: sn(x, update_stats=train)


class MinibatchStdDev(nn.Module):
  """Appends the minibatch standard deviation as one extra channel: (B, ..., C) -> (B, ..., C + 1).

  Karras et al. 2018, "Progressive Growing of GANs" (arXiv:1710.10196), sec. 3. The batch is split
  into B/G groups of G (example n = g·M + m is member g of group m, M = B/G, as ProGAN's reshape);
  s_m = mean over positions and channels of sqrt(Var_g[x] + ε) (biased variance across the
  group), broadcast as a constant channel to the group's members. G = min(group_size, B), or B if
  `group_size` is None. For identical examples s = sqrt(ε) (0 with ε = 0, where the gradient is
  not finite).
  """
  group_size: int | None = 4
  epsilon: float = 1e-8

  def __call__(self, x):
    b = x.shape[0]
    g = b if self.group_size is None else min(self.group_size, b)
    if b % g:
      raise ValueError(f'batch size {b} is not a multiple of the group size {g}')
    std = jnp.sqrt(jnp.var(x.reshape((g, b // g) + x.shape[1:]), axis=0) + self.epsilon)
    s = jnp.tile(jnp.mean(std.reshape(b // g, -1), axis=1), g)  # (B,)
    s = jnp.broadcast_to(s.reshape((b,) + (1,) * (x.ndim - 1)), x.shape[:-1] + (1,))
    return jnp.concatenate([x, s.astype(x.dtype)], axis=-1)


class MinibatchDiscrimination(nn.Module):
  """Minibatch discrimination: appends closeness to the rest of the batch, (N, ...) -> (N, A + B).

  Salimans et al. 2016, "Improved Techniques for Training GANs" (arXiv:1606.03498), sec. 3.2. With
  f(x_i) ∈ R^A the flattened features and T ∈ R^{A×B×C}: M_i = f(x_i) T ∈ R^{B×C},
  c_b(x_i, x_j) = exp(-‖M_{i,b} - M_{j,b}‖_1), o(x_i)_b = Σ_j c_b(x_i, x_j); the output is
  [f(x_i), o(x_i)]. The sum includes j = i as in the paper (a constant 1 per b);
  `include_self=False` drops it, as OpenAI's improved-gan code does.
  """
  num_kernels: int = 100  # B
  kernel_dim: int = 5  # C
  include_self: bool = True
  kernel_init: Callable = nn.initializers.normal(0.05)

  @nn.compact
  def __call__(self, x):
    f = x.reshape(x.shape[0], -1)
    t = self.param('kernel', self.kernel_init, (f.shape[1], self.num_kernels, self.kernel_dim))
    # M as (C, B, N) and the L1 sum over C unrolled: the pair axes (N, N) stay minor, which
    # XLA:CPU vectorises (8x faster forward + backward at N = 256 than an (N, N, B, C) tensor).
    m = jnp.einsum('na,abc->cbn', f, t)
    dist = sum(jnp.abs(mc[:, :, None] - mc[:, None, :]) for mc in m)  # (B, N, N)
    o = jnp.sum(jnp.exp(-dist), axis=2).T - (0.0 if self.include_self else 1.0)  # (N, B)
    return jnp.concatenate([f, o.astype(f.dtype)], axis=-1)

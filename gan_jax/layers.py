"""Flax Linen layers for image GANs (NHWC) that XLA:CPU differentiates fast, to any order.

On XLA:CPU, autodiff of a strided or transposed convolution, and the gradient penalty's double
backprop through it, lower to window-dilated convolutions, a slow path. For forward + backward +
double backward at batch 64, the plain 4×4 stride-2 conv (32×32, 64→128) took 6× as long as the
rewrite below, the transposed one (16×16→32×32, 128→64) 11×, and even the stride-1 3×3 conv
(32×32, 64→128) 5×. The fast path (`impl='fast'`) computes each conv exactly as pad →
(space-to-depth) → im2col → one matmul (→ depth-to-space), so its derivatives of every order are
pads, slices, transposes and matmuls; the price is the im2col buffer (k² × the input). The
parameters are those of `nn.Conv` / `nn.ConvTranspose`, `kernel` (kh, kw, in, out) and `bias`
(out,), rearranged inside the layer; `impl='reference'` runs `lax` convolutions on the same
parameters.
"""
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

IMPLS = ('fast', 'reference')
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


class _Conv(nn.Module):
  """Shared fields: a (k, k, in, features) kernel, an optional bias, the implementation."""
  features: int
  use_bias: bool = True
  kernel_init: Callable = dcgan_init
  bias_init: Callable = nn.initializers.zeros
  impl: str = 'fast'

  def _params(self, k, in_features):
    if self.impl not in IMPLS:
      raise ValueError(f'unknown impl {self.impl!r}; valid choices: {", ".join(IMPLS)}')
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features))
    bias = self.param('bias', self.bias_init, (self.features,)) if self.use_bias else 0.0
    return kernel, bias


class Conv(_Conv):
  """k×k conv, stride 1, 'SAME' padding: (B, H, W, C) -> (B, H, W, features).

  The same map and parameters as `nn.Conv(features, (k, k), padding='SAME')`. Fast path: an im2col
  of the padded input and one matmul with the kernel reshaped to (k·k·C, features).
  """
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel, bias = self._params(k, x.shape[-1])
    if self.impl == 'reference':
      y = lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=DIMENSION_NUMBERS)
    else:
      patches = _im2col(_pad(x, (k - 1) // 2, k // 2), k, x.shape[1], x.shape[2])
      y = patches @ kernel.reshape(-1, self.features)
    return y + bias


class StridedConv(_Conv):
  """4×4 conv, stride 2, padding 1 (DCGAN's downsampling): (B, H, W, C) -> (B, H//2, W//2, F).

  y[i, j] = b + Σ_{p,q<4} x̃[2i + p, 2j + q] K[p, q], x̃ = x zero-padded by 1: the same map and
  parameters as `nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))`, and as
  PyTorch `Conv2d(C, features, 4, stride=2, padding=1)` with weight K.transpose(3, 2, 0, 1).
  Fast path: with p = 2u + s, x̃[2i + p] = z[i + u, s] for z = space_to_depth(x̃), so
  y[i, j] = Σ_{u,v<2} z[i + u, j + v] K'[u, v] with K'[u, v, (s, t, c)] = K[2u + s, 2v + t, c]:
  a 2×2 im2col of z and one matmul with K' as (16C, features).
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(4, x.shape[-1])
    if self.impl == 'reference':
      y = lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                   dimension_numbers=DIMENSION_NUMBERS)
      return y + bias
    b, h, w, c = x.shape
    # Pad the bottom/right by 1 - (size % 2): the padded size is even, and the extra row/column
    # of an odd size is never read by the reference either.
    x = jnp.pad(x, ((0, 0), (1, 1 - h % 2), (1, 1 - w % 2), (0, 0)))
    z = _space_to_depth(x)
    kernel = kernel.reshape(2, 2, 2, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5)
    return _im2col(z, 2, h // 2, w // 2) @ kernel.reshape(16 * c, self.features) + bias


class UpConv(_Conv):
  """4×4 transposed conv, stride 2 (DCGAN's 2× upsampling): (B, H, W, C) -> (B, 2H, 2W, features).

  y[o] = b + Σ_{i,k: o = 2i + 2 - k} x[i] K[k] per spatial axis: the adjoint of `StridedConv` with
  kernel K[::-1, ::-1].swapaxes(2, 3). The same map and parameters as `nn.ConvTranspose(features,
  (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))` (= 'SAME'; lax pads k - 1 - p = 2 for
  PyTorch's p = 1) and `lax.conv_transpose` with that padding. PyTorch `ConvTranspose2d(C,
  features, 4, stride=2, padding=1)` (o = 2i + k' - 1) is this map with weight[c, f, k'] =
  K[3 - k', c, f], and Flax's `transpose_kernel=True` with the same padding takes kernel
  K[::-1, ::-1].swapaxes(2, 3).
  Fast path: for o = 2a + r (r ∈ {0, 1}), y[2a + r] = Σ_{t<2} x̂[a + r + t] K[2t + r] with x̂ = x
  padded by 1. One 2×2 im2col of x̂ at (H+1)×(W+1) positions and one matmul with K as
  (4C, (r, s, f)) give all four phases Z; y[2a + r, 2b + s] = Z[a + r, b + s, r, s]
  (depth-to-space).
  """

  @nn.compact
  def __call__(self, x):
    kernel, bias = self._params(4, x.shape[-1])
    if self.impl == 'reference':
      y = lax.conv_transpose(x, kernel, (2, 2), ((2, 2), (2, 2)),
                             dimension_numbers=DIMENSION_NUMBERS)
      return y + bias
    b, h, w, c = x.shape
    f = self.features
    kernel = kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 4, 1, 3, 5).reshape(4 * c, 4 * f)
    z = (_im2col(_pad(x, 1, 1), 2, h + 1, w + 1) @ kernel).reshape(b, h + 1, w + 1, 2, 2, f)
    y = jnp.stack([jnp.stack([z[:, r:r + h, s:s + w, r, s] for s in (0, 1)], 3) for r in (0, 1)], 2)
    return y.reshape(b, 2 * h, 2 * w, f) + bias  # (b, h, r, w, s, f) -> (b, 2h, 2w, f)


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
    m = jnp.einsum('na,abc->nbc', f, t)
    c = jnp.exp(-jnp.sum(jnp.abs(m[:, None] - m[None]), axis=-1))  # (N, N, B)
    o = jnp.sum(c, axis=1) - (0.0 if self.include_self else 1.0)
    return jnp.concatenate([f, o.astype(f.dtype)], axis=-1)

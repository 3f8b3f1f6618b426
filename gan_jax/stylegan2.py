"""StyleGAN2: the style-based generator with weight demodulation and the residual discriminator.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958):
G = synthesis ∘ mapping. The mapping network (an MLP with equalized learning rate, lr × 0.01)
takes z, normalised by its second moment, to w; w is broadcast to one style per layer (`num_ws`)
and tracked by its running mean w_avg for the truncation trick (w' = w_avg + ψ(w - w_avg)). The
synthesis network starts from a learned 4×4 constant; per resolution two 3×3 modulated convs (the
first upsampling 2×), each followed by per-pixel noise × a learned strength, bias, leaky ReLU ×
√2; with the output-skip architecture every resolution adds its toRGB (a 1×1 modulated conv
without demodulation) to the FIR-upsampled image of the last. Modulation / demodulation (sec.
2.2, eq. 1-3): with style s = affine(w) (B, C_in), w'_ijk = s_i w_ijk and
w''_ijk = w'_ijk / sqrt(Σ_ik w'²_ijk + ε), computed as the equivalent map
y = d ⊙ conv(x ⊙ s, w), d_j = 1 / sqrt(Σ_i s_i² Σ_k w²_ijk + 1e-8), so the conv's kernel is shared
across the batch (the fast `layers` convs) rather than a grouped per-sample conv. D: fromRGB at
the top resolution, per resolution conv3, conv3 with FIR low-pass and stride 2, and ('resnet') a
1×1 skip, (x + skip)·√½; then minibatch stddev (Karras et al. 2018), conv3, fc, out, and
projection conditioning (out · cmap)/√cmap_dim on a label mapping network. Every weight has an
equalized learning rate (Karras et al. 2018): stored N(0, 1)/lr_mul and scaled at run time by
lr_mul/√fan_in; biases are stored as their initial value and scaled by lr_mul. Path-length
regularisation (sec. 3.2): `path_length_penalty`.

Resampling is `upfirdn2d` (upsample by zero insertion, pad, FIR filter, downsample) with the
[1, 3, 3, 1] filter, normalised, as NVIDIA's stylegan2-ada-pytorch (torch_utils/ops/upfirdn2d.py,
conv2d_resample.py): G's up conv is a transposed 3×3 conv of stride 2 and then the filter (×4);
D's down conv the filter and then a 3×3 conv of stride 2; the 1×1 skip the filter with stride 2
and then the 1×1 conv. The depthwise filter runs as a sum of shifted, scaled slices, separable
per axis (XLA:CPU runs lax's depthwise conv, forward and double backward, 10-80× slower), and the
convs run on the `layers` primitives whose derivatives of every order XLA:CPU runs fast
(`conv_impl='rewrite'`; 'xla': lax's own convs).

The cifar settings are those of Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data" (StyleGAN2-ADA, arXiv:2006.06676), train.py's `cifar` config of the
reference code: channel_base 32768 (fmaps 1), channel_max 512 (512 channels at every resolution
of 32×32), mapping_layers 2, mbstd group 32, conv_clamp 256, z_dim = w_dim = 512, 10 classes,
and D's architecture 'orig' (residual skips off). Trainable parameters there (the reference's
Generator / Discriminator instantiated with torch, counting `parameters()`, not the buffers
noise_const, w_avg, resample_filter): G 20,215,315 (mapping 793,088, synthesis 19,422,227);
D 23,089,664 ('orig', of which the label mapping 2,106,880), 23,876,096 with 'resnet'. The
modules here have the same parameters, named as the reference's with a block's name joined to
its layer's (synthesis.b8.conv0.affine.weight: synthesis_network/b8_conv0/affine/kernel;
b4.fc.weight: b4_fc/kernel; D's mapping.fc0: mapping/fc0), `weight` as `kernel`, (in, out) for
the dense layers, (kh, kw, in, out) for the convs, the constant (4, 4, C); with the reference's
weights loaded so, G (truncation, const noise, clamping), its gradient in ws, and both Ds
(projection) and their input gradients equal the reference's outputs to float32 rounding.
Not reproduced: the reference's float16 layers (num_fp16_res; conv_clamp is kept, as the
reference clamps at every precision); style mixing draws its cutoff per example, not per
minibatch.

Randomness: the per-pixel noise draws from the 'noise' rng stream, style mixing from 'mixing',
each only when it is used. noise_mode 'const' uses fixed per-layer buffers ('batch_stats'
collection, `noise_const`, drawn at init), 'none' no noise; a call with train=False and no
'noise' stream uses the buffers (inference is then a function of the latent alone, as the
reference's generate.py). w_avg lives in 'batch_stats' and moves only when train=True
(apply with mutable=['batch_stats']).
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_jax import image_models, layers
from gan_jax.configs import check_choice

SQRT2 = math.sqrt(2.0)
NOISE_MODES = ('random', 'const', 'none')
D_ARCHITECTURES = ('resnet', 'orig')
G_CONDITIONING = ('none', 'mapping')      # the label's embedding joins z in the mapping network
D_CONDITIONING = ('none', 'projection')   # (out · cmap) / √cmap_dim, cmap of a label mapping


def _classes(conditioning: str, choices, num_classes: int) -> int:
  """The classes a network conditions on: num_classes, or 0 for conditioning 'none' (labels and
  num_classes then ignored, as image_models' networks do)."""
  check_choice('conditioning', conditioning, choices)
  if conditioning == 'none':
    return 0
  if num_classes < 1:
    raise ValueError(f'conditioning={conditioning!r} needs num_classes >= 1, got {num_classes}')
  return num_classes


# ------------------------------------------------------------------------------------------------
# Resampling: upfirdn2d.


def setup_filter(f=(1, 3, 3, 1), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1.0, separable: bool = True) -> np.ndarray:
  """An FIR filter for `upfirdn2d` as a float32 numpy array: 1-D taps (separable: applied along H
  and then W) or, with separable=False or a 2-D `f`, the 2-D filter (the outer product of 1-D
  taps). normalize: sum 1 (a constant image keeps its value); gain: the filter × gain overall
  (× √gain per axis for 1-D taps)."""
  f = np.asarray(f, np.float64)
  if f.ndim == 0:
    f = f[None]
  if f.ndim == 1 and not separable:
    f = np.outer(f, f)
  if f.ndim not in (1, 2) or f.size == 0:
    raise ValueError(f'a filter must be 1-D or 2-D taps, got shape {f.shape}')
  if normalize:
    f = f / f.sum()
  if flip_filter:
    f = f[(slice(None, None, -1),) * f.ndim]
  return (f * gain ** (f.ndim / 2)).astype(np.float32)


RESAMPLE_FILTER = setup_filter()  # [1, 3, 3, 1] / 8 per axis


def _parse_padding(padding):
  """(px0, px1, py0, py1) from an int, (px, py) or (px0, px1, py0, py1), as the reference."""
  if isinstance(padding, int):
    padding = (padding, padding)
  if len(padding) == 2:
    padding = (padding[0], padding[0], padding[1], padding[1])
  return tuple(int(p) for p in padding)


def _filter_axis(x, taps, down, axis):
  """y[j] = Σ_k taps[k] x[down·j + k] along `axis` (valid positions only)."""
  n = (x.shape[axis] - len(taps)) // down + 1
  terms = [float(t) * lax.slice_in_dim(x, k, k + down * (n - 1) + 1, down, axis)
           for k, t in enumerate(taps) if t != 0]
  return sum(terms[1:], terms[0])


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=(0, 0, 0, 0), flip_filter: bool = False,
              gain: float = 1.0) -> jax.Array:
  """Upsample, pad, FIR-filter and downsample each channel of NHWC `x` (stylegan2-ada-pytorch's
  upfirdn2d, in the same order and with the same conventions):

  1. upsample by inserting up - 1 zeros after each pixel (H -> up·H);
  2. pad by `padding` = (px0, px1, py0, py1) (W before, after; H before, after; an int or (px, py)
     for both sides), negative values cropping;
  3. convolve with `f` (flip_filter=True: correlate), keeping the outputs whose footprint lies in
     the padded image: size up·H + py0 + py1 - fh + 1;
  4. keep every `down`-th pixel.

  `f`: 1-D taps (separable, along H and then W) or a 2-D (fh, fw) filter, constants (numpy);
  gain scales the output. A depthwise convolution computed as shifted, scaled slices: linear in x,
  its derivatives of every order are slices, pads and sums again.
  """
  f = np.asarray(f, np.float32)
  if f.ndim not in (1, 2):
    raise ValueError(f'the filter must be 1-D (separable) or 2-D, got shape {f.shape}')
  px0, px1, py0, py1 = _parse_padding(padding)
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(x, zero, ((0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1),
                        (0, 0, 0)))
  f = f * np.float32(gain ** (f.ndim / 2))
  if not flip_filter:  # convolution = correlation with the flipped filter
    f = f[(slice(None, None, -1),) * f.ndim]
  if f.ndim == 1:
    return _filter_axis(_filter_axis(x, f, down, 1), f, down, 2)
  fh, fw = f.shape
  oh, ow = (x.shape[1] - fh) // down + 1, (x.shape[2] - fw) // down + 1
  terms = [float(f[i, j]) * lax.slice(x, (0, i, j, 0), (x.shape[0], i + down * (oh - 1) + 1,
                                                         j + down * (ow - 1) + 1, x.shape[3]),
                                      (1, down, down, 1))
           for i in range(fh) for j in range(fw) if f[i, j] != 0]
  return sum(terms[1:], terms[0])


def _filter_size(f):
  f = np.asarray(f)
  return (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape  # (fh, fw)


def upsample2d(x, f=RESAMPLE_FILTER, up: int = 2) -> jax.Array:
  """2× (`up`×) upsampling by zero insertion and the filter × up² (the reference's upsample2d):
  (B, H, W, C) -> (B, up·H, up·W, C)."""
  fh, fw = _filter_size(f)
  padding = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
  return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def downsample2d(x, f=RESAMPLE_FILTER, down: int = 2) -> jax.Array:
  """Low-pass filtering and keeping every `down`-th pixel (the reference's downsample2d):
  (B, H, W, C) -> (B, H/down, W/down, C)."""
  fh, fw = _filter_size(f)
  padding = ((fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2)
  return upfirdn2d(x, f, down=down, padding=padding)


# ------------------------------------------------------------------------------------------------
# Convolutions with resampling, modulated convolution, equalized-lr layers.


def _check_impl(impl):
  if impl not in layers.IMPLS:
    raise ValueError(f'unknown impl {impl!r}; valid choices: {", ".join(layers.IMPLS)}')


def conv2d_resample(x, w, up: int = 1, down: int = 1, f=RESAMPLE_FILTER,
                    impl: str = 'rewrite') -> jax.Array:
  """The reference's conv2d_resample for the cases StyleGAN2 uses, NHWC, w (k, k, C, F), k ∈ {1, 3}
  with padding k // 2, 'same' up to the resampling:

  * up = down = 1: the correlation y[p] = Σ_i x[p + i - k//2] w[i] (`layers.conv_same`);
  * down = 2, k = 3: z = upfirdn2d(x, f, padding=2), then y[j] = Σ_i z[2j + i] w[i] (stride 2, no
    padding): `layers`' Winograd stride-2 conv with the 4×4 kernel (0, w) per axis;
  * down = 2, k = 1: upfirdn2d(x, f, down=2, padding=1), then the 1×1 conv;
  * up = 2, k = 3: the transposed conv t[2i + k] += x[i] w[k] (stride 2, no padding, size 2H + 1),
    then upfirdn2d(t, f, padding=1, gain=4): `layers`' Winograd transposed conv (the adjoint of
    the stride-2 conv) of x zero-padded by 1, with the kernel w padded to 4×4 and flipped, gives
    t padded by (1, 2); the filter's padding crops the extra row.
  """
  _check_impl(impl)
  k = w.shape[0]
  lax_conv = lambda x, w, strides, padding, **kw: lax.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=layers.DIMENSION_NUMBERS, **kw)
  if k == 1 and up == 1 and down in (1, 2):
    if down == 2:
      x = upfirdn2d(x, f, down=2, padding=1)
    return jnp.einsum('bhwc,cf->bhwf', x, w[0, 0])
  if k != 3:
    raise ValueError(f'kernel size {k} with up={up}, down={down} is not supported')
  if up == 1 and down == 1:
    if impl == 'xla':
      return lax_conv(x, w, (1, 1), 'SAME')
    return layers.conv_same(x, w, 1)
  if up == 1 and down == 2:
    z = upfirdn2d(x, f, padding=2)  # (B, H + 1, W + 1, C)
    if impl == 'xla':
      return lax_conv(z, w, (2, 2), 'VALID')
    # pylint: disable-next=protected-access
    return layers._strided_conv(z, jnp.pad(w, ((1, 0), (1, 0), (0, 0), (0, 0))))
  if up == 2 and down == 1:
    if impl == 'xla':  # true convolution of the zero-stuffed input, full size 2H + 1
      t = lax_conv(x, w[::-1, ::-1], (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2))
      return upfirdn2d(t, f, padding=1, gain=4)
    kernel = jnp.pad(w[::-1, ::-1], ((1, 0), (1, 0), (0, 0), (0, 0)))
    # pylint: disable-next=protected-access
    u = layers._up_conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), kernel)
    return upfirdn2d(u, f, padding=(0, -1, 0, -1), gain=4)  # u = t padded by (1, 2)
  raise ValueError(f'up={up}, down={down} is not supported (up=2 or down=2 or neither)')


def demodulation(weight, styles, eps: float = 1e-8) -> jax.Array:
  """d (B, F) = 1 / sqrt(Σ_{i,j,c} (w[i, j, c, f] s[b, c])² + eps), StyleGAN2's eq. 3."""
  return lax.rsqrt(jnp.square(styles) @ jnp.sum(jnp.square(weight), axis=(0, 1)) + eps)


def modulated_conv(x, weight, styles, demodulate: bool = True, up: int = 1,
                   impl: str = 'rewrite') -> jax.Array:
  """StyleGAN2's modulated conv (sec. 2.2): per example b the conv with kernel
  w'[..., c, f] = w[..., c, f] s[b, c], divided by its norm per output channel when
  `demodulate` (eq. 1-3), computed exactly as d ⊙ conv(x ⊙ s, w): the shared-kernel conv of
  `conv2d_resample` (the reference's non-fused path). x (B, H, W, C), weight (k, k, C, F),
  styles (B, C); up = 2 for the upsampling conv."""
  y = conv2d_resample(x * styles[:, None, None, :].astype(x.dtype), weight, up=up, impl=impl)
  if demodulate:
    y = y * demodulation(weight, styles)[:, None, None, :].astype(y.dtype)
  return y


def bias_act(x, bias=None, activation: str = 'linear', gain: float = 1.0, clamp=None):
  """The reference's bias_act: x + b, the activation ('lrelu': leaky ReLU(0.2) × √2), × gain,
  then clipped to ±clamp·gain (clamp None: no clipping)."""
  if bias is not None:
    x = x + bias.astype(x.dtype)
  if activation == 'lrelu':
    x = nn.leaky_relu(x, 0.2) * (SQRT2 * gain)
  elif activation != 'linear':
    raise ValueError(f"unknown activation {activation!r}; valid choices: linear, lrelu")
  elif gain != 1:
    x = x * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp * gain, clamp * gain)
  return x


def _std_normal(scale: float = 1.0):
  """Initializer N(0, scale²)."""
  return lambda key, shape, dtype=jnp.float32: scale * jax.random.normal(key, shape, dtype)


class EqualizedDense(nn.Module):
  """Dense layer with an equalized learning rate (Karras et al. 2018, "Progressive Growing of
  GANs", arXiv:1710.10196, sec. 4.1; the reference's FullyConnectedLayer): kernel stored
  N(0, 1)/lr_mul and used × lr_mul/√fan_in, bias stored as `bias_init` and used × lr_mul, so
  the effective weights start N(0, 1/fan_in) and Adam's steps on them are lr_mul × smaller."""
  features: int
  use_bias: bool = True
  lr_mul: float = 1.0
  bias_init: float = 0.0
  activation: str = 'linear'

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    kernel = self.param('kernel', _std_normal(1.0 / self.lr_mul), (fan_in, self.features))
    y = x @ (kernel * (self.lr_mul / math.sqrt(fan_in))).astype(x.dtype)
    bias = None
    if self.use_bias:
      bias = self.param('bias', nn.initializers.constant(self.bias_init), (self.features,))
      bias = bias * self.lr_mul
    return bias_act(y, bias, self.activation)


class EqualizedConv(nn.Module):
  """k×k conv (k ∈ {1, 3}, padding k // 2, optionally followed by the FIR 2× downsampling) with an
  equalized learning rate (the reference's Conv2dLayer): kernel N(0, 1) used × 1/√(C·k²), then
  bias_act(activation, gain, conv_clamp)."""
  features: int
  kernel_size: int = 3
  use_bias: bool = True
  activation: str = 'linear'
  down: int = 1
  conv_clamp: float | None = None
  impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, gain: float = 1.0):
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param('kernel', _std_normal(), (k, k, c, self.features))
    w = (kernel / math.sqrt(c * k * k)).astype(x.dtype)
    y = conv2d_resample(x, w, down=self.down, impl=self.impl)
    bias = self.param('bias', nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return bias_act(y, bias, self.activation, gain, self.conv_clamp)


def normalize_2nd_moment(x, eps: float = 1e-8):
  """x / sqrt(mean(x²) + eps) over the last axis."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


# ------------------------------------------------------------------------------------------------
# Generator.


class MappingNetwork(nn.Module):
  """z (normalised by its 2nd moment) and/or the label's embedding (one-hot labels through an
  EqualizedDense(w_dim), normalised), concatenated, through `num_layers` EqualizedDense(w_dim,
  lr_mul) + lrelu: w (B, w_dim), or broadcast to (B, num_ws, w_dim) and truncated toward w_avg.
  w_avg ('batch_stats'; w_avg_beta None: none) ← mean_B(w) + β (w_avg - mean_B(w)) when
  `update_w_avg`. The reference's MappingNetwork; D's label mapping has z None, num_ws None."""
  w_dim: int = 512
  num_layers: int = 8
  num_classes: int = 0
  num_ws: int | None = None
  lr_mul: float = 0.01
  w_avg_beta: float | None = 0.995

  @nn.compact
  def __call__(self, z, labels=None, truncation_psi=1.0, truncation_cutoff=None,
               update_w_avg: bool = False):
    parts = [] if z is None else [normalize_2nd_moment(z)]
    if self.num_classes:
      if labels is None:
        raise ValueError(f'a conditional network (num_classes={self.num_classes}) needs labels')
      dtype = jnp.float32 if z is None else z.dtype
      onehot = jax.nn.one_hot(labels, self.num_classes, dtype=dtype)
      parts.append(normalize_2nd_moment(EqualizedDense(self.w_dim, name='embed')(onehot)))
    x = jnp.concatenate(parts, axis=-1)
    for i in range(self.num_layers):
      x = EqualizedDense(self.w_dim, lr_mul=self.lr_mul, activation='lrelu', name=f'fc{i}')(x)
    if self.w_avg_beta is None:
      return x
    w_avg = self.variable('batch_stats', 'w_avg', jnp.zeros, (self.w_dim,), jnp.float32)
    if update_w_avg and not self.is_initializing():
      mean = lax.stop_gradient(jnp.mean(x, axis=0)).astype(w_avg.value.dtype)
      w_avg.value = mean + self.w_avg_beta * (w_avg.value - mean)
    if self.num_ws is not None:
      x = jnp.broadcast_to(x[:, None], (x.shape[0], self.num_ws, self.w_dim))
    if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
      avg = w_avg.value.astype(x.dtype)
      truncated = avg + truncation_psi * (x - avg)
      if truncation_cutoff is None or self.num_ws is None:
        x = truncated
      else:
        x = jnp.concatenate([truncated[:, :truncation_cutoff], x[:, truncation_cutoff:]], axis=1)
    return x


class SynthesisLayer(nn.Module):
  """3×3 modulated conv (style = EqualizedDense(C_in, bias 1)(w)), demodulated, (up = 2:
  upsampling), + noise × strength (a learned scalar, 0 at init), bias, lrelu × √2, clamp. The
  noise: `noise` (B, r, r, 1) for 'random', the layer's fixed buffer for 'const'."""
  features: int
  resolution: int
  up: int = 1
  conv_clamp: float | None = None
  impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, w, noise_mode: str, noise=None):
    c = x.shape[-1]
    styles = EqualizedDense(c, bias_init=1.0, name='affine')(w)
    kernel = self.param('kernel', _std_normal(), (3, 3, c, self.features))
    strength = self.param('noise_strength', nn.initializers.zeros, ())
    const = self.variable('batch_stats', 'noise_const', lambda: jax.random.normal(
        self.make_rng('params'), (self.resolution, self.resolution)))
    y = modulated_conv(x, kernel.astype(x.dtype), styles, up=self.up, impl=self.impl)
    if noise_mode == 'random':
      y = y + noise.astype(y.dtype) * strength
    elif noise_mode == 'const':
      y = y + (const.value * strength).astype(y.dtype)[None, :, :, None]
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return bias_act(y, bias, 'lrelu', clamp=self.conv_clamp)


class ToRGB(nn.Module):
  """1×1 modulated conv without demodulation, style × 1/√C_in, + bias, clamp."""
  features: int
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, w):
    c = x.shape[-1]
    styles = EqualizedDense(c, bias_init=1.0, name='affine')(w) * (1 / math.sqrt(c))
    kernel = self.param('kernel', _std_normal(), (1, 1, c, self.features))
    y = modulated_conv(x, kernel.astype(x.dtype), styles, demodulate=False)
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return bias_act(y, bias, clamp=self.conv_clamp)


def _log2_size(size: int, minimum: int) -> int:
  n = int(round(math.log2(size))) if size > 0 else 0
  if 2 ** n != size or size < minimum:
    raise ValueError(f'StyleGAN2 needs a square image of a power-of-two size >= {minimum}, '
                     f'got {size}')
  return n


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
  """The reference's feature maps at a resolution: min(channel_base // res, channel_max)."""
  return min(channel_base // res, channel_max)


class SynthesisNetwork(nn.Module):
  """The output-skip synthesis network: ws (B, num_ws, w_dim) -> images (B, H, W, C) (no tanh).
  Blocks b4 ... b{H}: b4 = const 4×4, conv1, toRGB; the others conv0 (up), conv1, toRGB, the
  image so far upsampled 2× by `upsample2d` and the block's toRGB added. Block i's convs take
  ws[2i - 1], ws[2i] (b4: ws[0]) and its toRGB ws[2i + 1] (shared with the next block's conv0).
  noise_mode 'random': one N(0, 1) draw ('noise' rng) split among the layers (one draw compiles
  in a fraction of the time of one per layer: each threefry call site costs XLA:CPU ~1 s)."""
  data_shape: Sequence[int]
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = 256
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, ws, noise_mode: str = 'random'):
    h, w, img_channels = self.data_shape
    if h != w:
      raise ValueError(f'StyleGAN2 needs square images, got {h}×{w}')
    n = _log2_size(h, 4)
    if ws.shape[1] != 2 * n - 2:
      raise ValueError(f'{ws.shape[1]} styles given, {h}×{h} takes {2 * n - 2}')
    sizes = [4] + [4 * 2 ** i for i in range(1, n - 1) for _ in (0, 1)]  # per layer
    noises = [None] * len(sizes)
    if noise_mode == 'random':
      flat = jax.random.normal(self.make_rng('noise'), (ws.shape[0], sum(r * r for r in sizes)),
                               ws.dtype)
      offsets = np.cumsum([0] + [r * r for r in sizes])
      noises = [flat[:, o:o + r * r].reshape(-1, r, r, 1) for o, r in zip(offsets, sizes)]
    x = img = None
    for i in range(n - 1):
      res = 4 * 2 ** i
      features = channels_at(res, self.channel_base, self.channel_max)
      block = dict(features=features, resolution=res, conv_clamp=self.conv_clamp,
                   impl=self.conv_impl)
      if i == 0:
        const = self.param(f'b{res}_const', _std_normal(), (4, 4, features))
        x = jnp.broadcast_to(const.astype(ws.dtype), (ws.shape[0], 4, 4, features))
      else:
        x = SynthesisLayer(up=2, name=f'b{res}_conv0', **block)(x, ws[:, 2 * i - 1], noise_mode,
                                                                noises[2 * i - 1])
      x = SynthesisLayer(name=f'b{res}_conv1', **block)(x, ws[:, 2 * i], noise_mode, noises[2 * i])
      y = ToRGB(img_channels, self.conv_clamp, name=f'b{res}_torgb')(x, ws[:, 2 * i + 1])
      img = y if img is None else upsample2d(img) + y
    return img


class StyleGAN2Generator(nn.Module):
  """StyleGAN2's G (Karras et al. 2020, arXiv:1912.04958; config of the module docstring):
  (z (B, z_dim), labels (B,) int or None) -> images (B, H, W, C), in [-1, 1] by training (no
  tanh, as the reference). conditioning 'mapping' (num_classes > 0): the label's embedding joins
  z in the mapping network (the reference's c_dim).

  Methods: `mapping(z, labels, truncation_psi, truncation_cutoff, train)` -> ws (B, num_ws, w_dim)
  (w_avg updated when train); `styles(z, labels, train, truncation_psi)`: mapping and, when train
  and mixing_prob > 0, style mixing: per example with probability mixing_prob, ws[cutoff:] from a
  second latent z2 ~ N(0, I) (its mapping leaves w_avg alone), cutoff ~ U{1, ..., num_ws - 1}
  ('mixing' rng; the reference draws one cutoff per minibatch, here each example draws its own);
  `synthesis(ws, noise_mode, train)`; `__call__` = synthesis ∘ styles. noise_mode None: the
  field's; 'random' draws from the 'noise' rng, except with train=False and no 'noise' stream:
  then the fixed buffers ('const').
  """
  data_shape: Sequence[int]
  w_dim: int = 512
  mapping_layers: int = 8
  channel_base: int = 32768
  channel_max: int = 512
  conditioning: str = 'none'      # G_CONDITIONING
  num_classes: int = 0
  mixing_prob: float = 0.0
  noise_mode: str = 'random'
  conv_clamp: float | None = 256
  conv_impl: str = 'rewrite'

  @property
  def num_ws(self) -> int:
    """The number of styles: 2 per resolution 8...H, 1 at 4×4, and the last toRGB's."""
    return 2 * _log2_size(self.data_shape[0], 4) - 2

  def setup(self):
    classes = _classes(self.conditioning, G_CONDITIONING, self.num_classes)
    self.mapping_network = MappingNetwork(self.w_dim, self.mapping_layers, classes, self.num_ws)
    self.synthesis_network = SynthesisNetwork(self.data_shape, self.channel_base,
                                              self.channel_max, self.conv_clamp, self.conv_impl)

  def mapping(self, z, labels=None, truncation_psi=1.0, truncation_cutoff=None,
              train: bool = False):
    """ws (B, num_ws, w_dim) = the mapping of (z, labels), truncated by ψ (toward w_avg)."""
    return self.mapping_network(z, labels, truncation_psi, truncation_cutoff, update_w_avg=train)

  def styles(self, z, labels=None, train: bool = True, truncation_psi=1.0):
    """The mapping, then style mixing when train and mixing_prob > 0 (see the class docstring)."""
    ws = self.mapping(z, labels, truncation_psi, train=train)
    if not (train and self.mixing_prob > 0):
      return ws
    z_key, u_key = jax.random.split(self.make_rng('mixing'))
    z2 = jax.random.normal(z_key, z.shape, z.dtype)
    ws2 = self.mapping(z2, labels, truncation_psi, train=False)
    b, n = ws.shape[:2]
    u = jax.random.uniform(u_key, (2, b))  # the coin and the cutoff: one draw
    cutoff = jnp.minimum(1 + jnp.floor(u[1] * (n - 1)).astype(jnp.int32), n - 1)
    cutoff = jnp.where(u[0] < self.mixing_prob, cutoff, n)
    later = jnp.arange(n)[None, :] >= cutoff[:, None]
    return jnp.where(later[:, :, None], ws2, ws)

  def _noise_mode(self, noise_mode, train):
    mode = self.noise_mode if noise_mode is None else noise_mode
    check_choice('noise_mode', mode, NOISE_MODES)
    if mode == 'random' and not train and not self.has_rng('noise'):
      return 'const'
    return mode

  def synthesis(self, ws, noise_mode=None, train: bool = True):
    """Images (B, H, W, C) from ws (B, num_ws, w_dim)."""
    return self.synthesis_network(ws, self._noise_mode(noise_mode, train))

  def __call__(self, z, labels=None, train: bool = True, truncation_psi=1.0, noise_mode=None):
    return self.synthesis(self.styles(z, labels, train, truncation_psi), noise_mode, train)


# ------------------------------------------------------------------------------------------------
# Discriminator.


class StyleGAN2Discriminator(nn.Module):
  """StyleGAN2's D (Karras et al. 2020, arXiv:1912.04958, the reference's Discriminator):
  (images (B, H, W, C), labels (B,) int or None) -> logits (B,).

  fromRGB (1×1, lrelu) at H; per resolution H ... 8 a block conv0 (3×3), conv1 (3×3, FIR
  downsampling, stride 2) and with architecture 'resnet' the skip (1×1, FIR stride 2, no bias):
  (conv1·√½ + skip·√½), 'orig' (the cifar config): no skip. Epilogue at 4×4: minibatch stddev
  (group min(mbstd_group, B), 1 channel), conv (3×3), fc (lrelu) to the features (sown as
  ('intermediates', 'features')), out. conditioning 'projection' (num_classes > 0): out has
  cmap_dim (None: the 4×4 channels) outputs and the logit is (out · cmap).sum / √cmap_dim, cmap
  = a label mapping network (embedding, `mapping_layers` lrelu layers, lr × 0.01; the
  reference's D default 8).
  embedding = K > 0: out is EqualizedDense(K), (B, K) (unconditional only). Every layer has an
  equalized learning rate; the convs clamp at ±conv_clamp.
  """
  channel_base: int = 32768
  channel_max: int = 512
  conditioning: str = 'none'     # D_CONDITIONING
  num_classes: int = 0
  architecture: str = 'resnet'   # 'resnet' (StyleGAN2's D) | 'orig' (no skips; the cifar config)
  mbstd_group: int | None = 4    # None: the whole batch; cifar: 32
  mapping_layers: int = 8
  cmap_dim: int | None = None
  conv_clamp: float | None = 256
  conv_impl: str = 'rewrite'
  embedding: int = 0

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del train  # no batch statistics
    check_choice('architecture', self.architecture, D_ARCHITECTURES)
    image_models.check_embedding(self.embedding, self.conditioning)
    classes = _classes(self.conditioning, D_CONDITIONING, self.num_classes)
    if classes and labels is None:
      raise ValueError(f'a conditional D (num_classes={classes}) needs labels')
    if x.shape[1] != x.shape[2]:
      raise ValueError(f'StyleGAN2 needs square images, got {x.shape[1]}×{x.shape[2]}')
    n = _log2_size(x.shape[1], 8)
    ch = lambda res: channels_at(res, self.channel_base, self.channel_max)
    conv = lambda features, name, **kw: EqualizedConv(
        features, activation='lrelu', conv_clamp=self.conv_clamp, impl=self.conv_impl, name=name,
        **kw)
    h = None
    for res in (2 ** i for i in range(n, 2, -1)):
      if h is None:
        h = conv(ch(res), f'b{res}_fromrgb', kernel_size=1)(x)
      gain = math.sqrt(0.5) if self.architecture == 'resnet' else 1.0
      skip = None
      if self.architecture == 'resnet':
        skip = EqualizedConv(ch(res // 2), kernel_size=1, use_bias=False, down=2,
                             impl=self.conv_impl, name=f'b{res}_skip')(h, gain)
      h = conv(ch(res), f'b{res}_conv0')(h)
      h = conv(ch(res // 2), f'b{res}_conv1', down=2)(h, gain)
      h = h if skip is None else skip + h
    h = layers.MinibatchStdDev(self.mbstd_group)(h)
    h = conv(ch(4), 'b4_conv')(h)
    # Flattened in the reference's (C, H, W) order, so its fc weights load as they are.
    h = h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1)
    h = EqualizedDense(ch(4), activation='lrelu', name='b4_fc')(h)
    self.sow('intermediates', 'features', h)
    if self.embedding:
      return EqualizedDense(self.embedding, name='b4_out')(h)
    if not classes:
      return EqualizedDense(1, name='b4_out')(h)[:, 0]
    cmap_dim = self.cmap_dim or ch(4)
    out = EqualizedDense(cmap_dim, name='b4_out')(h)
    cmap = MappingNetwork(cmap_dim, self.mapping_layers, classes, w_avg_beta=None,
                          name='mapping')(None, labels).astype(out.dtype)
    return jnp.sum(out * cmap, axis=-1) / math.sqrt(cmap_dim)


# ------------------------------------------------------------------------------------------------
# Path-length regularisation.


def path_length_penalty(synthesis_fn, ws, key, pl_mean, decay: float = 0.01):
  """StyleGAN2's path-length regulariser (Karras et al. 2020, arXiv:1912.04958, sec. 3.2, eq. 4;
  the reference's loss.py): with images y = synthesis_fn(ws) (B, H, W, C) and
  u ~ N(0, I)/√(H·W) (`key`), g = ∂ Σ(y·u) / ∂ws = J_wᵀu (B, num_ws, w_dim), the lengths
  ℓ_b = sqrt(mean over the styles of Σ_w g²), the running mean a' = a + decay·(mean_b ℓ - a), and
  the penalty mean_b (ℓ_b - a')² (a' not stopped inside it, as the reference).

  Returns (penalty, a' without gradient, ℓ). Differentiable in whatever synthesis_fn closes over
  (G's parameters): the gradient of a gradient.
  """
  img, vjp = jax.vjp(synthesis_fn, ws)
  noise = jax.random.normal(key, img.shape, img.dtype) / math.sqrt(img.shape[1] * img.shape[2])
  (grads,) = vjp(noise)
  lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=2), axis=1))
  mean = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
  penalty = jnp.mean(jnp.square(lengths - mean))
  return penalty, lax.stop_gradient(mean), lengths

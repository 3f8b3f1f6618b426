"""pix2pix's networks: the U-Net generator and the PatchGAN discriminator (Isola et al. 2017,
"Image-to-Image Translation with Conditional Adversarial Networks", arXiv:1611.07004), NHWC in
[-1, 1], on the fast conv layers of gan_jax/layers.py."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import configs, layers

NORMS = ('batch', 'instance', 'none')
# PatchGAN receptive field (pixels) -> number of 4×4 stride-2 convs before the two stride-1 ones.
RECEPTIVE_FIELDS = {1: 0, 16: 1, 34: 2, 70: 3, 142: 4, 286: 5}


def _norm(kind: str, train: bool):
  """The normalisation layer `kind` (call inside a compact method)."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)
  if kind == 'instance':
    return nn.InstanceNorm()
  return lambda x: x


def dropout(x, rate: float, key):
  """Inverted dropout with an explicit key: x · m / (1 - rate), m ~ Bernoulli(1 - rate).

  Srivastava et al. 2014 (JMLR 15). In pix2pix it is G's noise source (Isola et al. 2017, sec. 3.1).
  """
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


class UNet(nn.Module):
  """U-Net generator (Ronneberger et al. 2015; Isola et al. 2017, appendix 6.1.1), NHWC in [-1, 1].

  Encoder: `depth` 4×4 stride-2 convs (`layers.StridedConv`), widths channels·min(2^i, 8)
  (C64-C128-C256-C512-C512-... in the paper), LeakyReLU 0.2 before each but the first, norm after
  each but the first and the innermost. Decoder: ReLU, 4×4 stride-2 transposed conv
  (`layers.UpConv`) back to the width of the encoder level, norm, dropout on the first
  `dropout_layers` decoder layers (the paper's CD512 ×3), then the skip: concatenation with
  that encoder level's output. A last ReLU, transposed conv to `out_channels` and tanh.
  H and W must be multiples of 2^depth; depth 5 takes 32×32 down to 1×1, so every output pixel
  sees the whole input (inpainting needs it). Called as (x, dropout_key, train): dropout only
  when train and a key is given (the loop threads it by hand); inference is deterministic.
  """
  out_channels: int
  channels: int = 64
  depth: int = 5
  dropout: float = 0.5
  dropout_layers: int = 3
  norm: str = 'batch'
  conv_impl: str = 'rewrite'  # layers.IMPLS (config.model.conv_impl, resolved)

  @nn.compact
  def __call__(self, x, dropout_key=None, train: bool = False):
    configs.check_choice('norm', self.norm, NORMS)
    h, w = x.shape[1:3]
    if self.depth < 1 or h % 2 ** self.depth or w % 2 ** self.depth:
      raise ValueError(f'U-Net depth {self.depth} needs image sides that are multiples of '
                       f'2^{self.depth}; got {h}×{w}')
    width = lambda i: self.channels * min(2 ** i, 8)
    bias = self.norm == 'none'
    skips = []
    for i in range(self.depth):
      plain = i in (0, self.depth - 1)
      if i:
        x = nn.leaky_relu(x, 0.2)
      x = layers.StridedConv(width(i), use_bias=bias or plain, impl=self.conv_impl)(x)
      if not plain:
        x = _norm(self.norm, train)(x)
      skips.append(x)
    for j, i in enumerate(reversed(range(self.depth - 1))):
      x = layers.UpConv(width(i), use_bias=bias, impl=self.conv_impl)(nn.relu(x))
      x = _norm(self.norm, train)(x)
      if train and dropout_key is not None and j < self.dropout_layers and self.dropout > 0:
        x = dropout(x, self.dropout, jax.random.fold_in(dropout_key, j))
      x = jnp.concatenate([skips[i], x], axis=-1)
    x = layers.UpConv(self.out_channels, impl=self.conv_impl)(nn.relu(x))
    return jnp.tanh(x)


def _conv4_pad1(features: int, use_bias: bool = True, impl: str = 'rewrite'):
  """4×4 conv, stride 1, zero padding 1 on each side (PyTorch padding=1): H -> H - 1.

  Equals the first H - 1 rows and columns of `layers.Conv`'s 'SAME' output (padding (1, 2)): output
  i reads input rows i - 1 .. i + 2 in both. `layers`' im2col path, not lax: alone, a lax conv's
  forward + backward ran 4× faster here, but inside the training `lax.scan` 12× slower (XLA:CPU,
  jax 0.10.2; 32×16×16×16 -> 32, 10 iterations: 5.8 s against 0.47 s unrolled).
  """
  conv = layers.Conv(features, kernel_size=4, use_bias=use_bias, impl=impl)
  return lambda x: conv(x)[:, :-1, :-1]


def patch_grid_size(size: int, receptive_field: int) -> int:
  """Side of PatchGAN's logit grid on a size×size input: size for 1×1 (PixelGAN), else
  floor(size / 2^n) - 2 for n stride-2 convs (each 4×4 pad 1: H -> floor(H/2)) and the two 4×4
  stride-1 pad-1 convs (H -> H - 1 each)."""
  configs.check_choice('receptive_field', receptive_field, tuple(RECEPTIVE_FIELDS))
  if receptive_field == 1:
    return size
  return size // 2 ** RECEPTIVE_FIELDS[receptive_field] - 2


def receptive_field(num_strided: int) -> int:
  """Receptive field of n 4×4 stride-2 convs then two 4×4 stride-1 convs: walking back from one
  output, r <- (r - 1)·stride + 4 per layer (4, 7, then 16, 34, 70, 142, 286)."""
  r = 1
  for stride in [1, 1] + [2] * num_strided:
    r = (r - 1) * stride + 4
  return r


class PatchGAN(nn.Module):
  """PatchGAN discriminator (Isola et al. 2017, sec. 3.2.2 and appendix 6.1.2): one logit per
  N×N patch, (B, H, W, C) -> (B, G, G). The caller concatenates the condition and the image.

  receptive_field 70: C64-C128-C256-C512, 4×4 convs of stride 2, 2, 2, 1, then a 1-channel 4×4
  stride-1 conv; 16: C64-C128 (strides 2, 1), then the 1-channel conv; 34, 142, 286 likewise with
  2, 4, 5 stride-2 convs; 1 (PixelGAN): C64-C128 and the output as 1×1 convs. Widths are
  channels·min(2^i, 8); LeakyReLU 0.2; no norm on the first layer. Every 4×4 conv pads 1 on each
  side, as in the paper's code, on our small images too: a 32×32 image gives a 32×32 grid (1),
  14×14 (16), 2×2 (70: each patch's 70×70 field covers the whole padded image, so D is nearly
  global); 28×28 gives 28, 12, 1 (`patch_grid_size`). Fields are exact where they fit inside
  the image, clipped at its borders.
  """
  receptive_field: int = 70
  channels: int = 64
  norm: str = 'batch'
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = False):
    del labels
    configs.check_choice('receptive_field', self.receptive_field, tuple(RECEPTIVE_FIELDS))
    configs.check_choice('norm', self.norm, NORMS)
    n = RECEPTIVE_FIELDS[self.receptive_field]
    if self.receptive_field > 1 and patch_grid_size(min(x.shape[1:3]), self.receptive_field) < 1:
      raise ValueError(f'a {self.receptive_field}×{self.receptive_field} PatchGAN needs images of '
                       f'at least {3 * 2 ** n} pixels; got {x.shape[1]}×{x.shape[2]}')
    width = lambda i: self.channels * min(2 ** i, 8)
    bias = self.norm == 'none'
    if n == 0:  # PixelGAN
      x = nn.leaky_relu(layers.Conv(width(0), kernel_size=1, impl=self.conv_impl)(x), 0.2)
      x = layers.Conv(width(1), kernel_size=1, use_bias=bias, impl=self.conv_impl)(x)
      x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
      return layers.Conv(1, kernel_size=1, impl=self.conv_impl)(x)[..., 0]
    x = nn.leaky_relu(layers.StridedConv(width(0), impl=self.conv_impl)(x), 0.2)
    for i in range(1, n):
      x = layers.StridedConv(width(i), use_bias=bias, impl=self.conv_impl)(x)
      x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
    x = _conv4_pad1(width(n), use_bias=bias, impl=self.conv_impl)(x)
    x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
    return _conv4_pad1(1, impl=self.conv_impl)(x)[..., 0]


GENERATORS = {'unet': UNet}
DISCRIMINATORS = {'patchgan': PatchGAN}

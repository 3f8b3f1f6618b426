"""Plain eager PyTorch twins of gan_jax's 32×32 image GANs, for benchmarks/vs_pytorch.py only.

Not part of the library: it needs torch (`pip install -e '.[bench]'`, see vs_pytorch.py). Each
network has the layer shapes and parameter count of its gan_jax counterpart
(gan_jax/image_models.py, biggan.py, stylegan2.py), in PyTorch's NCHW layout:

  DCGAN G    Linear(z, 4·4·4ch) → BN-ReLU → [ConvT 4×4 s2 → BN-ReLU] × 2 → ConvT 4×4 s2
             → tanh
  DCGAN D    Conv 4×4 s2 → LReLU(0.2) → [Conv 4×4 s2 → BN (or none) → LReLU] × 2
             → Linear(·, 1)
  ResNet G   Linear(z, 4·4·ch) → 3 up blocks (BN-ReLU-up-conv3-BN-ReLU-conv3, shortcut
             up-conv1) → BN-ReLU-conv3 → tanh   (Gulrajani et al. 2017; Miyato et al. 2018)
  ResNet D   optimized down block, down block, 2 plain blocks → ReLU → global sum
             → Linear(ch, 1), spectral norm on every conv and linear layer when asked
  BigGAN G   (Brock et al. 2019, arXiv:1809.11096; StudioGAN's 32 px table) z split into 4
             chunks: SN-Linear(z_0, 4·4·4ch) → 3 up blocks (CBN-ReLU-up-conv3-CBN-ReLU-conv3,
             shortcut up-conv1; CBN = BatchNorm without affine, eps 1e-4, × (1 + SN-Linear(c))
             + SN-Linear(c), c = [shared embedding(y), z_i], bias-free linears) with SAGAN
             self-attention after the 16×16 block → BN-ReLU-SN-conv3 → tanh; orthogonal init
  BigGAN D   the ResNet D's blocks at widths (2, 2, 2, 2)·ch, down (T, T, F, F), self-attention
             after the first (16×16) → ReLU → global sum h → SN-Linear(h) + ⟨SN-Embedding(y), h⟩
             (projection). Self-attention (Zhang et al. 2019, arXiv:1805.08318): bias-free SN
             1×1 convs θ, φ: C → C/8, g: C → C/2 (φ, g 2×2-max-pooled), o: C/2 → C, x + γ·o(·)
  StyleGAN2 G  (Karras et al. 2020, arXiv:1912.04958; stylegan2-ada-pytorch's `cifar` sizes)
             mapping: [normalised z, normalised Linear(one-hot y)] → 2 lrelu layers (lr × 0.01),
             w broadcast to 8 styles (+ style mixing when its probability is > 0); synthesis:
             const 4×4 → per resolution modulated conv3 (up 2× at 8…32), modulated conv3, each
             demodulated + noise × strength + bias → lrelu·√2 → clamp 256; output skips (toRGB:
             modulated 1×1 without demodulation; the image so far FIR-upsampled). Equalized lr
             everywhere (weights N(0, 1) used × lr_mul/√fan_in)
  StyleGAN2 D  fromRGB 1×1, per resolution 32, 16, 8 conv3 + conv3 with FIR low-pass and
             stride 2 ('orig': no skips; 'resnet': 1×1 skip, ·√½), minibatch stddev (groups of
             min(32, B)), conv3, fc, out → projection (out · cmap)/√cmap_dim, cmap = an 8-layer
             label mapping network

The modulated convolution is the standard eager form of the reference's training path (its
non-fused one): scale the input channels by the styles, convolve with the weight shared by the
batch, scale the output channels by the demodulation coefficients. upfirdn2d: zero insertion,
F.pad, and the normalised [1, 3, 3, 1] filter as two depthwise conv2d (separable: along W, then
H; stride 2 in the conv when downsampling); G's up conv is conv_transpose2d (stride 2) and then
the filter × 4, D's down conv the filter and then a stride-2 conv2d.

The training iteration is gan_jax.steps.train_iteration's: n_critic D updates (G in train mode
under no_grad for the fakes; D on the real batch, then on the fake batch; the objective, plus the
WGAN-GP penalty on interpolates or R1 on the reals, the latter lazily: on the iterations that are
multiples of `penalty_every`, × penalty_every), then one G update (D's parameters frozen; plus
StyleGAN2's path-length penalty on its lazy iterations when on), then the EMA of G's parameters
(a copy before `ema_start`; StyleGAN2-ADA's half-life ramp-up with `ema_rampup`). Conditional
workloads: real labels given with the reals, uniform labels for the fakes. Adam with each
network's lr and betas and eps 1e-8 (optax's), optional linear lr decay. BatchNorm momentum 0.1
= Flax's 0.9, eps 1e-5 (BigGAN's 1e-4).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

SN = nn.utils.parametrizations.spectral_norm


def _sn(layer, enabled):
  """Miyato et al. 2018 (arXiv:1802.05957): one power iteration per training forward."""
  return SN(layer, eps=1e-12) if enabled else layer


class DCGANGenerator(nn.Module):
  """gan_jax DCGANGenerator(data_shape=(32, 32, 3), channels=ch, norm='batch')."""

  def __init__(self, z_dim=100, ch=64, out_ch=3):
    super().__init__()
    self.width = 4 * ch
    self.fc = nn.Linear(z_dim, 16 * self.width)
    self.bn0 = nn.BatchNorm2d(self.width, momentum=0.1)
    self.up1 = nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1)
    self.bn1 = nn.BatchNorm2d(2 * ch, momentum=0.1)
    self.up2 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1)
    self.bn2 = nn.BatchNorm2d(ch, momentum=0.1)
    self.up3 = nn.ConvTranspose2d(ch, out_ch, 4, 2, 1)

  def forward(self, z):
    x = F.relu(self.bn0(self.fc(z).view(-1, self.width, 4, 4)))
    x = F.relu(self.bn1(self.up1(x)))
    x = F.relu(self.bn2(self.up2(x)))
    return torch.tanh(self.up3(x))


class DCGANDiscriminator(nn.Module):
  """gan_jax DCGANDiscriminator(channels=ch, norm='batch'|'none', spectral_norm) at 32×32."""

  def __init__(self, ch=64, in_ch=3, norm='batch', spectral_norm=False):
    super().__init__()
    norm_layer = lambda c: nn.BatchNorm2d(c, momentum=0.1) if norm == 'batch' else nn.Identity()
    self.c1 = _sn(nn.Conv2d(in_ch, ch, 4, 2, 1), spectral_norm)
    self.c2 = _sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1), spectral_norm)
    self.n2 = norm_layer(2 * ch)
    self.c3 = _sn(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), spectral_norm)
    self.n3 = norm_layer(4 * ch)
    self.fc = _sn(nn.Linear(16 * 4 * ch, 1), spectral_norm)

  def forward(self, x):
    x = F.leaky_relu(self.c1(x), 0.2)
    x = F.leaky_relu(self.n2(self.c2(x)), 0.2)
    x = F.leaky_relu(self.n3(self.c3(x)), 0.2)
    return self.fc(x.flatten(1))[:, 0]


class _GBlock(nn.Module):

  def __init__(self, ch):
    super().__init__()
    self.bn1, self.bn2 = nn.BatchNorm2d(ch, momentum=0.1), nn.BatchNorm2d(ch, momentum=0.1)
    self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
    self.shortcut = nn.Conv2d(ch, ch, 1)

  def forward(self, x):
    up = lambda t: F.interpolate(t, scale_factor=2, mode='nearest')
    h = self.conv1(up(F.relu(self.bn1(x))))
    h = self.conv2(F.relu(self.bn2(h)))
    return h + self.shortcut(up(x))


class ResNetGenerator(nn.Module):
  """gan_jax ResNetGenerator(data_shape=(32, 32, 3), channels=ch, norm='batch')."""

  def __init__(self, z_dim=128, ch=128, out_ch=3):
    super().__init__()
    self.ch = ch
    self.fc = nn.Linear(z_dim, 16 * ch)
    self.blocks = nn.Sequential(*[_GBlock(ch) for _ in range(3)])
    self.bn = nn.BatchNorm2d(ch, momentum=0.1)
    self.out = nn.Conv2d(ch, out_ch, 3, 1, 1)

  def forward(self, z):
    x = self.blocks(self.fc(z).view(-1, self.ch, 4, 4))
    return torch.tanh(self.out(F.relu(self.bn(x))))


class _DBlock(nn.Module):

  def __init__(self, in_ch, ch, down, first, spectral_norm):
    super().__init__()
    self.down, self.first = down, first
    self.conv1 = _sn(nn.Conv2d(in_ch, ch, 3, 1, 1), spectral_norm)
    self.conv2 = _sn(nn.Conv2d(ch, ch, 3, 1, 1), spectral_norm)
    needed = down or in_ch != ch
    self.shortcut = _sn(nn.Conv2d(in_ch, ch, 1), spectral_norm) if needed else None

  def forward(self, x):
    h = x if self.first else F.relu(x)
    h = self.conv2(F.relu(self.conv1(h)))
    if self.down:
      h = F.avg_pool2d(h, 2)
    s = x
    if self.shortcut is not None:
      if self.first:
        s = self.shortcut(F.avg_pool2d(x, 2))
      else:
        s = self.shortcut(x)
        s = F.avg_pool2d(s, 2) if self.down else s
    return h + s


class ResNetDiscriminator(nn.Module):
  """gan_jax ResNetDiscriminator(channels=ch, spectral_norm) at 32×32."""

  def __init__(self, ch=128, in_ch=3, spectral_norm=False):
    super().__init__()
    self.blocks = nn.Sequential(
        _DBlock(in_ch, ch, True, True, spectral_norm), _DBlock(ch, ch, True, False, spectral_norm),
        _DBlock(ch, ch, False, False, spectral_norm), _DBlock(ch, ch, False, False, spectral_norm))
    self.fc = _sn(nn.Linear(ch, 1), spectral_norm)

  def forward(self, x):
    h = torch.sum(F.relu(self.blocks(x)), dim=(2, 3))
    return self.fc(h)[:, 0]


# ------------------------------------------------------------------------------------------------
# BigGAN (gan_jax/biggan.py), 32×32 only.

BIGGAN_G_ARCH = {32: (4, (4, 4, 4))}                               # bottom width, block widths
BIGGAN_D_ARCH = {32: ((2, 2, 2, 2), (True, True, False, False))}   # block widths, downsampling
BIGGAN_BN_EPS = 1e-4


def _orthogonal_init(module):
  """Orthogonal initialisation of every conv, linear and embedding weight (BigGAN's), spectral
  norm's stored original where there is one."""
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
      parametrized = nn.utils.parametrize.is_parametrized(m, 'weight')
      nn.init.orthogonal_(m.parametrizations.weight.original if parametrized else m.weight)


class SelfAttention(nn.Module):
  """SAGAN's non-local block (gan_jax biggan.SelfAttention): bias-free 1×1 convs θ, φ: C → C/8,
  g: C → C/2 (φ and g 2×2-max-pooled), o: C/2 → C; y = x + γ · o(softmax(θᵀφ) g), γ from 0."""

  def __init__(self, ch, spectral_norm=True):
    super().__init__()
    proj = lambda n_in, n_out: _sn(nn.Conv2d(n_in, n_out, 1, bias=False), spectral_norm)
    self.theta, self.phi = proj(ch, ch // 8), proj(ch, ch // 8)
    self.g, self.o = proj(ch, ch // 2), proj(ch // 2, ch)
    self.gamma = nn.Parameter(torch.zeros(()))

  def forward(self, x):
    b, c, h, w = x.shape
    theta = self.theta(x).flatten(2)                      # (B, C/8, HW)
    phi = F.max_pool2d(self.phi(x), 2).flatten(2)         # (B, C/8, HW/4)
    g = F.max_pool2d(self.g(x), 2).flatten(2)             # (B, C/2, HW/4)
    beta = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, HW, HW/4)
    o = torch.bmm(g, beta.transpose(1, 2)).view(b, c // 2, h, w)
    return x + self.gamma * self.o(o)


class ConditionalBatchNorm(nn.Module):
  """BigGAN's CBN: BatchNorm(x) without affine, × (1 + W_γ c) + W_β c, bias-free SN-Linears."""

  def __init__(self, ch, cond_dim, spectral_norm=True):
    super().__init__()
    self.bn = nn.BatchNorm2d(ch, eps=BIGGAN_BN_EPS, momentum=0.1, affine=False)
    self.gain = _sn(nn.Linear(cond_dim, ch, bias=False), spectral_norm)
    self.bias = _sn(nn.Linear(cond_dim, ch, bias=False), spectral_norm)

  def forward(self, x, c):
    return self.bn(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class _BigGANGBlock(nn.Module):
  """CBN-ReLU-up-conv3-CBN-ReLU-conv3, shortcut up-conv1 (StudioGAN's order: upsample, then the
  1×1 conv; gan_jax runs the 1×1 conv first, the same map)."""

  def __init__(self, in_ch, out_ch, cond_dim, spectral_norm):
    super().__init__()
    self.bn1 = ConditionalBatchNorm(in_ch, cond_dim, spectral_norm)
    self.conv1 = _sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1), spectral_norm)
    self.bn2 = ConditionalBatchNorm(out_ch, cond_dim, spectral_norm)
    self.conv2 = _sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1), spectral_norm)
    self.shortcut = _sn(nn.Conv2d(in_ch, out_ch, 1), spectral_norm)

  def forward(self, x, c):
    up = lambda t: F.interpolate(t, scale_factor=2, mode='nearest')
    h = self.conv1(up(F.relu(self.bn1(x, c))))
    h = self.conv2(F.relu(self.bn2(h, c)))
    return h + self.shortcut(up(x))


class BigGANGenerator(nn.Module):
  """gan_jax BigGANGenerator(data_shape=(32, 32, 3), channels, shared_dim, conditioning 'cbn'
  (num_classes > 0) or 'none', attention_resolution, spectral_norm)."""

  def __init__(self, z_dim=80, channels=96, shared_dim=128, num_classes=0,
               attention_resolution=16, spectral_norm=True, out_ch=3, size=32):
    super().__init__()
    bottom, widths = BIGGAN_G_ARCH[size]
    if z_dim % (len(widths) + 1):
      raise ValueError(f'z_dim={z_dim} does not split into {len(widths) + 1} equal chunks')
    self.chunk = z_dim // (len(widths) + 1)
    self.shared = nn.Embedding(num_classes, shared_dim) if num_classes else None
    cond_dim = self.chunk + (shared_dim if num_classes else 0)
    self.width = bottom * channels
    self.linear = _sn(nn.Linear(self.chunk, 16 * self.width), spectral_norm)
    blocks, self.attend_after, res, in_ch = [], None, 4, self.width
    for i, mult in enumerate(widths):
      blocks.append(_BigGANGBlock(in_ch, mult * channels, cond_dim, spectral_norm))
      in_ch, res = mult * channels, 2 * res
      if res == attention_resolution:
        self.attend_after = i
    self.blocks = nn.ModuleList(blocks)
    self.attention = (SelfAttention(in_ch, spectral_norm) if self.attend_after is not None
                      else None)
    self.bn = nn.BatchNorm2d(in_ch, eps=BIGGAN_BN_EPS, momentum=0.1)
    self.conv_out = _sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1), spectral_norm)
    _orthogonal_init(self)

  def forward(self, z, labels=None):
    chunks = torch.split(z, self.chunk, dim=1)
    conds = chunks[1:]
    if self.shared is not None:
      shared = self.shared(labels)
      conds = [torch.cat([shared, c], dim=1) for c in conds]
    x = self.linear(chunks[0]).view(-1, self.width, 4, 4)
    for i, (block, c) in enumerate(zip(self.blocks, conds)):
      x = block(x, c)
      if i == self.attend_after:
        x = self.attention(x)
    return torch.tanh(self.conv_out(F.relu(self.bn(x))))


class BigGANDiscriminator(nn.Module):
  """gan_jax BigGANDiscriminator(channels, conditioning 'projection' (num_classes > 0) or 'none',
  attention_resolution, spectral_norm) at 32×32."""

  def __init__(self, channels=96, num_classes=0, attention_resolution=16, spectral_norm=True,
               in_ch=3, size=32):
    super().__init__()
    widths, downs = BIGGAN_D_ARCH[size]
    blocks, self.attend_after, res = [], None, size
    for i, (mult, down) in enumerate(zip(widths, downs)):
      blocks.append(_DBlock(in_ch, mult * channels, down, i == 0, spectral_norm))
      in_ch, res = mult * channels, res // 2 if down else res
      if self.attend_after is None and res == attention_resolution:
        self.attend_after = i
    self.blocks = nn.ModuleList(blocks)
    self.attention = (SelfAttention(in_ch, spectral_norm) if self.attend_after is not None
                      else None)
    self.linear = _sn(nn.Linear(in_ch, 1), spectral_norm)
    self.embed = _sn(nn.Embedding(num_classes, in_ch), spectral_norm) if num_classes else None
    _orthogonal_init(self)

  def forward(self, x, labels=None):
    for i, block in enumerate(self.blocks):
      x = block(x)
      if i == self.attend_after:
        x = self.attention(x)
    h = torch.sum(F.relu(x), dim=(2, 3))
    out = self.linear(h)[:, 0]
    if self.embed is not None:
      out = out + torch.sum(self.embed(labels) * h, dim=1)
    return out


# ------------------------------------------------------------------------------------------------
# StyleGAN2 (gan_jax/stylegan2.py; stylegan2-ada-pytorch's networks), square power-of-two sizes.

SQRT2 = math.sqrt(2.0)
FIR = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8.0  # the normalised [1, 3, 3, 1] resampling filter


def upfirdn2d(x, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
  """Upsample (zero insertion), pad (x0, x1, y0, y1), FIR-filter each channel with the separable
  [1, 3, 3, 1]/8 (× gain overall), keep every `down`-th pixel. x NCHW."""
  b, c, h, w = x.shape
  if up > 1:
    x = F.pad(x.reshape(b, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
    x = x.reshape(b, c, h * up, w * up)
  x = F.pad(x, padding)
  taps = (FIR * math.sqrt(gain)).to(x.dtype)  # symmetric: convolution = correlation
  x = F.conv2d(x, taps.view(1, 1, 1, 4).expand(c, 1, 1, 4), stride=(1, down), groups=c)
  return F.conv2d(x, taps.view(1, 1, 4, 1).expand(c, 1, 4, 1), stride=(down, 1), groups=c)


def upsample2d(x):
  """2× upsampling: zero insertion, the filter × 4 (gan_jax stylegan2.upsample2d)."""
  return upfirdn2d(x, up=2, padding=(2, 1, 2, 1), gain=4.0)


def conv2d_resample(x, w, up=1, down=1):
  """gan_jax stylegan2.conv2d_resample: w (F, C, k, k), k ∈ {1, 3}, 'same' up to resampling."""
  k = w.shape[-1]
  if up == 2:  # t[2i + k] += x[i] w[k] (size 2H + 1), then the filter × 4 with padding 1
    return upfirdn2d(F.conv_transpose2d(x, w.transpose(0, 1), stride=2), padding=(1, 1, 1, 1),
                     gain=4.0)
  if down == 2 and k == 3:
    return F.conv2d(upfirdn2d(x, padding=(2, 2, 2, 2)), w, stride=2)
  if down == 2:
    return F.conv2d(upfirdn2d(x, down=2, padding=(1, 1, 1, 1)), w)
  return F.conv2d(x, w, padding=k // 2)


def bias_act(x, bias=None, activation='linear', gain=1.0, clamp=None):
  """x + b (channel axis 1), leaky ReLU(0.2) × √2 ('lrelu'), × gain, clipped to ±clamp·gain."""
  if bias is not None:
    x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
  if activation == 'lrelu':
    x = F.leaky_relu(x, 0.2) * (SQRT2 * gain)
  elif gain != 1:
    x = x * gain
  if clamp is not None:
    x = x.clamp(-clamp * gain, clamp * gain)
  return x


def normalize_2nd_moment(x, eps=1e-8):
  return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


class EqualizedLinear(nn.Module):
  """Equalized-lr dense layer: weight stored N(0, 1)/lr_mul, used × lr_mul/√fan_in; bias stored
  as bias_init, used × lr_mul."""

  def __init__(self, in_features, out_features, bias=True, lr_mul=1.0, bias_init=0.0,
               activation='linear'):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
    self.bias = (nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None)
    self.weight_gain = lr_mul / math.sqrt(in_features)
    self.lr_mul, self.activation = lr_mul, activation

  def forward(self, x):
    w = self.weight * self.weight_gain
    b = None if self.bias is None else self.bias * self.lr_mul
    if self.activation == 'linear' and b is not None:
      return torch.addmm(b.unsqueeze(0), x, w.t())
    return bias_act(x.matmul(w.t()), b, self.activation)


class EqualizedConv2d(nn.Module):
  """Equalized-lr k×k conv (weight N(0, 1) used × 1/√(C·k²)), optional FIR 2× downsampling,
  then bias_act(activation, gain, clamp)."""

  def __init__(self, in_ch, out_ch, kernel_size=3, bias=True, activation='linear', down=1,
               conv_clamp=None):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
    self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
    self.weight_gain = 1 / math.sqrt(in_ch * kernel_size ** 2)
    self.activation, self.down, self.conv_clamp = activation, down, conv_clamp

  def forward(self, x, gain=1.0):
    y = conv2d_resample(x, self.weight * self.weight_gain, down=self.down)
    return bias_act(y, self.bias, self.activation, gain, self.conv_clamp)


class MappingNetwork(nn.Module):
  """[normalised z, normalised EqualizedLinear(one-hot y)] → num_layers lrelu layers (lr_mul):
  w (B, w_dim), broadcast to (B, num_ws, w_dim) when num_ws; w_avg (a buffer) ← mean_B(w) +
  β (w_avg - mean_B(w)) when asked. D's label mapping: z_dim 0, num_ws None, no w_avg."""

  def __init__(self, z_dim, num_classes, w_dim, num_layers, num_ws=None, lr_mul=0.01,
               w_avg_beta=0.995):
    super().__init__()
    self.num_classes, self.num_ws, self.w_avg_beta = num_classes, num_ws, w_avg_beta
    self.embed = EqualizedLinear(num_classes, w_dim) if num_classes else None
    width = z_dim + (w_dim if num_classes else 0)
    self.fcs = nn.ModuleList(
        EqualizedLinear(width if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation='lrelu')
        for i in range(num_layers))
    if w_avg_beta is not None:
      self.register_buffer('w_avg', torch.zeros(w_dim))

  def forward(self, z, labels=None, update_w_avg=False):
    parts = [] if z is None else [normalize_2nd_moment(z)]
    if self.embed is not None:
      onehot = F.one_hot(labels, self.num_classes).to(torch.float32)
      parts.append(normalize_2nd_moment(self.embed(onehot)))
    x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    for fc in self.fcs:
      x = fc(x)
    if update_w_avg and self.w_avg_beta is not None:
      with torch.no_grad():
        self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
    if self.num_ws is not None:
      x = x.unsqueeze(1).expand(-1, self.num_ws, -1)
    return x


class SynthesisLayer(nn.Module):
  """Modulated 3×3 conv (style = EqualizedLinear(w, bias 1)), demodulated, up = 2 upsampling,
  + per-pixel noise × strength, bias, lrelu·√2, clamp. The eager form: x ⊙ s, the shared conv,
  ⊙ d, d = 1/√(Σ s² w² + 1e-8) per example and output channel."""

  def __init__(self, in_ch, out_ch, w_dim, resolution, up=1, conv_clamp=None):
    super().__init__()
    self.affine = EqualizedLinear(w_dim, in_ch, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
    self.noise_strength = nn.Parameter(torch.zeros(()))
    self.bias = nn.Parameter(torch.zeros(out_ch))
    self.register_buffer('noise_const', torch.randn(resolution, resolution))
    self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp

  def forward(self, x, w):
    styles = self.affine(w)                                           # (B, C)
    y = conv2d_resample(x * styles[:, :, None, None], self.weight, up=self.up)
    d = torch.rsqrt(styles.square() @ self.weight.square().sum(dim=(2, 3)).t() + 1e-8)
    y = y * d[:, :, None, None]
    noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, dtype=y.dtype)
    y = y + noise * self.noise_strength
    return bias_act(y, self.bias, 'lrelu', clamp=self.conv_clamp)


class ToRGB(nn.Module):
  """1×1 modulated conv without demodulation (style × 1/√C), + bias, clamp."""

  def __init__(self, in_ch, out_ch, w_dim, conv_clamp=None):
    super().__init__()
    self.affine = EqualizedLinear(w_dim, in_ch, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
    self.bias = nn.Parameter(torch.zeros(out_ch))
    self.style_gain, self.conv_clamp = 1 / math.sqrt(in_ch), conv_clamp

  def forward(self, x, w):
    styles = self.affine(w) * self.style_gain
    y = F.conv2d(x * styles[:, :, None, None], self.weight)
    return bias_act(y, self.bias, clamp=self.conv_clamp)


def _channels(res, channel_base, channel_max):
  return min(channel_base // res, channel_max)


class StyleGAN2Generator(nn.Module):
  """gan_jax StyleGAN2Generator(data_shape=(size, size, 3), w_dim, mapping_layers, channel_base,
  channel_max, conditioning 'mapping' (num_classes > 0) or 'none', mixing_prob, noise 'random',
  conv_clamp): the output-skip synthesis network of styles ws[0 … num_ws - 1]."""

  def __init__(self, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512,
               num_classes=0, mixing_prob=0.0, conv_clamp=256, size=32, out_ch=3):
    super().__init__()
    n = int(round(math.log2(size)))
    self.num_ws, self.mixing_prob, self.z_dim = 2 * n - 2, float(mixing_prob), z_dim
    self.mapping = MappingNetwork(z_dim, num_classes, w_dim, mapping_layers, self.num_ws)
    ch = lambda res: _channels(res, channel_base, channel_max)
    self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
    self.b4_conv1 = SynthesisLayer(ch(4), ch(4), w_dim, 4, conv_clamp=conv_clamp)
    self.b4_torgb = ToRGB(ch(4), out_ch, w_dim, conv_clamp)
    self.blocks = nn.ModuleList()
    for res in (2 ** i for i in range(3, n + 1)):
      self.blocks.append(nn.ModuleDict({
          'conv0': SynthesisLayer(ch(res // 2), ch(res), w_dim, res, up=2, conv_clamp=conv_clamp),
          'conv1': SynthesisLayer(ch(res), ch(res), w_dim, res, conv_clamp=conv_clamp),
          'torgb': ToRGB(ch(res), out_ch, w_dim, conv_clamp)}))

  def styles(self, z, labels=None, update_w_avg=True):
    """The mapping and, with mixing_prob > 0, style mixing as gan_jax's: per example, with that
    probability, ws[cutoff:] from a second latent's mapping, cutoff ~ U{1, …, num_ws - 1}."""
    ws = self.mapping(z, labels, update_w_avg)
    if self.mixing_prob <= 0:
      return ws
    ws2 = self.mapping(torch.randn_like(z), labels)
    b, n = ws.shape[:2]
    u = torch.rand(2, b)
    cutoff = torch.clamp(1 + torch.floor(u[1] * (n - 1)).long(), max=n - 1)
    cutoff = torch.where(u[0] < self.mixing_prob, cutoff, torch.full_like(cutoff, n))
    later = torch.arange(n)[None, :] >= cutoff[:, None]
    return torch.where(later[:, :, None], ws2, ws)

  def synthesis(self, ws):
    x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
    x = self.b4_conv1(x, ws[:, 0])
    img = self.b4_torgb(x, ws[:, 1])
    for i, block in enumerate(self.blocks, start=1):
      x = block['conv0'](x, ws[:, 2 * i - 1])
      x = block['conv1'](x, ws[:, 2 * i])
      img = upsample2d(img) + block['torgb'](x, ws[:, 2 * i + 1])
    return img

  def forward(self, z, labels=None):
    return self.synthesis(self.styles(z, labels))


class MinibatchStdDev(nn.Module):
  """Appends one channel: per group of G = min(group_size, B) (member g of group m is example
  g·M + m), the mean over C, H, W of the std across the group (biased variance, + 1e-8)."""

  def __init__(self, group_size=4):
    super().__init__()
    self.group_size = group_size

  def forward(self, x):
    b, c, h, w = x.shape
    g = b if self.group_size is None else min(self.group_size, b)
    std = torch.sqrt(x.reshape(g, b // g, c, h, w).var(dim=0, unbiased=False) + 1e-8)
    s = std.mean(dim=(1, 2, 3)).repeat(g)                             # (B,)
    return torch.cat([x, s.view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)


class StyleGAN2Discriminator(nn.Module):
  """gan_jax StyleGAN2Discriminator(channel_base, channel_max, conditioning 'projection'
  (num_classes > 0) or 'none', architecture 'orig' | 'resnet', mbstd_group, mapping_layers,
  cmap_dim, conv_clamp) at size×size."""

  def __init__(self, channel_base=32768, channel_max=512, num_classes=0, architecture='resnet',
               mbstd_group=4, mapping_layers=8, cmap_dim=None, conv_clamp=256, size=32,
               in_ch=3):
    super().__init__()
    ch = lambda res: _channels(res, channel_base, channel_max)
    n = int(round(math.log2(size)))
    conv = lambda i, o, **kw: EqualizedConv2d(i, o, activation='lrelu', conv_clamp=conv_clamp,
                                              **kw)
    self.resnet = architecture == 'resnet'
    self.fromrgb = conv(in_ch, ch(size), kernel_size=1)
    self.blocks = nn.ModuleList()
    for res in (2 ** i for i in range(n, 2, -1)):
      block = nn.ModuleDict({'conv0': conv(ch(res), ch(res)),
                             'conv1': conv(ch(res), ch(res // 2), down=2)})
      if self.resnet:
        block['skip'] = EqualizedConv2d(ch(res), ch(res // 2), 1, bias=False, down=2)
      self.blocks.append(block)
    self.mbstd = MinibatchStdDev(mbstd_group)
    self.conv = conv(ch(4) + 1, ch(4))
    self.fc = EqualizedLinear(ch(4) * 16, ch(4), activation='lrelu')
    self.cmap_dim = (cmap_dim or ch(4)) if num_classes else 0
    self.out = EqualizedLinear(ch(4), self.cmap_dim or 1)
    self.mapping = (MappingNetwork(0, num_classes, self.cmap_dim, mapping_layers, w_avg_beta=None)
                    if num_classes else None)

  def forward(self, img, labels=None):
    x = self.fromrgb(img)
    gain = math.sqrt(0.5) if self.resnet else 1.0
    for block in self.blocks:
      skip = block['skip'](x, gain) if self.resnet else None
      x = block['conv1'](block['conv0'](x), gain)
      x = x if skip is None else skip + x
    x = self.fc(self.conv(self.mbstd(x)).flatten(1))  # (C, H, W) order, as the reference
    out = self.out(x)
    if self.mapping is None:
      return out[:, 0]
    return torch.sum(out * self.mapping(None, labels), dim=1) / math.sqrt(self.cmap_dim)


# The objectives of gan_jax.losses (on logits / critic values), as (d_loss, g_loss).
OBJECTIVES = {
    'non_saturating': (lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
                       lambda f: F.softplus(-f).mean()),
    'wasserstein': (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),
    'hinge': (lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean(), lambda f: -f.mean()),
}


def gradient_penalty(d, real, fake, target=1.0):
  """WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028): E[(‖∇D(x̂)‖ - target)²]. d: a batch →
  D's outputs (the labels bound, for a conditional D)."""
  eps = torch.rand(real.shape[0], 1, 1, 1)
  x = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
  grad, = torch.autograd.grad(d(x).sum(), x, create_graph=True)
  return ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - target).pow(2).mean()


def r1_penalty(d, real):
  """R1 (Mescheder et al. 2018, arXiv:1801.04406): E‖∇ₓD(x)‖² on the reals, from a forward of
  its own (as gan_jax's penalty term, beside the objective's forward on the same batch)."""
  x = real.detach().requires_grad_(True)
  grad, = torch.autograd.grad(d(x).sum(), x, create_graph=True)
  return grad.flatten(1).pow(2).sum(1).mean()


def build_networks(spec):
  """(G, D) for a workload spec (see vs_pytorch.torch_spec; BigGAN and StyleGAN2 read their sizes
  from spec['arch'] = {'g': ..., 'd': ...}, the gan_jax modules' fields)."""
  classes, size = spec.get('num_classes', 0), spec.get('image_size', 32)
  arch = spec.get('arch', {})
  g_arch, d_arch = arch.get('g', {}), arch.get('d', {})
  if spec['generator'] == 'dcgan':
    g = DCGANGenerator(spec['z_dim'], spec['g_channels'])
  elif spec['generator'] == 'resnet':
    g = ResNetGenerator(spec['z_dim'], spec['g_channels'])
  elif spec['generator'] == 'biggan':
    g = BigGANGenerator(spec['z_dim'], g_arch['channels'], g_arch['shared_dim'],
                        classes if g_arch['conditioning'] != 'none' else 0,
                        g_arch['attention_resolution'], g_arch['spectral_norm'], size=size)
  elif spec['generator'] == 'stylegan2':
    if g_arch['noise_mode'] != 'random':
      raise ValueError(f"the twin draws random noise, not noise_mode={g_arch['noise_mode']!r}")
    g = StyleGAN2Generator(spec['z_dim'], g_arch['w_dim'], g_arch['mapping_layers'],
                           g_arch['channel_base'], g_arch['channel_max'],
                           classes if g_arch['conditioning'] != 'none' else 0,
                           g_arch['mixing_prob'], g_arch['conv_clamp'], size=size)
  else:
    raise ValueError(f"no PyTorch twin of generator {spec['generator']!r}")
  if spec['discriminator'] == 'dcgan':
    d = DCGANDiscriminator(spec['d_channels'], norm=spec['d_norm'],
                           spectral_norm=spec['spectral_norm'])
  elif spec['discriminator'] == 'resnet':
    d = ResNetDiscriminator(spec['d_channels'], spectral_norm=spec['spectral_norm'])
  elif spec['discriminator'] == 'biggan':
    d = BigGANDiscriminator(d_arch['channels'],
                            classes if d_arch['conditioning'] != 'none' else 0,
                            d_arch['attention_resolution'], d_arch['spectral_norm'], size=size)
  elif spec['discriminator'] == 'stylegan2':
    d = StyleGAN2Discriminator(d_arch['channel_base'], d_arch['channel_max'],
                               classes if d_arch['conditioning'] != 'none' else 0,
                               d_arch['architecture'], d_arch['mbstd_group'],
                               d_arch['mapping_layers'], d_arch['cmap_dim'], d_arch['conv_clamp'],
                               size=size)
  else:
    raise ValueError(f"no PyTorch twin of discriminator {spec['discriminator']!r}")
  return g, d


def num_params(module):
  """Trainable parameters (spectral norm's u, v and BatchNorm's statistics are buffers)."""
  return sum(p.numel() for p in module.parameters())


def _grad_norm(module):
  """The global L2 norm of the gradients (gan_jax logs d_grad_norm / g_grad_norm)."""
  grads = [p.grad for p in module.parameters()]
  norms = torch._foreach_norm(grads)  # pylint: disable=protected-access
  return torch.linalg.vector_norm(torch.stack(norms))


class Trainer:
  """G, D, their Adam optimizers and G's EMA; `iteration(reals, labels)` is one training
  iteration. `step` counts the iterations done: the lazy terms (R1 with penalty_every > 1, the
  path-length penalty) run on the iterations that are multiples of their interval, as gan_jax's
  (state.step before the increment)."""

  def __init__(self, spec, seed=0):
    torch.manual_seed(seed)
    self.spec = spec
    self.g, self.d = build_networks(spec)
    self.g.train()
    self.d.train()
    self.num_classes = int(spec.get('num_classes', 0))
    self.d_loss, self.g_loss = OBJECTIVES[spec['objective']]
    adam = lambda net, lr, betas: torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=1e-8)
    self.g_opt = adam(self.g, spec.get('g_lr', spec['lr']), spec.get('g_betas', spec['betas']))
    self.d_opt = adam(self.d, spec.get('d_lr', spec['lr']), spec.get('d_betas', spec['betas']))
    # optax.linear_schedule to 0: G over `steps` updates, D over steps × n_critic updates.
    linear = spec['lr_schedule'] == 'linear'
    decay = lambda opt, n: torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda i: max(0.0, 1.0 - i / n)) if linear else (lambda i: 1.0))
    self.g_sched = decay(self.g_opt, spec['steps'])
    self.d_sched = decay(self.d_opt, spec['steps'] * spec['n_critic'])
    self.ema = [p.detach().clone() for p in self.g.parameters()]
    self.step = 0
    self.pl_mean = torch.zeros(())

  def lazy_intervals(self):
    """{'penalty': k, 'path_length': k} of the terms that run every k > 1 iterations."""
    spec, out = self.spec, {}
    if spec['penalty'] != 'none' and spec.get('penalty_every', 1) > 1:
      out['penalty'] = int(spec['penalty_every'])
    pl = spec.get('path_length')
    if pl and pl['every'] > 1:
      out['path_length'] = int(pl['every'])
    return out

  def _labels(self, n):
    return torch.randint(0, self.num_classes, (n,)) if self.num_classes else None

  def _run_g(self, z, labels):
    return self.g(z, labels) if self.num_classes else self.g(z)

  def _run_d(self, x, labels):
    return self.d(x, labels) if self.num_classes else self.d(x)

  def _d_update(self, real, real_labels):
    spec = self.spec
    z, fake_labels = torch.randn(real.shape[0], spec['z_dim']), self._labels(real.shape[0])
    with torch.no_grad():
      fake = self._run_g(z, fake_labels)
    loss = self.d_loss(self._run_d(real, real_labels), self._run_d(fake, fake_labels))
    d_fn = lambda x: self._run_d(x, real_labels)
    every = int(spec.get('penalty_every', 1))
    if spec['penalty'] == 'wgan_gp':
      loss = loss + spec['penalty_weight'] * gradient_penalty(d_fn, real, fake)
    elif spec['penalty'] == 'r1' and self.step % every == 0:
      loss = loss + spec['penalty_weight'] * every * r1_penalty(d_fn, real)
    elif spec['penalty'] not in ('none', 'r1'):
      raise ValueError(f"the twin has no penalty {spec['penalty']!r}")
    self.d_opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _grad_norm(self.d)
    self.d_opt.step()
    self.d_sched.step()
    return loss.detach(), grad_norm

  def _path_length(self, z, labels):
    """StyleGAN2's path-length penalty (Karras et al. 2020, sec. 3.2) as gan_jax's
    steps.path_length_term: on the first B/batch_shrink latents, ws with style mixing, the images
    with fresh noise, g = J_wᵀu (u ~ N(0, I)/√(H·W)), ℓ = √(mean over the styles of Σ g²), the
    running mean a' = a + decay·(mean ℓ - a), penalty every · mean (ℓ - a')²."""
    pl = self.spec['path_length']
    m = max(1, z.shape[0] // pl['batch_shrink'])
    ws = self.g.styles(z[:m], None if labels is None else labels[:m], update_w_avg=False)
    img = self.g.synthesis(ws)
    u = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    grad, = torch.autograd.grad((img * u).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    mean = self.pl_mean + pl['decay'] * (lengths.mean() - self.pl_mean)
    self.pl_mean = mean.detach()
    return pl['every'] * (lengths - mean).square().mean()

  def _g_update(self, batch_size):
    self.d.requires_grad_(False)
    z, labels = torch.randn(batch_size, self.spec['z_dim']), self._labels(batch_size)
    loss = self.g_loss(self._run_d(self._run_g(z, labels), labels))
    pl = self.spec.get('path_length')
    if pl and self.step % pl['every'] == 0:
      loss = loss + pl['weight'] * self._path_length(z, labels)
    self.g_opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _grad_norm(self.g)
    self.g_opt.step()
    self.g_sched.step()
    self.d.requires_grad_(True)
    return loss.detach(), grad_norm

  def _ema_decay(self):
    """gan_jax state.ema_decay_at: 0 before ema_start; with ema_rampup r > 0 the half-life
    h = ln ½ / ln decay capped at r · step (StyleGAN2-ADA's ramp-up): ½^(1 / min(h, r · step))."""
    spec, decay = self.spec, self.spec['ema_decay']
    rampup = spec.get('ema_rampup', 0.0)
    if rampup:
      ramped = min(math.log(0.5) / math.log(decay) if decay > 0 else 0.0, rampup * self.step)
      decay = 0.5 ** (1.0 / ramped) if ramped > 0 else 0.0
    return 0.0 if self.step < spec.get('ema_start', 0) else decay

  def iteration(self, reals, labels=None):
    """reals: (n_critic, B, C, H, W); labels: (n_critic, B) ints for a conditional workload.
    Returns the metrics as tensors (no host sync needed)."""
    d_losses = []
    for i, real in enumerate(reals):
      d_losses.append(self._d_update(real, None if labels is None else labels[i])[0])
    g_loss, _ = self._g_update(reals.shape[1])
    decay = self._ema_decay()
    with torch.no_grad():
      torch._foreach_lerp_(  # pylint: disable=protected-access
          self.ema, list(self.g.parameters()), 1.0 - decay)
    self.step += 1
    return {'d_loss': torch.stack(d_losses).mean(), 'g_loss': g_loss}

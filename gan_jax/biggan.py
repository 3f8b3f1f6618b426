"""BigGAN's generator and discriminator with SAGAN's self-attention (NHWC, images in [-1, 1]).

Papers:
  Zhang, Goodfellow, Metaxas & Odena 2019, "Self-Attention Generative Adversarial Networks"
    (arXiv:1805.08318): the non-local block `SelfAttention`.
  Brock, Donahue & Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image
    Synthesis" (arXiv:1809.11096): `BigGANGenerator`, `BigGANDiscriminator`.
  Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral Normalization for GANs" (arXiv:1802.05957),
    and Miyato & Koyama 2018, "cGANs with Projection Discriminator" (arXiv:1802.05637).

The architecture tables (channel multipliers of `channels` per block, D's downsampling flags,
4×4 bottom) are those of StudioGAN's BigGAN (Kang et al., PyTorch-StudioGAN,
src/models/big_resnet.py) for 32, 64 and 128 px:

  G (bottom width, block outputs)        D (block outputs; last one(s) not downsampling)
  32:  4, (4, 4, 4)                      (2, 2, 2, 2)             down (T, T, F, F)
  64:  16, (8, 4, 2, 1)                  (1, 2, 4, 8, 16)         down (T, T, T, T, F)
  128: 16, (16, 8, 4, 2, 1)              (1, 2, 4, 8, 16, 16)     down (T, T, T, T, T, F)

G: z (B, z_dim) splits into num_blocks + 1 equal chunks (hierarchical latents): z_0 → SN-Linear →
4×4; block i's conditioning vector is c_i = [shared(y), z_{i+1}] (the shared class embedding, not
spectral-normed, then the chunk; unconditional: c_i = z_{i+1}, as StudioGAN's unconditional
BigGAN, whose G keeps the conditional BatchNorm on the chunks). Each block is
BN-ReLU-up-conv3-BN-ReLU-conv3 with shortcut up-conv1, each BN conditional:
  CBN(x, c) = x̂ · (1 + W_γ c) + W_β c,   x̂ = BatchNorm(x) without affine (eps 1e-4),
W_γ, W_β bias-free SN-Linears. After the block whose output is `attention_resolution`² comes
self-attention, then BN-ReLU-SN-conv3-tanh. Orthogonal initialisation, SN on every layer but
the shared embedding.
D: an optimized first block (conv3-ReLU-conv3-avgpool, shortcut avgpool-conv1), then
pre-activation blocks (ReLU-conv3-ReLU-conv3(-avgpool), shortcut conv1 when downsampling or
changing width), self-attention after the first block whose output is `attention_resolution`²,
ReLU, global sum pooling h, output ψ(h) + ⟨SN-embed(y), h⟩ (projection; ψ an SN-Linear).

Parameter counts (trainable only: no spectral-norm u vectors, no BatchNorm running stats) equal
StudioGAN's, instantiated with torch from its repository (HEAD 947b35e) and counted as
Σ p.numel() over named_parameters(); CIFAR10 BigGAN.yaml: img_size 32, num_classes 10, z_dim 80,
g_shared_dim 128, g_conv_dim = d_conv_dim = 96, attn_g_loc [2], attn_d_loc [1] (both at 16×16),
apply_g_sn = apply_d_sn = True, cBN / PD. The tests assert them (`REFERENCE_PARAMS`).
StudioGAN's attn_g_loc / attn_d_loc (attention after block k, 1-based) become resolutions: its
configs put both at H/2 (CIFAR 16, 64 px 32, 128 px 64).
Convolutions are `layers` convs (conv_impl 'rewrite': fast on XLA:CPU; 'xla': lax's own).

Not as StudioGAN: Flax's power iteration (`layers.spectral_norm`, ε = 1e-12 inside the norm;
PyTorch's clamps the norm at 1e-6); the first linear's 4×4×C output is laid out NHWC (the same
map up to a permutation of its outputs); without spectral norm StudioGAN's D adds BatchNorm, this
one stays plain.
"""
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import image_models, layers
from gan_jax.configs import check_choice

# StudioGAN big_resnet's tables (module docstring): G (bottom width, block output widths), D
# (block output widths, downsampling), as multiples of `channels`.
G_ARCH = {32: (4, (4, 4, 4)), 64: (16, (8, 4, 2, 1)), 128: (16, (16, 8, 4, 2, 1))}
D_ARCH = {32: ((2, 2, 2, 2), (True, True, False, False)),
          64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
          128: ((1, 2, 4, 8, 16, 16), (True, True, True, True, True, False))}
G_CONDITIONING = ('none', 'cbn')
D_CONDITIONING = ('none', 'projection')
BN_EPS = 1e-4  # StudioGAN's batchnorm_2d (PyTorch momentum 0.1 = Flax momentum 0.9)

# Trainable parameters of StudioGAN's Generator / Discriminator (src/models/big_resnet.py at HEAD
# 947b35e, built with torch 2.x CPU and counted as Σ p.numel() over parameters()), keyed
# by (image size, channels, z_dim, num_classes; 0 = g_cond_mtd / d_cond_mtd 'W/O'); shared_dim
# 128 and attention at H/2 (attn_g_loc / attn_d_loc of the configs) throughout.
REFERENCE_PARAMS = {
    (32, 96, 80, 10): (9_416_196, 2_415_170),      # CIFAR10/BigGAN.yaml
    (32, 96, 80, 0): (8_825_092, 2_413_250),       # CIFAR10/BigGAN-Uncond.yaml
    (64, 80, 100, 100): (17_322_404, 30_668_722),  # Baby_ImageNet/BigGAN.yaml
    (128, 80, 120, 200): (49_226_404, 60_290_482),  # CUB200/BigGAN.yaml
    (128, 96, 120, 1000): (70_433_988, 87_982_370),  # ImageNet/BigGAN-256.yaml
}


# The ResNet D block: with first=True StudioGAN's DiscOptBlock, else its DiscBlock (same maps).
_DBlock = image_models._DBlock  # pylint: disable=protected-access


def _sn(layer, enabled):
  return layers.spectral_norm(layer, enabled)


def max_pool(x):
  """2×2 max pooling, stride 2, of NHWC x (even sizes)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def attend(theta, phi, g):
  """SAGAN's attention on the projections of x (B, H, W, ·): each position p attends over the
  2×2-max-pooled positions q, β_pq = softmax_q(θ_p · maxpool(φ)_q), o_p = Σ_q β_pq maxpool(g)_q.
  Returns o (B, H, W, g's channels)."""
  b, h, w, _ = theta.shape
  phi, g = max_pool(phi), max_pool(g)
  beta = jax.nn.softmax(jnp.einsum('bpc,bqc->bpq', theta.reshape(b, h * w, -1),
                                   phi.reshape(b, -1, phi.shape[-1])), axis=-1)
  o = jnp.einsum('bpq,bqc->bpc', beta, g.reshape(b, -1, g.shape[-1]))
  return o.reshape(b, h, w, -1)


class SelfAttention(nn.Module):
  """SAGAN's non-local block as BigGAN / StudioGAN implement it: bias-free 1×1 convs θ, φ: C → C/8,
  g: C → C/2 (φ and g then 2×2 max-pooled), o: C/2 → C; y = x + γ · o(attend(θx, φx, gx)) with a
  learned scalar γ initialised to 0 (the block starts as the identity). Spectral norm on the four
  projections when `spectral_norm`."""
  spectral_norm: bool = True
  kernel_init: nn.initializers.Initializer = image_models.INITS['orthogonal']

  @nn.compact
  def __call__(self, x, train: bool = True):
    c = x.shape[-1]
    proj = lambda n, name: _sn(nn.Dense(n, use_bias=False, kernel_init=self.kernel_init,
                                        name=name), self.spectral_norm)
    o = attend(proj(c // 8, 'theta')(x, train), proj(c // 8, 'phi')(x, train),
               proj(c // 2, 'g')(x, train))
    gamma = self.param('gamma', nn.initializers.zeros, ())
    return x + gamma * proj(c, 'o')(o, train)


class ConditionalBatchNorm(nn.Module):
  """BigGAN's conditional BatchNorm: x̂ · (1 + W_γ c) + W_β c for a conditioning vector c (B, D),
  x̂ = BatchNorm(x) without scale and shift; W_γ, W_β bias-free (SN-)Linears. At c = 0 it is
  plain BatchNorm (gain 1, bias 0)."""
  spectral_norm: bool = True
  kernel_init: nn.initializers.Initializer = image_models.INITS['orthogonal']

  @nn.compact
  def __call__(self, x, c, train: bool = True):
    f = x.shape[-1]
    linear = lambda name: _sn(nn.Dense(f, use_bias=False, kernel_init=self.kernel_init,
                                       name=name), self.spectral_norm)
    gain = 1 + linear('gain')(c, train)
    bias = linear('bias')(c, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=BN_EPS,
                     use_scale=False, use_bias=False)(x)
    return x * gain[:, None, None, :] + bias[:, None, None, :]


class _GBlock(nn.Module):
  """BigGAN G block: CBN-ReLU-up-conv3-CBN-ReLU-conv3, shortcut up-conv1, both CBNs on c. The
  up-conv3 is `layers.UpsampleConv`; the shortcut's 1×1 conv runs before the upsampling (they
  commute). Sows c as ('intermediates', 'conditioning')."""
  features: int
  spectral_norm: bool
  kernel_init: nn.initializers.Initializer
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, c, train):
    self.sow('intermediates', 'conditioning', c)
    sn = lambda layer: _sn(layer, self.spectral_norm)
    cbn = functools.partial(ConditionalBatchNorm, self.spectral_norm, self.kernel_init)
    conv = lambda cls, name: cls(self.features, impl=self.conv_impl,
                                 kernel_init=self.kernel_init, name=name)
    h = nn.relu(cbn(name='bn1')(x, c, train))
    h = sn(conv(layers.UpsampleConv, 'conv1'))(h, train)
    h = nn.relu(cbn(name='bn2')(h, c, train))
    h = sn(conv(layers.Conv, 'conv2'))(h, train)
    shortcut = sn(nn.Dense(self.features, kernel_init=self.kernel_init, name='shortcut'))
    return h + layers.upsample(shortcut(x, train))


def _check_conditioning(kind, conditioning, choices, num_classes):
  check_choice(f'{kind} conditioning', conditioning, choices)
  if conditioning != 'none' and num_classes < 1:
    raise ValueError(f'{kind} conditioning {conditioning!r} needs num_classes >= 1, '
                     f'got {num_classes}')


def _arch(table, size, kind):
  if size not in table:
    raise ValueError(f'BigGAN {kind}: no architecture for {size}×{size} images; '
                     f'sizes: {", ".join(map(str, table))}')
  return table[size]


def _check_attention(kind, resolution, resolutions):
  if resolution and resolution not in resolutions:
    raise ValueError(f'BigGAN {kind}: attention_resolution={resolution} is no block output '
                     f'resolution; choose 0 (none) or one of {sorted(set(resolutions))}')


class BigGANGenerator(nn.Module):
  """BigGAN's G (module docstring): hierarchical latents, shared class embedding, conditional
  BatchNorm from [shared(y), z chunk] per block, self-attention at `attention_resolution`
  (0 = none), spectral norm everywhere, orthogonal init. z's width is z_dim; it must split into
  num_blocks + 1 equal chunks (32 px: 4, 64 px: 5, 128 px: 6)."""
  data_shape: Sequence[int]
  channels: int = 96                 # StudioGAN's g_conv_dim
  shared_dim: int = 128              # g_shared_dim
  conditioning: str = 'none'         # 'cbn': class-conditional (num_classes > 0)
  num_classes: int = 0
  attention_resolution: int = 16     # StudioGAN's configs: H/2 (16, 32, 64); 0 = none
  spectral_norm: bool = True
  initializer: str = 'orthogonal'
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    _check_conditioning('G', self.conditioning, G_CONDITIONING, self.num_classes)
    check_choice('initializer', self.initializer, image_models.INITS)
    kinit = image_models.INITS[self.initializer]
    size, _, out_channels = self.data_shape
    bottom, widths = _arch(G_ARCH, size, 'generator')
    _check_attention('generator', self.attention_resolution,
                     [8 * 2 ** i for i in range(len(widths))])
    z_dim, n = z.shape[-1], len(widths) + 1
    if z_dim % n:
      raise ValueError(f'BigGAN generator: z_dim={z_dim} does not split into {n} equal chunks '
                       f'({len(widths)} blocks + 1); use a multiple of {n}')
    chunks = jnp.split(z, n, axis=-1)
    conds = chunks[1:]
    if self.conditioning == 'cbn':
      shared = nn.Embed(self.num_classes, self.shared_dim, embedding_init=kinit,
                        name='shared')(labels).astype(z.dtype)
      conds = [jnp.concatenate([shared, chunk], axis=-1) for chunk in conds]
    width = bottom * self.channels
    linear = _sn(nn.Dense(16 * width, kernel_init=kinit, name='linear'), self.spectral_norm)
    x = linear(chunks[0], train).reshape(-1, 4, 4, width)
    for i, (mult, c) in enumerate(zip(widths, conds)):
      x = _GBlock(mult * self.channels, self.spectral_norm, kinit, self.conv_impl,
                  name=f'block{i}')(x, c, train)
      if x.shape[1] == self.attention_resolution:
        x = SelfAttention(self.spectral_norm, kinit, name='attention')(x, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=BN_EPS,
                     name='bn_out')(x)
    conv = layers.Conv(out_channels, impl=self.conv_impl, kernel_init=kinit, name='conv_out')
    return jnp.tanh(_sn(conv, self.spectral_norm)(nn.relu(x), train))


class BigGANDiscriminator(nn.Module):
  """BigGAN's D (module docstring): StudioGAN's optimized first block, pre-activation ResNet
  blocks, self-attention after the first block with `attention_resolution`² outputs (0 = none),
  ReLU, global sum pooling (sown as ('intermediates', 'features')), SN-Linear + projection
  ⟨SN-embed(y), h⟩ ('projection'), or an SN-Linear(K) embedding (B, K) (`embedding` = K > 0,
  unconditional). Spectral norm everywhere (`spectral_norm`; StudioGAN adds BatchNorm to D
  without it, this D does not)."""
  channels: int = 96                 # StudioGAN's d_conv_dim
  conditioning: str = 'none'         # 'projection': class-conditional (num_classes > 0)
  num_classes: int = 0
  attention_resolution: int = 16     # StudioGAN's configs: H/2; 0 = none
  spectral_norm: bool = True
  initializer: str = 'orthogonal'
  conv_impl: str = 'rewrite'
  embedding: int = 0                 # K > 0: output (B, K) instead of one logit (B,)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    _check_conditioning('D', self.conditioning, D_CONDITIONING, self.num_classes)
    check_choice('initializer', self.initializer, image_models.INITS)
    image_models.check_embedding(self.embedding, self.conditioning)
    kinit = image_models.INITS[self.initializer]
    widths, downs = _arch(D_ARCH, x.shape[1], 'discriminator')
    sizes = [x.shape[1] // 2 ** (i + 1) for i in range(sum(downs))]
    _check_attention('discriminator', self.attention_resolution, sizes)
    attended = not self.attention_resolution
    for i, (mult, down) in enumerate(zip(widths, downs)):
      x = _DBlock(mult * self.channels, down, i == 0, self.spectral_norm, kinit, self.conv_impl,
                  name=f'block{i}')(x, train)
      if not attended and x.shape[1] == self.attention_resolution:
        x = SelfAttention(self.spectral_norm, kinit, name='attention')(x, train)
        attended = True
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    self.sow('intermediates', 'features', h)  # the pooled features (feature matching)
    dense = lambda n, name: _sn(nn.Dense(n, kernel_init=kinit, name=name), self.spectral_norm)
    if self.embedding:
      return dense(self.embedding, 'linear')(h, train)
    out = dense(1, 'linear')(h, train)[:, 0]
    if self.conditioning == 'projection':
      embed = _sn(nn.Embed(self.num_classes, h.shape[-1], embedding_init=kinit, name='embed'),
                  self.spectral_norm)(labels, train)
      out = out + jnp.sum(embed.astype(h.dtype) * h, axis=-1)
    return out

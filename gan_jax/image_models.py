"""Image generators and discriminators (NHWC, values in [-1, 1]): DCGAN, the CIFAR ResNet of
WGAN-GP / SNGAN, the EBGAN autoencoder, with class conditioning. Registered in models.py.

Every strided, transposed and 3×3 conv is a `layers` conv whose derivatives of every order XLA:CPU
runs fast (tests prove them equal to nn.Conv / nn.ConvTranspose).

Conditioning (labels (B,) int, `num_classes` > 0):
  G 'concat'     one-hot label concatenated to z (Mirza & Osindero 2014, arXiv:1411.1784).
  G 'cbn'        conditional BatchNorm: per-class scale and shift (de Vries et al. 2017,
                 arXiv:1707.00683; Miyato & Koyama 2018).
  D 'concat'     one-hot label broadcast as extra input channels (Mirza & Osindero 2014).
  D 'projection' output = ψ(h) + ⟨embed(y), h⟩ on the final features h (Miyato & Koyama 2018,
                 arXiv:1802.05637).
  D 'acgan'      an auxiliary classifier head: output (B, 1 + num_classes) (Odena et al. 2017,
                 arXiv:1610.09585); the steps add its cross-entropy to both losses.
"""
import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import layers
from gan_jax.configs import check_choice

INITS = {
    'normal': layers.dcgan_init,                       # N(0, 0.02²), DCGAN
    'orthogonal': nn.initializers.orthogonal(),        # BigGAN
    'xavier': nn.initializers.xavier_uniform(),        # SNGAN's ResNet
}
G_CONDITIONING = ('none', 'concat', 'cbn')
D_CONDITIONING = ('none', 'concat', 'projection', 'acgan')
D_NORMS = ('none', 'batch', 'layer')


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose scale and shift are looked up per class: γ_y·x̂ + β_y (γ initialised to 1)."""
  num_classes: int

  @nn.compact
  def __call__(self, x, labels, train: bool):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False,
                     use_bias=False)(x)
    c = x.shape[-1]
    gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones)(labels)
    beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros)(labels)
    return x * gamma[:, None, None, :] + beta[:, None, None, :]


class _GeneratorNorm(nn.Module):
  """G's normalisation: BatchNorm, conditional BatchNorm (labels given), or none."""
  norm: str
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels, train: bool):
    if self.norm == 'cbn':
      return ConditionalBatchNorm(self.num_classes)(x, labels, train)
    if self.norm == 'batch':
      return nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    if self.norm == 'layer':
      return nn.LayerNorm()(x)
    return x


def _num_doublings(size: int, base: int) -> int:
  n = round(math.log2(size / base))
  if base * 2 ** n != size:
    raise ValueError(f'image size {size} is not {base}·2^k')
  return n


def _base(size: int) -> int:
  """The smallest feature map: 7 for 28×28 (MNIST), 4 otherwise."""
  return 7 if size % 7 == 0 else 4


def _z_and_labels(z, labels, conditioning, num_classes):
  if conditioning == 'concat':
    return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)
  return z


class DCGANGenerator(nn.Module):
  """DCGAN G (Radford et al. 2016, arXiv:1511.06434): Dense to base×base×(ch·2^k), then k
  transposed 4×4 stride-2 convs halving the channels, BN + ReLU between, tanh at the end.
  base = 7 for 28×28, 4 for 32×32 and 64×64."""
  data_shape: Sequence[int]
  channels: int = 64
  norm: str = 'batch'           # 'batch' | 'layer' | 'none'; conditioning='cbn' makes it per class
  conditioning: str = 'none'
  num_classes: int = 0
  initializer: str = 'normal'
  conv_impl: str = 'rewrite'    # layers.IMPLS: the rewrites or XLA's own convolutions

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    check_choice('conditioning', self.conditioning, G_CONDITIONING)
    check_choice('initializer', self.initializer, INITS)
    h, w, c = self.data_shape
    base = _base(h)
    ups = _num_doublings(h, base)
    kinit = INITS[self.initializer]
    norm = functools.partial(_GeneratorNorm, 'cbn' if self.conditioning == 'cbn' else self.norm,
                             self.num_classes)
    x = _z_and_labels(z, labels, self.conditioning, self.num_classes)
    width = self.channels * 2 ** (ups - 1)
    x = nn.Dense(base * base * width, kernel_init=kinit)(x).reshape(-1, base, base, width)
    x = nn.relu(norm()(x, labels, train))
    for i in range(ups - 1):
      width //= 2
      x = layers.UpConv(width, impl=self.conv_impl, kernel_init=kinit)(x)
      x = nn.relu(norm()(x, labels, train))
    x = layers.UpConv(c, impl=self.conv_impl, kernel_init=kinit)(x)
    return jnp.tanh(x)


def check_embedding(embedding: int, conditioning: str = 'none') -> None:
  """A ValueError unless `embedding` (D's output width, 0 = one value per example) is an integer
  >= 0, and 0 under conditioning (whose heads give one value, or AC-GAN's 1 + num_classes)."""
  if isinstance(embedding, bool) or not isinstance(embedding, int) or embedding < 0:
    raise ValueError(f'embedding={embedding!r} must be an integer >= 0 (0: one output per example)')
  if embedding and conditioning != 'none':
    raise ValueError(f'embedding={embedding} does not compose with conditioning={conditioning!r}: '
                     "an embedding D is unconditional; set embedding=0 or conditioning='none'")


class _DiscriminatorHead(nn.Module):
  """The last layer of D on features h (B, F): plain, projection, or AC-GAN; `embedding` = K > 0:
  a plain Dense(K), output (B, K) (unconditional only)."""
  conditioning: str
  num_classes: int
  spectral_norm: bool
  kernel_init: nn.initializers.Initializer
  embedding: int = 0

  @nn.compact
  def __call__(self, h, labels, train: bool):
    check_embedding(self.embedding, self.conditioning)
    dense = lambda n: layers.spectral_norm(nn.Dense(n, kernel_init=self.kernel_init),
                                           self.spectral_norm)
    if self.embedding:
      return dense(self.embedding)(h, train)
    out = dense(1)(h, train)[:, 0]
    if self.conditioning == 'projection':
      embed = nn.Embed(self.num_classes, h.shape[-1], embedding_init=self.kernel_init)(labels)
      out = out + jnp.sum(embed * h, axis=-1)
    if self.conditioning == 'acgan':
      return jnp.concatenate([out[:, None], dense(self.num_classes)(h, train)], axis=-1)
    return out


def _input_with_labels(x, labels, conditioning, num_classes):
  if conditioning == 'concat':
    onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)[:, None, None, :]
    return jnp.concatenate([x, jnp.broadcast_to(onehot, x.shape[:3] + (num_classes,))], axis=-1)
  return x


class DCGANDiscriminator(nn.Module):
  """DCGAN D: k 4×4 stride-2 convs doubling the channels down to base×base, LeakyReLU(0.2), norm
  on all but the first, then flatten → (minibatch discrimination) → Dense(1). Options: spectral
  norm on every layer (Miyato et al. 2018), minibatch stddev channel (Karras et al. 2018) before
  the last conv stage's output, minibatch discrimination (Salimans et al. 2016), an embedding
  output Dense(K), (B, K), for the 'mmd' objective (MMD-GAN, Li et al. 2017, arXiv:1705.08584)."""
  channels: int = 64
  norm: str = 'batch'
  spectral_norm: bool = False
  minibatch_std: bool = False
  minibatch_discrimination: int = 0   # number of kernels B; 0 = off
  conditioning: str = 'none'
  num_classes: int = 0
  initializer: str = 'normal'
  conv_impl: str = 'rewrite'
  embedding: int = 0                  # K > 0: output (B, K) instead of one logit (B,)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    check_choice('conditioning', self.conditioning, D_CONDITIONING)
    check_choice('norm', self.norm, D_NORMS)
    check_choice('initializer', self.initializer, INITS)
    kinit = INITS[self.initializer]
    x = _input_with_labels(x, labels, self.conditioning, self.num_classes)
    downs = _num_doublings(x.shape[1], _base(x.shape[1]))
    for i in range(downs):
      conv = layers.StridedConv(self.channels * 2 ** i, impl=self.conv_impl, kernel_init=kinit)
      x = layers.spectral_norm(conv, self.spectral_norm)(x, train)
      if i > 0 and self.norm == 'batch':
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      elif i > 0 and self.norm == 'layer':
        x = nn.LayerNorm()(x)
      x = nn.leaky_relu(x, 0.2)
    if self.minibatch_std:
      x = layers.MinibatchStdDev()(x)
    h = x.reshape(x.shape[0], -1)
    self.sow('intermediates', 'features', h)  # the last conv features (feature matching)
    if self.minibatch_discrimination:
      h = layers.MinibatchDiscrimination(self.minibatch_discrimination)(h)
    return _DiscriminatorHead(self.conditioning, self.num_classes, self.spectral_norm,
                              kinit, self.embedding)(h, labels, train)


_upsample = layers.upsample


class _GBlock(nn.Module):
  """ResNet G block: BN-ReLU-up-conv3-BN-ReLU-conv3, shortcut up-conv1 (Gulrajani et al. 2017).

  Exact rewrites, same parameters and names: up-conv3 is one `layers.UpsampleConv` (2.25× fewer
  multiply-adds), and the shortcut's 1×1 conv runs before the nearest upsampling (they commute:
  4× fewer)."""
  features: int
  norm: str
  num_classes: int
  kernel_init: nn.initializers.Initializer
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, labels, train):
    norm = functools.partial(_GeneratorNorm, self.norm, self.num_classes)
    h = nn.relu(norm()(x, labels, train))
    h = layers.UpsampleConv(self.features, impl=self.conv_impl, kernel_init=self.kernel_init,
                            name='Conv_0')(h)
    h = nn.relu(norm()(h, labels, train))
    h = layers.Conv(self.features, impl=self.conv_impl, kernel_init=self.kernel_init,
                    name='Conv_1')(h)
    return h + _upsample(nn.Dense(self.features, kernel_init=self.kernel_init)(x))


class ResNetGenerator(nn.Module):
  """The CIFAR ResNet G of WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028) and SNGAN (Miyato
  et al. 2018): Dense to 4×4×ch, log2(H/4) upsampling residual blocks, BN-ReLU-conv3-tanh."""
  data_shape: Sequence[int]
  channels: int = 128
  norm: str = 'batch'
  conditioning: str = 'none'
  num_classes: int = 0
  initializer: str = 'xavier'
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    check_choice('conditioning', self.conditioning, G_CONDITIONING)
    check_choice('initializer', self.initializer, INITS)
    h, w, c = self.data_shape
    kinit = INITS[self.initializer]
    norm = 'cbn' if self.conditioning == 'cbn' else self.norm
    x = _z_and_labels(z, labels, self.conditioning, self.num_classes)
    x = nn.Dense(16 * self.channels, kernel_init=kinit)(x).reshape(-1, 4, 4, self.channels)
    for _ in range(_num_doublings(h, 4)):
      x = _GBlock(self.channels, norm, self.num_classes, kinit, self.conv_impl)(x, labels, train)
    x = nn.relu(_GeneratorNorm(norm, self.num_classes)(x, labels, train))
    return jnp.tanh(layers.Conv(c, impl=self.conv_impl, kernel_init=kinit)(x))


class _DBlock(nn.Module):
  """ResNet D block: ReLU-conv3-ReLU-conv3(-avgpool), shortcut conv1(-avgpool). The first block
  ('optimized' in SNGAN) has no leading ReLU.

  Exact rewrites, same parameters and names: conv3-avgpool is one `layers.PooledConv` (a stride-2
  conv: 4× fewer multiply-adds), and the shortcut pools before its 1×1 conv (they commute)."""
  features: int
  down: bool
  first: bool
  spectral_norm: bool
  kernel_init: nn.initializers.Initializer
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, train):
    sn = lambda layer: layers.spectral_norm(layer, self.spectral_norm)
    # Names kept from when both convs were `layers.Conv`: the second was created first (Conv_0).
    conv2_cls = layers.PooledConv if self.down else layers.Conv
    conv2 = sn(conv2_cls(self.features, impl=self.conv_impl, kernel_init=self.kernel_init,
                         name='Conv_0'))
    conv1 = sn(layers.Conv(self.features, impl=self.conv_impl, kernel_init=self.kernel_init,
                           name='Conv_1'))
    h = x if self.first else nn.relu(x)
    h = conv2(nn.relu(conv1(h, train)), train)
    shortcut = x
    if self.down or x.shape[-1] != self.features:
      # The 1×1 conv and the average pooling commute: pool first (4× fewer multiply-adds).
      shortcut = layers.avg_pool(x) if self.down else x
      shortcut = sn(nn.Dense(self.features, kernel_init=self.kernel_init))(shortcut, train)
    return h + shortcut


class ResNetDiscriminator(nn.Module):
  """The CIFAR ResNet D of WGAN-GP / SNGAN: an optimized down block, one more down block, two
  plain blocks, ReLU, global sum pooling, Dense(1) (or a projection / AC-GAN head, or an
  embedding Dense(K) as in DCGANDiscriminator). No normalisation (the gradient penalty or
  spectral norm constrains it)."""
  channels: int = 128
  spectral_norm: bool = False
  conditioning: str = 'none'
  num_classes: int = 0
  initializer: str = 'xavier'
  conv_impl: str = 'rewrite'
  embedding: int = 0                  # K > 0: output (B, K) instead of one logit (B,)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    check_choice('conditioning', self.conditioning, D_CONDITIONING)
    check_choice('initializer', self.initializer, INITS)
    kinit = INITS[self.initializer]
    x = _input_with_labels(x, labels, self.conditioning, self.num_classes)
    blocks = [(True, True), (True, False), (False, False), (False, False)]
    for down, first in blocks:
      x = _DBlock(self.channels, down, first, self.spectral_norm, kinit, self.conv_impl)(x, train)
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    self.sow('intermediates', 'features', h)  # the pooled features (feature matching)
    return _DiscriminatorHead(self.conditioning, self.num_classes, self.spectral_norm,
                              kinit, self.embedding)(h, labels, train)


class DCGANAutoencoderDiscriminator(nn.Module):
  """EBGAN's image discriminator (Zhao et al. 2017, arXiv:1609.03126, sec. 2.3): a conv encoder
  (4×4 stride-2 convs) and a mirrored decoder (transposed convs); the energy is the per-example
  mean squared reconstruction error, shape (B,). The encoder's output, the code, is sown as
  ('intermediates', 'features') (for EBGAN's pulling-away term, `losses.pulling_away`)."""
  channels: int = 64
  conditioning: str = 'none'
  num_classes: int = 0
  initializer: str = 'normal'
  conv_impl: str = 'rewrite'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    check_choice('conditioning', self.conditioning, ('none',))
    kinit = INITS[self.initializer]
    downs = _num_doublings(x.shape[1], _base(x.shape[1]))
    h = x
    for i in range(downs):
      h = layers.StridedConv(self.channels * 2 ** i, impl=self.conv_impl, kernel_init=kinit)(h)
      h = nn.leaky_relu(h, 0.2)
    self.sow('intermediates', 'features', h)  # the code (B, base, base, C·2^(k-1))
    for i in reversed(range(downs - 1)):
      h = layers.UpConv(self.channels * 2 ** i, impl=self.conv_impl, kernel_init=kinit)(h)
      h = nn.leaky_relu(h, 0.2)
    recon = layers.UpConv(x.shape[-1], impl=self.conv_impl, kernel_init=kinit)(h)
    return jnp.mean((recon - x) ** 2, axis=(1, 2, 3))

"""Generator and discriminator architectures (Flax Linen), chosen by name.

Contracts: a generator maps (z (B, z_dim), labels (B,) or None) to samples (B, *data_shape); a
discriminator maps (samples, labels or None) to one output per example, shape (B,): a logit, a
critic value, or (EBGAN) an energy; with AC-GAN conditioning, (B, 1 + num_classes); with
`embedding` = K > 0, or for 'identity', a vector per example (B, K), for the 'mmd' objective
(MMD-GAN's learned embedding, GMMN's data itself). Modules take `train` so normalisation layers
use batch statistics in training and running averages when sampling. Select with
`GENERATORS[name]` / `DISCRIMINATORS[name]`; options come from `config.model.g` / `config.model.d`.

The MLP discriminators `sow` their last hidden features as ('intermediates', 'features'), which
feature matching reads (a no-op unless the caller asks for that collection); the autoencoder
discriminators sow their encoder's code there (EBGAN's pulling-away term is on it); `Ensemble`
runs several discriminators side by side.
"""
import functools
import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from gan_jax import biggan, image_models, layers, stylegan2
from gan_jax.configs import check_choice

ACTIVATIONS = {
    'relu': nn.relu,
    'leaky_relu': functools.partial(nn.leaky_relu, negative_slope=0.2),
    'elu': nn.elu,
    'gelu': nn.gelu,
    'silu': nn.silu,
    'tanh': jnp.tanh,
}

NORMS = ('none', 'batch', 'layer')
OUTPUT_ACTIVATIONS = ('none', 'tanh')


class MLP(nn.Module):
  """Dense → norm → activation, for each width in `hidden`."""
  hidden: Sequence[int]
  activation: str = 'relu'
  norm: str = 'none'

  @nn.compact
  def __call__(self, x, train: bool = True):
    check_choice('activation', self.activation, sorted(ACTIVATIONS))
    check_choice('norm', self.norm, sorted(NORMS))
    for width in self.hidden:
      x = nn.Dense(width)(x)
      if self.norm == 'batch':
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      elif self.norm == 'layer':
        x = nn.LayerNorm()(x)
      x = ACTIVATIONS[self.activation](x)
    return x


class MLPGenerator(nn.Module):
  """z → MLP → Dense to prod(data_shape) → output activation, reshaped to data_shape."""
  data_shape: Sequence[int]
  hidden: Sequence[int] = (128, 128, 128)
  activation: str = 'relu'
  norm: str = 'none'
  output_activation: str = 'none'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    del labels  # unconditional
    check_choice('output activation', self.output_activation,
                 sorted(OUTPUT_ACTIVATIONS))
    x = MLP(self.hidden, self.activation, self.norm)(z, train)
    x = nn.Dense(math.prod(self.data_shape))(x)
    if self.output_activation == 'tanh':
      x = jnp.tanh(x)
    return x.reshape((z.shape[0],) + tuple(self.data_shape))


class MLPDiscriminator(nn.Module):
  """x → flatten → MLP → (minibatch discrimination) → Dense(1): one logit (or critic value) per
  example, shape (B,). `minibatch_discrimination` = number of kernels (Salimans et al. 2016,
  arXiv:1606.03498, sec. 3.2; `layers.MinibatchDiscrimination`), 0 = off. `embedding` = K > 0:
  the last Dense gives a K-vector per example, (B, K), the learned feature map of MMD-GAN (Li et
  al. 2017, arXiv:1705.08584) for the 'mmd' objective."""
  hidden: Sequence[int] = (128, 128, 128)
  activation: str = 'leaky_relu'
  norm: str = 'none'
  minibatch_discrimination: int = 0
  embedding: int = 0

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del labels  # unconditional
    image_models.check_embedding(self.embedding)
    x = x.reshape((x.shape[0], -1))
    x = MLP(self.hidden, self.activation, self.norm)(x, train)
    self.sow('intermediates', 'features', x)
    if self.minibatch_discrimination:
      x = layers.MinibatchDiscrimination(self.minibatch_discrimination)(x)
    if self.embedding:
      return nn.Dense(self.embedding)(x)
    return nn.Dense(1)(x)[:, 0]


class IdentityDiscriminator(nn.Module):
  """No discriminator: x (B, ...) flattened to (B, prod(...)), no parameters.

  With the 'mmd' objective the kernel is on the data itself: a Generative Moment Matching
  Network (Li, Swersky & Zemel 2015, "Generative Moment Matching Networks", arXiv:1502.02761).
  D's updates are then no-ops (an empty parameter tree).
  """

  def __call__(self, x, labels=None, train: bool = True):
    del labels, train  # unconditional, and nothing to train
    return x.reshape((x.shape[0], -1))

  @nn.nowrap
  def init(self, *args, **kwargs):
    """Module.init, with the empty 'params' that Flax leaves out when a module has none (the
    state's NetState holds variables['params'] and its optimizer's state)."""
    return {'params': {}, **super().init(*args, **kwargs)}


class MLPAutoencoderDiscriminator(nn.Module):
  """EBGAN's discriminator: the energy is the autoencoder's reconstruction error.

  E(x) = mean_i (Dec(Enc(x))_i - x_i)², shape (B,). Zhao et al. 2017 (arXiv:1609.03126), sec. 2.3.
  The encoder has widths `hidden`, then a `code_dim` code; the decoder mirrors it.
  """
  hidden: Sequence[int] = (128, 128)
  code_dim: int = 16
  activation: str = 'leaky_relu'
  norm: str = 'none'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del labels  # unconditional
    flat = x.reshape((x.shape[0], -1))
    h = MLP(self.hidden, self.activation, self.norm)(flat, train)
    code = nn.Dense(self.code_dim)(h)
    self.sow('intermediates', 'features', code)
    h = MLP(tuple(reversed(self.hidden)), self.activation, self.norm)(code, train)
    recon = nn.Dense(flat.shape[1])(h)
    return jnp.mean((recon - flat) ** 2, axis=1)


class Ensemble(nn.Module):
  """Discriminators side by side on the same input: output (B, K), member k in column k.

  Ensembles of discriminators as in M. Borisyak, "Generative Adversarial Networks" (HSE lecture,
  training tricks): members of increasing capacity give G gradients early (the simple ones) and
  a precise solution late (the strong ones); the sum of their losses measures training progress.
  The steps sum the members' losses (cf. Durugkar et al. 2017, "Generative Multi-Adversarial
  Networks", arXiv:1611.01673).
  """
  members: Sequence[nn.Module]

  def __call__(self, x, labels=None, train: bool = True):
    return jnp.stack([member(x, labels, train) for member in self.members], axis=-1)


GENERATORS = {
    'mlp': MLPGenerator,
    'dcgan': image_models.DCGANGenerator,
    'resnet': image_models.ResNetGenerator,
    'biggan': biggan.BigGANGenerator,
    'stylegan2': stylegan2.StyleGAN2Generator,
}

DISCRIMINATORS = {
    'mlp': MLPDiscriminator,
    'mlp_autoencoder': MLPAutoencoderDiscriminator,
    'identity': IdentityDiscriminator,
    'dcgan': image_models.DCGANDiscriminator,
    'dcgan_autoencoder': image_models.DCGANAutoencoderDiscriminator,
    'resnet': image_models.ResNetDiscriminator,
    'biggan': biggan.BigGANDiscriminator,
    'stylegan2': stylegan2.StyleGAN2Discriminator,
}

# The discriminators that sow their features (what feature matching needs): the MLPs' last hidden
# layer, the image Ds' last features before their head, the autoencoders' code.
FEATURE_DISCRIMINATORS = ('mlp', 'mlp_autoencoder', 'dcgan', 'resnet', 'dcgan_autoencoder',
                          'biggan', 'stylegan2')

# The generators with StyleGAN2's mapping / synthesis split (path-length regularisation needs it).
STYLE_GENERATORS = ('stylegan2',)

# The discriminators whose features are an encoder's code (EBGAN's pulling-away term acts on it).
AUTOENCODER_DISCRIMINATORS = ('mlp_autoencoder', 'dcgan_autoencoder')

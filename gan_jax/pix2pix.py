"""The GAN as an auxiliary loss: pix2pix, conditional image-to-image translation.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"
(arXiv:1611.07004). A generator G maps an input image x to an output; a discriminator D sees the
pair (x, image) concatenated along channels and outputs one logit per image patch (PatchGAN).
With any objective of the zoo (`losses`), on pairs (x, y):

  G minimises  λ_GAN · g_loss(D(x, G(x))) + λ_L1 · (1/n) Σ |G(x) - y|
  D minimises  s · d_loss(D(x, y), D(x, G(x))) + penalty weight · penalty

The paper's setting is λ_GAN = 1, λ_L1 = 100, s = 1/2 (D's loss halved), the non-saturating
objective, Adam 2e-4, β = (0.5, 0.999). This is the seeds' L = (1/n)|f(x) - y| + λ·L_GAN with
λ = λ_GAN / λ_L1; λ_GAN = 0 is pure L1 regression (the baseline; D is then neither trained nor
evaluated, and its logged losses are 0). Dropout in G's decoder is the only noise (no z), its
keys threaded by hand from the loop key. Each iteration runs G forward once (`jax.vjp`), updates
D on that output, then pulls G's loss gradient back through the same forward pass, as the
paper's code does.

Config (`base_config`): config.task = 'pix2pix'; config.data: an image dataset plus `pairs`
('inpaint' | 'colorize' | 'native', see `paired_data`); config.model.g: the U-Net
(channels, depth, dropout, dropout_layers, norm), config.model.d: the PatchGAN
(receptive_field 1 | 16 | 34 | 70 | ..., channels, norm); config.pix2pix: lambda_gan,
lambda_l1, d_loss_scale. Eval on the held-out pairs of config.eval.real_split: l1, psnr,
sharpness_output, sharpness_target (always) and fid, kid, c2st of outputs vs targets
(config.eval.metrics, on digit-classifier features for digits).
"""
import functools
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from gan_jax import configs, evaluation, input_pipeline, layers, losses, paired_data, penalties
from gan_jax import plots, sharding, state as state_lib, steps
from gan_jax.metrics import c2st, frechet_distance, inception, kernel_inception_distance
from gan_jax.metrics.fid import StreamingStats

NORMS = ('batch', 'instance', 'none')
# PatchGAN receptive field (pixels) -> number of 4×4 stride-2 convs before the two stride-1 ones.
RECEPTIVE_FIELDS = {1: 0, 16: 1, 34: 2, 70: 3, 142: 4, 286: 5}
EVAL_METRICS = ('fid', 'kid', 'c2st')
GENERATOR_KINDS = ('ema', 'raw')
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


# ---------------------------------------------------------------------------------------------
# Networks.


def _check(kind, value, choices):
  if value not in choices:
    raise ValueError(f'unknown {kind} {value!r}; valid choices: {", ".join(map(str, choices))}')


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

  @nn.compact
  def __call__(self, x, dropout_key=None, train: bool = False):
    _check('norm', self.norm, NORMS)
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
      x = layers.StridedConv(width(i), use_bias=bias or plain)(x)
      if not plain:
        x = _norm(self.norm, train)(x)
      skips.append(x)
    for j, i in enumerate(reversed(range(self.depth - 1))):
      x = layers.UpConv(width(i), use_bias=bias)(nn.relu(x))
      x = _norm(self.norm, train)(x)
      if train and dropout_key is not None and j < self.dropout_layers and self.dropout > 0:
        x = dropout(x, self.dropout, jax.random.fold_in(dropout_key, j))
      x = jnp.concatenate([skips[i], x], axis=-1)
    x = layers.UpConv(self.out_channels)(nn.relu(x))
    return jnp.tanh(x)


def _conv4_pad1(features: int, use_bias: bool = True):
  """4×4 conv, stride 1, zero padding 1 on each side (PyTorch padding=1): H -> H - 1.

  Equals the first H - 1 rows and columns of `layers.Conv`'s 'SAME' output (padding (1, 2)): output
  i reads input rows i - 1 .. i + 2 in both. `layers`' im2col path, not lax: alone, a lax conv's
  forward + backward ran 4× faster here, but inside the training `lax.scan` 12× slower (XLA:CPU,
  jax 0.10.2; 32×16×16×16 -> 32, 10 iterations: 5.8 s against 0.47 s unrolled).
  """
  conv = layers.Conv(features, kernel_size=4, use_bias=use_bias)
  return lambda x: conv(x)[:, :-1, :-1]


def patch_grid_size(size: int, receptive_field: int) -> int:
  """Side of PatchGAN's logit grid on a size×size input: size for 1×1 (PixelGAN), else
  floor(size / 2^n) - 2 for n stride-2 convs (each 4×4 pad 1: H -> floor(H/2)) and the two 4×4
  stride-1 pad-1 convs (H -> H - 1 each)."""
  _check('receptive_field', receptive_field, tuple(RECEPTIVE_FIELDS))
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

  @nn.compact
  def __call__(self, x, labels=None, train: bool = False):
    del labels
    _check('receptive_field', self.receptive_field, tuple(RECEPTIVE_FIELDS))
    _check('norm', self.norm, NORMS)
    n = RECEPTIVE_FIELDS[self.receptive_field]
    if self.receptive_field > 1 and patch_grid_size(min(x.shape[1:3]), self.receptive_field) < 1:
      raise ValueError(f'a {self.receptive_field}×{self.receptive_field} PatchGAN needs images of '
                       f'at least {3 * 2 ** n} pixels; got {x.shape[1]}×{x.shape[2]}')
    width = lambda i: self.channels * min(2 ** i, 8)
    bias = self.norm == 'none'
    if n == 0:  # PixelGAN
      x = nn.leaky_relu(layers.Conv(width(0), kernel_size=1)(x), 0.2)
      x = layers.Conv(width(1), kernel_size=1, use_bias=bias)(x)
      x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
      return layers.Conv(1, kernel_size=1)(x)[..., 0]
    x = nn.leaky_relu(layers.StridedConv(width(0))(x), 0.2)
    for i in range(1, n):
      x = layers.StridedConv(width(i), use_bias=bias)(x)
      x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
    x = _conv4_pad1(width(n), use_bias=bias)(x)
    x = nn.leaky_relu(_norm(self.norm, train)(x), 0.2)
    return _conv4_pad1(1)(x)[..., 0]


GENERATORS = {'unet': UNet}
DISCRIMINATORS = {'patchgan': PatchGAN}


# ---------------------------------------------------------------------------------------------
# Image statistics.


def l1_error(outputs, targets) -> jax.Array:
  """Per-image mean absolute error (1/n) Σ |output - target| on the [-1, 1] scale: (B,)."""
  return jnp.mean(jnp.abs(outputs - targets), axis=(1, 2, 3))


def psnr(outputs, targets) -> jax.Array:
  """Per-image PSNR in dB, 10·log10(1 / MSE) with pixels on the [0, 1] scale: (B,).

  MSE is floored at 1e-10 (identical images: 100 dB).
  """
  mse = jnp.mean(((outputs - targets) / 2.0) ** 2, axis=(1, 2, 3))
  return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def mean_gradient_magnitude(images) -> jax.Array:
  """Sharpness: per-image mean of √(∂x² + ∂y²) on the [0, 1] scale, (B,).

  Forward differences ∂x = p[i, j+1] - p[i, j], ∂y = p[i+1, j] - p[i, j] over the (H-1)×(W-1)
  pixels that have both, averaged over pixels and channels: the mean gradient magnitude, a
  classic focus measure (cf. Krotkov 1988, "Focusing", IJCV 1; Tenengrad). It is the image's
  total variation per pixel: blurring a single monotone edge keeps it (the rise is the same),
  but blurring or averaging thin strokes lowers their peaks and so lowers it; a blurry L1
  regression of digits scores below its targets.
  """
  x = (images + 1.0) / 2.0
  dx = x[:, :-1, 1:] - x[:, :-1, :-1]
  dy = x[:, 1:, :-1] - x[:, :-1, :-1]
  return jnp.mean(jnp.sqrt(dx ** 2 + dy ** 2), axis=(1, 2, 3))


# ---------------------------------------------------------------------------------------------
# The pure training steps.


class Pix2Pix(NamedTuple):
  """The static half of a pix2pix experiment: what the pure steps close over."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  objective: losses.Objective
  penalty: penalties.Penalty
  penalty_weight: float
  lambda_gan: float       # weight of G's GAN loss; 0: pure L1 regression, D unused
  lambda_l1: float        # weight of the L1 reconstruction loss
  d_loss_scale: float     # D's objective is multiplied by it (the paper halves it)
  ema_decay: float
  input_shape: tuple
  target_shape: tuple
  shard_batch: Callable[[jax.Array], jax.Array] = lambda x: x
  compute_dtype: jnp.dtype = jnp.float32  # of the networks' arithmetic (config.train.dtype)


def build(config, input_shape, target_shape, shard_batch=lambda x: x) -> Pix2Pix:
  """Resolves the names of `config` into a Pix2Pix spec; a bad name raises configs.ConfigError."""
  objective = configs.choose(losses.get, 'objective', config.objective)
  penalty = configs.choose(penalties.get, 'penalty', config.penalty, skip=('weight',))
  m, o, p = config.model, config.optim, config.pix2pix
  g_cls = configs.lookup(GENERATORS, 'model.generator', m.generator)
  d_cls = configs.lookup(DISCRIMINATORS, 'model.discriminator', m.discriminator)
  generator = configs.construct(g_cls, 'model.g', **dict(m.g, out_channels=target_shape[-1]))
  discriminator = configs.construct(d_cls, 'model.d', **m.d)
  g_tx = configs.call(state_lib.make_optimizer, 'optim.g_optimizer', o.g_optimizer, o.g_lr,
                      o.betas, o.lr_schedule, steps.decay_steps(config))
  d_tx = configs.call(state_lib.make_optimizer, 'optim.d_optimizer', o.d_optimizer, o.d_lr,
                      o.betas, o.lr_schedule, steps.decay_steps(config))
  for name in ('lambda_gan', 'lambda_l1', 'd_loss_scale'):
    if float(p[name]) < 0:
      raise configs.ConfigError(f'config.pix2pix.{name}={p[name]} must be >= 0')
  return Pix2Pix(
      generator=generator, discriminator=discriminator, g_tx=g_tx,
      d_tx=optax.chain(d_tx, penalty.d_transform), objective=objective, penalty=penalty,
      penalty_weight=float(config.penalty.weight), lambda_gan=float(p.lambda_gan),
      lambda_l1=float(p.lambda_l1), d_loss_scale=float(p.d_loss_scale),
      ema_decay=float(o.ema_decay), input_shape=tuple(input_shape),
      target_shape=tuple(target_shape), shard_batch=shard_batch,
      compute_dtype=steps.compute_dtype(config))


def create_state(spec: Pix2Pix, key: jax.Array) -> state_lib.GANState:
  """Initialises G (on the input shape), D (on input and target concatenated), their optimizers
  and the EMA copy of G."""
  g_key, d_key = jax.random.split(key)
  x = jnp.zeros((1,) + spec.input_shape)
  xy = jnp.zeros((1,) + spec.input_shape[:-1] + (spec.input_shape[-1] + spec.target_shape[-1],))
  g = state_lib.init_net(spec.generator, spec.g_tx, g_key, x)
  d = state_lib.init_net(spec.discriminator, spec.d_tx, d_key, xy)
  return state_lib.GANState(step=state_lib.zeros_step(), g=g, d=d,
                            g_ema=jax.tree.map(jnp.copy, g.params))


def translate(spec: Pix2Pix, g_params, g_batch_stats, inputs) -> jax.Array:
  """G(x) in inference mode: no dropout, BatchNorm running averages."""
  return steps.apply_net(spec.generator, g_params, g_batch_stats, inputs, None, False,
                         spec.compute_dtype)[0]


def discriminate(spec: Pix2Pix, params, batch_stats, inputs, images, train: bool = True):
  """D's patch logits (B, G, G) on the pair (input, image) concatenated along channels."""
  return steps.apply_net(spec.discriminator, params, batch_stats,
                         jnp.concatenate([inputs, images], axis=-1), None, train,
                         spec.compute_dtype)


D_METRICS = ('d_loss', 'd_objective', 'd_penalty', 'd_real', 'd_fake', 'd_grad_norm')


def generate(spec: Pix2Pix, g_params, g_batch_stats, inputs, key):
  """G(x) in training mode (dropout from `key`, batch statistics): (outputs, new batch_stats)."""
  return steps.apply_net(spec.generator, g_params, g_batch_stats, inputs, key, True,
                         spec.compute_dtype)


def d_step(spec: Pix2Pix, state: state_lib.GANState, batch: dict, fake, key: jax.Array):
  """One D update on real pairs (x, y) and fake pairs (x, G(x)) (`fake` = G(x), a constant here):
  minimise d_loss_scale · d_loss(D(x, y), D(x, G(x))) + penalty weight · penalty(key)."""
  inputs, targets = spec.shard_batch(batch['input']), spec.shard_batch(batch['target'])
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_out, stats = discriminate(spec, params, state.d.batch_stats, inputs, targets)
    fake_out, stats = discriminate(spec, params, stats, inputs, fake)
    d_fn = lambda images: discriminate(spec, params, stats, inputs, images)[0]
    objective = spec.objective.d_loss(real_out, fake_out)
    penalty = spec.penalty.term(d_fn, targets, fake, key)
    loss = spec.d_loss_scale * objective + spec.penalty_weight * penalty
    metrics = {'d_loss': loss, 'd_objective': objective, 'd_penalty': penalty,
               'd_real': jnp.mean(real_out), 'd_fake': jnp.mean(fake_out)}
    return loss, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.d.params)
  updates, opt_state = spec.d_tx.update(grads, state.d.opt_state, state.d.params)
  d = state_lib.NetState(optax.apply_updates(state.d.params, updates), stats, opt_state)
  metrics['d_grad_norm'] = optax.tree.norm(grads)
  return state.replace(d=d), metrics


def g_step(spec: Pix2Pix, state: state_lib.GANState, batch: dict, fake, pullback, g_batch_stats):
  """One G update, D frozen: minimise λ_GAN · g_loss(D(x, G(x))) + λ_L1 · mean |G(x) - y|.

  G's forward pass is shared with the D step (as in the paper's code): `fake` = G(x) and
  `pullback` its VJP (from `jax.vjp` of `generate`), so ∇θ = pullback(∂loss/∂fake) is the chain
  rule through that same forward; `g_batch_stats` are its BatchNorm statistics. With λ_GAN = 0,
  D is not run: plain L1 regression.
  """
  inputs, targets = spec.shard_batch(batch['input']), spec.shard_batch(batch['target'])

  def loss_fn(fake):
    l1 = jnp.mean(jnp.abs(fake - targets))
    gan = jnp.zeros(())
    if spec.lambda_gan:
      gan = spec.objective.g_loss(discriminate(spec, state.d.params, state.d.batch_stats, inputs,
                                               fake)[0])
    loss = spec.lambda_gan * gan + spec.lambda_l1 * l1
    return loss, {'g_loss': loss, 'g_gan': gan, 'g_l1': l1}

  d_fake, metrics = jax.grad(loss_fn, has_aux=True)(fake)
  (grads,) = pullback(d_fake)
  updates, opt_state = spec.g_tx.update(grads, state.g.opt_state, state.g.params)
  g = state_lib.NetState(optax.apply_updates(state.g.params, updates), g_batch_stats, opt_state)
  metrics['g_grad_norm'] = optax.tree.norm(grads)
  return state.replace(g=g), metrics


def step_keys(loop_key: jax.Array, step) -> tuple:
  """(G dropout key, D penalty key) of iteration `step`: split(fold_in(loop_key, step))."""
  g_key, d_key = jax.random.split(jax.random.fold_in(loop_key, step))
  return g_key, d_key


def train_iteration(spec: Pix2Pix, state: state_lib.GANState, batch: dict, loop_key: jax.Array):
  """G's forward pass, one D step on it (skipped when λ_GAN = 0: its metrics are then 0), one G
  step through it, the EMA update. `batch`: {'input': (B, H, W, C_in), 'target': (B, H, W, C)}."""
  g_key, d_key = step_keys(loop_key, state.step)
  inputs = spec.shard_batch(batch['input'])
  fake, pullback, g_batch_stats = jax.vjp(
      lambda params: generate(spec, params, state.g.batch_stats, inputs, g_key), state.g.params,
      has_aux=True)
  if spec.lambda_gan:
    state, d_metrics = d_step(spec, state, batch, fake, d_key)
  else:
    d_metrics = {k: jnp.zeros(()) for k in D_METRICS}
  state, g_metrics = g_step(spec, state, batch, fake, pullback, g_batch_stats)
  decay = spec.ema_decay
  g_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.g_ema, state.g.params)
  return state.replace(step=state.step + 1, g_ema=g_ema), d_metrics | g_metrics


def train_call(spec: Pix2Pix, state: state_lib.GANState, loop_key: jax.Array, batches: dict, *,
               num_steps: int):
  """`num_steps` iterations in one lax.scan over batches {'input': (num_steps, B, ...),
  'target': ...}; metrics come back stacked (num_steps,)."""
  return jax.lax.scan(lambda s, b: train_iteration(spec, s, b, loop_key), state,
                      {k: batches[k] for k in ('input', 'target')}, length=num_steps)


# ---------------------------------------------------------------------------------------------
# Configs.


def base_config(dataset: str = 'mnist5k', pairs: str = 'inpaint',
                image_size: int = 32) -> ml_collections.ConfigDict:
  """pix2pix on `dataset`'s `pairs`: Isola et al.'s recipe (U-Net, 70×70 PatchGAN, λ_L1 = 100,
  D's loss halved, non-saturating, Adam 2e-4, β1 0.5), narrower networks for small images.

  Experiments start from it (experiments/pix2pix_*.py) and override what they change.
  """
  c = configs.image_config(dataset, image_size)
  c.task = 'pix2pix'
  c.data.pairs = pairs
  if pairs == 'inpaint':
    c.data.mask = 'bottom'
  c.model = ml_collections.ConfigDict({
      'generator': 'unet', 'discriminator': 'patchgan',
      'g': {'channels': 64, 'depth': 5, 'dropout': 0.5, 'dropout_layers': 3, 'norm': 'batch'},
      'd': {'channels': 64, 'receptive_field': 70, 'norm': 'batch'},
  })
  c.pix2pix = ml_collections.ConfigDict({'lambda_gan': 1.0, 'lambda_l1': 100.0,
                                         'd_loss_scale': 0.5})
  c.eval.update(metrics=('fid', 'kid', 'c2st'), num_samples=500, generators=('raw',),
                real_split='test', batch_size=250, num_plot=12)
  return c


def digits_config(dataset: str, pairs: str, lambda_gan: float = 1.0) -> ml_collections.ConfigDict:
  """`base_config` at 32×32, sized for a 2-core CPU: widths 16, a 16×16 PatchGAN, batch 32,
  Adam 1e-3, 1,000 steps (experiments/pix2pix_*_mnist.py say why); lambda_gan = 0 is the L1-only
  baseline of the same run."""
  c = base_config(dataset, pairs, 32)
  c.data.batch_size = 32
  c.model.g.channels = 16
  c.model.d.update(channels=16, receptive_field=16)
  c.optim.update(g_lr=1e-3, d_lr=1e-3)
  c.train.update(steps=1_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=500)
  c.pix2pix.lambda_gan = lambda_gan
  return c


# ---------------------------------------------------------------------------------------------
# The experiment object of the training loop.


def load_pairs(data_config, split: str) -> paired_data.PairedDataset:
  """config.data's paired dataset of `split`; every failure is a ConfigError naming the field."""
  options = {k: v for k, v in data_config.items() if k not in ('batch_size', 'split')}
  name = options.pop('name')
  pairs = options.pop('pairs', None)
  if pairs is None:
    raise configs.ConfigError(f"config.data.pairs is missing; valid choices: "
                              f"{', '.join(paired_data.PAIRS)}")
  configs.lookup(dict.fromkeys(paired_data.PAIRS), 'data.pairs', pairs)
  if pairs != 'native':
    configs.lookup(input_pipeline.DATASETS, 'data.name', name)
  try:
    return paired_data.get(name, pairs, split, **options)
  except input_pipeline.DatasetUnavailable as e:
    raise configs.ConfigError(str(e)) from None
  except (ValueError, TypeError) as e:
    raise configs.ConfigError(f'config.data: {e}') from None


def triplet_grid(columns, per_row: int = 2):
  """[input, output, target, ...] batches (N, H, W, C) in [-1, 1] -> one (·, ·, 3) image in [0, 1].

  Each example is a row of its columns side by side (1-channel images shown grey); `per_row`
  examples per row, the blocks separated by a white gap.
  """
  to_rgb = lambda x: np.repeat(x, 3, -1) if x.shape[-1] == 1 else x
  columns = [to_rgb(np.asarray(c, np.float32)) for c in columns]
  n, k = len(columns[0]), len(columns)
  rows = -(-n // per_row)
  blocks = []
  for b in range(per_row):
    idx = range(b * rows, min((b + 1) * rows, n))
    seq = [c[i] for i in idx for c in columns]
    seq += [np.ones_like(columns[0][0])] * ((rows - len(idx)) * k)  # white filler
    blocks.append(plots.image_grid(np.stack(seq), k))
  gap = np.ones((blocks[0].shape[0], 4, 3), np.float32)
  return np.concatenate([x for block in blocks for x in (block, gap)][:-1], axis=1)


def compiler_options(run_once: bool = False):
  """XLA options of the jitted calls on CPU, where compiling dominates a short run's start.

  Repeated calls skip LLVM's expensive passes: the U-Net's gradient compiled in 35 s instead of
  50 s at the same run time (37 ms per call; busy 2-core CPU). A call run once (the
  initialisation: dozens of threefry draws) compiles without backend optimisation: 4 s instead
  of 41 s, running in 0.05 s instead of 0.02 s.
  """
  if jax.default_backend() != 'cpu':
    return None
  return ({'xla_backend_optimization_level': 0} if run_once else
          {'xla_llvm_disable_expensive_passes': True})


class Pix2PixExperiment:
  """A pix2pix config resolved into paired data, mesh, spec, keys and jitted functions: the
  interface `train.train_and_evaluate` drives (see `train.Experiment`)."""

  def __init__(self, config, devices=None):
    configs.check(config)
    self.config = config
    if config.optim.n_critic != 1:
      raise configs.ConfigError(f'config.optim.n_critic={config.optim.n_critic}: pix2pix makes '
                                'one D step per G step on the same pairs; set it to 1')
    if 'pix2pix' not in config:
      raise configs.ConfigError('config.pix2pix is missing (lambda_gan, lambda_l1, '
                                'd_loss_scale); start from pix2pix.base_config()')
    self.data = load_pairs(config.data, config.data.get('split', 'train'))
    self.eval_split = config.eval.get('real_split') or config.data.get('split', 'train')
    self.eval_data = (self.data if self.eval_split == config.data.get('split', 'train') else
                      load_pairs(config.data, self.eval_split))
    self.mesh = sharding.make_mesh(devices)
    configs.check_batch_split(config.data.batch_size, self.mesh.size)
    for kind in config.eval.generators:
      configs.lookup(dict.fromkeys(GENERATOR_KINDS), 'eval.generators', kind)
    self.metrics = tuple(config.eval.metrics)
    for metric in self.metrics:
      configs.lookup(dict.fromkeys(EVAL_METRICS), 'eval.metrics', metric)
    self.features = evaluation.resolve_features(config.eval, self.data.name, False)
    if self.metrics and self.features == 'inception' and not config.eval.get('inception_weights'):
      raise configs.ConfigError(f'config.eval.inception_weights: {inception.NO_WEIGHTS_MESSAGE}')
    self.spec = build(config, self.data.input_shape, self.data.target_shape,
                      sharding.batch_constraint(self.mesh))
    self.repl = sharding.replicated(self.mesh)
    self.eval_sharding = sharding.batch_sharded(self.mesh)
    self.batch_sharding = NamedSharding(self.mesh, P(None, sharding.DATA_AXIS))  # (n, B, ...)
    self.init_key, self.loop_key, self.eval_key = jax.random.split(jax.random.key(config.seed), 3)
    configs.call(lambda: jax.eval_shape(functools.partial(create_state, self.spec),
                                        self.init_key), 'model')
    self._train_fns = {}
    self._extractor = None
    self._reference = {}

  def init_state(self):
    create = jax.jit(functools.partial(create_state, self.spec), out_shardings=self.repl,
                     compiler_options=compiler_options(run_once=True))
    return create(self.init_key)

  def learning_rates(self, step: int) -> dict:
    """{'g_lr', 'd_lr'} after `step` iterations (one G and one D update each)."""
    o, length = self.config.optim, steps.decay_steps(self.config)
    return {'g_lr': state_lib.learning_rate(o.g_lr, o.lr_schedule, length, step),
            'd_lr': state_lib.learning_rate(o.d_lr, o.lr_schedule, length, step)}

  def train_fn(self, num_steps: int):
    """The jitted `train_call` for `num_steps` iterations: fn(state, loop_key, batches), the
    state replicated and donated, the batches split along B."""
    if num_steps not in self._train_fns:
      self._train_fns[num_steps] = jax.jit(
          functools.partial(train_call, self.spec, num_steps=num_steps),
          in_shardings=(self.repl, self.repl, self.batch_sharding),
          out_shardings=(self.repl, self.repl), donate_argnums=0,
          compiler_options=compiler_options())
    return self._train_fns[num_steps]

  def batch_stream(self, start_step: int):
    """`take(n)`: the pairs of the next n iterations, from iteration `start_step` on, as global
    {'input': (n, B, H, W, C_in), 'target': (n, B, H, W, C_out)} arrays sharded along B."""
    stream = self.data.batches(self.config.data.batch_size, seed=self.config.seed,
                               start_step=start_step, process_index=jax.process_index(),
                               process_count=jax.process_count())

    def take(n):
      local = [next(stream) for _ in range(n)]
      return {k: jax.make_array_from_process_local_data(
          self.batch_sharding, np.stack([b[k] for b in local])) for k in ('input', 'target')}

    return take

  # --- evaluation --------------------------------------------------------------------------

  @functools.cached_property
  def _eval_fn(self):
    spec = self.spec

    def fn(params, stats, inputs, targets):
      out = translate(spec, params, stats, inputs)
      return out, {'l1': l1_error(out, targets), 'psnr': psnr(out, targets),
                   'sharpness_output': mean_gradient_magnitude(out),
                   'sharpness_target': mean_gradient_magnitude(targets)}

    return jax.jit(fn, compiler_options=compiler_options())

  def eval_indices(self, n: int) -> np.ndarray:
    """The n held-out pairs evaluated: evenly spaced over the split, i·N // n (every class of a
    class-sorted file such as mnist5k's), all of them when n >= N."""
    total = len(self.eval_data)
    return np.arange(min(n, total)) * total // min(n, total)

  def _eval_batches(self, n: int):
    """Device batches (inputs, targets, valid count) of the n held-out pairs `eval_indices(n)`."""
    size = self.config.eval.get('batch_size', 250)
    size = max(self.mesh.size, size // self.mesh.size * self.mesh.size)
    indices = self.eval_indices(n)
    for start in range(0, n, size):
      pairs = self.eval_data.read(np.resize(indices[start:start + size], size))
      yield (jax.device_put(pairs['input'], self.eval_sharding),
             jax.device_put(pairs['target'], self.eval_sharding), min(size, n - start))

  @property
  def extractor(self) -> evaluation.Extractor:
    """The feature network of config.eval.features, built (the digit CNN: trained) on first use."""
    if self._extractor is None:
      e = self.config.eval
      if self.features == 'identity':
        extractor = evaluation.identity_extractor()
      elif self.features == 'digit_classifier':
        extractor = evaluation.digit_extractor(e.get('cache_dir'))
      else:
        extractor = evaluation.inception_extractor(e.get('inception_weights'))
      self._extractor = extractor._replace(apply=jax.jit(lambda x: extractor.apply(x)[0]))
    return self._extractor

  def _features(self, images, m):
    return np.asarray(self.extractor.apply(images), np.float64)[:m]

  def evaluate_params(self, params, batch_stats, n: int, kind: str = 'raw'):
    """(metrics, protocol) of G with these parameters on the first n held-out pairs."""
    n = min(n, len(self.eval_data))
    sums, feats, refs = {}, [], []
    for inputs, targets, m in self._eval_batches(n):
      out, stats = self._eval_fn(params, batch_stats, inputs, targets)
      for k, v in stats.items():
        sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v, np.float64)[:m]))
      if self.metrics:
        feats.append(self._features(out, m))
        if n not in self._reference:
          refs.append(self._features(targets, m))
    metrics = {k: v / n for k, v in sums.items()}
    metrics['sharpness_ratio'] = metrics['sharpness_output'] / metrics['sharpness_target']
    protocol = {
        'generator': kind, 'data': self.data.name, 'pairs': self.data.pairs,
        'split': self.eval_split, 'num_samples': n,
        'generator_mode': 'inference: no dropout, BatchNorm running averages',
        'l1': 'mean |output - target|, pixels in [-1, 1]',
        'psnr': 'mean over images of 10 log10(1/MSE), pixels in [0, 1]',
        'sharpness': 'mean gradient magnitude (forward differences), pixels in [0, 1]',
    }
    if self.metrics:
      if n not in self._reference:
        self._reference[n] = np.concatenate(refs)
      real, fake = self._reference[n], np.concatenate(feats)
      if 'fid' in self.metrics:
        mu_r, sigma_r = StreamingStats.init(real.shape[1]).update(real).finalize()
        mu_f, sigma_f = StreamingStats.init(fake.shape[1]).update(fake).finalize()
        metrics['fid'] = frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
      if 'kid' in self.metrics:
        metrics['kid'], metrics['kid_std'] = kernel_inception_distance(
            real, fake, KID_SUBSETS, KID_SUBSET_SIZE)
      if 'c2st' in self.metrics:
        result = c2st(real, fake)
        metrics.update(c2st_accuracy=result['accuracy'], c2st_p_value=result['p_value'])
      protocol.update(self.extractor.protocol, reference='the targets of the same pairs',
                      kid=f'{KID_SUBSETS} subsets of min({KID_SUBSET_SIZE}, n), cubic kernel')
    return metrics, protocol

  def evaluate(self, state, n: int) -> list:
    """[(kind, metrics, protocol)] for each generator in config.eval.generators."""
    return [(kind, *self.evaluate_params(state.g_ema if kind == 'ema' else state.g.params,
                                         state.g.batch_stats, n, kind))
            for kind in self.config.eval.generators]

  def outputs(self, params, batch_stats, n: int):
    """(inputs, outputs, targets) of the held-out pairs `eval_indices(n)`, on host."""
    pairs = self.eval_data.read(self.eval_indices(n))
    outputs = [np.asarray(self._eval_fn(params, batch_stats, x, y)[0])[:m]
               for x, y, m in self._eval_batches(len(pairs['input']))]
    return pairs['input'], np.concatenate(outputs), pairs['target']

  def plot(self, state, path: str, title: str):
    """input | output | target triplets of held-out pairs per generator; returns the first grid."""
    n = self.config.eval.get('num_plot', 12)
    grids = []
    for kind in (self.config.eval.generators or ('raw',)):
      params = state.g_ema if kind == 'ema' else state.g.params
      grids.append((kind, triplet_grid(self.outputs(params, state.g.batch_stats, n))))
    plots.save_image_panels(path, grids, f'{title}: input | output | target')
    return grids[0][1]

"""Plain eager PyTorch twins of gan_jax's 32×32 image GANs, for benchmarks/vs_pytorch.py only.

Not part of the library: it needs torch (`pip install -e '.[bench]'`, see vs_pytorch.py). Each
network has the layer shapes and parameter count of its gan_jax counterpart
(gan_jax/image_models.py), in PyTorch's NCHW layout:

  DCGAN G    Linear(z, 4·4·4ch) → BN-ReLU → [ConvT 4×4 s2 → BN-ReLU] × 2 → ConvT 4×4 s2
             → tanh
  DCGAN D    Conv 4×4 s2 → LReLU(0.2) → [Conv 4×4 s2 → BN (or none) → LReLU] × 2
             → Linear(·, 1)
  ResNet G   Linear(z, 4·4·ch) → 3 up blocks (BN-ReLU-up-conv3-BN-ReLU-conv3, shortcut
             up-conv1) → BN-ReLU-conv3 → tanh   (Gulrajani et al. 2017; Miyato et al. 2018)
  ResNet D   optimized down block, down block, 2 plain blocks → ReLU → global sum
             → Linear(ch, 1), spectral norm on every conv and linear layer when asked

and the training iteration is gan_jax.steps.train_iteration's: n_critic D updates (G in train
mode under no_grad for the fakes; D on the real batch, then on the fake batch; the objective,
plus the WGAN-GP penalty on interpolates), then one G update (D's parameters frozen), then the
EMA of G's parameters. Adam with the config's betas and eps 1e-8 (optax's), optional linear lr
decay. BatchNorm momentum 0.1 = Flax's 0.9, eps 1e-5.
"""
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


# The objectives of gan_jax.losses (on logits / critic values), as (d_loss, g_loss).
OBJECTIVES = {
    'non_saturating': (lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
                       lambda f: F.softplus(-f).mean()),
    'wasserstein': (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),
    'hinge': (lambda r, f: F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean(), lambda f: -f.mean()),
}


def gradient_penalty(d, real, fake, target=1.0):
  """WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028): E[(‖∇D(x̂)‖ - target)²]."""
  eps = torch.rand(real.shape[0], 1, 1, 1)
  x = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
  grad, = torch.autograd.grad(d(x).sum(), x, create_graph=True)
  return ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - target).pow(2).mean()


def build_networks(spec):
  """(G, D) for a workload spec (see vs_pytorch.torch_spec)."""
  if spec['generator'] == 'dcgan':
    g = DCGANGenerator(spec['z_dim'], spec['g_channels'])
  else:
    g = ResNetGenerator(spec['z_dim'], spec['g_channels'])
  if spec['discriminator'] == 'dcgan':
    d = DCGANDiscriminator(spec['d_channels'], norm=spec['d_norm'],
                           spectral_norm=spec['spectral_norm'])
  else:
    d = ResNetDiscriminator(spec['d_channels'], spectral_norm=spec['spectral_norm'])
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
  """G, D, their Adam optimizers and G's EMA; `iteration(reals)` is one training iteration."""

  def __init__(self, spec, seed=0):
    torch.manual_seed(seed)
    self.spec = spec
    self.g, self.d = build_networks(spec)
    self.g.train()
    self.d.train()
    self.d_loss, self.g_loss = OBJECTIVES[spec['objective']]
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=spec['lr'], betas=spec['betas'],
                                        eps=1e-8)
    self.g_opt, self.d_opt = adam(self.g), adam(self.d)
    # optax.linear_schedule to 0: G over `steps` updates, D over steps × n_critic updates.
    linear = spec['lr_schedule'] == 'linear'
    decay = lambda opt, n: torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda i: max(0.0, 1.0 - i / n)) if linear else (lambda i: 1.0))
    self.g_sched = decay(self.g_opt, spec['steps'])
    self.d_sched = decay(self.d_opt, spec['steps'] * spec['n_critic'])
    self.ema = [p.detach().clone() for p in self.g.parameters()]

  def _d_update(self, real):
    spec = self.spec
    z = torch.randn(real.shape[0], spec['z_dim'])
    with torch.no_grad():
      fake = self.g(z)
    loss = self.d_loss(self.d(real), self.d(fake))
    if spec['penalty'] == 'wgan_gp':
      loss = loss + spec['penalty_weight'] * gradient_penalty(self.d, real, fake)
    self.d_opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _grad_norm(self.d)
    self.d_opt.step()
    self.d_sched.step()
    return loss.detach(), grad_norm

  def _g_update(self, batch_size):
    self.d.requires_grad_(False)
    loss = self.g_loss(self.d(self.g(torch.randn(batch_size, self.spec['z_dim']))))
    self.g_opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _grad_norm(self.g)
    self.g_opt.step()
    self.g_sched.step()
    self.d.requires_grad_(True)
    return loss.detach(), grad_norm

  def iteration(self, reals):
    """reals: (n_critic, B, C, H, W). Returns the metrics as tensors (no host sync needed)."""
    d_losses = []
    for real in reals:
      d_losses.append(self._d_update(real)[0])
    g_loss, _ = self._g_update(reals.shape[1])
    with torch.no_grad():
      torch._foreach_lerp_(  # pylint: disable=protected-access
          self.ema, list(self.g.parameters()), 1.0 - self.spec['ema_decay'])
    return {'d_loss': torch.stack(d_losses).mean(), 'g_loss': g_loss}

"""SNGAN on CIFAR-10: hinge loss, ResNet with spectral norm in D (Miyato et al. 2018,
arXiv:1802.05957, Table 3 setting C/ResNet): G 256 channels, D 128, Adam 2e-4, β = (0, 0.9),
n_dis 5, batch 64, 50k generator updates with linear decay."""
from gan_jax import configs


def get_config():
  c = configs.add_tfds_fields(configs.image_config('cifar10', 32))
  c.objective.name = 'hinge'
  c.model.update(generator='resnet', discriminator='resnet', z_dim=128)
  c.model.g = {'channels': 256, 'norm': 'batch', 'conditioning': 'none'}
  c.model.d = {'channels': 128, 'spectral_norm': True, 'conditioning': 'none'}
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.0, 0.9), n_critic=5, lr_schedule='linear')
  c.train.update(steps=50_000, steps_per_call=10, log_every=100, eval_every=5_000,
                 checkpoint_every=5_000)
  return c

"""WGAN-GP with the CIFAR-10 ResNet, as Gulrajani et al.'s CIFAR code (arXiv:1704.00028,
gan_cifar_resnet.py): 128 channels, Adam 2e-4 decaying linearly to 0, β = (0, 0.9), n_critic 5,
λ = 10, batch 64, 100k generator iterations. Needs tfds cifar10 prepared (see README)."""
from gan_jax import configs


def get_config():
  c = configs.add_tfds_fields(configs.image_config('cifar10', 32))
  c.objective.name = 'wasserstein'
  c.penalty.update(name='wgan_gp', weight=10.0, target=1.0)
  c.model.update(generator='resnet', discriminator='resnet', z_dim=128)
  c.model.g = {'channels': 128, 'norm': 'batch', 'conditioning': 'none'}
  c.model.d = {'channels': 128, 'spectral_norm': False, 'conditioning': 'none'}
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.0, 0.9), n_critic=5, lr_schedule='linear')
  c.train.update(steps=100_000, steps_per_call=10, log_every=100, eval_every=5_000,
                 checkpoint_every=5_000)
  return c

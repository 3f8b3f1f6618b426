"""pix2pix's configs: the paper's recipe (`base_config`) and the 2-core-CPU digits recipe
(`digits_config`) the experiments in experiments/pix2pix_*.py start from."""
import ml_collections

from gan_jax import configs


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
      'conv_impl': 'auto',  # gan_jax/layers.py: the rewrites on CPU, XLA's own elsewhere
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


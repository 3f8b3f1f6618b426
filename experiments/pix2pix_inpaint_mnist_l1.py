"""The L1-only baseline of pix2pix_inpaint_mnist.py: λ_GAN = 0, pure L1 regression with the same
U-Net, data and steps (D is not trained). Its completions are the blur the GAN term removes."""
import importlib.util
import os


def get_config():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pix2pix_inpaint_mnist.py')
  spec = importlib.util.spec_from_file_location('pix2pix_inpaint_mnist', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.pix2pix.lambda_gan = 0.0
  return c

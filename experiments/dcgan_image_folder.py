"""DCGAN on your own images: a folder of PNG/JPEG files (class sub-folders become labels), resized
and centre-cropped to 64×64, converted once into a cached array (gan_jax/input_pipeline.py:
image_folder). Radford et al. 2016, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks" (arXiv:1511.06434).

Run: python -m gan_jax.main --config=experiments/dcgan_image_folder.py --workdir=runs/mine \
       --config.data.path=/path/to/images
Evaluation: FID etc. on Inception features (downloaded once, or --config.eval.inception_weights).
"""
from ml_collections.config_dict import placeholder

from gan_jax import configs


def get_config():
  c = configs.image_config('image_folder', 64)
  c.data.path = placeholder(str)
  c.data.channels = placeholder(int)  # None: greyscale if every image is, else RGB
  c.eval.num_samples = 10_000
  return c

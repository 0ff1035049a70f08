"""seglab: U-Net segmentation from a folder of images and masks to a served model."""

__version__ = "0.1.0"

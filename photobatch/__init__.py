"""photobatch: captions, hashtags and XMP keywords for a personal photo library, made locally."""

__version__ = "0.1.0"

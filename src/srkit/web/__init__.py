"""The local web page: drop an image in, upscale it with zoo models, compare them with bicubic, download."""

from srkit.web.app import Limits, create_app
from srkit.web.server import background, check_host, serve

__all__ = ["Limits", "background", "check_host", "create_app", "serve"]

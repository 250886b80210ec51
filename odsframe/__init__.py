"""odsframe: OpenDataSoft (Huwise) portals as typed pandas and GeoPandas frames."""

from odsframe._version import __version__

__all__ = ["__version__"]

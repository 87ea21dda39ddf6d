"""Container images on a node: import, pull, overlay root filesystems, garbage collection."""

from pathlib import Path

from .refs import ImageError, ImageInfo, ImageNotFound, InvalidReference, normalize, parse_reference
from .registry import PullError
from .store import ImageStore


def store_root(data_dir: Path) -> Path:
    """Where a node keeps its image store inside the data directory."""
    return Path(data_dir) / "agent" / "images-store"


def drop_dir(data_dir: Path) -> Path:
    """Tarballs dropped here are imported when the agent starts (air-gapped nodes)."""
    return Path(data_dir) / "agent" / "images"


__all__ = ["ImageError", "ImageInfo", "ImageNotFound", "ImageStore", "InvalidReference", "PullError", "normalize",
           "drop_dir", "parse_reference", "store_root"]

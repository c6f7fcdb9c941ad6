"""What an uploaded dataset is refused for: :class:`DatasetFormatError` and :class:`Limits`.

Every reader of :mod:`backend.data.formats` (the archive layer in :mod:`backend.data.archives`
and each format module) raises :class:`DatasetFormatError` with a message that names the bad
member or value, and enforces the bounds of one :class:`Limits` object: a limit is never
exceeded silently, and none can be set to a value that disables it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatasetFormatError", "Limits"]


class DatasetFormatError(ValueError):
    """The upload is not a usable dataset; the message says what is wrong."""


@dataclass(frozen=True)
class Limits:
    """Bounds that an upload must respect; exceeding one raises :class:`DatasetFormatError`.

    Attributes:
        max_members: entries (files and folders) in an archive or folder.
        max_total_uncompressed: bytes of all members together, once decompressed; also the
            bound on the decompressed stream of a compressed tar and on decoded image pixels.
        max_ratio: uncompressed / compressed size, per member and over the archive.
        max_samples: samples over both splits.
        ratio_exempt_below: the ratio check applies only to members (and archives) that
            decompress to more than this many bytes: a few MiB of zeros hurt nobody, and small
            synthetic arrays compress far better than 200:1.
        max_classes: labels must be below this.
        max_image_side: images wider or taller than this many pixels are refused before they
            are decoded.
    """

    max_members: int = 200_000
    max_total_uncompressed: int = 4 * 2**30
    max_ratio: float = 200.0
    max_samples: int = 2_000_000
    ratio_exempt_below: int = 16 * 2**20
    max_classes: int = 100_000
    max_image_side: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "max_members",
            "max_total_uncompressed",
            "max_samples",
            "max_classes",
            "max_image_side",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} should be a positive integer")
        if isinstance(self.ratio_exempt_below, bool) or not isinstance(
            self.ratio_exempt_below, int
        ):
            raise ValueError(f"ratio_exempt_below={self.ratio_exempt_below!r} should be an int")
        if not float(self.max_ratio) >= 1.0:
            raise ValueError(f"max_ratio={self.max_ratio!r} should be >= 1")

"""Image parts: ``data:`` URLs are decoded locally; tollgate never fetches a URL from a request."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..errors import BadRequest


@dataclass(frozen=True, slots=True)
class InlineImage:
    media_type: str  # e.g. "image/png"
    data_b64: str

    @property
    def format(self) -> str:
        """The short format name Bedrock wants (png, jpeg, gif, webp)."""
        return self.media_type.split("/", 1)[1].replace("jpg", "jpeg")

    def raw(self) -> bytes:
        return base64.b64decode(self.data_b64)


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def parse_data_url(url: str, *, param: str) -> InlineImage:
    """``data:image/png;base64,....`` -> InlineImage; anything else is a 400 naming ``param``."""
    if not url.startswith("data:"):
        raise BadRequest("image_url must be a data: URL or an http(s) URL", param=param)
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type.startswith("image/"):
        raise BadRequest(
            "image data: URLs must be base64-encoded images (data:image/...;base64,...)", param=param
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("image data: URL is not valid base64", param=param) from exc
    return InlineImage(media_type=media_type, data_b64=data)

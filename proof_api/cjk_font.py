"""The CJK font a certificate carries: Noto Sans CJK SC, subset to the characters the page
uses and embedded as WOFF2, so that its Chinese renders anywhere, also on a machine with no
CJK font (where it would otherwise show empty boxes), and in its PDF.

The source is Debian's fonts-noto-cjk (SIL Open Font License 1.1, which allows embedding a
subset), or the font file EVLEDGER_CJK_FONT names (a .ttc or .otf/.ttf; in a collection the
Simplified Chinese face is taken). fontTools subsets it; brotli compresses the WOFF2.
"""
from __future__ import annotations

import base64
import io
import logging
import os
from functools import lru_cache
from pathlib import Path

# fontTools logs every subsetting step at INFO: not the certificate's business.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FAMILY = "Evledger CJK"  # the name the certificate's CSS uses first in every font stack
DEBIAN_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf")


class FontUnavailable(RuntimeError):
    """No CJK font to embed: the message says how to get one."""


def font_source() -> Path:
    named = os.environ.get("EVLEDGER_CJK_FONT")
    if named:
        if not Path(named).is_file():
            raise FontUnavailable(f"EVLEDGER_CJK_FONT names {named}, which is not a file")
        return Path(named)
    for candidate in DEBIAN_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontUnavailable("no CJK font to embed in the certificate: install Debian's fonts-noto-cjk "
                          "(apt-get install fonts-noto-cjk), or set EVLEDGER_CJK_FONT to a Noto Sans CJK SC file")


def _face_number(path: Path) -> int:
    """In a collection, the Simplified Chinese sans face; 0 in a single font."""
    if path.suffix.lower() != ".ttc":
        return 0
    from fontTools.ttLib import TTCollection

    with TTCollection(str(path), lazy=True) as collection:
        names = [face["name"].getDebugName(1) or "" for face in collection.fonts]
    return next((n for n, name in enumerate(names) if name.endswith("CJK SC") and "Mono" not in name), 0)


@lru_cache(maxsize=16)  # a subset of thousands of characters is megabytes
def woff2_subset(characters: str) -> bytes:
    """The source font cut down to `characters` (sorted, distinct), as WOFF2."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    path = font_source()
    options = subset.Options()
    options.flavor = "woff2"
    options.notdef_outline = True
    options.name_IDs = ["*"]  # keep the copyright and licence notices
    with TTFont(str(path), fontNumber=_face_number(path), lazy=False) as font:
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=characters)
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
    return out.getvalue()


def font_face_css(text: str) -> str:
    """An @font-face rule embedding the font, cut to the characters of `text`."""
    characters = "".join(sorted(set(text) - {"\n", "\r", "\t"}))
    data = base64.b64encode(woff2_subset(characters)).decode()
    return (f'@font-face {{ font-family: "{FAMILY}"; font-style: normal; font-weight: 100 900; '
            f'src: url(data:font/woff2;base64,{data}) format("woff2"); }}')

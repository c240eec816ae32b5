#!/usr/bin/env bash
# Regenerates tests/fixtures/formats/: one small file per input format and
# colour profile the decode stage reads, made from our own synthetic
# portrait (examples/format_source.rs, an sRGB PNG with no colour chunks,
# kept as source.png: the truth the tests measure against).
#
# Colour conversions are done by ImageMagick through Little CMS, a colour
# engine independent of ours (moxcms), so a test that passes shows both
# agree. Needs: imagemagick (with lcms, tiff, webp, heic), jpegtran
# (libjpeg-turbo-progs), python3, and apt-get download for the profiles:
# - icc-profiles-free 2.0.1: compatibleWithAdobeRGB1998.icc and sRGB.icc
#   (Debian copyright: Zlib; the profile says "Public Domain");
# - argyll-ref 2.3.1: DisplayP3.icm ("Released into the public domain",
#   Debian: public-domain);
# - colord-data 1.4.6: ProPhotoRGB.icc (Debian: CC0-1.0).
# The profiles are embedded in the fixtures, not kept apart.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures/formats
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq icc-profiles-free argyll-ref colord-data >/dev/null 2>&1 \
  && for d in *.deb; do dpkg-deb -x "$d" x; done)
icc=$tmp/x/usr/share/color
SRGB=$icc/icc/sRGB.icc
ADOBE=$icc/icc/compatibleWithAdobeRGB1998.icc
P3=$icc/argyll/ref/DisplayP3.icm
PROPHOTO=$icc/icc/colord/ProPhotoRGB.icc

rm -rf "$out" && mkdir -p "$out"
cargo run --release --quiet --example format_source -- "$out/source.png"
src=$out/source.png
half="-alpha set -channel A -evaluate set 50% +channel"

# Profiles in JPEG (APP2) and PNG (iCCP).
convert "$src" -profile "$SRGB" -profile "$ADOBE" -quality 95 "$out/adobe-rgb.jpg"
convert "$src" -profile "$SRGB" -profile "$P3" -quality 95 "$out/display-p3.jpg"
convert "$src" -profile "$SRGB" -profile "$PROPHOTO" -quality 95 "$out/prophoto-v4.jpg"
# (iCCP wins over the cHRM ImageMagick adds, as the PNG rules say.)
convert "$src" -profile "$SRGB" -profile "$ADOBE" -define png:exclude-chunk=bKGD,tIME,tEXt PNG24:"$out/adobe-rgb.png"
# Linear light, said by gAMA 1.0 alone.
convert "$src" -colorspace RGB -define png:exclude-chunk=all "$tmp/linear.png"
# Baseline sRGB JPEG for the arithmetic and 12-bit variants.
convert "$src" -strip -quality 95 "$tmp/base.jpg"
convert "$src" -profile "$SRGB" -profile "$ADOBE" -strip -quality 95 "$tmp/adobe-pixels.jpg"
convert "$src" -rotate -90 -profile "$SRGB" -profile "$ADOBE" -strip -quality 95 "$tmp/adobe-rot.jpg"
jpegtran -arithmetic "$tmp/base.jpg" > "$out/arithmetic.jpg"
jpegtran -arithmetic -progressive "$tmp/base.jpg" > "$out/arithmetic-progressive.jpg"

python3 - "$out" "$tmp" <<'PY'
import struct, sys, zlib
out, tmp = sys.argv[1], sys.argv[2]

def segments(jpeg):
    """(marker, body) up to the first scan, then the rest."""
    at, segs = 2, []
    while True:
        marker = jpeg[at + 1]
        length = struct.unpack(">H", jpeg[at + 2:at + 4])[0]
        segs.append((marker, jpeg[at + 4:at + 2 + length]))
        at += 2 + length
        if marker == 0xDA:
            return segs, jpeg[at:]

def build(segs, rest):
    b = b"\xff\xd8"
    for marker, body in segs:
        b += bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    return b + rest

# The Adobe RGB profile split over three APP2 segments, stored out of order.
segs, rest = segments(open(f"{out}/adobe-rgb.jpg", "rb").read())
icc = b"".join(b[14:] for m, b in segs if m == 0xE2 and b.startswith(b"ICC_PROFILE\0"))
keep = [(m, b) for m, b in segs if not (m == 0xE2 and b.startswith(b"ICC_PROFILE\0"))]
third = (len(icc) + 2) // 3
pieces = [icc[i * third:(i + 1) * third] for i in range(3)]
app2 = [(0xE2, b"ICC_PROFILE\0" + bytes([i + 1, 3]) + p) for i, p in enumerate(pieces)]
open(f"{out}/adobe-rgb-split.jpg", "wb").write(build(keep[:1] + [app2[2], app2[0], app2[1]] + keep[1:], rest))
# A profile that cannot be parsed: its tag count claims more than is there.
broken = bytearray(icc)
broken[128:132] = struct.pack(">I", 0x7FFFFFFF)
app2 = [(0xE2, b"ICC_PROFILE\0\x01\x01" + bytes(broken))]
open(f"{out}/broken-icc.jpg", "wb").write(build(keep[:1] + app2 + keep[1:], rest))

def exif(orientation, adobe):
    """Little-endian EXIF: Orientation, and ColorSpace uncalibrated with
    the interoperability index R03 (the camera's Adobe RGB)."""
    ifd0 = struct.pack("<HHHIHH", 2, 0x0112, 3, 1, orientation, 0)
    ifd0 += struct.pack("<HHII", 0x8769, 4, 1, 8 + 2 + 24 + 4) + struct.pack("<I", 0)
    exif_at = 8 + len(ifd0)
    interop_at = exif_at + 2 + 24 + 4
    sub = struct.pack("<H", 2)
    sub += struct.pack("<HHIHH", 0xA001, 3, 1, 0xFFFF if adobe else 1, 0)
    sub += struct.pack("<HHII", 0xA005, 4, 1, interop_at) + struct.pack("<I", 0)
    interop = struct.pack("<HHHI", 1, 1, 2, 4) + b"R03\0" + struct.pack("<I", 0)
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd0 + sub + interop

# Adobe RGB pixels said only by EXIF, stored rotated: orientation 6.
segs, rest = segments(open(f"{tmp}/adobe-rot.jpg", "rb").read())
open(f"{out}/exif-adobe-rgb-rotated.jpg", "wb").write(build(segs[:1] + [(0xE1, exif(6, True))] + segs[1:], rest))
# 12-bit precision claimed in the frame header.
segs, rest = segments(open(f"{tmp}/base.jpg", "rb").read())
segs = [(m, bytes([12]) + b[1:]) if m == 0xC0 else (m, b) for m, b in segs]
open(f"{out}/precision-12.jpg", "wb").write(build(segs, rest))

# gAMA 1.0 after IHDR.
png = open(f"{tmp}/linear.png", "rb").read()
chunk = b"gAMA" + struct.pack(">I", 100000)
gama = struct.pack(">I", 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
open(f"{out}/linear-gamma.png", "wb").write(png[:33] + gama + png[33:])
PY

# TIFF: compressions, 16 bits, orientation tag, alpha, an embedded profile.
convert "$src" -compress None "$out/rgb8-none.tif"
convert "$src" -compress LZW "$out/rgb8-lzw.tif"
convert "$src" -depth 16 -compress Zip "$out/rgb16-deflate.tif"
convert "$src" -rotate -90 -orient RightTop -compress LZW "$out/rotated-lzw.tif"
convert "$src" $half -compress Zip "$out/alpha-deflate.tif"
convert "$src" -profile "$SRGB" -profile "$P3" -compress LZW "$out/display-p3.tif"
# BMP: 24 bits, and 32 with alpha.
convert "$src" BMP3:"$out/rgb24.bmp"
convert "$src" $half BMP:"$out/alpha32.bmp"
# WebP: lossy, lossless, lossless with alpha.
convert "$src" -quality 90 "$out/lossy.webp"
convert "$src" -define webp:lossless=true "$out/lossless.webp"
convert "$src" $half -define webp:lossless=true "$out/alpha-lossless.webp"
# HEIC: only with the heic feature; without it the error must name it.
convert "$src" -quality 90 "$out/portrait.heic" || echo "no HEIC writer; skipped" >&2
ls -l "$out"

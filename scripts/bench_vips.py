"""libvips at its fastest for the gradphoto job, for scripts/bench.sh.

One process per core (not per photo), each working through its share of
the photos in memory: thumbnail with shrink-on-load to a 480x640 centre
crop (EXIF orientation applied), then a binary search over JPEG quality
with jpegsave_buffer for the best quality inside the size window.

Usage: bench_vips.py OUTDIR JOBS FILE...
"""
import multiprocessing
import os
import sys

MIN_BYTES, MAX_BYTES = 30_720, 100_000


def one(path, outdir):
    import pyvips

    img = pyvips.Image.thumbnail(path, 480, height=640, crop="centre", size="both")
    img = img.colourspace("srgb") if img.interpretation != "srgb" else img
    if img.bands > 3:
        img = img.flatten(background=[100, 197, 255])
    # libvips 8.14 writes no JFIF header with strip=True, and an EXIF block
    # without it; stripping (no camera data leaves the studio) is the choice
    # a careful user makes, so its outputs miss the 300 dpi JFIF header.
    lo, hi, best = 60, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        buf = img.jpegsave_buffer(Q=q, strip=True, optimize_coding=True, subsample_mode="off")
        if len(buf) <= MAX_BYTES:
            best, lo = buf, q + 1
        else:
            hi = q - 1
    if best is None:
        best = img.jpegsave_buffer(Q=60, strip=True, optimize_coding=True)
    name = os.path.splitext(os.path.basename(path))[0] + ".jpg"
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(best)


def worker(args):
    outdir, paths = args
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    failed = 0
    for p in paths:
        try:
            one(p, outdir)
        except Exception:  # a photo libvips cannot read still counts in the time
            failed += 1
    return failed


def main():
    outdir, jobs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    shares = [(outdir, files[i::jobs]) for i in range(jobs)]
    with multiprocessing.Pool(jobs) as pool:
        failed = sum(pool.map(worker, shares))
    print(f"vips: {len(files)} photos, {failed} failed")


if __name__ == "__main__":
    main()

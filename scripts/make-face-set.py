#!/usr/bin/env python3
"""Builds tests/faces/: studio-like portraits of real people, from photos
whose packages state their licence, with the truth marked by hand on the
originals and carried through every transform.

Needs (pip): scikit-image==0.26.0, matplotlib, numpy, pillow, dlib-bin
(dlib only for the reference landmarks the Rust shape predictor is tested
against). Run from the repository root: python3 scripts/make-face-set.py

Sources (see tests/faces/SOURCES.md):
- astronaut: scikit-image 0.26.0 skimage/data/astronaut.png, "No known
  copyright restrictions, released into the public domain" (NASA).
- hopper: matplotlib's mpl-data/sample_data/grace_hopper.jpg, a US Navy
  photograph (public domain as a work of the US federal government; the
  package carries no per-file licence statement).
- chelsea: scikit-image chelsea.png (a cat), "CC0 by the photographer
  (Stefan van der Walt)", for the photo with no face.
"""
import json, math, os
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
import skimage.data
import matplotlib.cbook as cbook

OUT = "tests/faces"
BACKDROP = (100, 197, 255)
W, H = 900, 1200

# Hand-marked on the originals (zoomed 3-4x): pupil centres (the subject's
# right eye, image left, first), cheek-to-cheek width at the cheekbones, the
# top of the hair (or cap), and a polygon around head and shoulders.
SUBJECTS = {
    "astronaut": dict(
        pupils=[(203.8, 101.3), (246.3, 103.0)],
        cheeks=(183.8, 267.5),
        polygon=[(20, 512), (27, 347), (40, 287), (67, 250), (113, 183), (130, 173),
                 (150, 157), (178, 150), (185, 150), (183, 133), (182, 120), (172, 115),
                 (162, 100), (153, 80), (155, 65), (162, 53), (177, 40), (200, 27),
                 (230, 15), (253, 18), (273, 25), (290, 40), (297, 57), (300, 87),
                 (293, 110), (280, 127), (267, 140), (262, 150), (287, 177), (303, 200),
                 (303, 240), (353, 280), (360, 333), (363, 512)],
    ),
    "hopper": dict(
        pupils=[(220.0, 188.3), (305.0, 186.0)],
        cheeks=(176.7, 353.3),
        polygon=[(13, 600), (27, 427), (60, 387), (133, 360), (200, 327), (183, 300),
                 (167, 273), (157, 240), (150, 193), (143, 160), (150, 110), (173, 80),
                 (183, 60), (220, 30), (260, 27), (300, 30), (350, 67), (367, 100),
                 (373, 153), (370, 200), (360, 253), (343, 293), (330, 320), (373, 347),
                 (467, 380), (493, 413), (512, 467), (512, 600)],
    ),
}

def original(name):
    if name == "astronaut":
        return Image.fromarray(skimage.data.astronaut())
    return Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")

def cutout(name):
    """The person as RGBA: the polygon's matte, edges softened a pixel."""
    img = original(name)
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).polygon(SUBJECTS[name]["polygon"], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(0.8))
    rgba = img.convert("RGBA")
    rgba.putalpha(mask)
    return rgba

def backdrop(seed):
    rng = np.random.default_rng(seed)
    base = np.array(BACKDROP, np.float32)[None, None, :]
    noise = rng.normal(0, 0.8, (H, W, 3)).astype(np.float32)
    # A faint fall-off towards the bottom, as studio light gives.
    ramp = np.linspace(0, -6, H, dtype=np.float32)[:, None, None]
    return Image.fromarray(np.clip(base + noise + ramp, 0, 255).round().astype(np.uint8))

def place(name, face_width, dx, angle, eye_y=None):
    """The person scaled so the cheeks are `face_width` px apart, rotated by
    `angle` degrees about the mid-pupil (positive: the image's right side
    goes down), the mid-pupil at (W/2 + dx, eye_y). Returns the RGBA layer
    and the truth in canvas pixels."""
    s = SUBJECTS[name]
    src = cutout(name)
    (rx, ry), (lx, ly) = s["pupils"]
    k = face_width / (s["cheeks"][1] - s["cheeks"][0])
    mx, my = (rx + lx) / 2, (ry + ly) / 2
    bottom = src.size[1]
    if eye_y is None:
        # Low enough that the cut-out's bottom runs well past the canvas's.
        eye_y = max(0.40 * H, H + 60 - (bottom - my) * k)
    cx = W / 2 + dx
    # Canvas point p comes from source point M^-1 (p - c) / k + m.
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)
    def fwd(x, y):
        u, v = (x - mx) * k, (y - my) * k
        return (cx + ca * u - sa * v, eye_y + sa * u + ca * v)
    inv = (ca / k, sa / k, -sa / k, ca / k)
    coeffs = (inv[0], inv[1], mx - inv[0] * cx - inv[1] * eye_y,
              inv[2], inv[3], my - inv[2] * cx - inv[3] * eye_y)
    layer = src.transform((W, H), Image.AFFINE, coeffs, resample=Image.BICUBIC)
    alpha = np.asarray(layer.getchannel("A"))
    rows = np.nonzero(alpha.max(axis=1) >= 128)[0]
    truth = dict(
        pupils=[fwd(*s["pupils"][0]), fwd(*s["pupils"][1])],
        face_width=face_width,
        crown_y=float(rows[0]),
        # The originals are not level either (the astronaut's pupils
        # slope 2.3 degrees): the truth is the pupils' own slope.
        tilt=math.degrees(math.atan2(fwd(*s["pupils"][1])[1] - fwd(*s["pupils"][0])[1],
                                     fwd(*s["pupils"][1])[0] - fwd(*s["pupils"][0])[0])),
    )
    return layer, truth

def save_jpeg(img, path):
    img.convert("RGB").save(path, quality=88)

def main():
    os.makedirs(OUT, exist_ok=True)
    truth = {}
    variants = [
        # name, face width px, offset px, tilt degrees
        ("astronaut", 200, 0, 0.0),
        ("astronaut", 260, -70, 2.5),
        ("astronaut", 330, 50, -1.5),
        ("astronaut", 230, 90, -4.0),
        ("hopper", 210, 30, 0.0),
        ("hopper", 270, -45, -3.0),
        ("hopper", 340, 0, 1.5),
    ]
    for i, (name, fw, dx, angle) in enumerate(variants, 1):
        layer, t = place(name, fw, dx, angle)
        canvas = backdrop(i)
        canvas.paste(layer, (0, 0), layer)
        file = f"real-{i:02}-{name}.jpg"
        save_jpeg(canvas, f"{OUT}/{file}")
        truth[file] = t
    # Two people side by side.
    canvas = backdrop(90)
    for name, dx in [("astronaut", -170), ("hopper", 170)]:
        layer, _ = place(name, 170, dx, 0.0)
        canvas.paste(layer, (0, 0), layer)
    save_jpeg(canvas, f"{OUT}/two-faces.jpg")
    # A subject with no face: the cat, its photo standing on the bottom
    # edge with a rounded top, like a head and shoulders.
    cat = Image.fromarray(skimage.data.chelsea()).resize((676, 450))
    canvas = backdrop(91)
    mask = Image.new("L", cat.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((110, 0, 566, 480), radius=200, fill=255)
    canvas.paste(cat, ((W - 676) // 2, H - 450 - 250), mask)
    canvas.paste(cat.crop((0, 400, 676, 450)).resize((676, 250)), ((W - 676) // 2, H - 250))
    save_jpeg(canvas, f"{OUT}/no-face.jpg")
    # The astronaut as published: a flag and a shuttle behind her.
    save_jpeg(original("astronaut"), f"{OUT}/astronaut-as-published.jpg")
    with open(f"{OUT}/truth.json", "w") as f:
        json.dump(truth, f, indent=1, sort_keys=True)
    reference_landmarks()

def reference_landmarks():
    """dlib's own 5 points for faces cut from the originals (PNG, so our
    decoder reads exactly the pixels dlib read), given dlib's own face box."""
    import dlib
    sp = dlib.shape_predictor(os.environ.get(
        "DLIB_5_POINT", "models/shape_predictor_5_face_landmarks.dat"))
    det = dlib.get_frontal_face_detector()
    cases = [("astronaut", (130, 20, 330, 220), 0.0), ("hopper", (120, 80, 400, 360), 0.0),
             ("astronaut", (130, 20, 330, 220), 6.0)]
    out = {}
    for name, box, angle in cases:
        img = original(name).crop(box)
        if angle:
            img = img.rotate(angle, resample=Image.BICUBIC, fillcolor=BACKDROP)
        file = f"landmarks-{name}{'-rot' if angle else ''}.png"
        img.save(f"{OUT}/{file}", optimize=True)
        arr = np.asarray(img)
        rects = det(arr, 1)
        r = max(rects, key=lambda r: r.area())
        shape = sp(arr, r)
        out[file] = dict(rect=[r.left(), r.top(), r.right(), r.bottom()],
                         points=[[p.x, p.y] for p in shape.parts()])
    with open(f"{OUT}/landmarks.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)

if __name__ == "__main__":
    main()

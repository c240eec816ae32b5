// Shared by the benches: a 12 MP portrait (3000x4000) with a white frame,
// drawn directly (no supersampling) so setup stays fast.
use gradphoto::stages::RgbImage;
use gradphoto::testkit::synth::SplitMix64;

pub fn portrait_12mp() -> RgbImage {
    let (w, h) = (3000u32, 4000u32);
    let mut img = RgbImage::filled(w, h, [255, 255, 255]);
    let (cx, cy, a, b) = (1500.0f64, 1500.0f64, 600.0f64, 840.0f64);
    let mut rng = SplitMix64::new(1);
    for y in 40..h - 40 {
        for x in 30..w - 30 {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let dx = fx - cx;
            let face = (dx / a).powi(2) + ((fy - cy) / b).powi(2) <= 1.0;
            let hair = (dx / (1.2 * a)).powi(2) + ((fy - cy + 50.0) / (1.1 * b)).powi(2) <= 1.0
                && fy < cy + 170.0;
            let c: [u8; 3] = if face && fy > cy - 380.0 {
                [224, 172, 140]
            } else if hair {
                [28, 22, 20]
            } else if face || (dx.abs() < 300.0 && fy > cy + 400.0) {
                [224, 172, 140]
            } else if fy > cy + 1130.0 && dx.abs() < 1000.0 + (fy - cy - 1130.0) * 1.2 {
                [30, 34, 48]
            } else {
                [100, 197, 255]
            };
            let n = rng.int(-3, 3) as i32;
            img.put_pixel(x, y, c.map(|v| (i32::from(v) + n).clamp(0, 255) as u8));
        }
    }
    img
}

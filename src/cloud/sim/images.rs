//! Deterministic synthetic face JPEGs for the fake cloud: varied per user, stable per (user, version).

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use sha2::{Digest as _, Sha256};

pub const WIDTH_PX: u32 = 480;
pub const HEIGHT_PX: u32 = 640;

/// A 480×640 JPEG "face" (background, head, eyes, mouth, a little texture) derived from `seed_text`.
pub fn face_jpeg(seed_text: &str) -> Vec<u8> {
    let digest = Sha256::digest(seed_text.as_bytes());
    let b = |i: usize| digest.get(i).copied().unwrap_or(0);
    let bg = [b(0), b(1), b(2)];
    let skin = [
        180u8.saturating_add(b(3) % 60),
        130u8.saturating_add(b(4) % 60),
        100u8.saturating_add(b(5) % 50),
    ];
    let head_rx = 130.0 + f32::from(b(6) % 40);
    let head_ry = 170.0 + f32::from(b(7) % 40);
    let eye_dx = 45.0 + f32::from(b(8) % 20);
    let noise = u32::from_le_bytes([b(9), b(10), b(11), b(12)]) | 1;
    let (cx, cy) = (WIDTH_PX as f32 / 2.0, HEIGHT_PX as f32 / 2.0 + 20.0);
    let img = RgbImage::from_fn(WIDTH_PX, HEIGHT_PX, |x, y| {
        // Block-wise xorshift texture keeps the JPEG in the 10–40 KB range real photos have.
        let mut n = noise ^ (x / 24).wrapping_mul(0x9E37_79B9) ^ (y / 24).wrapping_mul(0x85EB_CA6B);
        n ^= n << 13;
        n ^= n >> 17;
        n ^= n << 5;
        let jitter = (n % 32) as u8;
        let (fx, fy) = (x as f32, y as f32);
        let in_ellipse =
            |ex: f32, ey: f32, rx: f32, ry: f32| ((fx - ex) / rx).powi(2) + ((fy - ey) / ry).powi(2) <= 1.0;
        let px = if in_ellipse(cx - eye_dx, cy - 40.0, 18.0, 10.0) || in_ellipse(cx + eye_dx, cy - 40.0, 18.0, 10.0) {
            [30, 30, 40]
        } else if in_ellipse(cx, cy + 70.0, 50.0, 12.0) {
            [150, 50, 60]
        } else if in_ellipse(cx, cy, head_rx, head_ry) {
            [
                skin[0].saturating_sub(jitter / 2),
                skin[1].saturating_sub(jitter / 2),
                skin[2],
            ]
        } else {
            let shade = ((y * 80) / HEIGHT_PX) as u8;
            [
                bg[0].wrapping_add(shade).wrapping_add(jitter),
                bg[1].wrapping_add(jitter),
                bg[2].wrapping_sub(shade),
            ]
        };
        Rgb(px)
    });
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for a well-formed RGB buffer; an empty result would show up in tests.
    if JpegEncoder::new_with_quality(&mut out, 80).encode_image(&img).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_are_decodable_jpegs_of_realistic_size_and_differ_per_user() {
        let a = face_jpeg("u-0001/1");
        let b = face_jpeg("u-0002/1");
        assert_eq!(a, face_jpeg("u-0001/1"));
        assert_ne!(a, b);
        for jpeg in [&a, &b] {
            assert!((10_000..=40_000).contains(&jpeg.len()), "size {}", jpeg.len());
            let img = image::load_from_memory(jpeg).unwrap();
            assert_eq!((img.width(), img.height()), (WIDTH_PX, HEIGHT_PX));
        }
    }
}

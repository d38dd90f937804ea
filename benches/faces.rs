//! Times `faces::normalise` on a few representative inputs; prints ms/image and output size. Then the
//! fake cloud's door-ready faces (480×640 baseline JPEG, what `scripts/bench-rss` serves): CPU per user
//! with the keep-as-downloaded shortcut (`normalise`) and without it (`reencode`, the earlier path).
//!
//! Run: `cargo bench --bench faces` (or `--profile dev` to reuse the debug build on a busy machine).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use doorsync::domain::ImageLimits;
use doorsync::faces::{normalise, reencode};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage, RgbaImage};

const PROFILE: ImageLimits = ImageLimits {
    max_width_px: 480,
    max_height_px: 640,
    max_bytes: 40 * 1024,
    jpeg_quality: 85,
};
const ROUNDS: u32 = 3;
/// Fake-cloud faces timed per path.
const SIM_FACES: usize = 50;

fn photo_like(w: u32, h: u32, seed: u64, noise: i32) -> RgbImage {
    let mut state = seed | 1;
    RgbImage::from_fn(w, h, |x, y| {
        let mut jitter = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % (2 * noise as u64 + 1)) as i32 - noise
        };
        let (gx, gy) = ((x * 255 / w) as i32, (y * 255 / h) as i32);
        let c = |v: i32| v.clamp(0, 255) as u8;
        Rgb([c(gx + jitter()), c(gy + jitter()), c((gx + gy) / 2 + jitter())])
    })
}

fn main() {
    let phone = photo_like(4000, 3000, 1, 30);
    let mut phone_jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut phone_jpeg, 92)
        .encode_image(&phone)
        .unwrap();

    let portrait = photo_like(1080, 1440, 2, 15);
    let mut portrait_png = Vec::new();
    PngEncoder::new(&mut portrait_png)
        .write_image(portrait.as_raw(), 1080, 1440, ExtendedColorType::Rgb8)
        .unwrap();

    let cutout = RgbaImage::from_fn(800, 800, |x, y| {
        let p = portrait.get_pixel(x, y).0;
        image::Rgba([p[0], p[1], p[2], if (x + y) % 800 < 400 { 255 } else { 0 }])
    });
    let mut cutout_webp = Vec::new();
    WebPEncoder::new_lossless(&mut cutout_webp)
        .encode(cutout.as_raw(), 800, 800, ExtendedColorType::Rgba8)
        .unwrap();

    let ready = photo_like(480, 640, 3, 8);
    let mut ready_jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut ready_jpeg, 85)
        .encode_image(&ready)
        .unwrap();

    let cases = [
        ("phone photo 4000x3000 JPEG", phone_jpeg),
        ("portrait 1080x1440 PNG", portrait_png),
        ("cut-out 800x800 RGBA WebP", cutout_webp),
        ("already 480x640 JPEG", ready_jpeg),
    ];
    println!(
        "profile 480x640, {} bytes, quality {}",
        PROFILE.max_bytes, PROFILE.jpeg_quality
    );
    for (name, bytes) in &cases {
        let start = Instant::now();
        let mut last = None;
        for _ in 0..ROUNDS {
            last = Some(normalise(bytes, &PROFILE).unwrap());
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(ROUNDS);
        let face = last.unwrap();
        println!(
            "{name:<28} in {:>8} B  {ms:>8.1} ms/image  out {}x{} q{} {} B",
            bytes.len(),
            face.width_px,
            face.height_px,
            face.jpeg_quality,
            face.jpeg.len()
        );
    }

    let sim_faces: Vec<Vec<u8>> = (1..=SIM_FACES)
        .map(|i| doorsync::cloud::sim::face_jpeg(&format!("u{i:05}")))
        .collect();
    let sim_bytes: usize = sim_faces.iter().map(Vec::len).sum();
    for (name, f) in [
        ("normalise (keeps)", normalise as fn(&[u8], &ImageLimits) -> _),
        ("reencode (every face)", reencode),
    ] {
        let start = Instant::now();
        let mut kept = 0;
        for bytes in &sim_faces {
            kept += usize::from(f(bytes, &PROFILE).unwrap().kept_as_downloaded);
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / SIM_FACES as f64;
        println!(
            "fake-cloud faces, {name:<22} {SIM_FACES} faces, {} B mean: {ms:>7.2} ms/user, {kept} kept as downloaded",
            sim_bytes / SIM_FACES
        );
    }
}

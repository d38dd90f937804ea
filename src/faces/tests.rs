//! Byte-level tests of face normalisation; every input image is generated here, deterministically.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use proptest::prelude::*;

use super::*;

/// The generic-face-v1 profile.
pub(super) const PROFILE: ImageLimits = ImageLimits {
    max_width_px: 480,
    max_height_px: 640,
    max_bytes: 40 * 1024,
    jpeg_quality: 85,
};

/// A photo-like image: smooth gradients (skin, background) plus seeded sensor noise of `noise` amplitude.
pub(super) fn photo_like(w: u32, h: u32, seed: u64, noise: u8) -> RgbImage {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    RgbImage::from_fn(w, h, |x, y| {
        let gx = (x * 255 / w.max(1)) as i32;
        let gy = (y * 255 / h.max(1)) as i32;
        let n = i32::from(noise);
        let mut jitter = || {
            if n == 0 {
                0
            } else {
                (next() % (2 * n as u64 + 1)) as i32 - n
            }
        };
        let c = |v: i32| v.clamp(0, 255) as u8;
        Rgb([c(gx + jitter()), c(gy + jitter()), c((gx + gy) / 2 + jitter())])
    })
}

fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

pub(super) fn png_of(buf: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(buf, w, h, color).unwrap();
    out
}

fn webp_of(buf: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out).encode(buf, w, h, color).unwrap();
    out
}

fn decode_output(face: &NormalisedFace) -> RgbImage {
    let img = image::load_from_memory_with_format(&face.jpeg, ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (face.width_px, face.height_px));
    img.into_rgb8()
}

fn assert_profile_output(face: &NormalisedFace, limits: &ImageLimits) {
    assert!(face.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "output is not a JPEG");
    assert!(
        face.jpeg.len() <= limits.max_bytes as usize,
        "{} bytes",
        face.jpeg.len()
    );
    assert!(face.width_px <= limits.max_width_px && face.height_px <= limits.max_height_px);
    assert_eq!(face.face.len_bytes as usize, face.jpeg.len());
    let sha: [u8; 32] = Sha256::digest(&face.jpeg).into();
    assert_eq!(face.face.sha256, sha);
    // Baseline (SOF0) only, and no EXIF/XMP carried over.
    assert!(face.jpeg.windows(2).any(|w| w == [0xFF, 0xC0]), "no baseline SOF0");
    assert!(!face.jpeg.windows(2).any(|w| w == [0xFF, 0xC2]), "progressive output");
    assert!(!face.jpeg.windows(4).any(|w| w == b"Exif"), "EXIF not stripped");
    decode_output(face);
}

/// Inserts an APP1 EXIF segment carrying only an Orientation tag right after SOI.
pub(super) fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut digest = CRC32.digest();
    digest.update(kind);
    digest.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&digest.finalize().to_be_bytes());
}

/// A tiny PNG whose IHDR claims `w`×`h` RGBA8 pixels, with one small IDAT and IEND.
pub(super) fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid small JPEG whose SOF0 is patched to claim `w`×`h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = jpeg_of(&photo_like(16, 16, 1, 10), 80);
    let sof = jpeg.windows(2).position(|x| x == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[test]
fn jpeg_png_and_webp_each_decode_and_fit_the_profile() {
    let img = photo_like(960, 1280, 7, 12);
    let rgba: RgbaImage = DynamicImage::ImageRgb8(img.clone()).into_rgba8();
    let inputs = [
        ("jpeg", jpeg_of(&img, 92)),
        ("png", png_of(img.as_raw(), 960, 1280, ExtendedColorType::Rgb8)),
        ("webp", webp_of(rgba.as_raw(), 960, 1280, ExtendedColorType::Rgba8)),
    ];
    for (name, bytes) in inputs {
        let face = normalise(&bytes, &PROFILE).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((face.width_px, face.height_px), (480, 640), "{name}");
        assert_profile_output(&face, &PROFILE);
    }
}

#[test]
fn noisy_4000x3000_photo_fits_under_max_bytes() {
    let bytes = jpeg_of(&photo_like(4000, 3000, 42, 40), 90);
    let face = normalise(&bytes, &PROFILE).unwrap();
    // Landscape: width-bound, aspect ratio kept (4:3).
    assert_eq!((face.width_px, face.height_px), (480, 360));
    assert_profile_output(&face, &PROFILE);
}

#[test]
fn quality_is_lowered_until_the_image_fits() {
    let bytes = png_of(photo_like(480, 640, 3, 60).as_raw(), 480, 640, ExtendedColorType::Rgb8);
    let roomy = normalise(
        &bytes,
        &ImageLimits {
            max_bytes: 10_000_000,
            ..PROFILE
        },
    )
    .unwrap();
    assert_eq!(roomy.jpeg_quality, 85);
    let tight_limits = ImageLimits {
        max_bytes: roomy.face.len_bytes * 2 / 3,
        ..PROFILE
    };
    let tight = normalise(&bytes, &tight_limits).unwrap();
    assert!(tight.jpeg_quality < 85 && tight.jpeg_quality >= MIN_JPEG_QUALITY);
    assert_eq!(
        (tight.width_px, tight.height_px),
        (480, 640),
        "shrunk before using the quality range"
    );
    assert_profile_output(&tight, &tight_limits);
}

#[test]
fn image_shrinks_when_floor_quality_is_not_enough() {
    let bytes = png_of(photo_like(480, 640, 3, 90).as_raw(), 480, 640, ExtendedColorType::Rgb8);
    let limits = ImageLimits {
        max_bytes: 15_000,
        ..PROFILE
    };
    let face = normalise(&bytes, &limits).unwrap();
    assert_eq!(face.jpeg_quality, MIN_JPEG_QUALITY);
    assert!(face.width_px < 480 && face.height_px < 640);
    // Aspect ratio survives the shrink steps (3:4 within rounding).
    let ratio = f64::from(face.width_px) / f64::from(face.height_px);
    assert!((ratio - 0.75).abs() < 0.02, "{ratio}");
    assert_profile_output(&face, &limits);
}

#[test]
fn gives_up_with_too_large_when_nothing_fits() {
    let bytes = png_of(photo_like(480, 640, 3, 90).as_raw(), 480, 640, ExtendedColorType::Rgb8);
    let limits = ImageLimits {
        max_bytes: 300,
        ..PROFILE
    };
    match normalise(&bytes, &limits) {
        Err(FaceError::TooLarge {
            max_bytes: 300,
            smallest_bytes,
        }) => assert!(smallest_bytes > 300),
        other => panic!("{other:?}"),
    }
}

/// Doors expect 3-component (YCbCr) JPEG whatever came in: grey scans, 16-bit PNGs from editors.
#[test]
fn grey_and_16_bit_inputs_become_colour_jpeg() {
    let grey = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([(x * 4 + y) as u8]));
    let mut grey_jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut grey_jpeg, 90)
        .encode_image(&grey)
        .unwrap();
    let deep: Vec<u8> = (0..64 * 64 * 4)
        .flat_map(|i: u32| ((i * 37) as u16).to_be_bytes())
        .collect();
    let deep_png = png_of(&deep, 64, 64, ExtendedColorType::Rgba16);
    for (name, bytes) in [("grey jpeg", grey_jpeg), ("rgba16 png", deep_png)] {
        let face = normalise(&bytes, &PROFILE).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sof = face.jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(face.jpeg[sof + 9], 3, "{name}: component count");
        assert_profile_output(&face, &PROFILE);
    }
}

#[test]
fn small_images_are_never_upscaled() {
    let img = photo_like(100, 50, 5, 5);
    let face = normalise(&png_of(img.as_raw(), 100, 50, ExtendedColorType::Rgb8), &PROFILE).unwrap();
    assert_eq!((face.width_px, face.height_px), (100, 50));
}

/// Left half red, right half blue, 64×32: after orientation 6 (rotate 90° clockwise) the left edge
/// becomes the top, so the upright image is 32×64 with red on top.
#[test]
fn exif_orientation_6_arrives_upright() {
    let img = RgbImage::from_fn(64, 32, |x, _| if x < 32 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let plain = jpeg_of(&img, 95);
    let sideways = normalise(&plain, &PROFILE).unwrap();
    assert_eq!((sideways.width_px, sideways.height_px), (64, 32));

    let face = normalise(&with_exif_orientation(&plain, 6), &PROFILE).unwrap();
    assert_eq!((face.width_px, face.height_px), (32, 64));
    let out = decode_output(&face);
    let top = out.get_pixel(16, 8).0;
    let bottom = out.get_pixel(16, 56).0;
    assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom should be blue: {bottom:?}");
    assert!(!face.jpeg.windows(4).any(|w| w == b"Exif"));
}

#[test]
fn same_input_gives_byte_identical_output() {
    let bytes = jpeg_of(&photo_like(1024, 768, 11, 25), 90);
    let a = normalise(&bytes, &PROFILE).unwrap();
    let b = normalise(&bytes, &PROFILE).unwrap();
    assert_eq!(a, b);
}

/// Pins the content address of one generated image. If this changes (image crate upgrade, filter or
/// quality-ladder change), every stored face gets a new sha256 and is re-sent to every door once:
/// update the constant only on purpose and say so in the changelog.
#[test]
fn content_address_is_pinned() {
    let bytes = png_of(photo_like(600, 800, 99, 20).as_raw(), 600, 800, ExtendedColorType::Rgb8);
    let face = normalise(&bytes, &PROFILE).unwrap();
    assert_eq!(
        face.face.sha256_hex(),
        "444042dca91e990ff8bf0c24115d9186652bbebe27a02a75a73d275f8ae31e99"
    );
}

#[test]
fn transparency_is_flattened_onto_white() {
    // Fully transparent black pixels, with an opaque black square in the middle.
    let img = RgbaImage::from_fn(40, 40, |x, y| {
        if (15..25).contains(&x) && (15..25).contains(&y) {
            Rgba([0, 0, 0, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    for (name, bytes) in [
        ("png", png_of(img.as_raw(), 40, 40, ExtendedColorType::Rgba8)),
        ("webp", webp_of(img.as_raw(), 40, 40, ExtendedColorType::Rgba8)),
    ] {
        let out = decode_output(&normalise(&bytes, &PROFILE).unwrap());
        let corner = out.get_pixel(2, 2).0;
        let centre = out.get_pixel(20, 20).0;
        assert!(corner.iter().all(|&c| c > 245), "{name}: corner {corner:?}");
        assert!(centre.iter().all(|&c| c < 20), "{name}: centre {centre:?}");
    }
}

#[test]
fn flatten_blends_half_alpha() {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([0, 0, 0, 128])));
    assert_eq!(flatten_onto_white(img).get_pixel(0, 0).0, [127, 127, 127]);
}

#[test]
fn empty_input_is_rejected() {
    assert_eq!(normalise(&[], &PROFILE), Err(FaceError::Empty));
}

#[test]
fn unrecognised_bytes_are_undecodable() {
    let err = normalise(b"<html>404 not found</html>", &PROFILE).unwrap_err();
    assert!(matches!(err, FaceError::Undecodable { .. }), "{err:?}");
    assert!(err.to_string().contains("JPEG, PNG or WebP"));
}

#[test]
fn other_image_formats_are_unsupported() {
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let err = normalise(gif, &PROFILE).unwrap_err();
    assert_eq!(err, FaceError::UnsupportedFormat { format: "Gif".into() });
    assert!(err.to_string().contains("JPEG, PNG or WebP"));

    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    match normalise(heic, &PROFILE) {
        Err(FaceError::UnsupportedFormat { format }) => assert!(format.contains("heic"), "{format}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn png_claiming_60000x60000_is_refused_before_allocating() {
    let bomb = png_header_only(60_000, 60_000);
    assert!(bomb.len() < 100);
    let err = normalise(&bomb, &PROFILE).unwrap_err();
    assert!(matches!(err, FaceError::ExceedsDecodeLimits { .. }), "{err:?}");
}

#[test]
fn jpeg_claiming_60000x60000_is_refused_before_allocating() {
    let err = normalise(&jpeg_claiming(60_000, 60_000), &PROFILE).unwrap_err();
    assert!(matches!(err, FaceError::ExceedsDecodeLimits { .. }), "{err:?}");
}

#[test]
fn png_within_side_limit_but_over_pixel_budget_is_refused() {
    // 8000×8000 RGBA = 256 MB of pixels.
    let err = normalise(&png_header_only(8000, 8000), &PROFILE).unwrap_err();
    assert!(matches!(err, FaceError::ExceedsDecodeLimits { .. }), "{err:?}");
}

#[test]
fn zero_size_images_are_rejected() {
    for bytes in [png_header_only(0, 10), png_header_only(10, 0), jpeg_claiming(16, 0)] {
        let err = normalise(&bytes, &PROFILE).unwrap_err();
        assert_eq!(err, FaceError::ZeroSize);
    }
}

#[test]
fn truncated_files_are_rejected() {
    let img = photo_like(200, 200, 8, 30);
    let rgba = DynamicImage::ImageRgb8(img.clone()).into_rgba8();
    let inputs = [
        ("jpeg", jpeg_of(&img, 90)),
        ("png", png_of(img.as_raw(), 200, 200, ExtendedColorType::Rgb8)),
        ("webp", webp_of(rgba.as_raw(), 200, 200, ExtendedColorType::Rgba8)),
    ];
    for (name, bytes) in inputs {
        let cut = &bytes[..bytes.len() * 2 / 3];
        let err = normalise(cut, &PROFILE).unwrap_err();
        assert!(matches!(err, FaceError::Truncated { .. }), "{name}: {err:?}");
    }
}

#[test]
fn jpeg_completeness_check_skips_an_embedded_thumbnail() {
    let full = jpeg_of(&photo_like(64, 64, 2, 10), 90);
    // An APP1 whose payload contains FF D9 (like an EXIF thumbnail) must not count as the real EOI.
    let mut with_thumb = full[..2].to_vec();
    with_thumb.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD8, 0xFF, 0xD9]);
    with_thumb.extend_from_slice(&full[2..]);
    assert_eq!(check_jpeg_complete(&with_thumb), Ok(()));
    let cut = &with_thumb[..with_thumb.len() - 10];
    assert!(matches!(check_jpeg_complete(cut), Err(FaceError::Truncated { .. })));
}

#[test]
fn unusable_limits_are_rejected() {
    let bytes = jpeg_of(&photo_like(16, 16, 1, 1), 80);
    for limits in [
        ImageLimits {
            max_width_px: 0,
            ..PROFILE
        },
        ImageLimits {
            max_height_px: 0,
            ..PROFILE
        },
        ImageLimits {
            max_bytes: 0,
            ..PROFILE
        },
    ] {
        assert!(matches!(normalise(&bytes, &limits), Err(FaceError::BadLimits { .. })));
    }
}

#[test]
fn fit_keeps_aspect_ratio_and_never_upscales() {
    assert_eq!(fit_within(4000, 3000, 480, 640), (480, 360));
    assert_eq!(fit_within(3000, 4000, 480, 640), (480, 640));
    assert_eq!(fit_within(1000, 4000, 480, 640), (160, 640));
    assert_eq!(fit_within(100, 50, 480, 640), (100, 50));
    assert_eq!(fit_within(8192, 1, 480, 640), (480, 1));
    assert_eq!(fit_within(u32::MAX, u32::MAX, 480, 640), (480, 480));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = normalise(&bytes, &PROFILE);
    }

    /// Corrupting or cutting a real image gives an error or a valid face, never a panic.
    #[test]
    fn damaged_images_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let img = photo_like(24, 24, 4, 20);
        let rgba = DynamicImage::ImageRgb8(img.clone()).into_rgba8();
        let mut bytes = match which {
            0 => jpeg_of(&img, 80),
            1 => png_of(img.as_raw(), 24, 24, ExtendedColorType::Rgb8),
            _ => webp_of(rgba.as_raw(), 24, 24, ExtendedColorType::Rgba8),
        };
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(face) = normalise(&bytes, &PROFILE) {
            prop_assert!(face.jpeg.len() <= PROFILE.max_bytes as usize);
        }
    }
}

#[test]
fn a_download_that_already_fits_the_profile_is_kept_byte_for_byte() {
    let bytes = jpeg_of(&photo_like(480, 640, 21, 2), 80);
    assert!(bytes.len() <= PROFILE.max_bytes as usize, "{} bytes", bytes.len());
    let face = normalise(&bytes, &PROFILE).unwrap();
    assert!(face.kept_as_downloaded);
    assert_eq!(face.jpeg, bytes);
    assert_eq!((face.width_px, face.height_px), (480, 640));
    assert_profile_output(&face, &PROFILE);
}

#[test]
fn a_download_that_does_not_fit_is_re_encoded() {
    let small = photo_like(240, 320, 22, 8);
    let fitting = jpeg_of(&small, 85);
    let cases = [
        ("too wide", jpeg_of(&photo_like(481, 640, 22, 8), 85), PROFILE),
        // Metadata is never carried over, even an upright orientation.
        ("EXIF", with_exif_orientation(&fitting, 1), PROFILE),
        (
            "over the byte cap",
            fitting.clone(),
            ImageLimits {
                max_bytes: fitting.len() as u32 - 1,
                ..PROFILE
            },
        ),
    ];
    for (name, bytes, limits) in cases {
        let face = normalise(&bytes, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!face.kept_as_downloaded, "{name}");
        assert_ne!(face.jpeg, bytes, "{name}");
        assert_profile_output(&face, &limits);
    }
}

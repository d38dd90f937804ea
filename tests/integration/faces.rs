//! Face normalisation through the public API, as the store and the door pipeline use it.

use doorsync::domain::ImageLimits;
use doorsync::faces::{FaceError, normalise};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use sha2::{Digest, Sha256};

const GENERIC_FACE_V1: ImageLimits = ImageLimits {
    max_width_px: 480,
    max_height_px: 640,
    max_bytes: 40 * 1024,
    jpeg_quality: 85,
};

fn portrait_png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 23;
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (100 + n) as u8])
    });
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The store keys faces by `FaceRef`; it must be the sha256 of exactly the bytes sent to the door, and
/// a second download of the same photo must map to the same key (so nothing is re-sent).
#[test]
fn face_ref_addresses_the_jpeg_bytes_and_is_stable() {
    let bytes = portrait_png(900, 1200);
    let first = normalise(&bytes, &GENERIC_FACE_V1).unwrap();
    let again = normalise(&bytes.clone(), &GENERIC_FACE_V1).unwrap();
    let sha: [u8; 32] = Sha256::digest(&first.jpeg).into();
    assert_eq!(first.face.sha256, sha);
    assert_eq!(first.face.len_bytes as usize, first.jpeg.len());
    assert_eq!(first.face, again.face);
    assert_eq!((first.width_px, first.height_px), (480, 640));
}

/// An already normalised face fed back in (e.g. a door read-back) still meets the profile.
#[test]
fn normalised_face_renormalises_within_limits() {
    let first = normalise(&portrait_png(480, 640), &GENERIC_FACE_V1).unwrap();
    let second = normalise(&first.jpeg, &GENERIC_FACE_V1).unwrap();
    assert_eq!((second.width_px, second.height_px), (480, 640));
    assert!(second.jpeg.len() <= GENERIC_FACE_V1.max_bytes as usize);
}

/// `status` shows these messages to technicians: they must say what was wrong.
#[test]
fn rejection_messages_name_the_problem() {
    let cases: [(&[u8], &str); 3] = [
        (b"", "empty"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00", "JPEG, PNG or WebP"),
        (b"{\"code\":404}", "could not be decoded"),
    ];
    for (bytes, needle) in cases {
        let err: FaceError = normalise(bytes, &GENERIC_FACE_V1).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

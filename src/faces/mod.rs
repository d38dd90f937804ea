//! Face image normalisation: decode, orient, fit to a hardware profile, re-encode as JPEG under a byte cap.
//!
//! The output bytes are content-addressed (invariant 5), so [`normalise`] must be a pure function of
//! `(bytes, limits)`: no timestamps, no metadata carried over, no float kernels whose result depends on
//! the platform's libm. That is why the resize filter is Catmull-Rom (a cubic polynomial, identical bit
//! for bit on x86 and ARM) rather than Lanczos3 (which calls `sin`); Catmull-Rom is also about as sharp
//! as Lanczos3 on downscales of photos and cheaper on a door controller's CPU.

use std::io::Cursor;

use image::error::LimitErrorKind;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::{FaceRef, ImageLimits};

/// Largest width or height accepted from an input image, before decoding its pixels.
pub(crate) const MAX_INPUT_SIDE_PX: u32 = 8192;
/// Largest decoded pixel buffer accepted (a 4000×3000 RGB photo needs 36 MB).
pub(crate) const MAX_DECODE_ALLOC_BYTES: u64 = 128 * 1024 * 1024;
/// Lowest JPEG quality tried before the image is scaled down instead.
pub(crate) const MIN_JPEG_QUALITY: u8 = 30;
/// Quality is lowered by this much per attempt.
const QUALITY_STEP: u8 = 5;
/// Each scale-down step keeps this many hundredths of each side.
const SHRINK_PERCENT: u32 = 85;
/// Below this on the shorter side a face is useless to a recogniser, so we give up instead.
pub(crate) const MIN_OUTPUT_SIDE_PX: u32 = 32;

/// A face image ready for a door: baseline JPEG, RGB, no metadata, within the profile's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedFace {
    pub jpeg: Vec<u8>,
    /// sha256 and length of `jpeg`.
    pub face: FaceRef,
    pub width_px: u32,
    pub height_px: u32,
    /// The quality the JPEG was finally encoded at (0 when kept as downloaded).
    pub jpeg_quality: u8,
    /// The downloaded bytes already satisfied the profile and were kept as they were (`keep`).
    pub kept_as_downloaded: bool,
}

/// Why an image could not be normalised. Each names the one user's image that failed, never the pass.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FaceError {
    #[error("face image is empty (0 bytes)")]
    Empty,
    #[error("face image format {format} is not supported; send JPEG, PNG or WebP")]
    UnsupportedFormat { format: String },
    #[error("face image could not be decoded: {reason}")]
    Undecodable { reason: String },
    #[error("face image is truncated: {reason}")]
    Truncated { reason: String },
    #[error("face image has zero width or height")]
    ZeroSize,
    #[error(
        "face image is too large to decode safely ({reason}); limits are {MAX_INPUT_SIDE_PX}×{MAX_INPUT_SIDE_PX} px \
         and {MAX_DECODE_ALLOC_BYTES} bytes of pixels"
    )]
    ExceedsDecodeLimits { reason: String },
    #[error(
        "face image does not fit {max_bytes} bytes even at quality {MIN_JPEG_QUALITY} and \
         {MIN_OUTPUT_SIDE_PX} px (smallest attempt: {smallest_bytes} bytes)"
    )]
    TooLarge { max_bytes: u32, smallest_bytes: usize },
    #[error("image limits are unusable: {reason}")]
    BadLimits { reason: String },
    #[error("face image could not be encoded: {reason}")]
    Encode { reason: String },
}

/// Keeps a download that already is a plain baseline JPEG within the profile (see `keep`); otherwise
/// decodes a JPEG, PNG or WebP (format guessed from the bytes), applies its EXIF orientation,
/// flattens transparency onto white, fits it inside the profile's box without upscaling, and
/// re-encodes it as a baseline JPEG no bigger than `limits.max_bytes`.
///
/// Quality starts at `limits.jpeg_quality` and drops in steps of 5 down to [`MIN_JPEG_QUALITY`]; if
/// that still does not fit, the image shrinks by 15 % per step (at the floor quality, since a
/// recogniser gains more from pixels than from fewer JPEG artefacts) down to [`MIN_OUTPUT_SIDE_PX`].
pub fn normalise(bytes: &[u8], limits: &ImageLimits) -> Result<NormalisedFace, FaceError> {
    check_limits(limits)?;
    if let Some(face) = keep::as_is(bytes, limits) {
        return Ok(face);
    }
    reencode(bytes, limits)
}

/// [`normalise`] without the shortcut for downloads that already fit: always decodes, orients, fits
/// and re-encodes (`benches/faces.rs` compares the two).
pub fn reencode(bytes: &[u8], limits: &ImageLimits) -> Result<NormalisedFace, FaceError> {
    check_limits(limits)?;
    let source = decode_upright_rgb(bytes)?;
    let (fit_w, fit_h) = fit_within(
        source.width(),
        source.height(),
        limits.max_width_px,
        limits.max_height_px,
    );

    let start_quality = limits.jpeg_quality.clamp(1, 100);
    let floor_quality = start_quality.min(MIN_JPEG_QUALITY);
    let mut smallest_bytes = usize::MAX;

    let fitted = resized(&source, fit_w, fit_h);
    let mut quality = start_quality;
    loop {
        let jpeg = encode_jpeg(&fitted, quality)?;
        if fits(&jpeg, limits.max_bytes) {
            return Ok(finish(jpeg, fit_w, fit_h, quality));
        }
        smallest_bytes = smallest_bytes.min(jpeg.len());
        if quality == floor_quality {
            break;
        }
        quality = quality.saturating_sub(QUALITY_STEP).max(floor_quality);
    }

    let (mut w, mut h) = (fit_w, fit_h);
    loop {
        let (next_w, next_h) = shrink(w, h);
        if next_w.min(next_h) < MIN_OUTPUT_SIDE_PX || (next_w, next_h) == (w, h) {
            return Err(FaceError::TooLarge {
                max_bytes: limits.max_bytes,
                smallest_bytes,
            });
        }
        (w, h) = (next_w, next_h);
        // Always resample from the full-resolution source so repeated steps do not compound blur.
        let jpeg = encode_jpeg(&resized(&source, w, h), floor_quality)?;
        if fits(&jpeg, limits.max_bytes) {
            return Ok(finish(jpeg, w, h, floor_quality));
        }
        smallest_bytes = smallest_bytes.min(jpeg.len());
    }
}

fn check_limits(limits: &ImageLimits) -> Result<(), FaceError> {
    if limits.max_width_px == 0 || limits.max_height_px == 0 {
        return Err(FaceError::BadLimits {
            reason: format!("max size {}×{} px", limits.max_width_px, limits.max_height_px),
        });
    }
    if limits.max_bytes == 0 {
        return Err(FaceError::BadLimits {
            reason: "max_bytes is 0".into(),
        });
    }
    Ok(())
}

fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_INPUT_SIDE_PX);
    limits.max_image_height = Some(MAX_INPUT_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_ALLOC_BYTES);
    limits
}

/// Decodes under [`decode_limits`], rotates per EXIF, and flattens alpha onto white.
fn decode_upright_rgb(bytes: &[u8]) -> Result<RgbImage, FaceError> {
    if bytes.is_empty() {
        return Err(FaceError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| FaceError::Undecodable { reason: e.to_string() })?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        Some(other) => {
            return Err(FaceError::UnsupportedFormat {
                format: format!("{other:?}"),
            });
        }
        None => return Err(unrecognised(bytes)),
    };
    check_container(format, bytes)?;
    reader.limits(decode_limits());
    let mut decoder = reader.into_decoder().map_err(map_decode_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(FaceError::ZeroSize);
    }
    // `into_decoder` checks the side limits only; the pixel buffer is checked here, before it exists.
    let total_bytes = decoder.total_bytes();
    if total_bytes > MAX_DECODE_ALLOC_BYTES {
        return Err(FaceError::ExceedsDecodeLimits {
            reason: format!("{width}×{height} px needs {total_bytes} bytes"),
        });
    }
    // A malformed EXIF block must not cost the user their face; the photo is just left as stored.
    let orientation = decoder.orientation().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "ignoring unreadable EXIF orientation");
        image::metadata::Orientation::NoTransforms
    });
    let mut image = DynamicImage::from_decoder(decoder).map_err(map_decode_error)?;
    image.apply_orientation(orientation);
    Ok(flatten_onto_white(image))
}

fn unrecognised(bytes: &[u8]) -> FaceError {
    // Phones commonly produce HEIC; name it so a technician knows the fix is on the upload side.
    if let Some(brand) = bytes.get(4..12)
        && brand.starts_with(b"ftyp")
        && let Some(kind) = brand.get(4..8)
    {
        let kind = String::from_utf8_lossy(kind).into_owned();
        return FaceError::UnsupportedFormat {
            format: format!("ISO-BMFF ({kind}, e.g. HEIC/AVIF)"),
        };
    }
    FaceError::Undecodable {
        reason: "not a JPEG, PNG or WebP image (unrecognised signature)".into(),
    }
}

fn map_decode_error(e: ImageError) -> FaceError {
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => {
                FaceError::ExceedsDecodeLimits { reason: l.to_string() }
            }
            _ => FaceError::Undecodable { reason: l.to_string() },
        },
        // The container was already accepted, so this is an unsupported feature inside it (CMYK, 12-bit…).
        ImageError::Unsupported(u) => FaceError::Undecodable { reason: u.to_string() },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            FaceError::Truncated { reason: io.to_string() }
        }
        other => {
            let reason = other.to_string();
            if reason.to_ascii_lowercase().contains("eof") || reason.contains("end of") {
                FaceError::Truncated { reason }
            } else {
                FaceError::Undecodable { reason }
            }
        }
    }
}

/// Checks the decoders do not report precisely enough: a cut-off file, or a PNG of zero size.
fn check_container(format: ImageFormat, bytes: &[u8]) -> Result<(), FaceError> {
    match format {
        // zune-jpeg pads a cut-off scan with grey instead of failing, which would store half a face.
        ImageFormat::Jpeg => check_jpeg_complete(bytes),
        // The RIFF header states the file length; image-webp reports a short file as "corrupt".
        ImageFormat::WebP => match bytes.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(len) if u64::from(u32::from_le_bytes(len)) + 8 > bytes.len() as u64 => Err(FaceError::Truncated {
                reason: format!(
                    "WebP header says {} bytes, got {}",
                    u32::from_le_bytes(len) + 8,
                    bytes.len()
                ),
            }),
            _ => Ok(()),
        },
        // The png crate folds a zero IHDR width/height into a generic "invalid dimensions" error.
        ImageFormat::Png => match (bytes.get(12..16), bytes.get(16..20), bytes.get(20..24)) {
            (Some(b"IHDR"), Some([0, 0, 0, 0]), _) | (Some(b"IHDR"), _, Some([0, 0, 0, 0])) => Err(FaceError::ZeroSize),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Walks the JPEG marker segments to the end of the last scan and requires an EOI marker there;
/// also rejects a frame header of zero size, which the decoder reports only as a generic error.
/// Entropy-coded data escapes 0xFF as FF 00, so a marker found in a scan is a real marker.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), FaceError> {
    let truncated = |what: &str| FaceError::Truncated {
        reason: format!("JPEG ends {what}"),
    };
    let mut pos = 2; // after SOI, which format guessing already matched
    loop {
        // Fill bytes (repeated 0xFF) may precede a marker.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(0xFF), Some(&marker)) => {
                pos += 2;
                match marker {
                    0xD9 => return Ok(()),
                    0x01 | 0xD0..=0xD7 => continue, // stand-alone markers
                    _ => {}
                }
                let len = match (bytes.get(pos), bytes.get(pos + 1)) {
                    (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
                    _ => return Err(truncated("inside a marker header")),
                };
                if len < 2 {
                    return Err(FaceError::Undecodable {
                        reason: format!("JPEG segment 0xFF{marker:02X} has invalid length {len}"),
                    });
                }
                let is_frame_header = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_frame_header
                    && let (Some(height), Some(width)) = (bytes.get(pos + 3..pos + 5), bytes.get(pos + 5..pos + 7))
                    && (height == [0, 0] || width == [0, 0])
                {
                    return Err(FaceError::ZeroSize);
                }
                pos += len;
                if pos > bytes.len() {
                    return Err(truncated("inside a marker segment"));
                }
                if marker == 0xDA {
                    pos = skip_entropy_coded(bytes, pos).ok_or_else(|| truncated("inside image data (no EOI)"))?;
                }
            }
            (Some(_), Some(_)) => {
                return Err(FaceError::Undecodable {
                    reason: format!("JPEG has garbage where a marker should be at byte {pos}"),
                });
            }
            _ => return Err(truncated("before the end-of-image marker")),
        }
    }
}

/// Returns the offset of the first real marker (not stuffing, not a restart) after a scan.
fn skip_entropy_coded(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.windows(2)
        .position(|w| matches!(w, [0xFF, m] if *m != 0x00 && *m != 0xFF && !(0xD0..=0xD7).contains(m)))
        .map(|i| from + i)
}

/// Alpha is composited onto white: a transparent background must look like a plain wall, not a
/// black void that a recogniser would read as hair or shadow.
fn flatten_onto_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = u32::from(a);
        let blend = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// The largest size with the same aspect ratio inside `max_w`×`max_h`; never larger than the input.
/// Integer arithmetic only, so every machine computes the same size.
pub(crate) fn fit_within(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if w <= max_w && h <= max_h {
        return (w, h);
    }
    let (w64, h64, mw, mh) = (u64::from(w), u64::from(h), u64::from(max_w), u64::from(max_h));
    let scaled = |num: u64, mul: u64, den: u64| ((num * mul + den / 2) / den).clamp(1, u64::from(u32::MAX)) as u32;
    if w64 * mh >= h64 * mw {
        (max_w, scaled(h64, mw, w64).min(max_h))
    } else {
        (scaled(w64, mh, h64).min(max_w), max_h)
    }
}

fn shrink(w: u32, h: u32) -> (u32, u32) {
    let s = |v: u32| ((u64::from(v) * u64::from(SHRINK_PERCENT)) / 100) as u32;
    (s(w), s(h))
}

fn resized(source: &RgbImage, w: u32, h: u32) -> RgbImage {
    if source.dimensions() == (w, h) {
        return source.clone();
    }
    imageops::resize(source, w, h, FilterType::CatmullRom)
}

fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, FaceError> {
    let mut out = Vec::new();
    // image's encoder writes baseline DCT with only a JFIF APP0 header: no EXIF, no timestamps.
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| FaceError::Encode { reason: e.to_string() })?;
    Ok(out)
}

fn fits(jpeg: &[u8], max_bytes: u32) -> bool {
    u32::try_from(jpeg.len()).is_ok_and(|len| len <= max_bytes)
}

fn finish(jpeg: Vec<u8>, width_px: u32, height_px: u32, jpeg_quality: u8) -> NormalisedFace {
    face_of(jpeg, width_px, height_px, jpeg_quality, false)
}

/// The face for a JPEG already known to fit the limits (by `fits`, or by `keep`'s checks).
fn face_of(jpeg: Vec<u8>, width_px: u32, height_px: u32, jpeg_quality: u8, kept_as_downloaded: bool) -> NormalisedFace {
    let sha256: [u8; 32] = Sha256::digest(&jpeg).into();
    // The caller already proved the length is within the limit, so within a u32.
    let len_bytes = u32::try_from(jpeg.len()).unwrap_or(u32::MAX);
    tracing::debug!(
        width_px,
        height_px,
        jpeg_quality,
        len_bytes,
        kept_as_downloaded,
        "face normalised"
    );
    NormalisedFace {
        face: FaceRef { sha256, len_bytes },
        jpeg,
        width_px,
        height_px,
        jpeg_quality,
        kept_as_downloaded,
    }
}

mod door_fit;
mod keep;
#[cfg(test)]
mod tests;

pub(crate) use door_fit::fit_to_door;

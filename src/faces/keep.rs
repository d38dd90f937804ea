//! The shortcut of normalisation: a downloaded JPEG that already is what [`super::normalise`] would
//! produce — baseline, 8-bit, three components, no metadata (so nothing to turn upright), within the
//! profile's box and byte cap, complete and decodable — is kept byte for byte instead of being decoded,
//! resized and re-encoded, which costs most of a pass's CPU when the cloud already serves door-ready
//! faces.
//!
//! Keeping the bytes is still a pure function of `(bytes, limits)`, so content addressing holds.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use super::{NormalisedFace, check_jpeg_complete, decode_limits, face_of};
use crate::domain::ImageLimits;

/// What the header segments of a JPEG say, up to its first scan.
struct Header {
    width_px: u32,
    height_px: u32,
}

/// Reads the segments before the first scan and accepts only APP0 (JFIF), DQT, DHT, DRI and one
/// baseline 8-bit three-component frame. Anything else (progressive or arithmetic coding, EXIF, XMP,
/// ICC, Adobe colour transforms, comments, grey or CMYK) means the full path.
fn plain_baseline_header(bytes: &[u8]) -> Option<Header> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    let mut header = None;
    loop {
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos + 2)?, *bytes.get(pos + 3)?]));
        let segment = bytes.get(pos + 4..pos + 2 + len)?;
        match marker {
            0xE0 | 0xDB | 0xC4 | 0xDD => {}
            0xC0 if header.is_none() => {
                // precision, height, width, component count
                let (&precision, rest) = segment.split_first()?;
                let height = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
                let width = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
                let components = *rest.get(4)?;
                if precision != 8 || components != 3 || width == 0 || height == 0 {
                    return None;
                }
                header = Some(Header {
                    width_px: u32::from(width),
                    height_px: u32::from(height),
                });
            }
            0xDA => return header,
            _ => return None,
        }
        pos += 2 + len;
    }
}

/// The downloaded bytes as the normalised face, if they already satisfy `limits`.
pub(super) fn as_is(bytes: &[u8], limits: &ImageLimits) -> Option<NormalisedFace> {
    if u32::try_from(bytes.len()).map_or(true, |len| len > limits.max_bytes) {
        return None;
    }
    let header = plain_baseline_header(bytes)?;
    if header.width_px > limits.max_width_px || header.height_px > limits.max_height_px {
        return None;
    }
    check_jpeg_complete(bytes).ok()?;
    // Decodes cleanly: the door's decoder must not be the first to find out it does not.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
    reader.limits(decode_limits());
    let image = reader.decode().ok()?;
    if (image.width(), image.height()) != (header.width_px, header.height_px) {
        return None;
    }
    Some(face_of(bytes.to_vec(), header.width_px, header.height_px, 0, true))
}

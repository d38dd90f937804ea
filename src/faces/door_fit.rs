//! Fitting a stored face to one door's own limit: a door whose INFO declares a `max_face_jpeg_bytes`
//! below its profile's byte cap (PROTOCOL.md §6) gets the face re-normalised within the profile (same
//! box, lower JPEG quality, then smaller steps) until it fits that door.
//!
//! Pure like [`super::normalise`]: the result depends only on `(stored bytes, profile limits, door
//! limit)`, so the same face fitted again on the next pass has the same content address and the
//! planner sees nothing new to send.

use super::{FaceError, NormalisedFace, normalise};
use crate::domain::ImageLimits;

/// `stored` (a face already normalised for `profile`) within both `profile` and the door's
/// `door_max_bytes`. Kept byte for byte when it already fits; [`FaceError::TooLarge`] when no quality
/// or size step of the profile gets it under the door's limit (a limit of 0 fits no face at all).
pub(crate) fn fit_to_door(
    stored: &[u8],
    profile: &ImageLimits,
    door_max_bytes: u32,
) -> Result<NormalisedFace, FaceError> {
    if door_max_bytes == 0 {
        return Err(FaceError::TooLarge {
            max_bytes: 0,
            smallest_bytes: stored.len(),
        });
    }
    let limits = ImageLimits {
        max_bytes: profile.max_bytes.min(door_max_bytes),
        ..*profile
    };
    normalise(stored, &limits)
}

#[cfg(test)]
mod tests {
    use image::ExtendedColorType;

    use super::super::tests::{PROFILE, photo_like, png_of};
    use super::*;

    fn stored_face() -> NormalisedFace {
        let png = png_of(photo_like(480, 640, 7, 60).as_raw(), 480, 640, ExtendedColorType::Rgb8);
        normalise(&png, &PROFILE).unwrap()
    }

    #[test]
    fn a_face_within_the_door_limit_is_kept_byte_for_byte() {
        let stored = stored_face();
        let fitted = fit_to_door(&stored.jpeg, &PROFILE, stored.face.len_bytes).unwrap();
        assert_eq!(fitted.jpeg, stored.jpeg);
        assert_eq!(fitted.face, stored.face);
    }

    #[test]
    fn a_face_over_the_door_limit_is_re_encoded_within_the_profile_to_fit() {
        let stored = stored_face();
        let door_max = stored.face.len_bytes / 2;
        let fitted = fit_to_door(&stored.jpeg, &PROFILE, door_max).unwrap();
        assert!(
            fitted.face.len_bytes <= door_max,
            "{} > {door_max}",
            fitted.face.len_bytes
        );
        assert!(fitted.width_px <= PROFILE.max_width_px && fitted.height_px <= PROFILE.max_height_px);
        assert!(fitted.jpeg_quality < PROFILE.jpeg_quality);
        assert!(!fitted.kept_as_downloaded);
        let again = fit_to_door(&stored.jpeg, &PROFILE, door_max).unwrap();
        assert_eq!(
            again.face, fitted.face,
            "the same fit on every pass: nothing new to send"
        );
    }

    #[test]
    fn a_door_limit_above_the_profile_changes_nothing() {
        let stored = stored_face();
        let fitted = fit_to_door(&stored.jpeg, &PROFILE, u32::MAX).unwrap();
        assert_eq!(fitted.face, stored.face);
    }

    #[test]
    fn a_face_that_cannot_fit_the_door_fails_with_the_door_limit() {
        let stored = stored_face();
        match fit_to_door(&stored.jpeg, &PROFILE, 300) {
            Err(FaceError::TooLarge {
                max_bytes: 300,
                smallest_bytes,
            }) => assert!(smallest_bytes > 300),
            other => panic!("{other:?}"),
        }
        match fit_to_door(&stored.jpeg, &PROFILE, 0) {
            Err(e @ FaceError::TooLarge { max_bytes: 0, .. }) => {
                assert!(e.to_string().contains("does not fit 0 bytes"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}

//! Face image normalisation: decode, orient, fit to a hardware profile, re-encode as JPEG under a byte cap.

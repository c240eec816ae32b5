//! Changing the pixels: the EXIF orientation applied (orient) and the 3:4
//! crop resampled to 480x640 (resize, Lanczos-3).

pub(crate) mod extend;
pub(crate) mod orient;
pub(crate) mod recolour;
pub(crate) mod resize;

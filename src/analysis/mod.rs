//! Looking at the picture, in pipeline order: the border stage (frames from
//! scanning or export), the small working copy that the later stages read,
//! the backdrop, the subject (head, eye line, face width, how many people),
//! the crop that the composition rule chooses, and the portrait checks
//! (shoulders, lighting, sharpness). `colour` (sRGB, CIELAB, CIEDE2000) and
//! `rank` (order statistics) serve them all.

pub(crate) mod backdrop;
pub(crate) mod backdrop_model;
pub(crate) mod border;
pub(crate) mod colour;
pub(crate) mod compose;
pub(crate) mod extend;
pub(crate) mod face;
pub(crate) mod matte;
pub(crate) mod portrait;
pub(crate) mod rank;
pub(crate) mod subject;
pub(crate) mod working_copy;

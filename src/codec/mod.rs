//! Bytes to pixels and pixels to bytes: the decode stage (JPEG through
//! libjpeg-turbo with our own Huffman decoder and scaled IDCTs, PNG, EXIF),
//! the encode stage (baseline JPEG searched into the size window) and the
//! verify stage (the written bytes decoded again and judged by every hard
//! rule).

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod verify;

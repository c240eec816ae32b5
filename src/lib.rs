//! gradphoto: turns graduation portraits into photos the national degree
//! registry (CHSI) accepts, and says what happened to every one.
//!
//! One module per pipeline stage, each a plain function over plain data.

pub mod check;
pub mod decode;
pub mod discover;
pub mod encode;
pub mod image;
pub mod manifest;
pub mod orient;
pub mod output;
pub mod resize;
pub mod synth;
pub mod verify;

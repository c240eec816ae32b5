//! gradphoto: turns graduation portraits into photos the national degree
//! registry (CHSI) accepts, and says what happened to every one.
//!
//! One module per pipeline stage, each a plain function over plain data.

pub mod audit;
pub mod backdrop;
pub mod border;
pub mod check;
pub mod color;
pub mod compose;
pub mod decode;
pub mod digest;
pub mod discover;
pub mod encode;
pub mod entropy;
pub mod image;
pub mod manifest;
pub mod orient;
pub mod output;
pub mod photo;
pub mod pipeline;
pub mod portrait;
pub(crate) mod rank;
pub mod report;
pub mod resize;
pub mod roster;
pub mod score;
pub mod subject;
pub mod synth;
#[cfg(test)]
pub(crate) mod testimg;
pub mod verify;
pub mod work;

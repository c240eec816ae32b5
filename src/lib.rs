//! gradphoto: turns graduation portraits into photos the national degree
//! registry (CHSI) accepts, and says what happened to every one.
//!
//! One module per pipeline stage, each a plain function over plain data.

pub mod backdrop;
pub mod border;
pub mod check;
#[allow(dead_code)] // helpers for the stages that follow
pub mod color;
pub mod compose;
pub mod image;
pub mod portrait;
pub mod subject;
#[cfg(test)]
pub(crate) mod testimg;
#[allow(dead_code)]
pub(crate) mod work;

//! gradphoto: turns graduation portraits into photos the national degree
//! registry (CHSI) accepts, and says what happened to every one.
//!
//! One module per pipeline stage, each a plain function over plain data.

pub mod check;
pub mod encode;
pub mod image;
pub mod synth;
pub mod verify;

//! The test kit, compiled only for tests and with the `testkit` feature
//! (examples, benches and integration tests turn it on through the crate's
//! dev-dependency on itself): the synthetic portrait generator with its
//! ground truth (synth), the scorer that compares a manifest with that
//! truth (score), and painters that work on a finished picture for unit
//! tests: frames, a blur, a reference JPEG (testimg). Unit tests paint
//! their portraits with synth too (`Sitting` places subjects by hand).

pub mod score;
pub mod synth;
#[cfg(test)]
pub(crate) mod testimg;

//! The test kit, compiled only for tests and with the `testkit` feature
//! (examples, benches and integration tests turn it on through the crate's
//! dev-dependency on itself): the synthetic portrait generator with its
//! ground truth (synth), the scorer that compares a manifest with that
//! truth (score), and small painters for unit tests (testimg).

pub mod score;
pub mod synth;
#[cfg(test)]
pub(crate) mod testimg;

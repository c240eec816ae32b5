//! The verdict vocabulary shared by every check: hard rules on the file
//! (SPEC §1) and judgements of the picture (SPEC §2).

use serde::{Deserialize, Serialize};

/// How a single check came out. Ordered so that the worst verdict is the max.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

/// One named check with the value it measured, so a school can sort by it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable machine name, e.g. `backdrop_colour`, `crown_margin`.
    pub name: String,
    pub verdict: Verdict,
    /// The measured quantity, in the unit the reason names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A sentence a teaching secretary can act on.
    pub reason: String,
}

impl Check {
    pub fn new(
        name: &str,
        verdict: Verdict,
        value: Option<f64>,
        reason: impl Into<String>,
    ) -> Self {
        Check {
            name: name.to_owned(),
            verdict,
            value,
            reason: reason.into(),
        }
    }

    /// Grades `value` against two limits on the same side: at or below
    /// `pass_max` passes, at or below `warn_max` warns, beyond fails.
    pub fn graded(name: &str, value: f64, pass_max: f64, warn_max: f64, what: &str) -> Self {
        let verdict = if value <= pass_max {
            Verdict::Pass
        } else if value <= warn_max {
            Verdict::Warn
        } else {
            Verdict::Fail
        };
        let reason = format!("{what} {value:.1} (pass ≤ {pass_max}, warn ≤ {warn_max})");
        Check::new(name, verdict, Some(value), reason)
    }
}

/// The worst verdict among `checks`, `Pass` when there are none.
pub fn worst(checks: &[Check]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graded_picks_the_band() {
        assert_eq!(
            Check::graded("x", 1.0, 2.0, 5.0, "d").verdict,
            Verdict::Pass
        );
        assert_eq!(
            Check::graded("x", 3.0, 2.0, 5.0, "d").verdict,
            Verdict::Warn
        );
        assert_eq!(
            Check::graded("x", 6.0, 2.0, 5.0, "d").verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn worst_of_mixed() {
        let checks = vec![
            Check::new("a", Verdict::Pass, None, ""),
            Check::new("b", Verdict::Warn, None, ""),
        ];
        assert_eq!(worst(&checks), Verdict::Warn);
        assert_eq!(worst(&[]), Verdict::Pass);
    }
}

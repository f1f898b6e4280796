//! Aggregating rounds: medians, the spread of a ratio, and the verdict rule.
//!
//! A benchmark runs in several rounds; each round gives one criterion median
//! per implementation, and one ratio ours/peer per scenario from the two
//! medians of that round. The report shows the median over rounds and the
//! range of the per-round ratios, and names a winner only when every round
//! agrees on it: a ratio whose range crosses 1.0 is not a result.

use std::fmt;

/// The fewest rounds whose ratios may carry a verdict: with one or two the
/// range says little about how the next run will fall.
pub const MIN_ROUNDS_FOR_VERDICT: usize = 3;

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty or when a value is not a number.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// The median and the range (min–max) of a set of per-round values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds the values come from.
    pub rounds: usize,
}

impl Spread {
    /// The spread of `values`; `None` when empty or when a value is NaN.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let median = median(values)?;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            median,
            min,
            max,
            rounds: values.len(),
        })
    }
}

/// What the rounds say about ours against one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Every round has ours ahead; the factor is the median advantage.
    Better(f64),
    /// Every round has the peer ahead; the factor is the median disadvantage.
    Worse(f64),
    /// The range of the ratio includes 1.0: rounds disagree, or all tie.
    Unstable,
    /// Fewer than [`MIN_ROUNDS_FOR_VERDICT`] rounds have both values.
    TooFewRounds(usize),
}

impl Verdict {
    /// The rule: a winner only when the whole range of the per-round ratio
    /// ours/peer lies strictly on one side of 1.0. `higher_is_better` says
    /// which side is ours (rates: above; times and costs: below).
    pub fn of(ratio: &Spread, higher_is_better: bool) -> Verdict {
        if ratio.rounds < MIN_ROUNDS_FOR_VERDICT {
            return Verdict::TooFewRounds(ratio.rounds);
        }
        // How many times better ours is at a given ratio.
        let advantage = |r: f64| if higher_is_better { r } else { 1.0 / r };
        let (a, b) = (advantage(ratio.min), advantage(ratio.max));
        let (worst, best) = (a.min(b), a.max(b));
        let typical = advantage(ratio.median);
        if worst > 1.0 {
            Verdict::Better(typical)
        } else if best < 1.0 {
            Verdict::Worse(1.0 / typical)
        } else {
            Verdict::Unstable
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Better(x) => write!(f, "ours {x:.2}× better"),
            Verdict::Worse(x) => write!(f, "ours {x:.2}× worse"),
            Verdict::Unstable => f.write_str("tie/unstable"),
            Verdict::TooFewRounds(n) => write!(
                f,
                "n/a ({n} round{}, a verdict needs {MIN_ROUNDS_FOR_VERDICT})",
                if *n == 1 { "" } else { "s" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(values: &[f64]) -> Spread {
        Spread::of(values).expect("non-empty")
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN, 2.0]), None);
    }

    #[test]
    fn spread_is_min_and_max_around_the_median() {
        let s = spread(&[0.9, 0.7, 1.2]);
        assert_eq!((s.median, s.min, s.max, s.rounds), (0.9, 0.7, 1.2, 3));
    }

    #[test]
    fn verdict_only_when_the_whole_range_is_on_one_side() {
        // Times: ratio below 1 in every round means ours is faster.
        assert_eq!(
            Verdict::of(&spread(&[0.5, 0.4, 0.8]), false),
            Verdict::Better(2.0)
        );
        assert_eq!(
            Verdict::of(&spread(&[2.0, 1.5, 4.0]), false),
            Verdict::Worse(2.0)
        );
        // One round the other way: the median says "faster", the rule does not.
        assert_eq!(
            Verdict::of(&spread(&[0.5, 0.4, 1.1]), false),
            Verdict::Unstable
        );
        // Touching 1.0 is not "on one side".
        assert_eq!(
            Verdict::of(&spread(&[0.9, 1.0, 0.8]), false),
            Verdict::Unstable
        );
    }

    #[test]
    fn verdict_for_rates_reads_the_ratio_the_other_way() {
        assert_eq!(
            Verdict::of(&spread(&[2.0, 1.5, 4.0]), true),
            Verdict::Better(2.0)
        );
        assert_eq!(
            Verdict::of(&spread(&[0.5, 0.25, 0.8]), true),
            Verdict::Worse(2.0)
        );
    }

    #[test]
    fn too_few_rounds_give_no_verdict() {
        assert_eq!(
            Verdict::of(&spread(&[0.1, 0.2]), false),
            Verdict::TooFewRounds(2)
        );
        assert_eq!(
            Verdict::TooFewRounds(1).to_string(),
            "n/a (1 round, a verdict needs 3)"
        );
    }

    #[test]
    fn verdict_text() {
        assert_eq!(Verdict::Better(1.191).to_string(), "ours 1.19× better");
        assert_eq!(Verdict::Worse(3.95).to_string(), "ours 3.95× worse");
        assert_eq!(Verdict::Unstable.to_string(), "tie/unstable");
    }
}

//! Queue and processing times of the last requests, for percentiles. Memory
//! is bounded (a ring of the last `WINDOW`), recording is O(1); the sort
//! happens when status is asked for.

use std::collections::VecDeque;
use std::time::Duration;

/// Completed requests the percentiles cover.
pub const WINDOW: usize = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Default)]
pub(super) struct LatencyWindow {
    queue_ms: VecDeque<f64>,
    processing_ms: VecDeque<f64>,
}

fn push(ring: &mut VecDeque<f64>, value: f64) {
    if ring.len() == WINDOW {
        ring.pop_front();
    }
    ring.push_back(value);
}

/// The nearest-rank percentile: the smallest value with at least p% of the
/// values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percentiles(ring: &VecDeque<f64>) -> Percentiles {
    let mut sorted: Vec<f64> = ring.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    Percentiles {
        p50: percentile(&sorted, 50.0),
        p95: percentile(&sorted, 95.0),
        p99: percentile(&sorted, 99.0),
    }
}

impl LatencyWindow {
    pub fn record(&mut self, queue_time: Duration, processing_time: Duration) {
        push(&mut self.queue_ms, queue_time.as_secs_f64() * 1000.0);
        push(
            &mut self.processing_ms,
            processing_time.as_secs_f64() * 1000.0,
        );
    }

    pub fn queue(&self) -> Percentiles {
        percentiles(&self.queue_ms)
    }

    pub fn processing(&self) -> Percentiles {
        percentiles(&self.processing_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 95.0), 95.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
    }

    #[test]
    fn the_window_keeps_the_last_thousand() {
        let mut w = LatencyWindow::default();
        for i in 0..1500u64 {
            w.record(Duration::from_millis(i), Duration::from_millis(1));
        }
        // 500..=1499 remain: the median is 999.
        assert_eq!(w.queue().p50, 999.0);
        assert_eq!(
            w.processing(),
            Percentiles {
                p50: 1.0,
                p95: 1.0,
                p99: 1.0
            }
        );
    }
}

//! A request's progress and segments on their way to the caller: in order,
//! each once, progress never falling back, and all of them (100 % and every
//! segment of the result) before the request settles, whichever backend ran
//! it and however often it started over.

use crate::transcript::{Segment, Transcript};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Percent done, 0 to 100.
    Progress(u8),
    Segment(Segment),
}

pub type ReportSink = Arc<dyn Fn(Report) + Send + Sync>;

#[derive(Default)]
struct Sent {
    percent: Option<u8>,
    segments: usize,
}

pub struct Observer {
    sink: ReportSink,
    sent: Mutex<Sent>,
}

impl Observer {
    pub fn new(sink: ReportSink) -> Self {
        Observer {
            sink,
            sent: Mutex::default(),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Passes on a percentage higher than any before it.
    pub fn progress(&self, percent: u8) {
        let percent = percent.min(100);
        let mut sent = self.sent();
        if sent.percent.is_some_and(|p| p >= percent) {
            return;
        }
        sent.percent = Some(percent);
        (self.sink)(Report::Progress(percent));
    }

    /// Passes on the segment at `index` of the current attempt if it is the
    /// next one the caller has not had (a retried request repeats earlier ones).
    pub fn segment(&self, index: usize, segment: Segment) {
        let mut sent = self.sent();
        if index != sent.segments {
            return;
        }
        sent.segments += 1;
        (self.sink)(Report::Segment(segment));
    }

    /// Before the result goes out: the segments not yet passed on, then 100 %.
    pub fn finish(&self, transcript: &Transcript) {
        let from = self.sent().segments;
        for (i, segment) in transcript.segments.iter().enumerate().skip(from) {
            self.segment(i, segment.clone());
        }
        self.progress(100);
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Observer, Arc<Mutex<Vec<Report>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Observer::new(Arc::new(move |r| s.lock().unwrap().push(r))),
            seen,
        )
    }

    fn seg(text: &str) -> Segment {
        Segment {
            start_ms: 0,
            end_ms: 1,
            text: text.into(),
            raw: format!(" {text}"),
        }
    }

    #[test]
    fn progress_only_rises_and_finish_completes_what_is_missing() {
        let (o, seen) = recorder();
        o.progress(10);
        o.progress(5);
        o.progress(10);
        o.segment(0, seg("a"));
        // A second attempt starts over: its first segment is not repeated.
        o.segment(0, seg("a"));
        o.segment(2, seg("c"));
        o.finish(&Transcript {
            text: "a b c".into(),
            segments: vec![seg("a"), seg("b"), seg("c")],
            language: "en".into(),
        });
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Report::Progress(10),
                Report::Segment(seg("a")),
                Report::Segment(seg("b")),
                Report::Segment(seg("c")),
                Report::Progress(100),
            ]
        );
    }
}

//! How many whisper threads a request gets: a fixed count, or a budget that
//! shares the cores out among the running requests.

/// How many threads a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The caller chose, or the program fixes its threads when it starts.
    Fixed(usize),
    /// Per request: its share of the cores that running requests leave
    /// free (at least one), so a lone request gets all of them.
    Budget { cores: usize },
}

impl Threads {
    pub fn is_budget(self) -> bool {
        matches!(self, Threads::Budget { .. })
    }

    /// Threads for a request that starts while `in_use` threads run and
    /// `starting` requests (itself included) start at the same moment: the
    /// free cores are split between those, so that a burst of requests does
    /// not hand them all to the first and oversubscribe the cores with the
    /// rest (ggml's threads wait for each other at every graph node, so a
    /// multi-threaded decode sharing cores slows down far more than its share).
    pub fn for_request(self, in_use: usize, starting: usize) -> usize {
        match self {
            Threads::Fixed(n) => n,
            Threads::Budget { cores } => (cores.saturating_sub(in_use) / starting.max(1)).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_request_gets_every_core_and_later_ones_what_is_left() {
        let budget = Threads::Budget { cores: 8 };
        assert_eq!(budget.for_request(0, 1), 8);
        assert_eq!(budget.for_request(6, 1), 2);
        assert_eq!(budget.for_request(8, 1), 1, "never fewer than one");
        assert_eq!(budget.for_request(20, 1), 1);
        assert_eq!(Threads::Fixed(3).for_request(7, 1), 3);
    }

    #[test]
    fn requests_starting_together_split_the_free_cores() {
        let budget = Threads::Budget { cores: 8 };
        assert_eq!(budget.for_request(0, 3), 2, "8 cores for 3: 2 each");
        assert_eq!(budget.for_request(2, 2), 3, "6 left for 2: 3 each");
        assert_eq!(budget.for_request(5, 1), 3, "the last takes what is left");
        let two = Threads::Budget { cores: 2 };
        assert_eq!(two.for_request(0, 3), 1, "a burst on 2 cores: 1 each");
        assert_eq!(two.for_request(0, 0), 2, "0 starting counts as 1");
        assert_eq!(Threads::Fixed(4).for_request(0, 3), 4);
    }
}

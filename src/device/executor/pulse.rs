//! Deadline queue of pending pulse restores (one per output line).

use std::time::Instant;

use super::super::config::Level;

/// A restore waiting for its deadline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    /// Index of the output device in the executor.
    pub output: usize,
    /// When to restore.
    pub deadline: Instant,
    /// The level to restore (the line's level before the pulse).
    pub restore: Level,
    /// 1-based index of the rule that started the pulse.
    pub rule_index: usize,
    /// Failed restore attempts so far.
    pub attempts: u32,
}

/// At most one pending restore per output line; a few lines at most, so a Vec suffices.
#[derive(Debug, Default)]
pub(crate) struct PulseQueue {
    pending: Vec<Pending>,
}

impl PulseQueue {
    /// Adds a restore, replacing any pending one for the same line.
    pub fn schedule(&mut self, pending: Pending) {
        self.cancel(pending.output);
        self.pending.push(pending);
    }

    /// The pending restore of a line, if any.
    pub fn get(&self, output: usize) -> Option<&Pending> {
        self.pending.iter().find(|p| p.output == output)
    }

    /// Removes the pending restore of a line.
    pub fn cancel(&mut self, output: usize) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.output == output)?;
        Some(self.pending.swap_remove(i))
    }

    /// Removes and returns the earliest restore whose deadline is `<= now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Pending> {
        let i = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.deadline <= now)
            .min_by_key(|(_, p)| p.deadline)
            .map(|(i, _)| i)?;
        Some(self.pending.swap_remove(i))
    }

    /// Removes every pending restore, earliest first.
    pub fn drain_all(&mut self) -> Vec<Pending> {
        let mut all = std::mem::take(&mut self.pending);
        all.sort_by_key(|p| p.deadline);
        all
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pending(output: usize, at: Instant, restore: Level) -> Pending {
        Pending {
            output,
            deadline: at,
            restore,
            rule_index: 1,
            attempts: 0,
        }
    }

    #[test]
    fn pops_only_due_entries_in_deadline_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = PulseQueue::default();
        q.schedule(pending(0, t0 + ms(30), Level::Low));
        q.schedule(pending(1, t0 + ms(10), Level::High));
        assert_eq!(q.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0 + ms(9)), None);
        assert_eq!(q.pop_due(t0 + ms(40)).map(|p| p.output), Some(1));
        assert_eq!(q.pop_due(t0 + ms(40)).map(|p| p.output), Some(0));
        assert_eq!(q.pop_due(t0 + ms(40)), None);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn rescheduling_a_line_replaces_its_entry() {
        let t0 = Instant::now();
        let mut q = PulseQueue::default();
        q.schedule(pending(0, t0, Level::Low));
        q.schedule(pending(0, t0 + Duration::from_millis(5), Level::High));
        assert_eq!(
            q.drain_all(),
            vec![pending(0, t0 + Duration::from_millis(5), Level::High)]
        );
    }
}

//! The durability barrier of one pool.
//!
//! A pool numbers the batches it hands to the store as it submits them. An answer goes
//! out only once every batch the pool submitted before it is durable — also an answer
//! that changed nothing itself (an idempotent assignment, a view, a heartbeat), since
//! it may show what an earlier, not yet durable, operation did. The store completes one
//! pool's batches in submission order, so "durable up to n" is one number.
//!
//! Answers waiting past the write deadline are taken back by the pool (a stalled disk
//! must not hold callers, nor their seats, without limit): see [`Ledger::time_out`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::SessionId;

/// Called with the outcome: `Ok` once durable, or why not.
pub(crate) type Answer = Box<dyn FnOnce(Result<()>) + Send>;

/// An answer waiting for batch `seq` to be durable.
pub(crate) struct Waiter {
    seq: u64,
    since: Timestamp,
    answer: Answer,
    /// A login whose session must be given back if the wait times out.
    pub(crate) withdraw: Option<SessionId>,
}

impl Waiter {
    /// Gives the waiter its outcome.
    pub(crate) fn answer(self, outcome: Result<()>) {
        (self.answer)(outcome)
    }
}

#[derive(Default)]
struct State {
    submitted: u64,
    /// Submitted batches not yet complete, with when they were submitted; oldest first.
    pending: VecDeque<(u64, Timestamp)>,
    waiters: VecDeque<Waiter>,
    /// Work to run once a batch is durable, whatever happened to its waiters.
    hooks: VecDeque<(u64, Answer)>,
    /// The first write error: every later outcome is that error.
    failed: Option<Error>,
}

/// One pool's submitted and durable batches, and who waits for them.
pub(crate) struct Ledger {
    state: Mutex<State>,
    deadline: Duration,
    /// Milliseconds since the epoch when the oldest pending batch passes the deadline
    /// (`u64::MAX`: nothing pending), for the timer and health checks to read.
    overdue_at: AtomicU64,
}

impl Ledger {
    pub(crate) fn new(deadline: Duration) -> Ledger {
        Ledger {
            state: Mutex::default(),
            deadline,
            overdue_at: AtomicU64::new(u64::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a batch about to be handed to the store.
    pub(crate) fn submit(&self, now: Timestamp) -> u64 {
        let mut state = self.lock();
        state.submitted += 1;
        let seq = state.submitted;
        state.pending.push_back((seq, now));
        if state.pending.len() == 1 {
            self.publish(&state);
        }
        seq
    }

    /// The store's outcome for batch `seq` (and so for every batch before it).
    pub(crate) fn complete(&self, seq: u64, outcome: Result<()>) {
        let mut ready = Vec::new();
        let mut hooks = Vec::new();
        let result = {
            let mut state = self.lock();
            if let (Err(error), None) = (&outcome, &state.failed) {
                state.failed = Some(error.clone());
            }
            debug_assert!(
                state.pending.front().is_none_or(|&(s, _)| s == seq),
                "batches complete in the order they were submitted"
            );
            while state.pending.front().is_some_and(|&(s, _)| s <= seq) {
                state.pending.pop_front();
            }
            while state.waiters.front().is_some_and(|w| w.seq <= seq) {
                ready.extend(state.waiters.pop_front());
            }
            while state.hooks.front().is_some_and(|(s, _)| *s <= seq) {
                hooks.extend(state.hooks.pop_front().map(|(_, hook)| hook));
            }
            self.publish(&state);
            match &state.failed {
                Some(error) => Err(error.clone()),
                None => Ok(()),
            }
        };
        // Hooks first: what they finish (a deleted tenant's name freed) is done by the
        // time anyone hears the answer.
        for hook in hooks {
            hook(result.clone());
        }
        for waiter in ready {
            waiter.answer(result.clone());
        }
    }

    /// Answers once everything submitted so far is durable: at once if it already is.
    pub(crate) fn after(&self, now: Timestamp, answer: Answer, withdraw: Option<SessionId>) {
        let mut state = self.lock();
        if let Some(error) = &state.failed {
            let error = error.clone();
            drop(state);
            return answer(Err(error));
        }
        if state.pending.is_empty() {
            drop(state);
            return answer(Ok(()));
        }
        let seq = state.submitted;
        state.waiters.push_back(Waiter {
            seq,
            since: now,
            answer,
            withdraw,
        });
    }

    /// Runs `hook` once everything submitted so far is durable (or has failed). Unlike
    /// an answer it does not time out.
    pub(crate) fn on_durable(&self, hook: Answer) {
        let mut state = self.lock();
        if state.pending.is_empty() {
            let outcome = state.failed.clone().map_or(Ok(()), Err);
            drop(state);
            return hook(outcome);
        }
        let seq = state.submitted;
        state.hooks.push_back((seq, hook));
    }

    /// Takes back every answer that has waited the whole deadline at `now`, oldest
    /// first. The caller answers them and gives back their logins' seats.
    pub(crate) fn time_out(&self, now: Timestamp) -> Vec<Waiter> {
        let mut state = self.lock();
        let mut late = Vec::new();
        while state
            .waiters
            .front()
            .is_some_and(|w| w.since + self.deadline <= now)
        {
            late.extend(state.waiters.pop_front());
        }
        late
    }

    /// Whether a batch has been pending for the whole deadline at `now`.
    pub(crate) fn is_overdue(&self, now: Timestamp) -> bool {
        self.overdue_at.load(Ordering::Relaxed) <= now.as_millis()
    }

    fn publish(&self, state: &State) {
        let at = state
            .pending
            .front()
            .map_or(u64::MAX, |&(_, since)| (since + self.deadline).as_millis());
        self.overdue_at.store(at, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn recorder() -> (Arc<Mutex<Vec<Result<()>>>>, impl Fn() -> Answer) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let make = {
            let seen = seen.clone();
            move || -> Answer {
                let seen = seen.clone();
                Box::new(move |outcome| seen.lock().unwrap().push(outcome))
            }
        };
        (seen, make)
    }

    #[test]
    fn an_answer_waits_for_every_batch_submitted_before_it() {
        let ledger = Ledger::new(Duration::from_secs(5));
        let (seen, answer) = recorder();
        ledger.after(T0, answer(), None);
        assert_eq!(seen.lock().unwrap().len(), 1, "nothing pending: at once");

        let first = ledger.submit(T0);
        let second = ledger.submit(T0);
        ledger.after(T0, answer(), None);
        ledger.complete(first, Ok(()));
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "the second batch is not durable"
        );
        ledger.complete(second, Ok(()));
        assert_eq!(*seen.lock().unwrap(), vec![Ok(()), Ok(())]);
    }

    #[test]
    fn after_a_failed_batch_every_outcome_is_the_failure() {
        let ledger = Ledger::new(Duration::from_secs(5));
        let (seen, answer) = recorder();
        let first = ledger.submit(T0);
        ledger.after(T0, answer(), None);
        ledger.complete(first, Err(Error::Internal("disk".into())));
        let second = ledger.submit(T0);
        ledger.after(T0, answer(), None);
        ledger.complete(second, Ok(()));
        ledger.after(T0, answer(), None);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|o| o.is_err()), "{seen:?}");
    }

    #[test]
    fn answers_past_the_deadline_are_taken_back_and_the_ledger_says_it_is_overdue() {
        let ledger = Ledger::new(Duration::from_secs(5));
        let (seen, answer) = recorder();
        let seq = ledger.submit(T0);
        ledger.after(T0, answer(), Some(SessionId::from_u64(7)));
        ledger.after(T0 + Duration::from_secs(2), answer(), None);
        assert!(!ledger.is_overdue(T0 + Duration::from_millis(4_999)));
        assert!(ledger
            .time_out(T0 + Duration::from_millis(4_999))
            .is_empty());
        assert!(ledger.is_overdue(T0 + Duration::from_secs(5)));
        let late = ledger.time_out(T0 + Duration::from_secs(5));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].withdraw, Some(SessionId::from_u64(7)));
        // The stalled write completes at last: only the waiter still waiting hears of it.
        ledger.complete(seq, Ok(()));
        assert_eq!(*seen.lock().unwrap(), vec![Ok(())]);
        assert!(!ledger.is_overdue(T0 + Duration::from_secs(3600)));
    }

    #[test]
    fn hooks_run_once_durable_and_never_time_out() {
        let ledger = Ledger::new(Duration::from_secs(1));
        let (seen, answer) = recorder();
        let seq = ledger.submit(T0);
        ledger.on_durable(answer());
        assert!(ledger.time_out(T0 + Duration::from_secs(60)).is_empty());
        assert!(seen.lock().unwrap().is_empty());
        ledger.complete(seq, Ok(()));
        assert_eq!(*seen.lock().unwrap(), vec![Ok(())]);
    }
}

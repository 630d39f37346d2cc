//! The reload grace of SPEC §9: a seat given back by a release stays its user's for a
//! while, so that the page reload that released it finds it again even at the limit.
//! Each such seat counts as held until its user takes it back or the grace lapses.

use std::collections::{BTreeMap, HashMap};

use smallvec::SmallVec;

use crate::clock::Timestamp;
use crate::ids::UserId;

/// The seats kept for their users, by user and by the moment each lapses.
#[derive(Debug, Default)]
pub(super) struct Graces {
    /// When each of a user's kept seats lapses, oldest first.
    by_user: HashMap<UserId, SmallVec<[Timestamp; 1]>>,
    /// How many seats lapse at each moment, per user: what is due is at the front.
    order: BTreeMap<(Timestamp, UserId), u32>,
    /// All seats kept.
    held: u32,
}

impl Graces {
    /// Seats kept now.
    pub(super) fn held(&self) -> u32 {
        self.held
    }

    /// Keeps a seat for `user` until `until`.
    pub(super) fn keep(&mut self, user: &UserId, until: Timestamp) {
        self.by_user.entry(user.clone()).or_default().push(until);
        *self.order.entry((until, user.clone())).or_default() += 1;
        self.held += 1;
    }

    /// Whether a seat is kept for `user`.
    pub(super) fn keeps(&self, user: &UserId) -> bool {
        self.by_user.contains_key(user)
    }

    /// Each user with seats kept, and how many.
    pub(super) fn by_user(&self) -> impl Iterator<Item = (&UserId, u32)> {
        self.by_user
            .iter()
            .map(|(user, untils)| (user, untils.len() as u32))
    }

    /// How many seats are kept for `user`.
    pub(super) fn kept(&self, user: &UserId) -> u32 {
        self.by_user
            .get(user)
            .map_or(0, |untils| untils.len() as u32)
    }

    /// Gives `user` back the kept seat that would lapse first; whether there was one.
    pub(super) fn take(&mut self, user: &UserId) -> bool {
        let Some(untils) = self.by_user.get_mut(user) else {
            return false;
        };
        let until = untils.remove(0);
        if untils.is_empty() {
            self.by_user.remove(user);
        }
        self.forget(until, user);
        true
    }

    /// Lets the first seat whose grace has run out by `now` go: whose it was.
    pub(super) fn lapse_one(&mut self, now: Timestamp) -> Option<UserId> {
        let (&(until, ref user), _) = self.order.first_key_value()?;
        if until > now {
            return None;
        }
        let user = user.clone();
        // This very seat: under a grace shortened meanwhile, a seat kept earlier may
        // lapse later.
        if let Some(untils) = self.by_user.get_mut(&user) {
            if let Some(at) = untils.iter().position(|&u| u == until) {
                untils.remove(at);
            }
            if untils.is_empty() {
                self.by_user.remove(&user);
            }
        }
        self.forget(until, &user);
        Some(user)
    }

    /// When the next kept seat lapses.
    pub(super) fn next_lapse(&self) -> Option<Timestamp> {
        self.order.first_key_value().map(|(&(until, _), _)| until)
    }

    /// Lets every seat kept for `user` go (their account is removed).
    pub(super) fn drop_user(&mut self, user: &UserId) {
        while self.take(user) {}
    }

    /// Lets every kept seat go (the licence no longer keeps them).
    pub(super) fn clear(&mut self) {
        *self = Graces::default();
    }

    fn forget(&mut self, until: Timestamp, user: &UserId) {
        let key = (until, user.clone());
        if let Some(count) = self.order.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.order.remove(&key);
            }
        }
        self.held -= 1;
    }
}

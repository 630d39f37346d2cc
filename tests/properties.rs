//! Random sequences of operations on the pool core, checked after every step against a
//! plain reference model of SPEC §1 and against the invariants that must hold whatever
//! happens: never over-admit, one seat per user, nothing idle survives, no unassigned
//! user gets in under the named model, the account limit holds, every admission's
//! fence passes all before it (restarts included, SPEC §8), and the pool's indexes
//! (sessions per user, by deadline, by login time) stay exact. Of the seat policies
//! (SPEC §9): no seat displaced before its minimum hold, and a login that takes a seat
//! leaves its groups within their caps and the free seats enough for every
//! reservation not yet filled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use usher::pool::{PoolState, Retention, UserView};
use usher::{
    EndReason, Error, GroupId, Licence, LicenceModel, OnLimit, SeatPer, SessionId, SessionToken,
    TenantId, Timestamp, UserId,
};

#[path = "support/licences.rs"]
mod licences;

use licences::{grouped_licence, licence_with_policies};

const USERS: [&str; 5] = ["ann", "bob", "carol", "dave", "erin"];
/// The groups a user may be put in (see `licences::GROUPS`).
const GROUPS: [&str; 2] = licences::GROUPS;
const T0: Timestamp = Timestamp::from_millis(1_768_435_200_000);
const REMEMBERED: Duration = Duration::from_secs(3600);
const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
enum Op {
    Login {
        user: usize,
        expire_first: bool,
    },
    Heartbeat(Index),
    HeartbeatWithWrongSecret(Index),
    Release(Index),
    Logout(Index),
    Revoke(Index),
    LogoutUser(usize),
    PutUser(usize),
    /// The user's groups become those of the mask's bits.
    PutUserInGroups(usize, u8),
    RemoveUser(usize),
    SetLicence(Licence),
    Advance(Duration),
    /// Moves the clock to the nearest live deadline, or just past it.
    AdvanceToDeadline {
        past: bool,
    },
    ExpireDue,
    /// The pool is snapshotted and restored, as after a restart.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        8 => (user.clone(), any::<bool>())
            .prop_map(|(user, expire_first)| Op::Login { user, expire_first }),
        3 => any::<Index>().prop_map(Op::Heartbeat),
        1 => any::<Index>().prop_map(Op::HeartbeatWithWrongSecret),
        2 => any::<Index>().prop_map(Op::Release),
        1 => any::<Index>().prop_map(Op::Logout),
        1 => any::<Index>().prop_map(Op::Revoke),
        1 => user.clone().prop_map(Op::LogoutUser),
        3 => user.clone().prop_map(Op::PutUser),
        3 => (user.clone(), 0u8..4).prop_map(|(user, mask)| Op::PutUserInGroups(user, mask)),
        1 => user.prop_map(Op::RemoveUser),
        2 => licence_with_policies().prop_map(Op::SetLicence),
        2 => prop_oneof![0u64..2_000, 0u64..150_000, 3_000_000u64..4_000_000]
            .prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        2 => any::<bool>().prop_map(|past| Op::AdvanceToDeadline { past }),
        1 => Just(Op::ExpireDue),
        1 => Just(Op::Restart),
    ]
}

/// A session as the reference model knows it.
struct Tab {
    token: SessionToken,
    user: UserId,
    started_at: Timestamp,
    expires_at: Timestamp,
    /// The fence its login answered.
    fence: u64,
    ended: Option<(EndReason, Timestamp)>,
}

/// SPEC §1, written as plainly as possible.
struct Model {
    licence: Licence,
    /// user → holds a named seat
    accounts: BTreeMap<UserId, bool>,
    /// user → their groups (accounts without any are left out)
    groups: BTreeMap<UserId, BTreeSet<GroupId>>,
    /// Seats kept under the reload grace: whose, and until when, oldest first.
    kept: Vec<(UserId, Timestamp)>,
    tabs: Vec<Tab>,
    /// The largest fence any login answered: every admission must pass it (SPEC §8),
    /// restarts included.
    fence: u64,
}

impl Model {
    fn expire(&mut self, now: Timestamp) {
        self.kept.retain(|(_, until)| *until > now);
        for tab in &mut self.tabs {
            if tab.ended.is_none() && tab.expires_at < now {
                tab.ended = Some((EndReason::Expired, now));
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = &Tab> {
        self.tabs.iter().filter(|t| t.ended.is_none())
    }

    fn live_users(&self) -> BTreeSet<UserId> {
        self.live().map(|t| t.user.clone()).collect()
    }

    fn seats_in_use(&self) -> u32 {
        let kept = self.kept.len() as u32;
        match self.licence.model {
            LicenceModel::Named { .. } => self.accounts.values().filter(|&&a| a).count() as u32,
            LicenceModel::Concurrent {
                seat_per: SeatPer::Session,
                ..
            } => self.live().count() as u32 + kept,
            LicenceModel::Concurrent { .. } => self.live_users().len() as u32 + kept,
            LicenceModel::Records => self.live_users().len() as u32,
        }
    }

    /// Whether a seat is kept for `user`, and this login would take it back.
    fn reclaims(&self, user: &UserId) -> bool {
        let tabs = self.live().filter(|t| &t.user == user).count();
        let takes_a_seat = match self.licence.model {
            LicenceModel::Concurrent { seat_per, .. } => seat_per == SeatPer::Session || tabs == 0,
            _ => false,
        };
        takes_a_seat && self.kept.iter().any(|(u, _)| u == user)
    }

    /// A released tab: its seat stays its user's for the reload grace, under a seat per
    /// tab or with the user's last tab.
    fn release(&mut self, tab: usize, now: Timestamp) {
        self.end(tab, EndReason::Released, now);
        let grace = self.licence.policies.reload_grace;
        let user = self.tabs[tab].user.clone();
        let keeps = match self.licence.model {
            LicenceModel::Concurrent { seat_per, .. } if !grace.is_zero() => {
                seat_per == SeatPer::Session || !self.live().any(|t| t.user == user)
            }
            _ => false,
        };
        if keeps {
            self.kept.push((user, now + grace));
        }
    }

    /// What a holder of the tab's token is told at `now`.
    fn standing(&self, tab: usize, now: Timestamp) -> Result<(), Error> {
        match self.tabs[tab].ended {
            None => Ok(()),
            Some((reason, at)) if at + REMEMBERED > now => Err(Error::SessionEnded { reason }),
            Some(_) => Err(Error::SessionNotFound),
        }
    }

    fn end(&mut self, tab: usize, reason: EndReason, now: Timestamp) {
        self.tabs[tab].ended = Some((reason, now));
    }

    fn end_user(&mut self, user: &UserId, reason: EndReason, now: Timestamp) -> u32 {
        let mut ended = 0;
        for tab in &mut self.tabs {
            if tab.ended.is_none() && &tab.user == user {
                tab.ended = Some((reason, now));
                ended += 1;
            }
        }
        ended
    }

    fn is_member(&self, user: &UserId, group: &GroupId) -> bool {
        self.groups.get(user).is_some_and(|g| g.contains(group))
    }

    /// Seats held by members of `group`: their users, or their tabs under a seat per
    /// tab, and the seats kept for them.
    fn group_held(&self, group: &GroupId) -> u32 {
        let members = self.live().filter(|t| self.is_member(&t.user, group));
        let held = match self.licence.model {
            LicenceModel::Concurrent {
                seat_per: SeatPer::Session,
                ..
            } => members.count() as u32,
            _ => members.map(|t| &t.user).collect::<BTreeSet<_>>().len() as u32,
        };
        let kept = self.kept.iter().filter(|(u, _)| self.is_member(u, group));
        held + kept.count() as u32
    }

    /// Free seats held back for reservations not yet filled, but for the one seat
    /// `user` would fill in each of their groups.
    fn reserved_for_others(&self, user: &UserId) -> u32 {
        let policies = &self.licence.policies;
        policies
            .reserve
            .iter()
            .map(|(group, &n)| {
                let unfilled = n.saturating_sub(self.group_held(group));
                if self.is_member(user, group) {
                    unfilled.saturating_sub(1)
                } else {
                    unfilled
                }
            })
            .sum()
    }

    /// A login's answer: admitted (after the tabs listed are displaced) or refused.
    fn login(&self, user: &UserId, now: Timestamp) -> Result<Vec<usize>, Error> {
        let account = self.accounts.get(user).copied();
        if let LicenceModel::Named { .. } = self.licence.model {
            if account != Some(true) {
                return Err(Error::UserNotLicensed {
                    user: user.to_string(),
                });
            }
        } else if account.is_none() && self.accounts.len() as u32 >= self.licence.max_users {
            return Err(Error::UserLimitReached {
                max_users: self.licence.max_users,
            });
        }
        let policies = &self.licence.policies;
        let tabs = self.live().filter(|t| &t.user == user).count() as u32;
        if let Some(cap) = policies.max_sessions_per_user {
            if tabs >= cap {
                return Err(Error::SessionLimitReached {
                    max_sessions_per_user: cap,
                });
            }
        }
        if let LicenceModel::Concurrent { seats, seat_per } = self.licence.model {
            let limit = seat_limit(&self.licence).unwrap();
            let shares = seat_per == SeatPer::User && tabs > 0;
            let reclaims = self.reclaims(user);
            let in_use = self.seats_in_use() - u32::from(reclaims);
            // A kept seat taken back is already its groups'.
            let group_rules = !shares && !reclaims;
            if group_rules {
                let mine = self.groups.get(user).into_iter().flatten();
                for group in mine {
                    if let Some(&max) = policies.group_max.get(group) {
                        if self.group_held(group) >= max {
                            return Err(Error::GroupLimitReached {
                                group: group.to_string(),
                                max,
                            });
                        }
                    }
                }
            }
            let reserved = if group_rules {
                self.reserved_for_others(user)
            } else {
                0
            };
            if !shares && in_use + reserved >= limit {
                let nearest = self.live().map(|t| t.expires_at).min();
                let mut retry_after = nearest.map(|d| d.saturating_since(now) + TICK);
                if policies.on_limit == OnLimit::DisplaceIdlest && in_use == limit {
                    let longest_held = self.live().map(|t| t.started_at).min();
                    if let Some(since) = longest_held {
                        let hold_ends = since + policies.min_hold;
                        if hold_ends <= now {
                            return Ok(self.idlest(seat_per, now));
                        }
                        let hold = hold_ends.saturating_since(now);
                        retry_after = Some(retry_after.map_or(hold, |r| r.min(hold)));
                    }
                }
                return Err(Error::LicenceLimitReached {
                    reserved,
                    seats,
                    seats_in_use: in_use,
                    retry_after,
                });
            }
        }
        Ok(Vec::new())
    }

    /// The tabs of the idlest seat held for the minimum hold: per tab, the one with the
    /// nearest deadline; per user, the user whose latest deadline is nearest; of equals,
    /// the seat taken first.
    fn idlest(&self, per: SeatPer, now: Timestamp) -> Vec<usize> {
        let hold = self.licence.policies.min_hold;
        let live: Vec<usize> = (0..self.tabs.len())
            .filter(|&i| self.tabs[i].ended.is_none())
            .collect();
        let seats: Vec<Vec<usize>> = match per {
            SeatPer::Session => live.iter().map(|&i| vec![i]).collect(),
            SeatPer::User => {
                let mut by_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
                for &i in &live {
                    by_user.entry(&self.tabs[i].user).or_default().push(i);
                }
                by_user.into_values().collect()
            }
        };
        seats
            .into_iter()
            .filter(|tabs| {
                let since = tabs.iter().map(|&i| self.tabs[i].started_at).min().unwrap();
                since + hold <= now
            })
            .min_by_key(|tabs| {
                let latest = tabs.iter().map(|&i| self.tabs[i].expires_at).max();
                let first = tabs.iter().map(|&i| self.tabs[i].fence).min();
                (latest, first)
            })
            .expect("a seat held for the minimum hold")
    }

    fn put_user(&mut self, user: &UserId) -> Result<(), Error> {
        let named = matches!(self.licence.model, LicenceModel::Named { .. });
        match self.accounts.get(user) {
            Some(true) => return Ok(()),
            Some(false) if !named => return Ok(()),
            None if self.accounts.len() as u32 >= self.licence.max_users => {
                return Err(Error::UserLimitReached {
                    max_users: self.licence.max_users,
                })
            }
            _ => {}
        }
        if let LicenceModel::Named { seats } = self.licence.model {
            if self.accounts.values().filter(|&&a| a).count() as u32 >= seats {
                return Err(Error::SeatsExhausted { seats });
            }
        }
        self.accounts.insert(user.clone(), named);
        Ok(())
    }

    fn user_view(&self, user: &UserId) -> UserView {
        UserView {
            groups: self
                .groups
                .get(user)
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default(),
            user: user.clone(),
            assigned: self.accounts[user],
            sessions: self.live().filter(|t| &t.user == user).count() as u32,
        }
    }

    fn user_views(&self) -> Vec<UserView> {
        self.accounts.keys().map(|u| self.user_view(u)).collect()
    }
}

/// How far usage may stand above a limit: only as far as a licence change left it, and
/// never back up once it has fallen.
struct Ceiling(u32);

impl Ceiling {
    fn after_licence_change(limit: u32, in_use: u32) -> Self {
        Ceiling(limit.max(in_use))
    }

    fn check(&mut self, what: &str, limit: u32, in_use: u32) -> Result<(), TestCaseError> {
        prop_assert!(
            in_use <= self.0,
            "{what}: {in_use} in use, limit {limit}, ceiling {}",
            self.0
        );
        self.0 = limit.max(self.0.min(in_use));
        Ok(())
    }
}

fn user(index: usize) -> UserId {
    UserId::parse(USERS[index]).unwrap()
}

/// The most seats the licence lets be held: the seats and their overage.
fn seat_limit(licence: &Licence) -> Option<u32> {
    let seats = licence.model.seats()?;
    let past = u64::from(seats) * u64::from(licence.policies.overage_ppm) / 1_000_000;
    Some(seats + past as u32)
}

fn run(initial: Licence, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tenant = TenantId::parse("prop").unwrap();
    let mut now = T0;
    let mut pool = PoolState::new(tenant, initial.clone(), Retention::default(), now);
    let mut model = Model {
        licence: initial.clone(),
        accounts: BTreeMap::new(),
        groups: BTreeMap::new(),
        kept: Vec::new(),
        tabs: Vec::new(),
        fence: 0,
    };
    let mut seats = Ceiling(seat_limit(&initial).unwrap_or(0));
    let mut accounts = Ceiling(initial.max_users);

    for op in ops {
        let licence_changed = matches!(op, Op::SetLicence(_));
        let expired = !matches!(op, Op::Advance(_) | Op::AdvanceToDeadline { .. });
        if expired {
            model.expire(now);
        }
        match op {
            Op::Login {
                user: u,
                expire_first,
            } => {
                let who = user(u);
                if expire_first {
                    pool.expire_due(now);
                }
                let before = pool.seats_in_use();
                let before = if expire_first {
                    before
                } else {
                    // The login expires what is due itself; the model says how many
                    // seats that leaves.
                    model.seats_in_use()
                };
                let expected = model.login(&who, now);
                let token = SessionToken::generate();
                let admission = pool.login(&who, None, token.id(), token.secret_hash(), now);
                let fence = admission.as_ref().map_or(0, |a| a.fence);
                let got = admission.map(|admission| admission.expires_at);
                prop_assert_eq!(
                    got.clone(),
                    expected.clone().map(|_| now + model.licence.idle_timeout),
                    "login of {}",
                    who
                );
                // A displaced seat was held for the minimum hold (a user's seat since
                // their first tab), and its tabs go.
                let victims = expected.as_deref().unwrap_or_default();
                if let Some(since) = victims.iter().map(|&i| model.tabs[i].started_at).min() {
                    let held = now.saturating_since(since);
                    prop_assert!(held >= model.licence.policies.min_hold);
                }
                for &i in victims {
                    model.end(i, EndReason::Displaced, now);
                }
                if got.is_ok() {
                    prop_assert!(
                        fence > model.fence,
                        "fence {} after {} was handed out",
                        fence,
                        model.fence
                    );
                    model.fence = fence;
                    let after = pool.seats_in_use();
                    match model.licence.model {
                        LicenceModel::Concurrent { .. } => {
                            let limit = seat_limit(&model.licence).unwrap();
                            prop_assert!(after <= before + 1);
                            prop_assert!(after <= limit.max(before));
                            if after > before {
                                prop_assert!(
                                    before < limit,
                                    "a new seat was taken with {} of {} in use",
                                    before,
                                    limit
                                );
                            }
                            // A new seat leaves the user's groups within their caps,
                            // and room for every reservation not yet filled.
                            // (The model does not hold the new seat yet: it is the
                            // user's, one more for each of their groups.)
                            if model.seats_in_use() < after {
                                let policies = &model.licence.policies;
                                let held_after = |group: &GroupId| {
                                    model.group_held(group)
                                        + u32::from(model.is_member(&who, group))
                                };
                                for (group, &max) in &policies.group_max {
                                    if model.is_member(&who, group) {
                                        let held = held_after(group);
                                        prop_assert!(
                                            held <= max,
                                            "{} holds {} of {}",
                                            group,
                                            held,
                                            max
                                        );
                                    }
                                }
                                let unfilled: u32 = policies
                                    .reserve
                                    .iter()
                                    .map(|(g, &n)| n.saturating_sub(held_after(g)))
                                    .sum();
                                prop_assert!(
                                    after + unfilled <= limit,
                                    "{} held and {} reserved, past {}",
                                    after,
                                    unfilled,
                                    limit
                                );
                            }
                        }
                        LicenceModel::Named { .. } => {
                            let views = pool.user_views();
                            let view = views.iter().find(|v| v.user == who);
                            prop_assert!(
                                view.is_some_and(|v| v.assigned),
                                "{} was admitted without a named seat",
                                who
                            );
                        }
                        LicenceModel::Records => {}
                    }
                    if model.reclaims(&who) {
                        let at = model.kept.iter().position(|(u, _)| u == &who).unwrap();
                        model.kept.remove(at);
                    }
                    model.accounts.entry(who.clone()).or_insert(false);
                    model.tabs.push(Tab {
                        token,
                        user: who,
                        started_at: now,
                        expires_at: now + model.licence.idle_timeout,
                        fence,
                        ended: None,
                    });
                }
            }
            Op::Heartbeat(tab) if !model.tabs.is_empty() => {
                let i = tab.index(model.tabs.len());
                let token = &model.tabs[i].token;
                let got = pool.heartbeat(token.id(), &token.secret_hash(), now);
                let expected = model.standing(i, now);
                prop_assert_eq!(
                    got,
                    expected.clone().map(|()| now + model.licence.idle_timeout)
                );
                if expected.is_ok() {
                    model.tabs[i].expires_at = now + model.licence.idle_timeout;
                }
            }
            Op::HeartbeatWithWrongSecret(tab) if !model.tabs.is_empty() => {
                let i = tab.index(model.tabs.len());
                let thief = SessionToken::with_id(model.tabs[i].token.id());
                prop_assert_eq!(
                    pool.heartbeat(thief.id(), &thief.secret_hash(), now),
                    Err(Error::SessionNotFound)
                );
                prop_assert_eq!(
                    pool.release(thief.id(), &thief.secret_hash(), now),
                    Err(Error::SessionNotFound)
                );
            }
            Op::Release(tab) if !model.tabs.is_empty() => {
                let i = tab.index(model.tabs.len());
                let token = &model.tabs[i].token;
                let got = pool.release(token.id(), &token.secret_hash(), now);
                let expected = model.standing(i, now);
                prop_assert_eq!(got, expected.clone());
                if expected.is_ok() {
                    model.release(i, now);
                }
            }
            Op::Logout(tab) if !model.tabs.is_empty() => {
                let i = tab.index(model.tabs.len());
                let token = &model.tabs[i].token;
                let got = pool.logout(token.id(), &token.secret_hash(), now);
                let expected = match model.standing(i, now) {
                    Ok(()) => {
                        let who = model.tabs[i].user.clone();
                        Ok(model.end_user(&who, EndReason::LoggedOut, now))
                    }
                    Err(e) => Err(e),
                };
                prop_assert_eq!(got, expected);
            }
            Op::Revoke(tab) if !model.tabs.is_empty() => {
                let i = tab.index(model.tabs.len());
                let got = pool.revoke(model.tabs[i].token.id(), now);
                let expected = model.standing(i, now);
                prop_assert_eq!(got, expected.clone());
                if expected.is_ok() {
                    model.end(i, EndReason::Revoked, now);
                }
            }
            Op::LogoutUser(u) => {
                let who = user(u);
                let expected = if model.accounts.contains_key(&who) {
                    Ok(model.end_user(&who, EndReason::LoggedOut, now))
                } else {
                    Err(Error::UserNotFound)
                };
                prop_assert_eq!(pool.logout_user(&who, now), expected);
            }
            Op::PutUser(u) => {
                let who = user(u);
                let got = pool.put_user(&who, None, now);
                let expected = model.put_user(&who).map(|()| model.user_view(&who));
                prop_assert_eq!(got, expected);
            }
            Op::PutUserInGroups(u, mask) => {
                let who = user(u);
                let groups: Vec<GroupId> = (0..GROUPS.len())
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| GroupId::parse(GROUPS[bit]).unwrap())
                    .collect();
                let got = pool.put_user(&who, Some(&groups), now);
                let expected = model.put_user(&who).map(|()| {
                    if groups.is_empty() {
                        model.groups.remove(&who);
                    } else {
                        model
                            .groups
                            .insert(who.clone(), groups.into_iter().collect());
                    }
                    model.user_view(&who)
                });
                prop_assert_eq!(got, expected);
            }
            Op::RemoveUser(u) => {
                let who = user(u);
                model.groups.remove(&who);
                model.kept.retain(|(u, _)| u != &who);
                let expected = if model.accounts.remove(&who).is_some() {
                    model.end_user(&who, EndReason::Evicted, now);
                    Ok(())
                } else {
                    Err(Error::UserNotFound)
                };
                prop_assert_eq!(pool.remove_user(&who, now), expected);
            }
            Op::SetLicence(licence) => {
                pool.set_licence(licence.clone(), now);
                // Leaving the named model drops every named seat.
                if matches!(model.licence.model, LicenceModel::Named { .. })
                    && !matches!(licence.model, LicenceModel::Named { .. })
                {
                    model.accounts.values_mut().for_each(|a| *a = false);
                }
                // Kept seats belong to the seat rule and the grace they were kept under.
                let keeps = |l: &Licence| match l.model {
                    LicenceModel::Concurrent { seat_per, .. }
                        if !l.policies.reload_grace.is_zero() =>
                    {
                        Some(seat_per)
                    }
                    _ => None,
                };
                if keeps(&licence).is_none() || keeps(&licence) != keeps(&model.licence) {
                    model.kept.clear();
                }
                model.licence = licence;
            }
            Op::Advance(by) => now = now + by,
            Op::AdvanceToDeadline { past } => {
                if let Some(nearest) = model.live().map(|t| t.expires_at).min() {
                    let to = if past { nearest + TICK } else { nearest };
                    now = now.max(to);
                }
            }
            Op::ExpireDue => pool.expire_due(now),
            Op::Restart => {
                // What is due is ended before the snapshot, as the model has done.
                pool.expire_due(now);
                pool = PoolState::restore(pool.snapshot(), Retention::default(), now);
                // Kept seats outlast a restart, each with a full grace.
                let grace = model.licence.policies.reload_grace;
                for (_, until) in &mut model.kept {
                    *until = now + grace;
                }
                // Every restored session gets a full idle window.
                let idle = model.licence.idle_timeout;
                for tab in model.tabs.iter_mut().filter(|t| t.ended.is_none()) {
                    tab.expires_at = now + idle;
                }
            }
            // An operation on a tab when none was ever opened.
            Op::Heartbeat(_)
            | Op::HeartbeatWithWrongSecret(_)
            | Op::Release(_)
            | Op::Logout(_)
            | Op::Revoke(_) => {}
        }

        // The pool's own indexes agree with its sessions and accounts...
        if let Err(broken) = pool.check_invariants() {
            return Err(TestCaseError::fail(broken));
        }

        // ...the pool agrees with the model...
        // The session list is in login order, then by id.
        let mut live: Vec<(Timestamp, SessionId, UserId, Timestamp, u64)> = model
            .live()
            .map(|t| {
                let id = t.token.id();
                (t.started_at, id, t.user.clone(), t.expires_at, t.fence)
            })
            .collect();
        live.sort();
        let views = pool.session_views();
        let got: Vec<(Timestamp, SessionId, UserId, Timestamp, u64)> = views
            .iter()
            .map(|s| (s.started_at, s.id, s.user.clone(), s.expires_at, s.fence))
            .collect();
        prop_assert_eq!(&got, &live);
        prop_assert_eq!(pool.user_views(), model.user_views());
        // Read a page at a time, the lists are the same.
        for limit in 1..=3 {
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = pool.session_page(after, limit);
                prop_assert!(page.items.len() <= limit);
                paged.extend(page.items);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(&paged, &views);
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = pool.user_page(after.as_ref(), limit);
                prop_assert!(page.items.len() <= limit);
                paged.extend(page.items);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(paged, model.user_views());
        }
        let in_use = pool.seats_in_use();
        prop_assert_eq!(in_use, model.seats_in_use());
        prop_assert_eq!(pool.view().seats_in_use, in_use);

        // ...and the invariants hold.
        let licence = model.licence.clone();
        if let LicenceModel::Concurrent {
            seat_per: SeatPer::User,
            ..
        } = licence.model
        {
            // One seat per user holding any tab, and one per seat kept for a reload.
            let holders: BTreeSet<&UserId> = views.iter().map(|s| &s.user).collect();
            prop_assert_eq!(in_use as usize, holders.len() + model.kept.len());
        }
        if let LicenceModel::Named { .. } = licence.model {
            prop_assert_eq!(
                in_use as usize,
                pool.user_views().iter().filter(|u| u.assigned).count()
            );
        }
        if expired {
            for s in &views {
                prop_assert!(
                    s.expires_at >= now,
                    "session {} idle past {} survived at {}",
                    s.id,
                    s.expires_at,
                    now
                );
            }
        }
        let users = pool.view().users;
        if licence_changed {
            seats = Ceiling::after_licence_change(seat_limit(&licence).unwrap_or(0), in_use);
            accounts = Ceiling::after_licence_change(licence.max_users, users);
        } else {
            if let Some(limit) = seat_limit(&licence) {
                seats.check("seats", limit, in_use)?;
            }
            accounts.check("accounts", licence.max_users, users)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_keep_every_licence_rule(
        initial in licence_with_policies(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(initial, ops)?;
    }

    /// The same on a concurrent licence that always reserves seats for a group and
    /// caps one, so that the group rules meet every other rule often.
    #[test]
    fn random_operations_keep_the_group_rules(
        initial in grouped_licence(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(initial, ops)?;
    }
}

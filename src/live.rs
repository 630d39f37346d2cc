//! The live channel's hub (SPEC §11): who on this node listens for what. The deciding
//! backend tells it, once a change is durable, that a tenant's audit log grew and which
//! sessions ended; event streams and tabs' sockets wait on it.
//!
//! It only says *that* something happened. What happened is read from the durable audit
//! log (streams) or travels with the news (a session's end), so a listener that misses
//! a wake-up loses nothing: it reads from where it was.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{broadcast, watch};

use crate::error::EndReason;
use crate::ids::{SessionId, TenantId};

/// What a durable change of one tenant's pool tells the live channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct News {
    /// The tenant.
    pub tenant: Option<TenantId>,
    /// Its audit log grew.
    pub logged: bool,
    /// The tenant was deleted.
    pub deleted: bool,
    /// Sessions that ended, and why.
    pub ended: Vec<(SessionId, EndReason)>,
}

/// A tenant's log as a stream sees it: how often it has grown, or that the tenant is
/// gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// The log has grown this many times since the stream began listening.
    Growing(u64),
    /// The tenant was deleted, and its log with it.
    Deleted,
}

/// How many tenants' news an admin stream may fall behind before it reads every
/// tenant's log again.
const ADMIN_BACKLOG: usize = 4096;

/// The hub. One per engine, shared by every backend's callers on this node.
pub struct Live {
    logs: DashMap<TenantId, watch::Sender<LogState>>,
    all: broadcast::Sender<TenantId>,
    sessions: DashMap<SessionId, watch::Sender<Option<EndReason>>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            logs: DashMap::new(),
            all: broadcast::channel(ADMIN_BACKLOG).0,
            sessions: DashMap::new(),
        }
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("tenant_streams", &self.logs.len())
            .field("sockets", &self.sessions.len())
            .finish()
    }
}

impl Live {
    /// Passes on what a durable change caused. Costs one map lookup per ended session
    /// and one per tenant when nobody listens.
    pub fn publish(&self, news: &News) {
        for (session, reason) in &news.ended {
            if let Some(tx) = self.sessions.get(session) {
                tx.send_replace(Some(*reason));
            }
        }
        let Some(tenant) = &news.tenant else { return };
        if !(news.logged || news.deleted) {
            return;
        }
        if let Some(tx) = self.logs.get(tenant) {
            tx.send_modify(|state| {
                *state = match (*state, news.deleted) {
                    (_, true) | (LogState::Deleted, _) => LogState::Deleted,
                    (LogState::Growing(n), false) => LogState::Growing(n + 1),
                };
            });
        }
        if self.all.receiver_count() > 0 {
            let _ = self.all.send(tenant.clone());
        }
    }

    /// Tells every listener to read again, as after news may have been lost (the
    /// shared store's notifications were cut off for a while).
    pub fn wake_all(&self) {
        for entry in self.logs.iter() {
            entry.value().send_modify(|state| {
                if let LogState::Growing(n) = state {
                    *n += 1;
                }
            });
        }
    }

    /// Listens to `tenant`'s log until the returned watch is dropped.
    pub fn watch_log(self: &Arc<Self>, tenant: &TenantId) -> LogWatch {
        let rx = self
            .logs
            .entry(tenant.clone())
            .or_insert_with(|| watch::channel(LogState::Growing(0)).0)
            .subscribe();
        LogWatch {
            live: self.clone(),
            tenant: tenant.clone(),
            rx: Some(rx),
        }
    }

    /// Listens to every tenant's log: the tenants whose log grew, in the order their
    /// news came.
    pub fn watch_all(&self) -> broadcast::Receiver<TenantId> {
        self.all.subscribe()
    }

    /// Listens for the end of `session` until the returned watch is dropped.
    pub fn watch_session(self: &Arc<Self>, session: SessionId) -> SessionWatch {
        let rx = self
            .sessions
            .entry(session)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        SessionWatch {
            live: self.clone(),
            session,
            rx: Some(rx),
        }
    }

    /// Sessions with a socket listening on this node.
    pub fn sockets(&self) -> usize {
        self.sessions.len()
    }
}

/// A stream's hold on one tenant's log news; forgets the tenant when the last one goes.
pub struct LogWatch {
    live: Arc<Live>,
    tenant: TenantId,
    rx: Option<watch::Receiver<LogState>>,
}

impl LogWatch {
    /// The state now, marked as seen.
    pub fn seen(&mut self) -> LogState {
        *self.rx_mut().borrow_and_update()
    }

    /// Waits until the log grows (or the tenant goes) after the last [`LogWatch::seen`].
    pub async fn changed(&mut self) -> LogState {
        let rx = self.rx_mut();
        // The sender lives in the map for as long as this receiver does.
        let _ = rx.changed().await;
        *rx.borrow_and_update()
    }

    fn rx_mut(&mut self) -> &mut watch::Receiver<LogState> {
        self.rx.as_mut().expect("present until dropped")
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        drop(self.rx.take());
        // Under the map's lock, so a stream subscribing at the same time keeps it.
        self.live
            .logs
            .remove_if(&self.tenant, |_, tx| tx.receiver_count() == 0);
    }
}

/// A socket's hold on its session's end; forgets the session when the last one goes.
pub struct SessionWatch {
    live: Arc<Live>,
    session: SessionId,
    rx: Option<watch::Receiver<Option<EndReason>>>,
}

impl SessionWatch {
    /// Waits until the session ends on any node, and says why.
    pub async fn ended(&mut self) -> EndReason {
        let rx = self.rx.as_mut().expect("present until dropped");
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Never: the sender lives in the map while this receiver does.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.live
            .sessions
            .remove_if(&self.session, |_, tx| tx.receiver_count() == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[tokio::test]
    async fn an_ended_session_is_heard_by_its_socket_and_forgotten_after() {
        let live = Arc::new(Live::default());
        let id = SessionId::from_u64(7);
        let mut watch = live.watch_session(id);
        live.publish(&News {
            tenant: Some(tenant()),
            ended: vec![
                (SessionId::from_u64(8), EndReason::Expired),
                (id, EndReason::Revoked),
            ],
            ..News::default()
        });
        assert_eq!(watch.ended().await, EndReason::Revoked);
        assert_eq!(live.sockets(), 1);
        drop(watch);
        assert_eq!(live.sockets(), 0);
    }

    #[tokio::test]
    async fn a_log_watch_wakes_on_growth_and_deletion_and_is_forgotten_after() {
        let live = Arc::new(Live::default());
        let mut watch = live.watch_log(&tenant());
        assert_eq!(watch.seen(), LogState::Growing(0));
        let grew = News {
            tenant: Some(tenant()),
            logged: true,
            ..News::default()
        };
        live.publish(&grew);
        live.publish(&grew);
        assert_eq!(watch.changed().await, LogState::Growing(2));
        live.publish(&News {
            tenant: Some(tenant()),
            deleted: true,
            ..News::default()
        });
        assert_eq!(watch.changed().await, LogState::Deleted);
        drop(watch);
        assert!(live.logs.is_empty());
    }

    #[tokio::test]
    async fn admin_streams_hear_every_tenant_whose_log_grew() {
        let live = Arc::new(Live::default());
        let mut all = live.watch_all();
        let other = TenantId::parse("globex").unwrap();
        for tenant in [tenant(), other.clone()] {
            live.publish(&News {
                tenant: Some(tenant),
                logged: true,
                ..News::default()
            });
        }
        assert_eq!(all.recv().await.unwrap(), tenant());
        assert_eq!(all.recv().await.unwrap(), other);
    }
}

//! The embedded, crash-safe store: [redb], with group commit.
//!
//! Pools submit batches on a channel; one writer thread takes everything waiting,
//! writes it in one transaction, commits (fsync), and only then lets the pools answer.
//! While one commit is in flight the next batch gathers, so durability costs one fsync
//! per batch, not per request.
//!
//! Live sessions are keyed by the hash of their token's secret; the token itself is
//! never written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use chrono::NaiveDate;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    cursor_of, parse_cursor, AuditEvent, Batch, Done, EventPage, EventQuery, Loaded, Store,
};
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::{SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::pool::{Change, PoolSnapshot, Records, SessionRecord, Tombstone};
use crate::token::SecretHash;
use crate::usage::UsageBook;

/// The schema this build writes and understands.
pub const SCHEMA_VERSION: u64 = 1;
/// The database file inside the data directory.
pub const DB_FILE: &str = "usher.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const USERS: TableDefinition<(&str, &str), u8> = TableDefinition::new("users");
const SESSIONS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("sessions");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const USAGE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("usage");
const AUDIT: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("audit");

/// Batches waiting for the writer before submitters are told to back off.
const QUEUE: usize = 65_536;
/// Batches written in one transaction at most.
const MAX_GROUP: usize = 8_192;

/// A session as stored (under the hash of its secret).
#[derive(Serialize, Deserialize)]
struct SessionRow {
    id: SessionId,
    user: UserId,
    client: Option<String>,
    started_at: Timestamp,
    last_heartbeat_at: Timestamp,
    ended: Option<Tombstone>,
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct RedbConfig {
    /// How long audit events are kept.
    pub audit_retention: Duration,
}

impl Default for RedbConfig {
    fn default() -> Self {
        RedbConfig {
            audit_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// The redb store.
pub struct RedbStore {
    db: Arc<Database>,
    tx: Sender<(Batch, Done)>,
    dir: PathBuf,
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("storage: {e}"))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(storage)
}

fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(storage)
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`. Fails with a message a person can act on
    /// if the directory is unusable or the database is corrupt or of a newer schema.
    pub fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: RedbConfig,
    ) -> Result<RedbStore, String> {
        check_dir(dir)?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| {
            format!(
                "cannot open the database {}: {e} (corrupt, or not a usher database?)",
                path.display()
            )
        })?;
        stamp_schema(&db, &path)?;
        let db = Arc::new(db);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let usage = load_usage_book(&db).map_err(|e| e.to_string())?;
        let writer = Writer {
            db: db.clone(),
            clock,
            retention: config.audit_retention,
            usage,
            next_seq: next_seq(&db).map_err(|e| e.to_string())?,
            pruned_at: None,
        };
        thread::Builder::new()
            .name("usher-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the store writer: {e}"))?;
        Ok(RedbStore {
            db,
            tx,
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "data dir {} exists and is not a directory",
            dir.display()
        ));
    }
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
    let probe: PathBuf = dir.join(".usher-write-test");
    fs::write(&probe, b"")
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| format!("data dir {} is not writable: {e}", dir.display()))
}

fn stamp_schema(db: &Database, path: &Path) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("database {}: {e}", path.display());
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| fail(&e))?
            .map(|v| v.value());
        match found {
            Some(SCHEMA_VERSION) => {}
            Some(newer) if newer > SCHEMA_VERSION => {
                return Err(format!(
                    "database {} has schema version {newer}, newer than this usher understands ({SCHEMA_VERSION}); run a newer usher",
                    path.display()
                ))
            }
            Some(older) => {
                return Err(format!(
                    "database {} has schema version {older}, which this usher cannot migrate",
                    path.display()
                ))
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| fail(&e))?;
            }
        }
        // Create every table, so reads of a new database find them.
        txn.open_table(TENANTS).map_err(|e| fail(&e))?;
        txn.open_table(API_KEYS).map_err(|e| fail(&e))?;
        txn.open_table(USERS).map_err(|e| fail(&e))?;
        txn.open_table(SESSIONS).map_err(|e| fail(&e))?;
        txn.open_table(RECORDS).map_err(|e| fail(&e))?;
        txn.open_table(USAGE).map_err(|e| fail(&e))?;
        txn.open_table(AUDIT).map_err(|e| fail(&e))?;
    }
    txn.commit().map_err(|e| fail(&e))
}

fn next_seq(db: &Database) -> Result<u64, Error> {
    let txn = db.begin_read().map_err(storage)?;
    let meta = txn.open_table(META).map_err(storage)?;
    Ok(meta
        .get("audit_seq")
        .map_err(storage)?
        .map_or(0, |v| v.value())
        + 1)
}

fn load_usage_book(db: &Database) -> Result<UsageBook, Error> {
    let mut book = UsageBook::default();
    for (tenant, day) in read_usage(db)? {
        book.import(tenant, day);
    }
    Ok(book)
}

fn read_usage(db: &Database) -> Result<Vec<(TenantId, crate::usage::StoredDay)>, Error> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(USAGE).map_err(storage)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(storage)? {
        let (key, value) = row.map_err(storage)?;
        let tenant = TenantId::parse(key.value().0)?;
        out.push((tenant, from_json(value.value())?));
    }
    Ok(out)
}

impl Store for RedbStore {
    fn submit(&self, batch: Batch, done: Done) {
        match self.tx.try_send((batch, done)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, done))) => done(Err(Error::Overloaded {
                retry_after: Duration::from_secs(1),
            })),
            Err(TrySendError::Disconnected((_, done))) => {
                done(Err(Error::Internal("the store writer has stopped".into())))
            }
        }
    }

    fn load(&self) -> Result<Loaded, Error> {
        let txn = self.db.begin_read().map_err(storage)?;
        let mut pools: BTreeMap<String, PoolSnapshot> = BTreeMap::new();
        for row in txn
            .open_table(TENANTS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (tenant, licence) = row.map_err(storage)?;
            let licence: Licence = from_json(licence.value())?;
            pools.insert(
                tenant.value().to_string(),
                PoolSnapshot {
                    tenant: TenantId::parse(tenant.value())?,
                    licence,
                    users: Vec::new(),
                    sessions: Vec::new(),
                    ended: Vec::new(),
                    records: Records::default(),
                },
            );
        }
        for row in txn
            .open_table(USERS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, assigned) = row.map_err(storage)?;
            let (tenant, user) = key.value();
            if let Some(pool) = pools.get_mut(tenant) {
                pool.users
                    .push((UserId::parse(user)?, assigned.value() != 0));
            }
        }
        for row in txn
            .open_table(SESSIONS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, value) = row.map_err(storage)?;
            let (tenant, secret) = key.value();
            let Some(pool) = pools.get_mut(tenant) else {
                continue;
            };
            let row: SessionRow = from_json(value.value())?;
            match row.ended {
                Some(tombstone) => pool.ended.push((row.id, tombstone)),
                None => pool.sessions.push(SessionRecord {
                    id: row.id,
                    secret: SecretHash::from_bytes(secret.to_be_bytes()),
                    user: row.user,
                    client: row.client,
                    started_at: row.started_at,
                    last_heartbeat_at: row.last_heartbeat_at,
                }),
            }
        }
        for row in txn
            .open_table(RECORDS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (tenant, records) = row.map_err(storage)?;
            if let Some(pool) = pools.get_mut(tenant.value()) {
                pool.records = from_json(records.value())?;
            }
        }
        let mut api_keys = Vec::new();
        for row in txn
            .open_table(API_KEYS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (tenant, hash) = row.map_err(storage)?;
            let hash: [u8; 32] = hash
                .value()
                .try_into()
                .map_err(|_| storage("an API key hash is not 32 bytes"))?;
            api_keys.push((TenantId::parse(tenant.value())?, hash));
        }
        let pools = pools
            .into_values()
            .map(|mut pool| {
                pool.ended.sort_by_key(|(_, t)| t.ended_at);
                pool
            })
            .collect();
        Ok(Loaded {
            pools,
            api_keys,
            usage: read_usage(&self.db)?,
        })
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage, Error> {
        let (from_ms, from_seq) = match query.cursor.as_deref().map(parse_cursor).transpose()? {
            Some((ms, seq)) => (ms.max(query.since.as_millis()), seq.saturating_add(1)),
            None => (query.since.as_millis(), 0),
        };
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(AUDIT).map_err(storage)?;
        let name = tenant.as_str();
        let mut events = Vec::new();
        for row in table
            .range((name, from_ms, from_seq)..=(name, u64::MAX, u64::MAX))
            .map_err(storage)?
            .take(query.limit + 1)
        {
            let (key, value) = row.map_err(storage)?;
            let (_, _, seq) = key.value();
            events.push(AuditEvent {
                seq,
                event: from_json(value.value())?,
            });
        }
        let more = events.len() > query.limit;
        events.truncate(query.limit);
        let next_cursor = if more {
            events.last().map(cursor_of)
        } else {
            None
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    usage: UsageBook,
    next_seq: u64,
    pruned_at: Option<Timestamp>,
}

impl Writer {
    fn run(mut self, rx: Receiver<(Batch, Done)>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let result = self.write(&group);
            if let Err(error) = &result {
                tracing::error!(%error, batches = group.len(), "store commit failed; nothing in it was acknowledged");
            }
            for (_, done) in group {
                done(result.clone());
            }
        }
    }

    /// Writes a group of batches in one transaction and commits it (fsync).
    fn write(&mut self, group: &[(Batch, Done)]) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(storage)?;
        let mut touched: BTreeSet<(TenantId, NaiveDate)> = BTreeSet::new();
        for (batch, _) in group {
            let tenant = batch.tenant.as_str();
            for change in &batch.changes {
                apply(&txn, tenant, change)?;
            }
            if !batch.events.is_empty() {
                let mut audit = txn.open_table(AUDIT).map_err(storage)?;
                for event in &batch.events {
                    let bytes = to_json(event)?;
                    audit
                        .insert(
                            (tenant, event.at.as_millis(), self.next_seq),
                            bytes.as_slice(),
                        )
                        .map_err(storage)?;
                    self.next_seq += 1;
                    self.usage.record(event);
                    touched.insert((batch.tenant.clone(), event.at.day()));
                }
            }
        }
        {
            let mut usage = txn.open_table(USAGE).map_err(storage)?;
            for (tenant, day) in &touched {
                let key = day.to_string();
                match self.usage.export(tenant, *day) {
                    Some(stored) => {
                        usage
                            .insert(
                                (tenant.as_str(), key.as_str()),
                                to_json(&stored)?.as_slice(),
                            )
                            .map_err(storage)?;
                    }
                    None => {
                        usage
                            .remove((tenant.as_str(), key.as_str()))
                            .map_err(storage)?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert("audit_seq", self.next_seq - 1)
                .map_err(storage)?;
        }
        self.prune_audit(&txn)?;
        txn.commit().map_err(storage)
    }

    /// Drops audit events past the retention, at most once an hour.
    fn prune_audit(&mut self, txn: &WriteTransaction) -> Result<(), Error> {
        let now = self.clock.now();
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_since(at) < Duration::from_secs(3600))
        {
            return Ok(());
        }
        self.pruned_at = Some(now);
        let cutoff = (now - self.retention).as_millis();
        let mut audit = txn.open_table(AUDIT).map_err(storage)?;
        let tenants: Vec<String> = txn
            .open_table(TENANTS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
            .filter_map(|row| row.ok().map(|(k, _)| k.value().to_string()))
            .collect();
        for tenant in tenants {
            let t = tenant.as_str();
            audit
                .retain_in((t, 0, 0)..(t, cutoff, 0), |_, _| false)
                .map_err(storage)?;
        }
        Ok(())
    }
}

fn apply(txn: &WriteTransaction, tenant: &str, change: &Change) -> Result<(), Error> {
    match change {
        Change::Licence(licence) => {
            txn.open_table(TENANTS)
                .map_err(storage)?
                .insert(tenant, to_json(licence)?.as_slice())
                .map_err(storage)?;
        }
        Change::User { user, assigned } => {
            txn.open_table(USERS)
                .map_err(storage)?
                .insert((tenant, user.as_str()), u8::from(*assigned))
                .map_err(storage)?;
        }
        Change::UserRemoved(user) => {
            txn.open_table(USERS)
                .map_err(storage)?
                .remove((tenant, user.as_str()))
                .map_err(storage)?;
        }
        Change::SessionStarted(record) => {
            let row = SessionRow {
                id: record.id,
                user: record.user.clone(),
                client: record.client.clone(),
                started_at: record.started_at,
                last_heartbeat_at: record.last_heartbeat_at,
                ended: None,
            };
            txn.open_table(SESSIONS)
                .map_err(storage)?
                .insert(
                    (tenant, secret_key(&record.secret)),
                    to_json(&row)?.as_slice(),
                )
                .map_err(storage)?;
        }
        Change::SessionEnded { id, tombstone } => {
            let mut sessions = txn.open_table(SESSIONS).map_err(storage)?;
            let key = (tenant, secret_key(&tombstone.secret));
            let row = sessions
                .get(key)
                .map_err(storage)?
                .map(|v| v.value().to_vec());
            let mut row: SessionRow = match row {
                Some(bytes) => from_json(&bytes)?,
                None => SessionRow {
                    id: *id,
                    user: UserId::parse("unknown")?,
                    client: None,
                    started_at: tombstone.ended_at,
                    last_heartbeat_at: tombstone.ended_at,
                    ended: None,
                },
            };
            row.ended = Some(*tombstone);
            sessions
                .insert(key, to_json(&row)?.as_slice())
                .map_err(storage)?;
        }
        Change::SessionForgotten { secret, .. } => {
            txn.open_table(SESSIONS)
                .map_err(storage)?
                .remove((tenant, secret_key(secret)))
                .map_err(storage)?;
        }
        Change::Records(records) => {
            txn.open_table(RECORDS)
                .map_err(storage)?
                .insert(tenant, to_json(records)?.as_slice())
                .map_err(storage)?;
        }
        Change::ApiKey(hash) => {
            txn.open_table(API_KEYS)
                .map_err(storage)?
                .insert(tenant, hash.as_slice())
                .map_err(storage)?;
        }
        Change::Deleted => {
            txn.open_table(TENANTS)
                .map_err(storage)?
                .remove(tenant)
                .map_err(storage)?;
            txn.open_table(API_KEYS)
                .map_err(storage)?
                .remove(tenant)
                .map_err(storage)?;
            txn.open_table(RECORDS)
                .map_err(storage)?
                .remove(tenant)
                .map_err(storage)?;
            txn.open_table(USERS)
                .map_err(storage)?
                .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                .map_err(storage)?;
            txn.open_table(SESSIONS)
                .map_err(storage)?
                .retain_in((tenant, 0)..=(tenant, u128::MAX), |_, _| false)
                .map_err(storage)?;
            txn.open_table(USAGE)
                .map_err(storage)?
                .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                .map_err(storage)?;
        }
    }
    Ok(())
}

fn secret_key(secret: &SecretHash) -> u128 {
    u128::from_be_bytes(secret.to_bytes())
}

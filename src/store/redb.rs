//! The embedded, crash-safe store: [redb], with group commit.
//!
//! Pools submit batches on a channel; one writer thread takes everything waiting,
//! writes it in one transaction, commits (fsync), and only then lets the pools answer.
//! While one commit is in flight the next batch gathers, so durability costs one fsync
//! per batch, not per request.
//!
//! Live sessions are keyed by the hash of their token's secret; the token itself is
//! never written. Each tenant id's fence high-water mark is kept apart from the tenant
//! and outlives its deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use chrono::NaiveDate;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    cursor_of, parse_cursor, with_ids, AuditEvent, Batch, Done, EventPage, EventQuery, Loaded,
    Store,
};
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::ids::{SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::pool::{Change, PoolSnapshot, Records, SessionRecord, TicketRecord, Tombstone};
use crate::token::SecretHash;
use crate::usage::UsageBook;

/// The schema this build writes and understands.
pub const SCHEMA_VERSION: u64 = 1;
/// The database file inside the data directory.
pub const DB_FILE: &str = "usher.redb";
/// The file in the data dir that names the process holding the database open.
pub const PID_FILE: &str = "usher.pid";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const USERS: TableDefinition<(&str, &str), u8> = TableDefinition::new("users");
/// The groups of the accounts that belong to any: a JSON list of group ids.
const GROUPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("groups");
/// Live sessions by tenant and the hash of their secret.
const SESSIONS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("sessions");
/// Remembered ended sessions by tenant and the hash of their secret.
const ENDED: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("ended_sessions");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const USAGE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("usage");
/// Webhook registrations and delivery state, by key.
const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
/// Seats kept under the reload grace: how many for each user.
const KEPT: TableDefinition<(&str, &str), u32> = TableDefinition::new("kept_seats");
/// Waitlist tickets, live and remembered ended ones, under the hash of their secret.
const TICKETS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("tickets");
/// The audit log: one row per tenant per group commit, keyed by the time of its last
/// event, holding a JSON array of its events with their sequence numbers. One insert
/// per tenant and commit instead of one per event.
const AUDIT: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("audit");
/// Remembered sessions of deleted tenants, by session id, until the retention passes.
const ORPHANS: TableDefinition<u64, &[u8]> = TableDefinition::new("orphans");
/// The fence high-water mark of each tenant id, written in the commit of the sessions
/// that raise it. A delete leaves it in place, so a tenant created again under the same
/// id continues above the fences its old incarnation handed out.
const FENCES: TableDefinition<&str, u64> = TableDefinition::new("fences");

/// Batches waiting for the writer before pools refuse writes as overloaded.
const QUEUE: usize = 65_536;
/// How often an idle writer checks that its database file is still in place.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Batches written in one transaction at most.
const MAX_GROUP: usize = 8_192;

/// A live session as stored (under the hash of its secret).
#[derive(Serialize, Deserialize)]
struct SessionRow {
    id: SessionId,
    user: UserId,
    client: Option<String>,
    started_at: Timestamp,
    last_heartbeat_at: Timestamp,
    #[serde(default)]
    fence: u64,
}

/// An ended session as stored (under the hash of its secret) while it is remembered.
#[derive(Serialize, Deserialize)]
struct EndedRow {
    id: SessionId,
    #[serde(flatten)]
    tombstone: Tombstone,
}

/// A waitlist ticket as stored: in line, or ended and remembered.
#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum TicketRow {
    Waiting {
        id: SessionId,
        user: UserId,
        client: Option<String>,
        queued_at: Timestamp,
        seq: u64,
    },
    Ended {
        id: SessionId,
        #[serde(flatten)]
        tombstone: Tombstone,
    },
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct RedbConfig {
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// How long sessions of a deleted tenant are remembered (as the engine's
    /// [`crate::pool::Retention::ended_for`]).
    pub orphan_retention: Duration,
}

impl Default for RedbConfig {
    fn default() -> Self {
        RedbConfig {
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            orphan_retention: crate::pool::Retention::default().ended_for,
        }
    }
}

/// The redb store.
pub struct RedbStore {
    db: Arc<Database>,
    tx: Sender<(Encoded, Done)>,
    /// Batches submitted and not yet written.
    queued: Arc<AtomicUsize>,
    /// Why writes can no longer be made durable, once known.
    failure: Arc<Mutex<Option<String>>>,
    clock: Arc<dyn Clock>,
    orphan_retention: Duration,
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
        prepare_data_dir(dir)?;
        let path = dir.join(DB_FILE);
        owner_only(&path)?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => in_use(dir),
            e => format!(
                "cannot open the database {}: {e} (corrupt, or not a usher database?)",
                path.display()
            ),
        })?;
        // Only read while the database is locked, so it names whoever holds the lock.
        let _ = fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id()));
        stamp_schema(&db, &path)?;
        let placed = Placement::of(&path)
            .map_err(|e| format!("cannot open the database {}: {e}", path.display()))?;
        let db = Arc::new(db);
        // Unbounded: pools ask `has_room` before they change anything, so a batch is
        // never refused after its pool applied it.
        let (tx, rx) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let failure = Arc::new(Mutex::new(None));
        let usage = load_usage_book(&db).map_err(|e| e.to_string())?;
        let writer = Writer {
            db: db.clone(),
            clock: clock.clone(),
            retention: config.audit_retention,
            orphan_retention: config.orphan_retention,
            usage,
            next_seq: next_seq(&db).map_err(|e| e.to_string())?,
            pruned_at: None,
            placed,
            queued: queued.clone(),
            failure: failure.clone(),
        };
        thread::Builder::new()
            .name("usher-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the store writer: {e}"))?;
        Ok(RedbStore {
            db,
            tx,
            queued,
            failure,
            clock,
            orphan_retention: config.orphan_retention,
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Why the database cannot be opened while another process holds its lock: the pid
/// written in [`PID_FILE`] by the process that holds it, when there is one.
fn in_use(dir: &Path) -> String {
    let pid = fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    let who = match pid {
        Some(pid) if pid == std::process::id() => "this process already".to_string(),
        Some(pid) => format!("another Usher (pid {pid})"),
        None => "another Usher".to_string(),
    };
    format!(
        "the data dir {} is in use: {who} has its database open. The database is fine; \
         stop that server first, or give this one another --data-dir",
        dir.display()
    )
}

/// Makes sure `dir` is a directory this process can write in, creating it if needed
/// with access for its owner only (0700 on Unix). A directory that exists keeps the
/// mode its operator gave it; the files in it are the owner's only either way.
pub fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "data dir {} exists and is not a directory",
            dir.display()
        ));
    }
    let existed = dir.exists();
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
    #[cfg(unix)]
    if existed {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir).map_or(0, |m| m.permissions().mode());
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the data dir is open to other users; chmod 700 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = existed;
    let probe: PathBuf = dir.join(".usher-write-test");
    fs::write(&probe, b"")
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| format!("data dir {} is not writable: {e}", dir.display()))
}

/// Creates the database file for its owner only (0600 on Unix), or makes an existing
/// one so: it holds every tenant's state.
fn owner_only(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |e: std::io::Error| format!("cannot open the database {}: {e}", path.display());
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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
        txn.open_table(GROUPS).map_err(|e| fail(&e))?;
        txn.open_table(SESSIONS).map_err(|e| fail(&e))?;
        txn.open_table(ENDED).map_err(|e| fail(&e))?;
        txn.open_table(RECORDS).map_err(|e| fail(&e))?;
        txn.open_table(USAGE).map_err(|e| fail(&e))?;
        txn.open_table(AUDIT).map_err(|e| fail(&e))?;
        txn.open_table(ORPHANS).map_err(|e| fail(&e))?;
        txn.open_table(FENCES).map_err(|e| fail(&e))?;
        txn.open_table(WEBHOOKS).map_err(|e| fail(&e))?;
        txn.open_table(TICKETS).map_err(|e| fail(&e))?;
        txn.open_table(KEPT).map_err(|e| fail(&e))?;
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
    fn put_webhook_entry(&self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        if let Some(failure) = self.failure() {
            return Err(Error::Internal(format!("storage: {failure}")));
        }
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(WEBHOOKS).map_err(storage)?;
            match value {
                Some(value) => drop(table.insert(key, value).map_err(storage)?),
                None => drop(table.remove(key).map_err(storage)?),
            }
        }
        txn.commit().map_err(storage)
    }

    fn webhook_entry(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(WEBHOOKS).map_err(storage)?;
        let value = table.get(key).map_err(storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(WEBHOOKS).map_err(storage)?;
        let mut entries = Vec::new();
        for row in table.range(prefix..).map_err(storage)? {
            let (key, value) = row.map_err(storage)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            entries.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(entries)
    }

    fn submit(&self, batch: Batch, done: Done) {
        // Encoding happens here, on the submitting pool's thread, so the one writer
        // thread only inserts.
        let encoded = match Encoded::of(batch) {
            Ok(encoded) => encoded,
            Err(error) => return done(Err(error)),
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(failed) = self.tx.send((encoded, done)) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            (failed.0 .1)(Err(Error::Internal("the store writer has stopped".into())));
        }
    }

    fn has_room(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < QUEUE
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
                    groups: Vec::new(),
                    records: Records::default(),
                    api_key: None,
                    fence: 0,
                    tickets: Vec::new(),
                    ended_tickets: Vec::new(),
                    kept: Vec::new(),
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
            .open_table(GROUPS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, groups) = row.map_err(storage)?;
            let (tenant, user) = key.value();
            if let Some(pool) = pools.get_mut(tenant) {
                pool.groups
                    .push((UserId::parse(user)?, from_json(groups.value())?));
            }
        }
        for row in txn
            .open_table(KEPT)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, seats) = row.map_err(storage)?;
            let (tenant, user) = key.value();
            if let Some(pool) = pools.get_mut(tenant) {
                pool.kept.push((UserId::parse(user)?, seats.value()));
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
            if let Some(pool) = pools.get_mut(tenant) {
                let row: SessionRow = from_json(value.value())?;
                pool.sessions.push(SessionRecord {
                    id: row.id,
                    secret: SecretHash::from_bytes(secret.to_be_bytes()),
                    user: row.user,
                    client: row.client,
                    started_at: row.started_at,
                    last_heartbeat_at: row.last_heartbeat_at,
                    fence: row.fence,
                });
            }
        }
        for row in txn
            .open_table(ENDED)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, value) = row.map_err(storage)?;
            if let Some(pool) = pools.get_mut(key.value().0) {
                let row: EndedRow = from_json(value.value())?;
                pool.ended.push((row.id, row.tombstone));
            }
        }
        for row in txn
            .open_table(TICKETS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (key, value) = row.map_err(storage)?;
            let (tenant, secret) = key.value();
            if let Some(pool) = pools.get_mut(tenant) {
                match from_json(value.value())? {
                    TicketRow::Waiting {
                        id,
                        user,
                        client,
                        queued_at,
                        seq,
                    } => pool.tickets.push(TicketRecord {
                        id,
                        secret: SecretHash::from_bytes(secret.to_be_bytes()),
                        user,
                        client,
                        queued_at,
                        seq,
                    }),
                    TicketRow::Ended { id, tombstone } => pool.ended_tickets.push((id, tombstone)),
                }
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
            if let Some(pool) = pools.get_mut(tenant.value()) {
                pool.api_key = Some(hash);
            }
        }
        let mut fences = Vec::new();
        for row in txn
            .open_table(FENCES)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (tenant, high) = row.map_err(storage)?;
            if let Some(pool) = pools.get_mut(tenant.value()) {
                pool.fence = high.value();
            }
            fences.push((TenantId::parse(tenant.value())?, high.value()));
        }
        let forget_before = self.clock.now() - self.orphan_retention;
        let mut orphans = Vec::new();
        for row in txn
            .open_table(ORPHANS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (id, tombstone) = row.map_err(storage)?;
            let tombstone: Tombstone = from_json(tombstone.value())?;
            if tombstone.ended_at > forget_before {
                orphans.push((SessionId::from_u64(id.value()), tombstone));
            }
        }
        let pools = pools
            .into_values()
            .map(|mut pool| {
                pool.ended.sort_by_key(|(_, t)| t.ended_at);
                pool.tickets.sort_by_key(|t| t.seq);
                pool
            })
            .collect();
        Ok(Loaded {
            pools,
            usage: read_usage(&self.db)?,
            orphans,
            fences,
        })
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage, Error> {
        let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let since = query.since.as_millis();
        // A row holds events no later than its key's time, so every event at or after
        // `from` is in a row keyed at or after it.
        let from = after.map_or(since, |(ms, _)| ms.max(since));
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(AUDIT).map_err(storage)?;
        let name = tenant.as_str();
        let mut events = Vec::new();
        'rows: for row in table
            .range((name, from, 0)..=(name, u64::MAX, u64::MAX))
            .map_err(storage)?
        {
            let (_, value) = row.map_err(storage)?;
            let stored: Vec<AuditEvent> = from_json(value.value())?;
            for event in stored {
                let key = (event.event.at.as_millis(), event.seq);
                if key.0 < since || after.is_some_and(|cursor| key <= cursor) {
                    continue;
                }
                events.push(event);
                if events.len() > query.limit {
                    break 'rows;
                }
            }
        }
        let more = events.len() > query.limit;
        events.truncate(query.limit);
        let next_cursor = if more {
            events.last().map(cursor_of)
        } else {
            None
        };
        Ok(EventPage {
            events: with_ids(events),
            next_cursor,
        })
    }
}

/// One write, encoded by the submitting thread.
enum Op {
    Licence(Vec<u8>),
    ApiKey([u8; 32]),
    User(String, u8),
    /// A user and their groups, as JSON.
    Groups(String, Vec<u8>),
    UserRemoved(String),
    /// A user and the seats kept for them.
    Kept(String, u32),
    /// The secret's key, the row, and the session's fence.
    SessionStarted(u128, Vec<u8>, u64),
    SessionEnded(u128, Vec<u8>),
    SessionForgotten(u128),
    SessionWithdrawn(u128),
    Records(Vec<u8>),
    /// A ticket's row (in line or ended) under its secret's key.
    Ticket(u128, Vec<u8>),
    TicketForgotten(u128),
    Deleted(Vec<(u64, Vec<u8>)>),
}

/// A batch as the writer takes it: its writes and audit events encoded, its events
/// kept for the usage report.
struct Encoded {
    tenant: TenantId,
    ops: Vec<Op>,
    audit: Vec<(u64, Vec<u8>)>,
    events: Vec<crate::events::Event>,
}

impl Encoded {
    fn of(batch: Batch) -> Result<Encoded, Error> {
        let mut ops = Vec::with_capacity(batch.changes.len());
        for change in batch.changes {
            ops.push(match change {
                Change::Licence(licence) => Op::Licence(to_json(&licence)?),
                Change::ApiKey(hash) => Op::ApiKey(hash),
                Change::User { user, assigned } => Op::User(user.to_string(), u8::from(assigned)),
                Change::Groups { user, groups } => Op::Groups(user.to_string(), to_json(&groups)?),
                Change::UserRemoved(user) => Op::UserRemoved(user.to_string()),
                Change::Kept { user, seats } => Op::Kept(user.to_string(), seats),
                Change::SessionStarted(record) => Op::SessionStarted(
                    secret_key(&record.secret),
                    to_json(&SessionRow {
                        id: record.id,
                        user: record.user,
                        client: record.client,
                        started_at: record.started_at,
                        last_heartbeat_at: record.last_heartbeat_at,
                        fence: record.fence,
                    })?,
                    record.fence,
                ),
                Change::SessionEnded { id, tombstone } => Op::SessionEnded(
                    secret_key(&tombstone.secret),
                    to_json(&EndedRow { id, tombstone })?,
                ),
                Change::SessionForgotten { secret, .. } => {
                    Op::SessionForgotten(secret_key(&secret))
                }
                Change::SessionWithdrawn { secret, .. } => {
                    Op::SessionWithdrawn(secret_key(&secret))
                }
                Change::Records(records) => Op::Records(to_json(&records)?),
                Change::TicketQueued(record) => Op::Ticket(
                    secret_key(&record.secret),
                    to_json(&TicketRow::Waiting {
                        id: record.id,
                        user: record.user,
                        client: record.client,
                        queued_at: record.queued_at,
                        seq: record.seq,
                    })?,
                ),
                Change::TicketEnded { id, tombstone } => Op::Ticket(
                    secret_key(&tombstone.secret),
                    to_json(&TicketRow::Ended { id, tombstone })?,
                ),
                Change::TicketForgotten { secret, .. } => Op::TicketForgotten(secret_key(&secret)),
                Change::Deleted { orphans } => Op::Deleted(
                    orphans
                        .iter()
                        .map(|(id, tombstone)| Ok((id.as_u64(), to_json(tombstone)?)))
                        .collect::<Result<_, Error>>()?,
                ),
            });
        }
        let audit = batch
            .events
            .iter()
            .map(|event| Ok((event.at.as_millis(), to_json(event)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Encoded {
            tenant: batch.tenant,
            ops,
            audit,
            events: batch.events,
        })
    }
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    orphan_retention: Duration,
    usage: UsageBook,
    next_seq: u64,
    pruned_at: Option<Timestamp>,
    placed: Placement,
    queued: Arc<AtomicUsize>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(mut self, rx: Receiver<(Encoded, Done)>) {
        loop {
            let first = match rx.recv_timeout(WATCH_EVERY) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: notice a deleted data dir before anyone writes again.
                    if let Err(error) = self.placed.check() {
                        self.fail(&error);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
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
                self.fail(&error.to_string());
            }
            self.queued.fetch_sub(group.len(), Ordering::Relaxed);
            for (_, done) in group {
                done(result.clone());
            }
        }
    }

    fn fail(&self, why: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            tracing::error!(why, "the store can no longer make writes durable");
            *failure = Some(why.to_string());
        }
    }

    /// Writes a group of batches in one transaction and commits it (fsync).
    fn write(&mut self, group: &[(Encoded, Done)]) -> Result<(), Error> {
        if let Some(why) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(Error::Internal(why));
        }
        // A commit into a database file that is no longer linked would be lost.
        self.placed.check().map_err(Error::Internal)?;
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut tables = Tables::open(&txn)?;
            let mut touched: BTreeSet<(TenantId, NaiveDate)> = BTreeSet::new();
            let mut rows: BTreeMap<&str, (u64, Vec<u8>)> = BTreeMap::new();
            // The highest fence each tenant admitted in this group: one write per
            // tenant and commit, in the same commit as its sessions.
            let mut fences: BTreeMap<&str, u64> = BTreeMap::new();
            let first_seq = self.next_seq;
            for (batch, _) in group {
                let tenant = batch.tenant.as_str();
                for op in &batch.ops {
                    tables.apply(tenant, op)?;
                    if let Op::SessionStarted(_, _, fence) = op {
                        let high = fences.entry(tenant).or_default();
                        *high = (*high).max(*fence);
                    }
                }
                let deleted = batch.ops.iter().any(|op| matches!(op, Op::Deleted(_)));
                if deleted {
                    // The audit log goes with its tenant, this group's rows included.
                    rows.remove(tenant);
                } else if !batch.audit.is_empty() {
                    let row = rows.entry(tenant).or_default();
                    for (at, bytes) in &batch.audit {
                        // `{"seq":N,` + the event's own fields.
                        row.1.push(if row.1.is_empty() { b'[' } else { b',' });
                        row.1
                            .extend_from_slice(format!("{{\"seq\":{},", self.next_seq).as_bytes());
                        row.1.extend_from_slice(&bytes[1..]);
                        row.0 = row.0.max(*at);
                        self.next_seq += 1;
                    }
                }
                for event in &batch.events {
                    if let Some(earlier) = self.usage.record(event) {
                        touched.insert((batch.tenant.clone(), earlier));
                    }
                    touched.insert((batch.tenant.clone(), event.at.day()));
                }
            }
            for (tenant, high) in fences {
                let stored = tables
                    .fences
                    .get(tenant)
                    .map_err(storage)?
                    .map_or(0, |v| v.value());
                if high > stored {
                    tables.fences.insert(tenant, high).map_err(storage)?;
                }
            }
            for (tenant, (last_at, mut json)) in rows {
                json.push(b']');
                tables
                    .audit
                    .insert((tenant, last_at, first_seq), json.as_slice())
                    .map_err(storage)?;
            }
            for (tenant, day) in &touched {
                let key = day.to_string();
                match self.usage.export(tenant, *day) {
                    Some(stored) => {
                        tables
                            .usage
                            .insert(
                                (tenant.as_str(), key.as_str()),
                                to_json(&stored)?.as_slice(),
                            )
                            .map_err(storage)?;
                    }
                    None => {
                        tables
                            .usage
                            .remove((tenant.as_str(), key.as_str()))
                            .map_err(storage)?;
                    }
                }
            }
            tables
                .meta
                .insert("audit_seq", self.next_seq - 1)
                .map_err(storage)?;
            self.prune_audit(&mut tables)?;
        }
        txn.commit().map_err(storage)?;
        // Unlinked while committing: the commit went to a file that is gone.
        self.placed.check().map_err(Error::Internal)
    }

    /// Drops audit events past the retention, at most once an hour.
    fn prune_audit(&mut self, tables: &mut Tables<'_>) -> Result<(), Error> {
        let now = self.clock.now();
        if self
            .pruned_at
            .is_some_and(|at| now.saturating_since(at) < Duration::from_secs(3600))
        {
            return Ok(());
        }
        self.pruned_at = Some(now);
        let orphans_before = now - self.orphan_retention;
        tables
            .orphans
            .retain(|_, row| {
                serde_json::from_slice::<Tombstone>(row).is_ok_and(|t| t.ended_at > orphans_before)
            })
            .map_err(storage)?;
        let cutoff = (now - self.retention).as_millis();
        let tenants: Vec<String> = tables
            .tenants
            .iter()
            .map_err(storage)?
            .filter_map(|row| row.ok().map(|(k, _)| k.value().to_string()))
            .collect();
        for tenant in tenants {
            let t = tenant.as_str();
            tables
                .audit
                .retain_in((t, 0, 0)..(t, cutoff, 0), |_, _| false)
                .map_err(storage)?;
        }
        Ok(())
    }
}

type Bytes = &'static [u8];

/// Every table, opened once per transaction.
struct Tables<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    tenants: redb::Table<'txn, &'static str, Bytes>,
    api_keys: redb::Table<'txn, &'static str, Bytes>,
    users: redb::Table<'txn, (&'static str, &'static str), u8>,
    groups: redb::Table<'txn, (&'static str, &'static str), Bytes>,
    sessions: redb::Table<'txn, (&'static str, u128), Bytes>,
    ended: redb::Table<'txn, (&'static str, u128), Bytes>,
    records: redb::Table<'txn, &'static str, Bytes>,
    usage: redb::Table<'txn, (&'static str, &'static str), Bytes>,
    audit: redb::Table<'txn, (&'static str, u64, u64), Bytes>,
    orphans: redb::Table<'txn, u64, Bytes>,
    fences: redb::Table<'txn, &'static str, u64>,
    tickets: redb::Table<'txn, (&'static str, u128), Bytes>,
    kept: redb::Table<'txn, (&'static str, &'static str), u32>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, Error> {
        Ok(Tables {
            meta: txn.open_table(META).map_err(storage)?,
            tenants: txn.open_table(TENANTS).map_err(storage)?,
            api_keys: txn.open_table(API_KEYS).map_err(storage)?,
            users: txn.open_table(USERS).map_err(storage)?,
            groups: txn.open_table(GROUPS).map_err(storage)?,
            sessions: txn.open_table(SESSIONS).map_err(storage)?,
            ended: txn.open_table(ENDED).map_err(storage)?,
            records: txn.open_table(RECORDS).map_err(storage)?,
            usage: txn.open_table(USAGE).map_err(storage)?,
            audit: txn.open_table(AUDIT).map_err(storage)?,
            orphans: txn.open_table(ORPHANS).map_err(storage)?,
            fences: txn.open_table(FENCES).map_err(storage)?,
            tickets: txn.open_table(TICKETS).map_err(storage)?,
            kept: txn.open_table(KEPT).map_err(storage)?,
        })
    }

    fn apply(&mut self, tenant: &str, op: &Op) -> Result<(), Error> {
        match op {
            Op::Licence(bytes) => {
                self.tenants
                    .insert(tenant, bytes.as_slice())
                    .map_err(storage)?;
            }
            Op::ApiKey(hash) => {
                self.api_keys
                    .insert(tenant, hash.as_slice())
                    .map_err(storage)?;
            }
            Op::User(user, assigned) => {
                self.users
                    .insert((tenant, user.as_str()), *assigned)
                    .map_err(storage)?;
            }
            Op::Groups(user, groups) if groups.as_slice() == b"[]" => {
                self.groups
                    .remove((tenant, user.as_str()))
                    .map_err(storage)?;
            }
            Op::Groups(user, groups) => {
                self.groups
                    .insert((tenant, user.as_str()), groups.as_slice())
                    .map_err(storage)?;
            }
            Op::UserRemoved(user) => {
                self.users
                    .remove((tenant, user.as_str()))
                    .map_err(storage)?;
                self.groups
                    .remove((tenant, user.as_str()))
                    .map_err(storage)?;
                self.kept.remove((tenant, user.as_str())).map_err(storage)?;
            }
            Op::Kept(user, 0) => {
                self.kept.remove((tenant, user.as_str())).map_err(storage)?;
            }
            Op::Kept(user, seats) => {
                self.kept
                    .insert((tenant, user.as_str()), *seats)
                    .map_err(storage)?;
            }
            Op::SessionStarted(secret, bytes, _) => {
                self.sessions
                    .insert((tenant, *secret), bytes.as_slice())
                    .map_err(storage)?;
            }
            Op::SessionEnded(secret, bytes) => {
                self.sessions.remove((tenant, *secret)).map_err(storage)?;
                self.ended
                    .insert((tenant, *secret), bytes.as_slice())
                    .map_err(storage)?;
            }
            Op::SessionForgotten(secret) => {
                self.ended.remove((tenant, *secret)).map_err(storage)?;
            }
            Op::SessionWithdrawn(secret) => {
                self.sessions.remove((tenant, *secret)).map_err(storage)?;
            }
            Op::Records(bytes) => {
                self.records
                    .insert(tenant, bytes.as_slice())
                    .map_err(storage)?;
            }
            Op::Ticket(secret, bytes) => {
                self.tickets
                    .insert((tenant, *secret), bytes.as_slice())
                    .map_err(storage)?;
            }
            Op::TicketForgotten(secret) => {
                self.tickets.remove((tenant, *secret)).map_err(storage)?;
            }
            Op::Deleted(orphans) => {
                for (id, tombstone) in orphans {
                    self.orphans
                        .insert(*id, tombstone.as_slice())
                        .map_err(storage)?;
                }
                self.audit
                    .retain_in((tenant, 0, 0)..=(tenant, u64::MAX, u64::MAX), |_, _| false)
                    .map_err(storage)?;
                self.tenants.remove(tenant).map_err(storage)?;
                self.api_keys.remove(tenant).map_err(storage)?;
                self.records.remove(tenant).map_err(storage)?;
                self.users
                    .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                    .map_err(storage)?;
                self.groups
                    .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                    .map_err(storage)?;
                self.sessions
                    .retain_in((tenant, 0)..=(tenant, u128::MAX), |_, _| false)
                    .map_err(storage)?;
                self.ended
                    .retain_in((tenant, 0)..=(tenant, u128::MAX), |_, _| false)
                    .map_err(storage)?;
                self.tickets
                    .retain_in((tenant, 0)..=(tenant, u128::MAX), |_, _| false)
                    .map_err(storage)?;
                self.kept
                    .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                    .map_err(storage)?;
                self.usage
                    .retain_in((tenant, "")..=(tenant, "\u{10ffff}"), |_, _| false)
                    .map_err(storage)?;
            }
        }
        Ok(())
    }
}

/// Where the database file is, to notice when it is deleted or replaced under a
/// running server: redb would go on writing to the unlinked file, and everything
/// acknowledged after would be lost.
struct Placement {
    path: PathBuf,
    file: fs::File,
}

impl Placement {
    fn of(path: &Path) -> std::io::Result<Placement> {
        Ok(Placement {
            path: path.to_path_buf(),
            file: fs::File::open(path)?,
        })
    }

    #[cfg(unix)]
    fn check(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let open = self
            .file
            .metadata()
            .map_err(|e| format!("cannot check the database file: {e}"))?;
        let gone = || {
            format!(
                "the database file {} was deleted or replaced while the server ran; restart the server",
                self.path.display()
            )
        };
        if open.nlink() == 0 {
            return Err(gone());
        }
        match fs::metadata(&self.path) {
            Ok(now) if now.ino() == open.ino() && now.dev() == open.dev() => Ok(()),
            _ => Err(gone()),
        }
    }

    #[cfg(not(unix))]
    fn check(&self) -> Result<(), String> {
        if self.path.exists() {
            Ok(())
        } else {
            Err(format!(
                "the database file {} was deleted while the server ran; restart the server",
                self.path.display()
            ))
        }
    }
}

fn secret_key(secret: &SecretHash) -> u128 {
    u128::from_be_bytes(secret.to_bytes())
}

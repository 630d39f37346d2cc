-- One tenant's licence pool on Redis: every rule of SPEC §1 that changes or reads a
-- pool, for a batch of requests, atomically, on Redis time.
--
-- A library of Redis Functions (Redis 7): loaded once with FUNCTION LOAD and called
-- with FCALL, so the helpers below are made once per load rather than once per call.
-- The node names the library and registers `pool` under names taken from this text's
-- hash (src/redis/mod.rs), so nodes running different versions never share one.
--
-- The rules are those of src/admission.rs and src/pool.rs; the rule suite runs against
-- both backends with the same expected answers.
--
-- KEYS (all share the hash tag {tenant}, so the script touches one slot):
--   1 meta   hash: licence, incarnation, API key hash, records, counters, and the seats
--            held by each group the licence reserves seats for or caps ("g:" .. group)
--   2 sess   hash: session id -> session (JSON: u user, c client, h secret hash, st
--            login time, f fence, i the idle timeout its deadline was last set with;
--            a session written before `i` has hb and ex, its last heartbeat and
--            deadline, instead)
--   3 due    zset: session id by idle deadline (ms): a heartbeat moves only this
--   4 start  zset: session id by login time (ms); same scores order by id
--   5 users  hash: user -> account (JSON: a = assigned, s = live session ids, g = the
--            user's groups, sorted, absent when none)
--   6 order  zset: user ids, all scored 0, read in byte order
--   7 ended  hash: session id -> "reason secret ended_at"
--   8 endq   zset: ended session id by end time (ms)
--   9 log    stream: the tenant's events, bounded
--  10 fence  string: the tenant's fence counter (outlives the tenant)
--  11 idle   zset: while the licence displaces, the order seats are displaced in (see
--            index_seat): "fence:session" or "first fence:user" by latest deadline (ms)
--  12 grace  zset: seats kept under the reload grace, "released session:user" by the
--            moment the grace lapses (ms); the account lists its own (`k`, oldest
--            first) and meta counts them all (`held`)
--  13 tk     hash: waitlist ticket id -> ticket (JSON: u user, c client, h secret hash,
--            q queued at, ex idle deadline, n order number; once a seat is held for
--            it, r the end of its claim window and o whether it holds a seat)
--  14 line   zset: the tickets waiting for a seat, by order number: ZRANK is a place
--            in line
--  15 tdue   zset: every ticket by its deadline (ms): its idle deadline while it
--            waits, the end of its claim window once ready
--  16 tended hash: ended ticket id -> "reason secret ended_at"
--  17 tendq  zset: ended ticket id by end time (ms)
-- ARGV:
--   1 the moment to use, in ms; empty (always, in a server) for Redis TIME
--   2 how long ended sessions are remembered (ms)
--   3 how many ended sessions are remembered at most
--   4 events the log keeps at most
--   5 the requests: a JSON array, answered in order
--   6 the channel every node listens on for the live channel (SPEC §11): once a call
--     has logged events, the script publishes what a node's streams and sockets need
--     to hear, {t = tenant, d = deleted, e = {"session reason", ...}}, with the tickets
--     that ended among the sessions
--   7 the tenant's id, for that message

-- What one call is about, set by `begin` at the start of every call: a library's
-- locals outlive its calls, so nothing of one call may be left for the next.
local META, SESS, DUE, START, USERS, ORDER, ENDED, ENDQ, LOG, FENCE, IDLE, GRACE
local TICKETS, LINE, TDUE, TENDED, TENDQ
local ENDED_FOR, ENDED_CAP, LOG_CAP, LIVE, TENANT
local requests
local now -- Redis time, unless a test harness gives the moment (see RedisClock)
local events
local meta -- the licence and counters, read once per call
local swept -- whether the call swept the tenant

local function begin(KEYS, ARGV)
  META, SESS, DUE, START, USERS, ORDER, ENDED, ENDQ, LOG, FENCE, IDLE, GRACE =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
    KEYS[11], KEYS[12]
  TICKETS, LINE, TDUE, TENDED, TENDQ = KEYS[13], KEYS[14], KEYS[15], KEYS[16], KEYS[17]
  ENDED_FOR, ENDED_CAP, LOG_CAP = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  requests = cjson.decode(ARGV[5])
  LIVE, TENANT = ARGV[6], ARGV[7]
  now = tonumber(ARGV[1])
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  events, meta, swept = {}, nil, false
end

local function load_meta()
  local raw = redis.call('HGETALL', META)
  if #raw == 0 then
    meta = nil
    return
  end
  local m = {}
  for i = 1, #raw, 2 do
    m[raw[i]] = raw[i + 1]
  end
  for _, f in ipairs({ 'seats', 'idle', 'max', 'active', 'assigned', 'rc', 'rat', 'rpd', 'rpm', 'hold', 'msu',
    'grace', 'held', 'qheld', 'qseq' }) do
    m[f] = tonumber(m[f] or '0')
  end
  -- A pool written before the waitlist: the default claim window.
  m.qclaim = tonumber(m.qclaim or '') or 60000
  -- A pool written before the seat policies: its limit is its seats.
  m.lim = tonumber(m.lim or '') or m.seats
  m.gres = cjson.decode(m.gres or '{}')
  m.gmax = cjson.decode(m.gmax or '{}')
  m.grouped = next(m.gres) ~= nil or next(m.gmax) ~= nil
  meta = m
end

-- Seats held now, as PoolState::seats_in_use: under the concurrent model, seats kept
-- under the reload grace count too.
local function seats_in_use()
  if meta.model == 'named' then
    return meta.assigned
  elseif meta.model == 'concurrent' and meta.per == 'session' then
    return redis.call('HLEN', SESS) + meta.held
  elseif meta.model == 'concurrent' then
    return meta.active + meta.held
  end
  return meta.active
end

local function emit(e)
  e.at = now
  local fields = {}
  for k, v in pairs(e) do
    fields[#fields + 1] = k
    fields[#fields + 1] = tostring(v)
  end
  redis.call('XADD', LOG, 'MAXLEN', '~', LOG_CAP, '*', unpack(fields))
  events[#events + 1] = e
end

local function licence_fields(e)
  e.model, e.seats, e.per, e.idle, e.max = meta.model, meta.seats, meta.per or '', meta.idle, meta.max
  e.pol = meta.pol or ''
  return e
end

-- The licence's fields as the pool keeps them in its meta hash. `pol` is the policies'
-- wire form, kept whole for the views; `lim`, `onl`, `hold` and `msu` are what the rules
-- read of them.
local function licence_meta(l)
  return { 'model', l.model, 'seats', l.seats, 'per', l.per, 'idle', l.idle, 'max', l.max,
    'lim', l.lim, 'onl', l.onl, 'hold', l.hold, 'msu', l.msu, 'pol', l.pol,
    'gres', l.gres, 'gmax', l.gmax, 'grace', l.grace, 'qclaim', l.qclaim }
end

local function account(user)
  local raw = redis.call('HGET', USERS, user)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function save_account(user, acc)
  if acc.g and #acc.g == 0 then
    acc.g = nil
  end
  if acc.k and #acc.k == 0 then
    acc.k = nil
  end
  if #acc.s == 0 then
    -- cjson writes an empty table as an object; keep the list a list.
    local groups = acc.g and (',"g":' .. cjson.encode(acc.g)) or ''
    local kept = acc.k and (',"k":' .. cjson.encode(acc.k)) or ''
    redis.call('HSET', USERS, user, '{"a":' .. acc.a .. ',"s":[]' .. groups .. kept .. '}')
  else
    redis.call('HSET', USERS, user, cjson.encode(acc))
  end
end

-- Groups, as PoolState counts them: the seats held by members of each group the
-- licence reserves seats for or caps, a member of several counting in each.
local function counts_group(g)
  return meta.gres[g] ~= nil or meta.gmax[g] ~= nil
end

local function group_held(g)
  return tonumber(meta['g:' .. g] or '0')
end

local function count_group_seats(groups, delta)
  for _, g in ipairs(groups or {}) do
    if counts_group(g) then
      local held = math.max(group_held(g) + delta, 0)
      meta['g:' .. g] = held
      redis.call('HSET', META, 'g:' .. g, held)
    end
  end
end

-- The seats an account holds: one for any number of tabs, or one per tab, and the
-- seats kept for it under the reload grace.
local function account_seats(acc)
  local kept = acc.k and #acc.k or 0
  if meta.per == 'session' then
    return #acc.s + kept
  end
  return (#acc.s > 0 and 1 or 0) + kept
end

-- A seat kept for a user counts for their groups until it is taken back or lapses.
local function count_kept_seat(acc, delta)
  if meta.grouped then
    count_group_seats(acc.g, delta)
  end
end

-- Counts every group's seats afresh, after a licence change.
local function recount_group_seats()
  for k, _ in pairs(meta) do
    if string.sub(k, 1, 2) == 'g:' then
      redis.call('HDEL', META, k)
      meta[k] = nil
    end
  end
  if meta.model ~= 'concurrent' or not meta.grouped then
    return
  end
  local all = redis.call('HGETALL', USERS)
  for i = 1, #all, 2 do
    local acc = cjson.decode(all[i + 1])
    if acc.g then
      local seats = account_seats(acc)
      if seats > 0 then
        count_group_seats(acc.g, seats)
      end
    end
  end
end

-- The reload grace, as src/pool/graces.rs: a released seat kept for its user.
local function set_held(n)
  meta.held = n
  redis.call('HSET', META, 'held', n)
end

local function keep_seat(user, acc, sid)
  local member = sid .. ':' .. user
  redis.call('ZADD', GRACE, now + meta.grace, member)
  acc.k = acc.k or {}
  acc.k[#acc.k + 1] = member
  set_held(meta.held + 1)
  count_kept_seat(acc, 1)
end

-- Gives the user back the kept seat that lapses first (the caller saves `acc`).
local function take_kept(acc)
  local member = table.remove(acc.k, 1)
  redis.call('ZREM', GRACE, member)
  set_held(meta.held - 1)
  count_kept_seat(acc, -1)
end

local function lapse_kept()
  -- In the order the pool core lets them go: by the end of their grace, then by user.
  local raw_due = redis.call('ZRANGEBYSCORE', GRACE, '-inf', now, 'WITHSCORES')
  local due = {}
  for i = 1, #raw_due, 2 do
    local member = raw_due[i]
    due[#due + 1] = { member = member, until_ = tonumber(raw_due[i + 1]),
      user = string.sub(member, string.find(member, ':', 1, true) + 1) }
  end
  table.sort(due, function(a, b)
    if a.until_ ~= b.until_ then
      return a.until_ < b.until_
    end
    return a.user < b.user
  end)
  for _, entry in ipairs(due) do
    local member, user = entry.member, entry.user
    local raw = redis.call('HGET', USERS, user)
    if raw then
      local acc = cjson.decode(raw)
      for i, m in ipairs(acc.k or {}) do
        if m == member then
          table.remove(acc.k, i)
          count_kept_seat(acc, -1)
          break
        end
      end
      save_account(user, acc)
    end
    redis.call('ZREM', GRACE, member)
    set_held(math.max(meta.held - 1, 0))
    emit({ type = 'grace_lapsed', user = user, seats_in_use = seats_in_use() })
  end
end

-- The seats held by members of each group counted, for the view: a list of pairs, as
-- an empty table would not read back as an object.
local function group_seats()
  local seats = {}
  for k, v in pairs(meta) do
    if string.sub(k, 1, 2) == 'g:' then
      seats[#seats + 1] = { string.sub(k, 3), tonumber(v) }
    end
  end
  return seats
end

local function is_member(groups, g)
  for _, mine in ipairs(groups or {}) do
    if mine == g then
      return true
    end
  end
  return false
end

-- The first of the user's groups holding as many seats as its cap allows, and the
-- free seats still held back for groups once this user took a seat (as
-- PoolState::group_at_max and PoolState::reserved_for_others).
local function group_facts(groups)
  local at_max, max = nil, nil
  for _, g in ipairs(groups or {}) do
    local cap = meta.gmax[g]
    if cap and group_held(g) >= cap then
      at_max, max = g, cap
      break
    end
  end
  local reserved = 0
  for g, n in pairs(meta.gres) do
    local unfilled = math.max(n - group_held(g), 0)
    if is_member(groups, g) then
      unfilled = math.max(unfilled - 1, 0)
    end
    reserved = reserved + unfilled
  end
  return at_max, max, reserved
end

-- The displacement order, kept only while the licence displaces, so that finding the
-- idlest seat reads its first entries rather than every seat equally idle. A seat is
-- ordered by its latest deadline, then by the fence it was taken with (of seats equally
-- idle, the one taken first goes), as PoolState::displace_idlest orders them: under a
-- seat per tab a seat is a session; under a seat per user, a user, by the latest
-- deadline of their tabs and the smallest fence of them. Fences are zero-padded so that
-- members of one score sort by fence.
local function index_kind()
  if meta and meta.model == 'concurrent' and meta.onl == 'displace_idlest' then
    return meta.per == 'session' and 'session' or 'user'
  end
  return nil
end

local function idle_member(fence, who)
  return string.format('%016.0f', fence) .. ':' .. who
end

-- A live session's idle deadline.
local function deadline(id)
  return tonumber(redis.call('ZSCORE', DUE, id))
end

-- Puts a user's seat in its place in the order (or takes it out once they hold none).
-- The member is remembered in the account (`m`), which the caller saves.
local function index_user(user, acc)
  if acc.m then
    redis.call('ZREM', IDLE, acc.m)
    acc.m = nil
  end
  local latest, first = nil, nil
  for _, sid in ipairs(acc.s) do
    local raw = redis.call('HGET', SESS, sid)
    if raw then
      local tab, ex = cjson.decode(raw), deadline(sid)
      if not latest or ex > latest then
        latest = ex
      end
      if not first or tab.f < first then
        first = tab.f
      end
    end
  end
  if latest then
    acc.m = idle_member(first, user)
    redis.call('ZADD', IDLE, latest, acc.m)
  end
end

-- A session's seat after it was taken or heartbeated. `acc` is the user's account
-- when the caller has it (and saves it); otherwise it is read and saved here.
local function index_seat(id, s, ex, acc)
  local kind = index_kind()
  if kind == 'session' then
    redis.call('ZADD', IDLE, ex, idle_member(s.f, id))
  elseif kind == 'user' then
    if acc then
      index_user(s.u, acc)
    else
      acc = account(s.u)
      if acc then
        index_user(s.u, acc)
        save_account(s.u, acc)
      end
    end
  end
end

-- Builds the order afresh: when a licence starts displacing or changes its seat.
local function reindex()
  redis.call('DEL', IDLE)
  local kind = index_kind()
  if kind == 'session' then
    local all = redis.call('HGETALL', SESS)
    for i = 1, #all, 2 do
      local s = cjson.decode(all[i + 1])
      redis.call('ZADD', IDLE, deadline(all[i]), idle_member(s.f, all[i]))
    end
  elseif kind == 'user' then
    local all = redis.call('HGETALL', USERS)
    for i = 1, #all, 2 do
      local acc = cjson.decode(all[i + 1])
      if #acc.s > 0 then
        acc.m = nil
        index_user(all[i], acc)
        save_account(all[i], acc)
      end
    end
  end
end

-- The waitlist of SPEC §10, as src/pool/waitlist.rs: a login at the limit of a licence
-- that queues gets a ticket and a place in line; a freed seat is held for the head of
-- the line for the claim window; while anyone waits, nobody outside the line takes a
-- seat. meta counts the seats held for tickets (`qheld`) and keeps the next order
-- number (`qseq`).
local function ticket(id)
  local raw = redis.call('HGET', TICKETS, id)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function save_ticket(id, t)
  redis.call('HSET', TICKETS, id, cjson.encode(t))
end

local function set_qheld(n)
  meta.qheld = n
  redis.call('HSET', META, 'qheld', n)
end

-- Its place in line (1 is next); 0 once a seat is held for it.
local function position(id, t)
  if t.r then
    return 0
  end
  return redis.call('ZRANK', LINE, id) + 1
end

-- Whether the user holds a seat that one more tab of theirs would share.
local function shares_a_seat(user)
  if meta.model ~= 'concurrent' or meta.per == 'session' then
    return false
  end
  local acc = account(user)
  return acc ~= nil and #acc.s > 0
end

-- Puts a ready ticket back in line at its old place.
local function unready(id, t)
  if t.o == 1 then
    set_qheld(meta.qheld - 1)
  end
  t.r, t.o = nil, nil
  save_ticket(id, t)
  redis.call('ZADD', TDUE, t.ex, id)
  redis.call('ZADD', LINE, t.n, id)
end

local function forget_oldest_ticket()
  local oldest = redis.call('ZRANGE', TENDQ, 0, 0)
  if #oldest > 0 then
    redis.call('ZREM', TENDQ, oldest[1])
    redis.call('HDEL', TENDED, oldest[1])
  end
end

-- Ends one ticket and leaves a seat held for it unserved; answers whether it held one.
-- `session` is the session a claim made of it, kept in its tombstone.
local function close_ticket(id, reason, session)
  local t = ticket(id)
  if not t then
    return false
  end
  redis.call('HDEL', TICKETS, id)
  redis.call('ZREM', TDUE, id)
  redis.call('ZREM', LINE, id)
  local held = t.r ~= nil and t.o == 1
  if held then
    set_qheld(meta.qheld - 1)
  end
  if ENDED_CAP > 0 then
    if redis.call('ZCARD', TENDQ) >= ENDED_CAP then
      forget_oldest_ticket()
    end
    local tombstone = reason .. ' ' .. t.h .. ' ' .. now
    if session then
      tombstone = tombstone .. ' ' .. session
    end
    redis.call('HSET', TENDED, id, tombstone)
    redis.call('ZADD', TENDQ, now, id)
  end
  emit({ type = 'ticket_ended', user = t.u, ticket = id, reason = reason,
    waited_ms = math.max(now - t.q, 0) })
  return held
end

-- Holds free seats for the head of the line, in order, for the claim window. While
-- the head cannot have a seat, nobody behind it gets one.
local function serve_queue()
  if meta.model == 'records' or redis.call('ZCARD', LINE) == 0 then
    return
  end
  local claim_by = now + meta.qclaim
  while true do
    local head = redis.call('ZRANGE', LINE, 0, 0)
    if #head == 0 then
      return
    end
    local id = head[1]
    local t = ticket(id)
    if t.ex < now then
      -- Idle past its deadline, though not yet expired by the sweep that is serving
      -- the line: it gets no seat.
      close_ticket(id, 'expired')
    else
      local holds
      if shares_a_seat(t.u) then
        holds = 0
      elseif seats_in_use() + meta.qheld < meta.lim then
        holds = 1
      else
        return
      end
      redis.call('ZREM', LINE, id)
      t.r, t.o = claim_by, holds
      save_ticket(id, t)
      redis.call('ZADD', TDUE, claim_by, id)
      if holds == 1 then
        set_qheld(meta.qheld + 1)
      end
      emit({ type = 'ticket_ready', user = t.u, ticket = id, claim_by = claim_by })
    end
  end
end

-- Ends one ticket: it leaves the line, and a seat held for it passes on.
local function end_ticket(id, reason)
  if close_ticket(id, reason) then
    serve_queue()
  end
end

-- Whether the licence keeps a line: a concurrent one that queues, or one whose line is
-- still being served after it stopped queueing.
local function keeps_a_line()
  return meta.model == 'concurrent' and (meta.onl == 'queue' or redis.call('HLEN', TICKETS) > 0)
end

-- Ends the tickets due by now (idle: `expired`; a claim window run out:
-- `claim_missed`), one at a time since each end may move the line.
local function expire_tickets()
  while true do
    local due = redis.call('ZRANGEBYSCORE', TDUE, '-inf', '(' .. now, 'LIMIT', 0, 1)
    if #due == 0 then
      break
    end
    local t = ticket(due[1])
    if t and t.r then
      end_ticket(due[1], 'claim_missed')
    elseif t then
      end_ticket(due[1], 'expired')
    else
      redis.call('ZREM', TDUE, due[1])
    end
  end
end

-- Every ticket (of `user`, if given), in line order.
local function tickets_in_order(user)
  local all = redis.call('HGETALL', TICKETS)
  local found = {}
  for i = 1, #all, 2 do
    local t = cjson.decode(all[i + 1])
    if not user or t.u == user then
      found[#found + 1] = { id = all[i], t = t }
    end
  end
  table.sort(found, function(a, b)
    return a.t.n < b.t.n
  end)
  return found
end

local function end_tickets(user, reason)
  for _, entry in ipairs(tickets_in_order(user)) do
    end_ticket(entry.id, reason)
  end
end

-- Whether a tombstone that ended at `ended` (ms) is still within the retention: those
-- of a deleted tenant, whose keys only expire on Redis's own clock, are forgotten
-- one retention after each end, as a live tenant's sweep forgets them.
local function remembered(ended)
  return tonumber(ended) + ENDED_FOR > now
end

-- Why a ticket with this secret is not live: ended (with its reason) or unknown.
local function why_not_ticket(id, secret)
  local raw = redis.call('HGET', TENDED, id)
  if raw then
    local reason, hash, ended = string.match(raw, '^(%S+) (%S+) (%S+)')
    if hash == secret and remembered(ended) then
      return { err = 'ticket_ended', reason = reason }
    end
  end
  return { err = 'ticket_not_found' }
end

local function live_ticket(id, secret)
  local t = ticket(id)
  if t and t.h == secret then
    return t
  end
  return nil
end

-- Whether a session or ticket, live or remembered, has this id.
local function id_taken(id)
  return redis.call('HEXISTS', SESS, id) == 1 or redis.call('HEXISTS', ENDED, id) == 1
    or redis.call('HEXISTS', TICKETS, id) == 1 or redis.call('HEXISTS', TENDED, id) == 1
end

local function forget_oldest()
  local oldest = redis.call('ZRANGE', ENDQ, 0, 0)
  if #oldest > 0 then
    redis.call('ZREM', ENDQ, oldest[1])
    redis.call('HDEL', ENDED, oldest[1])
  end
end

-- Takes a live session off every index; returns it, or nil.
local function detach(id)
  local raw = redis.call('HGET', SESS, id)
  if not raw then
    return nil
  end
  local s = cjson.decode(raw)
  redis.call('HDEL', SESS, id)
  redis.call('ZREM', DUE, id)
  redis.call('ZREM', START, id)
  local kind = index_kind()
  if kind == 'session' then
    redis.call('ZREM', IDLE, idle_member(s.f, id))
  end
  local acc = account(s.u)
  if acc then
    for i, sid in ipairs(acc.s) do
      if sid == id then
        table.remove(acc.s, i)
        break
      end
    end
    if #acc.s == 0 then
      meta.active = meta.active - 1
      redis.call('HSET', META, 'active', meta.active)
    end
    if meta.grouped and meta.model == 'concurrent' and (meta.per == 'session' or #acc.s == 0) then
      count_group_seats(acc.g, -1)
    end
    if kind == 'user' then
      index_user(s.u, acc)
    end
    save_account(s.u, acc)
  end
  return s
end

local function end_session(id, reason)
  local s = detach(id)
  if not s then
    return
  end
  if reason == 'released' and meta.model == 'concurrent' and meta.grace > 0 then
    local acc = account(s.u)
    if acc and (meta.per == 'session' or #acc.s == 0) then
      keep_seat(s.u, acc, id)
      save_account(s.u, acc)
    end
  end
  if ENDED_CAP > 0 then
    if redis.call('ZCARD', ENDQ) >= ENDED_CAP then
      forget_oldest()
    end
    redis.call('HSET', ENDED, id, reason .. ' ' .. s.h .. ' ' .. now)
    redis.call('ZADD', ENDQ, now, id)
  end
  emit({ type = 'ended', user = s.u, session = id, reason = reason, seats_in_use = seats_in_use() })
  serve_queue()
end

local function expire_due()
  lapse_kept()
  while true do
    local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', '(' .. now, 'LIMIT', 0, 100)
    if #due == 0 then
      break
    end
    for _, id in ipairs(due) do
      end_session(id, 'expired')
    end
  end
  -- Ended sessions and tickets older than the retention are forgotten, whatever the
  -- licence is now.
  for _, q in ipairs({ { ENDQ, ENDED }, { TENDQ, TENDED } }) do
    local stale = redis.call('ZRANGEBYSCORE', q[1], '-inf', now - ENDED_FOR)
    for _, id in ipairs(stale) do
      redis.call('ZREM', q[1], id)
      redis.call('HDEL', q[2], id)
    end
  end
  if keeps_a_line() then
    expire_tickets()
    -- Kept seats that lapsed and sessions that expired free seats for the line.
    serve_queue()
  end
end

-- The earliest moment something is due: a deadline passes or a tombstone is forgotten.
local function next_due()
  local best = nil
  local d = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
  if #d > 0 then
    best = tonumber(d[2]) + 1
  end
  local q = redis.call('ZRANGE', ENDQ, 0, 0, 'WITHSCORES')
  if #q > 0 then
    local at = tonumber(q[2]) + ENDED_FOR
    if not best or at < best then
      best = at
    end
  end
  local g = redis.call('ZRANGE', GRACE, 0, 0, 'WITHSCORES')
  if #g > 0 and (not best or tonumber(g[2]) < best) then
    best = tonumber(g[2])
  end
  -- Tickets are expired only while the licence keeps a line.
  if keeps_a_line() then
    local t = redis.call('ZRANGE', TDUE, 0, 0, 'WITHSCORES')
    if #t > 0 and (not best or tonumber(t[2]) + 1 < best) then
      best = tonumber(t[2]) + 1
    end
  end
  local e = redis.call('ZRANGE', TENDQ, 0, 0, 'WITHSCORES')
  if #e > 0 and (not best or tonumber(e[2]) + ENDED_FOR < best) then
    best = tonumber(e[2]) + ENDED_FOR
  end
  return best
end

-- Why a session with this secret is not live: ended (with its reason) or unknown.
local function why_not_live(id, secret)
  local raw = redis.call('HGET', ENDED, id)
  if raw then
    local reason, hash, ended = string.match(raw, '^(%S+) (%S+) (%S+)')
    if hash == secret and remembered(ended) then
      return { err = 'session_ended', reason = reason }
    end
  end
  return { err = 'session_not_found' }
end

local function live(id, secret)
  local raw = redis.call('HGET', SESS, id)
  if raw then
    local s = cjson.decode(raw)
    if s.h == secret then
      return s
    end
  end
  return nil
end

local function session_view(id, s)
  local ex = deadline(id)
  return { id = id, user = s.u, client = s.c, started_at = s.st,
    last_heartbeat_at = s.i and ex - s.i or s.hb, expires_at = ex, fence = s.f }
end

local function view()
  local per = nil
  if meta.model == 'concurrent' then
    per = meta.per
  end
  local seats = nil
  if meta.model ~= 'records' then
    seats = meta.seats
  end
  return { tenant = meta.tenant, model = meta.model, seats = seats, seat_per = per,
    idle = meta.idle, max_users = meta.max, seats_in_use = seats_in_use(),
    sessions = redis.call('HLEN', SESS), users = redis.call('HLEN', USERS), records = meta.rc,
    inc = meta.inc, key = meta.key, created = tonumber(meta.created), now = now, pol = meta.pol or '',
    queued = redis.call('HLEN', TICKETS), held_for_queue = meta.qheld,
    held_for_reload = meta.held, group_seats = group_seats() }
end

-- Calendar month (UTC) of a moment, as year * 12 + month.
local function month_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then
    y = y + 1
  end
  return y * 12 + m
end

local function records_view()
  local today, month = meta.rc, meta.rc
  if meta.rat > 0 then
    if math.floor(meta.rat / 86400000) == math.floor(now / 86400000) then
      today = meta.rpd
    end
    if month_of(meta.rat) == month_of(now) then
      month = meta.rpm
    end
  end
  return { count = meta.rc, peak_today = today, peak_month = month }
end

local function set_licence(l)
  if meta.model == 'named' and l.model ~= 'named' and meta.assigned > 0 then
    local all = redis.call('HGETALL', USERS)
    for i = 1, #all, 2 do
      local acc = cjson.decode(all[i + 1])
      if acc.a == 1 then
        acc.a = 0
        save_account(all[i], acc)
      end
    end
    meta.assigned = 0
    redis.call('HSET', META, 'assigned', 0)
  end
  local kind = index_kind()
  -- Kept seats belong to the seat rule and the grace they were kept under.
  local function keeps()
    if meta.model == 'concurrent' and meta.grace > 0 then
      return meta.per
    end
    return nil
  end
  local kept_under = keeps()
  redis.call('HSET', META, unpack(licence_meta(l)))
  load_meta()
  if meta.held > 0 and (keeps() == nil or keeps() ~= kept_under) then
    local all = redis.call('HGETALL', USERS)
    for i = 1, #all, 2 do
      local acc = cjson.decode(all[i + 1])
      if acc.k then
        acc.k = nil
        save_account(all[i], acc)
      end
    end
    redis.call('DEL', GRACE)
    set_held(0)
  end
  if index_kind() ~= kind then
    reindex()
  end
  if meta.model ~= 'concurrent' then
    -- Only a concurrent licence has a line.
    end_tickets(nil, 'evicted')
  end
  recount_group_seats()
end

local function end_user_sessions(user, reason)
  local acc = account(user)
  if not acc then
    return 0
  end
  local ids = {}
  for i, id in ipairs(acc.s) do
    ids[i] = id
  end
  for _, id in ipairs(ids) do
    end_session(id, reason)
  end
  return #ids
end

-- Ends the sessions of the idlest seat held for at least the minimum hold (reason
-- `displaced`), as PoolState::displace_idlest: the first such seat in the displacement
-- order (see index_kind). Answers whether it found one; the caller has made sure there
-- is one, but a pool without its order (written before it was kept) must not admit
-- past its limit for want of it.
local function displace_idlest()
  if redis.call('EXISTS', IDLE) == 0 then
    reindex()
  end
  local per_session = meta.per == 'session'
  local from = 0
  while true do
    local page = redis.call('ZRANGE', IDLE, from, from + 99)
    if #page == 0 then
      return false
    end
    for _, member in ipairs(page) do
      local who = string.sub(member, 18)
      local since = nil
      if per_session then
        since = tonumber(redis.call('ZSCORE', START, who))
      else
        for _, sid in ipairs(account(who).s) do
          local st = tonumber(redis.call('ZSCORE', START, sid))
          if not since or st < since then
            since = st
          end
        end
      end
      if since and since + meta.hold <= now then
        if per_session then
          end_session(who, 'displaced')
        else
          end_user_sessions(who, 'displaced')
        end
        return true
      end
    end
    from = from + 100
  end
end

local ops = {}

function ops.put(r)
  if meta then
    set_licence(r.licence)
    emit(licence_fields({ type = 'licence_changed', seats_in_use = seats_in_use() }))
    -- Seats a raised licence adds go to the head of the line, one per ticket.
    serve_queue()
    return { ok = view(), created = false }
  end
  local l = r.licence
  redis.call('HSET', META, 'tenant', r.tenant, 'inc', r.inc, 'created', now, 'active', 0,
    'assigned', 0, 'rc', 0, 'rat', 0, 'rpd', 0, 'rpm', 0, unpack(licence_meta(l)))
  redis.call('PERSIST', ENDED)
  redis.call('PERSIST', ENDQ)
  redis.call('PERSIST', TENDED)
  redis.call('PERSIST', TENDQ)
  load_meta()
  emit(licence_fields({ type = 'tenant_created' }))
  return { ok = view(), created = true }
end

-- Whether `l` (a licence as the node sends one) is the licence in force. A pool written
-- before the seat policies keeps no policies: it has the defaults, written '{}'.
local function in_force(l)
  local pol = meta.pol
  if pol == nil or pol == '' then
    pol = '{}'
  end
  return meta.model == l.model and meta.seats == tonumber(l.seats) and (meta.per or '') == l.per
    and meta.idle == tonumber(l.idle) and meta.max == tonumber(l.max) and pol == l.pol
end

-- A licence change made only if `r.expected` is still in force (a read-modify-write).
function ops.change(r)
  if not in_force(r.expected) then
    return { err = 'licence_changed' }
  end
  return ops.put(r)
end

function ops.delete(r)
  if r.inc and r.inc ~= meta.inc then
    return { err = 'tenant_not_found' }
  end
  end_tickets(nil, 'evicted')
  local ids = redis.call('ZRANGE', START, 0, -1)
  for _, id in ipairs(ids) do
    end_session(id, 'evicted')
  end
  -- Everything of the tenant goes but the tombstones (so that holders learn why their
  -- sessions and tickets ended) and the fence counter (fences never go back).
  -- The log goes too: a tenant created again under the name sees nothing of this one.
  emit({ type = 'tenant_deleted' })
  redis.call('DEL', META, SESS, DUE, START, USERS, ORDER, LOG, IDLE, GRACE, TICKETS, LINE, TDUE)
  for _, key in ipairs({ ENDED, ENDQ, TENDED, TENDQ }) do
    redis.call('PEXPIRE', key, math.max(ENDED_FOR, 1))
  end
  meta = nil
  return { ok = true }
end

function ops.view(r)
  return { ok = view() }
end

-- What the pool holds, for a licence change not made (src/pool/preview.rs works out
-- its effects): the view, the counts behind `seats_in_use` under each model, and the
-- users holding a named seat when the change (to `r.model`) takes them away.
function ops.holdings(r)
  local named = {}
  if meta.model == 'named' and r.model ~= 'named' then
    local all = redis.call('HGETALL', USERS)
    for i = 1, #all, 2 do
      if cjson.decode(all[i + 1]).a == 1 then
        named[#named + 1] = all[i]
      end
    end
  end
  -- The users in groups holding or kept a seat, when the new licence counts groups.
  local members = {}
  if r.members then
    local all = redis.call('HGETALL', USERS)
    for i = 1, #all, 2 do
      local acc = cjson.decode(all[i + 1])
      local kept = acc.k and #acc.k or 0
      if acc.g and #acc.g > 0 and (#acc.s > 0 or kept > 0) then
        members[#members + 1] = { groups = acc.g, sessions = #acc.s, kept = kept }
      end
    end
  end
  return { ok = { view = view(), assigned = meta.assigned, active = meta.active, kept = meta.held,
    named = named, members = members } }
end

-- Starts a session for `user`, who held `tabs` sessions before it: the rules have
-- admitted it. `acc` is their account, if they have one; it is saved here.
local function admit(user, client, id, secret, acc, tabs)
  local takes_seat = meta.per == 'session' or tabs == 0
  if not acc then
    acc = { a = 0, s = {} }
    redis.call('ZADD', ORDER, 0, user)
  end
  acc.s[#acc.s + 1] = id
  if #acc.s == 1 then
    meta.active = meta.active + 1
    redis.call('HSET', META, 'active', meta.active)
  end
  if meta.grouped and meta.model == 'concurrent' and takes_seat then
    count_group_seats(acc.g, 1)
  end
  local fence = redis.call('INCR', FENCE)
  local expires = now + meta.idle
  local s = { u = user, c = client, h = secret, st = now, i = meta.idle, f = fence }
  redis.call('HSET', SESS, id, cjson.encode(s))
  redis.call('ZADD', DUE, expires, id)
  redis.call('ZADD', START, now, id)
  index_seat(id, s, expires, acc)
  save_account(user, acc)
  local in_use = seats_in_use()
  local overage = meta.model == 'concurrent' and takes_seat and in_use > meta.seats
  emit({ type = 'admitted', user = user, session = id, seats_in_use = in_use,
    overage = overage and 'true' or nil })
  return { expires_at = expires, idle = meta.idle, fence = fence, overage = overage }
end

-- Puts a login in line under the ticket `id`: the answer says its place.
local function enqueue(user, client, id, secret)
  local seq = meta.qseq
  meta.qseq = seq + 1
  redis.call('HSET', META, 'qseq', meta.qseq)
  local expires = now + meta.idle
  local place = redis.call('ZCARD', LINE) + 1
  save_ticket(id, { u = user, c = client, h = secret, q = now, ex = expires, n = seq })
  redis.call('ZADD', LINE, seq, id)
  redis.call('ZADD', TDUE, expires, id)
  emit({ type = 'queued', user = user, ticket = id, position = place })
  -- A line that is not blocked moves at once.
  serve_queue()
  local t = ticket(id)
  return { ok = { queued = true, position = t and position(id, t) or 0, expires_at = expires,
    idle = meta.idle, claim = meta.qclaim } }
end

-- A login, as PoolState::login; with `r.queue`, one that a licence that queues puts in
-- line at its limit (PoolState::enter).
function ops.login(r)
  local acc = account(r.user)
  local standing = 'unknown'
  if acc then
    standing = acc.a == 1 and 'assigned' or 'registered'
  end
  local tabs = acc and #acc.s or 0
  local refuse, displace, queue = nil, false, false
  if meta.model == 'named' then
    if standing ~= 'assigned' then
      refuse = { err = 'user_not_licensed', user = r.user }
    end
  elseif standing == 'unknown' and redis.call('HLEN', USERS) >= meta.max then
    refuse = { err = 'user_limit_reached', max_users = meta.max }
  end
  if not refuse and meta.msu > 0 and tabs >= meta.msu then
    refuse = { err = 'session_limit_reached', max_sessions_per_user = meta.msu }
  end
  local takes_seat = meta.per == 'session' or tabs == 0
  -- A seat kept for this user under the reload grace does not count against them.
  local reclaims = meta.model == 'concurrent' and takes_seat and acc ~= nil and acc.k ~= nil
    and #acc.k > 0
  local reserved = 0
  -- A kept seat taken back already counts for the user's groups.
  if not refuse and meta.model == 'concurrent' and takes_seat and meta.grouped and not reclaims then
    local at_max, max
    at_max, max, reserved = group_facts(acc and acc.g)
    if at_max then
      refuse = { err = 'group_limit_reached', group = at_max, max = max }
    end
  end
  if not refuse and meta.model == 'concurrent' and takes_seat then
    -- Seats held for the head of the line are taken, for everyone else; while anyone
    -- waits, nobody outside the line takes a seat.
    local in_use = seats_in_use() + meta.qheld - (reclaims and 1 or 0)
    local line_waits = meta.onl == 'queue' and not reclaims and redis.call('ZCARD', LINE) > 0
    if in_use + reserved >= meta.lim or line_waits then
      local first = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
      local retry = nil
      if #first > 0 then
        retry = math.max(tonumber(first[2]) - now, 0) + 1
      end
      if meta.onl == 'queue' then
        queue = r.queue == true
      elseif meta.onl == 'displace_idlest' and in_use == meta.lim then
        -- Taking over one seat makes room only when exactly the limit is held.
        local oldest = redis.call('ZRANGE', START, 0, 0, 'WITHSCORES')
        if #oldest > 0 then
          local hold_ends = tonumber(oldest[2]) + meta.hold
          if hold_ends <= now then
            displace = true
          elseif not retry or hold_ends - now < retry then
            retry = hold_ends - now
          end
        end
      end
      if not displace and not queue then
        refuse = { err = 'licence_limit_reached', seats = meta.seats, seats_in_use = in_use,
          reserved = reserved, retry_after_ms = retry }
      end
    end
  end
  if refuse then
    emit({ type = 'refused', user = r.user, reason = refuse.err })
    return refuse
  end
  if id_taken(r.id) then
    return { err = 'id_taken' }
  end
  if queue then
    if not acc then
      save_account(r.user, { a = 0, s = {} })
      redis.call('ZADD', ORDER, 0, r.user)
    end
    return enqueue(r.user, r.client, r.id, r.secret)
  end
  if displace then
    if not displace_idlest() then
      refuse = { err = 'licence_limit_reached', seats = meta.seats, seats_in_use = seats_in_use() }
      emit({ type = 'refused', user = r.user, reason = refuse.err })
      return refuse
    end
    acc = account(r.user)
  end
  if reclaims then
    take_kept(acc)
  end
  return { ok = admit(r.user, r.client, r.id, r.secret, acc, tabs) }
end

-- A login whose answer was lost (the node gave up waiting for Redis) is taken back:
-- nobody holds its token, whether it is a session's or a ticket's. Without a trace, as
-- in the embedded backend.
function ops.withdraw(r)
  local t = ticket(r.id)
  if t then
    -- A ticket put in line by such a login goes the same way, its place with it.
    redis.call('HDEL', TICKETS, r.id)
    redis.call('ZREM', TDUE, r.id)
    redis.call('ZREM', LINE, r.id)
    if t.r and t.o == 1 then
      set_qheld(meta.qheld - 1)
      serve_queue()
    end
    return { ok = true }
  end
  local s = detach(r.id)
  if s then
    emit({ type = 'withdrawn', user = s.u, session = r.id, seats_in_use = seats_in_use() })
    serve_queue()
  end
  return { ok = s ~= nil }
end

-- A ticket's heartbeat: it keeps its place for another idle timeout from now.
function ops.ticket_heartbeat(r)
  local t = live_ticket(r.id, r.secret)
  if not t then
    return why_not_ticket(r.id, r.secret)
  end
  t.ex = now + meta.idle
  save_ticket(r.id, t)
  if not t.r then
    redis.call('ZADD', TDUE, t.ex, r.id)
  end
  return { ok = { position = position(r.id, t), claim_by = t.r, expires_at = t.ex } }
end

-- Turns a ready ticket into the session `r.session` (as PoolState::claim): its seat
-- becomes the session's, not passed on in between.
function ops.claim(r)
  local t = live_ticket(r.id, r.secret)
  if not t then
    return why_not_ticket(r.id, r.secret)
  end
  if not t.r then
    return { err = 'not_ready', position = position(r.id, t) }
  end
  local acc = account(t.u)
  local tabs = acc and #acc.s or 0
  if meta.msu > 0 and tabs >= meta.msu then
    return { err = 'session_limit_reached', max_sessions_per_user = meta.msu }
  end
  if id_taken(r.session) then
    return { err = 'id_taken' }
  end
  if t.o ~= 1 and not shares_a_seat(t.u) then
    -- Ready to share its user's seat, which has gone meanwhile: back in line at its
    -- place, unless a seat is free for it right now.
    local free = meta.model ~= 'records' and seats_in_use() + meta.qheld < meta.lim
    if not free then
      unready(r.id, t)
      serve_queue()
      t = ticket(r.id)
      if not t then
        -- Back in line past its idle deadline, the line ended it: it says why.
        return why_not_ticket(r.id, r.secret)
      end
      local place = position(r.id, t)
      if place > 0 then
        return { err = 'not_ready', position = place }
      end
      -- The line moved it straight back to the head with a seat.
    end
  end
  close_ticket(r.id, 'claimed', r.session)
  local admitted = admit(t.u, t.c, r.session, r.session_secret, acc, tabs)
  serve_queue()
  admitted.user = t.u
  return { ok = admitted }
end

-- The ticket's holder leaves the line (as PoolState::cancel_ticket). Left once
-- claimed, the session the claim started is released while it lives: the page went
-- away with the claim's answer on its way, and nobody else holds its token.
function ops.cancel_ticket(r)
  if not live_ticket(r.id, r.secret) then
    local raw = redis.call('HGET', TENDED, r.id)
    if raw then
      local reason, hash, session = string.match(raw, '^(%S+) (%S+) %S+ (%S+)$')
      if reason == 'claimed' and hash == r.secret and redis.call('HEXISTS', SESS, session) == 1 then
        end_session(session, 'released')
        return { ok = true }
      end
    end
    return why_not_ticket(r.id, r.secret)
  end
  end_ticket(r.id, 'cancelled')
  return { ok = true }
end

-- The line, head first: ready tickets, then the waiting ones in order.
function ops.queue(r)
  local entries = {}
  for _, entry in ipairs(tickets_in_order(nil)) do
    entries[#entries + 1] = { p = position(entry.id, entry.t), id = entry.id, t = entry.t }
  end
  table.sort(entries, function(a, b)
    if a.p ~= b.p then
      return a.p < b.p
    end
    return a.t.n < b.t.n
  end)
  local items = {}
  for i, e in ipairs(entries) do
    items[i] = { position = e.p, ticket = e.id, user = e.t.u, client = e.t.c, queued_at = e.t.q,
      claim_by = e.t.r }
  end
  return { ok = items }
end

function ops.heartbeat(r)
  local s = live(r.id, r.secret)
  if not s then
    return why_not_live(r.id, r.secret)
  end
  local ex = now + meta.idle
  if s.i ~= meta.idle then
    -- Written before `i`, or its deadline set under another idle timeout: the last
    -- heartbeat is the deadline less the timeout it was set with.
    s.i, s.hb, s.ex = meta.idle, nil, nil
    redis.call('HSET', SESS, r.id, cjson.encode(s))
  end
  redis.call('ZADD', DUE, ex, r.id)
  index_seat(r.id, s, ex, nil)
  return { ok = { expires_at = ex, idle = meta.idle, fence = s.f } }
end

function ops.release(r)
  if not live(r.id, r.secret) then
    return why_not_live(r.id, r.secret)
  end
  end_session(r.id, 'released')
  return { ok = true }
end

function ops.logout(r)
  local s = live(r.id, r.secret)
  if not s then
    return why_not_live(r.id, r.secret)
  end
  return { ok = end_user_sessions(s.u, 'logged_out') }
end

function ops.revoke(r)
  if redis.call('HEXISTS', SESS, r.id) == 0 then
    local raw = redis.call('HGET', ENDED, r.id)
    if raw then
      return { err = 'session_ended', reason = string.match(raw, '^(%S+)') }
    end
    return { err = 'session_not_found' }
  end
  end_session(r.id, 'revoked')
  return { ok = true }
end

function ops.logout_user(r)
  if redis.call('HEXISTS', USERS, r.user) == 0 then
    return { err = 'user_not_found' }
  end
  return { ok = end_user_sessions(r.user, 'logged_out') }
end

local function user_view(user, acc)
  return { user = user, assigned = acc.a == 1, sessions = #acc.s, groups = acc.g }
end

local function same_groups(a, b)
  a, b = a or {}, b or {}
  if #a ~= #b then
    return false
  end
  for i = 1, #a do
    if a[i] ~= b[i] then
      return false
    end
  end
  return true
end

-- Registers or assigns a user, as PoolState::put_user; `r.groups` (sorted, without
-- repeats), when given, become the user's groups, and their seats move with them.
function ops.put_user(r)
  local acc = account(r.user)
  local named = meta.model == 'named'
  local change = true
  if acc and acc.a == 1 then
    change = false
  elseif acc and not named then
    change = false
  elseif not acc and redis.call('HLEN', USERS) >= meta.max then
    return { err = 'user_limit_reached', max_users = meta.max }
  elseif named and meta.assigned >= meta.seats then
    return { err = 'seats_exhausted', seats = meta.seats }
  end
  local regroup = r.groups ~= nil and not same_groups(acc and acc.g, r.groups)
  if change or regroup then
    if not acc then
      acc = { a = 0, s = {} }
      redis.call('ZADD', ORDER, 0, r.user)
    end
    if named and acc.a == 0 then
      acc.a = 1
      meta.assigned = meta.assigned + 1
      redis.call('HSET', META, 'assigned', meta.assigned)
    end
    if regroup then
      if meta.model == 'concurrent' and meta.grouped then
        local seats = account_seats(acc)
        count_group_seats(acc.g, -seats)
        count_group_seats(r.groups, seats)
      end
      acc.g = r.groups
    end
    save_account(r.user, acc)
    emit({ type = 'user_assigned', user = r.user, assigned = tostring(acc.a == 1),
      groups = (acc.g and #acc.g > 0) and table.concat(acc.g, ',') or nil,
      seats_in_use = seats_in_use() })
  end
  return { ok = user_view(r.user, acc) }
end

function ops.remove_user(r)
  local acc = account(r.user)
  if not acc then
    return { err = 'user_not_found' }
  end
  end_tickets(r.user, 'evicted')
  end_user_sessions(r.user, 'evicted')
  for _, member in ipairs(acc.k or {}) do
    redis.call('ZREM', GRACE, member)
    set_held(meta.held - 1)
    count_kept_seat(acc, -1)
  end
  redis.call('HDEL', USERS, r.user)
  redis.call('ZREM', ORDER, r.user)
  if acc.a == 1 then
    meta.assigned = meta.assigned - 1
    redis.call('HSET', META, 'assigned', meta.assigned)
  end
  emit({ type = 'user_removed', user = r.user, seats_in_use = seats_in_use() })
  return { ok = true }
end

function ops.users(r)
  if r.limit < 1 then
    return { err = 'invalid_limit' }
  end
  local from = '-'
  if r.after then
    from = '(' .. r.after
  end
  local names = redis.call('ZRANGEBYLEX', ORDER, from, '+', 'LIMIT', 0, r.limit + 1)
  local items = {}
  for i = 1, math.min(#names, r.limit) do
    items[i] = user_view(names[i], account(names[i]))
  end
  return { ok = { items = items, more = #names > r.limit } }
end

function ops.sessions(r)
  if r.limit < 1 then
    return { err = 'invalid_limit' }
  end
  local ids
  if r.after_at then
    -- Same login time, later id; then later login times.
    ids = {}
    local same = redis.call('ZRANGEBYSCORE', START, r.after_at, r.after_at)
    for _, id in ipairs(same) do
      if id > r.after_id then
        ids[#ids + 1] = id
      end
    end
    local later = redis.call('ZRANGEBYSCORE', START, '(' .. r.after_at, '+inf', 'LIMIT', 0, r.limit + 1)
    for _, id in ipairs(later) do
      ids[#ids + 1] = id
    end
  else
    ids = redis.call('ZRANGE', START, 0, r.limit)
  end
  local items = {}
  for i = 1, math.min(#ids, r.limit) do
    items[i] = session_view(ids[i], cjson.decode(redis.call('HGET', SESS, ids[i])))
  end
  return { ok = { items = items, more = #ids > r.limit } }
end

function ops.report_records(r)
  local before = records_view()
  meta.rc, meta.rat = r.count, now
  meta.rpd = math.max(before.peak_today, r.count)
  meta.rpm = math.max(before.peak_month, r.count)
  redis.call('HSET', META, 'rc', meta.rc, 'rat', meta.rat, 'rpd', meta.rpd, 'rpm', meta.rpm)
  emit({ type = 'records_reported', count = r.count })
  return { ok = records_view() }
end

function ops.records(r)
  return { ok = records_view() }
end

function ops.set_key(r)
  if r.inc and r.inc ~= meta.inc then
    return { err = 'tenant_not_found' }
  end
  local old = meta.key
  meta.key = r.key
  redis.call('HSET', META, 'key', r.key)
  return { ok = old or false }
end

function ops.key(r)
  return { ok = meta.key == r.key and meta.inc or false }
end

function ops.sweep(r)
  swept = true
  return { ok = true }
end

-- Requests about one session or ticket; without a tenant they can only have ended with
-- it (and the tenant's tombstones of both answer, as the embedded backend's orphans do).
local by_token = { heartbeat = 'session', release = 'session', logout = 'session',
  ticket_heartbeat = 'ticket', claim = 'ticket', cancel_ticket = 'ticket' }

-- The requests that do not first expire what is due in the embedded backend: they do
-- not serve the line either.
local leaves_the_line = { delete = true, withdraw = true, report_records = true,
  records = true, set_key = true, key = true }

-- Why a token of a deleted tenant is not live, from whichever tombstone it has.
local function why_orphaned(kind, r)
  local session, ticket_answer = why_not_live(r.id, r.secret), why_not_ticket(r.id, r.secret)
  if kind == 'session' then
    if session.err == 'session_not_found' and ticket_answer.err == 'ticket_ended' then
      return { err = 'session_ended', reason = ticket_answer.reason }
    end
    return session
  end
  if ticket_answer.err == 'ticket_not_found' and session.err == 'session_ended' then
    return { err = 'ticket_ended', reason = session.reason }
  end
  return ticket_answer
end

-- One call: the requests of ARGV 5 decided in order, against the keys of one tenant.
-- The node registers it as the library's one function (see src/redis/mod.rs).
local function pool(KEYS, ARGV)
  begin(KEYS, ARGV)
  load_meta()
  if meta then
    expire_due()
  end
  local answers = {}
  for i, r in ipairs(requests) do
    if meta and not leaves_the_line[r.op] then
      -- What an earlier request of the batch freed without serving the line (a removed
      -- user's kept seats) is served before the next, as expiry does per request in
      -- the embedded backend.
      serve_queue()
    end
    if meta or r.op == 'put' then
      answers[i] = ops[r.op](r)
    elseif by_token[r.op] then
      answers[i] = why_orphaned(by_token[r.op], r)
    else
      if r.op == 'sweep' then
        swept = true
      end
      answers[i] = { err = 'tenant_not_found' }
    end
  end
  -- The index of due tenants (outside this slot, written by the node) holds for each
  -- tenant a moment no later than its earliest due one; `idx` is what it was last told.
  local due, lowered = false, false
  if meta then
    due = next_due() or false
    local idx = tonumber(meta.idx or '')
    if swept then
      if due then
        redis.call('HSET', META, 'idx', due)
      else
        redis.call('HDEL', META, 'idx')
      end
    elseif due and (not idx or due < idx) then
      redis.call('HSET', META, 'idx', due)
      lowered = due
    end
  end
  -- Published with the writes, atomically: a node hears of every change that landed.
  if #events > 0 then
    local ended, deleted = {}, false
    for _, e in ipairs(events) do
      if e.type == 'ended' then
        ended[#ended + 1] = e.session .. ' ' .. e.reason
      elseif e.type == 'ticket_ended' then
        ended[#ended + 1] = e.ticket .. ' ' .. e.reason
      elseif e.type == 'tenant_deleted' then
        deleted = true
      end
    end
    redis.call('PUBLISH', LIVE, cjson.encode({ t = TENANT, d = deleted, e = ended }))
  end
  return cjson.encode({ now = now, answers = answers, events = events, due = due,
    lowered = lowered, swept = swept })
end

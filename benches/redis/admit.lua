-- Usher's admission decision for the concurrent model, as a Redis script: the
-- comparison point for a shared store (SPEC §3), measured with redis-benchmark.
--
-- KEYS[1]  the tenant's ZSET: member = session id, score = idle deadline (ms)
-- ARGV[1]  seats (the licence's limit)
-- ARGV[2]  idle timeout in milliseconds
-- ARGV[3]  the new session's id
--
-- Returns {1, seats_in_use, expires_at_ms} when admitted, or
-- {0, seats_in_use, retry_after_ms} when the licence is at its limit.
--
-- The clock is the server's (TIME), never the client's; sessions past their deadline
-- are removed before the limit is checked, so a due session never causes a refusal.
-- One session per seat (seat_per = "session"): the per-user variant needs a second
-- key and is no faster.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seats = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local in_use = redis.call('ZCARD', KEYS[1])
if in_use >= seats and not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  local nearest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry_after = 0
  if nearest[2] then
    retry_after = tonumber(nearest[2]) - now
  end
  return {0, in_use, retry_after}
end
redis.call('ZADD', KEYS[1], now + idle, ARGV[3])
return {1, redis.call('ZCARD', KEYS[1]), now + idle}

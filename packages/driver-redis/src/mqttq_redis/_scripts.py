"""The Lua scripts: every state change that touches more than one key is one script.

Key layout under the prefix ``P`` (``ARGV[1]`` of every script; ``mqttq:`` by default)::

    P j:<id>          hash   live job: b=envelope, a=attempts, q=queue, s=state (r|l),
                             t=available_at, n=push sequence number, u=unique key
    P f:<id>          hash   failed job (expires after failed_ttl): b, a, q, e=error,
                             tb=traceback, at=failed-at time; b is kept byte for byte, also
                             when it cannot be decoded
    P c:<id>          hash   cancelled job (expires after failed_ttl): b, a, q, at=cancelled-at
                             time, w=what cancel() answered, k=the token of that call
    P q:<queue>:queued   zset  members n..id (n: 16 digits), scored by available_at: ready
                               and delayed jobs, in claim order (available_at, then n)
    P q:<queue>:leased   zset  ids by lease deadline
    P q:<queue>:failed   zset  ids by failed-at time
    P q:<queue>:wake     list  wake-up tokens for blocked claimers (BLPOP), capped
    P seq             string last push sequence number handed out (all queues)
    P queues          set    every queue that holds or held jobs
    P failed          zset   failed ids of all queues, by failed-at time
    P unique          hash   unique key -> live job id
    P schedules       hash   schedule name -> last fired slot (a UNIX time)
    P w:<worker id>   string worker heartbeat (expires)
    P workers         set    worker ids seen

Times come from the Redis server clock (``TIME``), except a pushed job's own ``available_at``.
Every live id sits in exactly one of queued (s=r) or leased (s=l). A queued job is ready once its
score has passed, delayed before. A leased id whose deadline has passed stays in leased until a
claim puts it back in queued (at its old place: same t and n), but counts as ready. A cancelled
job has no P j:<id> (it is not live) but a P c:<id>, which retry and fail leave alone.

The list layout of earlier versions (``P q:<queue>:ready``, a list of ids in push order, and
``P q:<queue>:delayed``, ids by available_at, with s=d) is moved into queued by ``wk()`` the first
time a script touches the queue.
"""

from __future__ import annotations

PRELUDE = """
local P = ARGV[1]
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function qk(q, s) return P .. 'q:' .. q .. ':' .. s end
local function jk(id) return P .. 'j:' .. id end
local function fk(id) return P .. 'f:' .. id end
local function ck(id) return P .. 'c:' .. id end
local function fmt(x) return string.format('%.6f', x) end
local function chunked(cmd, key, items)
  for i = 1, #items, 1000 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
-- k new push sequence numbers: returns the first
local function seqs(k) return redis.call('INCRBY', P .. 'seq', k) - k + 1 end
-- fixed width, so that members with equal scores sort by it; the id follows from char 17 on
local function sq(n) return string.format('%016d', n) end
-- move a queue stored in the list layout into its queued set: list order first, then the
-- delayed set; available_at and that order decide the place, as for pushed jobs
local function migrate(q, key)
  local rk, dk = qk(q, 'ready'), qk(q, 'delayed')
  local listed = redis.call('LRANGE', rk, 0, -1)
  local delayed = redis.call('ZRANGE', dk, 0, -1, 'WITHSCORES')
  local base = seqs(#listed + #delayed / 2)
  local now = fmt(clock())
  local items = {}
  local function add(id, s, t)
    local h = jk(id)
    local f = redis.call('HMGET', h, 's', 't')
    if f[1] ~= s then return end  -- a stale entry: the job is gone or elsewhere
    t = t or f[2] or now
    local n = sq(base)
    base = base + 1
    redis.call('HSET', h, 's', 'r', 't', t, 'n', n)
    items[#items + 1] = t
    items[#items + 1] = n .. id
  end
  for _, id in ipairs(listed) do add(id, 'r', nil) end
  for x = 1, #delayed, 2 do add(delayed[x], 'd', delayed[x + 1]) end
  redis.call('DEL', rk, dk)
  chunked('ZADD', key, items)
end
local queued = {}
-- the queued set of q (moving a list-layout queue into it first, once per script call)
local function wk(q)
  local key = queued[q]
  if not key then
    key = qk(q, 'queued')
    queued[q] = key
    if redis.call('EXISTS', qk(q, 'ready'), qk(q, 'delayed')) > 0 then migrate(q, key) end
  end
  return key
end
-- the score and member of a job going back into queued: its own t and n (a job leased under
-- the list layout has no n yet: it gets one now)
local function spot(h, id, t, n)
  if not n then
    n = sq(seqs(1))
    t = t or fmt(clock())
    redis.call('HSET', h, 'n', n, 't', t)
  end
  return t, n .. id
end
local WAKE_MAX = 64
local function wake(q, k)
  if k > WAKE_MAX then k = WAKE_MAX end
  local tokens = {}
  for i = 1, k do tokens[i] = '1' end
  local key = qk(q, 'wake')
  if redis.call('LPUSH', key, unpack(tokens)) > WAKE_MAX then
    redis.call('LTRIM', key, 0, WAKE_MAX - 1)
  end
end
local function unlink(id, q, s, u)
  if s == 'l' then redis.call('ZREM', qk(q, 'leased'), id)
  elseif s then
    local key = wk(q)
    local n = redis.call('HGET', jk(id), 'n')
    if n then redis.call('ZREM', key, n .. id) end
  end
  if u and redis.call('HGET', P .. 'unique', u) == id then redis.call('HDEL', P .. 'unique', u) end
end
-- (re)place the failed entry of id (expiring after ttl ms) and trim the failed indexes
local function record_failed(id, q, a, body, err, tb, now, ttl)
  local fh = fk(id)
  local old = redis.call('HGET', fh, 'q')
  if old and old ~= q then redis.call('ZREM', qk(old, 'failed'), id) end
  redis.call('DEL', fh)
  redis.call('HSET', fh, 'b', body, 'a', a, 'q', q, 'e', err, 'tb', tb, 'at', fmt(now))
  redis.call('PEXPIRE', fh, ttl)
  local cutoff = now - ttl / 1000
  for _, key in ipairs({qk(q, 'failed'), P .. 'failed'}) do
    redis.call('ZADD', key, now, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  end
  redis.call('SADD', P .. 'queues', q)
end
"""

# Stores jobs as push() does. meta is a JSON array holding, per job, [id, queue, available_at
# (a string), unique key ('' = none), attempts]: one argument instead of five per job keeps a
# 10,000-job batch cheap to send; the envelopes are ARGV[first + 1]... Returns {1, index, live id,
# ...}: the jobs whose unique key is held by a live job (that job's id stands in for theirs); all
# others are stored. Unless ``again``, an id that is already live fails the whole batch with
# {0, id}, nothing stored; ``again`` (a push repeated after a lost reply) keeps live ids as they
# are.
STORE = """
local function store(again, meta, first)
  if not again then
    for j = 1, #meta do
      if redis.call('EXISTS', jk(meta[j][1])) == 1 then return {0, meta[j][1]} end
    end
  end
  for j = 1, #meta do wk(meta[j][2]) end
  local base = seqs(#meta)
  local out, ready, count = {1}, {}, {}
  local uk = P .. 'unique'
  for j = 1, #meta do
    local m = meta[j]
    local id, q, u = m[1], m[2], m[4]
    local live = false
    if u ~= '' then
      local other = redis.call('HGET', uk, u)
      if other and redis.call('EXISTS', jk(other)) == 1 then live = other end
    end
    if live then
      if live ~= id then
        out[#out + 1] = j - 1
        out[#out + 1] = live
      end
    else
      local h = jk(id)
      if not again or redis.call('EXISTS', h) == 0 then
        local n = sq(base + j - 1)
        redis.call('HSET', h, 'b', ARGV[first + j], 'a', m[5], 'q', q, 's', 'r', 't', m[3], 'n', n)
        if u ~= '' then
          redis.call('HSET', h, 'u', u)
          redis.call('HSET', uk, u, id)
        end
        local r = ready[q]
        if not r then r = {}; ready[q] = r end
        r[#r + 1] = m[3]
        r[#r + 1] = n .. id
        count[q] = (count[q] or 0) + 1
      end
    end
  end
  for q, k in pairs(count) do
    chunked('ZADD', wk(q), ready[q])
    redis.call('SADD', P .. 'queues', q)
    wake(q, k)
  end
  return out
end
"""

# ARGV: P, mode, meta, envelope...   Returns what ``store`` does; mode 'new' or 'again'.
PUSH = (
    STORE
    + """
return store(ARGV[2] == 'again', cjson.decode(ARGV[3]), 3)
"""
)

# ARGV: P, n, lease seconds, reclaim limit, queue... (priority order).
# Per queue: expired leases go back to queued at their place, then up to n - got due jobs are
# taken in (available_at, n) order and leased with attempts + 1.
# Returns {next, id, envelope, attempts, ...}; ``next`` (only when nothing was claimed) is the
# number of seconds until a delayed job is due or a lease expires, '' when there is none.
CLAIM = """
local now = clock()
local n, lease, lim = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {''}
local got = 0
for k = 5, #ARGV do
  if got >= n then break end
  local q = ARGV[k]
  local zk, lk = wk(q), qk(q, 'leased')
  local expired = redis.call('ZRANGE', lk, '-inf', now, 'BYSCORE', 'LIMIT', 0, lim)
  if #expired > 0 then
    chunked('ZREM', lk, expired)
    local back = {}
    for _, id in ipairs(expired) do
      local h = jk(id)
      local f = redis.call('HMGET', h, 's', 't', 'n')
      if f[1] == 'l' then
        redis.call('HSET', h, 's', 'r')
        local t, m = spot(h, id, f[2], f[3])
        back[#back + 1] = t
        back[#back + 1] = m
      end
    end
    if #back > 0 then chunked('ZADD', zk, back) end
  end
  local want = n - got
  local due = redis.call('ZRANGE', zk, '-inf', now, 'BYSCORE', 'LIMIT', 0, want)
  if #due > 0 then
    redis.call('ZREMRANGEBYRANK', zk, 0, #due - 1)
    local deadline = now + lease
    local leased = {}
    for _, m in ipairs(due) do
      local id = string.sub(m, 17)
      local h = jk(id)
      local f = redis.call('HMGET', h, 's', 'a', 'b')
      if f[1] == 'r' then
        local a = (tonumber(f[2]) or 0) + 1
        redis.call('HSET', h, 's', 'l', 'a', a)
        -- 1 us apart: leases taken together run out (and are put back, lim at a time) in
        -- claim order, not in id order
        leased[#leased + 1] = deadline + got / 1000000
        leased[#leased + 1] = id
        out[#out + 1] = id
        out[#out + 1] = f[3]
        out[#out + 1] = a
        got = got + 1
      end
    end
    if #leased > 0 then chunked('ZADD', lk, leased) end
  end
  -- nothing due is left: drop stale wake-up tokens (unless delayed jobs may need a recheck)
  if #due < want and redis.call('ZCARD', zk) == 0 then
    redis.call('DEL', qk(q, 'wake'))
  end
end
if got == 0 then
  local nxt = nil
  for k = 5, #ARGV do
    for _, key in ipairs({wk(ARGV[k]), qk(ARGV[k], 'leased')}) do
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if first[2] then
        local d = tonumber(first[2]) - now
        if nxt == nil or d < nxt then nxt = d end
      end
    end
  end
  if nxt then out[1] = fmt(nxt) end
end
return out
"""

# ARGV: P, id...   Forget jobs wherever they are and free their unique keys.
ACK = """
for k = 2, #ARGV do
  local id = ARGV[k]
  local h = jk(id)
  local f = redis.call('HMGET', h, 'q', 's', 'u')
  if f[1] then
    unlink(id, f[1], f[2], f[3])
    redis.call('DEL', h)
  end
end
return 0
"""

# ARGV: P, lease seconds, id...   Returns how many leases were renewed.
EXTEND = """
local deadline = clock() + tonumber(ARGV[2])
local n = 0
for k = 3, #ARGV do
  local f = redis.call('HMGET', jk(ARGV[k]), 'q', 's')
  if f[2] == 'l' then
    redis.call('ZADD', qk(f[1], 'leased'), 'XX', deadline, ARGV[k])
    n = n + 1
  end
end
return n
"""

# ARGV: P, id, queue, delay seconds, unique key, attempts, envelope.
RETRY = """
local now = clock()
local id, q, u = ARGV[2], ARGV[3], ARGV[5]
if redis.call('EXISTS', ck(id)) == 1 then return 0 end  -- cancelled: it stays so
local h = jk(id)
local a = tonumber(ARGV[6])
local key = wk(q)
local f = redis.call('HMGET', h, 'q', 's', 'u', 'a', 'n')
if f[1] then
  unlink(id, f[1], f[2], f[3])
  if f[4] and tonumber(f[4]) > a then a = tonumber(f[4]) end
  redis.call('DEL', h)
end
local at = now + tonumber(ARGV[4])
local t, n = fmt(at), f[5] or sq(seqs(1))  -- a stored job keeps its push sequence number
redis.call('HSET', h, 'b', ARGV[7], 'a', a, 'q', q, 's', 'r', 't', t, 'n', n)
if u ~= '' then
  redis.call('HSET', h, 'u', u)
  redis.call('HSET', P .. 'unique', u, id)
end
redis.call('ZADD', key, t, n .. id)
redis.call('SADD', P .. 'queues', q)
wake(q, 1)
return 0
"""

# ARGV: P, id, queue, ttl milliseconds, attempts, envelope, error, traceback.
# Returns the failed-at time.
FAIL = """
local now = clock()
local id, q = ARGV[2], ARGV[3]
if redis.call('EXISTS', ck(id)) == 1 then return '' end  -- cancelled: never failed
local h = jk(id)
local a = tonumber(ARGV[5])
local f = redis.call('HMGET', h, 'q', 's', 'u', 'a')
if f[1] then
  unlink(id, f[1], f[2], f[3])
  if f[4] and tonumber(f[4]) > a then a = tonumber(f[4]) end
  redis.call('DEL', h)
end
record_failed(id, q, a, ARGV[6], ARGV[7], ARGV[8], now, tonumber(ARGV[4]))
return fmt(now)
"""

# ARGV: P, ttl milliseconds, then 2 per job: id, error.   Leased jobs whose stored envelope
# cannot be decoded go to the failed registry with their stored bytes as they are (copied here,
# never sent through the client). Ids no longer leased are skipped. Returns how many moved.
FAIL_STORED = """
local now = clock()
local ttl = tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local h = jk(id)
  local f = redis.call('HMGET', h, 'q', 's', 'u', 'a', 'b')
  if f[2] == 'l' then
    unlink(id, f[1], f[2], f[3])
    redis.call('DEL', h)
    record_failed(id, f[1], f[4] or 0, f[5] or '', ARGV[i + 1], '', now, ttl)
    n = n + 1
  end
end
return n
"""

# ARGV: P, id...   Reserved jobs back to queued at their place (their available_at and push
# sequence number: in front of the jobs pushed after them), their attempt given back.
RELEASE = """
local touched = {}
for k = 2, #ARGV do
  local id = ARGV[k]
  local h = jk(id)
  local f = redis.call('HMGET', h, 'q', 's', 'a', 't', 'n')
  if f[2] == 'l' then
    local q = f[1]
    redis.call('ZREM', qk(q, 'leased'), id)
    local a = tonumber(f[3]) - 1
    if a < 0 then a = 0 end
    redis.call('HSET', h, 's', 'r', 'a', a)
    local key = wk(q)
    local t, m = spot(h, id, f[4], f[5])
    redis.call('ZADD', key, t, m)
    touched[q] = (touched[q] or 0) + 1
  end
end
for q, k in pairs(touched) do wake(q, k) end
return 0
"""

# ARGV: P, then 4 per job: id, queue, unique key, envelope.   Failed jobs back to ready with
# attempts 0, available_at now and a new push sequence number (behind the jobs waiting); an
# entry that is gone (forgotten, expired) is skipped. Returns how many moved.
REQUEUE = """
local now = clock()
local moved = 0
local touched = {}
for i = 2, #ARGV, 4 do
  local id, q, u = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fh = fk(id)
  local fq = redis.call('HGET', fh, 'q')
  if fq then
    redis.call('DEL', fh)
    redis.call('ZREM', qk(fq, 'failed'), id)
    redis.call('ZREM', P .. 'failed', id)
    local h = jk(id)
    local f = redis.call('HMGET', h, 'q', 's', 'u')
    if f[1] then
      unlink(id, f[1], f[2], f[3])
      redis.call('DEL', h)
    end
    local key = wk(q)
    local t, n = fmt(now), sq(seqs(1))
    redis.call('HSET', h, 'b', ARGV[i + 3], 'a', 0, 'q', q, 's', 'r', 't', t, 'n', n)
    if u ~= '' then
      redis.call('HSET', h, 'u', u)
      redis.call('HSET', P .. 'unique', u, id)
    end
    redis.call('ZADD', key, t, n .. id)
    redis.call('SADD', P .. 'queues', q)
    touched[q] = (touched[q] or 0) + 1
    moved = moved + 1
  end
end
for q, k in pairs(touched) do wake(q, k) end
return moved
"""

# ARGV: P, id...   Returns how many failed entries were removed.
FORGET = """
local n = 0
for k = 2, #ARGV do
  local id = ARGV[k]
  local fh = fk(id)
  local q = redis.call('HGET', fh, 'q')
  if q then
    redis.call('DEL', fh)
    redis.call('ZREM', qk(q, 'failed'), id)
    n = n + 1
  end
  redis.call('ZREM', P .. 'failed', id)
end
return n
"""

# ARGV: P, queue ('' = all), batch size.   Removes up to a batch of the oldest failed entries.
# Returns {removed, scanned}; call again until scanned is 0.
PURGE = """
local key = P .. 'failed'
if ARGV[2] ~= '' then key = qk(ARGV[2], 'failed') end
local ids = redis.call('ZRANGE', key, 0, tonumber(ARGV[3]) - 1)
local n = 0
for _, id in ipairs(ids) do
  local fh = fk(id)
  local q = redis.call('HGET', fh, 'q')
  if q then
    redis.call('DEL', fh)
    redis.call('ZREM', qk(q, 'failed'), id)
    n = n + 1
  end
  redis.call('ZREM', P .. 'failed', id)
  redis.call('ZREM', key, id)
end
return {n, #ids}
"""

# ARGV: P, queue ('' = all), ttl seconds, offset, limit, mode.   Trims expired index entries.
# mode 'ids': every id, oldest first. mode 'list': {id, queue, envelope, attempts, error,
# traceback, failed-at} per entry, newest first, paged.
FAILED_LIST = """
local now = clock()
local key = P .. 'failed'
if ARGV[2] ~= '' then key = qk(ARGV[2], 'failed') end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[3]))
if ARGV[6] == 'ids' then return redis.call('ZRANGE', key, 0, -1) end
local ids = redis.call('ZRANGE', key, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', ARGV[4], ARGV[5])
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', fk(id), 'q', 'b', 'a', 'e', 'tb', 'at')
  if f[1] then
    out[#out + 1] = id
    for x = 1, 6 do out[#out + 1] = f[x] or '' end
  end
end
return out
"""

# ARGV: P, id.   {'job', queue, envelope, attempts, state, lease deadline} or
# {'failed', queue, envelope, attempts, error, traceback, failed-at} or
# {'cancelled', queue, envelope, attempts} or {}.
# A job whose lease has run out is 'ready' (no deadline), as a due delayed job is.
GET_JOB = """
local now = clock()
local id = ARGV[2]
local f = redis.call('HMGET', jk(id), 'q', 'b', 'a', 's', 't')
if f[1] then
  local state, lease = 'ready', ''
  if f[4] == 'l' then
    local deadline = redis.call('ZSCORE', qk(f[1], 'leased'), id)
    if deadline and tonumber(deadline) > now then
      state, lease = 'reserved', deadline
    end
  else  -- queued (or, in the list layout, ready or delayed): t is its available_at
    local at = f[5]
    if at and tonumber(at) > now then state = 'delayed' end
  end
  return {'job', f[1], f[2] or '', f[3] or 0, state, lease}
end
local g = redis.call('HMGET', fk(id), 'q', 'b', 'a', 'e', 'tb', 'at')
if g[1] then return {'failed', g[1], g[2] or '', g[3] or 0, g[4] or '', g[5] or '', g[6] or ''} end
local c = redis.call('HMGET', ck(id), 'q', 'b', 'a')
if c[1] then return {'cancelled', c[1], c[2] or '', c[3] or 0} end
return {}
"""

# ARGV: P, queue.   Jobs waiting in the queue: ready (expired leases included) and delayed.
SIZE = """
local q = ARGV[2]
local expired = redis.call('ZCOUNT', qk(q, 'leased'), '-inf', clock())
return redis.call('ZCARD', wk(q)) + expired
"""

# ARGV: P, failed ttl seconds.   {now, then per queue: name, ready, delayed, reserved, failed,
# oldest ready time ('' = none)}. A constant number of commands per queue. A job whose lease has
# run out counts as ready since its deadline, until a claim puts it back at its available_at.
STATS = """
local now = clock()
local cutoff = now - tonumber(ARGV[2])
local out = {fmt(now)}
for _, q in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
  local zk, lk = wk(q), qk(q, 'leased')
  local oldest = nil
  local first = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
  if first[2] then
    local at = tonumber(first[2])
    if at <= now then oldest = at end
  end
  local lapsed = redis.call('ZRANGE', lk, 0, 0, 'WITHSCORES')
  if lapsed[2] then
    local at = tonumber(lapsed[2])
    if at <= now and (oldest == nil or at < oldest) then oldest = at end
  end
  local due = redis.call('ZCOUNT', zk, '-inf', now)
  local expired = redis.call('ZCOUNT', lk, '-inf', now)
  out[#out + 1] = q
  out[#out + 1] = due + expired
  out[#out + 1] = redis.call('ZCARD', zk) - due
  out[#out + 1] = redis.call('ZCARD', lk) - expired
  out[#out + 1] = redis.call('ZCOUNT', qk(q, 'failed'), '(' .. fmt(cutoff), '+inf')
  if oldest then out[#out + 1] = fmt(oldest) else out[#out + 1] = '' end
end
return out
"""

# ARGV: P, id, ttl milliseconds, token (one per cancel() call).   A live job is removed (its
# unique key freed) and recorded as cancelled with its stored envelope, for ttl. Returns
# 'cancelled' (it was queued, or its lease had run out), 'stopping' (under a valid lease),
# 'already', 'failed' or 'unknown'. A call repeated with its token (after a lost reply) gets the
# first answer again, not 'already'.
CANCEL = """
local now = clock()
local id = ARGV[2]
local c = ck(id)
local was = redis.call('HMGET', c, 'w', 'k')
if was[1] then
  if was[2] == ARGV[4] then return was[1] end
  return 'already'
end
local h = jk(id)
local f = redis.call('HMGET', h, 'q', 's', 'u', 'a', 'b')
if not f[1] then
  if redis.call('EXISTS', fk(id)) == 1 then return 'failed' end
  return 'unknown'
end
local answer = 'cancelled'
if f[2] == 'l' then
  local deadline = redis.call('ZSCORE', qk(f[1], 'leased'), id)
  if deadline and tonumber(deadline) > now then answer = 'stopping' end
end
unlink(id, f[1], f[2], f[3])
redis.call('DEL', h)
redis.call('HSET', c, 'b', f[5] or '', 'a', f[4] or 0, 'q', f[1], 'at', fmt(now), 'w', answer,
  'k', ARGV[4])
redis.call('PEXPIRE', c, tonumber(ARGV[3]))
return answer
"""

# ARGV: P, id...   The ids that are recorded as cancelled.
CANCELLED = """
local out = {}
for k = 2, #ARGV do
  if redis.call('EXISTS', ck(ARGV[k])) == 1 then out[#out + 1] = ARGV[k] end
end
return out
"""

# ARGV: P, name, slot, meta, envelope (one job, as for PUSH).   When the schedule has no mark or
# slot is later than it, stores the job as push() does and, unless that failed ({0, id}: nothing
# changes), marks the slot; returns what ``store`` does. Otherwise stores nothing: {2}.
FIRE = (
    STORE
    + """
local marks = P .. 'schedules'
local mark = redis.call('HGET', marks, ARGV[2])
if mark and tonumber(ARGV[3]) <= tonumber(mark) then return {2} end
local out = store(false, cjson.decode(ARGV[4]), 4)
if out[1] == 1 then redis.call('HSET', marks, ARGV[2], ARGV[3]) end
return out
"""
)

SCRIPTS = {
    "push": PUSH,
    "claim": CLAIM,
    "ack": ACK,
    "extend": EXTEND,
    "retry": RETRY,
    "fail": FAIL,
    "fail_stored": FAIL_STORED,
    "release": RELEASE,
    "requeue": REQUEUE,
    "forget": FORGET,
    "purge": PURGE,
    "failed_list": FAILED_LIST,
    "get_job": GET_JOB,
    "size": SIZE,
    "stats": STATS,
    "cancel": CANCEL,
    "cancelled": CANCELLED,
    "fire": FIRE,
}

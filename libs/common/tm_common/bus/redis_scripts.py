"""The Lua scripts the Redis Streams transport (:mod:`tm_common.bus.redis`) runs on the server.

Each runs atomically, like MULTI/EXEC: ``COMMIT`` (the fenced, ownership-checked commit of
outputs, acks and state), ``PUBLISH`` (a source's events and state, if its state is still the
one it read), ``CONFIRM`` (a writer generation still the newest), ``TAKE_OVER``
(every pending entry of a group to one consumer) and ``BUSY`` (the lockstep probe's question in
one round trip). Above each: its KEYS, ARGV and reply.
"""

# The commit of one entry, or of a read batch of entries.
# KEYS: the input stream of each entry, output streams..., [state key], [generation key]
# ARGV: group, consumer, n entries, n outputs, has state, state, generation ('' = not fenced),
#       the entry ids, then per output: maxlen, n field pairs, k1, v1, ...
# Returns n (committed), -1 (an entry is not pending for this consumer: nothing written) or
# {-2, newer generation} (superseded). The generation key only grows; a missing or lower value
# (Redis lost it) is set back to this commit's generation, once the commit is known to land.
COMMIT = """
local mine = tonumber(ARGV[7])
local gen = nil
if mine then
  gen = tonumber(redis.call('GET', KEYS[#KEYS]))
  if gen and gen > mine then return {-2, gen} end
end
local m = tonumber(ARGV[3])
for i = 1, m do
  local id = ARGV[7 + i]
  local p = redis.call('XPENDING', KEYS[i], ARGV[1], id, id, 1, ARGV[2])
  if #p == 0 then return -1 end
end
if mine and gen ~= mine then redis.call('SET', KEYS[#KEYS], mine) end
local n = tonumber(ARGV[4])
local a = 8 + m
for i = 1, n do
  local ml = ARGV[a]
  local nf = tonumber(ARGV[a + 1])
  local args = {'XADD', KEYS[m + i], 'MAXLEN', '~', ml, '*'}
  for j = 1, 2 * nf do args[#args + 1] = ARGV[a + 1 + j] end
  redis.call(unpack(args))
  a = a + 2 + 2 * nf
end
if ARGV[5] == '1' then redis.call('SET', KEYS[m + n + 1], ARGV[6]) end
for i = 1, m do redis.call('XACK', KEYS[i], ARGV[1], ARGV[7 + i]) end
return n
"""

# A source's publication, checked against the state it last read or wrote (compare and set).
# KEYS: output streams..., state key
# ARGV: n outputs, expected state ('' = none saved), new state, then per output: maxlen,
#       n field pairs, k1, v1, ...
# Returns the new entry ids, or -1 (the saved state is not the expected one: nothing written).
PUBLISH = """
local saved = redis.call('GET', KEYS[#KEYS])
if (saved or '') ~= ARGV[2] then return -1 end
local n = tonumber(ARGV[1])
local ids = {}
local a = 4
for i = 1, n do
  local nf = tonumber(ARGV[a + 1])
  local args = {'XADD', KEYS[i], 'MAXLEN', '~', ARGV[a], '*'}
  for j = 1, 2 * nf do args[#args + 1] = ARGV[a + 1 + j] end
  ids[i] = redis.call(unpack(args))
  a = a + 2 + 2 * nf
end
redis.call('SET', KEYS[#KEYS], ARGV[3])
return ids
"""

# KEYS: generation key; ARGV: generation. 0 = still the newest, else the newer generation.
CONFIRM = """
local mine = tonumber(ARGV[1])
local gen = tonumber(redis.call('GET', KEYS[1]))
if gen and gen > mine then return gen end
if gen ~= mine then redis.call('SET', KEYS[1], mine) end
return 0
"""

# KEYS: streams; ARGV: group, consumer. Every pending entry of the group moves to the consumer;
# JUSTID: the delivery counter is not incremented (the next read of it counts one).
TAKE_OVER = """
local n = 0
for i = 1, #KEYS do
  local start = '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', KEYS[i], ARGV[1], ARGV[2], 0, start, 'COUNT', 1000,
                         'JUSTID')
    start = r[1]
    n = n + #r[2]
  until start == '0-0'
end
return n
"""

# KEYS: streams. The lockstep probe's question in one round trip, answered by the server: for
# each group of each stream with undelivered entries (the stream's newest id after the group's
# last-delivered id; see tm_common.bus.redis._undelivered) or unacked ones, {key index, group,
# lag, pending}, flat.
# Polled every few milliseconds while a replay waits: parsing every group's XINFO reply in
# Python cost the replaying process more CPU than any service's handler.
BUSY = """
local function later(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local out = {}
for i = 1, #KEYS do
  local groups = redis.pcall('XINFO', 'GROUPS', KEYS[i])
  if type(groups) == 'table' and not groups.err and #groups > 0 then
    local newest = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
    for _, g in ipairs(groups) do
      local f = {}
      for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
      local pending = tonumber(f['pending'])
      local lag = 0
      if #newest > 0 and later(newest[1][1], f['last-delivered-id']) then
        lag = tonumber(f['lag']) or 1
        if lag == 0 then lag = 1 end
      end
      if lag > 0 or pending > 0 then
        out[#out + 1] = i
        out[#out + 1] = f['name']
        out[#out + 1] = lag
        out[#out + 1] = pending
      end
    end
  end
end
return out
"""

#!lua name=wa_ingest_3

--[[
wa-relay: the ingest function the nginx module calls once per turn of its
event loop, for the webhooks that turn brought.

FCALL wa_ingest_3 numkeys  [dedupe keys] <streams the events go to>
      <dedupe seconds, 0 = off> <stream cap, 0 = none> <request count>
      then, per request: <event count>
      then, per event:   <its stream's index in KEYS> <field count>
                         <field> <value> ...

With a dedupe window, the dedupe key of the call's event i (counted across
its requests) is KEYS[i]; the streams follow.  Each event is appended
unless its dedupe key already exists; the key is then set with the window
as TTL.  Because a function runs atomically, the check and the append can
never be split: a redelivery inside the window adds nothing.

All or nothing: Redis does not undo what a function wrote before an error
(a stream key of the wrong type, a stream whose ids are exhausted), so the
call keeps what it wrote and, on any error, deletes its own entries and
dedupe keys before answering the error.  A dedupe key left behind would
make Meta's redelivery of a refused event "a duplicate", and the event
would be lost.  Under maxmemory, Redis refuses the whole call before it
writes anything.

Returns, per request, how many of its events were appended: the others
were duplicates.

One call carries several requests because much of what Redis spends on a
call is the call itself.  Only the streams used are keys, and the reply
holds only counts (docs/benchmarks.md).

The library name carries a version: a module of another version loads its
own library beside this one, so a rolling upgrade never swaps the code
under a running nginx.  The module loads it (FUNCTION LOAD REPLACE) on every
connection; see docs/redis.md.
]]

-- Numbers arrive as decimal strings, as the module formats them ("0" for
-- off).  The window and the cap go on to SET and XADD as those strings:
-- a Lua number would be formatted again with %.17g and parsed back by
-- Redis.  Counts and indexes are read through a table of small integers
-- rather than tonumber(), which is strtod() and shows in Redis's profile.
local int = {}
for i = 0, 255 do
    int['' .. i] = i
end

local function count(s)
    return int[s] or tonumber(s)
end

-- undoes what a call wrote: its entries (stream, id), its dedupe keys
local function undo(written)
    local e = written.entries
    for i = 1, written.nentries, 2 do
        redis.call('XDEL', e[i], e[i + 1])
    end

    for i = 1, written.nkeys do
        redis.call('DEL', written.keys[i])
    end
end

local function append(keys, args, written)
    local ttl = args[1]
    local cap = args[2]
    local requests = count(args[3])
    local pos = 4
    local key = 0
    local counts = {}

    for r = 1, requests do
        local n = count(args[pos])
        local appended = 0
        pos = pos + 1

        for _ = 1, n do
            local stream = keys[count(args[pos])]
            local nfields = count(args[pos + 1])
            local first = pos + 2
            local last = first + 2 * nfields - 1
            pos = last + 1
            key = key + 1

            local fresh = true
            if ttl ~= '0' then
                fresh = redis.call('SET', keys[key], '1', 'NX', 'EX', ttl)
                if fresh then
                    written.nkeys = written.nkeys + 1
                    written.keys[written.nkeys] = keys[key]
                end
            end

            if fresh then
                local id
                if cap ~= '0' then
                    id = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*',
                                    unpack(args, first, last))
                else
                    id = redis.call('XADD', stream, '*',
                                    unpack(args, first, last))
                end

                local m = written.nentries
                written.entries[m + 1] = stream
                written.entries[m + 2] = id
                written.nentries = m + 2
                appended = appended + 1
            end
        end

        counts[r] = appended
    end

    return counts
end

local function ingest(keys, args)
    local written = { keys = {}, nkeys = 0, entries = {}, nentries = 0 }

    local ok, result = pcall(append, keys, args, written)
    if ok then
        return result
    end

    undo(written)

    -- an error from Redis keeps its code (WRONGTYPE ...); any other is ERR
    local why = type(result) == 'table' and result.err or tostring(result)
    if not string.find(why, '^%u+ ') then
        why = 'ERR ' .. why
    end

    return redis.error_reply(why)
end

redis.register_function('wa_ingest_3', ingest)

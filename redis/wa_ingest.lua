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
never be split: a redelivery inside the window adds nothing, and a call
that fails adds nothing either.

Returns, per request, how many of its events were appended: the others
were duplicates.

One call carries several requests because much of what Redis spends on a
call is the call itself: with 16 to 28 requests in a call, each costs
Redis 28% less (docs/benchmarks.md).  Only the streams used are keys, and
the reply holds only counts: two stream names less and no table of entry
ids cost Redis 13% less per call.

The library name carries a version: a module of another version loads its
own library beside this one, so a rolling upgrade never swaps the code
under a running nginx.  The module loads it (FUNCTION LOAD REPLACE) on every
connection; see docs/redis.md.
]]

-- Numbers arrive as decimal strings, as the module formats them ("0" for
-- off).  The window and the cap go on to SET and XADD as those strings:
-- a Lua number would be formatted again with %.17g and parsed back by
-- Redis.  Counts and indexes are read through a table of small integers
-- rather than tonumber(), which is strtod(): together 5% of Redis's time
-- per request (docs/benchmarks.md).
local int = {}
for i = 0, 255 do
    int['' .. i] = i
end

local function count(s)
    return int[s] or tonumber(s)
end

local function ingest(keys, args)
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
            end

            if fresh then
                if cap ~= '0' then
                    redis.call('XADD', stream, 'MAXLEN', '~', cap, '*',
                               unpack(args, first, last))
                else
                    redis.call('XADD', stream, '*', unpack(args, first, last))
                end
                appended = appended + 1
            end
        end

        counts[r] = appended
    end

    return counts
end

redis.register_function('wa_ingest_3', ingest)

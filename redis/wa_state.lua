#!lua name=wa_state_1

--[[
wa-relay: the state WhatsApp's rules turn on, kept by wa-relayd.

wa_apply_1 applies a batch of stream entries read by one consumer group and
acknowledges them in the same atomic call: a worker killed at any moment
leaves every entry either applied and acknowledged, or neither (it is then
reclaimed).  An entry another consumer already acknowledged is skipped, and
an event_id seen before (a redelivery outside the ingest dedupe window) is
acknowledged without being applied again, so counters never count twice.

  FCALL wa_apply_1 1 <stream>  <prefix> <group> <seen_ttl> <options> <n>
        [<entry id> <nfields> <field> <value> ...] x n
  -> { applied, duplicates, skipped, dead }

The worker leaves out the fields the rules never read: "raw", "field" and
"received_at" (src/worker/consume.c, left_out).  A rule that needs one must
be given it there.

<options> is a JSON object of the automatic replies (docs/outbox.md):
optout_reply, optin_reply, away_reply with hours {from, to, days, utc_offset
minutes}, mark_read.

wa_govern_1 decides whether an outbox entry may go now (docs/outbox.md),
and paces each business number and each of its recipients in Redis, for
every worker that sends (its arguments are at the function).

wa_sent_1 records an outbound message sent through the Graph API with the
template and variant it carries, for the trackers (the sender calls it).

  FCALL wa_sent_1 0  <prefix> <wamid> <phone_number_id> <recipient> <ts>
        <template> <language> <variant>

Keys and fields are documented in docs/state.md.
--]]

local DAY = 86400
local MSG_TTL = 35 * DAY            -- Meta keeps a message alive 30 days
local DAILY_TTL = 400 * DAY
local ALERTS_MAXLEN = 100000
-- the format of the entries this file writes: WA_EVENTS_V of
-- src/core/wa_streams.h (t/worker/w60-contract.t checks they agree)
local V = '1'

-- outbound status steps; failed is final, unknown statuses are recorded only
local RANK = { sent = 1, delivered = 2, read = 3, played = 4 }
local STEPS = { 'sent', 'delivered', 'read', 'played' }

-- inbound types that do not open or restart the customer-service window
local NOT_WINDOW = { reaction = true, system = true, revoke = true,
                     edit = true, ephemeral = true }

local QUALITY = { GREEN = 3, YELLOW = 2, RED = 1 }

local TIERS = { TIER_50 = 50, TIER_250 = 250, TIER_1K = 1000,
                TIER_2K = 2000, TIER_10K = 10000, TIER_100K = 100000,
                TIER_UNLIMITED = -1 }

local P                             -- the key prefix of this call
local MAPPED, EXPIRING = {}, {}     -- keys mapped or given a TTL this call
local OPT = {}                      -- the automatic replies of this call
local COUNTS, COUNTED = {}, {}      -- counters of this call, by key (flush)


-- a key of this call's prefix and up to four parts, concatenated without a
-- table per key (keys are made for every event)
local function key(a, b, c, d)
    if d then return P .. ':' .. a .. ':' .. b .. ':' .. c .. ':' .. d end
    if c then return P .. ':' .. a .. ':' .. b .. ':' .. c end
    if b then return P .. ':' .. a .. ':' .. b end
    return P .. ':' .. a
end

local function num(v)
    return tonumber(v)
end

-- the field count of a stream entry: '0' to '64' through a table, without
-- strtod (tonumber runs it twice)
local SMALL = {}
for k = 0, 64 do SMALL['' .. k] = k end

local function count_of(v)
    return SMALL[v] or tonumber(v)
end

-- a number as Redis wants it: Lua would format it with %.14g, which is
-- slow; the worker's state is whole seconds and counts
local function I(v)
    return string.format('%d', v)
end

-- days since the epoch to a UTC date (proleptic Gregorian)
local function civil(ts)
    local z = math.floor(ts / DAY) + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460)
                            + math.floor(doe / 36524)
                            - math.floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + math.floor(yoe / 4)
                       - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    if m <= 2 then y = y + 1 end
    return string.format('%04d-%02d-%02d', y, m, d)
end

local DATES = {}                    -- of this call, by day
local SEEN = {}                     -- seen-set keys of this call, by kind, day

local function ymd(ts)
    local day = math.floor(ts / DAY)
    local date = DATES[day]
    if not date then
        date = civil(ts)
        DATES[day] = date
    end
    return date
end

local HOURS = {}
for h = 0, 23 do HOURS[h] = (h < 10 and '0' or '') .. h end

-- '<dir>_hour_<hh>' for the daily counters, made once rather than
-- concatenated for every event
-- (a plain loop: a library's top level has no pairs or ipairs)
local HOUR_FIELDS = {}
local HOURLY = { 'in', 'out', 'responses', 'response_time_sum',
                 'first_responses', 'first_response_time_sum' }
for i = 1, #HOURLY do
    local dir = HOURLY[i]
    HOUR_FIELDS[dir] = {}
    for h = 0, 23 do
        HOUR_FIELDS[dir][h] = dir .. '_hour_' .. HOURS[h]
    end
end

local function hget(k, f)
    local v = redis.call('HGET', k, f)
    if v == false then return nil end
    return v
end

-- set a hash field to the larger of its value and v
local function hmax(k, f, v)
    local old = num(hget(k, f))
    if old == nil or v > old then
        redis.call('HSET', k, f, I(v))
        return true
    end
    return false
end

local function alert(e, severity, subject, text)
    redis.call('XADD', key('alerts'), 'MAXLEN', '~', ALERTS_MAXLEN, '*',
               'v', V, 'severity', severity, 'kind', e.kind, 'subject', subject,
               'message', text, 'event_id', e.event_id or '',
               'ts', e.ts or '')
end

-- Counters add up in COUNTS during a call and reach Redis once per key and
-- field at its end (flush): a batch of 512 messages of one day makes two
-- HINCRBY calls, not 1024.  Nothing in a call reads them back.
local function count(k, f, n)
    local c = COUNTS[k]
    if not c then
        c = {}
        COUNTS[k] = c
        COUNTED[#COUNTED + 1] = k
    end
    c[f] = (c[f] or 0) + (n or 1)
end

local function flush()
    for _, k in ipairs(COUNTED) do
        for f, n in pairs(COUNTS[k]) do
            -- the entries are applied and acknowledged by now: a key of
            -- the wrong type loses its counts, said in wa:alerts, not more
            local r = redis.pcall('HINCRBY', k, f, I(n))
            if type(r) == 'table' and r.err then
                redis.call('XADD', key('alerts'), 'MAXLEN', '~',
                           ALERTS_MAXLEN, '*', 'v', V, 'severity', 'error',
                           'kind', 'counter', 'subject', k,
                           'message', f .. ' +' .. I(n) .. ': ' .. r.err)
            end
        end
    end
    COUNTS, COUNTED = {}, {}
end

local function daily(pn, ts, dir, n)
    local k = key('daily', pn, ymd(ts))
    count(k, dir, n)
    count(k, HOUR_FIELDS[dir][math.floor((ts % DAY) / 3600)], n)
    if not EXPIRING[k] then
        redis.call('EXPIRE', k, I(DAILY_TTL))
        EXPIRING[k] = true
    end
    return k
end

local function tstats(template, variant, field, n)
    if not template then return end
    count(key('tstats', template), field, n)
    if variant then
        count(key('tstats', template, variant), field, n)
    end
end

local function phone_map(pn, e)
    if pn and e.waba_id and not MAPPED[pn] then
        redis.call('HSET', key('phone', pn), 'waba_id', e.waba_id,
                   'display_phone_number', e.display_phone_number or '')
        MAPPED[pn] = true
    end
end

-- the field-value pairs of one HSET, in a table kept from event to event:
-- a new one grew five times for every message
local SET, NSET = {}, 0

local function put(f, v)
    SET[NSET + 1] = f
    SET[NSET + 2] = v
    NSET = NSET + 2
end

local function contact_key(pn, user)
    if not pn or not user then return nil end
    return key('contact', pn, user)
end


-- a message leaving the business number for the first time: counts, the
-- response time to the user's message waiting for it, the free entry point
local function outbound_first(pn, user, wamid, ts)
    if pn then daily(pn, ts, 'out') end
    local ck = contact_key(pn, user)
    if not ck then return end

    redis.call('HINCRBY', ck, 'messages_out', '1')
    hmax(ck, 'last_outbound_at', ts)

    local r = redis.call('HMGET', ck, 'awaiting_since', 'awaiting_first',
                         'referral_at', 'entry_point_expires_at')
    local since = num(r[1])
    if since and ts >= since then
        -- by the hour of the answer, as the day's totals are by its day
        daily(pn, ts, 'responses')
        daily(pn, ts, 'response_time_sum', ts - since)
        if r[2] == '1' then
            daily(pn, ts, 'first_responses')
            daily(pn, ts, 'first_response_time_sum', ts - since)
        end
        redis.call('HDEL', ck, 'awaiting_since', 'awaiting_first')
    end

    -- an answer within 24 h of an ad click opens a 72 h free window
    local ref = num(r[3])
    if ref and ts >= ref and ts <= ref + DAY and not r[4] then
        redis.call('HSET', ck, 'entry_point_expires_at', ts + 3 * DAY)
    end
end


-- the tracker steps a message reaches when its status moves from a to b
local function count_steps(template, variant, from, to)
    for r = from + 1, to do
        tstats(template, variant, STEPS[r])
    end
end


local function opted_out_after_template(ck, ts)
    local r = redis.call('HMGET', ck, 'tpl_name', 'tpl_variant',
                         'tpl_sent_at', 'tpl_opted_out')
    if r[1] and r[4] ~= '1' and num(r[3]) and ts >= num(r[3]) then
        tstats(r[1], r[2] or nil, 'opted_out')
        redis.call('HSET', ck, 'tpl_opted_out', 1)
    end
end


local function auto_reply(e, user, kind, text)
    if not text or text == '' then return end
    local m = { type = 'text', text = { body = text } }
    local fields = { 'phone_number_id', e.phone_number_id,
                     'message', cjson.encode(m), 'auto_reply', kind,
                     'reply_to', e.msg_id or '' }
    if e.from then
        table.insert(fields, 'to'); table.insert(fields, e.from)
    else
        table.insert(fields, 'recipient'); table.insert(fields, user)
    end
    redis.call('XADD', key('outbox'), '*', unpack(fields))
end


-- business hours: { from = 9, to = 18, days = "12345", utc_offset = -180 }
local function in_hours(ts)
    local h = OPT.hours
    if not h then return true end
    local t = ts + (tonumber(h.utc_offset) or 0) * 60
    local hr = math.floor((t % DAY) / 3600)
    local dow = (math.floor(t / DAY) + 4) % 7      -- 1970-01-01: Thursday
    if dow == 0 then dow = 7 end                     -- 1 Monday .. 7 Sunday
    if h.days and not string.find(h.days, tostring(dow), 1, true) then
        return false
    end
    return hr >= (tonumber(h.from) or 0) and hr < (tonumber(h.to) or 24)
end


local function inbound(e, ts)
    local pn = e.phone_number_id
    local user = e.from or e.from_user_id
    local ck = contact_key(pn, user)
    if not ck or not ts then return 'skipped' end

    phone_map(pn, e)

    -- one read of what the rules need, one write of what changed
    local c = redis.call('HMGET', ck, 'last_inbound_at', 'window_expires_at',
                         'awaiting_since', 'tpl_name', 'tpl_variant',
                         'tpl_delivered_at', 'tpl_replied',
                         'window_opened_at', 'away_sent_window',
                         'messages_in')
    NSET = 0
    if e.profile_name then put('profile_name', e.profile_name) end
    if e.from_user_id then put('user_id', e.from_user_id) end
    local last = num(c[1])
    if not last or ts > last then put('last_inbound_at', e.ts) end

    local opened = c[8]
    if not NOT_WINDOW[e.type or ''] then
        local old = num(c[2])
        local open = old and old > ts
        if not old or ts + DAY > old then
            put('window_expires_at', I(ts + DAY))
            if not open then
                put('window_opened_at', e.ts)
                opened = tostring(ts)
            end
        end
        -- the first unanswered message; a new window starts afresh
        if not open or not c[3] then
            put('awaiting_since', e.ts)
            put('awaiting_first', open and '0' or '1')
        end
    end

    if e.referral_source_type or e.ctwa_clid or e.referral_source_id then
        put('referral_at', e.ts)
        put('referral_source_id', e.referral_source_id or '')
        put('ctwa_clid', e.ctwa_clid or '')
        redis.call('HDEL', ck, 'entry_point_expires_at')
    end

    -- a reply to the last template within 24 h of its delivery
    local at = num(c[6])
    if c[4] and c[7] ~= '1' and at and ts >= at and ts <= at + DAY then
        tstats(c[4], c[5] or nil, 'replied')
        put('tpl_replied', '1')
    end

    if e.keyword == 'optout' then
        put('opted_out', '1')
        put('opted_out_source', 'keyword')
        put('opted_out_at', e.ts)
        put('opted_out_text', e.text or '')
    elseif e.keyword == 'optin' then
        put('opted_out', '0')
        put('opted_in_at', e.ts)
    elseif OPT.away_reply and not NOT_WINDOW[e.type or '']
           and not in_hours(ts) and opened and c[9] ~= opened
    then
        -- once per window
        put('away_sent_window', opened)
        auto_reply(e, user, 'away', OPT.away_reply)
    end

    put('messages_in', I((num(c[10]) or 0) + 1))
    redis.call('HSET', ck, unpack(SET, 1, NSET))
    daily(pn, ts, 'in')

    if e.keyword == 'optout' then
        opted_out_after_template(ck, ts)
        auto_reply(e, user, 'optout', OPT.optout_reply)
    elseif e.keyword == 'optin' then
        auto_reply(e, user, 'optin', OPT.optin_reply)
    end

    if OPT.mark_read and e.msg_id then
        redis.call('XADD', key('outbox'), '*', 'phone_number_id', pn,
                   'message', cjson.encode({ status = 'read',
                                             message_id = e.msg_id }),
                   'auto_reply', 'read')
    end
    return 'applied'
end


local function echo(e, ts)
    if e.type == 'revoke' or e.type == 'edit' or not e.msg_id then
        return 'skipped'
    end
    if not ts then return 'skipped' end
    local mk = key('msg', e.msg_id)
    local new = redis.call('EXISTS', mk) == 0
    local user = e.to or e.to_user_id
    redis.call('HSET', mk, 'source', 'echo', 'phone_number_id',
               e.phone_number_id or '', 'recipient_id', user or '')
    redis.call('HSETNX', mk, 'sent_at', ts)
    redis.call('EXPIRE', mk, I(MSG_TTL))
    if new then outbound_first(e.phone_number_id, user, e.msg_id, ts) end
    return 'applied'
end


-- the fields of a status kept in its message's hash as they come
local STATUS_KEPT = { 'recipient_id', 'phone_number_id', 'pricing_category',
                      'pricing_type', 'billable', 'conversation_id',
                      'biz_opaque_callback_data' }

local function status(e, ts)
    local wamid, st = e.msg_id, e.status
    if not wamid or not st or not ts then return 'skipped' end
    local mk = key('msg', wamid)
    local new = redis.call('EXISTS', mk) == 0
    local user = e.recipient_id or e.recipient_user_id
    local pn = e.phone_number_id

    phone_map(pn, e)

    NSET = 0
    for _, f in ipairs(STATUS_KEPT) do
        if e[f] then put(f, e[f]) end
    end
    if NSET > 0 then redis.call('HSET', mk, unpack(SET, 1, NSET)) end

    local r = redis.call('HMGET', mk, 'status', 'template', 'variant')
    local cur, template, variant = r[1] or nil, r[2] or nil, r[3] or nil
    local crank = RANK[cur or ''] or 0

    if cur == 'failed' then
        -- final
    elseif st == 'failed' then
        if crank < RANK.read then
            redis.call('HSET', mk, 'status', 'failed', 'failed_at', e.ts,
                       'error_code', e.error_code or '',
                       'error_title', e.error_title or '')
            if crank == 0 then tstats(template, variant, 'sent') end
            tstats(template, variant, 'failed')
        end
    elseif RANK[st] then
        if RANK[st] > crank then
            redis.call('HSET', mk, 'status', st, st .. '_at', e.ts)
            count_steps(template, variant, crank, RANK[st])
            if st == 'delivered' or (crank < 2 and RANK[st] >= 2) then
                local ck = contact_key(pn, user)
                if ck and template and hget(ck, 'tpl_wamid') == wamid then
                    redis.call('HSET', ck, 'tpl_delivered_at', e.ts)
                end
            end
        end
    else
        -- deleted, warning, or a status Meta adds later: kept, not ranked
        redis.call('HSET', mk, 'last_other_status', st, st .. '_at', e.ts)
    end

    if e.pricing_type == 'free_entry_point' and e.conversation_expires then
        local ck = contact_key(pn, user)
        if ck then
            hmax(ck, 'entry_point_expires_at', num(e.conversation_expires) or 0)
        end
    end

    redis.call('EXPIRE', mk, I(MSG_TTL))
    if new then outbound_first(pn, user, wamid, ts) end
    return 'applied'
end


local function template_key(e)
    if not e.message_template_name then return nil end
    return key('template', e.waba_id or '-', e.message_template_name,
               e.message_template_language or '-')
end

local function template_label(e)
    return string.format('template %s (%s)', e.message_template_name,
                         e.message_template_language or '-')
end

local function template_status(e, ts)
    local tk = template_key(e)
    ts = ts or 0
    if not tk or not e.event then return 'skipped' end

    redis.call('HSET', tk, 'template_id', e.message_template_id or '',
               'name', e.message_template_name,
               'language', e.message_template_language or '')
    if e.message_template_category then
        redis.call('HSET', tk, 'category', e.message_template_category)
    end
    if e.event == 'PAUSED' then
        -- 3 h, then 6 h; other_info's title says which when Meta sends it
        local n = redis.call('HINCRBY', tk, 'pause_count', 1)
        if e.other_info_title == 'FIRST_PAUSE' then n = 1
        elseif e.other_info_title == 'SECOND_PAUSE' then n = 2 end
        redis.call('HSET', tk, 'pause_count', n, 'paused_at', ts,
                   'paused_until', ts + (n <= 1 and 3 or 6) * 3600)
        alert(e, 'warning', template_label(e),
              string.format('%s paused (%s pause) until %s',
                            template_label(e), n <= 1 and 'first' or 'second',
                            ts + (n <= 1 and 3 or 6) * 3600))
    elseif e.event == 'DISABLED' then
        redis.call('HSET', tk, 'disabled_at', ts)
        redis.call('HDEL', tk, 'paused_until')
        alert(e, 'critical', template_label(e),
              template_label(e) .. ' disabled: ' .. (e.reason or 'no reason'))
    end

    -- the newest event decides the status; a late one is kept as history
    if hmax(tk, 'status_at', ts) or not hget(tk, 'status') then
        redis.call('HSET', tk, 'status', e.event,
                   'reason', e.reason or e.rejection_info_reason or '')
        if e.event ~= 'PAUSED' then redis.call('HDEL', tk, 'paused_until') end
    end
    return 'applied'
end


local function template_quality(e)
    local tk = template_key(e)
    if not tk then return 'skipped' end
    local new, prev = e.new_quality_score, e.previous_quality_score
    redis.call('HSET', tk, 'template_id', e.message_template_id or '',
               'name', e.message_template_name,
               'language', e.message_template_language or '',
               'quality_score', new or '', 'previous_quality_score',
               prev or '', 'quality_at', e.ts or '')
    if QUALITY[new or ''] and QUALITY[prev or '']
       and QUALITY[new] < QUALITY[prev]
    then
        alert(e, new == 'RED' and 'critical' or 'warning', template_label(e),
              string.format('%s quality dropped from %s to %s',
                            template_label(e), prev, new))
    end
    return 'applied'
end


local function template_category(e)
    local tk = template_key(e)
    if not tk then return 'skipped' end
    redis.call('HSET', tk, 'name', e.message_template_name,
               'language', e.message_template_language or '',
               'category', e.new_category or '',
               'previous_category', e.previous_category or '')
    return 'applied'
end


-- The messaging limit a WABA's events last gave, on the WABA: since
-- 2025-10-07 Meta sets it per business portfolio, so the latest of
-- business_capability_update and any number's phone_number_quality_update
-- is the portfolio's (TIER_NOT_SET and unknown tiers give none)
local function waba_limit(waba, limit, ts)
    local users = TIERS[limit] or num(limit)
    if not users or not waba then return end
    local wk = key('waba', waba)
    local at = num(hget(wk, 'limit_at'))
    if at and (ts or 0) < at then return end
    redis.call('HSET', wk, 'limit_users', users,
               'limit_tier', TIERS[limit] and limit or '', 'limit_at',
               I(ts or 0))
end


local function number_quality(e, ts)
    local num_id = e.display_phone_number or e.phone_number_id
    if not num_id or not e.event then return 'skipped' end
    local nk = key('number', num_id)
    ts = ts or 0
    local ev = e.event
    local label = 'number ' .. num_id

    if not hmax(nk, 'last_event_at', ts) and hget(nk, 'last_event') then
        -- older than what we know: keep it out of the current state
        redis.call('HSET', nk, 'late_event', ev)
        return 'applied'
    end

    redis.call('HSET', nk, 'waba_id', e.waba_id or '', 'last_event', ev,
               'display_phone_number', num_id)
    local old_limit = hget(nk, 'messaging_limit')
    if e.current_limit then
        redis.call('HSET', nk, 'messaging_limit', e.current_limit,
                   'messaging_limit_users', TIERS[e.current_limit] or '')
        waba_limit(e.waba_id, e.current_limit, ts)
    end
    if e.max_daily_conversations_per_business then
        redis.call('HSET', nk, 'max_daily_conversations_per_business',
                   e.max_daily_conversations_per_business)
    end

    if ev == 'FLAGGED' then
        redis.call('HSET', nk, 'status', 'FLAGGED', 'quality_rating', 'RED',
                   'flagged_at', ts)
        alert(e, 'critical', label, label .. ' flagged: quality is RED; '
              .. 'Meta holds limit increases and may pause templates '
              .. 'until it recovers')
    elseif ev == 'UNFLAGGED' then
        redis.call('HSET', nk, 'status', 'CONNECTED', 'quality_rating',
                   'GREEN')
        redis.call('HDEL', nk, 'flagged_at')
        alert(e, 'info', label, label .. ' unflagged: connected again')
    elseif ev == 'DOWNGRADE' or ev == 'UPGRADE' then
        redis.call('HSET', nk, 'status', 'CONNECTED')
        redis.call('HDEL', nk, 'flagged_at')
        alert(e, ev == 'DOWNGRADE' and 'critical' or 'info', label,
              string.format('%s messaging limit %s: %s -> %s', label,
                            ev == 'DOWNGRADE' and 'lowered' or 'raised',
                            e.old_limit or old_limit or '?',
                            e.current_limit or '?'))
    elseif ev == 'THROUGHPUT_UPGRADE' then
        redis.call('HSET', nk, 'throughput_level', 'HIGH')
        alert(e, 'info', label, label .. ' throughput raised to 1000 msg/s')
    elseif ev == 'ONBOARDING' then
        redis.call('HSETNX', nk, 'status', 'CONNECTED')
    end

    if ev ~= 'DOWNGRADE' and ev ~= 'UPGRADE' and old_limit
       and e.current_limit and old_limit ~= e.current_limit
    then
        alert(e, 'info', label, string.format('%s messaging limit %s -> %s',
              label, old_limit, e.current_limit))
    end
    return 'applied'
end


local function capability(e)
    local wk = key('waba', e.waba_id or '-')
    for _, f in ipairs({ 'max_daily_conversation_per_phone',
                         'max_daily_conversations_per_business',
                         'max_phone_numbers_per_waba' }) do
        if e[f] then redis.call('HSET', wk, f, e[f]) end
    end
    redis.call('HSET', wk, 'capability_at', e.ts or '')
    local limit = e.max_daily_conversations_per_business
    waba_limit(e.waba_id, limit, num(e.ts))
    if e.display_phone_number and limit then
        redis.call('HSET', key('number', e.display_phone_number),
                   'max_daily_conversations_per_business', limit,
                   'messaging_limit_users', TIERS[limit] or num(limit) or '')
    end
    return 'applied'
end


local function account(e)
    local wk = key('waba', e.waba_id or '-')
    local ev = e.event or ''
    local label = 'WABA ' .. (e.waba_id or '-')
    redis.call('HSET', wk, 'last_event', ev, 'last_event_at', e.ts or '')

    if ev == 'ACCOUNT_RESTRICTION' then
        redis.call('HSET', wk, 'restricted', 1, 'restricted_at', e.ts or '')
        alert(e, 'critical', label, label .. ' restricted: it can only '
              .. 'answer users')
    elseif ev == 'DISABLED_UPDATE' then
        redis.call('HSET', wk, 'ban_state', e.ban_info_waba_ban_state or '',
                   'ban_date', e.ban_info_waba_ban_date or '')
        alert(e, 'critical', label, string.format('%s ban state %s (%s)',
              label, e.ban_info_waba_ban_state or '?',
              e.ban_info_waba_ban_date or '?'))
    elseif ev == 'ACCOUNT_VIOLATION' then
        redis.call('HSET', wk, 'violation', e.violation_info_violation_type
                   or '')
        alert(e, 'critical', label, string.format('%s violation: %s', label,
              e.violation_info_violation_type or '?'))
    elseif ev == 'ACCOUNT_DELETED' or ev == 'ACCOUNT_OFFBOARDED' then
        alert(e, 'critical', label, label .. ': ' .. ev)
    elseif ev == 'ACCOUNT_RECONNECTED' then
        redis.call('HDEL', wk, 'restricted', 'restricted_at')
        alert(e, 'info', label, label .. ' reconnected')
    end
    return 'applied'
end


local function account_alert(e)
    alert(e, string.lower(e.alert_info_alert_severity or 'warning'),
          (e.entity_type or 'entity') .. ' ' .. (e.entity_id or ''),
          string.format('%s: %s', e.alert_info_alert_type or 'alert',
                        e.alert_info_alert_description or ''))
    return 'applied'
end


local function preference(e, ts)
    local ck = contact_key(e.phone_number_id, e.wa_id)
    if not ck or not e.value then return 'skipped' end
    ts = ts or 0
    if not hmax(ck, 'marketing_at', ts) then
        return 'applied'              -- an older change than the one we have
    end
    redis.call('HSET', ck, 'marketing', e.value,
               'marketing_detail', e.detail or '')
    if e.value == 'stop' then opted_out_after_template(ck, ts) end
    return 'applied'
end


local APPLY = {
    message = inbound,
    smb_message_echoes = echo,
    status = status,
    message_template_status_update = template_status,
    message_template_quality_update = template_quality,
    template_category_update = template_category,
    phone_number_quality_update = number_quality,
    business_capability_update = capability,
    account_update = account,
    account_alerts = account_alert,
    user_preferences = preference,
}


-- the payload of a stream entry: the worker does not pass it along
local function raw(stream, id)
    local r = redis.call('XRANGE', stream, id, id)
    local f = r[1] and r[1][2] or {}
    for j = 1, #f - 1, 2 do
        if f[j] == 'raw' then return f[j + 1] end
    end
    return ''
end


-- Remembers an applied event for at least ttl seconds; false if it was
-- applied before.  One set per group, kind and UTC day of the event's own
-- time (a redelivery carries the same time, so it lands in the same set),
-- expiring ttl seconds after that day ends, or after now for an older day:
-- a member costs far less than a key with its own TTL, which showed as a
-- fifth of the worker's throughput.
-- an error of Redis's ACL: the user may not run a command or touch a key
local function refused(err)
    local s = tostring(type(err) == 'table' and err.err or err)
    return s:find('^NOPERM') ~= nil
        or s:find("^ERR The user executing the script can't") ~= nil
end

-- the seen set of an event: its key, made once per kind and day in a call
local function seen_key(group, e, ts, now)
    local day = math.floor((ts or now) / DAY)
    local kinds = SEEN[e.kind]
    if not kinds then
        kinds = {}
        SEEN[e.kind] = kinds
    end
    local k = kinds[day]
    if not k then
        k = key('seen', group, e.kind, I(day))
        kinds[day] = k
    end
    return k, day
end

local function first_time(group, e, ts, ttl, now)
    local k, day = seen_key(group, e, ts, now)
    if redis.call('SADD', k, e.event_id) == 0 then return false end
    if not EXPIRING[k] then
        redis.call('EXPIREAT', k, I(math.max((day + 1) * DAY, now) + ttl))
        EXPIRING[k] = true
    end
    return true
end


-- An empty event with room for the fields of a message or a status: filled
-- from {}, its table was rehashed five times.  Lua keeps a place for each
-- name set to nil in a constructor.
local function new_event()
    return { kind = nil, event_id = nil, waba_id = nil, phone_number_id = nil,
             display_phone_number = nil, ts = nil, msg_id = nil, from = nil,
             type = nil, text = nil, profile_name = nil, status = nil,
             recipient_id = nil, pricing_category = nil, pricing_type = nil,
             billable = nil }
end


local function apply(keys, args)
    local stream, group = keys[1], args[2]
    local ttl = tonumber(args[3])
    P = args[1]
    MAPPED, EXPIRING, COUNTS, COUNTED, DATES = {}, {}, {}, {}, {}
    SEEN = {}
    OPT = args[4] ~= '' and cjson.decode(args[4]) or {}
    if OPT.away_reply == '' then OPT.away_reply = nil end
    local n = tonumber(args[5])
    local now = tonumber(redis.call('TIME')[1])
    local applied, dups, skipped, dead = 0, 0, 0, 0

    -- Acknowledged in the call that applies them.  With seen_ttl, one XACK
    -- for the batch, once it is applied (a call that fails on the way
    -- leaves the batch pending): an entry another consumer took over and
    -- applied meanwhile is known by its event_id (first_time).  Without,
    -- each XACK says whether the entry was still to be applied (0:
    -- acknowledged by another consumer already).
    local i = 6
    local ids = {}
    if ttl > 0 then
        for k = 1, n do
            ids[k] = args[i]
            i = i + 2 + 2 * count_of(args[i + 1])
        end
        i = 6
    end

    for _ = 1, n do
        local id, nf = args[i], count_of(args[i + 1])
        local e = new_event()
        for j = i + 2, i + 1 + 2 * nf, 2 do
            e[args[j]] = args[j + 1]
        end
        i = i + 2 + 2 * nf

        if ttl > 0 or redis.call('XACK', stream, group, id) == 1 then
            local f, ts = APPLY[e.kind or ''], num(e.ts)
            if not f or not e.event_id then
                skipped = skipped + 1
            elseif ttl > 0 and not first_time(group, e, ts, ttl, now) then
                dups = dups + 1
            else
                local ok, res = pcall(f, e, ts)
                if ok then
                    if res == 'skipped' then skipped = skipped + 1
                    else applied = applied + 1 end
                elseif refused(res) and ttl > 0 then
                    -- a permission the worker's user lacks is no fault of
                    -- the entry: not seen after all, the call fails, the
                    -- worker stops; what is not acknowledged yet (this
                    -- entry and those after it) is read again later
                    redis.call('SREM', (seen_key(group, e, ts, now)),
                               e.event_id)
                    return redis.error_reply(tostring(res.err or res))
                else
                    -- a bug or a wrong key type: keep the entry, say why
                    -- (refused with no seen set: it is acknowledged
                    -- already, so it is kept here, and the call fails)
                    redis.call('XADD', key('dead'), '*', 'v', V,
                               'stream', stream,
                               'id', id, 'reason', tostring(res.err or res),
                               'event_id', e.event_id, 'kind', e.kind,
                               'raw', e.raw or raw(stream, id))
                    dead = dead + 1
                    if refused(res) then
                        return redis.error_reply(tostring(res.err or res))
                    end
                end
            end
        end
    end

    for from = 1, #ids, 1000 do         -- unpack has a limit
        redis.call('XACK', stream, group,
                   unpack(ids, from, math.min(from + 999, #ids)))
    end

    flush()
    return { applied, dups, skipped, dead }
end


local function sent(keys, args)
    P = args[1]
    MAPPED, EXPIRING, COUNTS, COUNTED = {}, {}, {}, {}
    local wamid, pn, user, ts = args[2], args[3], args[4], tonumber(args[5])
    local template, language, variant = args[6], args[7], args[8]
    if template == '' then template = nil end
    if variant == '' then variant = nil end
    local mk = key('msg', wamid)
    local new = redis.call('EXISTS', mk) == 0

    redis.call('HSET', mk, 'phone_number_id', pn, 'recipient_id', user,
               'source', 'api')
    redis.call('HSETNX', mk, 'sent_at', ts)
    if template then
        redis.call('HSET', mk, 'template', template, 'language', language)
        if variant then redis.call('HSET', mk, 'variant', variant) end
        -- statuses that came before this record count now
        local r = redis.call('HMGET', mk, 'status', 'delivered_at')
        if r[1] == 'failed' then
            tstats(template, variant, 'sent')
            tstats(template, variant, 'failed')
        else
            count_steps(template, variant, 0, RANK[r[1] or ''] or 0)
        end
        local ck = contact_key(pn, user)
        if ck then
            redis.call('HSET', ck, 'tpl_wamid', wamid, 'tpl_name', template,
                       'tpl_variant', variant or '', 'tpl_sent_at', ts,
                       'tpl_replied', 0, 'tpl_opted_out', 0)
            redis.call('HDEL', ck, 'tpl_delivered_at')
            if r[2] then redis.call('HSET', ck, 'tpl_delivered_at', r[2]) end
        end
    end
    redis.call('EXPIRE', mk, I(MSG_TTL))
    if new then outbound_first(pn, user, wamid, ts) end
    flush()
    return new and 1 or 0
end


-- template states that never send; PAUSED and PENDING defer instead
local TEMPLATE_REFUSED = { DISABLED = true, REJECTED = true, DELETED = true,
                           ARCHIVED = true, PENDING_DELETION = true,
                           LOCKED = true, LIMIT_EXCEEDED = true }

-- Pacing (GCRA): a key holds the theoretical arrival time of the next
-- send, in ms of Redis's clock, shared by every worker sending for the
-- number.  One more may go when that time is not later than now plus the
-- tolerance; it then moves one interval on.
local function pace_wait(k, now, tolerance)
    local w = (tonumber(redis.call('GET', k) or '') or 0) - now - tolerance
    return w > 0 and w or 0
end

local function pace_take(k, now, interval)
    local tat = math.max(tonumber(redis.call('GET', k) or '') or 0, now)
                + interval
    redis.call('SET', k, string.format('%.3f', tat), 'PX',
               math.ceil(tat - now) + 1000)
end


-- the WABA's state the governor reads: here, or given by the sender, who
-- read it from the WABA's partition (docs/redis.md, "What crosses
-- partitions")
local function waba_state(args, phone, template, language)
    if args[16] == '1' then
        return { args[17], args[18] }, args[19], num(args[20])
    end
    local t = redis.call('HMGET', key('template', phone[1] or '-',
                         template, language ~= '' and language or '-'),
                         'status', 'paused_until')
    local w = redis.call('HGET', key('waba', phone[1] or '-'), 'restricted')
    local limit = phone[2] and num(redis.call('HGET',
                      key('number', phone[2]), 'messaging_limit_users'))
    return t, w, limit
end


local function verdict(args, now, pn, user, typ)
    local template, language = args[6], args[7]
    local marketing, auto = args[8] == '1', args[9]
    local margin = tonumber(args[10]) or 0

    if typ == 'read' then return { 'ok' } end

    -- 1. consent
    local ck = key('contact', pn, user)
    local c = redis.call('HMGET', ck, 'opted_out', 'marketing',
                         'window_expires_at')
    if c[1] == '1' and auto ~= 'optout' then
        return { 'refuse', 'opted_out' }
    end
    if marketing and c[2] == 'stop' then
        return { 'refuse', 'marketing_stopped' }
    end

    -- 2. the customer-service window, with a safety margin
    local inwin = num(c[3]) and now < num(c[3]) - margin
    if typ ~= 'template' and not inwin then
        return { 'refuse', 'window_closed' }
    end

    local phone = redis.call('HMGET', key('phone', pn), 'waba_id',
                             'display_phone_number')
    local t, restricted, limit = waba_state(args, phone, template, language)

    -- 3. the template's own state (unknown templates go: Meta decides)
    if typ == 'template' then
        local st = t[1] or ''
        if st == 'PAUSED' then
            local til = num(t[2]) or now + 3 * 3600
            if til > now then
                return { 'defer', 'template_paused', til }
            end
        elseif st == 'PENDING' or st == 'IN_APPEAL' then
            return { 'defer', 'template_pending', now + 300 }
        elseif TEMPLATE_REFUSED[st] then
            return { 'refuse', 'template_' .. string.lower(st) }
        end
    end

    -- 4. business-initiated: restriction and the messaging limit, the
    -- portfolio's (reserved by the sender before this call: wa_reach_1)
    -- or, with --messaging-limit number, the number's own
    if not inwin then
        if restricted == '1' then
            return { 'defer', 'restricted', now + 3600 }
        end
        if args[15] == 'portfolio' then return { 'ok', nil, 'bi' } end
        local zk = key('reach', pn)
        redis.call('ZREMRANGEBYSCORE', zk, '-inf', now - DAY)
        if limit and limit > 0 and not redis.call('ZSCORE', zk, user)
           and redis.call('ZCARD', zk) >= limit
        then
            local oldest = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
            return { 'defer', 'tier_limit', num(oldest[2]) + DAY }
        end
        return { 'ok', zk }
    end

    return { 'ok' }
end


--[[
FCALL wa_govern_1 0 <prefix> <now> <phone_number_id> <user> <type>
      <template> <language> <marketing> <auto> <window margin>
      <pace interval ms> <pace tolerance ms> <pair interval ms>
      <pair tolerance ms> <messaging limit: portfolio | number>
      [1 <template status> <paused until> <WABA restricted>
      <messaging limit users>]

-> {'ok'} | {'ok', 'bi'}: business-initiated, counts against the
   portfolio's limit | {'refuse', reason} | {'defer', reason, until} |
   {'wait', ms}: the number's pace | {'pair', ms}: the recipient's
]]
local function govern(keys, args)
    P = args[1]
    local now, pn, user, typ = tonumber(args[2]), args[3], args[4], args[5]
    local tm = redis.call('TIME')
    local ms = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
    local interval, tolerance = tonumber(args[11]) or 0,
                                tonumber(args[12]) or 0
    local pair, pair_tolerance = tonumber(args[13]) or 0,
                                 tonumber(args[14]) or 0
    local pk = key('pace', pn)

    -- the number's rate, over every worker that sends for it
    local w = interval > 0 and pace_wait(pk, ms, tolerance) or 0
    if w > 0 then return { 'wait', math.ceil(w) } end

    local v = verdict(args, now, pn, user, typ)
    if v[1] ~= 'ok' then return v end

    -- the pair limit: a recipient waits, in the deferred set
    if pair > 0 and typ ~= 'read' and user ~= '' then
        local qk = key('pair', pn, user)
        w = pace_wait(qk, ms, pair_tolerance)
        if w > 0 then return { 'pair', math.ceil(w) } end
        pace_take(qk, ms, pair)
    end

    if v[2] then
        redis.call('ZADD', v[2], now, user)
        redis.call('EXPIRE', v[2], DAY)
    end
    if interval > 0 then pace_take(pk, ms, interval) end

    return v[3] and { 'ok', v[3] } or { 'ok' }
end


--[[
The messaging limit of a business portfolio (Meta's since 2025-10-07):
unique users reached business-initiated in a moving 24 h, over all the
portfolio's numbers, a user reached from two of them being one.  In the
portfolio's partition, whatever partitions its numbers are in:

  <prefix>:preach:<portfolio>        zset: user -> when reached or reserved
  <prefix>:preach:<portfolio>:held   hash: user -> the outbox entry whose
                                     reservation it is, until that entry is
                                     sent (confirm) or not (release)
  <prefix>:preach:<portfolio>:since  zset: "<entry> <user>" -> reserved at
  <prefix>:portfolio:<portfolio>     hash: limit_users, limit_tier, reached,
                                     updated_at (and wabas, from wa-relayd's
                                     --portfolio)
  <prefix>:portfolio:<portfolio>:numbers  set: the numbers that sent

A reservation is the entry's: asked again (a retry, a redelivery) it
counts nothing more; one left by a sender that died is released after
HELD_MAX, and the entry, reclaimed, reserves again.

FCALL wa_reach_1 0 <prefix> reserve <portfolio> <user> <entry> <now>
      <limit users> <limit tier> <phone_number_id> <WABA restricted>
  -> {'ok', 1}: held by this entry | {'ok', 0}: reached already, nothing
     counted | {'defer', 'tier_limit', when a user's 24 h end} |
     {'defer', 'restricted', in an hour}: the governor's rule 4, in order
FCALL wa_reach_1 0 <prefix> release <portfolio> <user> <entry>
FCALL wa_reach_1 0 <prefix> confirm <portfolio> <user> <entry> <now>
]]
local HELD_MAX = 3600

-- the entry's hold on its user ends: sent (kept), or not (taken back)
local function reach_release(pid, user, entry, kept)
    local hk = key('preach', pid, 'held')
    if hget(hk, user) == entry then
        redis.call('HDEL', hk, user)
        if not kept then redis.call('ZREM', key('preach', pid), user) end
    end
    redis.call('ZREM', key('preach', pid, 'since'), entry .. ' ' .. user)
end

local function reach_prune(pid, now)
    redis.call('ZREMRANGEBYSCORE', key('preach', pid), '-inf', now - DAY)
    local stale = redis.call('ZRANGEBYSCORE', key('preach', pid, 'since'),
                             '-inf', now - HELD_MAX)
    for _, m in ipairs(stale) do
        local entry, user = string.match(m, '^(%S+) (.*)$')
        if entry then reach_release(pid, user, entry) end
    end
end

-- 80% and 100% of the limit, said once as the count crosses each
local function reach_alerts(pid, n, limit, now)
    local e = { kind = 'portfolio', ts = now }
    local label = 'portfolio ' .. pid
    if n == limit then
        alert(e, 'critical', label, string.format('%s reached its messaging '
              .. 'limit: %d users in 24 h; business-initiated messages wait '
              .. 'until a user\'s 24 h end', label, limit))
    elseif n * 5 >= limit * 4 and (n - 1) * 5 < limit * 4 then
        alert(e, 'warning', label, string.format('%s used 80%% of its '
              .. 'messaging limit: %d of %d users in 24 h', label, n, limit))
    end
end

local function reach_reserve(args, pid, user, entry, now)
    local limit, tier, pn = num(args[7]), args[8] or '', args[9] or ''
    if args[10] == '1' then return { 'defer', 'restricted', now + 3600 } end
    local zk = key('preach', pid)
    reach_prune(pid, now)
    local pk = key('portfolio', pid)
    redis.call('HSET', pk, 'limit_users', args[7] or '', 'limit_tier', tier,
               'updated_at', I(now))
    if pn ~= '' then
        redis.call('SADD', key('portfolio', pid, 'numbers'), pn)
    end

    if redis.call('ZSCORE', zk, user) then
        return { 'ok', hget(key('preach', pid, 'held'), user) == entry
                       and 1 or 0 }
    end
    local n = redis.call('ZCARD', zk)
    if limit and limit > 0 and n >= limit then
        local oldest = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
        return { 'defer', 'tier_limit', num(oldest[2]) + DAY }
    end

    redis.call('ZADD', zk, now, user)
    redis.call('HSET', key('preach', pid, 'held'), user, entry)
    redis.call('ZADD', key('preach', pid, 'since'), now, entry .. ' ' .. user)
    for _, k in ipairs({ zk, key('preach', pid, 'held'),
                         key('preach', pid, 'since') }) do
        redis.call('EXPIRE', k, DAY + HELD_MAX)
    end
    redis.call('HSET', pk, 'reached', n + 1)
    if limit and limit > 0 then reach_alerts(pid, n + 1, limit, now) end
    return { 'ok', 1 }
end

local function reach(keys, args)
    P = args[1]
    local op, pid, user, entry = args[2], args[3], args[4], args[5]
    local now = num(args[6])
    if op == 'reserve' then
        return reach_reserve(args, pid, user, entry, now)
    elseif op == 'release' then
        reach_release(pid, user, entry)
    elseif op == 'confirm' then
        -- back if another entry's release took it while this one was sent
        redis.call('ZADD', key('preach', pid), 'NX', now, user)
        reach_release(pid, user, entry, true)
    else
        return redis.error_reply('wa_reach_1: unknown operation ' .. op)
    end
    return { 'ok' }
end


--[[
FCALL wa_hold_1 0 <prefix> <phone_number_id> <ms> <pace tolerance ms>

Meta said the number is over its throughput (130429): for ms, nothing
goes for it from any worker.  The number's pace (above) is moved on to
then, on Redis's clock, so that wa_govern_1 answers {'wait', ms} to every
sender until it has passed; a later time already there is kept.
-> ms until the number may send again
]]
local function hold(keys, args)
    P = args[1]
    local pn = args[2]
    local wait, tolerance = tonumber(args[3]) or 0, tonumber(args[4]) or 0
    local tm = redis.call('TIME')
    local ms = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
    local pk = key('pace', pn)
    local tat = math.max(tonumber(redis.call('GET', pk) or '') or 0,
                         ms + wait + tolerance)
    redis.call('SET', pk, string.format('%.3f', tat), 'PX',
               math.ceil(tat - ms) + 1000)
    return math.ceil(tat - tolerance - ms)
end


redis.register_function('wa_apply_1', apply)
redis.register_function('wa_govern_1', govern)
redis.register_function('wa_reach_1', reach)
redis.register_function('wa_sent_1', sent)
redis.register_function('wa_hold_1', hold)

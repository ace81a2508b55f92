# the worker under failure: kill -9 mid-batch, several workers, a lost
# group, poison entries, SIGTERM drain, trimming by progress and the cap
#
# Each case is made to happen, not hoped for: a worker is frozen (SIGSTOP)
# while its XREADGROUP waits in Redis, the entries arrive, Redis hands it a
# batch it cannot apply yet, and the test checks that it holds one before
# the fault. Each case writes to contacts of its own (a round), so that one
# failing does not carry its counts into the next.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

my $PN = '106540352242922';
my $T = 1780000000;
my $round = 0;

# a round's contacts: 55 <round> <user>
sub contact { sprintf '55%03d%07d', @_ }

# users x per messages, every message a distinct wamid; the round's number
sub fill {
    my ($users, $per) = @_;
    $round++;
    for my $u (1 .. $users) {
        my $from = contact($round, $u);
        my @m = map { text_message("wamid.r$round.$u.$_", "m$_", from => $from,
                                   ts => $T + $_) } 1 .. $per;
        my $r = $t->post(messages_body(from => $from, messages => \@m));
        die "post: $r->{status}" unless $r->{status} == 200;
    }
    return $round;
}

# inbound messages the state counted per contact, of one round or all, in
# one call: { contact key => messages_in }
sub counted {
    my ($r) = @_;
    my $match = "wa:contact:$PN:" . (defined $r ? sprintf('55%03d', $r) : '')
        . '*';
    my $kv = $t->redis('EVAL', <<'LUA', 0, $match);
local out = {}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
    out[#out + 1] = k
    out[#out + 1] = tonumber(redis.call('HGET', k, 'messages_in')) or 0
end
return out
LUA
    return ref $kv eq 'ARRAY' ? { @$kv } : {};
}

sub messages_in {
    my $sum = 0;
    $sum += $_ for values %{ counted(@_) };
    return $sum;
}

# every contact of the round got exactly n
sub each_contact {
    my ($r, $users, $n) = @_;
    my $c = counted($r);
    return !grep { ($c->{"wa:contact:$PN:" . contact($r, $_)} // 0) != $n }
                 1 .. $users;
}

sub stream_group { $t->group('wa:messages', 'wa-relayd') }
sub held { $t->pending_of('wa:messages', 'wa-relayd', $_[0] // 'w1') }

# A worker whose read waits in Redis (BLOCK), so that what arrives next is
# handed to it; they get a BLOCK longer than any case lasts, and SIGTERM
# would wait for its end: once drained, they are stopped with SIGKILL.
my @idle = ('block-ms' => 60000, 'timeout-ms' => 120000);
sub kill_idle { $t->stop("worker-$_", 'KILL') for @_ }

# --- kill -9 with a batch in hand, restart: every event applied once ------
{
    $t->start_worker(@idle, batch => 1, 'claim-idle-ms' => 300);
    my $r1 = fill(25, 100);
    ok $t->wait_for(sub { $t->drained }, 60), 'the first half applied';
    ok $t->freeze_idle('worker-w1'),
        'the worker frozen while it waits for entries';
    my $r2 = fill(25, 100);
    ok $t->wait_for(sub { held() > 0 }, 30), 'Redis handed it a batch';
    my $lag = stream_group()->{lag};
    kill 'KILL', $t->{pids}{'worker-w1'};
    waitpid delete $t->{pids}{'worker-w1'}, 0;
    my ($in1, $in2) = (messages_in($r1), messages_in($r2));
    is $in1 + $in2, 2500, 'killed after 2500 of 5000 applied';
    is $in2, 0, sprintf 'with %d entries in hand and %d not read yet',
        held(), $lag;

    $t->start_worker(batch => 50, 'claim-idle-ms' => 300);
    ok $t->wait_for(sub { $t->drained }, 60), 'restarted worker caught up';
    is messages_in($r1) + messages_in($r2), 5000,
        'every event applied exactly once';
    ok each_contact($r1, 25, 100) && each_contact($r2, 25, 100),
        'each contact: 100 in';
    is held(), 0, 'what the killed worker held was taken over';
    $t->stop('worker-w1');
}

# --- throughput (printed, not asserted) -----------------------------------
{
    my $r = fill(20, 500);
    my $t0 = time;
    $t->start_worker(batch => 256);
    ok $t->wait_for(sub { $t->drained }, 120), 'caught up';
    my $secs = time - $t0;
    diag sprintf 'worker applied 10000 message events in %.2f s: %.0f '
        . 'events/s', $secs, 10000 / $secs;
    is messages_in($r), 10000, '10000 applied';
    $t->stop('worker-w1');
}

# --- two workers share the work: each is handed a batch ---------------------
{
    $t->start_worker(@idle, batch => 20);
    $t->start_worker(@idle, consumer => 'w2', batch => 20);
    ok $t->freeze_idle('worker-w1', 'worker-w2'),
        'both frozen while they wait for entries';
    my $r = fill(40, 100);
    ok $t->wait_for(sub { held('w1') > 0 && held('w2') > 0 }, 30),
        'each was handed a batch';
    $t->thaw("worker-$_") for qw(w1 w2);
    ok $t->wait_for(sub { $t->drained }, 60), 'two workers caught up';
    is messages_in($r), 4000, 'exactly once with two consumers';
    ok each_contact($r, 40, 100), 'each contact: 100 in';
}

# --- the group is lost (Redis restarted without persistence) -------------
{
    my $before = messages_in();
    $t->redis('XGROUP', 'DESTROY', 'wa:messages', 'wa-relayd');
    my $r = fill(1, 10);
    ok $t->wait_for(sub { messages_in($r) == 10 }, 30),
        'NOGROUP healed: new events applied';
    ok $t->wait_for(sub { $t->drained }, 30), 'caught up again';
    is messages_in(), $before + 10,
        'the re-read old entries were not applied twice';
    like $t->worker_log . $t->worker_log('w2'),
        qr/NOGROUP.*creating the groups again/, 'logged';
    kill_idle('w1', 'w2');
}

# --- the group is lost while a batch is in hand: that batch's call goes
# out with the XREADGROUP that finds NOGROUP, and is answered first -------
{
    my $healed = () = $t->worker_log =~ /creating the groups again/g;
    my $failed = () = $t->worker_log =~ /applying .* failed/g;
    $t->start_worker(@idle, batch => 1);
    ok $t->freeze_idle('worker-w1'), 'frozen while it waits for entries';
    my $r = fill(50, 100);
    ok $t->wait_for(sub { held() > 0 }, 30), 'Redis handed it a batch';
    my ($hand, $lag) = (held(), stream_group()->{lag});
    ok $hand > 0 && $lag > 0 && messages_in($r) == 0,
        "the group lost with $hand entries in hand, $lag not read";
    $t->redis('XGROUP', 'DESTROY', 'wa:messages', 'wa-relayd');
    $t->thaw('worker-w1');
    ok $t->wait_for(sub { $t->drained }, 60), 'NOGROUP mid-stream healed';
    is messages_in($r), 5000, 'every event applied exactly once';
    my $now = () = $t->worker_log =~ /creating the groups again/g;
    ok $now > $healed, 'logged';
    # the replies of the batch in hand are read before the group is made
    my $now_failed = () = $t->worker_log =~ /applying .* failed/g;
    is $now_failed, $failed, 'no reply taken for another'
        or diag $t->worker_log;
    kill_idle('w1');
}

# --- a poison entry: a key of the wrong type -----------------------------
$t->start_worker;
$t->redis('SET', "wa:contact:$PN:5511999999999", 'not a hash');
my $b = messages_body(from => '5511999999999',
    messages => [ text_message('wamid.poison', 'x', from => '5511999999999',
                               ts => $T) ]);
is $t->post($b)->{status}, 200, 'poison posted';
ok $t->wait_for(sub { $t->xlen('wa:dead') >= 1 }, 10), 'went to wa:dead';
my ($dead) = $t->stream_events('wa:dead');
like $dead->{reason}, qr/WRONGTYPE/, 'with the reason';
is $dead->{event_id}, 'wamid.poison', 'and the event';
like $dead->{raw}, qr/^\{.*"id":"wamid\.poison".*\}$/,
    'and its payload, read from the stream';
ok $t->wait_for(sub { $t->drained }), 'acknowledged, not stuck';

# --- a counter key of the wrong type: the event applies, the counts are
# said lost in wa:alerts, the batch is acknowledged -----------------------
my $day = POSIX::strftime('%Y-%m-%d', gmtime $T);
$t->redis('SET', "wa:daily:$PN:$day", 'not a hash');
$b = messages_body(from => '5511999999998',
    messages => [ text_message('wamid.counted', 'x', from => '5511999999998',
                               ts => $T) ]);
is $t->post($b)->{status}, 200, 'posted';
ok $t->wait_for(sub { $t->drained && grep { ($_->{kind} // '') eq 'counter' }
                      $t->stream_events('wa:alerts') }, 10),
    'acknowledged, and an alert';
my ($lost) = grep { ($_->{kind} // '') eq 'counter' }
             $t->stream_events('wa:alerts');
is $lost->{subject}, "wa:daily:$PN:$day", 'naming the key';
like $lost->{message}, qr/^in(_hour_\d\d)? \+1: WRONGTYPE/, 'the count and why';
is $t->redis('HGET', "wa:contact:$PN:5511999999998", 'messages_in'), 1,
    'the event itself applied';
$t->redis('DEL', "wa:daily:$PN:$day");

# --- applied events are remembered per day of their own time -------------
my $seen = "wa:seen:wa-relayd:message:" . int($T / 86400);
is $t->redis('SISMEMBER', $seen, 'wamid.counted'), 1,
    'remembered in the set of its day';
my $ttl = $t->redis('TTL', $seen);
ok $ttl > 604800 - 60 && $ttl <= 604800,
    "for the seen TTL after now, the day being older ($ttl s)";

# --- delivered too many times (a worker crashing on it) -------------------
$t->stop('worker-w1');
$b = messages_body(messages => [ text_message('wamid.crashy', 'x', ts => $T) ]);
is $t->post($b)->{status}, 200, 'posted';
my $r = $t->redis('XREADGROUP', 'GROUP', 'wa-relayd', 'ghost', 'COUNT', 10,
                  'STREAMS', 'wa:messages', '>');
# RESP3: { stream => [ [id, fields] ] }
my $id = ref $r eq 'HASH' ? $r->{'wa:messages'}[0][0] : $r->[0][1][0][0];
ok $id, "a ghost consumer holds $id";
$t->redis('XCLAIM', 'wa:messages', 'wa-relayd', 'ghost', 0, $id) for 1 .. 6;
$t->start_worker('claim-idle-ms' => 100, 'max-deliveries' => 5);
ok $t->wait_for(sub { grep { ($_->{event_id} // '') eq 'wamid.crashy' }
                      $t->stream_events('wa:dead') }, 10),
    'buried after too many deliveries';
my ($crashy) = grep { ($_->{event_id} // '') eq 'wamid.crashy' }
               $t->stream_events('wa:dead');
like $crashy->{reason}, qr/delivered too many times/, 'reason';
ok $t->wait_for(sub { $t->drained }), 'and acknowledged';
$t->stop('worker-w1');

# --- SIGTERM with a batch in hand: applied, acknowledged, exit 0 -----------
{
    $t->start_worker(@idle);
    ok $t->freeze_idle('worker-w1'), 'frozen while it waits for entries';
    my $r = fill(20, 200);
    ok $t->wait_for(sub { held() > 0 }, 30), 'Redis handed it a batch';
    my ($hand, $lag) = (held(), stream_group()->{lag});
    ok $hand > 0 && $lag > 0,
        "SIGTERM lands with $hand entries in hand, $lag not read";
    my $pid = $t->{pids}{'worker-w1'};
    kill 'TERM', $pid;
    $t->thaw($pid);
    my $status;
    $t->wait_for(sub {
        return 0 unless waitpid($pid, POSIX::WNOHANG()) == $pid;
        $status = $?;
        return 1;
    }, 30);
    delete $t->{pids}{'worker-w1'};
    is $status, 0, 'exit 0 on SIGTERM';
    like $t->worker_log, qr/wa-relayd stopped/, 'said so';
    is stream_group()->{pending}, 0,
        'nothing left pending: the batch in hand was acked';
    is messages_in($r), $hand, 'and applied';
    $t->start_worker;
    ok $t->wait_for(sub { $t->drained }, 60), 'the rest after a restart';
    is messages_in($r), 4000, 'all applied once';
    ok each_contact($r, 20, 200), 'each contact: 200 in';
}

# --- FUNCTION FLUSH under a running worker: loaded again, nothing lost -----
$t->redis('FUNCTION', 'FLUSH');
my $probe = messages_body(messages => [ text_message('wamid.flushed', 'x',
                                                     ts => $T) ]);
is $t->post($probe)->{status}, 503,
    'the module: 503 while its function is gone (Meta retries)';
like $t->error_log, qr/redis answered "ERR Function not found/,
    'saying why';
ok $t->wait_for(sub { $t->post($probe)->{status} == 200 }, 10),
    'and 200 once it loaded it again';
{
    my $r = fill(5, 20);
    ok $t->wait_for(sub { $t->drained }, 30), 'applied after FUNCTION FLUSH';
    is messages_in($r), 100, 'every event once';
    like $t->worker_log, qr/Function not found.*loading the state functions/,
        'the worker said so';
}

# --- trimming by progress, and the cap ---------------------------------
# a trim pass asks XINFO GROUPS of each stream: passes are counted there
# (the worker's BLOCK is short, for its loop to come round to them often)
my @trim = ('trim-interval-ms' => 100, 'block-ms' => 100);
sub trim_passes_after {
    my $from = $t->calls('xinfo|groups');
    # two passes over every stream the worker reads and trims (at most 8)
    return $t->wait_for(sub { $t->calls('xinfo|groups') - $from >= 16 }, 30);
}

$t->stop('worker-w1');
$t->redis('XGROUP', 'CREATE', 'wa:messages', 'laggard', '$');
fill(10, 100);
$t->start_worker(@trim, 'max-len' => 0);
ok $t->wait_for(sub { $t->drained }, 30), 'caught up';
ok trim_passes_after(), 'trimming ran since';
cmp_ok $t->xlen('wa:messages'), '>=', 1000,
    'a group that has not read them keeps 1000 entries';
$t->redis('XGROUP', 'DESTROY', 'wa:messages', 'laggard');
ok $t->wait_for(sub { $t->xlen('wa:messages') < 500 }, 10),
    'once every group acknowledged, trimmed: ' . $t->xlen('wa:messages');

$t->stop('worker-w1');
$t->redis('XGROUP', 'CREATE', 'wa:messages', 'laggard', '$');
fill(10, 100);
$t->start_worker(@trim, 'max-len' => 300);
ok $t->wait_for(sub { $t->xlen('wa:messages') < 1000 }, 10),
    'the hard cap trims a laggard\'s entries: ' . $t->xlen('wa:messages');
ok $t->wait_for(sub { $t->worker_log =~ /over --max-len 300/ }), 'logged';
ok $t->redis('HGET', 'wa:worker:capped', 'messages') > 0, 'and counted';

# --- wa_apply_1 itself: who else acknowledged, what was seen ----------------
# (entries read by a consumer "direct" of a group "direct")
$t->stop('worker-w1');
sub direct_entry {
    my ($wamid) = @_;
    my @f = (kind => 'message', event_id => $wamid, msg_id => $wamid,
             phone_number_id => $PN, from => '5511888888888', type => 'text',
             text => 'x', ts => $T);
    my $id = $t->redis('XADD', 'wa:messages', '*', v => 1, @f,
                       received_at => '1700000000000', raw => '{}');
    return ($id, scalar(@f) / 2, @f);
}
sub direct_apply {
    my ($ttl, @entries) = @_;
    return $t->redis('FCALL', 'wa_apply_1', 1, 'wa:messages', 'wa', 'direct',
                     $ttl, '', scalar(@entries), map { @$_ } @entries);
}
$t->redis('XGROUP', 'CREATE', 'wa:messages', 'direct', '$');
my @a = direct_entry('wamid.direct.a');
my @b2 = direct_entry('wamid.direct.b');
my @c = direct_entry('wamid.direct.a');     # a again, as a new entry
$t->redis('XREADGROUP', 'GROUP', 'direct', 'direct', 'STREAMS',
          'wa:messages', '>');
$t->redis('XACK', 'wa:messages', 'direct', $b2[0]);   # "another consumer"
is_deeply direct_apply(0, \@b2), [0, 0, 0, 0],
    'seen_ttl 0: an entry another consumer acknowledged is not applied';
is_deeply direct_apply(604800, \@a, \@c), [1, 1, 0, 0],
    'the same event_id in two entries: applied once, one duplicate';
is $t->redis('HGET', "wa:contact:$PN:5511888888888", 'messages_in'), 1,
    'counted once';
is $t->redis('XPENDING', 'wa:messages', 'direct')->[0], 0,
    'a and its copy acknowledged in the call (b was by hand)';

done_testing;

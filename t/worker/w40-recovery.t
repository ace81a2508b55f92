# the worker under failure: kill -9 mid-batch, several workers, a lost
# group, poison entries, SIGTERM drain, trimming by progress and the cap
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

my $PN = '106540352242922';
my $T = 1780000000;
my $round = 0;

# users x per messages, every message a distinct wamid
sub fill {
    my ($users, $per) = @_;
    $round++;
    for my $u (1 .. $users) {
        my $from = sprintf '55110%07d', $u;
        my @m = map { text_message("wamid.r$round.$u.$_", "m$_", from => $from,
                                   ts => $T + $_) } 1 .. $per;
        my $r = $t->post(messages_body(from => $from, messages => \@m));
        die "post: $r->{status}" unless $r->{status} == 200;
    }
}

sub messages_in {
    my $sum = 0;
    for my $k (@{ $t->redis('KEYS', "wa:contact:$PN:*") }) {
        my $v = $t->redis('HGET', $k, 'messages_in');
        $sum += $v if defined $v && $v =~ /^\d+$/;
    }
    return $sum;
}

sub applied { $t->hash('wa:worker:' . ($_[0] // 'w1'))->{applied} // 0 }

# --- kill -9 in the middle, restart: every event applied exactly once ----
fill(50, 100);
my $t0 = time;
# one entry per call, so that the kill lands in the middle
$t->start_worker(batch => 1, 'claim-idle-ms' => 300);
$t->wait_for(sub { $t->redis('EXISTS', "wa:contact:$PN:551100000020") }, 20);
kill 'KILL', $t->{pids}{'worker-w1'};
waitpid delete $t->{pids}{'worker-w1'}, 0;
my $mid = messages_in();
ok $mid > 0 && $mid < 5000, "killed after $mid of 5000";

$t->start_worker(batch => 50, 'claim-idle-ms' => 300);
ok $t->wait_for(sub { $t->drained }, 30), 'restarted worker caught up';
is messages_in(), 5000, 'every event applied exactly once';
my $all = 1;
for my $u (1 .. 50) {
    my $v = $t->redis('HGET', sprintf("wa:contact:$PN:55110%07d", $u),
                      'messages_in');
    $all = 0 unless ($v // 0) == 100;
}
ok $all, 'each contact: 100 in';

# --- throughput (printed, not asserted) -----------------------------------
$t->stop('worker-w1');
fill(20, 500);
$t0 = time;
$t->start_worker(batch => 256);
$t->wait_for(sub { $t->drained }, 60);
my $secs = time - $t0;
diag sprintf 'worker applied 10000 message events in %.2f s: %.0f events/s',
    $secs, 10000 / $secs;
is messages_in(), 15000, '15000 applied';

# --- two workers share the work -----------------------------------------
fill(40, 100);
$t->start_worker(consumer => 'w2', batch => 20);
ok $t->wait_for(sub { $t->drained }, 30), 'two workers caught up';
is messages_in(), 19000, 'exactly once with two consumers';

# --- the group is lost (Redis restarted without persistence) -------------
$t->redis('XGROUP', 'DESTROY', 'wa:messages', 'wa-relayd');
fill(1, 10);
ok $t->wait_for(sub { messages_in() == 19010 }, 20),
    'NOGROUP healed: new events applied';
ok $t->wait_for(sub { $t->drained }, 20), 'caught up again';
is messages_in(), 19010, 'the re-read old entries were not applied twice';
like $t->worker_log . $t->worker_log('w2'), qr/NOGROUP.*creating the groups again/,
    'logged';
$t->stop('worker-w2');

# --- the group is lost while a batch is in hand: that batch's call went out
# before the XREADGROUP's NOGROUP came back, and is answered first --------
$t->stop('worker-w1');
fill(50, 100);
my $healed = () = $t->worker_log =~ /creating the groups again/g;
my $failed = () = $t->worker_log =~ /applying .* failed/g;
$t->start_worker(batch => 1);
ok $t->wait_for(sub { messages_in() >= 19110 }, 20), 'busy again';
# stopped while it holds a batch, it reads NOGROUP with that batch sent
kill 'STOP', $t->{pids}{'worker-w1'};
my $left = 24010 - messages_in();
$t->redis('XGROUP', 'DESTROY', 'wa:messages', 'wa-relayd');
kill 'CONT', $t->{pids}{'worker-w1'};
ok $left > 0, "the group lost with $left events to go";
ok $t->wait_for(sub { $t->drained }, 60), 'NOGROUP mid-stream healed';
is messages_in(), 24010, 'every event applied exactly once';
my $now = () = $t->worker_log =~ /creating the groups again/g;
ok $now > $healed, 'logged';
# the replies of the batch in hand are read before the group is made
my $now_failed = () = $t->worker_log =~ /applying .* failed/g;
is $now_failed, $failed, 'no reply taken for another'
    or diag $t->worker_log;

# --- a poison entry: a key of the wrong type -----------------------------
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

# --- SIGTERM: finish the batch, acknowledge, exit 0 ------------------------
fill(20, 200);
sleep 0.2;
my $pid = $t->{pids}{'worker-w1'};
kill 'TERM', $pid;
my $deadline = time + 10;
my $status;
while (time < $deadline) {
    if (waitpid($pid, POSIX::WNOHANG()) == $pid) { $status = $?; last }
    sleep 0.02;
}
delete $t->{pids}{'worker-w1'};
is $status, 0, 'exit 0 on SIGTERM';
like $t->worker_log, qr/wa-relayd stopped/, 'said so';
my $g = $t->redis('XINFO', 'GROUPS', 'wa:messages');
my ($grp) = grep { $_->{name} eq 'wa-relayd' }
            map { ref $_ eq 'HASH' ? $_ : +{ @$_ } } @$g;
is $grp->{pending}, 0, 'nothing left pending: the batch in hand was acked';
$t->start_worker;
ok $t->wait_for(sub { $t->drained }, 30), 'the rest after a restart';
is messages_in(), 24010 + 1 + 4000,
    'all applied once (the counted one too, the buried one not)';

# --- FUNCTION FLUSH under a running worker: loaded again, nothing lost -----
$t->redis('FUNCTION', 'FLUSH');
my $probe = messages_body(messages => [ text_message('wamid.flushed', 'x',
                                                     ts => $T) ]);
is $t->post($probe)->{status}, 503,
    'the module: 503 while its function is gone (Meta retries)';
like $t->error_log, qr/redis answered "ERR Function not found/,
    'saying why';
ok $t->wait_for(sub { $t->post($probe)->{status} == 200 }, 5),
    'and 200 once it loaded it again';
my $before = messages_in();
fill(5, 20);
ok $t->wait_for(sub { $t->drained }, 20), 'applied after FUNCTION FLUSH';
is messages_in(), $before + 100, 'every event once';
like $t->worker_log, qr/Function not found.*loading the state functions/,
    'the worker said so';


# --- trimming by progress, and the cap ---------------------------------
$t->stop('worker-w1');
$t->redis('XGROUP', 'CREATE', 'wa:messages', 'laggard', '$');
fill(10, 100);
$t->start_worker('trim-interval-ms' => 100, 'max-len' => 0);
ok $t->wait_for(sub { $t->drained }, 20), 'caught up';
sleep 0.5;
cmp_ok $t->xlen('wa:messages'), '>=', 1000,
    'a group that has not read them keeps 1000 entries';
$t->redis('XGROUP', 'DESTROY', 'wa:messages', 'laggard');
ok $t->wait_for(sub { $t->xlen('wa:messages') < 500 }, 10),
    'once every group acknowledged, trimmed: ' . $t->xlen('wa:messages');

$t->stop('worker-w1');
$t->redis('XGROUP', 'CREATE', 'wa:messages', 'laggard', '$');
fill(10, 100);
$t->start_worker('trim-interval-ms' => 100, 'max-len' => 300);
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

# Partitions on a real Redis Cluster: three primaries and three replicas,
# nginx with two worker processes routing each partition's call to its
# primary (whatsapp_redis_cluster, whatsapp_partitions 12), two wa-relayd
# sharing the partitions.  Under a steady stream of signed webhooks for
# 200 business numbers (some bodies carry two numbers of two partitions):
# the share of each primary, then a resharding of slots holding a
# partition, a replica promoted (CLUSTER FAILOVER), a worker and then a
# primary SIGKILLed.  Every webhook answered other than 200 is posted again, as
# Meta does.  Printed and asserted: 200s, events, lost 0, appended twice
# 0, and the derived state equal to a replay of the streams.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(time sleep);
use WaTest;
use WaCluster;
use WaBody qw(text_message status_item);
use WaPartition;

my $PARTS = 12;
my $NUMBERS = 200;

my $t = WaTest->new;
my $d = $t->dir;
my $c = WaCluster->new($t, primaries => 3, replicas => 1);
my @nodes = $c->ports;
my @primaries = sort { $a <=> $b } $c->primaries;
is scalar @primaries, 3, 'a cluster of three primaries and three replicas';

my $seeds = join ',', map { "127.0.0.1:$_" } @nodes[0 .. 2];
$t->start_nginx(redis => "127.0.0.1:$nodes[0]", workers => 2,
                http => "whatsapp_redis_cluster on;\n"
                        . "    whatsapp_partitions $PARTS;\n"
                        . "    whatsapp_redis_wait 1 500ms;");
ok $t->wait_log(qr/cluster map read: 16384 of 16384 slots served/),
   'nginx read the slot map';
like $t->get('/wa-health')->{content},
     qr/^ok: redis cluster: 16384 of 16384 slots served, 3 of 3 primaries/,
     'health: every slot served';

# streams untrimmed: they are compared with what was acknowledged
my $metrics = WaTest::free_port();
for my $w (qw(w1 w2)) {
    $t->start_worker(consumer => $w, cluster => $seeds,
                     partitions => $PARTS, 'claim-idle-ms' => 2000,
                     'trim-interval-ms' => 3600000,
                     ($w eq 'w1' ? (metrics => "127.0.0.1:$metrics") : ()));
}

# the partitions: their prefix and slot, as the module and worker have them
my %part;
ok $t->wait_for(sub {
    my $r = $c->cli($c->slot_owner(slot_of('wa:partitions')), 'HGETALL',
                    'wa:partitions');
    %part = ref $r eq 'HASH' ? %$r : ref $r eq 'ARRAY' ? @$r : ();
    ($part{count} // 0) == $PARTS }, 10),
   'the partitions are listed in wa:partitions';
my @prefix = map { $part{$_} } 0 .. $PARTS - 1;
is_deeply \@prefix, [ WaPartition::prefixes($PARTS) ],
          'with the tags docs/redis.md gives them';

# --- the steady stream ------------------------------------------------------
my %acked;          # event => 1, once its body was answered 200
my @retry;          # [ body, events, when ]
my ($posted, $answers, $seq) = (0, 0, 0);
my %status_of;      # answers by status

sub number { sprintf '1065%06d', $_[0] % $NUMBERS }
sub waba { sprintf '2029%06d', ($_[0] % $NUMBERS) % 50 }
sub user { sprintf '55119%07d', $_[0] % 37 }

# one entry: a message from a user, or a status of an earlier message
sub change {
    my ($n) = @_;
    my $num = number($n);
    my $value = {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => "1555$num",
                      phone_number_id => $num },
    };
    my $event;
    if ($n % 5 == 4 && $n > $NUMBERS) {
        my $id = "wamid.out.$num." . int($n / $NUMBERS);
        my $st = $n % 2 ? 'delivered' : 'sent';
        $value->{statuses} = [ status_item($id, $st, to => user($n),
                                           ts => 1780000000 + $n) ];
        $event = "status $id $st";
    } else {
        $value->{contacts} = [ { profile => { name => 'User' },
                                 wa_id => user($n) } ];
        $value->{messages} = [ text_message("wamid.in.$n", "hello $n",
                                            from => user($n),
                                            ts => 1780000000 + $n) ];
        $event = "message wamid.in.$n";
    }
    return ({ id => waba($n), time => 1780000000 + $n,
              changes => [ { field => 'messages', value => $value } ] },
            $event);
}

sub post_body {
    my ($body, $events) = @_;
    my $r = $t->post($body);
    $answers++;
    $status_of{ $r->{status} }++;
    if ($r->{status} == 200) {
        $acked{$_} = 1 for @$events;
        return;
    }
    push @retry, [ $body, $events, time + 0.1 ];
}

sub post_next {
    my @entries;
    my @events;
    # one body in eight carries two numbers, of two partitions mostly
    for my $k (0 .. ($seq % 8 == 7 ? 1 : 0)) {
        my ($entry, $event) = change($seq++);
        push @entries, $entry;
        push @events, $event;
    }
    my $body = WaTest::meta_json({ object => 'whatsapp_business_account',
                                   entry => \@entries });
    $posted++;
    post_body($body, \@events);
}

sub run_for {
    my ($secs, $until) = @_;
    my $end = time + $secs;
    while (time < $end || ($until && !$until->())) {
        if (@retry && $retry[0][2] <= time) {
            post_body(@{ shift @retry }[0, 1]);
            next;
        }
        post_next();
        last if time > $end + 60;
    }
}

sub drain_retries {
    my $end = time + 60;
    while (@retry && time < $end) {
        if ($retry[0][2] > time) { sleep 0.05; next }
        post_body(@{ shift @retry }[0, 1]);
    }
}

# --- 1. the spread: each primary's share, counted by Redis ------------------
# (a set number of bodies, whatever the machine's speed: which partition
# each event goes to follows from the event, so the shares are fixed too)
$c->cli($_, 'CONFIG', 'RESETSTAT') for @primaries;
run_for(0, sub { $posted >= 3000 });
ok $t->wait_for(sub { caught_up() }, 30), 'the workers caught up';
my (%ingest, %state, %calls);
for my $p (@primaries) {
    my $s = $c->commandstats($p);
    # a dedupe key per event appended; a "seen" mark per entry applied
    $ingest{$p} = $s->{set} // 0;
    $state{$p} = $s->{sadd} // 0;
    $calls{$p} = $s->{fcall} // 0;
}
for my $what ([ 'ingest (events appended)', \%ingest ],
              [ 'state updates (entries applied)', \%state ],
              [ 'function calls', \%calls ]) {
    my ($name, $h) = @$what;
    my $total = 0;
    $total += $_ for values %$h;
    my @share = map { $total ? $h->{$_} / $total : 0 } @primaries;
    diag sprintf '%s per primary: %s', $name,
        join ', ', map { sprintf '%d (%.1f%%)', $h->{ $primaries[$_] },
                         100 * $share[$_] } 0 .. 2;
    next if $name eq 'function calls';
    my $off = grep { abs($_ - 1 / 3) > 0.15 / 3 } @share;
    is $off, 0, "$name: each primary within 15% of a third";
}

# --- 2. a resharding: the slots of a partition move to another primary ----
my $moving = $c->slot_owner(slot_of($prefix[0]));
my ($to) = grep { $_ != $moving } @primaries;
my $from_id = $c->node_id($moving);
my $to_id = $c->node_id($to);
my $owner_before = $moving;
# the lowest slots of the source go first: 1500 hold partition 0's
$t->spawn('reshard', 'redis-cli', '--cluster', 'reshard',
          "127.0.0.1:$moving", '--cluster-from', $from_id,
          '--cluster-to', $to_id, '--cluster-slots', 1500,
          '--cluster-yes', '--cluster-pipeline', 10);
my $t0 = time;
run_for(1, sub { !$t->alive('reshard') });
diag sprintf 'resharding 1500 slots took %.1f s', time - $t0;
is $c->slot_owner(slot_of($prefix[0])), $to,
   "partition 0 ($prefix[0]) moved with its slot";
ok $c->wait_ok(20), 'the cluster agrees on the new map';
run_for(2);

# --- 3. a replica promoted: CLUSTER FAILOVER --------------------------------
my ($promote_of) = grep { $_ != $to } $c->primaries;
my ($replica) = $c->replicas_of($promote_of);
$c->cli($replica, 'CLUSTER', 'FAILOVER');
$t0 = time;
run_for(1, sub { grep { $_ == $replica } $c->primaries });
ok scalar(grep { $_ == $replica } $c->primaries), 'the replica was promoted';
diag sprintf 'CLUSTER FAILOVER: %d a primary after %.1f s', $replica,
    time - $t0;
run_for(2);

# --- 4. a worker SIGKILLed with entries in hand, then a primary ------------
# w2 is frozen while webhooks arrive: what its reads waiting in Redis are
# handed, and the batches it held, it cannot apply.  SIGKILL: the other
# takes over what it held, after --claim-idle-ms
sub held_by {
    my ($consumer) = @_;
    my $n = 0;
    for my $key (map { my $p = $_; map { "$p:$_" } qw(messages statuses) }
                 @prefix) {
        local $t->{redis_port} = $c->slot_owner(slot_of($key));
        $n += $t->pending_of($key, 'wa-relayd', $consumer);
    }
    return $n;
}
$t->freeze('worker-w2');
my $held = 0;
for (1 .. 20) {
    run_for(0.5);
    last if ($held = held_by('w2')) > 0;
}
ok $held > 0, "worker w2 SIGKILLed with $held entries in hand";
$t->stop('worker-w2', 'KILL');
run_for(1);

my ($victim) = grep { $_ != $replica } $c->primaries;
my ($heir) = $c->replicas_of($victim);
$c->kill_node($victim);
$t0 = time;
run_for(2, sub { grep { $_ == $heir } $c->primaries });
ok scalar(grep { $_ == $heir } $c->primaries),
   'the killed primary\'s replica was promoted';
diag sprintf 'primary %d SIGKILLed: %d a primary after %.1f s', $victim,
    $heir, time - $t0;
# back, as a replica of its heir: WAIT has a replica to count again
$c->start_node($victim);
ok $t->wait_for(sub { grep { $_ == $victim } $c->replicas_of($heir) }, 30),
   'the killed node is back, as a replica';
run_for(3);
drain_retries();
is scalar @retry, 0, 'every webhook answered 200 in the end';

# --- what the streams hold --------------------------------------------------
ok $t->wait_for(sub { caught_up() }, 60),
   'the worker left caught up, with what the killed one held';
my %seen;
my $stored = 0;
for my $p (0 .. $PARTS - 1) {
    for my $e (entries("$prefix[$p]:messages"), entries("$prefix[$p]:statuses"))
    {
        my $f = $e->[1];
        my $key = $f->{kind} eq 'message' ? "message $f->{msg_id}"
                : "status $f->{msg_id} $f->{status}";
        $seen{$key}++;
        $stored++;
        my $want = $f->{phone_number_id};
        fail("$key in partition $p, not its number's") if defined $want
            && part_of($want) != $p;
    }
}
my $twice = grep { $_ > 1 } values %seen;
my $lost = grep { !$seen{$_} } keys %acked;
diag sprintf 'cluster: %d webhooks, %d answers (%s), %d events '
    . 'acknowledged, %d stored, lost %d, appended twice %d', $posted,
    $answers, join(', ', map { "$_: $status_of{$_}" } sort keys %status_of),
    scalar keys %acked, $stored, $lost, $twice;
is $lost, 0, 'lost: 0'
    or diag join "\n", 'lost:', (sort grep { !$seen{$_} } keys %acked)[0 .. 4];
is $twice, 0, 'appended twice: 0';
is $stored, scalar keys %acked, 'events stored: every one acknowledged';
cmp_ok $status_of{200}, '==', $posted, '200s: one per webhook';

# --- the derived state, against a replay of the streams ---------------------
my $replay = $t->start_redis;
open my $pipe, '|-', "redis-cli -p $replay --pipe > $d/replay.out 2>&1"
    or die;
for my $p (0 .. $PARTS - 1) {
    for my $s (qw(messages statuses account)) {
        for my $e (entries("$prefix[$p]:$s")) {
            print $pipe resp('XADD', "$prefix[$p]:$s", $e->[0],
                             @{ $e->[2] });
        }
    }
}
close $pipe;
$t->start_worker(consumer => 'replay', partitions => $PARTS,
                 redis => "127.0.0.1:$replay",
                 'trim-interval-ms' => 3600000);
ok $t->wait_for(sub {
    !grep { !$t->drained($_) } @prefix }, 60), 'the replay was applied';
my ($same, $differ, $keys) = compare_state($replay);
diag "state keys compared: $keys, differing: $differ";
diag $same unless $differ == 0;
ok $keys > $NUMBERS, "derived state found ($keys keys)";
is $differ, 0, 'derived state equals a replay of the streams';

# the worker's metrics: every partition's streams, from its primary
my $m = HTTP::Tiny->new->get("http://127.0.0.1:$metrics/metrics");
my @lengths = $m->{content} =~ /^wa_relay_stream_length\{stream="wa:\{[\d.]+\}:messages"\} (\d+)$/mg;
is scalar @lengths, $PARTS, 'worker metrics: each partition\'s stream'
    or diag "$m->{status} $m->{content}", `tail -20 $d/worker-w1.log`;
my $sum = 0;
$sum += $_ for @lengths;
is $sum, scalar(grep { /^message / } keys %seen), 'their lengths add up';
like(HTTP::Tiny->new->get("http://127.0.0.1:$metrics/healthz")->{content},
     qr/^ok: redis/, "worker health: ok");

# the module and the workers said what they did
like $t->error_log, qr/a call of \d+ requests sent again: (?:MOVED|ASK)/,
     'nginx followed a redirection';
unlike $t->error_log, qr/\[(?:alert|emerg)\]/, 'no alert in nginx\'s log';

done_testing;

# --- helpers ----------------------------------------------------------------

sub slot_of {
    my ($key) = @_;
    return $c->cli($nodes[0], 'CLUSTER', 'KEYSLOT', $key);
}

sub part_of { WaPartition::part_of($_[0], $PARTS) }

# a stream's entries from the primary serving it: [ id, {fields}, [list] ]
sub entries {
    my ($key) = @_;
    my $owner = $c->slot_owner(slot_of($key)) or return ();
    my $r = $c->cli($owner, 'XRANGE', $key, '-', '+');
    return () unless ref $r eq 'ARRAY';
    return map { [ $_->[0], { @{ $_->[1] } }, $_->[1] ] } @$r;
}

# every partition's group has had every entry, and holds none pending
sub caught_up {
    for my $p (@prefix) {
        for my $s (qw(messages statuses)) {
            my $key = "$p:$s";
            my $owner = $c->slot_owner(slot_of($key)) or return 0;
            my $last = $c->cli($owner, 'XREVRANGE', $key, '+', '-',
                               'COUNT', 1);
            next unless ref $last && @$last;
            my $groups = $c->cli($owner, 'XINFO', 'GROUPS', $key);
            my ($g) = grep { $_->{name} eq 'wa-relayd' }
                      map { ref $_ eq 'HASH' ? $_ : +{ @$_ } }
                      @{ ref $groups ? $groups : [] };
            return 0 unless $g && $g->{pending} == 0
                && $g->{'last-delivered-id'} eq $last->[0][0];
        }
    }
    return 1;
}

sub resp {
    my @a = @_;
    return join '', "*" . @a . "\r\n",
        map { my $b = $_; utf8::encode($b) if utf8::is_utf8($b);
              '$' . length($b) . "\r\n$b\r\n" } @a;
}

# the worker's keys of every partition: the cluster's against the replay's
sub compare_state {
    my ($port) = @_;
    my @keys = grep {
        !/:(?:messages|statuses|account|dead|alerts|outbox|seen|worker)(?::|$)/
    } split /\n/, `redis-cli -p $port --scan --pattern 'wa:{*'`;
    my @types = map { decode_json("[$_]")->[0] }
                $c->batch($port, 0, map { "TYPE $_" } @keys);
    my @cmds = map { join ' ', dump_cmd($types[$_], $keys[$_]) } 0 .. $#keys;
    my @mine = $c->batch($port, 0, @cmds);
    my @theirs = $c->batch($nodes[0], 1, @cmds);
    my ($differ, $first) = (0, '');
    for my $i (0 .. $#keys) {
        my ($a, $b) = map { dump_key(decode_json("[$_]")->[0]) }
                      $mine[$i], $theirs[$i];
        next if $a eq $b;
        $differ++;
        $first ||= "first difference, $keys[$i]:\n  replay  $a\n"
                   . "  cluster $b";
    }
    return ($first, $differ, scalar @keys);
}

sub dump_cmd {
    my ($type, $key) = @_;
    return $type eq 'hash' ? ('HGETALL', $key)
         : $type eq 'zset' ? ('ZRANGE', $key, 0, -1, 'WITHSCORES')
         : $type eq 'set' ? ('SMEMBERS', $key)
         : ('GET', $key);
}

sub dump_key {
    my ($v) = @_;
    return JSON::PP->new->canonical->encode(
        ref $v eq 'HASH' ? $v
        : ref $v eq 'ARRAY' && @$v && !ref $v->[0] ? [ sort @$v ]
        : $v // 'nil');
}

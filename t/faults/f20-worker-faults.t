# faults of the worker and of the Graph API: the worker killed with SIGKILL
# with a batch in hand over several rounds ends in the state of a clean run;
# a Graph API that fails, is slow or closes connections gets every message
# exactly once
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use FakeGraph;
use WaTest;
use WaBody qw(text_message status_item messages_body);

my @lines;

# --- worker kill -9 over several rounds vs a clean run ----------------------
{
    # acl => 0: Redis restarts, forgetting users made at run time
    my $t = WaTest->new(acl => 0);
    $t->start_redis;
    $t->start_nginx;

    # inbound messages, statuses in any order, keywords: 20 contacts
    my @bodies;
    for my $i (1 .. 400) {
        my $u = sprintf '55117%07d', $i % 20;
        my $text = $i % 97 == 0 ? 'STOP' : $i % 89 == 0 ? 'START' : "m$i";
        push @bodies, messages_body(from => $u, messages => [
            text_message("wamid.k$i", $text, from => $u,
                         ts => 1780000000 + $i * 37) ]);
        push @bodies, messages_body(statuses => [
            status_item("wamid.o$i", (qw(read sent delivered))[$i % 3],
                        ts => 1780000000 + $i * 37 + 5, to => $u),
            status_item("wamid.o$i", (qw(sent delivered read))[$i % 3],
                        ts => 1780000000 + $i * 37 + 3, to => $u) ]);
    }

    # Each round: the worker waits for entries, frozen; a sixth of the
    # webhooks arrives and Redis hands it a batch; SIGKILL.  The next
    # worker (the same consumer) takes that batch over, then the rest.
    # The clean run, under the prefix ref, is given the same entries the
    # same way (frozen, handed the same first batch), without the kills:
    # the state's trackers depend on the order in which entries of
    # different streams are applied, which the batches decide.
    my @w = (batch => 7, 'claim-idle-ms' => 200, 'block-ms' => 60000,
             'timeout-ms' => 120000);
    $t->start_worker(@w);
    $t->start_worker(@w, consumer => 'ref', prefix => 'ref');
    my %last = map { $_ => '0' } qw(messages statuses account);
    my ($rounds, $bad, $nevents) = (0, 0, 0);
    my $per = int(@bodies / 6) + 1;
    while (my @chunk = splice @bodies, 0, $per) {
        ok $t->freeze_idle('worker-w1', 'worker-ref'),
            "round $rounds: both workers wait";
        $bad += grep { $t->post($_)->{status} != 200 } @chunk;
        my $hand = 0;
        $t->wait_for(sub {
            $hand = 0;
            $hand += $t->pending_of("wa:$_", 'wa-relayd', 'w1')
                for qw(messages statuses);
            $hand > 0 });
        ok $hand > 0, "SIGKILL with $hand entries in hand";
        $t->stop('worker-w1', 'KILL');
        # the round's entries, stream by stream as the first body's first
        for my $s (qw(messages statuses account)) {
            my $r = $t->redis('XRANGE', "wa:$s", "($last{$s}", '+');
            for my $e (ref $r eq 'ARRAY' ? @$r : ()) {
                $t->redis('XADD', "ref:$s", '*', @{ $e->[1] });
                $last{$s} = $e->[0];
                $nevents++;
            }
        }
        $t->start_worker(@w);
        $t->thaw('worker-ref');
        $rounds++;
    }
    is $bad, 0, 'every webhook accepted';
    ok $t->wait_for(sub { $t->drained('wa') && $t->drained('ref') }, 30),
        "after $rounds kills both caught up";

    my $pending = 0;
    for my $s (qw(messages statuses account)) {
        $pending += $t->redis('XPENDING', "wa:$s", 'wa-relayd')->[0] // 0;
    }
    is $pending, 0, 'no entry left pending';

    # compare every state key (not the worker's own bookkeeping)
    my ($same, $diff, @why) = (0, 0);
    for my $k (sort @{ $t->redis('KEYS', 'ref:*') }) {
        next if $k =~ /^ref:(seen|worker|messages|statuses|account|alerts|outbox)\b/;
        (my $w = $k) =~ s/^ref:/wa:/;
        my $type = $t->redis('TYPE', $k);
        my ($a, $b);
        if ($type eq 'hash') { ($a, $b) = ($t->hash($k), $t->hash($w)) }
        elsif ($type eq 'zset') {
            ($a, $b) = map { $t->redis('ZRANGE', $_, 0, -1) } $k, $w;
        } else { next }
        my $ja = JSON::PP->new->canonical->encode($a);
        my $jb = JSON::PP->new->canonical->encode($b);
        if ($ja eq $jb) { $same++ } else { $diff++; push @why, $k }
    }
    ok $same > 40, "$same state keys compared";
    is $diff, 0, 'the killed worker\'s state equals the clean run\'s'
        or diag "differ: @why[0 .. ($#why < 5 ? $#why : 4)]";
    my $line = sprintf '%-28s events %d, rounds %d, keys %d, differing %d',
        'worker SIGKILL x6', $nevents, $rounds, $same + $diff, $diff;
    push @lines, $line;
    # idle, with a BLOCK that SIGTERM would wait for
    $t->stop($_, 'KILL') for qw(worker-w1 worker-ref);
}

# --- Redis killed under the worker (AOF, fsync always) and restarted ------
{
    # acl => 0: Redis restarts, forgetting users made at run time
    my $t = WaTest->new(acl => 0);
    my @aof = ('--appendonly', 'yes', '--appendfsync', 'always');
    $t->start_redis(@aof);
    $t->start_nginx;
    my $PN = '106540352242922';
    my $n = 1500;
    my $post = sub {
        my ($i) = @_;
        my $u = sprintf '55118%07d', $i % 30;
        my $r = $t->post(messages_body(from => $u, messages => [
            text_message("wamid.rk$i", "m$i", from => $u,
                         ts => 1780000000 + $i) ]));
        die "post: $r->{status}" unless $r->{status} == 200;
    };
    $post->(1);
    my $applied = sub {
        my $sum = 0;
        for my $u (0 .. 29) {
            $sum += $t->hash(sprintf "wa:contact:$PN:55118%07d", $u)
                      ->{messages_in} // 0;
        }
        return $sum;
    };
    # Redis dies while the worker holds a batch and most is unread: the
    # worker is frozen then, and feels it when thawed
    $t->start_worker(batch => 1, 'claim-idle-ms' => 300, 'block-ms' => 60000,
                     'timeout-ms' => 120000);
    ok $t->wait_for(sub { $t->drained }, 30), 'the worker applied the first';
    ok $t->freeze_idle('worker-w1'), 'and waits for more, frozen';
    $post->($_) for 2 .. $n;
    my $g = $t->group('wa:messages', 'wa-relayd');
    ok $g->{pending} > 0 && $g->{lag} > 0, "Redis SIGKILLed with "
        . "$g->{pending} entries in hand and $g->{lag} not yet read";
    $t->stop('redis', 'KILL');
    $t->thaw('worker-w1');
    ok $t->wait_for(sub { $t->worker_log =~ /lost the Redis connection/ },
                    30), 'the worker felt it';
    $t->start_redis(@aof);
    ok $t->wait_for(sub { $t->drained }, 60), 'caught up after the restart';
    my $sum = $applied->();
    is $sum, $n, 'every event applied exactly once';
    push @lines, sprintf '%-28s events %d, applied %d, lost %d, twice %d',
        'redis SIGKILL under worker', $n, $sum,
        $sum < $n ? $n - $sum : 0, $sum > $n ? $sum - $n : 0;
}

# --- the Graph API failing, slow, closing connections -----------------------
{
    # acl => 0: Redis restarts, forgetting users made at run time
    my $t = WaTest->new(acl => 0);
    $t->start_redis;
    my $g = FakeGraph->new(dir => $t->dir);
    my $url = $g->start;
    $t->write_file('token', "tok\n", 0600);
    $g->rules([ { to => '*', http => 500, times => 40 },
                { to => '*', close => 1, times => 40 },
                { to => '*', code => 131000, times => 40 },
                { to => '*', delay_ms => 2000, times => 20 } ]);
    $t->start_worker('token-file' => $t->dir . '/token', 'graph-url' => $url,
                     'retry-base-ms' => 50, 'request-timeout-ms' => 1000,
                     rate => 200, 'max-attempts' => 20);
    my @ids = map { $t->outbox(phone_number_id => '1',
        to => sprintf('55116%07d', $_),
        message => { type => 'template', template => { name => 'f',
                     language => { code => 'en' } } }) } 1 .. 300;
    ok $t->wait_for(sub { $t->xlen('wa:sent') >= 300 }, 60), 'all answered';
    my %ok;
    $ok{ $_->{outbox_id} }++ for $t->stream_events('wa:sent');
    my $lost = grep { !$ok{$_} } @ids;
    my $twice = grep { $_ > 1 } values %ok;
    # at the fake: successful answers per entry (a slow answer can arrive
    # after the timeout: that is the one case Meta could see twice)
    my %got;
    for my $r ($g->requests) {
        $got{ $r->{json}{biz_opaque_callback_data} // '' }++;
    }
    is $lost, 0, 'nothing given up that should be retried';
    is $twice, 0, 'nothing recorded as sent twice';
    is $t->xlen('wa:dead'), 0, 'no entry in wa:dead';
    my $attempts = 0;
    $attempts += $_ for values %got;
    my $line = sprintf '%-28s sent %d, accepted %d, attempts %d, lost %d, '
        . 'duplicated %d', 'graph 500/close/131000/slow', scalar @ids,
        scalar(keys %ok), $attempts, $lost, $twice;
    push @lines, $line;
}

diag "fault summary:\n" . join "\n", @lines;

done_testing;

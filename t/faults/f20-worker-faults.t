# faults of the worker and of the Graph API: the worker killed with SIGKILL
# at random points over several rounds ends in the state of a clean run;
# a Graph API that fails, is slow or closes connections gets every message
# exactly once
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
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
    my $bad = grep { $t->post($_)->{status} != 200 } @bodies;
    is $bad, 0, scalar(@bodies) . ' webhooks accepted';

    # the reference: the same entries under another prefix, one clean run
    my $nevents = 0;
    for my $s (qw(messages statuses account)) {
        for my $e ($t->stream("wa:$s")) {
            $t->redis('XADD', "ref:$s", '*', %{ $e->[1] });
            $nevents++;
        }
    }
    $t->start_worker(consumer => 'ref', prefix => 'ref', batch => 7);

    my $rounds = 0;
    for my $round (1 .. 6) {
        $t->start_worker(batch => 7, 'claim-idle-ms' => 200);
        sleep 0.05 + rand 0.25;
        kill 'KILL', $t->{pids}{'worker-w1'};
        waitpid delete $t->{pids}{'worker-w1'}, 0;
        $rounds++;
    }
    $t->start_worker(batch => 7, 'claim-idle-ms' => 200);
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
    for my $i (1 .. $n) {
        my $u = sprintf '55118%07d', $i % 30;
        my $r = $t->post(messages_body(from => $u, messages => [
            text_message("wamid.rk$i", "m$i", from => $u,
                         ts => 1780000000 + $i) ]));
        die "post: $r->{status}" unless $r->{status} == 200;
    }
    my $applied = sub {
        my $sum = 0;
        for my $u (0 .. 29) {
            $sum += $t->hash(sprintf "wa:contact:$PN:55118%07d", $u)
                      ->{messages_in} // 0;
        }
        return $sum;
    };
    # one entry per call, so that the kill lands with batches in flight
    $t->start_worker(batch => 1, 'claim-idle-ms' => 300);
    $t->wait_for(sub { $t->redis('EXISTS', "wa:contact:$PN:551180000001") });
    my ($g) = map { ref $_ eq 'HASH' ? $_ : +{ @$_ } }
              @{ $t->redis('XINFO', 'GROUPS', 'wa:messages') };
    $t->stop('redis', 'KILL');
    ok $g->{lag} > 0, "killed with $g->{lag} entries not yet read";
    sleep 0.5;
    $t->start_redis(@aof);
    ok $t->wait_for(sub { $t->drained }, 60), 'caught up after the restart';
    my $sum = $applied->();
    is $sum, $n, 'every event applied exactly once';
    like $t->worker_log, qr/lost the Redis connection/, 'the worker felt it';
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
